//! [`Router`]: which handlers get which events, and the one place where a frame is decoded and
//! delivered.
//!
//! A router holds "payload type → handlers": closures that get a [`Ctx`] ([`Router::on`]),
//! [`Route`]s built from pipelines ([`Router::route`]), actors ([`Router::actor`]), and handlers
//! of raw JSON ([`Router::raw`]). The live supervisor, [`Replay`](crate::builtin::Replay) and
//! the NATS worker all deliver through a router, so one bot runs live, from a recording, or on
//! a worker without a change.
//!
//! [`Router::dispatch`] takes one frame's text: it reads it once (a bare payload, or an
//! envelope), decodes it once per registered payload type, and starts a delivery to every
//! handler of that type; [`Dispatch::settle`] waits for them and says how each did.

use crate::context::{Ctx, EventCtx};
use crate::route::{BoxError, HandlerError, Route};
use actix::prelude::SendError;
use actix::Recipient;
use eventsock_core::{
    human, Channel, DecodeError, Event, EventMeta, EventName, Frame, FrameProblem, Payload,
    Protocol, RawEvent, RawFrame, Undelivered,
};
use eventsock_rest::{Outbox, Pacing, Postbox, RestClient};
use futures_util::future::{join_all, LocalBoxFuture};
use futures_util::FutureExt;
use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Handler lists are only pushed to and pruned; a panic elsewhere cannot leave them torn.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A list read whole on every frame and changed rarely: readers take a snapshot (one refcount)
/// and hold no lock while they run handlers, so a handler may register others, or dispatch.
struct List<T> {
    items: RwLock<Arc<[Arc<T>]>>,
}

impl<T> Default for List<T> {
    fn default() -> Self {
        List {
            items: RwLock::new(Arc::from(Vec::new())),
        }
    }
}

impl<T> List<T> {
    fn snapshot(&self) -> Arc<[Arc<T>]> {
        self.items
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn push(&self, item: T) {
        let mut items = self.items.write().unwrap_or_else(PoisonError::into_inner);
        let mut grown = items.to_vec();
        grown.push(Arc::new(item));
        *items = Arc::from(grown);
    }

    /// Keeps the items `keep` keeps; returns how many are left.
    fn retain(&self, keep: impl Fn(&T) -> bool) -> usize {
        let mut items = self.items.write().unwrap_or_else(PoisonError::into_inner);
        if items.iter().all(|i| keep(i)) {
            return items.len();
        }
        let kept: Vec<_> = items.iter().filter(|i| keep(i)).cloned().collect();
        *items = Arc::from(kept);
        items.len()
    }
}

/// How one handler did with one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Handled (for an actor: in its mailbox, or handled when the caller waited).
    Handled,
    /// The handler returned an error or panicked; it stays registered.
    Failed(String),
    /// The handler actor has stopped: it is removed by [`Router::prune`].
    Gone,
}

/// What [`Dispatch::settle`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    /// Deliveries handled.
    pub handled: usize,
    /// Deliveries whose handler failed.
    pub failed: usize,
    /// Deliveries to handlers that have stopped.
    pub gone: usize,
    /// The errors of the failed deliveries, in order.
    pub errors: Vec<String>,
    /// Problems with the frame itself (not JSON, or not the shape of a registered type).
    pub problems: usize,
}

impl Tally {
    /// Whether any handler took the event (whatever came of it).
    pub fn delivered(&self) -> bool {
        self.handled + self.failed + self.gone > 0
    }
}

/// Counters of one handler, shared by every delivery to it.
#[derive(Debug, Default)]
struct Counters {
    handled: AtomicU64,
    failed: AtomicU64,
}

/// How one handler has done so far: [`Router::handlers`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandlerStats {
    /// The handler's name: its payload type and its registration number (`legacy::MessagesUpsert#0`).
    pub name: String,
    /// Events handled (for an actor: put in its mailbox).
    pub handled: u64,
    /// Events whose handling failed (an error, a panic, a stopped actor).
    pub failed: u64,
}

type CtxFn<M> = dyn Fn(M, Ctx) -> LocalBoxFuture<'static, Result<(), BoxError>> + Send + Sync;

/// One handler of `M`, as registered.
enum Sink<M: actix::Message<Result = ()> + Send> {
    Actor(Recipient<M>),
    Route(Route<M>),
    WithCtx(Arc<CtxFn<M>>),
}

struct Handler<M: actix::Message<Result = ()> + Send> {
    name: Arc<str>,
    sink: Sink<M>,
    counters: Arc<Counters>,
}

type Pending = LocalBoxFuture<'static, Outcome>;

/// The deliveries of one frame: those that completed at once, and those to wait for.
#[derive(Default)]
pub(crate) struct Deliveries {
    pending: Vec<Pending>,
    done: Vec<Outcome>,
}

impl std::fmt::Debug for Deliveries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deliveries")
            .field("pending", &self.pending.len())
            .field("done", &self.done.len())
            .finish()
    }
}

/// Runs a handler's future; a panic in it becomes [`Outcome::Failed`].
fn guarded<F>(fut: F, counters: Arc<Counters>) -> Pending
where
    F: Future<Output = Result<(), String>> + 'static,
{
    Box::pin(async move {
        let outcome = match AssertUnwindSafe(fut).catch_unwind().await {
            Ok(Ok(())) => Outcome::Handled,
            Ok(Err(e)) => Outcome::Failed(e),
            Err(panic) => {
                Outcome::Failed(HandlerError::Panicked(panic_message(&*panic)).to_string())
            }
        };
        count(&counters, &outcome);
        outcome
    })
}

