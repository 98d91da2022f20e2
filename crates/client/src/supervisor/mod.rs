//! The supervisor: owns the subscriptions, runs one connection actor per subscription, restarts
//! it with backoff when it ends, and gives up by policy.
//!
//! # Lifecycle
//! - **built**: [`SupervisorBuilder::start`] derives the subscriptions from the registered
//!   handlers (a handler of `legacy::MessagesUpsert` on a legacy source means `messages.upsert` on
//!   `/ws/events`), checks that no other supervisor in the process holds any of them, and starts.
//! - **started**: one dispatcher task and one [`ConnectionActor`](crate::connection) per
//!   subscription. Subscriptions that several handlers need are opened once and shared.
//! - **running**: a connection that ends is replaced after the backoff; a refused token is
//!   retried no faster than the maximum backoff; more restarts than the [`Intensity`] allows and
//!   the subscription fails (or the supervisor stops, by [`GiveUp`]). [`Subscribe`] adds handlers
//!   (and subscriptions) while running; [`GetStatus`] reports every subscription.
//! - **[`Shutdown`]**: every connection closes with 1000, frames already read are handled, then
//!   the supervisor stops and the reply arrives.
//!
//! [`Intensity`]: eventsock_core::Intensity

use crate::backfill::{self, Backfill, Recovered, Recovery};
use crate::config::{ClientConfig, GiveUp};
use crate::connection::{
    Cause, CloseConnection, ConnDown, ConnUp, ConnectionActor, ConnectionParams, End,
};
use crate::dispatch::Feed;
use crate::error::ClientError;
use crate::handshake::Heads;
use crate::lease::{LeaseError, Leases};
use crate::lifecycle::{Lifecycle, LifecycleKind};
use crate::policy::{self, Loudness, Tries};
use crate::queue::Queue;
use crate::status::{Counters, SubscriptionState, SubscriptionStatus};
use actix::prelude::*;
use eventsock_core::{human, Channel, EventKind, EventName, Protocol, Source, Token};
use eventsock_handler::{Dispatcher, Router};
use eventsock_rest::{Method, RestClient, RestError};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::{oneshot, watch};

mod builder;
mod diagnosis;
mod messages;
mod ownership;

pub use builder::SupervisorBuilder;
use diagnosis::{probe, websocket, Diagnosis};
pub use messages::{GetDispatcher, GetStatus, Shutdown, Subscribe, DRAIN};
use ownership::{Ownership, YIELD_EVERY};
pub use ownership::{StandDown, TakeBack};

/// The (endpoint, instance, event) triples held by supervisors in this process. The server
/// keeps one socket per (instance, event): two supervisors opening the same one would silently
/// starve one of them, so the second is refused instead.
static HELD: Mutex<Option<HashSet<String>>> = Mutex::new(None);

struct Held(String);

