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

mod delivery;
mod engine;
mod lookup;
mod message;
mod pacing;
mod receipt;
mod retry;

pub use delivery::{Delivery, DeliveryError, DeliveryStats, FOLLOWED};
pub use message::{derived_message_id, new_message_id, Action, Outgoing};
pub use pacing::{Pacing, Typing, WhenFull};
pub use receipt::{OutboxError, OutboxStats, Outcome, Receipt};

use crate::{RestClient, RestError};
use engine::{Engine, Job, RECENT};
use futures_util::stream::FuturesUnordered;
use receipt::Counters;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, Semaphore, TryAcquireError};
use tokio::time::Instant;

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
        Outbox::with_identities(rest, pacing, Arc::default())
    }

    /// An outbox that keys each chat's pacing and order by its identity in `identities`
    /// (see [`eventsock_core::identity`]): a person's messages to their phone number and to
    /// their LID wait in one queue, paced as one chat, once the pair is known.
    ///
    /// # Panics
    ///
    /// Outside an actix system or a tokio `LocalSet`.
    pub fn with_identities(
        rest: RestClient,
        pacing: Pacing,
        identities: Arc<eventsock_core::Identities>,
    ) -> Outbox {
        let (commands, inbox) = mpsc::unbounded_channel();
        let pacing = Arc::new(pacing);
        let room = Arc::new(Semaphore::new(pacing.capacity));
        let counters = Arc::new(Counters::default());
        let instance: Arc<str> = rest.instance().into();
        let engine = Engine {
            rest,
            identities,
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
        // Only a text is sent with the id chosen here: a reaction gets the server's own id and
        // a read mark sends no message, so no receipt of theirs could be matched.
        let status = message
            .action
            .is_text()
            .then(|| self.counters.deliveries.follow(&id, &message.to));
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
            posted: Instant::now(),
            first_sent: None,
            _permit: permit,
        };
        self.commands
            .send(Command::Post(Box::new(job)))
            .map_err(|_| OutboxError::Stopped)?;
        Ok(Receipt {
            id,
            answer: Some(rx),
            outcome: None,
            status,
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
            send_latency: c.send_latency.snapshot(),
            delivery: c.deliveries.stats(),
        }
    }

    /// A delivery receipt for message `id` (a `messages.update` of this instance): moves the
    /// message's [`Delivery`] on, for its [`Receipt`] and the stats. Returns whether this
    /// outbox follows the message. The router's dispatcher calls it for every
    /// `messages.update`; a program that reads the events itself calls it.
    pub fn delivery_update(&self, id: &str, status: Delivery) -> bool {
        self.counters.deliveries.update(id, status)
    }
}
