//! The typed model of the CodeChat WhatsApp API event stream: no sockets, no runtime.
//!
//! A CodeChat server sends each event on its own WebSocket, one JSON document per text frame.
//! This crate knows every event name ([`EventKind`], [`EventName`]), the shape of every payload
//! ([`legacy`] for the Node server's bare frames, [`v2`] for the newer server's enveloped ones),
//! how to read a frame ([`Frame`]), where to connect ([`Endpoint`]), and how long to wait before
//! reconnecting ([`Backoff`]), who to ask for a token ([`Source`], [`TokenProvider`]),
//! how a message reads whichever server sent it ([`MessageLike`]), and how an event is recorded
//! ([`Recorded`]). The messages handler actors receive are [`Event<T>`],
//! [`RawEvent`] and [`Undelivered`].
//!
//! The pieces fit like this: a [`Payload`] type names its events and its [`Channel`]; the client
//! opens [`Endpoint::subscription`] for each; each text frame goes through [`Frame::parse`] (is
//! it JSON? is it enveloped?) and [`Frame::decode`] (does it fit the type?).
//!
//! ```
//! use eventsock_core::{legacy, EventKind, EventName, Frame, Payload};
//!
//! let event: EventName = EventKind::MessagesUpsert.into();
//! assert_eq!(legacy::MessagesUpsert::EVENTS, &[EventKind::MessagesUpsert]);
//!
//! let text = r#"{"keyId":"3A5F","keyRemoteJid":"5511988887777@s.whatsapp.net",
//!                "content":{"text":"!ping"},"messageTimestamp":"1747310400"}"#;
//! let frame = Frame::parse(&event, text)?;
//! let msg: legacy::MessagesUpsert = frame.decode(&event)?;
//! assert_eq!(msg.text(), Some("!ping"));
//! assert_eq!(msg.message_timestamp, Some(1747310400)); // 64-bit integers may come as strings
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod backoff;
mod checkpoint;
pub mod clock;
mod event;
pub mod evolution;
pub mod file;
mod frame;
mod hash;
mod head;
pub mod histogram;
pub mod human;
pub mod identity;
pub mod legacy;
mod message;
mod name;
mod payload;
mod recent;
mod record;
pub mod socketio;
mod source;
mod subscription;
mod token;
pub mod v2;
pub mod wire;

pub use backoff::{Backoff, Intensity, RestartLog};
pub use checkpoint::CheckpointStore;
pub use event::{
    Event, EventMeta, FrameProblem, Origin, RawEvent, RawFrame, SharedPayload, Undelivered,
};
pub use frame::{DecodeError, Frame, FrameError, InstanceInfo};
pub use hash::{fnv1a, FNV_BASIS};
pub use head::MessageHead;
pub use histogram::{Histogram, HistogramSnapshot};
pub use identity::Identities;
pub use message::{MediaInfo, MediaKind, MessageLike, QuotedMessage};
pub use name::{Channel, EventKind, EventName, UnknownEvent};
pub use payload::{Extra, Payload};
pub use recent::Recent;
pub use record::Recorded;
pub use source::{
    FnTokenProvider, LocalBoxFuture, Protocol, Source, SourceError, TokenProvider,
    TokenProviderError,
};
pub use subscription::{Endpoint, EndpointError, SubscriptionUrl};
pub use token::{Claims, Token, TokenError, TokenFileError};
