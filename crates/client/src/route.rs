//! Routing: which handlers get a subscription's frames, and the dispatcher that delivers them.
//!
//! Each subscription has one dispatcher task, fed by its connections (one after another, across
//! reconnects) through a bounded queue. The dispatcher parses each frame once, decodes it once
//! per registered payload type, and sends the typed event to every handler of that type. It
//! waits until every handler has handled an event before it takes the next one: that is what
//! keeps order within a subscription, and what makes a slow handler push back on the socket.

use crate::status::Counters;
use actix::{MailboxError, Recipient};
use bytestring::ByteString;
use eventsock_core::{
    human, Channel, DecodeError, Event, EventMeta, EventName, Frame, FrameProblem, Payload,
    RawEvent, Undelivered,
};
use futures_util::future::{join_all, LocalBoxFuture};
use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::SystemTime;
use tokio::sync::mpsc;

/// One frame read from a socket, waiting for the dispatcher.
#[derive(Debug)]
pub(crate) struct Inbound {
    pub(crate) body: Body,
    pub(crate) generation: u64,
    pub(crate) seq: u64,
    pub(crate) received_at: SystemTime,
    /// Its share of the queue's byte budget, given back when the dispatcher drops it.
    pub(crate) room: Option<crate::queue::Room>,
}

#[derive(Debug)]
pub(crate) enum Body {
    Text(ByteString),
    Binary(usize),
}

type Delivery = LocalBoxFuture<'static, Result<(), MailboxError>>;

/// The deliveries of one frame: those that completed at once are only counted; those that must
/// wait (a full mailbox, or the dispatcher asked to wait) are kept to be awaited.
#[derive(Default)]
pub(crate) struct Deliveries {
    pending: Vec<Delivery>,
    done: usize,
    failed: usize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Handler lists are only pushed to and pruned; a panic elsewhere cannot leave them torn.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Handlers of one kind on one subscription.
pub(crate) trait Route: Send + Sync + 'static {
    fn as_any(&self) -> &dyn Any;
    /// Decodes the frame for this route's handlers and starts a delivery to each; `wait`: each
    /// delivery completes once handled, else once in the handler's mailbox (see [`Handlers::send`]).
    fn dispatch(
        &self,
        frame: &Frame<'_>,
        meta: &EventMeta,
        wait: bool,
        out: &mut Deliveries,
    ) -> Result<(), DecodeError>;
    /// Drops handlers that have stopped; returns how many are left.
    fn prune(&self) -> usize;
}

/// The handlers of one message type on one subscription.
struct Handlers<M: actix::Message<Result = ()> + Send> {
    list: Mutex<Vec<Recipient<M>>>,
}

impl<M> Handlers<M>
where
    M: actix::Message<Result = ()> + Send + 'static,
{
    fn new() -> Self {
        Handlers {
            list: Mutex::new(Vec::new()),
        }
    }

    fn add(&self, handler: Recipient<M>) {
        lock(&self.list).push(handler);
    }

    /// Starts a delivery to each handler. `shared` builds the part all handlers share (a
    /// decoded payload, a JSON value) once, and only if there is a handler; it may fail.
    ///
    /// With `wait`, each delivery completes when the handler has handled the message. Without,
    /// the message is put in the handler's mailbox if there is room (`try_send`: no response
    /// channel, no round trip), and only a full mailbox makes the delivery wait. Either way each
    /// handler's mailbox is FIFO and nothing overtakes a waiting delivery (the dispatcher awaits
    /// every delivery of a frame before the next frame), so order holds and the mailbox bound
    /// holds. The dispatcher waits for the last frame it has, so when its queue is empty every
    /// message has been handled.
    fn send<S, E>(
        &self,
        shared: impl FnOnce() -> Result<S, E>,
        message: impl Fn(&S) -> M,
        wait: bool,
        out: &mut Deliveries,
    ) -> Result<(), E> {
        let list = lock(&self.list);
        if list.is_empty() {
            return Ok(());
        }
        let shared = shared()?;
        for h in list.iter() {
            let m = message(&shared);
            if wait {
                out.pending.push(Box::pin(h.send(m)));
                continue;
            }
            match h.try_send(m) {
                Ok(()) => out.done += 1,
                Err(actix::prelude::SendError::Full(m)) => out.pending.push(Box::pin(h.send(m))),
                Err(actix::prelude::SendError::Closed(_)) => out.failed += 1,
            }
        }
        Ok(())
    }

    fn prune(&self) -> usize {
        let mut list = lock(&self.list);
        list.retain(Recipient::connected);
        list.len()
    }
}

/// Handlers of `Event<T>`.
pub(crate) struct TypedRoute<T: Payload>(Handlers<Event<T>>);

impl<T: Payload> TypedRoute<T> {
    pub(crate) fn new() -> Self {
        TypedRoute(Handlers::new())
    }
}

