//! [`Ingest`]: publishes every event to JetStream, once, in a window of publishes awaiting
//! their acknowledgements.

use crate::{ensure_streams, token, NatsError, StreamConfig};
use actix::prelude::*;
use eventsock_core::Recorded;
use eventsock_core::{EventMeta, EventName, RawEvent, RawFrame};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, oneshot};

/// What an ingest did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IngestStats {
    /// Events published and acknowledged.
    pub published: u64,
    /// Publish attempts that failed and were retried.
    pub retries: u64,
}

#[derive(Default)]
struct Counters {
    published: AtomicU64,
    retries: AtomicU64,
}

/// Publishes every [`RawEvent`] it is sent to `<prefix>.<instance>.<event>`, with a message id
/// (`Nats-Msg-Id`) made of this process's start, the connection generation and the sequence
/// number, so JetStream drops a re-publish of the same event within its duplicate window.
///
/// # Lifecycle
/// Publishes go out in a window: up to [`WINDOW`] events are published before the oldest one's
/// acknowledgement is awaited, which is what lets one ingest keep up with a busy stream. An event
/// is handed over (and the dispatcher goes on) once it is in the window; it counts as
/// published once JetStream has acknowledged it. When an acknowledgement fails (NATS restarted,
/// a timeout), that event and every one after it in the window are published again, in order,
/// until they are acknowledged (50 ms, doubling to 2 s between rounds): JetStream drops the
/// copies that had arrived, by their ids, so nothing is lost, nothing is stored twice, and each
/// subject keeps its order. While the window is full the dispatcher waits, its queue fills, and
/// the socket stops being read: events are held, never dropped. [`FlushIngest`] waits until
/// every event handed over is acknowledged: send it before the process exits.
pub struct Ingest {
    prefix: String,
    /// Publish with the chat in the subject, for the stream to partition by.
    partitioned: bool,
    /// The phone-number ↔ LID pairs seen: a chat is partitioned by its identity.
    identities: eventsock_core::Identities,
    nonce: u128,
    counters: Arc<Counters>,
    publisher: mpsc::Sender<Command>,
    /// The last subject published to, unpartitioned, and its instance and event.
    last_subject: Option<(Box<str>, EventName, async_nats::Subject)>,
}

/// How many events an ingest publishes before it awaits the oldest acknowledgement.
pub const WINDOW: usize = 1024;

impl std::fmt::Debug for Ingest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ingest")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl Ingest {
    /// Connects to NATS at `url` (retrying while it is down), creates the streams when missing,
    /// and starts the actor (and its publisher) on the current arbiter.
    pub async fn start(url: &str, cfg: StreamConfig) -> Result<Addr<Ingest>, NatsError> {
        let client = crate::connect(url).await?;
        let js = async_nats::jetstream::new(client);
        ensure_streams(&js, &cfg).await?;
        let nonce = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let counters = Arc::<Counters>::default();
        let (publisher, commands) = mpsc::channel(WINDOW);
        actix_rt::spawn(publish(js, commands, counters.clone()));
        Ok(Ingest {
            identities: eventsock_core::Identities::new(),
            partitioned: cfg.partitions > 0,
            prefix: cfg.prefix,
            nonce,
            counters,
            publisher,
            last_subject: None,
        }
        .start())
    }
}

/// One event to publish.
struct Publish {
    /// Shared by the events of one subject (a refcount, not a copy, per publish).
    subject: async_nats::Subject,
    id: String,
    payload: bytes::Bytes,
}

enum Command {
    Event(Publish),
    Flush(oneshot::Sender<()>),
}

/// A publish's acknowledgement to come (async-nats's own future, kept as it is: one allocation).
type Ack =
    <async_nats::jetstream::context::PublishAckFuture as std::future::IntoFuture>::IntoFuture;

/// Publishes `p`, giving the future of its acknowledgement.
async fn send(js: &async_nats::jetstream::Context, p: &Publish) -> Result<Ack, String> {
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(async_nats::header::NATS_MESSAGE_ID, p.id.as_str());
    let ack = js
        .publish_with_headers(p.subject.clone(), headers, p.payload.clone())
        .await
        .map_err(|e| e.to_string())?;
    Ok(std::future::IntoFuture::into_future(ack))
}

