//! eventsock: build programs that live on the event stream of a CodeChat WhatsApp API server.
//!
//! A bot is a [`Router`](handler::Router) of handlers and one call to run it:
//!
//! ```no_run
//! use eventsock::prelude::*;
//!
//! fn main() {
//!     Router::builder()
//!         .on(|msg: Msg| async move {
//!             if !msg.is_from_me() && msg.text() == Some("!ping") {
//!                 msg.cx.reply("pong").await?;
//!             }
//!             Ok(())
//!         })
//!         .build()
//!         .run()
//! }
//! ```
//!
//! [`Run::run`] reads the server from `--url`/`--token` (or `EVENTSOCK_URL`/`EVENTSOCK_TOKEN`),
//! runs until Ctrl-C or SIGTERM and drains what was read. With no URL it uses the built-in
//! simulator when the `sim` feature is on, and says so.
//!
//! This facade re-exports the workspace's crates: [`core`] (the typed event model, sources,
//! tokens), [`rest`] (the REST client, usable without sockets), [`client`] (the supervisor:
//! supervised connections delivering to a router), [`handler`] (the router, pipelines, bots,
//! built-ins), and with their features `sim` (a simulator of the server) and `nats`
//! (scale-out on JetStream).
//!
//! # Features
//! - `sim`: the embedded simulator (actix-web's server): `run` with no URL, examples, tests.
//! - `nats`: the module `nats`, ingest into JetStream and workers.
//! - `qr`: pair a phone from the terminal (`handler::builtin::qr_terminal`).
//! - `metrics`: Prometheus metrics and health checks served by the runtime ([`Settings::metrics`]).
//! - `testkit`: test a bot in process, on a virtual clock (the module `testkit`).
//! - `cli`: the `eventsock` command (all of the above but `testkit`). `full`: everything.

pub use eventsock_client as client;
pub use eventsock_core as core;
pub use eventsock_handler as handler;
#[cfg(feature = "nats")]
pub use eventsock_nats as nats;
pub use eventsock_rest as rest;
#[cfg(feature = "sim")]
pub use eventsock_sim as sim;

#[cfg(feature = "metrics")]
mod metrics;
mod run;
#[cfg(feature = "testkit")]
pub mod testkit;

pub use run::{terminated, Run, RunError, Running, Settings};

/// The README's Rust code, compiled as doctests so that it cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// A message received or sent on the legacy server (`messages.upsert`), with its context:
/// what most bots handle.
pub type Msg = eventsock_handler::Received<eventsock_core::legacy::MessagesUpsert>;

/// Everything a bot needs, in one import: `use eventsock::prelude::*;`. No name in it is one of
/// `actix::prelude`'s, so both can be glob-imported together (the supervisor is
/// `eventsock::client::Supervisor` and a running bot `eventsock::Running`, not here):
///
/// ```
/// use actix::prelude::*;
/// use eventsock::prelude::*;
///
/// struct Echo;
/// impl Actor for Echo {
///     type Context = Context<Self>;
/// }
/// impl Handler<Msg> for Echo {
///     type Result = ();
///     fn handle(&mut self, m: Msg, _: &mut Context<Self>) {
///         println!("{}", m.text().unwrap_or_default());
///     }
/// }
/// #[derive(Message)]
/// #[rtype(result = "()")]
/// struct Ping;
/// # #[actix::main] async fn main() {
/// let router: Router = Router::builder().actor(Echo.start().recipient()).build();
/// let _: Option<Running> = None; // actix's
/// # let _ = (router, Ping); }
/// ```
pub mod prelude {
    pub use crate::{Msg, Run, Settings};
    pub use eventsock_client::{
        Backfill, ClientConfig, GetStatus, Lifecycle, LifecycleKind, Shutdown, Subscribe,
        SubscriptionState, SubscriptionStatus,
    };
    pub use eventsock_core::{
        legacy, v2, Channel, CheckpointStore, Endpoint, Event, EventKind, EventName, MessageLike,
        Origin, Payload, Protocol, RawEvent, Source, Token, TokenProvider, Undelivered,
    };
    pub use eventsock_handler::{
        Bot, BoxError, CommandError, Commands, Ctx, Dedup, Dialogue, Flow, HandlerError, Pipeline,
        Received, Route, Router,
    };
    pub use eventsock_rest::{
        Outbox, OutboxError, Outgoing, Pacing, Receipt, RefreshingToken, RestClient, RestError,
        Typing, WhenFull,
    };
}
