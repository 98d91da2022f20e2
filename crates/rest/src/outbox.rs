//! [`Outbox`]: the one way out for an instance's messages. It paces them (a rate over all chats
//! and a minimum interval per chat, with jitter), keeps each chat's messages in order, shows
//! "typing" before a message when asked, and retries a failed send without ever sending it twice.
//!
//! # Never twice
//!
//! A send is not idempotent, so the outbox only sends a message again when it can tell that the
//! first attempt did not arrive:
//!
//! - **Refused** (a 4xx, a 429 included): the server did nothing; a 429 pauses every send of
//!   the outbox for the server's `Retry-After`, then the message goes again. Other refusals fail
//!   the message at once: sending it again would be refused again.
//! - **In doubt** (a 5xx, a timeout, a lost connection, an answer cut short): the message may
//!   have gone out. Every message carries its own WhatsApp id (the server's
//!   `options.messageId`), so after a backoff the outbox looks it up
//!   (`POST /chat/findMessages` with `{"keyId": id}`). Found: it was sent, once, and that is
//!   the outcome. Not found, on a server that keeps what it sends (learnt from its answers, or
//!   from the sent messages it has stored): it did not arrive, and it is sent again. When the
//!   server keeps nothing, the lookup cannot tell, and the message fails as
//!   [`OutboxError::InDoubt`] rather than risk a second copy.
//!
//! The lookup cannot see a first attempt that the server is still working on when it asks (a
//! send it takes longer than the backoff to finish); give [`Pacing::backoff`] more time than
//! the server's slowest send.
//!
//! # Pacing
//!
//! A send starts only when the global rate allows it (a token bucket of [`Pacing::burst`]
//! messages, refilled at [`Pacing::rate`] per second) and when [`Pacing::per_chat`] has passed
//! since the chat's previous message was answered. Both intervals grow by a random share of up
//! to [`Pacing::jitter`], so the traffic does not tick like a machine. The oldest message whose
//! chat may send goes first. A [`Pacing::daily_cap`] holds messages back (they stay queued)
//! once that many were sent in the last 24 hours.

use crate::{MessageKey, Quote, RestClient, RestError, SendText};
use futures_util::stream::{FuturesUnordered, StreamExt};
use serde_json::{json, Value};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore, TryAcquireError};
use tokio::time::Instant;

/// How an [`Outbox`] paces, queues and retries. The defaults are cautious, for a number that
/// must not be banned: 1 message per second over all chats, one per chat every 2 seconds, 25%
/// jitter, no typing, 10,000 messages queued (callers wait for room beyond), 8 retries.
#[derive(Debug, Clone)]
pub struct Pacing {
    rate: f64,
    burst: u32,
    per_chat: Duration,
    jitter: f64,
    typing: Option<Typing>,
    capacity: usize,
    when_full: WhenFull,
    retries: u32,
    backoff: Duration,
    max_pause: Duration,
    daily_cap: Option<u32>,
}

impl Default for Pacing {
    fn default() -> Self {
        Pacing {
            rate: 1.0,
            burst: 1,
            per_chat: Duration::from_secs(2),
            jitter: 0.25,
            typing: None,
            capacity: 10_000,
            when_full: WhenFull::Wait,
            retries: 8,
            backoff: Duration::from_secs(2),
            max_pause: Duration::from_secs(600),
            daily_cap: None,
        }
    }
}

/// What [`Outbox::post`] does when the outbox holds [`Pacing::capacity`] messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WhenFull {
    /// The caller waits until there is room (back-pressure).
    #[default]
    Wait,
    /// The caller gets [`OutboxError::Full`] at once, and nothing is queued.
    Fail,
}

/// "Typing…" shown before a message, for a time that grows with its length: `per_char` per
/// character, at least `min` and at most `max` (by default 30 ms, 0.5 s and 5 s). The server
/// plays it (its `options.delay`), so the send takes that much longer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Typing {
    /// Time per character of the text.
    pub per_char: Duration,
    /// The shortest typing.
    pub min: Duration,
    /// The longest typing.
    pub max: Duration,
}

impl Default for Typing {
    fn default() -> Self {
        Typing {
            per_char: Duration::from_millis(30),
            min: Duration::from_millis(500),
            max: Duration::from_secs(5),
        }
    }
}

impl Typing {
    /// How long to type `text`.
    pub fn for_text(&self, text: &str) -> Duration {
        let chars = u32::try_from(text.chars().count()).unwrap_or(u32::MAX);
        self.per_char
            .saturating_mul(chars)
            .clamp(self.min, self.max.max(self.min))
    }
}

impl Pacing {
    /// Messages per second over all chats, from one a day to 1,000 (a rate that is not a
    /// positive number is taken as 1).
    pub fn rate(mut self, per_second: f64) -> Self {
        self.rate = if per_second.is_finite() && per_second > 0.0 {
            per_second.clamp(1.0 / DAY.as_secs_f64(), 1000.0)
        } else {
            1.0
        };
        self
    }

    /// How many messages may go back to back before the rate applies (1: none).
    pub fn burst(mut self, messages: u32) -> Self {
        self.burst = messages.max(1);
        self
    }

    /// The shortest time between the answer to one message of a chat and the next message to
    /// that chat (at most a day).
    pub fn per_chat(mut self, interval: Duration) -> Self {
        self.per_chat = interval.min(DAY);
        self
    }

    /// The largest random share (0 to 1) added to each interval (0.25).
    pub fn jitter(mut self, share: f64) -> Self {
        self.jitter = if share.is_finite() {
            share.clamp(0.0, 1.0)
        } else {
            0.0
        };
        self
    }

    /// Shows "typing…" before each message (none by default).
    pub fn typing(mut self, typing: Option<Typing>) -> Self {
        self.typing = typing;
        self
    }

    /// How many messages may wait, in flight included (10,000; at least 1).
    pub fn capacity(mut self, messages: usize) -> Self {
        self.capacity = messages.clamp(1, Semaphore::MAX_PERMITS);
        self
    }

