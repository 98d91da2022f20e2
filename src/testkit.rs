//! Test a bot in milliseconds: its router, run in this process against the simulator, with no
//! socket and on a virtual clock.
//!
//! ```
//! use eventsock::prelude::*;
//! use eventsock::testkit::TestKit;
//!
//! fn router() -> Router {
//!     Router::builder()
//!         .on(|m: Msg| async move {
//!             if m.text() == Some("!ping") {
//!                 m.cx.reply("pong").await?;
//!             }
//!             Ok(())
//!         })
//!         .build()
//! }
//!
//! # #[actix_rt::main] async fn main() {
//! let kit = TestKit::new(router());
//! let chat = kit.chat("5511988887777");
//! chat.says("!ping").await;
//! assert_eq!(chat.replies().await, ["pong"]);
//! # }
//! ```
//!
//! What runs is what runs in production: the same [`Router`], [`Dispatcher`], `Ctx`, outbox
//! (pacing, ordering, retries), gate and recovery of gaps. Only the transport differs: the
//! simulator's events are read from an in-process [`Listener`] instead of a WebSocket, and its
//! REST API (with the real server's validation) answers through [`RestClient::loopback`]
//! instead of HTTP.
//!
//! The kit pauses tokio's clock ([`tokio::time::pause`]): time moves only when every task
//! waits on a timer, and then jumps to the next one. A day of pacing runs in milliseconds, and
//! [`TestKit::advance`] moves the clock on by hand (for a dialogue's idle timeout, say). Create
//! one kit per test, on actix's runtime (`#[actix_rt::test]`).

use actix_web::dev::Service;
use eventsock_client::{Backfill, GapRecovery};
use eventsock_core::{Channel, EventMeta, EventName, Origin, Token};
use eventsock_handler::{Dispatcher, Router, Tally};
use eventsock_rest::{Loopback, LoopbackCall, LoopbackReply, Method, RestClient};
use eventsock_sim::{Generator, Listener, Protocol, Sent, Sim, SimConfig};
use futures_util::future::LocalBoxFuture;
use serde_json::Value;
use std::cell::{Cell, RefCell};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// A bot's router run in process against the simulator, on a virtual clock. See the
/// [module](self).
pub struct TestKit {
    sim: Sim,
    instance: String,
    rest: RestClient,
    dispatcher: Dispatcher,
    recovery: GapRecovery,
    /// One in-process subscription per event the router handles; none while disconnected.
    listeners: RefCell<Vec<(EventName, Listener)>>,
    generator: RefCell<Generator>,
    /// Frames delivered, for their metadata's `seq`.
    seq: Cell<u64>,
    /// When the connection was lost ([`TestKit::disconnect`]), until [`TestKit::reconnect`].
    offline_since: Cell<Option<SystemTime>>,
}

impl std::fmt::Debug for TestKit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestKit")
            .field("instance", &self.instance)
            .field("delivered", &self.seq.get())
            .finish_non_exhaustive()
    }
}

impl TestKit {
    /// Runs `router` against a new simulator of the CodeChat server (its default instance,
    /// messages saved so that replies can quote them and gaps can be recovered), and pauses
    /// tokio's clock.
    ///
    /// # Panics
    /// When called outside a current-thread tokio runtime (actix's is one), or when the clock
    /// is already paused (a second kit in one test).
    pub fn new(router: Router) -> TestKit {
        tokio::time::pause();
        let sim = Sim::new(SimConfig::default());
        let instance = sim.default_instance().to_owned();
        let token = Token::new(sim.mint_token(&instance, None));
        let rest = RestClient::loopback(instance.as_str(), token, Arc::new(InProcess(sim.clone())));
        let recovery = GapRecovery::new(Backfill::new());
        let dispatcher = Dispatcher::new(router)
            .rest(rest.clone())
            .gate(recovery.gate());
        let kit = TestKit {
            generator: RefCell::new(Generator::new(Protocol::Legacy)),
            sim,
            instance,
            rest,
            dispatcher,
            recovery,
            listeners: RefCell::new(Vec::new()),
            seq: Cell::new(0),
            offline_since: Cell::new(None),
        };
        kit.listen();
        kit
    }

    /// The simulator: what it stored, every request it was sent, and its failures on request
    /// ([`Sim::fail_sends`]).
    pub fn sim(&self) -> &Sim {
        &self.sim
    }

    /// The instance the bot runs on.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// The router's dispatcher, with the kit's REST client and gate.
    pub fn dispatcher(&self) -> &Dispatcher {
        &self.dispatcher
    }

