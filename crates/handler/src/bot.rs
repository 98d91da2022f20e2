//! [`Bot`]: the actor that runs a [`Route`] for every message it is sent.
//!
//! # Lifecycle
//! - **started**: ready; nothing is spawned until messages arrive.
//! - **running**: each message runs the route. A handler that fails or panics does not stop the
//!   bot: the failure goes to the error handler (default: logged at error level) and the next
//!   message is handled as usual. A message no route takes goes to the dead-letter handler
//!   (default: counted and logged at debug level).
//! - **ordering**: without [`BotBuilder::ordered_by`], one message at a time, in order. With it,
//!   messages with the same key (by default the chat) are handled in order, messages with
//!   different keys concurrently, on at most `workers` at once, with at most `queue` waiting per
//!   key; a full queue makes the sender wait, so backpressure reaches the socket.
//! - **stopping**: messages already queued per key are dropped with the bot; stop the
//!   [`Supervisor`](https://docs.rs/eventsock-client) first for a clean shutdown.

use crate::route::{Flow, HandlerError, Route};
use actix::prelude::*;
use futures_util::FutureExt;
use std::cell::RefCell;
use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Semaphore};

/// A message whose handling failed, for the error handler.
#[derive(Debug, Clone)]
pub struct Failure<V> {
    /// The message.
    pub message: V,
    /// What went wrong.
    pub error: HandlerError,
}

type Sink<T> = Arc<dyn Fn(T) + Send + Sync>;
type KeyFn<V> = Arc<dyn Fn(&V) -> String + Send + Sync>;

/// Counts of what a bot did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BotStats {
    /// Messages a route took and handled.
    pub handled: u64,
    /// Messages whose handler returned an error or timed out.
    pub failed: u64,
    /// Messages whose handler panicked.
    pub panicked: u64,
    /// Messages no route took.
    pub dead_letters: u64,
}

#[derive(Default)]
struct Counters {
    handled: AtomicU64,
    failed: AtomicU64,
    panicked: AtomicU64,
    dead_letters: AtomicU64,
}

/// What every run of the route needs: shared by the bot and its per-key workers.
struct Runner<V> {
    route: Route<V>,
    on_error: Sink<Failure<V>>,
    on_dead_letter: Sink<V>,
    counters: Counters,
}

impl<V: Clone + 'static> Runner<V> {
    async fn run(self: Rc<Self>, message: V) {
        // The route is called inside the guarded future: a closure may panic before it returns
        // its future, and that panic must be caught too.
        let route = self.route.clone();
        let input = message.clone();
        let outcome = AssertUnwindSafe(async move { route.call(input).await })
            .catch_unwind()
            .await;
        let error = match outcome {
            Ok(Ok(Flow::Taken)) => {
                self.counters.handled.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Ok(Ok(Flow::Skipped)) => {
                self.counters.dead_letters.fetch_add(1, Ordering::Relaxed);
                return (self.on_dead_letter)(message);
            }
            Ok(Err(e)) => {
                self.counters.failed.fetch_add(1, Ordering::Relaxed);
                e
            }
            Err(panic) => {
                self.counters.panicked.fetch_add(1, Ordering::Relaxed);
                let text = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic without a message".into());
                HandlerError::Panicked(text)
            }
        };
        (self.on_error)(Failure { message, error });
    }
}

/// Per-key queues and the worker budget.
struct Distribution<V> {
    key: KeyFn<V>,
    workers: Arc<Semaphore>,
    queue: usize,
    idle: Duration,
    queues: Rc<RefCell<HashMap<String, mpsc::Sender<V>>>>,
}

impl<V: Clone + 'static> Distribution<V> {
    /// Queues `message` behind its key's earlier messages; waits while that queue is full.
    async fn enqueue(self: Rc<Self>, runner: Rc<Runner<V>>, mut message: V) {
        let key = (self.key)(&message);
        loop {
            let tx = self
                .queues
                .borrow_mut()
                .entry(key.clone())
                .or_insert_with(|| self.clone().spawn_worker(key.clone(), runner.clone()))
                .clone();
            match tx.send(message).await {
                Ok(()) => return,
                // The key's worker retired between the lookup and the send: its queue was
                // empty, so a new worker keeps the order.
                Err(mpsc::error::SendError(back)) => {
                    message = back;
                    let mut queues = self.queues.borrow_mut();
                    if queues.get(&key).is_some_and(|t| t.same_channel(&tx)) {
                        queues.remove(&key);
                    }
                }
            }
        }
    }

    fn spawn_worker(self: Rc<Self>, key: String, runner: Rc<Runner<V>>) -> mpsc::Sender<V> {
        let (tx, mut rx) = mpsc::channel::<V>(self.queue.max(1));
        actix_rt::spawn(async move {
            loop {
                let message = match tokio::time::timeout(self.idle, rx.recv()).await {
                    Ok(Some(m)) => m,
                    Ok(None) => break,
                    Err(_) => {
                        // Idle: retire, unless a message slipped in meanwhile.
                        let mut queues = self.queues.borrow_mut();
                        match rx.try_recv() {
                            Ok(m) => m,
                            Err(_) => {
                                queues.remove(&key);
                                break;
                            }
                        }
                    }
                };
                let Ok(_permit) = self.workers.clone().acquire_owned().await else {
                    break;
                };
                runner.clone().run(message).await;
            }
        });
        tx
    }
}

