//! What the simulator's REST API records and keeps: the calls it answered, the texts it
//! accepted, the messages it saved (for `findMessages`) and the failures asked of it. The socket
//! side is the hub's ([`super`]).

use super::Sim;
use std::sync::atomic::Ordering;

/// How many REST calls [`Sim::requests`] remembers.
const REQUESTS: usize = 10_000;

/// A REST call the simulator answered: [`Sim::requests`], `GET /control/requests`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Request {
    /// `POST`, `PUT`, `PATCH` or `GET`.
    pub method: String,
    /// The path, without the query: `/message/sendText/codechat`.
    pub path: String,
    /// The status answered.
    pub status: u16,
    /// The body as received: JSON when it parsed, else the text (`null` for none).
    pub body: serde_json::Value,
    /// The body answered; for a file `mediaData` served, what it served:
    /// `{mediaType, fileName, mimetype, size, binary, fault}`.
    pub answer: serde_json::Value,
}

/// How many accepted sends [`Sim::sent`] remembers.
const SENT: usize = 100_000;

/// A text message the simulator accepted on `sendText`: [`Sim::sent`], `GET /control/sent`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Sent {
    /// The instance it was sent from.
    pub instance: String,
    /// The chat (a JID).
    pub chat: String,
    /// The text.
    pub text: String,
    /// When it arrived, in milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// The message's WhatsApp id (`keyId`): the sender's own (`options.messageId`) when given.
    pub id: String,
    /// How long "typing" was shown before it went out (`options.delay`), in milliseconds.
    pub typing_ms: u64,
    /// The `keyId` of the message it quotes, if it quotes one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quoted: Option<String>,
}

/// How the simulator fails a send on request ([`Sim::fail_sends`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendFailure {
    /// The status it answers.
    pub status: u16,
    /// The `Retry-After` it answers, in seconds.
    pub retry_after: Option<u64>,
    /// Whether the message goes out anyway (the server failed after sending it, so the answer
    /// is an error though the message was sent) or not at all.
    pub delivered: bool,
}

/// In which order `findMessages` gives messages of the same `messageTimestamp`. The real server
/// sorts by the timestamp alone, without an index: ties come back in any order, which may differ
/// from one request to the next.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Ties {
    /// The latest saved first.
    #[default]
    Descending,
    /// The first saved first.
    Ascending,
    /// A new random order on every request.
    Shuffled,
}

/// How many saved messages `findMessages` can find per instance (the oldest are forgotten).
pub const STORED: usize = 50_000;

/// How `POST /chat/findMessages/{instance}` behaves: as the real server, or badly on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FindMode {
    /// As the real server.
    #[default]
    Normal,
    /// Never answers.
    Hang,
    /// Answers 200 with a body that is not JSON.
    Garbage,
    /// Never runs out: every page has ten times the records asked for, all new and dated now.
    Flood,
}

impl Sim {
    /// Whether `messages.upsert` events are saved now (`DATABASE_SAVE_DATA_NEW_MESSAGE`).
    pub fn saving(&self) -> bool {
        self.inner.saving.load(Ordering::Relaxed)
    }

    /// The saved message with row `id`, of any instance (the server's `findUnique` by id).
    pub(crate) fn stored_row(&self, id: i64) -> Option<serde_json::Value> {
        let stored = self.inner.stored.lock().unwrap_or_else(|p| p.into_inner());
        stored
            .values()
            .flat_map(|list| list.iter())
            .find(|row| row["id"].as_i64() == Some(id))
            .cloned()
    }