impl Held {
    fn take(key: String) -> Option<Held> {
        let mut held = HELD.lock().unwrap_or_else(PoisonError::into_inner);
        let inserted = held.get_or_insert_with(HashSet::new).insert(key.clone());
        drop(held);
        // Built only when the key is ours: a `Held` dropped on refusal would release the key
        // that another supervisor holds.
        if inserted {
            Some(Held(key))
        } else {
            None
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut held = HELD.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(set) = held.as_mut() {
            set.remove(&self.0);
        }
    }
}

/// One subscription: (source, channel, event) and its connection's history.
struct Sub {
    source: Source,
    channel: Channel,
    event: EventName,
    counters: Arc<Counters>,
    /// The dispatcher's queue; dropped at shutdown so the dispatcher ends once it is drained.
    queue: Option<Queue>,
    drained: Option<oneshot::Receiver<()>>,
    conn: Option<Addr<ConnectionActor>>,
    state: SubscriptionState,
    /// Attempts and restarts, as the reconnect policy counts them.
    tries: Tries,
    /// Connections made so far.
    generation: u64,
    last_error: Option<String>,
    /// Whether the current run of refusals was already reported at error level.
    auth_reported: bool,
    /// Why the server refuses the handshake, as found out over REST (see [`probe`]); kept
    /// until a connection succeeds.
    diagnosis: Option<Diagnosis>,
    /// The scheduled reconnect (see [`Supervisor::connect_later`]).
    retry: Option<Retry>,
    /// When the previous connection last heard from the server: the start of the next gap.
    last_heard: Option<SystemTime>,
    /// When the current connection came up.
    up_since: Option<SystemTime>,
    /// A watch of the stream is under way.
    watching: bool,
    /// Until when the last watch found every saved message it looked at delivered.
    verified: Option<SystemTime>,
    /// Found displaced: the connection is being closed, to take the stream back after the
    /// delay, recovering from the first message missed.
    displaced: Option<(SystemTime, Duration)>,
    /// Displacements in a row (forgotten after an hour without one), and the last one's time.
    displacements: (u32, Option<Instant>),
    /// Whether this process may hold the stream (see [`SupervisorBuilder::leases`]).
    owner: Ownership,
    _held: Held,
}

/// A subscription to open: its source, channel and event, its claim in this process, and its
/// lease on the host.
type Planned = (Source, Channel, EventName, Held, Ownership);

/// The supervisor actor. See the module docs for its lifecycle.
pub struct Supervisor {
    config: Arc<ClientConfig>,
    sources: Vec<Source>,
    subs: Vec<Sub>,
    index: HashMap<(String, Arc<str>, Channel, EventName), usize>,
    lifecycle: Vec<Recipient<Lifecycle>>,
    /// The router at work, with this supervisor's REST clients, outboxes and gate; every
    /// subscription's feed follows it (it changes only when [`Subscribe`] adds handlers).
    dispatcher: watch::Sender<Dispatcher>,
    /// Recovery over REST after gaps, when asked for.
    recovery: Option<Arc<Recovery>>,
    /// A REST client per instance, for recovery.
    rest: HashMap<String, RestClient>,
    client: Option<awc::Client>,
    heads: Heads,
    shutting_down: bool,
    /// The last [`Retry`] id given.
    next_retry: u64,
    leases: Option<Leases>,
    take: bool,
}

impl std::fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supervisor")
            .field("subscriptions", &self.subs.len())
            .field("shutting_down", &self.shutting_down)
            .finish_non_exhaustive()
    }
}

impl Supervisor {
    /// A builder with the default [`ClientConfig`].
    pub fn builder() -> SupervisorBuilder {
        SupervisorBuilder {
            config: ClientConfig::default(),
            sources: Vec::new(),
            router: None,
            lifecycle: Vec::new(),
            backfill: None,
            leases: None,
            take: false,
        }
    }

    /// Opens the subscriptions the router's handlers need that are not open yet. Returns the
    /// indexes of those it created.
    fn register(&mut self) -> Result<Vec<usize>, ClientError> {
        let router = self.dispatcher.borrow().router().clone();
        let plan = self.plan(&router)?;
        Ok(self.commit(plan))
    }

    /// The subscriptions `router`'s handlers need that are not open yet, each with its
    /// process-wide claim taken. Changes nothing: on an error, the claims taken are let go.
    fn plan(&self, router: &Router) -> Result<Vec<Planned>, ClientError> {
        let mut plan: Vec<Planned> = Vec::new();
        for source in &self.sources {
            let protocol = source.protocol();
            let wanted = router
                .subscriptions(protocol)
                .map_err(|e| ClientError::Unserved {
                    suggestions: e
                        .suggestions(protocol.channels())
                        .into_iter()
                        .map(str::to_owned)
                        .collect(),
                    event: e.to_string(),
                    protocol,
                })?;
            for (channel, event) in wanted {
                let key = Self::key(source, channel, &event);
                let planned = plan.iter().any(|(s, c, e, ..)| Self::key(s, *c, e) == key);
                if self.index.contains_key(&key) || planned {
                    continue;
                }
                let held_key = format!("{}|{}|{}", key.0, key.1, key.3);
                let held = Held::take(held_key).ok_or_else(|| ClientError::AlreadyHeld {
                    endpoint: key.0.clone(),
                    instance: key.1.to_string(),
                    event: key.3.to_string(),
                })?;
                let owner = match &self.leases {
                    None => Ownership::Free,
                    Some(leases) => match leases.acquire(&key.0, &key.1, &key.3.to_string()) {
                        Ok(lease) => Ownership::Held(lease),
                        Err(LeaseError::Held { .. }) if self.take => Ownership::Taking,
                        Err(e) => return Err(e.into()),
                    },
                };
                plan.push((source.clone(), channel, event, held, owner));
            }
        }
        Ok(plan)
    }

