//! The handlers of one payload type, and how one event is delivered to each of them.

use crate::context::Ctx;
use crate::dispatcher::RunState;
use crate::route::{BoxError, HandlerError, Route};
use crate::Received;
use actix::prelude::SendError;
use actix::Recipient;
use eventsock_core::histogram::{self, Histogram, HistogramSnapshot};
use eventsock_core::{
    human, Channel, DecodeError, EventMeta, EventName, Frame, Payload, Protocol, RawEvent, RawFrame,
};
use futures_util::future::LocalBoxFuture;
use futures_util::FutureExt;
use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How one handler did with one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Handled (for an actor: in its mailbox, or handled when the caller waited).
    Handled,
    /// The handler returned an error or panicked; it stays registered.
    Failed(String),
    /// The handler actor has stopped: no event reaches it again.
    Gone,
}

/// Counters of one handler, shared by every delivery to it (and by the routers that hold it).
#[derive(Debug)]
pub(crate) struct Counters {
    handled: AtomicU64,
    failed: AtomicU64,
    /// The handler is an actor that has stopped: it is skipped from then on.
    gone: AtomicBool,
    /// How long each delivery took, to its outcome.
    duration: Histogram,
    /// How old each message was when its frame was read (then less its timestamp).
    age: Histogram,
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            handled: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            gone: AtomicBool::new(false),
            duration: Histogram::new(histogram::SHORT),
            age: Histogram::new(histogram::AGES),
        }
    }
}

/// How one handler has done so far: [`Router::handlers`](crate::Router::handlers).
#[derive(Debug, Clone, PartialEq)]
pub struct HandlerStats {
    /// The handler's name: its payload type and its registration number (`legacy::MessagesUpsert#0`).
    pub name: String,
    /// Events handled (for an actor: put in its mailbox).
    pub handled: u64,
    /// Events whose handling failed (an error, a panic, a stopped actor).
    pub failed: u64,
    /// How long each delivery took, to its outcome (for an actor that was not waited for:
    /// until it was in the mailbox).
    pub duration: HistogramSnapshot,
    /// How old each message was when its frame was read: that time less the message's
    /// timestamp (whole seconds, as the server gives it). Messages only.
    pub age: HistogramSnapshot,
}

pub(crate) type FnHandler<M> =
    dyn Fn(M) -> LocalBoxFuture<'static, Result<(), BoxError>> + Send + Sync;

/// One handler of `M`, as registered.
pub(crate) enum Sink<M: actix::Message<Result = ()> + Send> {
    Actor(Recipient<M>),
    Route(Route<M>),
    Fn(Arc<FnHandler<M>>),
}

impl<M: actix::Message<Result = ()> + Send> Clone for Sink<M> {
    fn clone(&self) -> Self {
        match self {
            Sink::Actor(a) => Sink::Actor(a.clone()),
            Sink::Route(r) => Sink::Route(r.clone()),
            Sink::Fn(f) => Sink::Fn(f.clone()),
        }
    }
}

pub(crate) struct Handler<M: actix::Message<Result = ()> + Send> {
    pub(crate) name: Arc<str>,
    pub(crate) sink: Sink<M>,
    pub(crate) counters: Arc<Counters>,
}

impl<M: actix::Message<Result = ()> + Send> Clone for Handler<M> {
    fn clone(&self) -> Self {
        Handler {
            name: self.name.clone(),
            sink: self.sink.clone(),
            counters: self.counters.clone(),
        }
    }
}

type Pending = LocalBoxFuture<'static, Outcome>;

/// The deliveries of one frame: what came of those that completed at once (counted, with no
/// allocation unless one failed), and those to wait for (the first kept inline: one handler, the
/// common case, allocates no list).
#[derive(Default)]
pub(crate) struct Deliveries {
    first: Option<Pending>,
    more: Vec<Pending>,
    outcomes: Outcomes,
}