    /// What a caller meets when the outbox is full.
    pub fn when_full(mut self, policy: WhenFull) -> Self {
        self.when_full = policy;
        self
    }

    /// How many times a message is tried again (resent or looked up) before it fails (8).
    pub fn retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    /// The first wait after a failed attempt (2 s), doubled after each further failure, up to a
    /// minute (at most a day). Also the wait before looking up a message whose answer was lost;
    /// after a timeout, that wait is at least the REST client's timeout, so that a send the
    /// server is still working on has time to finish.
    pub fn backoff(mut self, first: Duration) -> Self {
        self.backoff = first.min(DAY);
        self
    }

    /// The longest pause a server's `Retry-After` may impose (10 minutes; at most a day).
    pub fn max_pause(mut self, pause: Duration) -> Self {
        self.max_pause = pause.min(DAY);
        self
    }

    /// At most `messages` sends in any 24 hours, for a new number warming up; later messages
    /// stay queued until the window moves on.
    pub fn daily_cap(mut self, messages: Option<u32>) -> Self {
        self.daily_cap = messages.map(|m| m.max(1));
        self
    }

    /// The messages per second over all chats.
    pub fn rate_per_second(&self) -> f64 {
        self.rate
    }

    /// The interval between two messages to one chat.
    pub fn per_chat_interval(&self) -> Duration {
        self.per_chat
    }

    fn interval(&self) -> Duration {
        Duration::from_secs_f64(1.0 / self.rate)
    }

    fn jittered(&self, base: Duration) -> Duration {
        base.mul_f64(1.0 + self.jitter * fastrand::f64())
    }

    fn backoff_after(&self, failures: u32) -> Duration {
        eventsock_core::Backoff::exponential(self.backoff, Duration::from_secs(60))
            .jitter(0.0)
            .delay(failures.max(1))
    }
}

/// A message for an [`Outbox`]: a text to a chat with its own WhatsApp id, or a reaction or a
/// read receipt for a message of the chat ([`Action`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Outgoing {
    /// The chat: a JID or a phone number.
    pub to: String,
    /// The text (for a reaction, its emoji; empty removes it).
    pub text: String,
    /// What it asks the server for: a text message unless said otherwise.
    #[serde(default, skip_serializing_if = "Action::is_text")]
    pub action: Action,
    /// The message to quote.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quote: Option<Quote>,
    /// The message's WhatsApp id, sent as the server's `options.messageId`: the same on every
    /// attempt, so that the message can be looked up after an answer was lost. (A reaction or a
    /// read receipt is not given an id by the server's API: the outbox knows it by this one.)
    pub id: String,
}

/// What an [`Outgoing`] asks the server for. A text is sent with its own id and looked up when
/// its answer is lost, so that it is never sent twice; a reaction or a read receipt, which the
/// server takes without an id, is tried again instead (setting the same reaction twice, or
/// marking a message read twice, changes nothing).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Action {
    /// A text message (`POST /message/sendText`): paced, with typing when asked.
    #[default]
    Text,
    /// A reaction to the message `key` with the emoji in [`Outgoing::text`]
    /// (`POST /message/sendReaction`): paced like a text, with no typing.
    Reaction {
        /// The message reacted to.
        key: MessageKey,
    },
    /// A read receipt for the message `key` (`PUT /chat/markMessageAsRead`): in the chat's
    /// order, but neither paced nor counted against the daily cap (it sends nothing to anyone).
    Read {
        /// The message marked read.
        key: MessageKey,
    },
}

impl Action {
    /// Whether it is a text message.
    pub fn is_text(&self) -> bool {
        matches!(self, Action::Text)
    }

    /// Whether it is paced: takes a turn of the rate, waits its chat's interval after it, and
    /// counts against the daily cap.
    fn is_paced(&self) -> bool {
        !matches!(self, Action::Read { .. })
    }
}

impl Outgoing {
    /// A text to `to`, with a new id.
    pub fn text(to: impl Into<String>, text: impl Into<String>) -> Outgoing {
        Outgoing {
            to: to.into(),
            text: text.into(),
            action: Action::Text,
            quote: None,
            id: new_message_id(),
        }
    }

    /// A reaction with `emoji` (empty removes it) to the message `key`, in its chat.
    pub fn reaction(key: MessageKey, emoji: impl Into<String>) -> Outgoing {
        Outgoing {
            to: key.remote_jid.clone(),
            text: emoji.into(),
            action: Action::Reaction { key },
            quote: None,
            id: new_message_id(),
        }
    }

    /// A read receipt for the message `key`, in its chat.
    pub fn read(key: MessageKey) -> Outgoing {
        Outgoing {
            to: key.remote_jid.clone(),
            text: String::new(),
            action: Action::Read { key },
            quote: None,
            id: new_message_id(),
        }
    }

    /// The same message, quoting `quote` (a received message's
    /// [`quote`](eventsock_core::MessageLike::quote), or a saved message's row id). A quote the
    /// server refuses (a row it cannot find, or a server that keeps no rows) is dropped, and
    /// the message sent unquoted.
    pub fn quoting(mut self, quote: impl Into<Quote>) -> Outgoing {
        self.quote = Some(quote.into());
        self
    }

    /// The same message with the id `id` (which must be unique: a message whose id was sent
    /// before counts as sent).
    pub fn with_id(mut self, id: impl Into<String>) -> Outgoing {
        self.id = id.into();
        self
    }
}

/// A new WhatsApp message id, in the form WhatsApp Web uses: `3EB0` and 20 hex digits.
pub fn new_message_id() -> String {
    format!("3EB0{:016X}{:04X}", fastrand::u64(..), fastrand::u16(..))
}

/// A message id derived from `seed` and `n`, in the same form as [`new_message_id`]: the same
/// inputs give the same id, in any process (FNV-1a, not the standard library's hasher, whose
/// output may change between Rust versions).
pub fn derived_message_id(seed: &str, n: u32) -> String {
    let (a, b) = (
        fnv(seed, n, eventsock_core::FNV_BASIS),
        fnv(seed, n, 0x8422_2325_cbf2_9ce4),
    );
    format!("3EB0{a:016X}{:04X}", b & 0xffff)
}

