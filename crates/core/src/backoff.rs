//! How long to wait before reconnecting, and when to give up.
//!
//! Pure policy, no timers: the supervisor asks for the next delay and records restarts; these
//! types answer. That keeps the arithmetic testable without a clock.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The delay before each reconnect attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum Backoff {
    /// `min * factor^(attempt-1)`, capped at `max`, then shortened by up to `jitter` (a fraction,
    /// 0 to 1) at random so that many clients do not reconnect in step. Never below `min`.
    Exponential {
        /// First delay.
        min: Duration,
        /// Largest delay.
        max: Duration,
        /// Growth per attempt (2 doubles).
        factor: f64,
        /// Random shortening, as a fraction of the delay.
        jitter: f64,
    },
    /// The same delay every time (the protocol's own sample client waits 5 s).
    Fixed(Duration),
}

impl Default for Backoff {
    /// Exponential from 0.5 s to 30 s, doubling, with 50 % jitter.
    fn default() -> Self {
        Backoff::Exponential {
            min: Duration::from_millis(500),
            max: Duration::from_secs(30),
            factor: 2.0,
            jitter: 0.5,
        }
    }
}

impl Backoff {
    /// Exponential from `min` to `max` with the default factor (2) and jitter (0.5).
    pub fn exponential(min: Duration, max: Duration) -> Backoff {
        Backoff::Exponential {
            min,
            max: max.max(min),
            factor: 2.0,
            jitter: 0.5,
        }
    }

    /// The same policy with `jitter` (a fraction, 0 to 1: 0 waits exactly the doubling delay, 1
    /// anywhere from `min` up to it). A fixed delay has none.
    pub fn jitter(self, jitter: f64) -> Backoff {
        match self {
            Backoff::Exponential {
                min, max, factor, ..
            } => Backoff::Exponential {
                min,
                max,
                factor,
                jitter: jitter.clamp(0.0, 1.0),
            },
            fixed => fixed,
        }
    }

    /// The delay before attempt `attempt` (1 for the first reconnect), with random jitter.
    pub fn delay(&self, attempt: u32) -> Duration {
        self.delay_with(attempt, fastrand::f64())
    }

    /// The delay before attempt `attempt`, with `unit` (0 to 1) standing in for the random draw.
    pub fn delay_with(&self, attempt: u32, unit: f64) -> Duration {
        match *self {
            Backoff::Fixed(d) => d,
            Backoff::Exponential {
                min,
                max,
                factor,
                jitter,
            } => {
                let exp = attempt.saturating_sub(1).min(64) as i32;
                let base = (min.as_secs_f64() * factor.max(1.0).powi(exp)).min(max.as_secs_f64());
                let shortened = base * (1.0 - jitter.clamp(0.0, 1.0) * unit.clamp(0.0, 1.0));
                Duration::from_secs_f64(shortened.max(min.as_secs_f64()).min(max.as_secs_f64()))
            }
        }
    }

    /// The longest delay this policy can give.
    pub fn max_delay(&self) -> Duration {
        match *self {
            Backoff::Fixed(d) => d,
            Backoff::Exponential { max, .. } => max,
        }
    }
}

/// OTP-style restart intensity: more than `max_restarts` within `within` and the child is given up.
///
/// The supervisor counts the restarts of connections that came up and then dropped before they
/// were stable (a link that connects and drops at once, forever). Attempts that never connect (a
/// server that is down, a refused token) are not counted: they are retried at the backoff's pace
/// for as long as it takes, since a service must come back by itself when the server does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Intensity {
    /// Restarts allowed within the window.
    pub max_restarts: u32,
    /// The sliding window.
    pub within: Duration,
}

impl Default for Intensity {
    /// 10 restarts within 5 minutes. With the default [`Backoff`] (0.5 s doubling to 30 s) a
    /// link that connects and drops at once makes its 11th restart after 152 s at the
    /// latest, so this does trigger; a link that drops now and then never comes close.
    fn default() -> Self {
        Intensity {
            max_restarts: 10,
            within: Duration::from_secs(300),
        }
    }
}

/// Restart times within the window of an [`Intensity`].
#[derive(Debug, Clone, Default)]
pub struct RestartLog {
    times: VecDeque<Instant>,
}

