//! [`Dispatcher`]: a [`Router`] at work in one run (live, a replay, a NATS worker): where its
//! handlers' contexts send, which messages it lets through, and the one path from a frame's
//! text to its handlers.
//!
//! [`Dispatcher::handle`] takes one frame's text: the router reads it once (a bare payload, or
//! an envelope), decodes it once per registered payload type and starts a delivery to every
//! handler of that type; it then waits for them, logs what went wrong, and says how each did.

use crate::context::EventCtx;
use crate::router::{panic_message, Deliveries, Router};
use eventsock_core::{
    human, Channel, EventKind, EventMeta, EventName, Frame, FrameProblem, Identities, SharedPayload,
};
use eventsock_rest::{Delivery, Outbox, Postbox, RestClient};
use futures_util::future::join_all;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Decides, before any handler sees it, whether a `messages.upsert` message is delivered: how
/// recovery over REST keeps each message exactly once across live delivery and recovery (the
/// client's `Backfill`). Consulted for bare payloads (the legacy server's frames, recorded or
/// recovered ones).
pub trait Gate: Send + Sync + 'static {
    /// Whether message `id` (sent at `timestamp`, seconds since the epoch, when known) of
    /// `meta.instance` is to be delivered: `false` for one delivered before.
    fn admit(&self, meta: &EventMeta, id: &str, timestamp: Option<i64>) -> bool;
}

/// A router and what one run gives it. Cheap to clone; a value that no longer changes once it
/// is shared (the builder-style methods change only a value nobody else holds yet: a clone
/// taken before keeps what it had).
#[derive(Clone)]
pub struct Dispatcher {
    router: Router,
    run: Arc<RunState>,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field("router", &self.router)
            .field("rest", &self.run.answerers.len())
            .field("postbox", &self.run.postbox.is_some())
            .field("gate", &self.run.gate.is_some())
            .finish()
    }
}

/// What one run gives the handlers of its router.
#[derive(Clone)]
pub(crate) struct RunState {
    answerers: Vec<Arc<Answerer>>,
    /// Where every message goes instead of the outboxes, when set.
    postbox: Option<Arc<dyn Postbox>>,
    gate: Option<Arc<dyn Gate>>,
    pacing: eventsock_rest::Pacing,
    /// The phone-number ↔ LID pairs learnt from the events, shared with the outboxes.
    identities: Arc<Identities>,
}

/// A REST client of one instance, and its outbox, made at its first send.
pub(crate) struct Answerer {
    rest: RestClient,
    pacing: eventsock_rest::Pacing,
    identities: Arc<Identities>,
    outbox: OnceLock<Outbox>,
}

impl Answerer {
    pub(crate) fn rest(&self) -> &RestClient {
        &self.rest
    }

    /// The outbox, made at the first call.
    pub(crate) fn outbox(&self) -> &Outbox {
        self.outbox.get_or_init(|| {
            Outbox::with_identities(
                self.rest.clone(),
                self.pacing.clone(),
                self.identities.clone(),
            )
        })
    }
}

impl RunState {
    /// The REST client and outbox of the event's instance (the only one, for an event that
    /// names none).
    fn answerer(&self, meta: &EventMeta) -> Option<&Arc<Answerer>> {
        match meta.instance.as_deref() {
            Some(i) => self.answerers.iter().find(|r| r.rest.instance() == i),
            None => match self.answerers.as_slice() {
                [only] => Some(only),
                _ => None,
            },
        }
    }

    /// What the `handlers` handlers of an event with `meta` (whose payload is `payload`) share
    /// in their contexts: the REST client of its instance and the outbox it sends through.
    pub(crate) fn event_ctx(
        &self,
        meta: &EventMeta,
        payload: Option<Arc<dyn SharedPayload>>,
        handlers: usize,
    ) -> Arc<EventCtx> {
        if let Some(m) = payload.as_deref().and_then(SharedPayload::message) {
            if let Some((phone, lid)) = eventsock_core::identity::pair(m.chat(), m.lid()) {
                self.identities.learn(phone, lid);
            }
        }
        EventCtx::new(
            self.answerer(meta).cloned(),
            self.postbox.clone(),
            self.identities.clone(),
            meta,
            payload,
            handlers,
        )
    }
}