    /// A chat with the phone number (or JID) `number`, to write to the bot and read its
    /// answers. A LID (`123456789012345@lid`) gives a LID-only chat, whose messages carry
    /// `keyLid` and no `keyRemoteJid`, as the server sends them; [`TestChat::with_lid`] gives a
    /// phone number's messages its LID too.
    pub fn chat(&self, number: &str) -> TestChat<'_> {
        let jid = if number.contains('@') {
            number.to_owned()
        } else {
            format!("{number}@s.whatsapp.net")
        };
        TestChat {
            kit: self,
            jid,
            lid: None,
            name: "Test User".to_owned(),
            read: Cell::new(0),
        }
    }

    /// Has the server send `data` as event `event` (any event: `messages.update`,
    /// `presence.update`...), delivers it to the bot as a live frame, and waits until every
    /// handler has handled it and everything they sent has been sent. While disconnected the
    /// event is lost, as on the real server (a message is still saved, for a recovery).
    pub async fn emit(&self, event: &str, data: &Value) -> Tally {
        self.sim.emit(&self.instance, event, data);
        let tally = self.deliver().await;
        self.settle().await;
        tally
    }

    /// Waits until the bot is idle: what the handlers queued is sent (paced on the virtual
    /// clock), and the events that caused are delivered (the server sends the bot's own
    /// messages back on `messages.upsert`), until nothing more comes.
    ///
    /// # Panics
    /// When the bot does not come to rest within 1,000 rounds: a bot that answers its own
    /// messages (check `is_from_me()`) would never stop.
    pub async fn settle(&self) {
        for _ in 0..1_000 {
            for outbox in self.dispatcher.outboxes() {
                if let Err(e) = outbox.flush().await {
                    tracing::warn!(error = %e, "an outbox stopped with messages in it");
                }
            }
            let delivered = self.seq.get();
            self.deliver().await;
            if self.seq.get() == delivered {
                return;
            }
        }
        panic!(
            "the bot did not come to rest after 1,000 rounds of sending and receiving: does it \
             answer its own messages? (skip them with is_from_me())"
        );
    }

    /// Moves the virtual clock on by `by` (timers due meanwhile fire), then settles.
    pub async fn advance(&self, by: Duration) {
        tokio::time::advance(by).await;
        self.settle().await;
    }

    /// Loses the connection: events sent from now on are lost to the bot, as on the real
    /// server (messages are saved there, and [`TestKit::reconnect`] recovers them).
    pub fn disconnect(&self) {
        self.listeners.borrow_mut().clear();
        if self.offline_since.get().is_none() {
            self.offline_since.set(Some(eventsock_core::clock::now()));
        }
    }

    /// Connects again and recovers the gap over REST, as the supervisor does after a
    /// reconnect: the messages sent meanwhile are delivered, oldest first, each once. Returns
    /// how many were delivered, or why none could be.
    pub async fn reconnect(&self) -> Result<u64, String> {
        self.listen();
        let Some(since) = self.offline_since.take() else {
            return Ok(0);
        };
        let delivered = self
            .recovery
            .recover(self.rest.clone(), self.dispatcher.clone(), since)
            .await;
        self.settle().await;
        delivered
    }

    /// Every text message the bot sent, in order.
    pub fn sent(&self) -> Vec<Sent> {
        self.sim
            .sent()
            .into_iter()
            .filter(|s| s.instance == self.instance)
            .collect()
    }

    fn listen(&self) {
        let mut listeners = self.listeners.borrow_mut();
        listeners.clear();
        let Ok(subscriptions) = self.dispatcher.router().subscriptions(Protocol::Legacy) else {
            return;
        };
        for (_, event) in subscriptions {
            let listener = self.sim.listen(&self.instance, event.as_str());
            listeners.push((event, listener));
        }
    }

    /// Delivers every frame the simulator has sent, in order; the tallies summed.
    async fn deliver(&self) -> Tally {
        let mut total = Tally::default();
        loop {
            let next = self
                .listeners
                .borrow_mut()
                .iter_mut()
                .find_map(|(event, l)| l.try_next().map(|frame| (event.clone(), frame)));
            let Some((event, frame)) = next else {
                return total;
            };
            self.seq.set(self.seq.get() + 1);
            let meta = EventMeta {
                seq: self.seq.get(),
                origin: Origin::Live,
                ..EventMeta::live(event.clone(), &self.instance)
            };
            let tally = self
                .dispatcher
                .handle(
                    &event,
                    Some(Channel::Legacy),
                    &frame,
                    &|_| meta.clone(),
                    true,
                )
                .await;
            total.handled += tally.handled;
            total.failed += tally.failed;
            total.gone += tally.gone;
            total.errors.extend(tally.errors);
            total.problems.extend(tally.problems);
            total.duplicate |= tally.duplicate;
        }
    }
}

