//! The CodeChat WhatsApp API's REST calls, usable without any socket: [`RestClient`] sends,
//! replies, reacts, marks as read, sets presence, finds messages and downloads media
//! ([`media`]) for one instance; [`Outbox`] paces, orders and retries sends without sending
//! twice, and follows their delivery receipts ([`Delivery`]);
//! [`RefreshingToken`] renews a token before it expires and can be shared with the event
//! sockets (it is a [`TokenProvider`](eventsock_core::TokenProvider)).
//!
//! ```no_run
//! use eventsock_core::{Endpoint, Token};
//! use eventsock_rest::RestClient;
//!
//! # #[actix_rt::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let endpoint = Endpoint::parse("http://localhost:8084")?;
//! let rest = RestClient::new(&endpoint, "codechat", Token::new(std::env::var("EVENTSOCK_TOKEN")?));
//! rest.send_text("5511988887777@s.whatsapp.net", "hello").await?;
//! # Ok(()) }
//! ```

mod client;
mod error;
pub mod media;
pub mod outbox;
mod refresh;
mod retries;
mod tls;

pub use client::{
    request, FoundPage, Loopback, LoopbackCall, LoopbackReply, MessageKey, Method, Quote,
    RestClient, SendText,
};
pub use error::RestError;
pub use media::{Downloaded, MediaError, MediaLimits};
pub use outbox::{
    Action, Delivery, DeliveryError, DeliveryStats, Outbox, OutboxError, OutboxStats, Outcome,
    Outgoing, Pacing, Postbox, Receipt, Typing, WhenFull,
};
pub use refresh::{RefreshError, RefreshingToken};
pub use tls::default_tls;