    /// The first saved message of `instance` whose columns equal the members of `filter` (an
    /// object), as the server's `findFirst({where})` finds it; `None` when a member is not a
    /// column the server filters on this way (Prisma refuses such a query) or none matches.
    /// `instanceId` is always the instance's, whatever `filter` says.
    pub(crate) fn first_stored_where(
        &self,
        instance: &str,
        filter: &serde_json::Value,
    ) -> Option<serde_json::Value> {
        const COLUMNS: [&str; 9] = [
            "id",
            "keyId",
            "keyFromMe",
            "keyRemoteJid",
            "keyParticipant",
            "pushName",
            "messageType",
            "messageTimestamp",
            "device",
        ];
        let filter = filter.as_object()?;
        let members: Vec<_> = filter.iter().filter(|(k, _)| *k != "instanceId").collect();
        if members.iter().any(|(k, _)| !COLUMNS.contains(&k.as_str())) {
            return None;
        }
        let stored = self.inner.stored.lock().unwrap_or_else(|p| p.into_inner());
        stored
            .get(instance)?
            .iter()
            .find(|row| members.iter().all(|(k, v)| row.get(k.as_str()) == Some(v)))
            .cloned()
    }

    /// Every REST call answered so far (the latest 10,000), oldest first: what eventsock sent,
    /// and what it was answered.
    pub fn requests(&self) -> Vec<Request> {
        let requests = self
            .inner
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        requests.iter().cloned().collect()
    }

    pub(crate) fn record_request(&self, request: Request) {
        let mut requests = self
            .inner
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if requests.len() == REQUESTS {
            requests.pop_front();
        }
        requests.push_back(request);
    }

    /// The message keys `markMessageAsRead` marked read, oldest first: only those of groups and
    /// LIDs, as the real server passes on only those (see `docs/conformance.md`).
    pub fn marked_read(&self) -> Vec<serde_json::Value> {
        let marked = self
            .inner
            .marked_read
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        marked.clone()
    }

    pub(crate) fn mark_read(&self, key: serde_json::Value) {
        let mut marked = self
            .inner
            .marked_read
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if marked.len() < SENT {
            marked.push(key);
        }
    }

    /// Saves a message as the server's `Message` row: the columns `findMessages` selects, and
    /// no `info` or `isGroup` (which the real rows do not have either).
    pub(crate) fn save(&self, scope: &str, data: &serde_json::Value) {
        let id = match data.get("id").and_then(serde_json::Value::as_i64) {
            Some(id) => id,
            None => self.next_message_id(),
        };
        let field = |k: &str| data.get(k).cloned().unwrap_or(serde_json::Value::Null);
        let timestamp = match data.get("messageTimestamp") {
            Some(serde_json::Value::String(s)) => {
                s.parse::<i64>().map(Into::into).unwrap_or_default()
            }
            Some(v) => v.clone(),
            None => crate::auth::now_secs().into(),
        };
        let row = serde_json::json!({
            "id": id,
            "keyId": field("keyId"),
            "keyFromMe": data.get("keyFromMe").cloned().unwrap_or(false.into()),
            "keyRemoteJid": field("keyRemoteJid"),
            "keyParticipant": field("keyParticipant"),
            "pushName": field("pushName"),
            "messageType": field("messageType"),
            "content": field("content"),
            "messageTimestamp": timestamp,
            "instanceId": self.instance_id(scope),
            "device": field("device"),
            "MessageUpdate": [],
        });
        let mut stored = self.inner.stored.lock().unwrap_or_else(|p| p.into_inner());
        let list = stored.entry(scope.to_owned()).or_default();
        if list.len() == STORED {
            list.pop_front();
        }
        list.push_back(row);
    }

    /// Whether `messages.upsert` events are saved from now on (`DATABASE_SAVE_DATA_NEW_MESSAGE`;
    /// [`SimConfig::save_messages`](crate::SimConfig::save_messages) at start).
    pub fn set_saving(&self, on: bool) {
        self.inner.saving.store(on, Ordering::Relaxed);
    }

