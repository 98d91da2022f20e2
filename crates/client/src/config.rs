//! How connections behave: frame size, heartbeat, backoff, restart intensity, queues.

use eventsock_core::{human, Backoff, Intensity};
use std::sync::Arc;
use std::time::Duration;

/// What a subscription does when its handlers fall behind and its queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Overflow {
    /// Stop reading the socket until there is room: TCP pushes back on the server. Nothing is
    /// lost in the client; a server that buffers without bound (the legacy one) grows instead,
    /// and the newer server closes a client that falls 256 frames behind (4008).
    #[default]
    Wait,
    /// Keep reading and drop the newest frame, counted in the subscription's status and logged.
    DropNewest,
}

/// How the dispatcher hands events to handler actors. Both keep order per handler and bound
/// memory (the handler's mailbox).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Delivery {
    /// Each event is handled by every handler before the next is delivered. Every failed
    /// delivery (a handler that stopped or panicked) is counted.
    #[default]
    Confirmed,
    /// While more frames wait, events go straight into the handlers' mailboxes without waiting
    /// for each to be handled (the last frame waiting is always confirmed, so a drained queue
    /// still means everything was handled). Faster under load (see docs/benchmarks.md), but
    /// events already in a handler's mailbox when it panics are lost to that handler: its failure
    /// is counted and logged once it is noticed, not each event it had queued.
    Pipelined,
}

/// What the supervisor does when a subscription restarts more often than its [`Intensity`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GiveUp {
    /// Mark that subscription failed, report it, and keep the others running.
    #[default]
    MarkFailed,
    /// Stop every subscription and the supervisor itself (OTP's behaviour).
    StopSupervisor,
}

/// Settings for every connection a supervisor runs.
#[derive(Clone)]
#[non_exhaustive]
pub struct ClientConfig {
    /// Largest frame accepted. Contact and history lists are large: 16 MiB by default
    /// (awc's own default is 64 KiB).
    pub max_frame_size: usize,
    /// How often to ping the server. The legacy server never pings, so without this a
    /// half-open link would go unnoticed forever. 15 s.
    pub ping_interval: Duration,
    /// How long after a ping, with nothing heard from the server, the link counts as dead. 10 s.
    pub pong_timeout: Duration,
    /// How long a handshake may take. 10 s.
    pub connect_timeout: Duration,
    /// How long to wait for the server's close frame after sending ours at shutdown. 2 s.
    pub close_timeout: Duration,
    /// How long one write (a pong, a ping, our close) may wait for the server to read. A server
    /// that does not read for this long is treated as dead: reading, timers and shutdown never
    /// wait on a write. 10 s.
    pub write_timeout: Duration,
    /// Delay before each reconnect. Exponential from 0.5 s to 30 s with jitter.
    pub backoff: Backoff,
    /// A connection that stayed up this long resets the backoff to its first step. 10 s.
    pub stable_after: Duration,
    /// Restarts allowed per subscription within a window (100 in 10 minutes).
    pub intensity: Intensity,
    /// What to do past the intensity.
    pub give_up: GiveUp,
    /// Frames read but not yet handled, per subscription. 1024.
    pub queue_capacity: usize,
    /// Bytes of frames read but not yet handled, per subscription: 64 MiB. With
    /// `queue_capacity` this bounds memory whatever the frame sizes (1,024 frames of 16 MiB
    /// would be 16 GiB). A frame larger than this is let through alone, when the queue is empty.
    pub queue_bytes: usize,
    /// What to do when that queue is full.
    pub overflow: Overflow,
    /// How events reach handler actors.
    pub delivery: Delivery,
    /// TLS settings for `wss://`; by default the Mozilla root certificates (webpki-roots).
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            max_frame_size: 16 * 1024 * 1024,
            ping_interval: Duration::from_secs(15),
            pong_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            close_timeout: Duration::from_secs(2),
            write_timeout: Duration::from_secs(10),
            backoff: Backoff::default(),
            stable_after: Duration::from_secs(10),
            intensity: Intensity::default(),
            give_up: GiveUp::default(),
            queue_capacity: 1024,
            queue_bytes: 64 * 1024 * 1024,
            overflow: Overflow::default(),
            delivery: Delivery::default(),
            tls: None,
        }
    }
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("max_frame_size", &self.max_frame_size)
            .field("ping_interval", &self.ping_interval)
            .field("pong_timeout", &self.pong_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("close_timeout", &self.close_timeout)
            .field("write_timeout", &self.write_timeout)
            .field("backoff", &self.backoff)
            .field("stable_after", &self.stable_after)
            .field("intensity", &self.intensity)
            .field("give_up", &self.give_up)
            .field("queue_capacity", &self.queue_capacity)
            .field("queue_bytes", &self.queue_bytes)
            .field("overflow", &self.overflow)
            .field("delivery", &self.delivery)
            .field("tls", &self.tls.as_ref().map(|_| "custom"))
            .finish()
    }
}

impl ClientConfig {
    /// Checks that every setting is possible: no zero interval, timeout or size, a backoff whose
    /// minimum is not above its maximum, a restart intensity that allows a restart. Called by
    /// [`SupervisorBuilder::start`](crate::SupervisorBuilder::start); the error names the setting.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let zero = |name: &'static str, d: Duration| {
            if d.is_zero() {
                Err(ConfigError(format!(
                    "{name} is zero: it must be at least a millisecond"
                )))
            } else {
                Ok(())
            }
        };
        zero("ping_interval", self.ping_interval)?;
        zero("pong_timeout", self.pong_timeout)?;
        zero("connect_timeout", self.connect_timeout)?;
        zero("close_timeout", self.close_timeout)?;
        zero("write_timeout", self.write_timeout)?;
        for (name, n) in [
            ("max_frame_size", self.max_frame_size),
            ("queue_capacity", self.queue_capacity),
            ("queue_bytes", self.queue_bytes),
        ] {
            if n == 0 {
                return Err(ConfigError(format!(
                    "{name} is zero: nothing could be read"
                )));
            }
        }
        if self.intensity.max_restarts == 0 || self.intensity.within.is_zero() {
            return Err(ConfigError(
                "intensity allows no restart: give max_restarts and within above zero".into(),
            ));
        }
        match self.backoff {
            Backoff::Fixed(d) => zero("backoff (fixed)", d)?,
            Backoff::Exponential {
                min,
                max,
                factor,
                jitter,
            } => {
                zero("backoff's min", min)?;
                if min > max {
                    return Err(ConfigError(format!(
                        "backoff's min ({}) is above its max ({})",
                        human::duration(min),
                        human::duration(max)
                    )));
                }
                if !factor.is_finite() || factor < 1.0 {
                    return Err(ConfigError(format!(
                        "backoff's factor is {factor}: it must be a number of at least 1"
                    )));
                }
                if !(0.0..=1.0).contains(&jitter) {
                    return Err(ConfigError(format!(
                        "backoff's jitter is {jitter}: it must be between 0 and 1"
                    )));
                }
            }
        }
        Ok(())
    }
}

/// A [`ClientConfig`] setting that cannot work; the message names it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("impossible client setting: {0}")]
pub struct ConfigError(pub String);