/// A handler that panicked when called: its delivery has failed already.
fn failed_at_once(panic: Box<dyn Any + Send>, counters: &Counters, out: &mut Deliveries) {
    let outcome = Outcome::Failed(HandlerError::Panicked(panic_message(&*panic)).to_string());
    count(counters, &outcome);
    out.done.push(outcome);
}

fn count(counters: &Counters, outcome: &Outcome) {
    let c = match outcome {
        Outcome::Handled => &counters.handled,
        Outcome::Failed(_) | Outcome::Gone => &counters.failed,
    };
    c.fetch_add(1, Ordering::Relaxed);
}

/// The text of a panic's payload, escaped.
pub(crate) fn panic_message(panic: &(dyn Any + Send)) -> String {
    let text = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".into());
    human::escaped(&text).to_string()
}

impl<M> Handler<M>
where
    M: actix::Message<Result = ()> + Send + 'static,
{
    /// Starts delivering `m`. With `wait`, an actor's delivery completes when it has handled
    /// the message; without, once it is in its mailbox (`try_send`: no round trip), and only a
    /// full mailbox makes the delivery wait. A closure or route always runs to completion.
    fn deliver(&self, m: M, ctx: impl FnOnce(&Arc<str>) -> Ctx, wait: bool, out: &mut Deliveries) {
        let counters = self.counters.clone();
        match &self.sink {
            Sink::Actor(actor) => {
                let sent = if wait {
                    actor.send(m)
                } else {
                    match actor.try_send(m) {
                        Ok(()) => {
                            count(&counters, &Outcome::Handled);
                            out.done.push(Outcome::Handled);
                            return;
                        }
                        Err(SendError::Full(m)) => actor.send(m),
                        Err(SendError::Closed(_)) => {
                            count(&counters, &Outcome::Gone);
                            out.done.push(Outcome::Gone);
                            return;
                        }
                    }
                };
                out.pending.push(Box::pin(async move {
                    let outcome = match sent.await {
                        Ok(()) => Outcome::Handled,
                        Err(_) => Outcome::Gone,
                    };
                    count(&counters, &outcome);
                    outcome
                }));
            }
            // A closure may panic before it returns its future: that fails this delivery only.
            Sink::Route(route) => {
                match std::panic::catch_unwind(AssertUnwindSafe(|| route.call(m))) {
                    Ok(call) => out.pending.push(guarded(
                        async move { call.await.map(drop).map_err(|e| e.to_string()) },
                        counters,
                    )),
                    Err(panic) => failed_at_once(panic, &counters, out),
                }
            }
            Sink::WithCtx(f) => {
                // Called and polled once at once: a handler that does not wait (most, and any
                // that only queues a reply) is done here, without a task of its own.
                let first = std::panic::catch_unwind(AssertUnwindSafe(|| {
                    let mut call = f(m, ctx(&self.name));
                    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
                    match call.as_mut().poll(&mut cx) {
                        std::task::Poll::Ready(result) => Ok(result),
                        std::task::Poll::Pending => Err(call),
                    }
                }));
                match first {
                    Ok(Ok(result)) => {
                        let outcome = match result {
                            Ok(()) => Outcome::Handled,
                            Err(e) => {
                                Outcome::Failed(HandlerError::Failed(Arc::new(e)).to_string())
                            }
                        };
                        count(&counters, &outcome);
                        out.done.push(outcome);
                    }
                    Ok(Err(call)) => out.pending.push(guarded(
                        async move {
                            call.await
                                .map_err(|e| HandlerError::Failed(Arc::new(e)).to_string())
                        },
                        counters,
                    )),
                    Err(panic) => failed_at_once(panic, &counters, out),
                }
            }
        }
    }

    fn alive(&self) -> bool {
        match &self.sink {
            Sink::Actor(a) => a.connected(),
            Sink::Route(_) | Sink::WithCtx(_) => true,
        }
    }

    fn stats(&self) -> HandlerStats {
        HandlerStats {
            name: self.name.to_string(),
            handled: self.counters.handled.load(Ordering::Relaxed),
            failed: self.counters.failed.load(Ordering::Relaxed),
        }
    }
}

/// The handlers of one kind of message.
trait Entry: Send + Sync + 'static {
    fn as_any(&self) -> &dyn Any;
    /// The (channel, event) pairs this entry needs a server of `protocol` to send; `Err` names
    /// an event that server never serves.
    fn subscriptions(&self, protocol: Protocol) -> Result<Vec<(Channel, EventName)>, EventName>;
    /// Decodes the frame, if this entry takes it, and starts a delivery to each handler.
    fn dispatch(
        &self,
        frame: &Frame<'_>,
        meta: &EventMeta,
        channel: Option<Channel>,
        router: &Inner,
        wait: bool,
        out: &mut Deliveries,
    ) -> Result<(), DecodeError>;
    /// Drops handlers that have stopped; returns how many are left.
    fn prune(&self) -> usize;
    fn stats(&self, out: &mut Vec<HandlerStats>);
}

/// The handlers of `Event<T>`.
struct Typed<T: Payload> {
    handlers: List<Handler<Event<T>>>,
}