    /// The saved messages of `instance`, oldest first.
    pub fn stored(&self, instance: &str) -> Vec<serde_json::Value> {
        let stored = self.inner.stored.lock().unwrap_or_else(|p| p.into_inner());
        stored
            .get(instance)
            .map(|l| l.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// The saved messages of `instance` that `keep` keeps, newest first by `messageTimestamp`
    /// (among equals, as [`Sim::set_ties`] says): how many there are, and `take` of them after
    /// `skip`.
    pub(crate) fn find_stored(
        &self,
        instance: &str,
        keep: impl Fn(&serde_json::Value) -> bool,
        skip: usize,
        take: usize,
    ) -> (usize, Vec<serde_json::Value>) {
        let stored = self.inner.stored.lock().unwrap_or_else(|p| p.into_inner());
        let Some(list) = stored.get(instance) else {
            return (0, Vec::new());
        };
        let mut rows: Vec<&serde_json::Value> = list.iter().rev().filter(|m| keep(m)).collect();
        match self.ties() {
            Ties::Descending => {}
            Ties::Ascending => rows.reverse(),
            Ties::Shuffled => fastrand::shuffle(&mut rows),
        }
        // Stable: among equal timestamps, the order above stays.
        rows.sort_by_key(|m| std::cmp::Reverse(m["messageTimestamp"].as_i64().unwrap_or_default()));
        let total = rows.len();
        (
            total,
            rows.into_iter().skip(skip).take(take).cloned().collect(),
        )
    }

    /// In which order `findMessages` gives messages of one second from now on.
    pub fn set_ties(&self, ties: Ties) {
        *self.inner.ties.lock().unwrap_or_else(|p| p.into_inner()) = ties;
    }

    fn ties(&self) -> Ties {
        *self.inner.ties.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every text message accepted on `sendText`, in arrival order.
    pub fn sent(&self) -> Vec<Sent> {
        let sent = self.inner.sent.lock().unwrap_or_else(|p| p.into_inner());
        sent.iter().cloned().collect()
    }

    pub(crate) fn record_sent(
        &self,
        instance: &str,
        chat: &str,
        text: &str,
        id: &str,
        typing_ms: u64,
        quoted: Option<String>,
    ) {
        let at_ms = eventsock_core::clock::now_ms();
        let mut sent = self.inner.sent.lock().unwrap_or_else(|p| p.into_inner());
        if sent.len() == SENT {
            sent.pop_front();
        }
        sent.push_back(Sent {
            instance: instance.to_owned(),
            chat: chat.to_owned(),
            text: text.to_owned(),
            at_ms,
            id: id.to_owned(),
            typing_ms,
            quoted,
        });
    }

    /// Refuses the next `count` sends with `status` (429 with `Retry-After: retry_after`
    /// seconds when given, 500...), sending nothing; then accepts again.
    pub fn fail_sends(&self, status: u16, retry_after: Option<u64>, count: u64) {
        self.fail_next_sends(
            SendFailure {
                status,
                retry_after,
                delivered: false,
            },
            count,
        );
    }

    /// Fails the next `count` sends as `failure` says; then accepts again.
    pub fn fail_next_sends(&self, failure: SendFailure, count: u64) {
        *self
            .inner
            .send_failures
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = (count > 0).then_some((failure, count));
    }

    /// The failure to answer this send with, if one is due.
    pub(crate) fn take_send_failure(&self) -> Option<SendFailure> {
        let mut failures = self
            .inner
            .send_failures
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let (failure, left) = (*failures)?;
        *failures = (left > 1).then_some((failure, left - 1));
        Some(failure)
    }

    /// How `findMessages` behaves from now on.
    pub fn set_find_mode(&self, mode: FindMode) {
        *self
            .inner
            .find_mode
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = mode;
    }

    pub(crate) fn find_mode(&self) -> FindMode {
        *self
            .inner
            .find_mode
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// `findMessages` requests received so far (authorized or not).
    pub fn find_requests(&self) -> u64 {
        self.inner.find_requests.load(Ordering::Relaxed)
    }

    pub(crate) fn count_find_request(&self) {
        self.inner.find_requests.fetch_add(1, Ordering::Relaxed);
    }

    /// The latest messages sent on `messages.upsert` for `instance`, oldest first.
    pub fn history(&self, instance: &str) -> Vec<serde_json::Value> {
        let history = self.inner.history.lock().unwrap_or_else(|p| p.into_inner());
        history
            .get(instance)
            .map(|l| l.iter().cloned().collect())
            .unwrap_or_default()
    }
}