/// The actor that runs a [`Route`] for every `V` it is sent. Register its address with the
/// supervisor like any handler actor.
pub struct Bot<V: 'static> {
    runner: Rc<Runner<V>>,
    distribution: Option<Rc<Distribution<V>>>,
}

impl<V> std::fmt::Debug for Bot<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bot")
            .field("ordered_by_key", &self.distribution.is_some())
            .finish_non_exhaustive()
    }
}

/// Builds a [`Bot`].
pub struct BotBuilder<V: 'static> {
    route: Route<V>,
    on_error: Sink<Failure<V>>,
    on_dead_letter: Sink<V>,
    order: Option<(KeyFn<V>, usize, usize)>,
}

impl<V> std::fmt::Debug for BotBuilder<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BotBuilder").finish_non_exhaustive()
    }
}

impl<V> Bot<V>
where
    V: Message<Result = ()> + Clone + std::fmt::Debug + Send + 'static,
{
    /// A bot running `route`.
    pub fn build(route: Route<V>) -> BotBuilder<V> {
        BotBuilder {
            route,
            on_error: Arc::new(|f: Failure<V>| {
                tracing::error!(error = %f.error, "handler failure (set Bot::on_error to handle it)");
            }),
            on_dead_letter: Arc::new(|_| tracing::debug!("no route took the message")),
            order: None,
        }
    }
}

impl<V> BotBuilder<V>
where
    V: Message<Result = ()> + Clone + std::fmt::Debug + Send + 'static,
{
    /// Where failures go (default: logged at error level).
    pub fn on_error(mut self, f: impl Fn(Failure<V>) + Send + Sync + 'static) -> Self {
        self.on_error = Arc::new(f);
        self
    }

    /// Where messages no route takes go (default: counted and logged at debug level).
    pub fn on_dead_letter(mut self, f: impl Fn(V) + Send + Sync + 'static) -> Self {
        self.on_dead_letter = Arc::new(f);
        self
    }

    /// Handles messages with the same `key` in order and different keys concurrently, on at most
    /// `workers` at once, with at most `queue` messages waiting per key.
    pub fn ordered_by(
        mut self,
        key: impl Fn(&V) -> String + Send + Sync + 'static,
        workers: usize,
        queue: usize,
    ) -> Self {
        self.order = Some((Arc::new(key), workers.max(1), queue.max(1)));
        self
    }

    /// Starts the bot on the current arbiter.
    pub fn start(self) -> Addr<Bot<V>> {
        let runner = Rc::new(Runner {
            route: self.route,
            on_error: self.on_error,
            on_dead_letter: self.on_dead_letter,
            counters: Counters::default(),
        });
        let distribution = self.order.map(|(key, workers, queue)| {
            Rc::new(Distribution {
                key,
                workers: Arc::new(Semaphore::new(workers)),
                queue,
                idle: Duration::from_secs(5),
                queues: Rc::default(),
            })
        });
        Bot {
            runner,
            distribution,
        }
        .start()
    }
}

impl<V: 'static> Actor for Bot<V> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // Senders wait for the handling (or the queueing) of each message, so the mailbox
        // itself never holds more than a few.
        ctx.set_mailbox_capacity(64);
    }
}

impl<V> Handler<V> for Bot<V>
where
    V: Message<Result = ()> + Clone + Send + 'static,
{
    // Atomic: the bot finishes a message (or, ordered by key, queues it) before it takes the
    // next, so arrival order holds even when several subscriptions feed one bot.
    type Result = AtomicResponse<Self, ()>;

    fn handle(&mut self, message: V, _: &mut Context<Self>) -> Self::Result {
        let work: futures_util::future::LocalBoxFuture<'static, ()> = match &self.distribution {
            None => Box::pin(self.runner.clone().run(message)),
            Some(d) => Box::pin(d.clone().enqueue(self.runner.clone(), message)),
        };
        AtomicResponse::new(Box::pin(work.into_actor(self)))
    }
}

/// Asks a bot for its counts.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "BotStats")]
pub struct GetBotStats;

impl<V: 'static> Handler<GetBotStats> for Bot<V> {
    type Result = MessageResult<GetBotStats>;

    fn handle(&mut self, _: GetBotStats, _: &mut Context<Self>) -> Self::Result {
        let c = &self.runner.counters;
        MessageResult(BotStats {
            handled: c.handled.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            panicked: c.panicked.load(Ordering::Relaxed),
            dead_letters: c.dead_letters.load(Ordering::Relaxed),
        })
    }
}