/// How a message left.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Outcome {
    /// The server took it.
    Sent {
        /// Its WhatsApp id.
        id: String,
        /// The server's answer: the sent message.
        answer: Value,
        /// Sends made (1 unless an earlier one was refused or provably lost).
        attempts: u32,
    },
    /// An answer was lost, and the message was then found on the server: sent, once.
    Found {
        /// Its WhatsApp id.
        id: String,
        /// Sends made.
        attempts: u32,
    },
    /// Queued durably, for another process to send (a JetStream outbox).
    Queued {
        /// Its WhatsApp id.
        id: String,
    },
}

impl Outcome {
    /// The message's WhatsApp id.
    pub fn id(&self) -> &str {
        match self {
            Outcome::Sent { id, .. } | Outcome::Found { id, .. } | Outcome::Queued { id } => id,
        }
    }
}

/// Why a message was not sent (or may not have been).
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum OutboxError {
    /// The outbox holds its capacity and its policy is [`WhenFull::Fail`]: nothing was queued.
    #[error("the outbox is full ({capacity} messages waiting): nothing was queued; send slower, or raise the capacity")]
    Full {
        /// The capacity.
        capacity: usize,
    },
    /// The message could not be queued (a durable queue refused it): it was not sent.
    #[error("could not queue the message, so it was not sent: {0}")]
    Unqueued(String),
    /// The outbox stopped before the message was sent: it was not sent.
    #[error("the outbox stopped before the message was sent: it was not sent")]
    Stopped,
    /// The outbox stopped while the message was in doubt (an attempt may have reached the
    /// server, and it had not been looked up yet): it may or may not have been sent.
    #[error("the outbox stopped while the message was in doubt: it may or may not have been sent; look it up before sending it again")]
    StoppedInDoubt,
    /// The id was already used by a different message: nothing was queued.
    #[error("the id {0} is already used by another message: nothing was queued")]
    IdTaken(String),
    /// The server refused the message (a 4xx other than 429): it was not sent, and sending it
    /// again would be refused again.
    #[error("refused: {0}")]
    Refused(RestError),
    /// Every attempt failed in a way that proves nothing was sent, and the retries ran out.
    #[error("not sent after {attempts} attempts; the last error: {last}")]
    GaveUp {
        /// Attempts made (sends and lookups).
        attempts: u32,
        /// The last failure.
        last: RestError,
    },
    /// An attempt may have reached the server, and the outbox could not find out whether it
    /// did (the server keeps no sent messages, or the lookups failed): it was not tried again,
    /// so that it is never sent twice. Check the chat.
    #[error("may or may not have been sent ({last}), and the server could not say: not tried again, so that it is never sent twice")]
    InDoubt {
        /// The failure that left it in doubt.
        last: RestError,
    },
}

/// An [`Outbox`]'s counters, from [`Outbox::stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct OutboxStats {
    /// Messages waiting or in flight now.
    pub queued: u64,
    /// Messages sent (found on the server after a lost answer included).
    pub sent: u64,
    /// Of those, messages found on the server after an answer was lost.
    pub found: u64,
    /// Attempts after the first: sends again and lookups.
    pub retried: u64,
    /// Messages that failed ([`OutboxError`]), in doubt included.
    pub failed: u64,
    /// Messages that failed in doubt ([`OutboxError::InDoubt`]).
    pub in_doubt: u64,
    /// Sends that may or may not have arrived (a 5xx, a timeout, a lost connection), each
    /// then looked up.
    pub doubts: u64,
}

#[derive(Debug, Default)]
struct Counters {
    queued: AtomicU64,
    sent: AtomicU64,
    found: AtomicU64,
    retried: AtomicU64,
    failed: AtomicU64,
    in_doubt: AtomicU64,
    doubts: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

type Answer = oneshot::Sender<Result<Outcome, OutboxError>>;

/// The outcome of a message given to [`Outbox::post`]: await it for the [`Outcome`], or drop it
/// (the message is sent all the same).
#[derive(Debug)]
pub struct Receipt {
    id: String,
    answer: Option<oneshot::Receiver<Result<Outcome, OutboxError>>>,
}

impl Receipt {
    /// The message's WhatsApp id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// A receipt that is already settled.
    pub fn settled(id: String, outcome: Result<Outcome, OutboxError>) -> Receipt {
        let (tx, rx) = oneshot::channel();
        let _ = tx.send(outcome);
        Receipt {
            id,
            answer: Some(rx),
        }
    }
}

impl Future for Receipt {
    type Output = Result<Outcome, OutboxError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(answer) = self.answer.as_mut() else {
            return Poll::Ready(Err(OutboxError::Stopped));
        };
        match Pin::new(answer).poll(cx) {
            Poll::Ready(outcome) => {
                self.answer = None;
                Poll::Ready(outcome.unwrap_or(Err(OutboxError::Stopped)))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Where a handler's messages go: an [`Outbox`] in this process, or a durable queue that another
/// process drains through its own outbox (the NATS crate's JetStream outbox).
pub trait Postbox: Send + Sync + 'static {
    /// Queues `message`, to be sent from `instance`'s number.
    fn post<'a>(
        &'a self,
        instance: &'a str,
        message: Outgoing,
    ) -> Pin<Box<dyn Future<Output = Result<Receipt, OutboxError>> + 'a>>;
}

impl Postbox for Outbox {
    /// Queues `message` here; refused (nothing queued) for another instance than the one
    /// this outbox sends for, which would send it from the wrong number.
    fn post<'a>(
        &'a self,
        instance: &'a str,
        message: Outgoing,
    ) -> Pin<Box<dyn Future<Output = Result<Receipt, OutboxError>> + 'a>> {
        Box::pin(async move {
            if instance != &*self.instance {
                return Err(OutboxError::Refused(RestError::Unavailable(format!(
                    "this outbox sends for instance {}, not {}",
                    eventsock_core::human::escaped(&self.instance),
                    eventsock_core::human::escaped(instance)
                ))));
            }
            Outbox::post(self, message).await
        })
    }
}

