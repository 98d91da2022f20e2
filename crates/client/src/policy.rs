//! The supervisor's reconnect decisions, as pure functions of what happened: whether a
//! connection's end gives the subscription up, how long to wait before the next attempt, and
//! how loudly to say so. The supervisor actor applies them; the tests below pin them down.

use crate::config::ClientConfig;
use crate::connection::{Cause, End};
use eventsock_core::{human, Backoff, RestartLog};
use std::time::{Duration, Instant};

/// A subscription's history of attempts, as the policy reads and updates it.
#[derive(Debug, Default)]
pub(crate) struct Tries {
    /// Failed attempts since the last connection that stayed up.
    pub(crate) attempts: u32,
    /// Connections replaced so far.
    pub(crate) restarts: u64,
    /// When unstable connections dropped, for the restart intensity.
    pub(crate) log: RestartLog,
}

/// Counts a connection's end. `Err` gives the subscription up, with the reason: its dispatcher
/// is gone, or more connections came up and dropped before they were stable than
/// [`ClientConfig::intensity`] allows. Attempts that never connect are retried at the
/// backoff's pace for as long as it takes.
pub(crate) fn count_end(
    config: &ClientConfig,
    tries: &mut Tries,
    end: &End,
    now: Instant,
) -> Result<(), String> {
    if end.cause == Cause::DispatcherGone {
        return Err(end.cause.to_string());
    }
    let was_up = end.up_since.is_some();
    let stable = end
        .up_since
        .is_some_and(|t| now.saturating_duration_since(t) >= config.stable_after);
    if stable {
        tries.attempts = 0;
    }
    tries.attempts = tries.attempts.saturating_add(1);
    tries.restarts += 1;
    if was_up && !stable && !tries.log.record(config.intensity, now) {
        return Err(format!(
            "{} connections dropped within {} of each other (last: {})",
            tries.log.len(),
            human::duration(config.intensity.within),
            end.cause
        ));
    }
    Ok(())
}

/// When to try again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Retry {
    /// How long to wait.
    pub(crate) delay: Duration,
    /// Whether a sibling subscription's successful connection to the same server may bring the
    /// attempt forward (only a failure of the link itself is over once the link is back).
    pub(crate) wakeable: bool,
}

/// The wait before attempt `attempts + 1` after `end`.
pub(crate) fn retry(backoff: &Backoff, attempts: u32, end: &End) -> Retry {
    let max = backoff.max_delay();
    let paced = backoff.delay(attempts);
    if let Some(after) = end.retry_after {
        // The server said when: no sooner (and no later than the longest backoff).
        return Retry {
            delay: after.min(max).max(paced),
            wakeable: false,
        };
    }
    if end.cause.is_auth() && !end.renewed {
        // Never a tight loop on a refusal that will not change by itself.
        return Retry {
            delay: max,
            wakeable: false,
        };
    }
    // A refusal (404, 429, 5xx) or a close is the server's answer, and keeps its pace.
    let link_failed = matches!(
        end.cause,
        Cause::ConnectFailed(_)
            | Cause::ConnectTimeout
            | Cause::Eof
            | Cause::Dead(_)
            | Cause::Silent(_)
            | Cause::Stalled(_)
    );
    Retry {
        delay: paced,
        wakeable: link_failed,
    }
}

/// How loudly a retry is logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Loudness {
    /// A refusal the operator must act on, said once per run of refusals.
    Error,
    /// A connection that was up dropped, or the first attempt failed.
    Warn,
    /// The rest: repeats.
    Debug,
}