impl<T: Payload> Entry for Typed<T> {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn subscriptions(&self, protocol: Protocol) -> Result<Vec<(Channel, EventName)>, EventName> {
        if Protocol::of(T::CHANNEL) != protocol {
            return Ok(Vec::new());
        }
        Ok(T::EVENTS
            .iter()
            .map(|k| (T::CHANNEL, EventName::from(*k)))
            .collect())
    }

    fn dispatch(
        &self,
        frame: &Frame<'_>,
        meta: &EventMeta,
        channel: Option<Channel>,
        router: &Inner,
        wait: bool,
        out: &mut Deliveries,
    ) -> Result<(), DecodeError> {
        if channel.is_some_and(|c| c != T::CHANNEL) || !T::accepts(&meta.event) {
            return Ok(());
        }
        let handlers = self.handlers.snapshot();
        if handlers.is_empty() {
            return Ok(());
        }
        let payload = Arc::new(frame.decode::<T>(&meta.event)?);
        out.done.reserve(handlers.len());
        // Made at the first handler that takes a context, shared by the others.
        let mut shared = None;
        for (slot, h) in handlers.iter().enumerate() {
            let event = Event {
                meta: meta.clone(),
                payload: payload.clone(),
            };
            let ctx = |name: &Arc<str>| {
                let shared = shared.get_or_insert_with(|| {
                    router.event_ctx(meta, payload.as_message(), handlers.len())
                });
                Ctx::of_handler(shared.clone(), name.clone(), slot)
            };
            h.deliver(event, ctx, wait, out);
        }
        Ok(())
    }

    fn prune(&self) -> usize {
        self.handlers.retain(Handler::alive)
    }

    fn stats(&self, out: &mut Vec<HandlerStats>) {
        out.extend(self.handlers.snapshot().iter().map(|h| h.stats()));
    }
}

/// A message of a whole frame, for raw handlers: [`RawEvent`] (the payload as a
/// `serde_json::Value`) or [`RawFrame`] (its text).
trait RawMessage: actix::Message<Result = ()> + Clone + Send + 'static {
    /// The payload of `frame`, read once for all the handlers of one frame.
    type Data: Clone;
    fn data(frame: &Frame<'_>, event: &EventName) -> Result<Self::Data, DecodeError>;
    fn new(meta: EventMeta, data: Self::Data) -> Self;
}

impl RawMessage for RawEvent {
    type Data = Arc<serde_json::Value>;
    fn data(frame: &Frame<'_>, event: &EventName) -> Result<Self::Data, DecodeError> {
        frame.value(event).map(Arc::new)
    }
    fn new(meta: EventMeta, data: Self::Data) -> Self {
        RawEvent { meta, data }
    }
}

impl RawMessage for RawFrame {
    type Data = Arc<serde_json::value::RawValue>;
    fn data(frame: &Frame<'_>, event: &EventName) -> Result<Self::Data, DecodeError> {
        frame.raw_data(event).map(Arc::from)
    }
    fn new(meta: EventMeta, data: Self::Data) -> Self {
        RawFrame { meta, data }
    }
}

/// A raw handler and the events it takes (`None`: all).
type RawHandler<M> = (Option<Vec<EventName>>, Handler<M>);

/// The raw handlers of one kind of message.
struct Raw<M: RawMessage> {
    handlers: List<RawHandler<M>>,
}

impl<M: RawMessage> Default for Raw<M> {
    fn default() -> Self {
        Raw {
            handlers: List::default(),
        }
    }
}

impl<M: RawMessage> Entry for Raw<M> {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn subscriptions(&self, protocol: Protocol) -> Result<Vec<(Channel, EventName)>, EventName> {
        let handlers = self.handlers.snapshot();
        let mut subs = Vec::new();
        for event in handlers.iter().filter_map(|h| h.0.as_ref()).flatten() {
            match protocol.channel_of(event) {
                Some(channel) => subs.push((channel, event.clone())),
                None => return Err(event.clone()),
            }
        }
        Ok(subs)
    }

    fn dispatch(
        &self,
        frame: &Frame<'_>,
        meta: &EventMeta,
        _: Option<Channel>,
        router: &Inner,
        wait: bool,
        out: &mut Deliveries,
    ) -> Result<(), DecodeError> {
        let handlers = self.handlers.snapshot();
        let mut data = None;
        let mut shared = None;
        for (slot, raw) in handlers.iter().enumerate() {
            let (events, h) = &**raw;
            if events.as_ref().is_some_and(|e| !e.contains(&meta.event)) {
                continue;
            }
            let data = match &data {
                Some(d) => d,
                None => data.insert(M::data(frame, &meta.event)?),
            };
            let message = M::new(meta.clone(), data.clone());
            let ctx = |name: &Arc<str>| {
                let shared =
                    shared.get_or_insert_with(|| router.event_ctx(meta, None, handlers.len()));
                Ctx::of_handler(shared.clone(), name.clone(), slot)
            };
            h.deliver(message, ctx, wait, out);
        }
        Ok(())
    }

    fn prune(&self) -> usize {
        self.handlers.retain(|(_, h)| h.alive())
    }

    fn stats(&self, out: &mut Vec<HandlerStats>) {
        out.extend(self.handlers.snapshot().iter().map(|raw| raw.1.stats()));
    }
}