    fn key(
        source: &Source,
        channel: Channel,
        event: &EventName,
    ) -> (String, Arc<str>, Channel, EventName) {
        (
            source.endpoint().to_string(),
            Arc::from(source.instance()),
            channel,
            event.clone(),
        )
    }

    /// Adds the planned subscriptions; returns their indexes.
    fn commit(&mut self, plan: Vec<Planned>) -> Vec<usize> {
        let mut created = Vec::new();
        for (source, channel, event, held, owner) in plan {
            let key = Self::key(&source, channel, &event);
            let i = self.subs.len();
            self.subs.push(Sub {
                source,
                channel,
                event,
                counters: Arc::default(),
                queue: None,
                drained: None,
                conn: None,
                state: SubscriptionState::BackingOff,
                tries: Tries::default(),
                generation: 0,
                last_error: None,
                auth_reported: false,
                diagnosis: None,
                retry: None,
                last_heard: None,
                up_since: None,
                watching: false,
                verified: None,
                displaced: None,
                displacements: (0, None),
                owner,
                _held: held,
            });
            self.index.insert(key, i);
            created.push(i);
        }
        created
    }

    fn tell(&self, sub: usize, kind: LifecycleKind) {
        let s = &self.subs[sub];
        for h in &self.lifecycle {
            h.do_send(Lifecycle {
                instance: Arc::from(s.source.instance()),
                event: s.event.clone(),
                kind: kind.clone(),
            });
        }
    }

    /// Starts the dispatcher of a new subscription.
    fn open(&mut self, i: usize, ctx: &mut Context<Self>) {
        let (tx, rx) = Queue::new(self.config.queue_capacity, self.config.queue_bytes);
        let (done_tx, done_rx) = oneshot::channel();
        let s = &mut self.subs[i];
        let feed = Feed {
            event: s.event.clone(),
            channel: s.channel,
            pipelined: self.config.delivery == crate::config::Delivery::Pipelined,
            instance: Arc::from(s.source.instance()),
            dispatcher: self.dispatcher.subscribe(),
            counters: s.counters.clone(),
        };
        let span =
            tracing::info_span!("dispatch", instance = %s.source.instance(), event = %s.event);
        s.queue = Some(tx);
        s.drained = Some(done_rx);
        actix_rt::spawn(tracing::Instrument::instrument(
            async move {
                feed.run(rx).await;
                let _ = done_tx.send(());
            },
            span,
        ));
        self.connect(i, ctx);
    }

    fn connect(&mut self, i: usize, ctx: &mut Context<Self>) {
        if self.shutting_down || self.subs[i].state == SubscriptionState::Failed {
            return;
        }
        if !self.owned(i, ctx) {
            return;
        }
        let Some(client) = self.client.clone() else {
            return;
        };
        let s = &mut self.subs[i];
        let Some(queue) = s.queue.clone() else {
            return;
        };
        s.state = SubscriptionState::Connecting;
        s.retry = None;
        let params = ConnectionParams {
            sub: i,
            source: s.source.clone(),
            channel: s.channel,
            event: s.event.clone(),
            generation: s.generation + 1,
            config: self.config.clone(),
            client,
            heads: self.heads.clone(),
            queue,
            counters: s.counters.clone(),
            up: ctx.address().recipient(),
            down: ctx.address().recipient(),
        };
        let attempt = s.tries.attempts + 1;
        s.conn = Some(ConnectionActor::new(params).start());
        self.tell(i, LifecycleKind::Connecting { attempt });
    }

