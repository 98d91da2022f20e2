//! The link between a payload type and the event names whose frames it decodes.

use crate::name::{Channel, EventKind, EventName};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// A typed payload of one or more events.
///
/// Each payload type knows the names it is sent under and the endpoint that serves them, so
/// registering a handler for [`legacy::MessagesUpsert`](crate::legacy::MessagesUpsert) is enough
/// to know that `messages.upsert` must be subscribed on `/ws/events`.
///
/// Every payload keeps the fields it does not model in an `extra` map, so re-encoding one gives
/// back the JSON it came from.
pub trait Payload:
    DeserializeOwned + Serialize + Clone + Send + Sync + std::fmt::Debug + 'static
{
    /// The endpoint whose frames have this shape.
    const CHANNEL: Channel;
    /// The event names whose frames decode into this type.
    const EVENTS: &'static [EventKind];

    /// Whether frames of the event `name` decode into this type. By default, whether `name`
    /// is one of [`Self::EVENTS`]; families such as `call.*` also take names not known yet.
    fn accepts(name: &EventName) -> bool {
        name.kind().is_some_and(|k| Self::EVENTS.contains(&k))
    }

    /// This payload as a chat message, if it is one (`messages.upsert`, `send.message`): what a
    /// handler's context answers to.
    fn as_message(&self) -> Option<&dyn crate::MessageLike> {
        None
    }

    /// For a payload decoded on first access: checks that `text` decodes into this type and
    /// reads the fields a bot reads first, in one pass that builds nothing. `None` (the
    /// default): the payload is decoded when it arrives.
    ///
    /// Only for a payload of the legacy message's shape ([`MessageHead::read`](crate::MessageHead::read)
    /// checks `legacy::StoredMessage`'s rules, and makes the only heads there are): a type whose
    /// decode refuses a text the check accepts would panic at its first access. On an error the
    /// frame is decoded at once, and the decode says what did not fit.
    fn head(text: &str) -> Option<Result<crate::MessageHead, serde_json::Error>> {
        let _ = text;
        None
    }

    /// The endpoint a server of `protocol` sends this type's events on: [`Self::CHANNEL`] for
    /// its own protocol's server; another for a type also read from another server's frames
    /// (see [`Payload::translate`]); `None` when that server has no such events.
    fn channel_on(protocol: crate::Protocol) -> Option<Channel> {
        (crate::Protocol::of(Self::CHANNEL) == protocol).then_some(Self::CHANNEL)
    }

    /// Reads a payload of `channel`'s shape, another than [`Self::CHANNEL`]'s, as this type:
    /// how a bot written against [`legacy::MessagesUpsert`](crate::legacy::MessagesUpsert)
    /// runs unchanged on Evolution API. `None` (the default): this type is not read from there.
    fn translate(channel: Channel, data: &str) -> Option<Result<Self, serde_json::Error>> {
        let _ = (channel, data);
        None
    }
}

/// Ties a payload type to its channel and event names.
macro_rules! payload {
    ($ty:ty, $channel:ident, [$($kind:ident),+]) => {
        impl $crate::payload::Payload for $ty {
            const CHANNEL: $crate::name::Channel = $crate::name::Channel::$channel;
            const EVENTS: &'static [$crate::name::EventKind] = &[$($crate::name::EventKind::$kind),+];
        }
    };
    ($ty:ty, $channel:ident, [$($kind:ident),+], lazy_message) => {
        impl $crate::payload::Payload for $ty {
            const CHANNEL: $crate::name::Channel = $crate::name::Channel::$channel;
            const EVENTS: &'static [$crate::name::EventKind] = &[$($crate::name::EventKind::$kind),+];
            fn as_message(&self) -> Option<&dyn $crate::MessageLike> {
                Some(self)
            }
            fn head(text: &str) -> Option<Result<$crate::MessageHead, serde_json::Error>> {
                Some($crate::MessageHead::read(text))
            }
            // Evolution API's messages are read in their own shape, then given in this one.
            fn channel_on(protocol: $crate::Protocol) -> Option<$crate::name::Channel> {
                match protocol {
                    $crate::Protocol::Legacy => Some(Self::CHANNEL),
                    $crate::Protocol::Evolution => Some($crate::name::Channel::Evolution),
                    $crate::Protocol::V2 => None,
                }
            }
            fn translate(
                channel: $crate::name::Channel,
                data: &str,
            ) -> Option<Result<Self, serde_json::Error>> {
                (channel == $crate::name::Channel::Evolution).then(|| {
                    serde_json::from_str::<$crate::evolution::Message>(data)
                        .map(|m| Self(m.into_legacy()))
                })
            }
        }
    };
    ($ty:ty, $channel:ident, [$($kind:ident),+], message) => {
        impl $crate::payload::Payload for $ty {
            const CHANNEL: $crate::name::Channel = $crate::name::Channel::$channel;
            const EVENTS: &'static [$crate::name::EventKind] = &[$($crate::name::EventKind::$kind),+];
            fn as_message(&self) -> Option<&dyn $crate::MessageLike> {
                Some(self)
            }
        }
    };
}
pub(crate) use payload;

/// Fields of a payload that this version does not model, kept as they came.
pub type Extra = serde_json::Map<String, serde_json::Value>;
