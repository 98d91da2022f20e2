//! Delivery receipts: how far each message an outbox sent got, as WhatsApp reports it on
//! `messages.update` (by the message's id, which the outbox chose).
//!
//! The outbox keeps a [`Delivery`] per message it sent, for the last [`FOLLOWED`] messages, until
//! it is read, played or failed; [`Outbox::delivery_update`](super::Outbox::delivery_update) moves
//! it on (the dispatcher calls it for every `messages.update` of the instance), and a
//! [`Receipt`](super::Receipt) waits on it.

use eventsock_core::{human, Histogram, Recent};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// How many of the last messages posted an outbox follows: an older one is forgotten (its
/// receipts then count in the stats as unfollowed).
pub const FOLLOWED: usize = 10_000;

/// How far a sent message got: the server's `messages.update` status, in the order WhatsApp
/// reports them. [`Delivery::Error`] is WhatsApp saying it could not deliver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Delivery {
    /// `ERROR`: WhatsApp could not deliver it.
    Error,
    /// `PENDING`: waiting to leave the phone.
    Pending,
    /// `SERVER_ACK`: WhatsApp's server has it: sent.
    Sent,
    /// `DELIVERY_ACK`: on the recipient's phone.
    Delivered,
    /// `READ`: the recipient opened it (only when they share read receipts).
    Read,
    /// `PLAYED`: a voice note or video listened to.
    Played,
}

impl Delivery {
    /// Every status, in order.
    pub const ALL: [Delivery; 6] = [
        Delivery::Error,
        Delivery::Pending,
        Delivery::Sent,
        Delivery::Delivered,
        Delivery::Read,
        Delivery::Played,
    ];

    /// The status of the server's name for it (`DELIVERY_ACK`...), or of its number (0 to 5, as
    /// Baileys numbers them).
    pub fn parse(status: &str) -> Option<Delivery> {
        Some(match status {
            "ERROR" | "0" => Delivery::Error,
            "PENDING" | "1" => Delivery::Pending,
            "SERVER_ACK" | "2" => Delivery::Sent,
            "DELIVERY_ACK" | "3" => Delivery::Delivered,
            "READ" | "4" => Delivery::Read,
            "PLAYED" | "5" => Delivery::Played,
            _ => return None,
        })
    }

    /// The receipt a legacy `messages.update` payload (its JSON text) carries: the id of a
    /// message this instance sent, and its status (a name or Baileys' number). `None` for an
    /// edit (no status), a receipt of someone else's message, or what is not one. The one
    /// reading of a receipt, for the dispatcher and the JetStream sender.
    pub fn of_update(payload: &str) -> Option<(String, Delivery)> {
        #[derive(serde::Deserialize)]
        struct Update<'a> {
            #[serde(borrow)]
            id: Option<std::borrow::Cow<'a, str>>,
            status: Option<serde_json::Value>,
            #[serde(rename = "fromMe")]
            from_me: Option<bool>,
        }
        let update: Update<'_> = serde_json::from_str(payload).ok()?;
        if update.from_me != Some(true) {
            return None;
        }
        let status = match update.status? {
            serde_json::Value::String(s) => Delivery::parse(&s),
            serde_json::Value::Number(n) => Delivery::parse(&n.to_string()),
            _ => None,
        }?;
        Some((update.id?.into_owned(), status))
    }

    /// The server's name for it: `ERROR`, `PENDING`, `SERVER_ACK`, `DELIVERY_ACK`, `READ`,
    /// `PLAYED`.
    pub fn as_str(self) -> &'static str {
        match self {
            Delivery::Error => "ERROR",
            Delivery::Pending => "PENDING",
            Delivery::Sent => "SERVER_ACK",
            Delivery::Delivered => "DELIVERY_ACK",
            Delivery::Read => "READ",
            Delivery::Played => "PLAYED",
        }
    }

    /// A word for people: `failed`, `pending`, `sent`, `delivered`, `read`, `played`.
    pub fn word(self) -> &'static str {
        match self {
            Delivery::Error => "failed",
            Delivery::Pending => "pending",
            Delivery::Sent => "sent",
            Delivery::Delivered => "delivered",
            Delivery::Read => "read",
            Delivery::Played => "played",
        }
    }

    /// Whether no later status can follow (read, played, failed).
    fn is_final(self) -> bool {
        matches!(self, Delivery::Error | Delivery::Read | Delivery::Played)
    }
}

impl std::fmt::Display for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.word())
    }
}

/// Why a [`Receipt`](super::Receipt) did not reach the status it waited for.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum DeliveryError {
    /// The message was not sent (or may not have been).
    #[error(transparent)]
    NotSent(#[from] super::OutboxError),
    /// WhatsApp reported it could not deliver the message (`ERROR`).
    #[error("WhatsApp reported that it could not deliver the message (status ERROR)")]
    Failed,
    /// The status did not come in time.
    #[error("not {wanted} within {}: {}", human::duration(*.waited), .last.map_or("no receipt came".to_owned(), |l| format!("the last receipt said {l}")))]
    Timeout {
        /// The status waited for.
        wanted: Delivery,
        /// How long it waited.
        waited: Duration,
        /// The last status reported, if any.
        last: Option<Delivery>,
    },
    /// This process does not follow the message: it is not a text sent by this outbox (a
    /// reaction or a read mark, or a message queued for another process to send: a JetStream
    /// outbox, whose sender follows its receipts), it was settled before (posted again), or it
    /// was forgotten (more than [`FOLLOWED`] messages were posted since).
    #[error("this process does not follow the message's receipts: it is not a text sent here (a reaction, a read mark, a message queued for another process to send, which follows them), or it was settled before, or too many messages were sent since")]
    Unfollowed,
}

