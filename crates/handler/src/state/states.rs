//! [`States`]: a typed view of a store, per chat.

use super::{now_ms, ChatKey, StateError, StateStore};
use serde::{de::DeserializeOwned, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// A typed view of a [`StateStore`]: read, write, reset and expire the state of a chat.
pub struct States<S> {
    store: Arc<dyn StateStore>,
    idle: Option<Duration>,
    _state: std::marker::PhantomData<fn() -> S>,
}

impl<S> Clone for States<S> {
    fn clone(&self) -> Self {
        States {
            store: self.store.clone(),
            idle: self.idle,
            _state: std::marker::PhantomData,
        }
    }
}

impl<S> std::fmt::Debug for States<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("States").field("idle", &self.idle).finish()
    }
}

/// The state of one chat as loaded: its value and the revision a save must match.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded<S> {
    /// The state (the default when there was none, it expired, or it no longer read).
    pub state: S,
    /// The stored revision (`None`: nothing stored).
    pub revision: Option<u64>,
    /// Whether the stored one was dropped because it no longer deserialises or had expired.
    pub reset: Option<&'static str>,
}

impl<S> States<S>
where
    S: Serialize + DeserializeOwned + Default + Clone + 'static,
{
    /// Typed states in `store`.
    pub fn new(store: Arc<dyn StateStore>) -> States<S> {
        States {
            store,
            idle: None,
            _state: std::marker::PhantomData,
        }
    }

    /// A conversation idle (no change) this long starts again from the default state.
    pub fn idle_timeout(mut self, idle: Duration) -> Self {
        self.idle = Some(idle);
        self
    }

    /// The store the states are kept in.
    pub(crate) fn store(&self) -> &Arc<dyn StateStore> {
        &self.store
    }

    /// The state of `key`. One stored that no longer deserialises (its type changed), or idle
    /// for longer than the idle timeout, reads as the default, and says why in `reset` (it is
    /// overwritten by the next save).
    pub async fn load(&self, key: &ChatKey) -> Result<Loaded<S>, StateError> {
        let Some(stored) = self.store.load(key).await? else {
            return Ok(Loaded {
                state: S::default(),
                revision: None,
                reset: None,
            });
        };
        if stored.bytes.is_empty() {
            // Removed.
            return Ok(Loaded {
                state: S::default(),
                revision: Some(stored.revision),
                reset: None,
            });
        }
        let expired = self.idle.is_some_and(|idle| {
            now_ms().saturating_sub(stored.updated_ms)
                > u64::try_from(idle.as_millis()).unwrap_or(u64::MAX)
        });
        let (state, reset) = if expired {
            (S::default(), Some("idle for longer than the idle timeout"))
        } else {
            match serde_json::from_slice(&stored.bytes) {
                Ok(s) => (s, None),
                Err(e) => {
                    tracing::warn!(
                        instance = %eventsock_core::human::escaped(&key.instance),
                        chat = %eventsock_core::human::escaped(&key.chat),
                        error = %e,
                        "the stored state of this chat no longer reads as its type (did the type change?): starting this chat again from the default state"
                    );
                    (S::default(), Some("it no longer deserialises"))
                }
            }
        };
        Ok(Loaded {
            state,
            revision: Some(stored.revision),
            reset,
        })
    }

    /// Writes `state` for `key` if it is still at `revision` (see [`StateStore::save`]).
    pub async fn save(
        &self,
        key: &ChatKey,
        state: &S,
        revision: Option<u64>,
    ) -> Result<u64, StateError> {
        let bytes = serde_json::to_vec(state)
            .map_err(|e| StateError::Storage(format!("the state does not serialise: {e}")))?;
        self.store.save(key, bytes, revision).await
    }

    /// Sets the state of `key`, whatever it was (loads, then writes; retried on a conflict).
    pub async fn set(&self, key: &ChatKey, state: &S) -> Result<(), StateError> {
        self.update(key, |_| Some(state.clone())).await
    }

    /// Changes the state of `key` with `f` (given the current one; `None` leaves it), trying
    /// again after a conflict (after a short random wait, so that writers racing on one chat
    /// take turns), at most [`ATTEMPTS`] times.
    pub async fn update(
        &self,
        key: &ChatKey,
        mut f: impl FnMut(S) -> Option<S>,
    ) -> Result<(), StateError> {
        for attempt in 0..ATTEMPTS {
            let loaded = self.load(key).await?;
            let Some(next) = f(loaded.state) else {
                return Ok(());
            };
            match self.save(key, &next, loaded.revision).await {
                Err(StateError::Conflict) => turn(attempt).await,
                other => return other.map(|_| ()),
            }
        }
        Err(StateError::Conflict)
    }

    /// Forgets the state of `key` (the next message starts from the default).
    pub async fn reset(&self, key: &ChatKey) -> Result<(), StateError> {
        for attempt in 0..ATTEMPTS {
            let Some(stored) = self.store.load(key).await? else {
                return Ok(());
            };
            if stored.bytes.is_empty() {
                return Ok(());
            }
            match self.store.remove(key, stored.revision).await {
                Err(StateError::Conflict) => turn(attempt).await,
                other => return other,
            }
        }
        Err(StateError::Conflict)
    }
}

/// How many times [`States::update`] and [`States::reset`] try before they give up with
/// [`StateError::Conflict`].
pub const ATTEMPTS: u32 = 64;

/// A random wait of 1 ms up to 2^attempt milliseconds (at most 50), after a conflict, so that
/// two writers of one chat do not collide again in step.
async fn turn(attempt: u32) {
    if attempt + 1 >= ATTEMPTS {
        return;
    }
    let backoff =
        eventsock_core::Backoff::exponential(Duration::from_millis(1), Duration::from_millis(50))
            .jitter(1.0);
    tokio::time::sleep(backoff.delay(attempt + 1)).await;
}