/// How the deliveries of one frame did.
#[derive(Debug, Default)]
pub(crate) struct Outcomes {
    pub(crate) handled: usize,
    pub(crate) failed: usize,
    pub(crate) gone: usize,
    /// The errors of the failed deliveries, in order.
    pub(crate) errors: Vec<String>,
}

impl Outcomes {
    fn add(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Handled => self.handled += 1,
            Outcome::Failed(e) => {
                self.failed += 1;
                self.errors.push(e);
            }
            Outcome::Gone => self.gone += 1,
        }
    }
}

impl Deliveries {
    /// A delivery to wait for.
    fn wait_for(&mut self, pending: Pending) {
        match self.first {
            None => self.first = Some(pending),
            Some(_) => self.more.push(pending),
        }
    }

    /// Whether nothing was delivered.
    pub(crate) fn is_empty(&self) -> bool {
        self.first.is_none()
            && self.outcomes.handled + self.outcomes.failed + self.outcomes.gone == 0
    }

    /// Waits for every delivery; how they all did, those done at once first.
    pub(crate) async fn settle(self) -> Outcomes {
        let mut outcomes = self.outcomes;
        match (self.first, self.more.is_empty()) {
            (None, _) => {}
            (Some(one), true) => outcomes.add(one.await),
            (Some(first), false) => {
                let all = std::iter::once(first).chain(self.more);
                for outcome in futures_util::future::join_all(all).await {
                    outcomes.add(outcome);
                }
            }
        }
        outcomes
    }
}

impl std::fmt::Debug for Deliveries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deliveries")
            .field(
                "pending",
                &(usize::from(self.first.is_some()) + self.more.len()),
            )
            .field("done", &self.outcomes)
            .finish()
    }
}

/// Runs a handler's future; a panic in it becomes [`Outcome::Failed`].
fn guarded<F>(fut: F, counters: Arc<Counters>, started: Instant) -> Pending
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
        counters.count(&outcome, started);
        outcome
    })
}

impl Counters {
    /// Whether the handler still takes events (an actor that stopped does not).
    pub(crate) fn alive(&self) -> bool {
        !self.gone.load(Ordering::Relaxed)
    }

    /// Counts an outcome; returns the time it read (the next handler's start).
    fn count(&self, outcome: &Outcome, started: Instant) -> Instant {
        let now = Instant::now();
        self.duration
            .observe(now.saturating_duration_since(started));
        let c = match outcome {
            Outcome::Handled => &self.handled,
            Outcome::Failed(_) => &self.failed,
            Outcome::Gone => {
                self.gone.store(true, Ordering::Relaxed);
                &self.failed
            }
        };
        c.fetch_add(1, Ordering::Relaxed);
        now
    }

    /// Counts an outcome known at once; returns the time it read.
    fn done(&self, outcome: Outcome, started: Instant, out: &mut Deliveries) -> Instant {
        let now = self.count(&outcome, started);
        out.outcomes.add(outcome);
        now
    }
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
    /// Whether this handler still takes events (an actor that stopped does not).
    pub(crate) fn alive(&self) -> bool {
        self.counters.alive()
    }