impl RunState {
    /// Hands a legacy `messages.update` to the outbox of its instance, when this run has
    /// made one: a delivery receipt of a message it may have sent.
    fn follow_receipt(&self, meta: &EventMeta, text: &str) {
        let Some(outbox) = self.answerer(meta).and_then(|a| a.outbox.get()) else {
            return;
        };
        if let Some((id, status)) = Delivery::of_update(text) {
            outbox.delivery_update(&id, status);
        }
    }
}

/// The fields of a message the [`Gate`] needs, read without building the payload.
#[derive(serde::Deserialize)]
struct GateKey<'a> {
    #[serde(rename = "keyId", borrow)]
    id: Option<std::borrow::Cow<'a, str>>,
    #[serde(rename = "messageTimestamp")]
    timestamp: Option<serde_json::Value>,
}

/// The same of an Evolution API message: `key.id`.
#[derive(serde::Deserialize)]
struct EvolutionGateKey<'a> {
    #[serde(borrow)]
    key: EvolutionKey<'a>,
    #[serde(rename = "messageTimestamp")]
    timestamp: Option<serde_json::Value>,
}

#[derive(serde::Deserialize)]
struct EvolutionKey<'a> {
    #[serde(borrow)]
    id: Option<std::borrow::Cow<'a, str>>,
}

impl GateKey<'_> {
    /// The timestamp in seconds, read as the model reads `messageTimestamp` (a number, a
    /// numeric string, or Evolution's `{low, high, unsigned}`); `None` when it is none of them.
    fn seconds(&self) -> Option<i64> {
        eventsock_core::wire::opt_long::deserialize(self.timestamp.as_ref()?)
            .ok()
            .flatten()
    }
}

impl Dispatcher {
    /// A run of `router` whose handlers have nothing to send with yet (see
    /// [`Dispatcher::rest`]) and no gate.
    pub fn new(router: Router) -> Dispatcher {
        let pacing = router.pacing().clone();
        Dispatcher {
            router,
            run: Arc::new(RunState {
                answerers: Vec::new(),
                postbox: None,
                gate: None,
                pacing,
                identities: Arc::default(),
            }),
        }
    }

    /// The same run, delivering to `router` instead: what a supervisor does when handlers are
    /// added while it runs. Outboxes made so far are kept.
    pub fn with_router(&self, router: Router) -> Dispatcher {
        Dispatcher {
            router,
            run: self.run.clone(),
        }
    }

    /// The REST client a [`Ctx`](crate::Ctx) answers through, for events of its instance (the
    /// one client, when there is only one, also answers events that name no instance; an
    /// event of another instance gets none). Replaces a client of the same instance.
    pub fn rest(mut self, client: RestClient) -> Self {
        let run = Arc::make_mut(&mut self.run);
        run.answerers
            .retain(|r| r.rest.instance() != client.instance());
        let pacing = run.pacing.clone();
        run.answerers.push(Arc::new(Answerer {
            rest: client,
            pacing,
            identities: run.identities.clone(),
            outbox: OnceLock::new(),
        }));
        self
    }

    /// The phone-number ↔ LID pairs this run learnt from its events (see
    /// [`eventsock_core::identity`]): its outboxes and dialogues key chats by them.
    pub fn identities(&self) -> &Arc<Identities> {
        &self.run.identities
    }

    /// Sends every message through `postbox` instead of this run's outboxes: for a NATS
    /// worker whose messages one sender paces for every worker (a JetStream outbox).
    pub fn postbox(mut self, postbox: Arc<dyn Postbox>) -> Self {
        Arc::make_mut(&mut self.run).postbox = Some(postbox);
        self
    }

    /// Lets `gate` decide which `messages.upsert` messages are delivered (see [`Gate`]).
    pub fn gate(mut self, gate: Arc<dyn Gate>) -> Self {
        Arc::make_mut(&mut self.run).gate = Some(gate);
        self
    }

    /// The router it delivers to.
    pub fn router(&self) -> &Router {
        &self.router
    }

    /// Whether a REST client answers events of `instance`.
    pub fn has_rest(&self, instance: &str) -> bool {
        self.run
            .answerers
            .iter()
            .any(|r| r.rest.instance() == instance)
    }

    /// The outboxes made so far, one per instance that has sent.
    pub fn outboxes(&self) -> Vec<Outbox> {
        self.run
            .answerers
            .iter()
            .filter_map(|a| a.outbox.get().cloned())
            .collect()
    }