/// Decides, before any handler sees it, whether a `messages.upsert` message is delivered: how
/// recovery over REST keeps each message exactly once across live delivery and recovery (the
/// client's `Backfill`). Consulted for bare payloads (the legacy server's frames, recorded or
/// recovered ones).
pub trait Gate: Send + Sync + 'static {
    /// Whether message `id` (sent at `timestamp`, seconds since the epoch, when known) of
    /// `meta.instance` is to be delivered: `false` for one delivered before.
    fn admit(&self, meta: &EventMeta, id: &str, timestamp: Option<i64>) -> bool;
}

/// The fields of a message the [`Gate`] needs, read without building the payload.
#[derive(serde::Deserialize)]
struct MessageKey<'a> {
    #[serde(rename = "keyId", borrow)]
    id: Option<std::borrow::Cow<'a, str>>,
    #[serde(rename = "messageTimestamp")]
    timestamp: Option<serde_json::Value>,
}

impl MessageKey<'_> {
    /// The timestamp in seconds, read as the model reads `messageTimestamp` (a number or a
    /// numeric string); `None` when it is neither.
    fn seconds(&self) -> Option<i64> {
        eventsock_core::wire::opt_int::deserialize(self.timestamp.as_ref()?)
            .ok()
            .flatten()
    }
}

struct Inner {
    /// Replaced whole when an entry is added (rare), so a frame's snapshot is one refcount.
    entries: RwLock<Arc<[Arc<dyn Entry>]>>,
    gate: RwLock<Option<Arc<dyn Gate>>>,
    undelivered: Mutex<Vec<Recipient<Undelivered>>>,
    rest: RwLock<Vec<Answerer>>,
    /// How the outboxes made for the REST clients pace.
    pacing: RwLock<Pacing>,
    /// Where every send goes instead, when set.
    postbox: RwLock<Option<Arc<dyn Postbox>>>,
    registered: AtomicUsize,
}

/// A REST client of one instance, and its outbox, made at its first send.
struct Answerer {
    rest: RestClient,
    outbox: std::sync::OnceLock<Arc<Outbox>>,
}