/// The publisher: a window of publishes in flight, acknowledged in order; a failure publishes
/// the failed one and all after it again.
async fn publish(
    js: async_nats::jetstream::Context,
    mut commands: mpsc::Receiver<Command>,
    counters: Arc<Counters>,
) {
    let mut window: VecDeque<(Publish, Option<Ack>)> = VecDeque::new();
    // How many in the window have no publish out (after a failed round): counted, not scanned
    // for on every event.
    let mut unsent = 0usize;
    let mut flushes: Vec<oneshot::Sender<()>> = Vec::new();
    let mut open = true;
    // Publish failures in a row, and the wait before publishing the window again.
    let mut failures = 0u32;
    let backoff =
        eventsock_core::Backoff::exponential(Duration::from_millis(50), Duration::from_secs(2))
            .jitter(0.0);
    loop {
        if window.is_empty() {
            for f in flushes.drain(..) {
                let _ = f.send(());
            }
            if !open {
                return;
            }
        }
        let room = window.len() < WINDOW;
        let all_sent = unsent == 0;
        let oldest = async {
            match window.front_mut() {
                Some((_, Some(ack))) => Some(ack.await.map(drop).map_err(|e| e.to_string())),
                Some((_, None)) => Some(Err("not published".to_owned())),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            done = oldest => {
                match done {
                    Some(Ok(())) => {
                        if let Some((_, None)) = window.pop_front() {
                            unsent -= 1;
                        }
                        counters.published.fetch_add(1, Ordering::Relaxed);
                        failures = 0;
                    }
                    Some(Err(error)) => {
                        counters.retries.fetch_add(1, Ordering::Relaxed);
                        failures += 1;
                        let wait = backoff.delay(failures);
                        tracing::warn!(%error, held = window.len(), wait = %eventsock_core::human::duration(wait), "publish failed; publishing the window again, in order");
                        tokio::time::sleep(wait).await;
                        unsent = 0;
                        for (p, ack) in window.iter_mut() {
                            *ack = send(&js, p).await.ok();
                            unsent += usize::from(ack.is_none());
                        }
                    }
                    None => {}
                }
            }
            command = commands.recv(), if open && room => match command {
                None => open = false,
                Some(Command::Flush(tx)) => flushes.push(tx),
                Some(Command::Event(p)) => {
                    // After a failed publish, the rest wait their turn behind it.
                    let ack = if all_sent {
                        send(&js, &p).await.ok()
                    } else {
                        None
                    };
                    unsent += usize::from(ack.is_none());
                    window.push_back((p, ack));
                }
            },
        }
    }
}

impl Actor for Ingest {
    type Context = Context<Self>;
}

impl Ingest {
    /// The subject of `instance`'s `event` (unpartitioned), made once per pair in a row: a
    /// stream of one instance and event makes it once.
    fn subject_of(&mut self, instance: &str, event: &EventName) -> async_nats::Subject {
        match &self.last_subject {
            Some((i, e, subject)) if **i == *instance && e == event => subject.clone(),
            _ => {
                let subject = async_nats::Subject::from(format!(
                    "{}.{}.{}",
                    self.prefix,
                    token(instance),
                    event
                ));
                self.last_subject = Some((instance.into(), event.clone(), subject.clone()));
                subject
            }
        }
    }

    /// Hands one event's record to the publisher; the actor takes the next event once it is in
    /// the window.
    fn hand_over(
        &mut self,
        meta: &EventMeta,
        chat: Option<&str>,
        payload: Vec<u8>,
    ) -> AtomicResponse<Self, ()> {
        let instance = meta.instance.as_deref().unwrap_or("unknown");
        let subject = if self.partitioned {
            async_nats::Subject::from(format!(
                "{}.{}.{}.{}",
                self.prefix,
                token(instance),
                token(chat.unwrap_or("_")),
                meta.event
            ))
        } else {
            self.subject_of(instance, &meta.event)
        };
        let id = {
            use std::fmt::Write;
            let mut id = String::with_capacity(48 + instance.len() + meta.event.as_str().len());
            let _ = write!(
                id,
                "{:x}-{}-{}-{}-{}",
                self.nonce, instance, meta.event, meta.generation, meta.seq
            );
            id
        };
        let publisher = self.publisher.clone();
        let hand_over = async move {
            let event = Command::Event(Publish {
                subject,
                id,
                payload: payload.into(),
            });
            if publisher.send(event).await.is_err() {
                tracing::error!("the ingest's publisher has stopped: an event was not published");
            }
        };
        AtomicResponse::new(Box::pin(hand_over.into_actor(self)))
    }
}

impl Handler<RawEvent> for Ingest {
    // Atomic: one event at a time, in order, each handed to the publisher before the next.
    type Result = AtomicResponse<Self, ()>;

    fn handle(&mut self, e: RawEvent, _: &mut Context<Self>) -> Self::Result {
        let mut payload = Vec::with_capacity(256);
        // Writing to a Vec fails only on a serialiser bug; the record is then empty, and the
        // worker reports it as not JSON.
        let _ = Recorded::write(&e, &mut payload);
        let keys = self.partitioned.then(|| ChatOf::read(&*e.data));
        let chat = keys.as_ref().and_then(|k| k.identity(&self.identities));
        self.hand_over(&e.meta, chat.as_deref(), payload)
    }
}

/// The chat fields of a message payload, read from its value or its text.
#[derive(serde::Deserialize, Default)]
struct ChatOf<'a> {
    #[serde(borrow, rename = "keyRemoteJid")]
    jid: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, rename = "keyLid")]
    lid: Option<std::borrow::Cow<'a, str>>,
}