    fn give_up(&mut self, i: usize, reason: String, ctx: &mut Context<Self>) {
        let s = &mut self.subs[i];
        s.state = SubscriptionState::Failed;
        tracing::error!(instance = %s.source.instance(), event = %s.event, "{reason}; giving up");
        self.tell(
            i,
            LifecycleKind::GaveUp {
                reason: reason.clone(),
            },
        );
        if self.config.give_up == GiveUp::StopSupervisor {
            for j in 0..self.subs.len() {
                if j != i && self.subs[j].state != SubscriptionState::Failed {
                    self.subs[j].state = SubscriptionState::Failed;
                    self.tell(
                        j,
                        LifecycleKind::GaveUp {
                            reason: format!("another subscription gave up: {reason}"),
                        },
                    );
                }
            }
            self.begin_shutdown();
            ctx.stop();
        }
    }

    /// Closes every connection and lets the dispatchers drain. Returns their completion signals.
    fn begin_shutdown(&mut self) -> Vec<oneshot::Receiver<()>> {
        self.shutting_down = true;
        let mut drained = Vec::new();
        for s in &mut self.subs {
            if let Some(conn) = s.conn.take() {
                conn.do_send(CloseConnection);
            }
            if s.state != SubscriptionState::Failed {
                s.state = SubscriptionState::Stopped;
            }
            // The connection holds its own sender: the dispatcher ends once it has ended too.
            s.queue = None;
            drained.extend(s.drained.take());
        }
        drained
    }
}

impl Actor for Supervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let tls = self
            .config
            .tls
            .clone()
            .unwrap_or_else(eventsock_rest::default_tls);
        // No connection limit: awc's default (100 per scheme) counts every open WebSocket, so the
        // 101st subscription would wait forever for a pool slot.
        let client = awc::Client::builder()
            .connector(awc::Connector::new().rustls_0_23(tls).limit(0))
            // The connections bound their handshakes themselves (`connect_timeout`).
            .disable_timeout()
            .wrap(self.heads.clone())
            .finish();
        self.client = Some(client);
        if self
            .recovery
            .as_ref()
            .is_some_and(|r| r.settings.store.is_some())
        {
            ctx.run_interval(Duration::from_millis(200), |act, _| {
                if let Some(r) = &act.recovery {
                    r.save();
                }
            });
        }
        if let Some(every) = self.recovery.as_ref().and_then(|r| r.settings.watch) {
            ctx.run_interval(every, |act, ctx| act.watch(ctx));
        }
        if self.leases.is_some() {
            ctx.run_interval(YIELD_EVERY, |act, ctx| act.yield_taken(ctx));
        }
        for i in 0..self.subs.len() {
            self.open(i, ctx);
        }
    }
}

impl Handler<ConnUp> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: ConnUp, ctx: &mut Context<Self>) {
        let s = &mut self.subs[msg.sub];
        if s.generation + 1 != msg.generation || self.shutting_down {
            return;
        }
        s.generation = msg.generation;
        s.state = SubscriptionState::Connected;
        s.auth_reported = false;
        s.diagnosis = None;
        s.up_since = Some(msg.at);
        s.verified = None;
        tracing::info!(instance = %s.source.instance(), event = %s.event, generation = msg.generation, "connected");
        let gap = s.last_heard.take();
        self.tell(
            msg.sub,
            LifecycleKind::Connected {
                generation: msg.generation,
            },
        );
        if let Some(from) = gap {
            self.tell(msg.sub, LifecycleKind::Gap { from, to: msg.at });
        }
        self.backfill(msg.sub, gap, msg.generation, ctx);
        self.wake_siblings(msg.sub, ctx);
        self.check_websocket(msg.sub, ctx);
    }
}

impl Supervisor {
    /// Evolution API: what the settings of the instance of `sub` say of its event
    /// ([`websocket`]), asked with the supervisor's TLS settings, in one try of a few seconds (a
    /// REST API that hangs holds nothing back long).
    fn websocket_probe(&self, sub: usize) -> impl std::future::Future<Output = Option<Diagnosis>> {
        let s = &self.subs[sub];
        let mut rest = RestClient::for_source(&s.source)
            .timeout(Duration::from_secs(5))
            .retries(0);
        if let Some(tls) = &self.config.tls {
            rest = rest.tls(tls.clone());
        }
        let event = s.event.clone();
        async move { websocket(rest, &event).await }
    }