impl Inner {
    fn snapshot(&self) -> Arc<[Arc<dyn Entry>]> {
        self.entries
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// What the handlers of an event with `meta` (which is `message` when it is one) share in
    /// their contexts: the REST client of its instance and the outbox it sends through.
    fn event_ctx(
        &self,
        meta: &EventMeta,
        message: Option<&dyn eventsock_core::MessageLike>,
        handlers: usize,
    ) -> Arc<EventCtx> {
        let postbox = self
            .postbox
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let rest = self.rest.read().unwrap_or_else(PoisonError::into_inner);
        let answerer = match meta.instance.as_deref() {
            Some(i) => rest.iter().find(|r| r.rest.instance() == i),
            None => match rest.as_slice() {
                [only] => Some(only),
                _ => None,
            },
        };
        let postbox = postbox.or_else(|| {
            let answerer = answerer?;
            let outbox = answerer.outbox.get_or_init(|| {
                let pacing = self
                    .pacing
                    .read()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone();
                Arc::new(Outbox::new(answerer.rest.clone(), pacing))
            });
            Some(outbox.clone() as Arc<dyn Postbox>)
        });
        EventCtx::new(
            answerer.map(|a| a.rest.clone()),
            postbox,
            meta,
            message,
            handlers,
        )
    }

    /// The entry of type `E`, created with `make` if there is none yet.
    fn entry<E: Entry>(&self, make: impl FnOnce() -> E, add: impl FnOnce(&E)) {
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(e) = entries.iter().find_map(|e| e.as_any().downcast_ref::<E>()) {
            return add(e);
        }
        let e = make();
        add(&e);
        let mut grown = entries.to_vec();
        grown.push(Arc::new(e));
        *entries = Arc::from(grown);
    }
}

/// Which handlers get which events. Cheap to clone: clones share their handlers, so handlers
/// added to one (also while it runs) are seen by all.
///
/// ```
/// use eventsock_core::{legacy, Event};
/// use eventsock_handler::{Ctx, Router};
///
/// let router = Router::new().on(|msg: Event<legacy::MessagesUpsert>, cx: Ctx| async move {
///     if msg.text() == Some("!ping") {
///         cx.reply("pong").await?;
///     }
///     Ok(())
/// });
/// # let _ = router;
/// ```
#[derive(Clone)]
pub struct Router {
    inner: Arc<Inner>,
}

impl Default for Router {
    fn default() -> Self {
        Router::new()
    }
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router")
            .field("handlers", &self.inner.registered.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Router {
    /// A router with no handlers.
    pub fn new() -> Router {
        Router {
            inner: Arc::new(Inner {
                entries: RwLock::new(Arc::from(Vec::new())),
                gate: RwLock::new(None),
                undelivered: Mutex::new(Vec::new()),
                rest: RwLock::new(Vec::new()),
                pacing: RwLock::new(Pacing::default()),
                postbox: RwLock::new(None),
                registered: AtomicUsize::new(0),
            }),
        }
    }

    fn name<T>(&self) -> Arc<str> {
        let n = self.inner.registered.fetch_add(1, Ordering::Relaxed);
        let full = std::any::type_name::<T>();
        let short = full.strip_prefix("eventsock_core::").unwrap_or(full);
        format!("{short}#{n}").into()
    }

    fn typed<T: Payload>(self, sink: Sink<Event<T>>) -> Self {
        let handler = Handler {
            name: self.name::<T>(),
            sink,
            counters: Arc::default(),
        };
        self.inner.entry(
            || Typed::<T> {
                handlers: List::default(),
            },
            |e| e.handlers.push(handler),
        );
        self
    }

    /// Handles every `T` event with `f`, given the event and a [`Ctx`] to answer it with. An
    /// error or a panic fails this event only (it is counted, logged, and on the NATS worker
    /// the event is redelivered). Events of one subscription are handled one after another
    /// (messages recovered over REST after a gap come from a task of their own, beside them).
    pub fn on<T, F, Fut>(self, f: F) -> Self
    where
        T: Payload,
        F: Fn(Event<T>, Ctx) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), BoxError>> + 'static,
    {
        self.typed(Sink::WithCtx(Arc::new(move |e, cx| Box::pin(f(e, cx)))))
    }

    /// Handles every `T` event with a [`Route`] (a [`Pipeline`](crate::Pipeline)'s end, or a
    /// branch of them).
    pub fn route<T: Payload>(self, route: Route<Event<T>>) -> Self {
        self.typed(Sink::Route(route))
    }

    /// Sends every `T` event to an actor (a [`Bot`](crate::Bot), or your own).
    pub fn actor<T: Payload>(self, actor: Recipient<Event<T>>) -> Self {
        self.typed(Sink::Actor(actor))
    }

    fn raw_sink<M: RawMessage>(self, events: Option<Vec<EventName>>, sink: Sink<M>) -> Self {
        let handler = Handler {
            name: self.name::<M>(),
            sink,
            counters: Arc::default(),
        };
        self.inner
            .entry(Raw::<M>::default, |e| e.handlers.push((events, handler)));
        self
    }

    /// Sends every frame of `events` to an actor as the text the server sent ([`RawFrame`]),
    /// checked to be JSON but not parsed (and subscribes them): for handlers that pass events
    /// on, such as the NATS ingest.
    pub fn frames(
        self,
        events: impl IntoIterator<Item = EventName>,
        actor: Recipient<RawFrame>,
    ) -> Self {
        self.raw_sink(Some(events.into_iter().collect()), Sink::Actor(actor))
    }

    /// Sends every frame of `events`, as JSON, to an actor, whatever its shape (and subscribes
    /// them).
    pub fn raw(
        self,
        events: impl IntoIterator<Item = EventName>,
        actor: Recipient<RawEvent>,
    ) -> Self {
        self.raw_sink(Some(events.into_iter().collect()), Sink::Actor(actor))
    }

    /// Sends every event the others subscribe, as JSON, to an actor (a recorder, a bridge),
    /// without subscribing anything itself.
    pub fn raw_all(self, actor: Recipient<RawEvent>) -> Self {
        self.raw_sink(None, Sink::Actor(actor))
    }

    /// Handles every frame of `events` (`None`: every event there is), as JSON, with a route.
    pub fn raw_route(self, events: Option<Vec<EventName>>, route: Route<RawEvent>) -> Self {
        self.raw_sink(events, Sink::Route(route))
    }

    /// Sends every frame that could not be delivered as its type to `actor` (with its data,
    /// when it was valid JSON).
    pub fn undelivered(self, actor: Recipient<Undelivered>) -> Self {
        lock(&self.inner.undelivered).push(actor);
        self
    }

    /// The REST client a [`Ctx`] answers through, for events of its instance (the one client,
    /// when there is only one, also answers events that name no instance; an event of another
    /// instance gets none). The runtime and the
    /// supervisor add one per source; give one yourself for a replay or a NATS worker.
    pub fn rest(self, client: RestClient) -> Self {
        let mut rest = self
            .inner
            .rest
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        rest.retain(|r| r.rest.instance() != client.instance());
        rest.push(Answerer {
            rest: client,
            outbox: std::sync::OnceLock::new(),
        });
        drop(rest);
        self
    }

    /// How the outboxes pace: every [`Ctx::reply`], [`Ctx::send`] and [`Ctx::send_to`] goes
    /// through the outbox of its instance, made at its first send (see [`Pacing`] for the
    /// cautious defaults). Applies to outboxes not made yet.
    pub fn pacing(self, pacing: Pacing) -> Self {
        *self
            .inner
            .pacing
            .write()
            .unwrap_or_else(PoisonError::into_inner) = pacing;
        self
    }

    /// Sends every message through `postbox` instead of this process's outboxes: for a NATS
    /// worker whose messages one sender paces for every worker (a JetStream outbox).
    pub fn postbox(self, postbox: Arc<dyn Postbox>) -> Self {
        *self
            .inner
            .postbox
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Some(postbox);
        self
    }

    /// Lets every outbox of this router send what it holds, for at most `within` in all; then
    /// stops them, dropping what is left with a warning that says how many messages were not
    /// sent, and gives the sends in flight 5 more seconds to land. Returns how many were
    /// dropped. For the end of a program: the runtime's `stop` and a NATS worker's `run` call it.
    pub async fn drain(&self, within: std::time::Duration) -> usize {
        let outboxes: Vec<Outbox> = self
            .outboxes()
            .into_iter()
            .filter(|o| o.stats().queued > 0)
            .collect();
        if outboxes.is_empty() {
            return 0;
        }
        let waiting: u64 = outboxes.iter().map(|o| o.stats().queued).sum();
        tracing::info!(
            "sending the {waiting} queued messages before stopping (at most {})",
            eventsock_core::human::duration(within)
        );
        let all = futures_util::future::join_all(outboxes.iter().map(|o| o.flush()));
        if tokio::time::timeout(within, all).await.is_ok() {
            return 0;
        }
        let mut dropped = 0;
        for outbox in &outboxes {
            let n = outbox.stop().await;
            dropped += n;
            if n > 0 {
                tracing::warn!(
                    instance = %eventsock_core::human::escaped(outbox.instance()),
                    "{n} queued messages were not sent: the outbox could not send them within {} at its pace",
                    eventsock_core::human::duration(within)
                );
            }
        }
        let in_flight = futures_util::future::join_all(outboxes.iter().map(|o| o.flush()));
        if tokio::time::timeout(std::time::Duration::from_secs(5), in_flight)
            .await
            .is_err()
        {
            tracing::warn!("sends still in flight after 5 s: they may or may not have been sent");
        }
        dropped
    }

    /// The outboxes made so far, one per instance that has sent.
    pub fn outboxes(&self) -> Vec<Outbox> {
        let rest = self
            .inner
            .rest
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        rest.iter()
            .filter_map(|a| a.outbox.get().map(|o| Outbox::clone(o)))
            .collect()
    }

    /// Lets `gate` decide which `messages.upsert` messages are delivered (see [`Gate`]).
    pub fn gate(self, gate: Arc<dyn Gate>) -> Self {
        *self
            .inner
            .gate
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Some(gate);
        self
    }

    /// Whether a REST client answers events of `instance`.
    pub fn has_rest(&self, instance: &str) -> bool {
        let rest = self
            .inner
            .rest
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        rest.iter().any(|r| r.rest.instance() == instance)
    }

    /// The (channel, event) pairs a server of `protocol` must send for these handlers. `Err`
    /// names an event given to [`Router::raw`] that such a server never serves.
    pub fn subscriptions(
        &self,
        protocol: Protocol,
    ) -> Result<Vec<(Channel, EventName)>, EventName> {
        let mut subs = Vec::new();
        for entry in self.inner.snapshot().iter() {
            for sub in entry.subscriptions(protocol)? {
                if !subs.contains(&sub) {
                    subs.push(sub);
                }
            }
        }
        Ok(subs)
    }

    /// How each handler has done so far, in registration order.
    pub fn handlers(&self) -> Vec<HandlerStats> {
        let mut out = Vec::new();
        for entry in self.inner.snapshot().iter() {
            entry.stats(&mut out);
        }
        out.sort_by_key(|s| {
            s.name
                .rsplit_once('#')
                .and_then(|(_, n)| n.parse::<usize>().ok())
        });
        out
    }

    /// Drops handler actors that have stopped; returns how many handlers are left.
    pub fn prune(&self) -> usize {
        self.inner.snapshot().iter().map(|e| e.prune()).sum()
    }

    /// Reads one frame of `event` and starts delivering it: `channel` is the endpoint it came
    /// from (legacy frames are bare payloads, so they are read only by their decodes; `None`
    /// for a recorded payload, which is checked as a whole), `meta` builds the event's metadata
    /// from the frame when it could be read. With `wait`, an actor's delivery completes when it has
    /// handled the event; without, once it is in its mailbox (only a full mailbox waits). A
    /// closure or a route always runs to completion.
    ///
    /// Decoding runs code driven by a server's bytes: a panic there (a bug) costs this frame,
    /// reported with its start ([`FrameProblem::Panicked`]), never the caller.
    pub fn dispatch(
        &self,
        event: &EventName,
        channel: Option<Channel>,
        text: &str,
        meta: &dyn Fn(Option<&Frame<'_>>) -> EventMeta,
        wait: bool,
    ) -> Dispatch {
        std::panic::catch_unwind(AssertUnwindSafe(|| {
            self.prepare(event, channel, text, meta, wait)
        }))
        .unwrap_or_else(|panic| Dispatch {
            meta: meta(None),
            deliveries: Deliveries::default(),
            problems: vec![FrameProblem::Panicked {
                message: panic_message(&*panic),
                excerpt: human::excerpt(text, 80),
            }],
            duplicate: false,
        })
    }

    fn prepare(
        &self,
        event: &EventName,
        channel: Option<Channel>,
        text: &str,
        meta: &dyn Fn(Option<&Frame<'_>>) -> EventMeta,
        wait: bool,
    ) -> Dispatch {
        let problem = |meta: EventMeta, p: FrameProblem| Dispatch {
            meta,
            deliveries: Deliveries::default(),
            problems: vec![p],
            duplicate: false,
        };
        // Legacy frames are bare payloads: the decodes below are the only pass over them.
        let frame = if channel == Some(Channel::Legacy) {
            Frame::bare(text)
        } else {
            match Frame::parse(event, text) {
                Ok(f) => f,
                Err(e) => return problem(meta(None), FrameProblem::InvalidJson(e)),
            }
        };
        let meta = meta(Some(&frame));
        if !self.admitted(event, channel, text, &meta) {
            return Dispatch {
                meta,
                deliveries: Deliveries::default(),
                problems: Vec::new(),
                duplicate: true,
            };
        }
        let mut deliveries = Deliveries::default();
        let mut errors = Vec::new();
        for entry in self.inner.snapshot().iter() {
            if let Err(e) =
                entry.dispatch(&frame, &meta, channel, &self.inner, wait, &mut deliveries)
            {
                errors.push(e);
            }
        }
        if errors.is_empty() {
            return Dispatch {
                meta,
                deliveries,
                problems: Vec::new(),
                duplicate: false,
            };
        }
        // A bare frame is checked only by its decodes: when they fail, is it JSON at all? (If
        // it is not, every decode failed and nothing was delivered.)
        if !frame.is_checked() {
            if let Err(e) = Frame::parse(event, text) {
                return problem(meta, FrameProblem::InvalidJson(e));
            }
        }
        let data = Arc::new(frame.value(event).unwrap_or_default());
        let problems = errors
            .into_iter()
            .map(|error| FrameProblem::WrongShape {
                error,
                data: data.clone(),
            })
            .collect();
        Dispatch {
            meta,
            deliveries,
            problems,
            duplicate: false,
        }
    }

    /// Asks the gate, if there is one, whether a bare `messages.upsert` payload is delivered.
    fn admitted(
        &self,
        event: &EventName,
        channel: Option<Channel>,
        text: &str,
        meta: &EventMeta,
    ) -> bool {
        if !matches!(channel, None | Some(Channel::Legacy))
            || event.kind() != Some(eventsock_core::EventKind::MessagesUpsert)
        {
            return true;
        }
        let gate = self
            .inner
            .gate
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let Some(gate) = gate else {
            return true;
        };
        match serde_json::from_str::<MessageKey<'_>>(text) {
            Ok(key) if key.id.as_deref().is_some_and(|id| !id.is_empty()) => {
                gate.admit(meta, key.id.as_deref().unwrap_or_default(), key.seconds())
            }
            // No id to tell duplicates by (or not JSON: the decodes report it).
            _ => true,
        }
    }

    /// Tells the [`Router::undelivered`] handlers about a frame that could not be delivered.
    pub async fn report(&self, meta: &EventMeta, problem: &FrameProblem) {
        let handlers: Vec<_> = lock(&self.inner.undelivered).clone();
        let sends = handlers.iter().map(|h| {
            h.send(Undelivered {
                meta: meta.clone(),
                error: problem.clone(),
            })
        });
        join_all(sends).await;
    }
}

/// One frame, read and on its way to its handlers: [`Router::dispatch`].
#[derive(Debug)]
#[must_use = "a dispatch does nothing until it is settled"]
pub struct Dispatch {
    /// The event's metadata.
    pub meta: EventMeta,
    /// What went wrong with the frame (it may still have reached the handlers of other types).
    pub problems: Vec<FrameProblem>,
    /// The [`Gate`] held it back: a message delivered before.
    pub duplicate: bool,
    deliveries: Deliveries,
}

impl Dispatch {
    /// Whether the frame reached any handler.
    pub fn is_routed(&self) -> bool {
        !self.deliveries.pending.is_empty() || !self.deliveries.done.is_empty()
    }

    /// Reports the problems to `router`'s undelivered handlers, then waits for every delivery.
    pub async fn settle(self, router: &Router) -> Tally {
        for problem in &self.problems {
            router.report(&self.meta, problem).await;
        }
        let mut tally = Tally {
            problems: self.problems.len(),
            ..Tally::default()
        };
        let outcomes = self.deliveries.done.into_iter();
        let mut pending = self.deliveries.pending;
        let pending = match pending.len() {
            0 => Vec::new(),
            1 => vec![pending.swap_remove(0).await],
            _ => join_all(pending).await,
        };
        for outcome in outcomes.chain(pending) {
            match outcome {
                Outcome::Handled => tally.handled += 1,
                Outcome::Failed(e) => {
                    tally.failed += 1;
                    tally.errors.push(e);
                }
                Outcome::Gone => tally.gone += 1,
            }
        }
        tally
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eventsock_core::{legacy, EventKind};
    use std::sync::atomic::AtomicUsize;

    fn meta(event: &EventName) -> impl Fn(Option<&Frame<'_>>) -> EventMeta + '_ {
        move |_| EventMeta::live(event.clone(), "codechat")
    }

    fn settle(router: &Router, event: EventKind, text: &str) -> (Vec<String>, Tally) {
        let event = EventName::from(event);
        let dispatch = router.dispatch(&event, Some(Channel::Legacy), text, &meta(&event), true);
        let problems = dispatch.problems.iter().map(ToString::to_string).collect();
        let tally = actix_rt::System::new().block_on(dispatch.settle(router));
        (problems, tally)
    }

    type Msg = Event<legacy::MessagesUpsert>;

    #[test]
    fn each_handler_of_a_type_gets_the_event_and_others_do_not() {
        let seen = Arc::new(AtomicUsize::new(0));
        let (a, b) = (seen.clone(), seen.clone());
        let router = Router::new()
            .on(move |m: Msg, cx: Ctx| {
                assert_eq!(
                    (m.text(), cx.chat()),
                    (Some("hi"), Some("1@s.whatsapp.net"))
                );
                a.fetch_add(1, Ordering::Relaxed);
                async { Ok(()) }
            })
            .on(move |_: Msg, _: Ctx| {
                b.fetch_add(10, Ordering::Relaxed);
                async { Ok(()) }
            })
            .on(|_: Event<legacy::SendMessage>, _: Ctx| async { Err("not this one".into()) });
        let text = r#"{"keyId":"A","keyRemoteJid":"1@s.whatsapp.net","content":{"text":"hi"}}"#;
        let (problems, tally) = settle(&router, EventKind::MessagesUpsert, text);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!((tally.handled, tally.failed), (2, 0));
        assert_eq!(seen.load(Ordering::Relaxed), 11);
        let names: Vec<_> = router
            .handlers()
            .into_iter()
            .map(|h| (h.name, h.handled))
            .collect();
        assert_eq!(
            names,
            [
                ("legacy::MessagesUpsert#0".to_owned(), 1),
                ("legacy::MessagesUpsert#1".to_owned(), 1),
                ("legacy::SendMessage#2".to_owned(), 0)
            ]
        );
    }

    #[test]
    fn a_panicking_or_failing_handler_fails_its_delivery_only() {
        let router = Router::new()
            .on(
                |_: Msg, _: Ctx| -> std::future::Ready<Result<(), BoxError>> {
                    panic!("before the future")
                },
            )
            .on(|_: Msg, _: Ctx| async { panic!("inside the future") })
            .on(|_: Msg, _: Ctx| async { Err("refused".into()) })
            .on(|_: Msg, _: Ctx| async { Ok(()) });
        let (problems, tally) = settle(&router, EventKind::MessagesUpsert, r#"{"keyId":"A"}"#);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!((tally.handled, tally.failed, tally.gone), (1, 3, 0));
        assert_eq!(
            tally.errors,
            [
                "the handler panicked: before the future",
                "the handler panicked: inside the future",
                "the handler failed: refused"
            ]
        );
        let failed: Vec<u64> = router.handlers().iter().map(|h| h.failed).collect();
        assert_eq!(failed, [1, 1, 1, 0]);
    }

    #[test]
    fn a_frame_of_the_wrong_shape_is_a_problem_and_still_reaches_raw_handlers() {
        let raw = Arc::new(AtomicUsize::new(0));
        let r = raw.clone();
        let router = Router::new()
            .on(|_: Msg, _: Ctx| async { Ok(()) })
            .raw_route(
                None,
                Route::from_fn(move |_: RawEvent| {
                    r.fetch_add(1, Ordering::Relaxed);
                    async { Ok::<_, BoxError>(()) }
                }),
            );
        let (problems, tally) =
            settle(&router, EventKind::MessagesUpsert, r#"{"keyFromMe":"yes"}"#);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("keyFromMe"), "{problems:?}");
        assert_eq!((tally.handled, tally.problems), (1, 1));
        assert_eq!(raw.load(Ordering::Relaxed), 1);
        let (problems, tally) = settle(&router, EventKind::MessagesUpsert, "{not json");
        assert_eq!((problems.len(), tally.delivered()), (1, false));
    }

    /// A frame handler gets each frame's text, trimmed, and never a frame that is not JSON:
    /// that one is a problem, reported, and the stream goes on.
    #[test]
    fn a_frame_handler_gets_the_text_of_json_frames_only() {
        struct Texts(Arc<Mutex<Vec<String>>>);
        impl actix::Actor for Texts {
            type Context = actix::Context<Self>;
        }
        impl actix::Handler<RawFrame> for Texts {
            type Result = ();
            fn handle(&mut self, f: RawFrame, _: &mut actix::Context<Self>) {
                lock(&self.0).push(f.data.get().to_owned());
            }
        }
        actix_rt::System::new().block_on(async {
            let texts = Arc::<Mutex<Vec<String>>>::default();
            let router = Router::new().frames(
                [EventKind::MessagesUpsert.into()],
                actix::Actor::start(Texts(texts.clone())).recipient(),
            );
            let event = EventName::from(EventKind::MessagesUpsert);
            let mut outcomes = Vec::new();
            for text in [
                " {\"keyId\": \"A1\"} ",
                "{not json",
                "\u{0}\u{7f}garbage",
                "{\"keyId\":\"A2\"} trailing",
                "{\"keyId\":\"A3\"}",
            ] {
                let d = router.dispatch(&event, Some(Channel::Legacy), text, &meta(&event), true);
                let problems = d.problems.len();
                let tally = d.settle(&router).await;
                outcomes.push((problems, tally.handled));
            }
            assert_eq!(outcomes, [(0, 1), (1, 0), (1, 0), (1, 0), (0, 1)]);
            assert_eq!(*lock(&texts), ["{\"keyId\": \"A1\"}", "{\"keyId\":\"A3\"}"]);
        });
    }

    #[test]
    fn subscriptions_follow_the_protocol() {
        let router = Router::new().on(|_: Msg, _: Ctx| async { Ok(()) });
        let legacy = router.subscriptions(Protocol::Legacy).unwrap();
        assert_eq!(
            legacy,
            [(Channel::Legacy, EventName::from(EventKind::MessagesUpsert))]
        );
        assert_eq!(router.subscriptions(Protocol::V2).unwrap(), []);
        let unserved = Router::new().raw_route(
            Some(vec![EventName::parse("message.upsert")]),
            Route::from_fn(|_: RawEvent| async { Ok::<_, BoxError>(()) }),
        );
        assert_eq!(
            unserved
                .subscriptions(Protocol::Legacy)
                .unwrap_err()
                .as_str(),
            "message.upsert"
        );
    }
}