/// One followed message.
struct Followed {
    status: watch::Sender<Option<Delivery>>,
    chat: String,
    sent_at: Option<Instant>,
}

/// The messages an outbox follows, and what their receipts said.
pub(crate) struct Deliveries {
    /// The last [`FOLLOWED`] messages posted, settled ones removed at once (an id posted again
    /// after it settled is followed anew).
    followed: Mutex<Recent<Followed>>,
    counts: [AtomicU64; 6],
    /// Receipts for messages not followed (another sender's, or forgotten).
    unfollowed: AtomicU64,
    /// From sent to delivered.
    to_delivered: Histogram,
}

impl Default for Deliveries {
    fn default() -> Self {
        Deliveries {
            followed: Mutex::new(Recent::new(FOLLOWED)),
            counts: Default::default(),
            unfollowed: AtomicU64::new(0),
            to_delivered: Histogram::new(eventsock_core::histogram::AGES),
        }
    }
}

impl std::fmt::Debug for Deliveries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deliveries").finish_non_exhaustive()
    }
}

/// What the receipts of an outbox said, in its [`OutboxStats`](super::OutboxStats).
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct DeliveryStats {
    /// Receipts of each status for messages it followed, in [`Delivery::ALL`]'s order.
    pub receipts: [u64; 6],
    /// Receipts for messages it did not follow (sent by another process or the phone, or
    /// forgotten).
    pub unfollowed: u64,
    /// From sent to delivered, per message.
    pub to_delivered: eventsock_core::HistogramSnapshot,
}

impl DeliveryStats {
    /// Receipts of `status`.
    pub fn count(&self, status: Delivery) -> u64 {
        self.receipts[status as usize]
    }
}

impl Deliveries {
    /// Starts following message `id`, sent to `chat`; the receiver sees its status.
    pub(crate) fn follow(&self, id: &str, chat: &str) -> watch::Receiver<Option<Delivery>> {
        let mut followed = self.lock();
        if let Some(f) = followed.get(id) {
            return f.status.subscribe();
        }
        let (status, rx) = watch::channel(None);
        followed.insert(
            id.to_owned(),
            Followed {
                status,
                chat: chat.to_owned(),
                sent_at: None,
            },
        );
        rx
    }

    /// Message `id` is being sent: its time to delivery counts from the first time.
    pub(crate) fn sent(&self, id: &str) {
        if let Some(f) = self.lock().get_mut(id) {
            f.sent_at.get_or_insert_with(Instant::now);
        }
    }

    /// Message `id` was not sent: nothing will come for it.
    pub(crate) fn forget(&self, id: &str) {
        self.lock().remove(id);
    }

    /// A receipt: message `id` got to `status`. Returns whether the message is followed.
    pub(crate) fn update(&self, id: &str, status: Delivery) -> bool {
        let mut followed = self.lock();
        let Some(f) = followed.get_mut(id) else {
            drop(followed);
            self.unfollowed.fetch_add(1, Ordering::Relaxed);
            return false;
        };
        self.counts[status as usize].fetch_add(1, Ordering::Relaxed);
        let before = *f.status.borrow();
        // Receipts can come out of order: a status never goes back (a failure always counts).
        let moves = match before {
            None => true,
            Some(b) => status == Delivery::Error || (status > b && b != Delivery::Error),
        };
        if !moves {
            return true;
        }
        if status >= Delivery::Delivered && before.is_none_or(|b| b < Delivery::Delivered) {
            if let Some(at) = f.sent_at {
                self.to_delivered.observe(at.elapsed());
            }
        }
        if status == Delivery::Error {
            tracing::warn!(
                chat = %human::escaped(&f.chat),
                id = %human::escaped(id),
                "WhatsApp reported that it could not deliver a message (status ERROR)"
            );
        }
        f.status.send_replace(Some(status));
        if status.is_final() {
            followed.remove(id);
        }
        true
    }

