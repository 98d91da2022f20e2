//! The time now, on tokio's clock.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The system's time, moved by as much as a paused tokio clock (`tokio::time::pause`, the test
/// kit's virtual clock) has been advanced: without a paused clock, the system's time. What
/// eventsock stamps and compares (a conversation's idle time, the simulator's timestamps) is
/// read here, so that a test that advances the clock sees time pass.
pub fn now() -> SystemTime {
    let (virtual_now, real_now) = (
        tokio::time::Instant::now().into_std(),
        std::time::Instant::now(),
    );
    // Without a paused clock the two are one instant, give or take the time between them.
    match virtual_now.checked_duration_since(real_now) {
        Some(ahead) => SystemTime::now() + ahead,
        None => SystemTime::now() - real_now.duration_since(virtual_now),
    }
}

/// [`now`] in milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    since_epoch(now())
        .as_millis()
        .try_into()
        .unwrap_or(u64::MAX)
}

/// [`now`] in seconds since the Unix epoch.
pub fn now_secs() -> u64 {
    since_epoch(now()).as_secs()
}

fn since_epoch(t: SystemTime) -> Duration {
    t.duration_since(UNIX_EPOCH).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_paused_clock_it_is_the_system_time() {
        let before = SystemTime::now();
        let now = now();
        let after = SystemTime::now();
        // Within a millisecond of the system's time read around it.
        assert!(
            now + Duration::from_millis(1) >= before && now <= after + Duration::from_millis(1)
        );
    }

    #[test]
    fn a_paused_clock_moves_it_by_what_was_advanced() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("a runtime");
        rt.block_on(async {
            let start = now_ms();
            tokio::time::advance(Duration::from_secs(3600)).await;
            let moved = now_ms() - start;
            // An hour, plus the little real time the test took.
            assert!((3_600_000..3_601_000).contains(&moved), "{moved} ms");
        });
    }
}