    /// Evolution API: once a namespace is joined, whether the instance's settings send the
    /// subscription's event at all; said when they do not, instead of waiting in silence.
    fn check_websocket(&mut self, sub: usize, ctx: &mut Context<Self>) {
        let s = &self.subs[sub];
        if s.channel != Channel::Evolution {
            return;
        }
        let check = self.websocket_probe(sub);
        ctx.spawn(check.into_actor(self).map(move |found, act, _| {
            let s = &act.subs[sub];
            match found {
                Some(
                    d @ (Diagnosis::WebsocketOff { .. }
                    | Diagnosis::NotListed { .. }
                    | Diagnosis::NeverSent { .. }),
                ) => {
                    tracing::warn!(instance = %s.source.instance(), event = %s.event, "connected, but no such event will come: {d}");
                }
                Some(d) => {
                    tracing::debug!(instance = %s.source.instance(), event = %s.event, "the websocket settings could not be read: {d}");
                }
                None => {}
            }
        }));
    }
}

impl Supervisor {
    /// After a gap (or at the first connection, from the checkpoint), recovers the missed
    /// `messages.upsert` events of a legacy subscription over REST, in a task of its own.
    fn backfill(
        &mut self,
        sub: usize,
        gap: Option<SystemTime>,
        generation: u64,
        ctx: &mut Context<Self>,
    ) {
        let Some(recovery) = self.recovery.clone() else {
            return;
        };
        let s = &self.subs[sub];
        let recoverable = matches!(s.channel, Channel::Legacy | Channel::Evolution);
        if !recoverable || s.event.kind() != Some(EventKind::MessagesUpsert) {
            return;
        }
        let instance: Arc<str> = Arc::from(s.source.instance());
        let from = match gap {
            Some(since) => Some(recovery.settings.gap_start(since)),
            None if generation == 1 => {
                recovery.start_up(&instance, recovery.settings.margin_secs())
            }
            None => None,
        };
        let (Some(from), Some(rest)) = (from, self.rest.get(&*instance).cloned()) else {
            return;
        };
        let dispatcher = self.dispatcher.borrow().clone();
        let task = backfill::recover(recovery, rest, dispatcher, instance, from);
        ctx.spawn(
            task.into_actor(self)
                .map(move |outcome, act, _| act.recovered(sub, from, outcome)),
        );
    }

    /// Says how a recovery ended.
    fn recovered(&mut self, sub: usize, from: i64, outcome: Recovered) {
        let s = &self.subs[sub];
        let (instance, event) = (s.source.instance(), &s.event);
        let kind = match outcome {
            Recovered::Delivered(delivered) => LifecycleKind::Recovered {
                delivered,
                from: std::time::UNIX_EPOCH + Duration::from_secs(u64::try_from(from).unwrap_or(0)),
            },
            Recovered::Unavailable(Some(reason)) => LifecycleKind::RecoveryUnavailable { reason },
            Recovered::Failed(reason) => LifecycleKind::RecoveryFailed { reason },
            Recovered::Unavailable(None) | Recovered::Merged => return,
        };
        match &kind {
            LifecycleKind::Recovered { .. } => tracing::info!(%instance, %event, "{kind}"),
            _ => tracing::warn!(%instance, %event, "{kind}"),
        }
        self.tell(sub, kind);
    }
}

impl Supervisor {
    /// The server is back: the subscriptions of the same endpoint that wait out a backoff after
    /// a failed connection try now, instead of one by one as their own timers run out. Those
    /// waiting after a refusal (a token, a 429) keep their pace.
    fn wake_siblings(&mut self, up: usize, ctx: &mut Context<Self>) {
        let endpoint = self.subs[up].source.endpoint().clone();
        let waiting: Vec<usize> = (0..self.subs.len())
            .filter(|&j| {
                j != up
                    && *self.subs[j].source.endpoint() == endpoint
                    && self.subs[j].state == SubscriptionState::BackingOff
                    && self.subs[j].retry.as_ref().is_some_and(|r| r.wakeable)
            })
            .collect();
        for j in waiting {
            if let Some(retry) = self.subs[j].retry.take() {
                ctx.cancel_future(retry.handle);
            }
            tracing::debug!(instance = %self.subs[j].source.instance(), event = %self.subs[j].event, "a sibling reconnected: trying now");
            self.connect(j, ctx);
        }
    }
}