    /// Starts delivering `m`. With `wait`, an actor's delivery completes when it has handled
    /// the message; without, once it is in its mailbox (`try_send`: no round trip), and only a
    /// full mailbox makes the delivery wait. A closure or route always runs to completion.
    ///
    /// `started` is when the delivery began (the time the previous handler's delivery ended:
    /// one clock read per handler that settles at once); returns when this one ended, or, for
    /// a delivery still pending, the time now.
    pub(crate) fn deliver(
        &self,
        m: M,
        wait: bool,
        out: &mut Deliveries,
        started: Instant,
    ) -> Instant {
        // Shared (a refcount) only with a delivery that is still pending.
        let counters = &self.counters;
        match &self.sink {
            Sink::Actor(actor) => {
                let sent = if wait {
                    actor.send(m)
                } else {
                    match actor.try_send(m) {
                        Ok(()) => return counters.done(Outcome::Handled, started, out),
                        Err(SendError::Full(m)) => actor.send(m),
                        Err(SendError::Closed(_)) => {
                            return counters.done(Outcome::Gone, started, out)
                        }
                    }
                };
                let counters = counters.clone();
                out.wait_for(Box::pin(async move {
                    let outcome = match sent.await {
                        Ok(()) => Outcome::Handled,
                        Err(_) => Outcome::Gone,
                    };
                    counters.count(&outcome, started);
                    outcome
                }));
                Instant::now()
            }
            // A closure may panic before it returns its future: that fails this delivery only.
            Sink::Route(route) => {
                match std::panic::catch_unwind(AssertUnwindSafe(|| route.call(m))) {
                    Ok(call) => {
                        out.wait_for(guarded(
                            async move { call.await.map(drop).map_err(|e| e.to_string()) },
                            counters.clone(),
                            started,
                        ));
                        Instant::now()
                    }
                    Err(panic) => counters.done(panicked(&*panic), started, out),
                }
            }
            Sink::Fn(f) => {
                // Called and polled once at once: a handler that does not wait (most, and any
                // that only queues a reply) is done here, without a task of its own.
                let first = std::panic::catch_unwind(AssertUnwindSafe(|| {
                    let mut call = f(m);
                    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
                    match call.as_mut().poll(&mut cx) {
                        std::task::Poll::Ready(result) => Ok(result),
                        std::task::Poll::Pending => Err(call),
                    }
                }));
                match first {
                    Ok(Ok(Ok(()))) => counters.done(Outcome::Handled, started, out),
                    Ok(Ok(Err(e))) => counters.done(failed(e), started, out),
                    Ok(Err(call)) => {
                        out.wait_for(guarded(
                            async move { call.await.map_err(failure) },
                            counters.clone(),
                            started,
                        ));
                        Instant::now()
                    }
                    Err(panic) => counters.done(panicked(&*panic), started, out),
                }
            }
        }
    }
}

fn failure(e: BoxError) -> String {
    HandlerError::Failed(Arc::new(e)).to_string()
}

fn failed(e: BoxError) -> Outcome {
    Outcome::Failed(failure(e))
}

fn panicked(panic: &(dyn Any + Send)) -> Outcome {
    Outcome::Failed(HandlerError::Panicked(panic_message(panic)).to_string())
}

/// The handlers of one kind of message, as the router keeps them (an [`Entries`] of a
/// [`Kind`]: typed or raw).
pub(crate) trait Entry: Send + Sync + 'static {
    fn as_any(&self) -> &dyn Any;
    fn as_any_mut(&mut self) -> &mut dyn Any;
    /// A copy holding the same handlers (their names and counters too).
    fn copy(&self) -> Box<dyn Entry>;
    /// An entry of the same type, with no handlers.
    fn empty(&self) -> Box<dyn Entry>;
    /// Adds copies of `other`'s handlers (an entry of the same type), named by `name`.
    fn extend(&mut self, other: &dyn Entry, name: &mut dyn FnMut(&str) -> Arc<str>);
    /// The (channel, event) pairs this entry needs a server of `protocol` to send; `Err` names
    /// an event that server never serves.
    fn subscriptions(&self, protocol: Protocol) -> Result<Vec<(Channel, EventName)>, EventName>;
    /// Whether its handlers are given a [`Ctx`](crate::Ctx), and so may send: typed handlers
    /// are, raw ones (a recorder, an ingest) are not.
    fn answers(&self) -> bool;
    /// Decodes the frame, if this entry takes it, and starts a delivery to each handler.
    fn dispatch(
        &self,
        frame: &Frame<'_>,
        to: &To<'_>,
        out: &mut Deliveries,
    ) -> Result<(), DecodeError>;
    /// How many handlers still take events.
    fn alive(&self) -> usize;
    fn stats(&self, out: &mut Vec<HandlerStats>);
}

/// Where one frame goes: its metadata, the endpoint it came from (`None`: a recorded or
/// recovered payload), the run, and whether to wait for actors.
pub(crate) struct To<'a> {
    pub(crate) meta: &'a EventMeta,
    pub(crate) channel: Option<Channel>,
    pub(crate) run: &'a RunState,
    pub(crate) wait: bool,
}