enum Command {
    Post(Box<Job>),
    Flush(oneshot::Sender<()>),
    Stop(oneshot::Sender<usize>),
}

/// The outbox of one instance: every message goes through it, paced and in order per chat
/// (see the [module](self) for what it guarantees). Cheap to clone: clones share one queue. When
/// the last clone is dropped, what is queued is still sent; [`Outbox::stop`] drops it instead.
#[derive(Clone)]
pub struct Outbox {
    commands: mpsc::UnboundedSender<Command>,
    room: Arc<Semaphore>,
    counters: Arc<Counters>,
    pacing: Arc<Pacing>,
    instance: Arc<str>,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("instance", &self.instance)
            .field("pacing", &self.pacing)
            .field("stats", &self.stats())
            .finish()
    }
}

impl Outbox {
    /// An outbox sending through `rest`, paced by `pacing`. Its task runs on the current
    /// actix (or tokio local) runtime.
    ///
    /// # Panics
    ///
    /// Outside an actix system or a tokio `LocalSet`.
    pub fn new(rest: RestClient, pacing: Pacing) -> Outbox {
        let (commands, inbox) = mpsc::unbounded_channel();
        let pacing = Arc::new(pacing);
        let room = Arc::new(Semaphore::new(pacing.capacity));
        let counters = Arc::new(Counters::default());
        let instance: Arc<str> = rest.instance().into();
        let engine = Engine {
            rest,
            pacing: pacing.clone(),
            counters: counters.clone(),
            room: room.clone(),
            chats: HashMap::new(),
            ready: BinaryHeap::new(),
            tat: Instant::now(),
            paused_until: None,
            day: VecDeque::new(),
            capped: false,
            saves: None,
            said_unquoted: false,
            running: FuturesUnordered::new(),
            flushes: Vec::new(),
            stopping: false,
            ids: HashMap::new(),
            recent: eventsock_core::Recent::new(RECENT),
            posts: 0,
        };
        actix_rt::spawn(engine.run(inbox));
        Outbox {
            commands,
            room,
            counters,
            pacing,
            instance,
        }
    }

    /// The instance it sends for.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// How it paces.
    pub fn pacing(&self) -> &Pacing {
        &self.pacing
    }

    /// Queues a message; waits for room when the outbox is full (or fails, as
    /// [`Pacing::when_full`] says). The [`Receipt`] tells how it went.
    pub async fn post(&self, message: Outgoing) -> Result<Receipt, OutboxError> {
        self.enqueue(message, None).await
    }

    async fn enqueue(
        &self,
        message: Outgoing,
        doubt: Option<RestError>,
    ) -> Result<Receipt, OutboxError> {
        if message.to.trim().is_empty() {
            return Err(OutboxError::Refused(RestError::NoRecipient));
        }
        let permit = match self.pacing.when_full {
            WhenFull::Wait => self.room.clone().acquire_owned().await.ok(),
            WhenFull::Fail => match self.room.clone().try_acquire_owned() {
                Ok(p) => Some(p),
                Err(TryAcquireError::NoPermits) => {
                    return Err(OutboxError::Full {
                        capacity: self.pacing.capacity,
                    })
                }
                Err(TryAcquireError::Closed) => None,
            },
        }
        .ok_or(OutboxError::Stopped)?;
        let (tx, rx) = oneshot::channel();
        let id = message.id.clone();
        let job = Job {
            message,
            seq: 0,
            sends: 0,
            failures: 0,
            doubt,
            last: None,
            answers: vec![tx],
            in_flight: false,
            unquoted: false,
            _permit: permit,
        };
        self.commands
            .send(Command::Post(Box::new(job)))
            .map_err(|_| OutboxError::Stopped)?;
        Ok(Receipt {
            id,
            answer: Some(rx),
        })
    }

    /// Queues a message that may have been sent already (a redelivery from a durable queue,
    /// after the process that held it stopped): it is looked up first, and sent only when the
    /// server, keeping what it sends, does not have it.
    pub async fn post_unsure(&self, message: Outgoing) -> Result<Receipt, OutboxError> {
        self.enqueue(
            message,
            Some(RestError::Unavailable(
                "it may have been sent by a process that stopped before saying so".into(),
            )),
        )
        .await
    }

    /// Queues a message and waits until it has been sent (or has failed).
    pub async fn send(&self, message: Outgoing) -> Result<Outcome, OutboxError> {
        self.post(message).await?.await
    }

    /// Waits until nothing is queued or in flight. `Err(Stopped)` when the outbox's task has
    /// ended (stopped, or its runtime is gone) with messages it never settled.
    pub async fn flush(&self) -> Result<(), OutboxError> {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Flush(tx)).is_ok() && rx.await.is_ok() {
            return Ok(());
        }
        if self.stats().queued == 0 {
            Ok(())
        } else {
            Err(OutboxError::Stopped)
        }
    }

    /// Whether its task still runs.
    pub fn is_running(&self) -> bool {
        !self.commands.is_closed()
    }

    /// Stops: messages not yet sent fail with [`OutboxError::Stopped`] (sends in flight are
    /// let finish). Returns how many were dropped.
    pub async fn stop(&self) -> usize {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Stop(tx)).is_err() {
            return 0;
        }
        rx.await.unwrap_or(0)
    }

    /// Its counters.
    pub fn stats(&self) -> OutboxStats {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        OutboxStats {
            queued: get(&c.queued),
            sent: get(&c.sent),
            found: get(&c.found),
            retried: get(&c.retried),
            failed: get(&c.failed),
            in_doubt: get(&c.in_doubt),
            doubts: get(&c.doubts),
        }
    }
}

