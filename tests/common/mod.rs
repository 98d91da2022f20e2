//! Shared helpers for the integration tests: a simulator on 127.0.0.1:0 and a recorder actor
//! that tests wait on, with a deadline, instead of sleeping.

#![allow(dead_code, unreachable_pub)]

pub mod hostile;
pub mod nats_server;

use actix::prelude::*;
use eventsock::client::{ClientConfig, Lifecycle, LifecycleKind};
use eventsock::core::{Backoff, Endpoint, EventMeta, Payload, RawEvent, Undelivered};
pub use eventsock::handler::{Received, Router};
use eventsock::sim::{Embedded, SimConfig};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// How long any wait in a test may take before it fails.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// A simulator served on 127.0.0.1:0 for the length of a test.
pub type TestServer = Embedded;

pub fn start_sim(config: SimConfig) -> TestServer {
    Embedded::start(config).unwrap()
}

pub trait EndpointOf {
    fn endpoint(&self) -> Endpoint;
}

impl EndpointOf for Embedded {
    fn endpoint(&self) -> Endpoint {
        Endpoint::parse(&self.url()).unwrap()
    }
}

/// Fast settings for tests: short backoff so reconnects happen in milliseconds.
pub fn fast_config() -> ClientConfig {
    let mut c = ClientConfig::default();
    c.backoff = Backoff::exponential(Duration::from_millis(10), Duration::from_millis(100));
    c.stable_after = Duration::from_secs(60);
    // Tests drop connections on purpose, many times; the default intensity has its own test.
    c.intensity = eventsock::core::Intensity {
        max_restarts: 1000,
        within: Duration::from_secs(60),
    };
    c
}

/// The metadata of a live event `event` of instance `codechat`, for dispatching a frame
/// through a router by hand.
pub fn live_meta(event: &eventsock::core::EventName) -> EventMeta {
    EventMeta::live(event.clone(), "codechat")
}

/// Polls `cond` until it holds, or fails the test after the deadline. For state that has no
/// message to wait on (the simulator's socket table).
pub async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    tokio::time::timeout(DEADLINE, async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting for {what}"));
}

