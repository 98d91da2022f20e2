//! eventsock: build programs that live on the event stream of a CodeChat WhatsApp API server.
//!
//! This facade re-exports the workspace's crates: [`core`] (the typed event model), [`client`]
//! (supervised connections delivering typed events to handler actors, and the REST client),
//! [`handler`] (pipelines, bots, built-ins) and [`sim`] (a simulator of the server, for tests,
//! examples and demos).

pub use eventsock_client as client;
pub use eventsock_core as core;
pub use eventsock_handler as handler;
pub use eventsock_nats as nats;
pub use eventsock_sim as sim;

mod target;
pub use target::{Target, TargetError};

/// The README's Rust code, compiled as doctests so that it cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// The types most programs need.
pub mod prelude {
    pub use eventsock_client::{
        ClientConfig, GetStatus, Lifecycle, LifecycleKind, RefreshingToken, RestClient, Shutdown,
        Source, Subscribe, Supervisor,
    };
    pub use eventsock_core::{
        legacy, v2, Backoff, Channel, Endpoint, Event, EventKind, EventName, Frame, Payload,
        RawEvent, Token, Undelivered,
    };
}