impl Handler<ConnDown> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: ConnDown, ctx: &mut Context<Self>) {
        let config = self.config.clone();
        let s = &mut self.subs[msg.sub];
        // A connection of generation g ends with g made (it connected) or g - 1 (it did not).
        if msg.generation != s.generation && msg.generation != s.generation + 1 {
            tracing::debug!(generation = msg.generation, "stale report ignored");
            return;
        }
        s.conn = None;
        s.up_since = None;
        if self.shutting_down || s.state == SubscriptionState::Failed {
            return;
        }
        let end = msg.end;
        if let Some((since, retake_in)) = s.displaced.take() {
            let reason = "displaced: another client took the stream";
            let state = SubscriptionState::Displaced;
            return self.let_go(msg.sub, (since, state, reason), retake_in, ctx);
        }
        if let Ownership::StoodDown(since) | Ownership::Outside(since) = s.owner {
            let reason = "stood down: another eventsock process took the stream";
            let state = SubscriptionState::StoodDown;
            // Looks for the stream at once; `owned` waits for it from there.
            return self.let_go(msg.sub, (since, state, reason), Duration::ZERO, ctx);
        }
        let was_up = end.up_since.is_some();
        if end.last_heard.is_some() {
            s.last_heard = end.last_heard;
        }
        s.last_error = Some(end.cause.to_string());
        if was_up {
            self.tell(
                msg.sub,
                LifecycleKind::Disconnected {
                    code: end.cause.code(),
                    reason: end.cause.to_string(),
                },
            );
        }
        let tries = &mut self.subs[msg.sub].tries;
        if let Err(reason) = policy::count_end(&config, tries, &end, Instant::now()) {
            return self.give_up(msg.sub, reason, ctx);
        }
        let s = &mut self.subs[msg.sub];
        let refused_token = end
            .refused_token
            .clone()
            .filter(|_| end.cause == Cause::Refused(401));
        // A diagnosis tells of the refusals it was found for: another end forgets it (a 401's
        // is kept through a run of 401s, asked once).
        let keep = matches!(end.cause, Cause::Refused(401))
            && s.diagnosis.as_ref().is_some_and(Diagnosis::is_about_token);
        if !keep {
            s.diagnosis = None;
        }
        if matches!(end.cause, Cause::NamespaceRefused { .. }) {
            // Evolution API: is the instance's websocket off, or without this event? Or has the
            // server not sent it anything since it started? Asked at every refusal (each after
            // the backoff), so that what the operator changed meanwhile is told; one try of a
            // few seconds, so that a REST API that hangs holds the retry back no longer.
            let sub = msg.sub;
            let check = self.websocket_probe(sub);
            ctx.spawn(check.into_actor(self).map(move |found, act, ctx| {
                act.subs[sub].diagnosis = Some(found.unwrap_or(Diagnosis::NoEventYet));
                act.retry(sub, end, ctx);
            }));
            return;
        }
        let client = self.client.clone();
        if let (Some(token), None, false, Some(client)) =
            (refused_token, &s.diagnosis, end.renewed, client)
        {
            // The legacy server answers 401 alike for a bad path, event or token (and a v2
            // client pointed at it sees the same): ask REST about the token the handshake
            // carried, then retry.
            let source = s.source.clone();
            let sub = msg.sub;
            let probe = async move { probe(&client, &source, token).await };
            ctx.spawn(probe.into_actor(self).map(move |diagnosis, act, ctx| {
                act.subs[sub].diagnosis = Some(diagnosis);
                act.retry(sub, end, ctx);
            }));
            return;
        }
        self.retry(msg.sub, end, ctx);
    }
}

