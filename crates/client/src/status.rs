//! Subscription status, on request.

use eventsock_core::EventName;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

impl std::fmt::Display for SubscriptionState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SubscriptionState::Connecting => "connecting",
            SubscriptionState::Connected => "connected",
            SubscriptionState::BackingOff => "waiting to reconnect",
            SubscriptionState::Displaced => "displaced: waiting to take the stream back",
            SubscriptionState::StoodDown => "stood down: another eventsock process took the stream",
            SubscriptionState::Failed => "given up",
            SubscriptionState::Stopped => "stopped",
        })
    }
}

/// The state of one subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscriptionState {
    /// A handshake is under way.
    Connecting,
    /// Connected and reading.
    Connected,
    /// Waiting before the next attempt.
    BackingOff,
    /// Another client took the stream: waiting to take it back.
    Displaced,
    /// Another eventsock process took the stream (`--take`): waiting for it to let go.
    StoodDown,
    /// Given up after too many restarts.
    Failed,
    /// Shut down.
    Stopped,
}

impl SubscriptionState {
    /// Every state, in the order above.
    pub const ALL: [SubscriptionState; 7] = [
        SubscriptionState::Connecting,
        SubscriptionState::Connected,
        SubscriptionState::BackingOff,
        SubscriptionState::Displaced,
        SubscriptionState::StoodDown,
        SubscriptionState::Failed,
        SubscriptionState::Stopped,
    ];
}

/// A snapshot of one subscription, from [`GetStatus`](crate::GetStatus).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SubscriptionStatus {
    /// The endpoint (no token).
    pub endpoint: String,
    /// The instance (or user).
    pub instance: Arc<str>,
    /// The event.
    pub event: EventName,
    /// Its state.
    pub state: SubscriptionState,
    /// Failed attempts since the last successful connection.
    pub attempts: u32,
    /// Connections made so far (the current generation).
    pub generation: u64,
    /// Restarts so far.
    pub restarts: u64,
    /// The last error, in words (never with the token).
    pub last_error: Option<String>,
    /// Text frames read.
    pub frames: u64,
    /// Frames delivered to at least one handler.
    pub events: u64,
    /// Frames that were not JSON, or did not fit their type.
    pub decode_errors: u64,
    /// Frames dropped because the queue was full ([`Overflow::DropNewest`](crate::Overflow)).
    pub dropped: u64,
    /// Frames no live handler took.
    pub unhandled: u64,
    /// Deliveries that failed because a handler had stopped or panicked.
    pub handler_failures: u64,
    /// Bytes of frames read and not yet handled (bounded by `ClientConfig::queue_bytes`).
    pub queued_bytes: u64,
    /// Times another client was found holding the stream (see `Backfill::watch`).
    pub displacements: u64,
}

/// Counters shared by a subscription's connection, its dispatcher and the supervisor.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) frames: AtomicU64,
    pub(crate) events: AtomicU64,
    pub(crate) decode_errors: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) unhandled: AtomicU64,
    pub(crate) handler_failures: AtomicU64,
    pub(crate) displacements: AtomicU64,
}

impl Counters {
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}