impl<'a> ChatOf<'a> {
    /// The fields of `data` (none when it is not an object of strings there).
    fn read(data: impl serde::Deserializer<'a>) -> ChatOf<'a> {
        serde::Deserialize::deserialize(data).unwrap_or_default()
    }

    /// The chat, as [`MessageLike::chat`](eventsock_core::MessageLike::chat) reads it:
    /// `keyRemoteJid`, else `keyLid`.
    fn chat(&self) -> Option<&str> {
        [self.jid.as_deref(), self.lid.as_deref()]
            .into_iter()
            .flatten()
            .find(|c| !c.is_empty())
    }

    /// The chat's identity (see [`eventsock_core::identity`]), learning the pair when the
    /// message carries both ids: what a chat is partitioned by, so that a person's messages
    /// by phone number and by LID land in one partition, in order.
    fn identity(
        &self,
        identities: &eventsock_core::Identities,
    ) -> Option<std::borrow::Cow<'_, str>> {
        if let Some((phone, lid)) =
            eventsock_core::identity::pair(self.jid.as_deref(), self.lid.as_deref())
        {
            identities.learn(phone, lid);
        }
        Some(identities.identity(self.chat()?))
    }
}

/// Registered as a frame handler (`RouterBuilder::raw` with a `Recipient<RawFrame>`, as `eventsock bridge`
/// does), the ingest publishes each payload's text as the server wrote it, without parsing it
/// into a value.
impl Handler<RawFrame> for Ingest {
    // Atomic: one event at a time, in order, each handed to the publisher before the next.
    type Result = AtomicResponse<Self, ()>;

    fn handle(&mut self, f: RawFrame, _: &mut Context<Self>) -> Self::Result {
        let mut payload = Vec::with_capacity(f.data.get().len() + 160);
        // Writing to a Vec fails only on a serialiser bug; the record is then empty, and the
        // worker reports it as not JSON.
        let _ = Recorded::write_frame(&f, &mut payload);
        let keys = self
            .partitioned
            .then(|| ChatOf::read(&mut serde_json::Deserializer::from_str(f.data.get())));
        let chat = keys.as_ref().and_then(|k| k.identity(&self.identities));
        self.hand_over(&f.meta, chat.as_deref(), payload)
    }
}

/// Waits until every event handed to an ingest so far is acknowledged by JetStream.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct FlushIngest;

impl Handler<FlushIngest> for Ingest {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: FlushIngest, _: &mut Context<Self>) -> Self::Result {
        let publisher = self.publisher.clone();
        Box::pin(async move {
            let (tx, rx) = oneshot::channel();
            if publisher.send(Command::Flush(tx)).await.is_ok() {
                let _ = rx.await;
            }
        })
    }
}

/// Asks an ingest for its counts.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "IngestStats")]
pub struct GetIngestStats;

impl Handler<GetIngestStats> for Ingest {
    type Result = MessageResult<GetIngestStats>;

    fn handle(&mut self, _: GetIngestStats, _: &mut Context<Self>) -> Self::Result {
        MessageResult(IngestStats {
            published: self.counters.published.load(Ordering::Relaxed),
            retries: self.counters.retries.load(Ordering::Relaxed),
        })
    }
}