struct Job {
    message: Outgoing,
    /// Arrival order, over all chats.
    seq: u64,
    sends: u32,
    failures: u32,
    /// The failure that left it in doubt: it is looked up before it may be sent again.
    doubt: Option<RestError>,
    /// The last failure that proved nothing was sent.
    last: Option<RestError>,
    /// Who waits for it (more than one when the same id was posted again).
    answers: Vec<Answer>,
    /// An attempt of it is under way.
    in_flight: bool,
    /// The server refused its quote: it goes without.
    unquoted: bool,
    _permit: OwnedSemaphorePermit,
}

impl Job {
    /// What a job that ends without an outcome (stopped) tells its callers.
    fn stopped(&self) -> OutboxError {
        if self.doubt.is_some() {
            OutboxError::StoppedInDoubt
        } else {
            OutboxError::Stopped
        }
    }
}

impl Drop for Job {
    /// A job dropped unanswered (its engine died mid-send): its callers hear so, and whether
    /// it may have been sent.
    fn drop(&mut self) {
        if self.answers.is_empty() {
            return;
        }
        let error = if self.doubt.is_some() || self.in_flight {
            OutboxError::StoppedInDoubt
        } else {
            OutboxError::Stopped
        };
        for answer in self.answers.drain(..) {
            let _ = answer.send(Err(error.clone()));
        }
    }
}

#[derive(Default)]
struct Chat {
    queue: VecDeque<Job>,
    /// An attempt of its head is in flight.
    busy: bool,
    /// In `ready`.
    listed: bool,
    /// No attempt before this.
    next_at: Option<Instant>,
}

/// What an attempt found.
enum Attempt {
    Send(Result<Value, RestError>),
    Lookup(Result<Looked, RestError>),
}

/// What looking a message up found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Looked {
    /// It is on the server: it was sent.
    Found,
    /// It is not, on a server that keeps what it sends: it was not sent.
    Absent,
    /// It is not, on a server that keeps nothing: whether it was sent cannot be told.
    Unknowable,
}

struct Done {
    chat: Arc<str>,
    attempt: Attempt,
}

struct Engine {
    rest: RestClient,
    pacing: Arc<Pacing>,
    counters: Arc<Counters>,
    room: Arc<Semaphore>,
    chats: HashMap<Arc<str>, Chat>,
    /// Idle chats with messages: (earliest attempt, their head's seq, chat).
    ready: BinaryHeap<Reverse<(Instant, u64, Arc<str>)>>,
    /// The token bucket's theoretical arrival time.
    tat: Instant,
    paused_until: Option<Instant>,
    /// Send times in the last 24 hours, with a daily cap.
    day: VecDeque<Instant>,
    /// The daily cap was met (said once).
    capped: bool,
    /// A quote was refused and its message sent unquoted (said once).
    said_unquoted: bool,
    /// Whether the server keeps the messages it sends (learnt from its answers).
    saves: Option<bool>,
    running: FuturesUnordered<Pin<Box<dyn Future<Output = Done>>>>,
    flushes: Vec<oneshot::Sender<()>>,
    /// Stopped: nothing more is started.
    stopping: bool,
    /// The chat of every queued message, by id.
    ids: HashMap<String, Arc<str>>,
    /// The ids of the last [`RECENT`] messages sent (`true`) or left in doubt, with a
    /// fingerprint of what they said.
    recent: eventsock_core::Recent<(u64, bool)>,
    /// Posts so far, to prune idle chats now and then.
    posts: u64,
}

/// How many sent ids an outbox remembers, to never send the same id twice.
const RECENT: usize = 10_000;

/// A fingerprint of what a message says (chat, text, quote), to tell another message that
/// reuses an id.
fn fingerprint_of(message: &Outgoing) -> u64 {
    let mut seed = String::with_capacity(message.to.len() + message.text.len() + 2);
    let quote = match &message.quote {
        Some(Quote::Row(row)) => row.to_string(),
        Some(Quote::Message(quoted)) => quoted.key_id.clone(),
        None => String::new(),
    };
    for part in [&message.to, &message.text, &quote] {
        seed.push_str(part);
        seed.push('\u{0}');
    }
    fnv(&seed, 0, eventsock_core::FNV_BASIS)
}

/// FNV-1a over `seed` and `n`, from `basis`: the same in every process and Rust version.
fn fnv(seed: &str, n: u32, basis: u64) -> u64 {
    eventsock_core::fnv1a(basis, seed.bytes().chain(n.to_le_bytes()))
}

/// `at + by`, or as late as can be.
fn later(at: Instant, by: Duration) -> Instant {
    at.checked_add(by)
        .unwrap_or_else(|| at + Duration::from_secs(100 * 365 * 24 * 3600))
}

const DAY: Duration = Duration::from_secs(24 * 3600);

impl Engine {
    async fn run(mut self, mut inbox: mpsc::UnboundedReceiver<Command>) {
        let mut open = true;
        let mut seq = 0u64;
        loop {
            self.start_due();
            if self.idle() {
                for flush in self.flushes.drain(..) {
                    let _ = flush.send(());
                }
                if !open {
                    break;
                }
            }
            let wake = self.next_wake();
            tokio::select! {
                command = inbox.recv(), if open => match command {
                    None => open = false,
                    Some(Command::Post(mut job)) => {
                        seq += 1;
                        job.seq = seq;
                        self.post(*job);
                    }
                    Some(Command::Flush(tx)) => self.flushes.push(tx),
                    Some(Command::Stop(tx)) => {
                        open = false;
                        self.stopping = true;
                        self.room.close();
                        inbox.close();
                        // Posts already on their way are dropped with the rest.
                        while let Ok(command) = inbox.try_recv() {
                            match command {
                                Command::Post(job) => self.refuse(*job),
                                Command::Flush(tx) => self.flushes.push(tx),
                                Command::Stop(again) => { let _ = again.send(0); }
                            }
                        }
                        let dropped = self.drop_queued();
                        let _ = tx.send(dropped);
                    }
                },
                Some(done) = self.running.next(), if !self.running.is_empty() => self.finish(done),
                () = sleep_until(wake), if wake.is_some() => {}
            }
        }
        self.room.close();
    }

