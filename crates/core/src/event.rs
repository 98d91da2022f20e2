//! Events as the router reads them: [`Event`] (typed), [`RawEvent`] and [`RawFrame`] (whole
//! frames, for taps), [`Undelivered`] (a frame no type took), and their [`EventMeta`].

use crate::frame::{DecodeError, FrameError, InstanceInfo};
use crate::head::MessageHead;
use crate::message::{MediaInfo, MediaKind, MessageLike};
use crate::name::EventName;
use crate::wire::Timestamp;
use crate::Payload;
use std::ops::Deref;
use std::sync::{Arc, OnceLock};
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
/// The payload is shared by every handler of the event (one allocation per event, whatever
/// the number of handlers). It derefs to the payload: `event.key_remote_jid` reads a field
/// directly.
///
/// A legacy message (`messages.upsert`, `send.message`) is decoded when it is first read: the
/// event keeps the frame's text, checked to fit the type when the frame arrived, and the
/// fields a bot reads first (what [`MessageLike`] answers: the text, chat, id, sender's name,
/// type, timestamp; the media's details excepted) were read in that same pass. The typed payload is built at the first access to anything else ([`Event::payload`],
/// a field through deref), once for all handlers of the event. (With [`MessageLike`] in scope,
/// as `eventsock::prelude` brings it, `m.text()` is its answer; without, it is the payload's
/// own `StoredMessage::text`, the same text, read from the built payload.)
pub struct Event<T> {
    /// Where and when it was received.
    pub meta: EventMeta,
    body: Arc<Body<T>>,
}

/// What the handlers of one event share: the payload, or its checked text until it is first
/// read.
struct Body<T> {
    /// The text and its head, for a payload decoded on first access.
    head: Option<MessageHead>,
    payload: OnceLock<T>,
}

impl<T: Payload> Body<T> {
    fn payload(&self) -> &T {
        self.payload.get_or_init(|| {
            // Only an unread body gets here: one made by `Event::new` holds its payload.
            let text = self.head.as_ref().map_or("", MessageHead::json);
            serde_json::from_str(text).unwrap_or_else(|e| {
                // The text was checked with the decoder's rules when the frame arrived
                // (`head::tests::check_agrees_with_decode` holds the two together).
                panic!(
                    "a frame checked to fit {} did not decode ({}): a bug in eventsock, \
                     please report it with the frame",
                    std::any::type_name::<T>(),
                    crate::human::escaped(&e.to_string())
                )
            })
        })
    }

    fn head(&self) -> Option<&MessageHead> {
        self.head.as_ref()
    }
}

impl<T: Payload> Event<T> {
    /// An event of a payload already built (to test a handler, or a payload recovered over
    /// REST).
    pub fn new(meta: EventMeta, payload: T) -> Event<T> {
        Event {
            meta,
            body: Arc::new(Body {
                head: None,
                payload: OnceLock::from(payload),
            }),
        }
    }

    /// An event whose payload is `head`'s text, decoded on first access; `head` was read by
    /// the check that the text fits `T`.
    pub(crate) fn unread(meta: EventMeta, head: MessageHead) -> Event<T> {
        Event {
            meta,
            body: Arc::new(Body {
                head: Some(head),
                payload: OnceLock::new(),
            }),
        }
    }

    /// The payload, built at the first call (by any handler of the event) if it was not yet.
    pub fn payload(&self) -> &T {
        self.body.payload()
    }

    /// Whether the typed payload has been built (it is built at the first access to it, for
    /// a legacy message; at once for every other payload).
    pub fn is_decoded(&self) -> bool {
        self.body.payload.get().is_some()
    }

    /// The payload's JSON text as the server sent it, while the event keeps it (a legacy
    /// message does); `None` for a payload built at once.
    pub fn json_text(&self) -> Option<&str> {
        self.body.head().map(MessageHead::json)
    }

    /// The payload as a chat message, if it is one: a legacy message answers from the fields
    /// read when it arrived, without building the payload.
    pub fn as_message(&self) -> Option<&dyn MessageLike> {
        self.body.message()
    }

    /// The payload, shared and without its type: what a handler's context reads the message
    /// from.
    pub fn shared(&self) -> Arc<dyn SharedPayload> {
        self.body.clone()
    }
}

