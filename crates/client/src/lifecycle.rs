//! What happens to subscriptions, for whoever registers to hear it.

use eventsock_core::EventName;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// A subscription's change of state. Register with
/// [`SupervisorBuilder::lifecycle`](crate::SupervisorBuilder::lifecycle).
#[derive(Debug, Clone)]
pub struct Lifecycle {
    /// The instance (or user).
    pub instance: Arc<str>,
    /// The event.
    pub event: EventName,
    /// What happened.
    pub kind: LifecycleKind,
}

impl actix::Message for Lifecycle {
    type Result = ();
}

/// What happened to a subscription.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum LifecycleKind {
    /// A connection attempt started (1 for the first attempt since the last success).
    Connecting {
        /// Attempt number.
        attempt: u32,
    },
    /// The handshake succeeded.
    Connected {
        /// Connection number, from 1.
        generation: u64,
    },
    /// The connection ended.
    Disconnected {
        /// The close code, when the server sent a close frame.
        code: Option<u16>,
        /// Why, in words (never with the token).
        reason: String,
    },
    /// The next attempt is scheduled.
    Reconnecting {
        /// Attempt number.
        attempt: u32,
        /// Wait before it.
        delay: Duration,
    },
    /// After a reconnect: events sent in this span may have been lost, since the server does not
    /// replay. Resync over REST (for example `/chat/findMessages`) for this span.
    Gap {
        /// The last moment the previous connection was known to receive (last frame or pong).
        from: SystemTime,
        /// When the new connection was established.
        to: SystemTime,
    },
    /// Restarted too often: the subscription is given up (see [`crate::GiveUp`]).
    GaveUp {
        /// Why.
        reason: String,
    },
}