impl Supervisor {
    /// Why the last connection of `sub` failed, in words, with what the supervisor knows beyond
    /// the connection (the REST diagnosis of a 401, the other protocol's hint).
    fn explain(&self, sub: usize, cause: &Cause) -> String {
        let s = &self.subs[sub];
        match (cause, s.source.protocol(), &s.diagnosis) {
            (Cause::Refused(401), _, Some(diagnosis)) => format!("{cause}: {diagnosis}"),
            (Cause::NamespaceRefused { .. }, _, Some(Diagnosis::Unknown(e))) => {
                format!("{cause} (REST could not tell more: {e})")
            }
            (Cause::NamespaceRefused { namespace, message, .. }, _, Some(diagnosis)) => format!(
                "the server refused the namespace {}: {}; {diagnosis}",
                human::escaped(namespace),
                human::escaped(message)
            ),
            (Cause::Refused(404), Protocol::Legacy, _) => format!(
                "{cause}; the legacy server answers 401 to whatever it refuses, so this looks like the newer CodeChat server: use its protocol, v2"
            ),
            (Cause::Refused(404), Protocol::V2, _) => format!(
                "{cause}; if this is the legacy CodeChat server, use the legacy protocol"
            ),
            (Cause::Refused(404), Protocol::Evolution, _) => format!(
                "{cause}; Evolution API answers 404 on /socket.io/ when its websocket is off (WEBSOCKET_ENABLED=false in its environment), or the URL is not Evolution's"
            ),
            _ => cause.to_string(),
        }
    }

    /// Schedules the next attempt of `sub` after `end`, and says so.
    fn retry(&mut self, sub: usize, end: End, ctx: &mut Context<Self>) {
        if self.shutting_down || self.subs[sub].state == SubscriptionState::Failed {
            return;
        }
        let config = self.config.clone();
        let why = self.explain(sub, &end.cause);
        let s = &mut self.subs[sub];
        s.last_error = Some(why.clone());
        let policy::Retry { delay, wakeable } =
            policy::retry(&config.backoff, s.tries.attempts, &end);
        let line = format!("{why}; retrying in {}", human::duration(delay));
        let (instance, event) = (s.source.instance(), &s.event);
        match policy::loudness(&end, s.tries.attempts, &mut s.auth_reported) {
            Loudness::Error => tracing::error!(%instance, %event, "{line}"),
            Loudness::Warn => tracing::warn!(%instance, %event, "{line}"),
            Loudness::Debug => {
                tracing::debug!(%instance, %event, attempt = s.tries.attempts, "{line}");
            }
        }
        s.state = SubscriptionState::BackingOff;
        let attempt = s.tries.attempts;
        self.tell(
            sub,
            LifecycleKind::Reconnecting {
                attempt,
                delay,
                cause: why,
            },
        );
        self.connect_later(sub, delay, wakeable, ctx);
    }

    /// Connects `sub` after `delay`, unless the attempt is cancelled first (its
    /// [`Retry`] taken, as [`Supervisor::wake_siblings`] does). The timer checks that it is still
    /// the pending attempt: actix runs a `run_later` whose time has come even when
    /// `cancel_future` was called in the same turn of the actor, and two attempts at once would
    /// leave a connection that nothing closes, holding the subscription's queue (a shutdown then
    /// waits for it forever).
    pub(super) fn connect_later(
        &mut self,
        sub: usize,
        delay: Duration,
        wakeable: bool,
        ctx: &mut Context<Self>,
    ) {
        self.next_retry += 1;
        let id = self.next_retry;
        let handle = ctx.run_later(delay, move |act, ctx| {
            if act.subs[sub].retry.as_ref().is_some_and(|r| r.id == id) {
                act.subs[sub].retry = None;
                act.connect(sub, ctx);
            }
        });
        self.subs[sub].retry = Some(Retry {
            handle,
            wakeable,
            id,
        });
    }
}

/// A reconnect scheduled by [`Supervisor::connect_later`].
struct Retry {
    handle: SpawnHandle,
    /// Whether a sibling's success may bring it forward.
    wakeable: bool,
    /// Which scheduling this is: a timer runs only while its own is pending.
    id: u64,
}