impl<T: Payload> Route for TypedRoute<T> {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn dispatch(
        &self,
        frame: &Frame<'_>,
        meta: &EventMeta,
        wait: bool,
        out: &mut Deliveries,
    ) -> Result<(), DecodeError> {
        self.0.send(
            || frame.decode::<T>(&meta.event).map(Arc::new),
            |payload| Event {
                meta: meta.clone(),
                payload: payload.clone(),
            },
            wait,
            out,
        )
    }

    fn prune(&self) -> usize {
        self.0.prune()
    }
}

/// Handlers of `RawEvent`: every frame, as JSON.
pub(crate) struct RawRoute(Handlers<RawEvent>);

impl RawRoute {
    pub(crate) fn new() -> Self {
        RawRoute(Handlers::new())
    }
}

impl Route for RawRoute {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn dispatch(
        &self,
        frame: &Frame<'_>,
        meta: &EventMeta,
        wait: bool,
        out: &mut Deliveries,
    ) -> Result<(), DecodeError> {
        self.0.send(
            || frame.value(&meta.event).map(Arc::new),
            |data| RawEvent {
                meta: meta.clone(),
                data: data.clone(),
            },
            wait,
            out,
        )
    }

    fn prune(&self) -> usize {
        self.0.prune()
    }
}

/// The routes of one subscription. Shared by the supervisor (which adds handlers, also while
/// running) and the dispatcher (which reads a snapshot per frame).
pub(crate) struct RouteTable {
    /// Replaced whole when a route is added (rare), so a frame's snapshot is one refcount.
    routes: RwLock<Arc<[Arc<dyn Route>]>>,
}

impl Default for RouteTable {
    fn default() -> Self {
        RouteTable {
            routes: RwLock::new(Arc::from(Vec::new())),
        }
    }
}

impl RouteTable {
    /// The route of type `R`, created with `make` if there is none yet.
    pub(crate) fn route<R: Route>(&self, make: impl FnOnce() -> R) -> Arc<dyn Route> {
        let mut routes = self.routes.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(r) = routes.iter().find(|r| r.as_any().is::<R>()) {
            return r.clone();
        }
        let r: Arc<dyn Route> = Arc::new(make());
        let mut grown = routes.to_vec();
        grown.push(r.clone());
        *routes = Arc::from(grown);
        r
    }

