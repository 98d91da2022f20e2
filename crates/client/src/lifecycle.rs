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
        /// Why the last attempt or connection failed, in words (never with the token).
        cause: String,
    },
    /// After a reconnect: events sent in this span may have been lost, since the server does not
    /// replay. With [`Backfill`](crate::Backfill) the supervisor recovers the span's messages
    /// over REST itself ([`LifecycleKind::Recovered`] follows).
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
    /// Messages of a gap were recovered over REST and delivered (see [`crate::Backfill`]).
    Recovered {
        /// Messages delivered (those already delivered live are not counted).
        delivered: u64,
        /// The start of the span searched (the gap's start, less the margin for clock skew).
        from: SystemTime,
    },
    /// Recovery over REST is not possible on this server; said once per instance.
    RecoveryUnavailable {
        /// Why, and what would make it work.
        reason: String,
    },
    /// One recovery failed (the server was slow or answered garbage); its gap stays open, and the
    /// next gap or the next start recovers it.
    RecoveryFailed {
        /// Why.
        reason: String,
    },
    /// Another eventsock process takes this stream (`--take`): this one stands down, without
    /// reconnecting, until that process lets go (it ends, or crashes), then takes the stream
    /// back and recovers what was sent meanwhile.
    TakenOver {
        /// Who took it.
        by: String,
    },
    /// The server gives this stream to another client: saved messages never arrived on the
    /// socket (see [`Backfill::watch`](crate::Backfill::watch)). The supervisor takes the stream
    /// back after `retake_in` (at once the first time, then at growing intervals up to 10
    /// minutes while another client keeps taking it) and recovers what it missed.
    Displaced {
        /// Saved messages the socket never delivered.
        missing: u64,
        /// When the oldest of them was sent.
        since: SystemTime,
        /// When the stream is taken back.
        retake_in: Duration,
    },
}

impl std::fmt::Display for LifecycleKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use eventsock_core::human::{duration, escaped};
        match self {
            LifecycleKind::Connecting { attempt } => write!(f, "connecting (attempt {attempt})"),
            LifecycleKind::Connected { generation } => {
                write!(f, "connected (connection {generation})")
            }
            LifecycleKind::Disconnected { reason, .. } => {
                write!(f, "disconnected: {}", escaped(reason))
            }
            LifecycleKind::Reconnecting {
                attempt,
                delay,
                cause,
            } => write!(
                f,
                "{}, retrying in {} (attempt {attempt})",
                escaped(cause),
                duration(*delay)
            ),
            LifecycleKind::Gap { from, to } => write!(
                f,
                "events between {} and {} may be lost (the server does not replay): recover them over REST (Backfill)",
                humantime::format_rfc3339_millis(*from),
                humantime::format_rfc3339_millis(*to)
            ),
            LifecycleKind::GaveUp { reason } => write!(f, "gave up: {}", escaped(reason)),
            LifecycleKind::Recovered { delivered, from } => write!(
                f,
                "recovered {delivered} missed messages over REST (searched from {})",
                humantime::format_rfc3339_millis(*from)
            ),
            LifecycleKind::RecoveryUnavailable { reason } => {
                write!(f, "missed messages cannot be recovered: {}", escaped(reason))
            }
            LifecycleKind::RecoveryFailed { reason } => write!(
                f,
                "recovering missed messages failed: {}; the next gap (or start) tries again",
                escaped(reason)
            ),
            LifecycleKind::TakenOver { by } => write!(
                f,
                "another eventsock process takes this stream ({by}): standing down until it lets go, then taking it back and recovering what was sent meanwhile"
            ),
            LifecycleKind::Displaced {
                missing,
                since,
                retake_in,
            } => write!(
                f,
                "displaced: the server gives this stream to another client ({missing} saved messages since {} never arrived); taking it back in {} and recovering what was missed",
                humantime::format_rfc3339_seconds(*since),
                duration(*retake_in)
            ),
        }
    }
}