    fn idle(&self) -> bool {
        self.running.is_empty() && self.chats.values().all(|c| c.queue.is_empty())
    }

    fn post(&mut self, mut job: Job) {
        // The same id again (a redelivery): one send answers both; the same id on another
        // message is refused.
        if let Some(queued) = self
            .ids
            .get(&job.message.id)
            .and_then(|chat| self.chats.get_mut(chat))
            .and_then(|chat| {
                chat.queue
                    .iter_mut()
                    .find(|q| q.message.id == job.message.id)
            })
        {
            if queued.message == job.message {
                queued.answers.append(&mut job.answers);
            } else {
                for answer in job.answers.drain(..) {
                    let _ = answer.send(Err(OutboxError::IdTaken(job.message.id.clone())));
                }
            }
            return;
        }
        // Settled already (and remembered): a sent one is not sent again, one left in doubt is
        // looked up first, and the id on another message is refused.
        if let Some(&(fingerprint, sent)) = self.recent.get(&job.message.id) {
            let outcome = if fingerprint != fingerprint_of(&job.message) {
                Some(Err(OutboxError::IdTaken(job.message.id.clone())))
            } else if sent {
                Some(Ok(Outcome::Found {
                    id: job.message.id.clone(),
                    attempts: 0,
                }))
            } else {
                job.doubt.get_or_insert(RestError::Unavailable(
                    "an earlier attempt with this id was left in doubt".into(),
                ));
                None
            };
            if let Some(outcome) = outcome {
                for answer in job.answers.drain(..) {
                    let _ = answer.send(outcome.clone());
                }
                return;
            }
        }
        self.prune_idle();
        bump(&self.counters.queued);
        let chat: Arc<str> = job.message.to.as_str().into();
        self.ids.insert(job.message.id.clone(), chat.clone());
        let entry = self.chats.entry(chat.clone()).or_default();
        entry.queue.push_back(job);
        self.list(&chat);
    }

    /// Puts `chat` in `ready` if it is idle and has a message.
    fn list(&mut self, chat: &Arc<str>) {
        let Some(entry) = self.chats.get_mut(chat) else {
            return;
        };
        if entry.busy || entry.listed {
            return;
        }
        let Some(head) = entry.queue.front() else {
            // Idle: kept while its interval runs, so a message queued meanwhile still waits.
            if entry.next_at.is_none_or(|at| at <= Instant::now()) {
                self.chats.remove(chat);
            }
            return;
        };
        let at = entry.next_at.unwrap_or_else(Instant::now);
        entry.listed = true;
        self.ready.push(Reverse((at, head.seq, chat.clone())));
    }

    /// When a send may start, as far as the rate, a pause and the daily cap go.
    fn gate(&self) -> Instant {
        let burst = self
            .pacing
            .interval()
            .saturating_mul(self.pacing.burst.saturating_sub(1));
        let mut open = self.tat.checked_sub(burst).unwrap_or(self.tat);
        if let Some(p) = self.paused_until {
            open = open.max(p);
        }
        if let Some(cap) = self.pacing.daily_cap {
            if self.day.len() >= cap as usize {
                if let Some(oldest) = self.day.front() {
                    open = open.max(later(*oldest, DAY));
                }
            }
        }
        open
    }

    fn next_wake(&self) -> Option<Instant> {
        let Reverse((at, _, chat)) = self.ready.peek()?;
        let lookup = self
            .chats
            .get(chat)
            .and_then(|c| c.queue.front())
            .is_some_and(|j| j.doubt.is_some());
        Some(if lookup { *at } else { (*at).max(self.gate()) })
    }

    /// Starts every attempt that is due.
    fn start_due(&mut self) {
        while !self.stopping {
            let now = Instant::now();
            let Some(Reverse((at, _, chat))) = self.ready.peek() else {
                return;
            };
            if *at > now {
                return;
            }
            let chat = chat.clone();
            let lookup = self
                .chats
                .get(&chat)
                .and_then(|c| c.queue.front())
                .is_some_and(|j| j.doubt.is_some());
            if !lookup {
                while self.day.front().is_some_and(|t| later(*t, DAY) <= now) {
                    self.day.pop_front();
                }
                let gate = self.gate();
                if gate > now {
                    self.say_capped(now);
                    return;
                }
            }
            self.ready.pop();
            let Some(entry) = self.chats.get_mut(&chat) else {
                continue;
            };
            entry.listed = false;
            let Some(job) = entry.queue.front_mut() else {
                self.chats.remove(&chat);
                continue;
            };
            entry.busy = true;
            job.in_flight = true;
            let rest = self.rest.clone();
            let id = job.message.id.clone();
            if lookup {
                bump(&self.counters.retried);
                let known = self.saves;
                self.running.push(Box::pin(async move {
                    let attempt = Attempt::Lookup(look_up(&rest, &id, known).await);
                    Done { chat, attempt }
                }));
                continue;
            }
            if job.message.action.is_paced() {
                // Take a token: the next send may start one (jittered) interval later.
                self.tat = later(
                    self.tat.max(now),
                    self.pacing.jittered(self.pacing.interval()),
                );
                if self.pacing.daily_cap.is_some() {
                    self.day.push_back(now);
                }
            }
            job.sends += 1;
            if job.sends > 1 {
                bump(&self.counters.retried);
            }
            let call: Pin<Box<dyn Future<Output = Result<Value, RestError>>>> = match job
                .message
                .action
                .clone()
            {
                Action::Text => {
                    let send = SendText {
                        number: job.message.to.clone(),
                        text: job.message.text.clone(),
                        quote: job.message.quote.clone().filter(|_| !job.unquoted),
                        delay: self.pacing.typing.map(|t| {
                            u64::try_from(t.for_text(&job.message.text).as_millis()).unwrap_or(0)
                        }),
                        external_attributes: None,
                        message_id: Some(id),
                    };
                    Box::pin(async move { rest.send(send).await })
                }
                Action::Reaction { key } => {
                    let emoji = job.message.text.clone();
                    Box::pin(async move { rest.send_reaction(&key, &emoji).await })
                }
                Action::Read { key } => Box::pin(async move { rest.mark_as_read(&[key]).await }),
            };
            self.running.push(Box::pin(async move {
                let attempt = Attempt::Send(call.await);
                Done { chat, attempt }
            }));
        }
    }