    /// Handles one frame of `event`: reads it, delivers it to its handlers, waits for them,
    /// and logs what went wrong (a frame not delivered, a handler that failed, an actor that
    /// stopped). `channel` is the endpoint it came from (legacy frames are bare payloads, so
    /// they are read only by their decodes; `None` for a recorded or recovered payload, which is
    /// checked as a whole); `meta` builds the event's metadata from the frame when it could be
    /// read. With `wait`, an actor's delivery completes when it has handled the event; without,
    /// once it is in its mailbox (only a full mailbox waits). A closure or a route always runs
    /// to completion.
    pub async fn handle(
        &self,
        event: &EventName,
        channel: Option<Channel>,
        text: &str,
        meta: &dyn Fn(Option<&Frame<'_>>) -> EventMeta,
        wait: bool,
    ) -> Tally {
        let dispatch = self.dispatch(event, channel, text, meta, wait);
        let meta = &dispatch.meta;
        if dispatch.duplicate {
            tracing::debug!(
                seq = meta.seq,
                "a message already delivered (recovered over REST); skipped"
            );
            return Tally {
                duplicate: true,
                ..Tally::default()
            };
        }
        for problem in &dispatch.problems {
            tracing::warn!(
                instance = %human::escaped(meta.instance.as_deref().unwrap_or("")),
                event = %meta.event,
                seq = meta.seq,
                generation = meta.generation,
                error = %problem,
                "frame not delivered"
            );
        }
        let (meta, tally) = dispatch.settled(&self.router).await;
        for error in &tally.errors {
            tracing::warn!(
                instance = %human::escaped(meta.instance.as_deref().unwrap_or("")),
                event = %meta.event,
                seq = meta.seq,
                %error,
                "a handler failed on this event"
            );
        }
        if tally.gone > 0 {
            tracing::warn!(
                failed = tally.gone,
                handlers_left = self.router.alive(),
                "a handler actor stopped or panicked; the event did not reach it, and no event will"
            );
        }
        tally
    }

    /// Reads one frame and starts delivering it (see [`Dispatcher::handle`], which also waits
    /// and logs). Checking and decoding run code driven by a server's bytes: a panic there (a
    /// bug) costs this frame, reported with its start ([`FrameProblem::Panicked`]), never the
    /// caller. (A legacy message is built at its first access, in a handler; its check accepts
    /// nothing the decode refuses, so that cannot fail.)
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
        .unwrap_or_else(|panic| {
            let problem = FrameProblem::Panicked {
                message: panic_message(&*panic),
                excerpt: human::excerpt(text, 80),
            };
            Dispatch::undelivered(meta(None), problem)
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
        // Legacy frames are bare payloads: the decodes below are the only pass over them.
        let frame = if channel == Some(Channel::Legacy) {
            Frame::bare(text)
        } else {
            match Frame::parse(event, text) {
                Ok(f) => f,
                Err(e) => return Dispatch::undelivered(meta(None), FrameProblem::InvalidJson(e)),
            }
        };
        let meta = meta(Some(&frame));
        if event.kind() == Some(EventKind::MessagesUpdate)
            && matches!(channel, None | Some(Channel::Legacy))
            && self.router.follows_receipts()
        {
            self.run.follow_receipt(&meta, text);
        }
        if !self.admitted(event, channel, &frame, &meta) {
            return Dispatch {
                meta,
                deliveries: Deliveries::default(),
                problems: Vec::new(),
                duplicate: true,
            };
        }
        let mut deliveries = Deliveries::default();
        let errors = self
            .router
            .deliver(&frame, &meta, channel, &self.run, wait, &mut deliveries);
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
                return Dispatch::undelivered(meta, FrameProblem::InvalidJson(e));
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

    /// Asks the gate, if there is one, whether a `messages.upsert` payload (a legacy one, or
    /// the data of an Evolution API event) is delivered.
    fn admitted(
        &self,
        event: &EventName,
        channel: Option<Channel>,
        frame: &Frame<'_>,
        meta: &EventMeta,
    ) -> bool {
        let Some(gate) = &self.run.gate else {
            return true;
        };
        if event.kind() != Some(EventKind::MessagesUpsert) {
            return true;
        }
        let key = match channel {
            None | Some(Channel::Legacy) => serde_json::from_str::<GateKey<'_>>(frame.data()),
            Some(Channel::Evolution) => serde_json::from_str::<EvolutionGateKey<'_>>(frame.data())
                .map(|k| GateKey {
                    id: k.key.id,
                    timestamp: k.timestamp,
                }),
            Some(_) => return true,
        };
        match key {
            Ok(key) if key.id.as_deref().is_some_and(|id| !id.is_empty()) => {
                gate.admit(meta, key.id.as_deref().unwrap_or_default(), key.seconds())
            }
            // No id to tell duplicates by (or not JSON: the decodes report it).
            _ => true,
        }
    }

    /// Tells the router's undelivered handlers about a frame that could not be read at all
    /// (a binary frame), and logs it.
    pub async fn report(&self, meta: &EventMeta, problem: &FrameProblem) {
        tracing::warn!(seq = meta.seq, generation = meta.generation, error = %problem, "frame not delivered");
        self.router.report(meta, problem).await;
    }

    /// Lets every outbox of this run send what it holds, for at most `within` in all; then
    /// stops them, dropping what is left with a warning that says how many messages were not
    /// sent, and gives the sends in flight 5 more seconds to land. Returns how many were
    /// dropped. For the end of a run: the supervisor's `Shutdown` and a NATS worker's `run`
    /// call it.
    pub async fn drain(&self, within: Duration) -> usize {
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
            human::duration(within)
        );
        let all = join_all(outboxes.iter().map(|o| o.flush()));
        if tokio::time::timeout(within, all).await.is_ok() {
            return 0;
        }
        let mut dropped = 0;
        for outbox in &outboxes {
            let n = outbox.stop().await;
            dropped += n;
            if n > 0 {
                tracing::warn!(
                    instance = %human::escaped(outbox.instance()),
                    "{n} queued messages were not sent: the outbox could not send them within {} at its pace",
                    human::duration(within)
                );
            }
        }
        let in_flight = join_all(outboxes.iter().map(|o| o.flush()));
        if tokio::time::timeout(Duration::from_secs(5), in_flight)
            .await
            .is_err()
        {
            tracing::warn!("sends still in flight after 5 s: they may or may not have been sent");
        }
        dropped
    }
}

/// What became of one frame: [`Dispatcher::handle`], [`Dispatch::settle`].
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
    /// Problems with the frame itself (not JSON, or not the shape of a registered type), as
    /// the log writes them.
    pub problems: Vec<String>,
    /// The [`Gate`] held it back: a message delivered before (nothing else was done).
    pub duplicate: bool,
}

impl Tally {
    /// Whether any handler took the event (whatever came of it).
    pub fn delivered(&self) -> bool {
        self.handled + self.failed + self.gone > 0
    }