impl<T> Clone for Event<T> {
    fn clone(&self) -> Self {
        Event {
            meta: self.meta.clone(),
            body: self.body.clone(),
        }
    }
}

/// Shows the payload if it is built, else its text (formatting builds nothing).
impl<T: std::fmt::Debug> std::fmt::Debug for Event<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut s = f.debug_struct("Event");
        s.field("meta", &self.meta);
        match self.body.payload.get() {
            Some(payload) => s.field("payload", payload),
            None => s.field("text", &self.body.head.as_ref().map(MessageHead::json)),
        };
        s.finish()
    }
}

impl<T: Payload> Deref for Event<T> {
    type Target = T;

    fn deref(&self) -> &T {
        self.payload()
    }
}

/// An event's payload without its type, shared by the event's handlers: what a handler's
/// context reads the message from.
pub trait SharedPayload: Send + Sync {
    /// The payload as a chat message, if it is one.
    fn message(&self) -> Option<&dyn MessageLike>;
    /// The payload as JSON (as the server sent it, when its text was kept).
    fn json(&self) -> Option<serde_json::Value>;
}

impl<T: Payload> SharedPayload for Body<T> {
    fn message(&self) -> Option<&dyn MessageLike> {
        match self.head {
            Some(_) => Some(self),
            None => self.payload().as_message(),
        }
    }

    fn json(&self) -> Option<serde_json::Value> {
        match self.head() {
            Some(h) => serde_json::from_str(h.json()).ok(),
            None => serde_json::to_value(self.payload()).ok(),
        }
    }
}

/// Answers from the head while the payload is not built; the media (and every answer of a
/// payload without a head) from the payload.
impl<T: Payload> MessageLike for Body<T> {
    fn text(&self) -> Option<&str> {
        match self.head() {
            Some(h) => h.text(),
            None => self.payload().as_message()?.text(),
        }
    }

    fn chat(&self) -> Option<&str> {
        match self.head() {
            Some(h) => h.chat(),
            None => self.payload().as_message()?.chat(),
        }
    }

    fn message_id(&self) -> Option<&str> {
        match self.head() {
            Some(h) => h.message_id(),
            None => self.payload().as_message()?.message_id(),
        }
    }

    fn sender_name(&self) -> Option<&str> {
        match self.head() {
            Some(h) => h.sender_name(),
            None => self.payload().as_message()?.sender_name(),
        }
    }

    fn message_type(&self) -> Option<&str> {
        match self.head() {
            Some(h) => h.message_type(),
            None => self.payload().as_message()?.message_type(),
        }
    }

    fn is_from_me(&self) -> bool {
        match self.head() {
            Some(h) => h.is_from_me(),
            None => self
                .payload()
                .as_message()
                .is_some_and(MessageLike::is_from_me),
        }
    }

    fn lid(&self) -> Option<&str> {
        match self.head() {
            Some(h) => h.lid(),
            None => self.payload().as_message()?.lid(),
        }
    }

    fn timestamp(&self) -> Option<i64> {
        match self.head() {
            Some(h) => h.timestamp(),
            None => self.payload().as_message()?.timestamp(),
        }
    }

    fn media(&self) -> Option<MediaInfo<'_>> {
        // A type without media (a text) answers without building the payload.
        if let Some(h) = self.head() {
            MediaKind::of(h.message_type()?)?;
        }
        self.payload().as_message()?.media()
    }
}

/// A message event answers from its head, without building the payload (see [`Event`]).
impl<T: Payload + MessageLike> MessageLike for Event<T> {
    fn text(&self) -> Option<&str> {
        self.body.text()
    }

    fn chat(&self) -> Option<&str> {
        self.body.chat()
    }

    fn message_id(&self) -> Option<&str> {
        self.body.message_id()
    }

    fn sender_name(&self) -> Option<&str> {
        self.body.sender_name()
    }

    fn message_type(&self) -> Option<&str> {
        self.body.message_type()
    }

    fn is_from_me(&self) -> bool {
        self.body.is_from_me()
    }

    fn lid(&self) -> Option<&str> {
        self.body.lid()
    }

    fn timestamp(&self) -> Option<i64> {
        self.body.timestamp()
    }

    fn media(&self) -> Option<MediaInfo<'_>> {
        self.body.media()
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
