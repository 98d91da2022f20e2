//! Supervised event connections: a [`Supervisor`] that opens one WebSocket per subscribed event,
//! restarts it when it ends, and feeds its frames, in order, to a
//! [`Router`](eventsock_handler::Router).
//!
//! The path of a frame, by name: a `ConnectionActor` (`src/connection/mod.rs`; its writes in `connection/write.rs`) reads it from the
//! socket and queues it for its subscription (`src/queue.rs`, bounded in frames and bytes); the
//! subscription's `Feed` (`src/dispatch.rs`) takes it off the queue and hands it to the
//! supervisor's [`Dispatcher`](eventsock_handler::Dispatcher) (crate `eventsock-handler`,
//! `src/dispatcher.rs`), which has the router decode it once per registered payload type and
//! deliver it, with its context, to each handler; the feed counts the outcome. The
//! [`Supervisor`] hears when connections go up or down ([`Lifecycle`]) and decides when to
//! reconnect (`src/policy.rs`).
//!
//! Key types: [`Supervisor`] and its [`SupervisorBuilder`]; [`ClientConfig`]; the messages
//! [`GetStatus`], [`Subscribe`] and [`Shutdown`]. Sources and tokens are in `eventsock-core`,
//! the REST client in `eventsock-rest`. Most programs start a bot with `eventsock::Run` instead.
//!
//! ```no_run
//! use actix::prelude::*;
//! use eventsock_client::Supervisor;
//! use eventsock_core::{legacy, Endpoint, MessageLike, Source, Token};
//! use eventsock_handler::{Received, Router};
//!
//! struct Printer;
//! impl Actor for Printer {
//!     type Context = Context<Self>;
//! }
//! impl Handler<Received<legacy::MessagesUpsert>> for Printer {
//!     type Result = ();
//!     fn handle(&mut self, msg: Received<legacy::MessagesUpsert>, _: &mut Context<Self>) {
//!         let who = msg.push_name.as_deref().unwrap_or("someone");
//!         println!("{who} says {}", msg.text().unwrap_or_default());
//!     }
//! }
//!
//! #[actix::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let endpoint = Endpoint::parse("http://localhost:8084")?;
//!     let token = Token::new(std::env::var("EVENTSOCK_TOKEN")?);
//!     let printer = Printer.start();
//!     let supervisor = Supervisor::builder()
//!         .source(Source::new(endpoint, token)?)
//!         .router(Router::builder().actor(printer.recipient()).build())
//!         .start()?;
//!     tokio::signal::ctrl_c().await?;
//!     supervisor.send(eventsock_client::Shutdown).await?;
//!     Ok(())
//! }
//! ```

mod backfill;
mod codec;
mod config;
mod connection;
mod dispatch;
mod error;
mod handshake;
mod lease;
mod lifecycle;
mod policy;
mod queue;
mod status;
mod supervisor;

pub use backfill::{Backfill, GapRecovery};
pub use config::{ClientConfig, ConfigError, Delivery, GiveUp, Overflow};
pub use error::ClientError;
pub use lease::{Holder, Lease, LeaseError, Leases};
pub use lifecycle::{Lifecycle, LifecycleKind};
pub use status::{SubscriptionState, SubscriptionStatus};
pub use supervisor::{
    GetDispatcher, GetStatus, Shutdown, StandDown, Subscribe, Supervisor, SupervisorBuilder,
    TakeBack, DRAIN,
};