/// One chat with the bot under test: see [`TestKit::chat`].
#[derive(Debug)]
pub struct TestChat<'k> {
    kit: &'k TestKit,
    jid: String,
    /// The LID its messages carry beside the phone number.
    lid: Option<String>,
    name: String,
    /// How many of the bot's texts to this chat [`TestChat::replies`] has returned.
    read: Cell<usize>,
}

impl TestChat<'_> {
    /// The chat's JID.
    pub fn jid(&self) -> &str {
        &self.jid
    }

    /// The same chat whose messages carry its LID too (`keyLid` beside `keyRemoteJid`), as the
    /// server sends them once it knows both: what teaches the bot that the two are one person.
    pub fn with_lid(mut self, lid: &str) -> Self {
        self.lid = Some(lid.to_owned());
        self
    }

    /// The name its messages carry (`pushName`); "Test User" unless changed.
    pub fn named(mut self, name: &str) -> Self {
        self.name = name.to_owned();
        self
    }

    /// The chat writes `text` to the bot: a `messages.upsert` as the server sends it, handled
    /// by every handler, and what they sent is sent. Returns how the handlers did.
    pub async fn says(&self, text: &str) -> Tally {
        let message = self.message(text);
        self.kit.emit("messages.upsert", &message).await
    }

    /// The `messages.upsert` payload of a text message from this chat, to change before
    /// [`TestKit::emit`] (for a message of another type, say).
    pub fn message(&self, text: &str) -> Value {
        let mut message = self
            .kit
            .generator
            .borrow_mut()
            .message(&self.jid, &self.name, text);
        if let Some(m) = message.as_object_mut() {
            if eventsock_core::identity::is_lid(&self.jid) {
                m.remove("keyRemoteJid");
                m.insert("keyLid".into(), self.jid.clone().into());
            } else if let Some(lid) = &self.lid {
                m.insert("keyLid".into(), lid.clone().into());
            }
        }
        message
    }

    /// The texts the bot has sent to this chat since the last call, in order (after
    /// everything queued was sent).
    pub async fn replies(&self) -> Vec<String> {
        self.kit.settle().await;
        let texts: Vec<String> = self
            .kit
            .sent()
            .into_iter()
            .filter(|s| s.chat == self.jid)
            .map(|s| s.text)
            .collect();
        let new = texts.get(self.read.get()..).unwrap_or_default().to_vec();
        self.read.set(texts.len());
        new
    }
}

/// The simulator's REST API, called in process.
struct InProcess(Sim);

impl Loopback for InProcess {
    fn answer(&self, call: LoopbackCall) -> LocalBoxFuture<'static, LoopbackReply> {
        let sim = self.0.clone();
        Box::pin(async move {
            let app = actix_web::test::init_service(
                actix_web::App::new().configure(eventsock_sim::configure(sim)),
            )
            .await;
            let method = match call.method {
                Method::Get => actix_web::http::Method::GET,
                Method::Post => actix_web::http::Method::POST,
                Method::Put => actix_web::http::Method::PUT,
                Method::Patch => actix_web::http::Method::PATCH,
            };
            let uri = match call.url.query() {
                Some(q) => format!("{}?{q}", call.url.path()),
                None => call.url.path().to_owned(),
            };
            let mut request = actix_web::test::TestRequest::default()
                .method(method.clone())
                .uri(&uri);
            if let Some(token) = &call.token {
                request = request.insert_header((
                    actix_web::http::header::AUTHORIZATION,
                    format!("Bearer {}", token.expose()),
                ));
            }
            if method != actix_web::http::Method::GET {
                request = request.set_json(&call.body);
            }
            match app.call(request.to_request()).await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let retry_after = response
                        .headers()
                        .get(actix_web::http::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse().ok());
                    let headers = ["content-type", "content-disposition"]
                        .into_iter()
                        .filter_map(|name| {
                            let value = response.headers().get(name)?.to_str().ok()?;
                            Some((name.to_owned(), value.to_owned()))
                        })
                        .collect();
                    let body = actix_web::test::read_body(response).await;
                    LoopbackReply {
                        status,
                        retry_after,
                        headers,
                        body: body.to_vec(),
                    }
                }
                Err(e) => LoopbackReply {
                    status: 500,
                    retry_after: None,
                    headers: Vec::new(),
                    body: e.to_string().into_bytes(),
                },
            }
        })
    }
}