impl RestartLog {
    /// Records a restart at `now`; returns `false` when that makes more than the intensity allows.
    pub fn record(&mut self, intensity: Intensity, now: Instant) -> bool {
        while self
            .times
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) > intensity.within)
        {
            self.times.pop_front();
        }
        self.times.push_back(now);
        self.times.len() <= intensity.max_restarts as usize
    }

    /// Restarts within the window as of the last record.
    pub fn len(&self) -> usize {
        self.times.len()
    }

    /// Whether no restart is recorded.
    pub fn is_empty(&self) -> bool {
        self.times.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn exponential_grows_and_caps() {
        let b = Backoff::exponential(MS(500), Duration::from_secs(30));
        let no_jitter: Vec<_> = (1..=9).map(|n| b.delay_with(n, 0.0)).collect();
        assert_eq!(
            no_jitter,
            [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000].map(MS)
        );
        assert_eq!(b.delay_with(u32::MAX, 0.0), Duration::from_secs(30));
    }

    #[test]
    fn jitter_shortens_but_never_below_min() {
        let b = Backoff::exponential(MS(500), Duration::from_secs(30));
        assert_eq!(b.delay_with(4, 1.0), MS(2000));
        assert_eq!(b.delay_with(1, 1.0), MS(500));
        for n in 1..20 {
            let d = b.delay(n);
            assert!(d >= MS(500) && d <= Duration::from_secs(30), "{d:?}");
        }
    }

    /// Without jitter the delay is exactly the doubling one; with full jitter it may fall to
    /// `min` but not below; a fixed delay takes none.
    #[test]
    fn jitter_is_set_and_bounded() {
        let exact = Backoff::exponential(MS(100), MS(1000)).jitter(0.0);
        assert_eq!(exact.delay_with(3, 1.0), MS(400));
        let full = Backoff::exponential(MS(100), MS(1000)).jitter(7.0);
        assert_eq!(full.delay_with(3, 1.0), MS(100));
        assert_eq!(full.delay_with(3, 0.0), MS(400));
        let fixed = Backoff::Fixed(MS(5)).jitter(1.0);
        assert_eq!(fixed, Backoff::Fixed(MS(5)));
    }

    #[test]
    fn fixed_is_fixed() {
        assert_eq!(
            Backoff::Fixed(Duration::from_secs(5)).delay(7),
            Duration::from_secs(5)
        );
    }

    /// When a link that connects and drops at once is given up with the defaults, if ever.
    fn give_up_time(unit: f64) -> Option<Duration> {
        let (backoff, intensity) = (Backoff::default(), Intensity::default());
        let t0 = Instant::now();
        let mut at = Duration::ZERO;
        let mut log = RestartLog::default();
        for attempt in 1..=1000 {
            if !log.record(intensity, t0 + at) {
                return Some(at);
            }
            // The next connection comes up after the backoff and drops 10 ms later.
            at += backoff.delay_with(attempt, unit) + Duration::from_millis(10);
        }
        None
    }

    #[test]
    fn default_intensity_catches_a_connect_drop_loop() {
        // Longest delays (no jitter) and shortest (full jitter): both give up within the window.
        let slowest = give_up_time(0.0).expect("the defaults never give up");
        let fastest = give_up_time(1.0).expect("the defaults never give up");
        // 0.5 + 1 + 2 + 4 + 8 + 16 + 4 × 30 s, plus the 10 ms each link stays up.
        assert_eq!(slowest, Duration::from_millis(151_600));
        assert!(fastest <= slowest, "{fastest:?} vs {slowest:?}");
        assert!(
            fastest >= Duration::from_secs(60),
            "gives up too eagerly: {fastest:?}"
        );
    }

    #[test]
    fn intensity_window_slides() {
        let i = Intensity {
            max_restarts: 3,
            within: Duration::from_secs(10),
        };
        let t0 = Instant::now();
        let mut log = RestartLog::default();
        assert!(log.record(i, t0));
        assert!(log.record(i, t0 + Duration::from_secs(1)));
        assert!(log.record(i, t0 + Duration::from_secs(2)));
        assert!(
            !log.record(i, t0 + Duration::from_secs(3)),
            "fourth within 10 s"
        );
        // Once the early restarts leave the window, restarts are allowed again.
        assert!(log.record(i, t0 + Duration::from_secs(12)));
        assert_eq!(log.len(), 3);
    }
}