    /// Whether no handler takes such an event, and nothing was wrong with it.
    pub fn unrouted(&self) -> bool {
        !self.delivered() && self.problems.is_empty() && !self.duplicate
    }
}

/// One frame, read and on its way to its handlers: [`Dispatcher::dispatch`].
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
    /// A frame that reached no handler, for `problem`.
    fn undelivered(meta: EventMeta, problem: FrameProblem) -> Dispatch {
        Dispatch {
            meta,
            deliveries: Deliveries::default(),
            problems: vec![problem],
            duplicate: false,
        }
    }

    /// Whether the frame reached any handler.
    pub fn is_routed(&self) -> bool {
        !self.deliveries.is_empty()
    }

    /// Reports the problems to `router`'s undelivered handlers, then waits for every delivery.
    pub async fn settle(self, router: &Router) -> Tally {
        self.settled(router).await.1
    }

    /// [`Dispatch::settle`], giving the event's metadata back.
    async fn settled(self, router: &Router) -> (EventMeta, Tally) {
        for problem in &self.problems {
            router.report(&self.meta, problem).await;
        }
        let mut tally = Tally {
            problems: self.problems.iter().map(ToString::to_string).collect(),
            duplicate: self.duplicate,
            ..Tally::default()
        };
        let outcomes = self.deliveries.settle().await;
        tally.handled = outcomes.handled;
        tally.failed = outcomes.failed;
        tally.gone = outcomes.gone;
        tally.errors = outcomes.errors;
        (self.meta, tally)
    }
}