/// One kind of handler: what is registered, which events it needs, and how a frame reaches it.
pub(crate) trait Kind: Send + Sync + 'static {
    /// One handler, as registered.
    type Item: Clone + Send + Sync + 'static;
    /// Its name and counters.
    fn head(item: &Self::Item) -> (&Arc<str>, &Counters);
    fn rename(item: &mut Self::Item, name: Arc<str>);
    fn subscriptions(
        items: &[Self::Item],
        protocol: Protocol,
    ) -> Result<Vec<(Channel, EventName)>, EventName>;
    /// Whether its handlers are given a context to send with.
    const ANSWERS: bool;
    fn dispatch(
        items: &[Self::Item],
        frame: &Frame<'_>,
        to: &To<'_>,
        out: &mut Deliveries,
    ) -> Result<(), DecodeError>;
}

/// The handlers of one kind, in registration order.
pub(crate) struct Entries<K: Kind> {
    pub(crate) items: Vec<K::Item>,
}

impl<K: Kind> Default for Entries<K> {
    fn default() -> Self {
        Entries { items: Vec::new() }
    }
}

impl<K: Kind> Entry for Entries<K> {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }

    fn copy(&self) -> Box<dyn Entry> {
        Box::new(Entries::<K> {
            items: self.items.clone(),
        })
    }

    fn empty(&self) -> Box<dyn Entry> {
        Box::new(Entries::<K>::default())
    }

    fn extend(&mut self, other: &dyn Entry, name: &mut dyn FnMut(&str) -> Arc<str>) {
        let Some(other) = other.as_any().downcast_ref::<Entries<K>>() else {
            return;
        };
        for item in &other.items {
            let mut item = item.clone();
            let renamed = name(K::head(&item).0);
            K::rename(&mut item, renamed);
            self.items.push(item);
        }
    }

    fn subscriptions(&self, protocol: Protocol) -> Result<Vec<(Channel, EventName)>, EventName> {
        K::subscriptions(&self.items, protocol)
    }

    fn answers(&self) -> bool {
        K::ANSWERS && !self.items.is_empty()
    }

    fn dispatch(
        &self,
        frame: &Frame<'_>,
        to: &To<'_>,
        out: &mut Deliveries,
    ) -> Result<(), DecodeError> {
        K::dispatch(&self.items, frame, to, out)
    }

    fn alive(&self) -> usize {
        self.items.iter().filter(|i| K::head(i).1.alive()).count()
    }

    fn stats(&self, out: &mut Vec<HandlerStats>) {
        out.extend(self.items.iter().map(|i| {
            let (name, counters) = K::head(i);
            HandlerStats {
                name: name.to_string(),
                handled: counters.handled.load(Ordering::Relaxed),
                failed: counters.failed.load(Ordering::Relaxed),
                duration: counters.duration.snapshot(),
                age: counters.age.snapshot(),
            }
        }));
    }
}

/// Handlers of `Received<T>`: each event decoded once as `T`, and given with its context.
pub(crate) struct Typed<T>(std::marker::PhantomData<fn() -> T>);

impl<T: Payload> Kind for Typed<T> {
    const ANSWERS: bool = true;
    type Item = Handler<Received<T>>;

    fn head(h: &Self::Item) -> (&Arc<str>, &Counters) {
        (&h.name, &h.counters)
    }

    fn rename(h: &mut Self::Item, name: Arc<str>) {
        h.name = name;
    }

    fn subscriptions(
        _: &[Self::Item],
        protocol: Protocol,
    ) -> Result<Vec<(Channel, EventName)>, EventName> {
        let Some(channel) = T::channel_on(protocol) else {
            return Ok(Vec::new());
        };
        Ok(T::EVENTS
            .iter()
            .map(|k| (channel, EventName::from(*k)))
            .collect())
    }