    fn snapshot(&self) -> Arc<[Arc<dyn Route>]> {
        self.routes
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Adds a typed handler to a table.
pub(crate) fn add_typed<T: Payload>(table: &RouteTable, handler: Recipient<Event<T>>) {
    let route = table.route(TypedRoute::<T>::new);
    if let Some(typed) = route.as_any().downcast_ref::<TypedRoute<T>>() {
        typed.0.add(handler);
    }
}

/// Adds a raw handler to a table.
pub(crate) fn add_raw(table: &RouteTable, handler: Recipient<RawEvent>) {
    let route = table.route(RawRoute::new);
    if let Some(raw) = route.as_any().downcast_ref::<RawRoute>() {
        raw.0.add(handler);
    }
}

/// Who hears about frames that could not be delivered as their type.
pub(crate) type UndeliveredHandlers = Arc<Mutex<Vec<Recipient<Undelivered>>>>;

/// A frame made ready to deliver, or what is wrong with it.
enum Prepared {
    /// Nothing to deliver: report this.
    Problem(EventMeta, FrameProblem),
    /// Deliveries started; `problems` (types it did not fit) to report.
    Ready {
        meta: EventMeta,
        deliveries: Deliveries,
        problems: Vec<FrameProblem>,
    },
}

/// What a dispatcher needs to deliver one subscription's frames.
pub(crate) struct Dispatcher {
    pub(crate) event: EventName,
    /// The endpoint: legacy frames are bare by protocol, so they skip the envelope check.
    pub(crate) channel: Channel,
    /// [`Delivery::Pipelined`](crate::Delivery): wait for handlers only on the last frame queued.
    pub(crate) pipelined: bool,
    pub(crate) instance: Arc<str>,
    pub(crate) routes: Arc<RouteTable>,
    pub(crate) undelivered: UndeliveredHandlers,
    pub(crate) counters: Arc<Counters>,
}

impl Dispatcher {
    /// Delivers every frame from `queue`, in order, until every sender is gone and the queue is
    /// empty: frames already read are always handled, also at shutdown.
    pub(crate) async fn run(self, mut queue: mpsc::Receiver<Inbound>) {
        while let Some(item) = queue.recv().await {
            // Pipelined: wait for the handlers only when this is the last frame there is (see
            // `Handlers::send`); under load, frames go straight into the handlers' mailboxes.
            let wait = !self.pipelined || queue.is_empty();
            self.deliver(item, wait).await;
        }
    }

    fn meta(&self, frame: Option<&Frame<'_>>, item: &Inbound) -> EventMeta {
        let info = frame.and_then(Frame::instance).map(Arc::new);
        let instance = info
            .as_ref()
            .and_then(|i| i.name.as_deref())
            .map(Arc::from)
            .unwrap_or_else(|| self.instance.clone());
        EventMeta {
            event: frame
                .and_then(Frame::event_name)
                .unwrap_or_else(|| self.event.clone()),
            instance: Some(instance),
            instance_info: info,
            server_time: frame.and_then(Frame::timestamp),
            received_at: item.received_at,
            seq: item.seq,
            generation: item.generation,
        }
    }

    async fn deliver(&self, item: Inbound, wait: bool) {
        let text = match &item.body {
            Body::Text(t) => t.clone(),
            Body::Binary(len) => {
                let meta = self.meta(None, &item);
                return self.report(meta, FrameProblem::Binary { len: *len }).await;
            }
        };
        // Decoding runs code driven by the server's bytes: a panic there (a bug) costs this
        // frame, reported with its start, never the subscription.
        let prepared =
            std::panic::catch_unwind(AssertUnwindSafe(|| self.prepare(&text, &item, wait)))
                .unwrap_or_else(|panic| {
                    let message = panic
                        .downcast_ref::<&str>()
                        .map(|s| (*s).to_owned())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "no message".into());
                    Prepared::Problem(
                        self.meta(None, &item),
                        FrameProblem::Panicked {
                            message: human::escaped(&message).to_string(),
                            excerpt: human::excerpt(&text, 80),
                        },
                    )
                });
        let (meta, deliveries, problems) = match prepared {
            Prepared::Problem(meta, problem) => return self.report(meta, problem).await,
            Prepared::Ready {
                meta,
                deliveries,
                problems,
            } => (meta, deliveries, problems),
        };
        for problem in problems {
            self.report(meta.clone(), problem).await;
        }
        let Deliveries {
            pending,
            mut done,
            mut failed,
        } = deliveries;
        if !pending.is_empty() {
            for result in join_all(pending).await {
                match result {
                    Ok(()) => done += 1,
                    Err(_) => failed += 1,
                }
            }
        }
        if done + failed == 0 {
            Counters::bump(&self.counters.unhandled);
            tracing::debug!(seq = meta.seq, "no live handler took the event");
            return;
        }
        if done > 0 {
            Counters::bump(&self.counters.events);
        }
        if failed > 0 {
            self.counters
                .handler_failures
                .fetch_add(failed as u64, std::sync::atomic::Ordering::Relaxed);
            let left: usize = self.routes.snapshot().iter().map(|r| r.prune()).sum();
            tracing::warn!(
                failed,
                handlers_left = left,
                "a handler stopped or panicked; the event did not reach it, and it was removed"
            );
        }
    }

    /// Parses and decodes a frame and starts its deliveries: everything up to the awaits.
    fn prepare(&self, text: &str, item: &Inbound, wait: bool) -> Prepared {
        // Legacy frames are bare payloads: the decodes below are the only pass over them.
        let frame = if self.channel == Channel::Legacy {
            Frame::bare(text)
        } else {
            match Frame::parse(&self.event, text) {
                Ok(f) => f,
                Err(e) => {
                    return Prepared::Problem(self.meta(None, item), FrameProblem::InvalidJson(e))
                }
            }
        };
        let meta = self.meta(Some(&frame), item);
        let mut deliveries = Deliveries::default();
        let mut errors = Vec::new();
        for route in self.routes.snapshot().iter() {
            if let Err(error) = route.dispatch(&frame, &meta, wait, &mut deliveries) {
                errors.push(error);
            }
        }
        let mut problems = Vec::new();
        if !errors.is_empty() {
            // A bare frame is checked only by its decodes: when they fail, is it JSON at all?
            // (If it is not, every decode failed and nothing was delivered.)
            if !frame.is_checked() {
                if let Err(e) = Frame::parse(&self.event, text) {
                    return Prepared::Problem(meta, FrameProblem::InvalidJson(e));
                }
            }
            let data = Arc::new(frame.value(&self.event).unwrap_or_default());
            problems = errors
                .into_iter()
                .map(|error| FrameProblem::WrongShape {
                    error,
                    data: data.clone(),
                })
                .collect();
        }
        Prepared::Ready {
            meta,
            deliveries,
            problems,
        }
    }

    async fn report(&self, meta: EventMeta, error: FrameProblem) {
        Counters::bump(&self.counters.decode_errors);
        tracing::warn!(seq = meta.seq, generation = meta.generation, %error, "frame not delivered");
        let handlers: Vec<_> = lock(&self.undelivered).clone();
        let sends = handlers.iter().map(|h| {
            h.send(Undelivered {
                meta: meta.clone(),
                error: error.clone(),
            })
        });
        join_all(sends).await;
    }
}