    fn say_capped(&mut self, now: Instant) {
        let Some(cap) = self.pacing.daily_cap else {
            return;
        };
        if self.day.len() < cap as usize {
            self.capped = false;
            return;
        }
        if !self.capped {
            self.capped = true;
            let resumes = self
                .day
                .front()
                .map_or(DAY, |t| later(*t, DAY).saturating_duration_since(now));
            tracing::warn!(
                instance = %eventsock_core::human::escaped(self.rest.instance()),
                "daily cap of {cap} messages reached: the rest stay queued, and sending resumes in {}",
                eventsock_core::human::duration(resumes)
            );
        }
    }

    fn finish(&mut self, done: Done) {
        let now = Instant::now();
        let Some(entry) = self.chats.get_mut(&done.chat) else {
            return;
        };
        entry.busy = false;
        let Some(job) = entry.queue.front_mut() else {
            return;
        };
        job.in_flight = false;
        let pacing = &self.pacing;
        let timeout = self.rest.request_timeout();
        // Settled, or tried again after `again`.
        let mut again = Duration::ZERO;
        let mut settled: Option<Result<Outcome, OutboxError>> = match done.attempt {
            Attempt::Send(Ok(answer)) => {
                if answer.get("id").is_some_and(Value::is_number) {
                    self.saves = Some(true);
                }
                Some(Ok(Outcome::Sent {
                    id: job.message.id.clone(),
                    answer,
                    attempts: job.sends,
                }))
            }
            Attempt::Send(Err(RestError::RateLimited { retry_after, body })) => {
                job.failures += 1;
                let pause = retry_after
                    .unwrap_or_else(|| pacing.backoff_after(job.failures))
                    .min(pacing.max_pause);
                let until = later(now, pause);
                if self.paused_until.is_none_or(|p| p < until) {
                    tracing::warn!(
                        instance = %eventsock_core::human::escaped(self.rest.instance()),
                        "the server asked to slow down (429): pausing every send for {}",
                        eventsock_core::human::duration(pause)
                    );
                    self.paused_until = Some(until);
                }
                again = pacing.per_chat;
                job.last = Some(RestError::RateLimited { retry_after, body });
                None
            }
            Attempt::Send(Err(e)) if in_doubt(&e) && !job.message.action.is_text() => {
                // A reaction or a read receipt: doing it again changes nothing, so it is
                // tried again rather than looked up.
                job.failures += 1;
                again = pacing.backoff_after(job.failures);
                job.last = Some(e);
                None
            }
            Attempt::Send(Err(e)) if in_doubt(&e) => {
                job.failures += 1;
                again = pacing.backoff_after(job.failures);
                if matches!(e, RestError::Timeout(_)) {
                    // The server may still be working on it: give it that long again.
                    again = again.max(timeout);
                }
                tracing::info!(
                    chat = %eventsock_core::human::escaped(&job.message.to),
                    id = %job.message.id,
                    error = %e,
                    "a send may or may not have arrived: looking it up in {}",
                    eventsock_core::human::duration(again)
                );
                job.doubt = Some(e);
                bump(&self.counters.doubts);
                None
            }
            Attempt::Send(Err(RestError::Rejected { status, body }))
                if !job.unquoted && job.message.quote.is_some() && Quote::refused_in(&body) =>
            {
                // The server checks a quote before it sends anything: nothing went out, and
                // the message goes again at once, without the quote.
                job.unquoted = true;
                let e = RestError::Rejected { status, body };
                if std::mem::replace(&mut self.said_unquoted, true) {
                    tracing::debug!(id = %job.message.id, error = %e, "quote refused: sending unquoted");
                } else {
                    tracing::warn!(
                        instance = %eventsock_core::human::escaped(self.rest.instance()),
                        error = %e,
                        "the server cannot resolve a quote: the message is sent without it, as are later ones it refuses (said once)"
                    );
                }
                None
            }
            Attempt::Send(Err(e)) => Some(Err(OutboxError::Refused(e))),
            Attempt::Lookup(Ok(Looked::Found)) => {
                bump(&self.counters.found);
                Some(Ok(Outcome::Found {
                    id: job.message.id.clone(),
                    attempts: job.sends,
                }))
            }
            Attempt::Lookup(Ok(Looked::Absent)) => {
                // Not there, on a server that keeps what it sends: it did not arrive.
                self.saves = Some(true);
                job.last = job.doubt.take();
                None
            }
            Attempt::Lookup(Ok(Looked::Unknowable)) => Some(Err(OutboxError::InDoubt {
                last: job
                    .doubt
                    .take()
                    .unwrap_or(RestError::Unavailable("the answer was lost".into())),
            })),
            Attempt::Lookup(Err(e)) => {
                job.failures += 1;
                again = pacing.backoff_after(job.failures);
                tracing::debug!(id = %job.message.id, error = %e, "looking a message up failed");
                None
            }
        };
        if settled.is_none() && self.stopping {
            settled = Some(Err(job.stopped()));
        } else if settled.is_none() && job.failures > pacing.retries {
            settled = Some(Err(match (job.doubt.take(), job.last.take()) {
                (Some(last), _) => OutboxError::InDoubt { last },
                (None, Some(last)) => OutboxError::GaveUp {
                    attempts: job.sends,
                    last,
                },
                (None, None) => OutboxError::Stopped,
            }));
        }
        match settled {
            Some(outcome) => {
                let job = entry.queue.pop_front().expect("the head was just read");
                entry.next_at = Some(if job.message.action.is_paced() {
                    later(now, pacing.jittered(pacing.per_chat))
                } else {
                    now
                });
                self.settle(job, outcome);
            }
            None => entry.next_at = Some(later(now, again)),
        }
        self.list(&done.chat);
    }

