//! How an outbox paces: [`Pacing`], [`Typing`], [`WhenFull`].

use std::time::Duration;

/// A day: the longest any interval of the pacing may be, and the daily cap's window.
pub(super) const DAY: Duration = Duration::from_secs(24 * 3600);

/// How an [`Outbox`](super::Outbox) paces, queues and retries. The defaults are cautious, for a number that
/// must not be banned: 1 message per second over all chats, one per chat every 2 seconds, 25%
/// jitter, no typing, 10,000 messages queued (callers wait for room beyond), 8 retries.
#[derive(Debug, Clone)]
pub struct Pacing {
    pub(super) rate: f64,
    pub(super) burst: u32,
    pub(super) per_chat: Duration,
    pub(super) jitter: f64,
    pub(super) typing: Option<Typing>,
    pub(super) capacity: usize,
    pub(super) when_full: WhenFull,
    pub(super) retries: u32,
    pub(super) backoff: Duration,
    pub(super) max_pause: Duration,
    pub(super) daily_cap: Option<u32>,
}

impl Default for Pacing {
    fn default() -> Self {
        Pacing {
            rate: 1.0,
            burst: 1,
            per_chat: Duration::from_secs(2),
            jitter: 0.25,
            typing: None,
            capacity: 10_000,
            when_full: WhenFull::Wait,
            retries: 8,
            backoff: Duration::from_secs(2),
            max_pause: Duration::from_secs(600),
            daily_cap: None,
        }
    }
}

/// What [`Outbox::post`](super::Outbox::post) does when the outbox holds [`Pacing::capacity`] messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WhenFull {
    /// The caller waits until there is room (back-pressure).
    #[default]
    Wait,
    /// The caller gets [`OutboxError::Full`](super::OutboxError::Full) at once, and nothing is queued.
    Fail,
}

/// "Typing…" shown before a message, for a time that grows with its length: `per_char` per
/// character, at least `min` and at most `max` (by default 30 ms, 0.5 s and 5 s). The server
/// plays it (its `options.delay`), so the send takes that much longer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Typing {
    /// Time per character of the text.
    pub per_char: Duration,
    /// The shortest typing.
    pub min: Duration,
    /// The longest typing.
    pub max: Duration,
}

impl Default for Typing {
    fn default() -> Self {
        Typing {
            per_char: Duration::from_millis(30),
            min: Duration::from_millis(500),
            max: Duration::from_secs(5),
        }
    }
}

impl Typing {
    /// How long to type `text`.
    pub fn for_text(&self, text: &str) -> Duration {
        let chars = u32::try_from(text.chars().count()).unwrap_or(u32::MAX);
        self.per_char
            .saturating_mul(chars)
            .clamp(self.min, self.max.max(self.min))
    }
}

impl Pacing {
    /// Messages per second over all chats, from one a day to 1,000 (a rate that is not a
    /// positive number is taken as 1).
    pub fn rate(mut self, per_second: f64) -> Self {
        self.rate = if per_second.is_finite() && per_second > 0.0 {
            per_second.clamp(1.0 / DAY.as_secs_f64(), 1000.0)
        } else {
            1.0
        };
        self
    }

    /// How many messages may go back to back before the rate applies (1: none).
    pub fn burst(mut self, messages: u32) -> Self {
        self.burst = messages.max(1);
        self
    }

    /// The shortest time between the answer to one message of a chat and the next message to
    /// that chat (at most a day).
    pub fn per_chat(mut self, interval: Duration) -> Self {
        self.per_chat = interval.min(DAY);
        self
    }

    /// The largest random share (0 to 1) added to each interval (0.25).
    pub fn jitter(mut self, share: f64) -> Self {
        self.jitter = if share.is_finite() {
            share.clamp(0.0, 1.0)
        } else {
            0.0
        };
        self
    }

    /// Shows "typing…" before each message (none by default).
    pub fn typing(mut self, typing: Option<Typing>) -> Self {
        self.typing = typing;
        self
    }

    /// How many messages may wait, in flight included (10,000; at least 1).
    pub fn capacity(mut self, messages: usize) -> Self {
        self.capacity = messages.clamp(1, tokio::sync::Semaphore::MAX_PERMITS);
        self
    }

    /// What a caller meets when the outbox is full.
    pub fn when_full(mut self, policy: WhenFull) -> Self {
        self.when_full = policy;
        self
    }

    /// How many times a message is tried again (resent or looked up) before it fails (8).
    pub fn retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    /// The first wait after a failed attempt (2 s), doubled after each further failure, up to a
    /// minute (at most a day). Also the wait before looking up a message whose answer was lost;
    /// after a timeout, that wait is at least the REST client's timeout, so that a send the
    /// server is still working on has time to finish.
    pub fn backoff(mut self, first: Duration) -> Self {
        self.backoff = first.min(DAY);
        self
    }

    /// The longest pause a server's `Retry-After` may impose (10 minutes; at most a day).
    pub fn max_pause(mut self, pause: Duration) -> Self {
        self.max_pause = pause.min(DAY);
        self
    }

    /// At most `messages` sends in any 24 hours, for a new number warming up; later messages
    /// stay queued until the window moves on.
    pub fn daily_cap(mut self, messages: Option<u32>) -> Self {
        self.daily_cap = messages.map(|m| m.max(1));
        self
    }

    /// The messages per second over all chats.
    pub fn rate_per_second(&self) -> f64 {
        self.rate
    }

    /// The interval between two messages to one chat.
    pub fn per_chat_interval(&self) -> Duration {
        self.per_chat
    }

    pub(super) fn interval(&self) -> Duration {
        Duration::from_secs_f64(1.0 / self.rate)
    }

    pub(super) fn jittered(&self, base: Duration) -> Duration {
        base.mul_f64(1.0 + self.jitter * fastrand::f64())
    }

    pub(super) fn backoff_after(&self, failures: u32) -> Duration {
        eventsock_core::Backoff::exponential(self.backoff, Duration::from_secs(60))
            .jitter(0.0)
            .delay(failures.max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typing_grows_with_the_text_within_bounds() {
        let t = Typing::default();
        assert_eq!(t.for_text(""), Duration::from_millis(500));
        assert_eq!(t.for_text(&"a".repeat(100)), Duration::from_secs(3));
        assert_eq!(t.for_text(&"a".repeat(10_000)), Duration::from_secs(5));
    }

    #[test]
    fn backoff_doubles_up_to_a_minute() {
        let p = Pacing::default().backoff(Duration::from_secs(1));
        assert_eq!(p.backoff_after(1), Duration::from_secs(1));
        assert_eq!(p.backoff_after(3), Duration::from_secs(4));
        assert_eq!(p.backoff_after(30), Duration::from_secs(60));
    }

    #[test]
    fn bad_settings_are_made_safe() {
        let p = Pacing::default()
            .rate(f64::NAN)
            .jitter(7.0)
            .burst(0)
            .capacity(0);
        assert_eq!(p.rate, 1.0);
        assert_eq!(p.jitter, 1.0);
        assert_eq!(p.burst, 1);
        assert_eq!(p.capacity, 1);
        assert_eq!(Pacing::default().rate(1e9).rate, 1000.0);
    }
}