    pub(crate) fn stats(&self) -> DeliveryStats {
        DeliveryStats {
            receipts: std::array::from_fn(|i| self.counts[i].load(Ordering::Relaxed)),
            unfollowed: self.unfollowed.load(Ordering::Relaxed),
            to_delivered: self.to_delivered.snapshot(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Recent<Followed>> {
        self.followed.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Waits until `status` shows at least `wanted` (or a failure), for at most `timeout`.
pub(crate) async fn wait_for(
    status: &mut watch::Receiver<Option<Delivery>>,
    wanted: Delivery,
    timeout: Duration,
) -> Result<Delivery, DeliveryError> {
    let reached =
        |s: &Option<Delivery>| matches!(s, Some(s) if *s >= wanted || *s == Delivery::Error);
    let waited = tokio::time::timeout(timeout, status.wait_for(reached))
        .await
        .map(|r| r.map(|_| ()));
    let last = *status.borrow();
    match (waited, last) {
        (_, Some(Delivery::Error)) if wanted != Delivery::Error => Err(DeliveryError::Failed),
        (Ok(Ok(_)), Some(s)) => Ok(s),
        // The outbox stopped following it (forgotten): what it said last is all there is.
        (Ok(Err(_)), _) => Err(DeliveryError::Unfollowed),
        _ => Err(DeliveryError::Timeout {
            wanted,
            waited: timeout,
            last,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Statuses only move forward, whatever order the receipts come in; a failure always
    /// counts; a final status stops the following; every receipt is counted.
    #[tokio::test]
    async fn receipts_move_a_status_forward_only() {
        let deliveries = Deliveries::default();
        let mut rx = deliveries.follow("A", "5511@s.whatsapp.net");
        deliveries.sent("A");
        let followed: Vec<bool> = ["DELIVERY_ACK", "SERVER_ACK", "READ", "DELIVERY_ACK"]
            .into_iter()
            .map(|s| deliveries.update("A", Delivery::parse(s).unwrap()))
            .collect();
        assert_eq!(
            followed,
            [true, true, true, false],
            "READ ends the following"
        );
        assert_eq!(*rx.borrow(), Some(Delivery::Read));
        let got = wait_for(&mut rx, Delivery::Delivered, Duration::from_secs(1)).await;
        assert_eq!(got.unwrap(), Delivery::Read);
        let stats = deliveries.stats();
        assert_eq!(
            (
                stats.count(Delivery::Delivered),
                stats.count(Delivery::Sent),
                stats.count(Delivery::Read),
                stats.unfollowed
            ),
            (1, 1, 1, 1),
            "the last DELIVERY_ACK came after READ ended the following"
        );
        assert_eq!(stats.to_delivered.count, 1);

        let mut failing = deliveries.follow("B", "x@lid");
        deliveries.update("B", Delivery::Delivered);
        deliveries.update("B", Delivery::Error);
        let got = wait_for(&mut failing, Delivery::Read, Duration::from_secs(1)).await;
        assert!(matches!(got, Err(DeliveryError::Failed)), "{got:?}");

        let mut silent = deliveries.follow("C", "x@lid");
        let got = wait_for(&mut silent, Delivery::Read, Duration::from_millis(10)).await;
        assert!(
            matches!(got, Err(DeliveryError::Timeout { last: None, .. })),
            "{got:?}"
        );
        assert_eq!(Delivery::parse("5"), Some(Delivery::Played));
        assert_eq!(Delivery::parse("DELIVERED"), None);
        let of = |json: &str| Delivery::of_update(json);
        assert_eq!(
            of(r#"{"id":"A","fromMe":true,"status":"READ","remoteJid":"1@lid"}"#),
            Some(("A".into(), Delivery::Read))
        );
        assert_eq!(
            of(r#"{"id":"A","fromMe":true,"status":3}"#),
            Some(("A".into(), Delivery::Delivered))
        );
        for not in [
            r#"{"id":"A","fromMe":false,"status":"READ"}"#,
            r#"{"id":"A","fromMe":null,"status":"READ"}"#,
            r#"{"id":"A","fromMe":true}"#,
            r#"{"fromMe":true,"status":"READ"}"#,
            r#"{"id":"A","fromMe":true,"status":"SEEN"}"#,
            "[1,2]",
            "not json",
        ] {
            assert_eq!(of(not), None, "{not}");
        }
    }

    /// Past [`FOLLOWED`] messages, the oldest is forgotten: its receiver learns it is no
    /// longer followed, and memory stays bounded.
    #[tokio::test]
    async fn the_oldest_is_forgotten_past_the_bound() {
        let deliveries = Deliveries::default();
        let mut first = deliveries.follow("0", "c");
        for n in 1..=FOLLOWED {
            deliveries.follow(&n.to_string(), "c");
        }
        assert_eq!(deliveries.lock().len(), FOLLOWED);
        let got = wait_for(&mut first, Delivery::Delivered, Duration::from_secs(1)).await;
        assert!(matches!(got, Err(DeliveryError::Unfollowed)), "{got:?}");
    }

    /// An id followed again after it settled is a new entry, which the older place of the id
    /// in the order does not forget.
    #[tokio::test]
    async fn an_id_followed_again_keeps_its_new_entry() {
        let deliveries = Deliveries::default();
        deliveries.follow("again", "c");
        deliveries.update("again", Delivery::Read);
        let mut second = deliveries.follow("again", "c");
        for n in 1..FOLLOWED {
            deliveries.follow(&n.to_string(), "c");
        }
        // The first place of "again" is gone from the order; the second entry stays.
        deliveries.update("again", Delivery::Delivered);
        let got = wait_for(&mut second, Delivery::Delivered, Duration::from_secs(1)).await;
        assert_eq!(got.unwrap(), Delivery::Delivered);
    }
}
