//! Supervised event connections: a [`Supervisor`] that opens one WebSocket per subscribed event,
//! restarts it when it ends, and delivers typed events to the handler actors registered for them.
//!
//! The path of a frame, by name: a `ConnectionActor` (`src/connection.rs`) reads it from the
//! socket and queues it for its subscription; the subscription's `Dispatcher` (`src/route.rs`)
//! parses it ([`Frame::parse`](eventsock_core::Frame::parse)), decodes it once per registered
//! payload type, and sends [`Event<T>`](eventsock_core::Event) to each handler; frames that do not
//! fit go to the [`Undelivered`](eventsock_core::Undelivered) handlers. The [`Supervisor`] hears
//! when connections go up or down ([`Lifecycle`]) and decides when to reconnect.
//!
//! Key types: [`Supervisor`] and its [`SupervisorBuilder`]; [`Source`] (a server, an instance and
//! a [`TokenProvider`]); [`ClientConfig`]; the messages [`GetStatus`], [`Subscribe`] and
//! [`Shutdown`]; and [`RestClient`], for replies.
//!
//! ```no_run
//! use actix::prelude::*;
//! use eventsock_client::{Source, Supervisor};
//! use eventsock_core::{legacy, Endpoint, Event, Token};
//!
//! struct Printer;
//! impl Actor for Printer {
//!     type Context = Context<Self>;
//! }
//! impl Handler<Event<legacy::MessagesUpsert>> for Printer {
//!     type Result = ();
//!     fn handle(&mut self, msg: Event<legacy::MessagesUpsert>, _: &mut Context<Self>) {
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
//!         .handler::<legacy::MessagesUpsert>(printer.recipient())
//!         .start()?;
//!     tokio::signal::ctrl_c().await?;
//!     supervisor.send(eventsock_client::Shutdown).await?;
//!     Ok(())
//! }
//! ```

mod codec;
mod config;
mod connection;
mod dispatch;
mod error;
mod handshake;
mod lifecycle;
mod queue;
mod status;
mod supervisor;

pub use config::{ClientConfig, ConfigError, Delivery, GiveUp, Overflow};
pub use error::ClientError;
pub use lifecycle::{Lifecycle, LifecycleKind};
pub use status::{SubscriptionState, SubscriptionStatus};
pub use supervisor::{GetStatus, Shutdown, Subscribe, Supervisor, SupervisorBuilder};