    fn settle(&mut self, mut job: Job, outcome: Result<Outcome, OutboxError>) {
        self.counters.queued.fetch_sub(1, Ordering::Relaxed);
        self.ids.remove(&job.message.id);
        match &outcome {
            Ok(_) => {
                bump(&self.counters.sent);
                self.remember(&job.message, true);
            }
            Err(e) => {
                bump(&self.counters.failed);
                if matches!(e, OutboxError::InDoubt { .. }) {
                    bump(&self.counters.in_doubt);
                    self.remember(&job.message, false);
                }
                tracing::warn!(
                    chat = %eventsock_core::human::escaped(&job.message.to),
                    id = %job.message.id,
                    error = %e,
                    "a message was not sent"
                );
            }
        }
        for answer in job.answers.drain(..) {
            let _ = answer.send(outcome.clone());
        }
    }

    /// Remembers a settled message's id (`sent`, or left in doubt), so that the same id posted
    /// again is not sent again without a lookup.
    fn remember(&mut self, message: &Outgoing, sent: bool) {
        self.recent
            .insert(message.id.clone(), (fingerprint_of(message), sent));
    }

    /// Forgets idle chats whose interval has run out (every 1,024 posts).
    fn prune_idle(&mut self) {
        self.posts = self.posts.wrapping_add(1);
        if !self.posts.is_multiple_of(1024) {
            return;
        }
        let now = Instant::now();
        self.chats
            .retain(|_, c| !c.queue.is_empty() || c.busy || c.next_at.is_some_and(|at| at > now));
    }

    /// Fails every queued message that is not in flight; returns how many.
    fn drop_queued(&mut self) -> usize {
        let mut dropped = Vec::new();
        for entry in self.chats.values_mut() {
            // Oldest first, so that their callers (and a sender's naks) keep the chat's order;
            // a head in flight stays to finish.
            let keep = usize::from(entry.busy);
            dropped.extend(entry.queue.drain(keep..));
        }
        self.ready.clear();
        for entry in self.chats.values_mut() {
            entry.listed = false;
        }
        let n = dropped.len();
        for job in dropped {
            self.settle_quietly(job);
        }
        n
    }

    /// Fails a queued message at a stop.
    fn settle_quietly(&mut self, mut job: Job) {
        self.counters.queued.fetch_sub(1, Ordering::Relaxed);
        self.ids.remove(&job.message.id);
        bump(&self.counters.failed);
        let error = job.stopped();
        for answer in job.answers.drain(..) {
            let _ = answer.send(Err(error.clone()));
        }
    }

    /// Answers a post that arrived as the outbox stopped: never queued, not sent.
    fn refuse(&mut self, mut job: Job) {
        for answer in job.answers.drain(..) {
            let _ = answer.send(Err(OutboxError::Stopped));
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Whether a failed send may have reached the server.
fn in_doubt(error: &RestError) -> bool {
    matches!(
        error,
        RestError::Server { .. }
            | RestError::Timeout(_)
            | RestError::Connect(_)
            | RestError::Decode(_)
    )
}

/// Whether message `id` is on the server, which tells only on a server that keeps what it sends
/// (`known`: whether it does, when already learnt; otherwise it is asked whether it has any
/// message this instance sent).
async fn look_up(rest: &RestClient, id: &str, known: Option<bool>) -> Result<Looked, RestError> {
    let found = rest.find_messages_page(json!({"keyId": id}), 10, 1).await?;
    if found
        .records
        .iter()
        .any(|r| r.get("keyId").and_then(Value::as_str) == Some(id))
    {
        return Ok(Looked::Found);
    }
    let keeps = match known {
        Some(keeps) => keeps,
        None => {
            let mine = rest
                .find_messages_page(json!({"keyFromMe": true}), 1, 1)
                .await?;
            !mine.records.is_empty()
        }
    };
    Ok(if keeps {
        Looked::Absent
    } else {
        Looked::Unknowable
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typing_grows_with_the_text_within_bounds() {
        let t = Typing::default();
        assert_eq!(t.for_text(""), Duration::from_millis(500));
        assert_eq!(t.for_text(&"a".repeat(100)), Duration::from_secs(3));
        assert_eq!(t.for_text(&"a".repeat(10_000)), Duration::from_secs(5));
    }

    #[test]
    fn backoff_doubles_up_to_a_minute() {
        let p = Pacing::default().backoff(Duration::from_secs(1));
        assert_eq!(p.backoff_after(1), Duration::from_secs(1));
        assert_eq!(p.backoff_after(3), Duration::from_secs(4));
        assert_eq!(p.backoff_after(30), Duration::from_secs(60));
    }

    #[test]
    fn bad_settings_are_made_safe() {
        let p = Pacing::default()
            .rate(f64::NAN)
            .jitter(7.0)
            .burst(0)
            .capacity(0);
        assert_eq!(p.rate, 1.0);
        assert_eq!(p.jitter, 1.0);
        assert_eq!(p.burst, 1);
        assert_eq!(p.capacity, 1);
        assert_eq!(Pacing::default().rate(1e9).rate, 1000.0);
    }

    #[test]
    fn derived_ids_are_stable_and_differ_by_seed_and_order() {
        let a = derived_message_id("codechat\u{0}M1\u{0}h#0", 0);
        assert_eq!(a, derived_message_id("codechat\u{0}M1\u{0}h#0", 0));
        assert_ne!(a, derived_message_id("codechat\u{0}M1\u{0}h#0", 1));
        assert_ne!(a, derived_message_id("codechat\u{0}M1\u{0}h#1", 0));
        assert_eq!(a.len(), 24);
        assert!(a.starts_with("3EB0") && a.chars().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn message_ids_look_like_whatsapp_web_ids_and_differ() {
        let a = new_message_id();
        assert_eq!(a.len(), 24);
        assert!(a.starts_with("3EB0"));
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, new_message_id());
    }
}
