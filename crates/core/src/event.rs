//! Events as the router reads them: [`Event`] (typed), [`RawEvent`] and [`RawFrame`] (whole
//! frames, for taps), [`Undelivered`] (a frame no type took), and their [`EventMeta`].

use crate::frame::{DecodeError, FrameError, InstanceInfo};
use crate::name::EventName;
use crate::wire::Timestamp;
use std::ops::Deref;
use std::sync::Arc;
use std::time::SystemTime;

/// Where and when an event was received.
#[derive(Debug, Clone, PartialEq)]
pub struct EventMeta {
    /// The event name.
    pub event: EventName,
    /// The instance name: from the envelope when there is one, else from the subscription's token.
    pub instance: Option<Arc<str>>,
    /// The envelope's instance record (newer server only).
    pub instance_info: Option<Arc<InstanceInfo>>,
    /// The envelope's timestamp (newer server only).
    pub server_time: Option<Timestamp>,
    /// When the frame was read from the socket.
    pub received_at: SystemTime,
    /// Position of the frame within its connection, from 1. Gaps never happen within one
    /// connection; it starts again at 1 on each new connection.
    pub seq: u64,
    /// Which connection of the subscription the frame came on, from 1; it grows with each reconnect.
    pub generation: u64,
    /// Whether the event came live from a socket or was recovered over REST after a gap.
    pub origin: Origin,
}

impl EventMeta {
    /// The metadata of an event `event` of `instance` read live now, as the first frame of a
    /// subscription's first connection: for building events by hand, to test a handler.
    pub fn live(event: impl Into<EventName>, instance: &str) -> EventMeta {
        EventMeta {
            event: event.into(),
            instance: Some(instance.into()),
            instance_info: None,
            server_time: None,
            received_at: SystemTime::now(),
            seq: 1,
            generation: 1,
            origin: Origin::Live,
        }
    }
}

/// Where an event came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum Origin {
    /// Read from a socket as the server sent it (or replayed from a recording of that).
    #[default]
    Live,
    /// Recovered over REST (`findMessages`) after a gap in which no socket listened. `seq`
    /// counts the recovered events of one recovery, from 1; `generation` is 0.
    Recovered,
}

/// A typed event: its metadata and its payload. Handlers receive it with its context, as
/// `eventsock_handler::Received<T>`.
///
/// The payload is shared (`Arc`), so fan-out to many handlers copies no payload. It derefs to
/// the payload: `event.key_remote_jid` reads a field directly.
#[derive(Debug, Clone)]
pub struct Event<T> {
    /// Where and when it was received.
    pub meta: EventMeta,
    /// The payload.
    pub payload: Arc<T>,
}

impl<T> Deref for Event<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.payload
    }
}

/// Any event as JSON, for raw handlers: delivered for every frame of the subscriptions a raw
/// handler is registered for, whether or not the frame fits its type.
#[derive(Debug, Clone)]
pub struct RawEvent {
    /// Where and when it was received.
    pub meta: EventMeta,
    /// The payload (the envelope's `data`, or the bare frame).
    pub data: Arc<serde_json::Value>,
}

impl actix::Message for RawEvent {
    type Result = ();
}

/// Any event as the text the server sent, for handlers that pass it on without reading it (the
/// NATS ingest): like [`RawEvent`], without building a `serde_json::Value`. The text is one JSON
/// document: a `RawValue` is checked when it is made.
#[derive(Debug, Clone)]
pub struct RawFrame {
    /// Where and when it was received.
    pub meta: EventMeta,
    /// The payload's JSON text (the envelope's `data`, or the bare frame): `data.get()`.
    pub data: Arc<serde_json::value::RawValue>,
}

impl actix::Message for RawFrame {
    type Result = ();
}

/// A frame that could not be delivered as its type. Nothing is dropped silently: it is counted,
/// logged, and sent to whoever registered for it, with the data when the frame was valid JSON.
#[derive(Debug, Clone)]
pub struct Undelivered {
    /// Where and when it was received.
    pub meta: EventMeta,
    /// What went wrong.
    pub error: FrameProblem,
}

impl actix::Message for Undelivered {
    type Result = ();
}

/// Why a frame could not be delivered as its type.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum FrameProblem {
    /// Not JSON: only the error (with a bounded excerpt) is kept.
    #[error(transparent)]
    InvalidJson(#[from] FrameError),
    /// Valid JSON that does not fit the type; the data is kept.
    #[error("{error}")]
    WrongShape {
        /// What did not fit.
        error: DecodeError,
        /// The frame's data.
        data: Arc<serde_json::Value>,
    },
    /// Decoding or delivering the frame panicked (a bug, in eventsock or in a payload type); the
    /// stream went on.
    #[error("decoding the frame panicked ({message}); the frame began: {excerpt}")]
    Panicked {
        /// The panic's message.
        message: String,
        /// The start of the frame, escaped.
        excerpt: String,
    },
    /// A binary frame; the servers send only text.
    #[error("a binary frame of {len} bytes was skipped: the server sends only text frames")]
    Binary {
        /// Its size.
        len: usize,
    },
}