/// Asks `probe` until it gives something, or fails the test after the deadline. For state
/// behind a message (an actor's stats), which a plain `until` cannot await.
pub async fn eventually<R, F, Fut>(what: &str, mut probe: F) -> R
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<R>>,
{
    tokio::time::timeout(DEADLINE, async {
        loop {
            if let Some(r) = probe().await {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// What a recorder received.
#[derive(Debug, Clone)]
pub enum Record {
    Event {
        meta: EventMeta,
        json: serde_json::Value,
    },
    Raw(RawEvent),
    Life(Lifecycle),
    Undelivered(Undelivered),
}

/// An actor that records everything it is sent, for tests to wait on.
#[derive(Clone)]
pub struct Recorder {
    records: Arc<Mutex<Vec<Record>>>,
    changed: Arc<watch::Sender<u64>>,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder {
            records: Arc::default(),
            changed: Arc::new(watch::channel(0).0),
        }
    }
}

impl Actor for Recorder {
    type Context = Context<Self>;
}

impl Recorder {
    fn push(&self, r: Record) {
        self.records.lock().unwrap().push(r);
        self.changed.send_modify(|n| *n += 1);
    }

    pub fn records(&self) -> Vec<Record> {
        self.records.lock().unwrap().clone()
    }

    pub fn events(&self) -> Vec<(EventMeta, serde_json::Value)> {
        self.records()
            .into_iter()
            .filter_map(|r| match r {
                Record::Event { meta, json } => Some((meta, json)),
                _ => None,
            })
            .collect()
    }

    pub fn lifecycle(&self) -> Vec<LifecycleKind> {
        self.records()
            .into_iter()
            .filter_map(|r| match r {
                Record::Life(l) => Some(l.kind),
                _ => None,
            })
            .collect()
    }

    pub fn undelivered(&self) -> Vec<Undelivered> {
        self.records()
            .into_iter()
            .filter_map(|r| match r {
                Record::Undelivered(u) => Some(u),
                _ => None,
            })
            .collect()
    }

    /// Waits until `f` finds what it looks for in the records, or fails after the deadline.
    pub async fn wait<R>(&self, what: &str, f: impl Fn(&Recorder) -> Option<R>) -> R {
        self.wait_with(DEADLINE, what, f).await
    }

    /// [`Recorder::wait`] with a deadline of its own.
    pub async fn wait_with<R>(
        &self,
        deadline: Duration,
        what: &str,
        f: impl Fn(&Recorder) -> Option<R>,
    ) -> R {
        let mut rx = self.changed.subscribe();
        tokio::time::timeout(deadline, async {
            loop {
                if let Some(r) = f(self) {
                    return r;
                }
                rx.changed().await.expect("the recorder is alive");
            }
        })
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}; got {:#?}", self.lifecycle()))
    }

    pub async fn wait_events(&self, n: usize) -> Vec<(EventMeta, serde_json::Value)> {
        self.wait(&format!("{n} events"), |r| {
            let e = r.events();
            (e.len() >= n).then_some(e)
        })
        .await
    }

    pub async fn wait_lifecycle(
        &self,
        what: &str,
        f: impl Fn(&LifecycleKind) -> bool,
    ) -> LifecycleKind {
        self.wait(what, |r| r.lifecycle().into_iter().find(|k| f(k)))
            .await
    }

    /// How many lifecycle messages match `f` so far.
    pub fn count_lifecycle(&self, f: impl Fn(&LifecycleKind) -> bool) -> usize {
        self.lifecycle().iter().filter(|k| f(k)).count()
    }
}

impl<T: Payload> Handler<Received<T>> for Recorder {
    type Result = ();

    fn handle(&mut self, msg: Received<T>, _: &mut Context<Self>) {
        let json = serde_json::to_value(msg.payload()).unwrap();
        self.push(Record::Event {
            meta: msg.event.meta,
            json,
        });
    }
}

impl Handler<RawEvent> for Recorder {
    type Result = ();

    fn handle(&mut self, msg: RawEvent, _: &mut Context<Self>) {
        self.push(Record::Raw(msg));
    }
}

impl Handler<Lifecycle> for Recorder {
    type Result = ();

    fn handle(&mut self, msg: Lifecycle, _: &mut Context<Self>) {
        self.push(Record::Life(msg));
    }
}

impl Handler<Undelivered> for Recorder {
    type Result = ();

    fn handle(&mut self, msg: Undelivered, _: &mut Context<Self>) {
        self.push(Record::Undelivered(msg));
    }
}

/// Whether `k` is connection number `generation` coming up.
pub fn connected(k: &LifecycleKind, generation: u64) -> bool {
    matches!(k, LifecycleKind::Connected { generation: g } if *g == generation)
}

/// Waits until the simulator routes `event` of `codechat` to a socket.
pub async fn subscribed(s: &TestServer, event: &str) {
    until(&format!("{event} to be subscribed"), || {
        s.sim.is_subscribed("codechat", event)
    })
    .await;
}

/// A well-formed token for `codechat` signed by another server: refused by the simulator.
pub fn foreign_token() -> eventsock::core::Token {
    eventsock::core::Token::new(
        eventsock::sim::Sim::new(SimConfig {
            secret: "another server".into(),
            ..SimConfig::default()
        })
        .mint_token("codechat", None),
    )
}

/// A supervisor of `source` with one recorder for `legacy::MessagesUpsert`, lifecycle and
/// undelivered frames.
pub fn supervise_with(
    source: eventsock::core::Source,
    config: ClientConfig,
) -> (Addr<eventsock::client::Supervisor>, Recorder) {
    let rec = Recorder::default();
    let addr = rec.clone().start();
    let sup = eventsock::client::Supervisor::builder()
        .config(config)
        .source(source)
        .router(
            Router::builder()
                .actor::<eventsock::core::legacy::MessagesUpsert>(addr.clone().recipient())
                .undelivered(addr.clone().recipient())
                // The recorder sends nothing: no delivery receipts to follow, one socket.
                .receipts(false)
                .build(),
        )
        .lifecycle(addr.recipient())
        .start()
        .unwrap();
    (sup, rec)
}

/// Pacing for tests: fast, no jitter, short backoff; each test sets what it measures.
pub fn fast_pacing() -> eventsock::rest::Pacing {
    eventsock::rest::Pacing::default()
        .rate(200.0)
        .per_chat(Duration::ZERO)
        .jitter(0.0)
        .backoff(Duration::from_millis(20))
}

/// Starts `router` on the built-in simulator and waits until it listens to `messages.upsert`.
pub async fn started(
    router: eventsock::handler::Router,
    settings: eventsock::Settings,
) -> (eventsock::Running, eventsock::sim::Sim) {
    let running = eventsock::Run::start(router, settings).await.unwrap();
    let sim = running
        .sim()
        .expect("no URL: the built-in simulator")
        .clone();
    until("the socket", || {
        sim.is_subscribed("codechat", "messages.upsert")
    })
    .await;
    (running, sim)
}

/// A message from `chat` (a phone number) with `text` and id `id`, in the simulator's own
/// (legacy) shape: the simulator playing Evolution API sends it in Evolution's.
pub fn evolution_message(id: &str, chat: &str, text: &str) -> serde_json::Value {
    serde_json::json!({
        "keyId": id,
        "keyFromMe": false,
        "keyRemoteJid": format!("{chat}@s.whatsapp.net"),
        "pushName": "Maria",
        "messageType": "conversation",
        "content": {"text": text},
        "messageTimestamp": eventsock::core::clock::now_secs(),
    })
}

/// The texts the simulator was asked to send to `chat` (a phone number), in order.
pub fn sent_texts(sim: &eventsock::sim::Sim, chat: &str) -> Vec<String> {
    let jid = format!("{chat}@s.whatsapp.net");
    sim.sent()
        .into_iter()
        .filter(|s| s.chat == jid)
        .map(|s| s.text)
        .collect()
}