    fn dispatch(
        handlers: &[Self::Item],
        frame: &Frame<'_>,
        to: &To<'_>,
        out: &mut Deliveries,
    ) -> Result<(), DecodeError> {
        let meta = to.meta;
        let other = to.channel.filter(|c| *c != T::CHANNEL);
        if !T::accepts(&meta.event)
            || other.is_some_and(|c| T::channel_on(Protocol::of(c)) != Some(c))
        {
            return Ok(());
        }
        if !handlers.iter().any(Handler::alive) {
            return Ok(());
        }
        let event = match other {
            // Another server's shape, read as this type.
            Some(channel) => frame.translate::<T>(channel, meta.clone())?,
            // Checked, and built now unless it is decoded at its first access.
            None => frame.event::<T>(meta.clone())?,
        };
        // How old the message was when its frame was read (that time less its timestamp, whole
        // seconds; no clock is read here): for each handler.
        let age = event.as_message().and_then(|m| m.timestamp()).map(|sent| {
            let read = meta
                .received_at
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs();
            Duration::from_secs(read.saturating_sub(u64::try_from(sent).unwrap_or(0)))
        });
        // One context per event, shared by its handlers; each gets its own ids.
        let shared = to.run.event_ctx(meta, Some(event.shared()), handlers.len());
        // One clock read per handler that settles at once: each starts when the last ended.
        let mut at = Instant::now();
        for (slot, h) in handlers.iter().enumerate() {
            if !h.alive() {
                continue;
            }
            if let Some(age) = age {
                h.counters.age.observe(age);
            }
            let received = Received {
                event: event.clone(),
                cx: Ctx::of_handler(shared.clone(), h.name.clone(), slot),
            };
            at = h.deliver(received, to.wait, out, at);
        }
        Ok(())
    }
}

/// What a tap receives: a whole frame, as JSON ([`RawEvent`]) or as the text the server sent
/// ([`RawFrame`], checked to be JSON, not parsed: for handlers that pass events on). Sealed: these
/// two are all there are.
pub trait RawMessage:
    sealed::Sealed + actix::Message<Result = ()> + Clone + Send + 'static
{
    /// The payload of `frame`, read once for all the handlers of one frame.
    #[doc(hidden)]
    type Data: Clone;
    #[doc(hidden)]
    fn data(frame: &Frame<'_>, event: &EventName) -> Result<Self::Data, DecodeError>;
    #[doc(hidden)]
    fn new(meta: EventMeta, data: Self::Data) -> Self;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for eventsock_core::RawEvent {}
    impl Sealed for eventsock_core::RawFrame {}
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
pub(crate) type RawHandler<M> = (Option<Vec<EventName>>, Handler<M>);

/// Raw handlers of `M`: taps that see every frame whole (a recorder, the NATS ingest, a
/// printer), with no context to answer with.
pub(crate) struct Raw<M>(std::marker::PhantomData<fn() -> M>);

impl<M: RawMessage> Kind for Raw<M> {
    const ANSWERS: bool = false;
    type Item = RawHandler<M>;

    fn head(h: &Self::Item) -> (&Arc<str>, &Counters) {
        (&h.1.name, &h.1.counters)
    }

    fn rename(h: &mut Self::Item, name: Arc<str>) {
        h.1.name = name;
    }

    fn subscriptions(
        handlers: &[Self::Item],
        protocol: Protocol,
    ) -> Result<Vec<(Channel, EventName)>, EventName> {
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
        handlers: &[Self::Item],
        frame: &Frame<'_>,
        to: &To<'_>,
        out: &mut Deliveries,
    ) -> Result<(), DecodeError> {
        let meta = to.meta;
        let mut data = None;
        let mut at = Instant::now();
        for (events, h) in handlers {
            if events.as_ref().is_some_and(|e| !e.contains(&meta.event)) || !h.alive() {
                continue;
            }
            let data = match &data {
                Some(d) => d,
                None => data.insert(M::data(frame, &meta.event)?),
            };
            at = h.deliver(M::new(meta.clone(), data.clone()), to.wait, out, at);
        }
        Ok(())
    }
}
