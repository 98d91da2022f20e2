//! What bots do with messages: route by command, chat or type; drop duplicates.

use crate::Pipeline;
use crate::Received;
use eventsock_core::{MessageLike, Payload, Recent};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

impl<In: 'static, T: Payload + MessageLike> Pipeline<In, Received<T>> {
    /// Keeps messages whose text starts with `prefix` (for example `!ping`), as a whole word:
    /// `!ping` and `!ping now`, not `!pingpong`.
    pub fn command(self, prefix: &'static str) -> Self {
        self.filter(move |e| {
            e.text()
                .and_then(|t| t.trim_start().strip_prefix(prefix))
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(char::is_whitespace))
        })
    }

    /// Keeps messages of one chat.
    pub fn chat(self, jid: impl Into<String>) -> Self {
        let jid = jid.into();
        self.filter(move |e| e.chat() == Some(jid.as_str()))
    }

    /// Keeps messages of one type.
    pub fn message_type(self, kind: &'static str) -> Self {
        self.filter(move |e| e.message_type() == Some(kind))
    }

    /// Keeps messages this instance did not send (a bot must not answer itself).
    pub fn incoming(self) -> Self {
        self.filter(|e| !e.is_from_me())
    }

    /// Drops a message whose id `dedup` has seen within its window.
    pub fn dedup_messages(self, dedup: &Dedup) -> Self {
        self.dedup(dedup, |e| e.message_id().map(str::to_owned))
    }
}

/// Remembers keys for a while, to drop values seen twice. Clones share what they remember.
///
/// The legacy server sends every message sent through its API on both `send.message` and
/// `messages.upsert`; share one `Dedup` between the two pipelines and only one gets through.
#[derive(Clone)]
pub struct Dedup {
    inner: Arc<Mutex<Seen>>,
}

impl std::fmt::Debug for Dedup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let seen = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        f.debug_struct("Dedup")
            .field("window", &seen.window)
            .field("remembered", &seen.keys.len())
            .finish()
    }
}

struct Seen {
    window: Duration,
    /// Each key and when it was first seen.
    keys: Recent<Instant>,
}

impl Dedup {
    /// Remembers each key for `window`, and at most 100,000 keys (the oldest are forgotten
    /// first), so memory stays bounded under any rate.
    pub fn new(window: Duration) -> Dedup {
        Dedup::with_capacity(window, 100_000)
    }

    /// Remembers each key for `window`, and at most `max` keys.
    pub fn with_capacity(window: Duration, max: usize) -> Dedup {
        Dedup {
            inner: Arc::new(Mutex::new(Seen {
                window,
                keys: Recent::new(max),
            })),
        }
    }

    /// True the first time `key` is seen within the window.
    pub fn first_time(&self, key: String) -> bool {
        let now = Instant::now();
        let mut s = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let window = s.window;
        while s
            .keys
            .oldest()
            .is_some_and(|(_, t)| now.duration_since(*t) > window)
        {
            s.keys.forget_oldest();
        }
        // Seen within the window: it keeps the time it was first seen.
        !s.keys.contains(&key) && s.keys.insert(key, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dedup_forgets_after_the_window_and_stays_bounded() {
        let d = Dedup::with_capacity(Duration::from_millis(50), 3);
        assert!(d.first_time("a".into()));
        assert!(!d.first_time("a".into()));
        for k in ["b", "c", "d"] {
            assert!(d.first_time(k.into()));
        }
        // Capacity 3: "a" was forgotten to make room.
        assert!(d.first_time("a".into()));
        assert!(format!("{d:?}").contains("remembered: 3"));
    }
}