/// How loudly to report a retry after `end`; `reported`: whether this run of refusals was
/// already reported at error level (set here when it is).
pub(crate) fn loudness(end: &End, attempts: u32, reported: &mut bool) -> Loudness {
    if end.cause.is_auth() || end.retry_after.is_some() {
        if *reported {
            return Loudness::Debug;
        }
        *reported = true;
        return Loudness::Error;
    }
    if end.up_since.is_some() || attempts == 1 {
        Loudness::Warn
    } else {
        Loudness::Debug
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eventsock_core::Intensity;

    fn end(cause: Cause) -> End {
        End {
            cause,
            up_since: None,
            last_heard: None,
            renewed: false,
            retry_after: None,
            refused_token: None,
        }
    }

    fn backoff() -> Backoff {
        Backoff::Exponential {
            min: Duration::from_millis(100),
            max: Duration::from_secs(30),
            factor: 2.0,
            jitter: 0.0,
        }
    }

    #[test]
    fn a_refused_token_waits_the_longest_backoff_unless_renewed() {
        let refused = end(Cause::Refused(401));
        let r = retry(&backoff(), 1, &refused);
        assert_eq!(
            r,
            Retry {
                delay: Duration::from_secs(30),
                wakeable: false
            }
        );
        let renewed = End {
            renewed: true,
            ..end(Cause::Refused(401))
        };
        assert_eq!(retry(&backoff(), 1, &renewed).delay, backoff().delay(1));
        let revoked = end(Cause::Closed {
            code: Some(4003),
            reason: String::new(),
        });
        assert_eq!(
            retry(&backoff(), 1, &revoked).delay,
            Duration::from_secs(30)
        );
    }

    #[test]
    fn retry_after_is_obeyed_within_the_backoff_bounds() {
        let after = |s| End {
            retry_after: Some(Duration::from_secs(s)),
            ..end(Cause::Refused(429))
        };
        assert_eq!(
            retry(&backoff(), 1, &after(3)).delay,
            Duration::from_secs(3)
        );
        assert_eq!(
            retry(&backoff(), 1, &after(3600)).delay,
            Duration::from_secs(30)
        );
        assert!(!retry(&backoff(), 1, &after(3)).wakeable);
    }

    #[test]
    fn only_link_failures_are_woken_by_a_sibling() {
        for cause in [
            Cause::Eof,
            Cause::ConnectTimeout,
            Cause::Dead(Duration::from_secs(1)),
        ] {
            let r = retry(&backoff(), 3, &end(cause));
            assert_eq!(
                r,
                Retry {
                    delay: backoff().delay(3),
                    wakeable: true
                }
            );
        }
        for cause in [
            Cause::Refused(404),
            Cause::Closed {
                code: Some(1011),
                reason: String::new(),
            },
        ] {
            assert!(!retry(&backoff(), 3, &end(cause)).wakeable);
        }
    }

    #[test]
    fn unstable_connections_give_up_by_the_intensity_and_failed_attempts_never_do() {
        let config = ClientConfig {
            intensity: Intensity {
                max_restarts: 2,
                within: Duration::from_secs(60),
            },
            stable_after: Duration::from_secs(10),
            ..ClientConfig::default()
        };
        let now = Instant::now();
        let mut tries = Tries::default();
        for _ in 0..100 {
            assert_eq!(
                count_end(&config, &mut tries, &end(Cause::Eof), now),
                Ok(())
            );
        }
        assert_eq!(tries.attempts, 100);
        let dropped = || End {
            up_since: Some(now),
            ..end(Cause::Eof)
        };
        assert_eq!(count_end(&config, &mut tries, &dropped(), now), Ok(()));
        assert_eq!(count_end(&config, &mut tries, &dropped(), now), Ok(()));
        let gave_up = count_end(&config, &mut tries, &dropped(), now).unwrap_err();
        assert_eq!(gave_up, "3 connections dropped within 1m of each other (last: the connection ended without a close frame)");
    }

    #[test]
    fn a_stable_connection_starts_the_attempts_over() {
        let config = ClientConfig::default();
        let mut tries = Tries {
            attempts: 7,
            ..Tries::default()
        };
        let up = Instant::now();
        let later = up + config.stable_after;
        let stable = End {
            up_since: Some(up),
            ..end(Cause::Eof)
        };
        assert_eq!(count_end(&config, &mut tries, &stable, later), Ok(()));
        assert_eq!((tries.attempts, tries.restarts), (1, 1));
        assert!(count_end(&config, &mut tries, &end(Cause::DispatcherGone), later).is_err());
    }

    #[test]
    fn refusals_are_loud_once_per_run() {
        let mut reported = false;
        let refused = end(Cause::Refused(401));
        assert_eq!(loudness(&refused, 1, &mut reported), Loudness::Error);
        assert_eq!(loudness(&refused, 2, &mut reported), Loudness::Debug);
        let mut quiet = false;
        assert_eq!(loudness(&end(Cause::Eof), 1, &mut quiet), Loudness::Warn);
        assert_eq!(loudness(&end(Cause::Eof), 2, &mut quiet), Loudness::Debug);
        let dropped = End {
            up_since: Some(Instant::now()),
            ..end(Cause::Eof)
        };
        assert_eq!(loudness(&dropped, 5, &mut quiet), Loudness::Warn);
    }
}
