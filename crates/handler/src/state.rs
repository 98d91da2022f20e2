//! Conversations that survive restarts: a typed state per (instance, chat), loaded before a
//! handler runs and saved after it succeeds, in a [`StateStore`] (in memory, SQLite with the
//! `sqlite` feature, or NATS JetStream KV for several workers).
//!
//! A [`Dialogue`] routes each message by the current state of its chat to the handler of that
//! state, which returns the state after the message:
//!
//! ```
//! use eventsock_core::{legacy, Event};
//! use eventsock_handler::{Ctx, Dialogue, MemoryStore, Router};
//! use std::sync::Arc;
//!
//! #[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
//! enum Order {
//!     #[default]
//!     Start,
//!     Size,
//! }
//!
//! type Message = Event<legacy::MessagesUpsert>;
//!
//! let dialogue = Dialogue::<Order>::new(Arc::new(MemoryStore::default()))
//!     .when(|s| *s == Order::Start, |_: Message, cx: Ctx, _| async move {
//!         cx.reply("What size?").await?;
//!         Ok(Order::Size)
//!     })
//!     .when(|s| *s == Order::Size, |msg: Message, cx: Ctx, _| async move {
//!         cx.reply(&format!("{} it is.", msg.text().unwrap_or_default())).await?;
//!         Ok(Order::Start)
//!     });
//! let router = Router::new().dialogue(dialogue);
//! # let _ = router;
//! ```
//!
//! Guarantees: the state is saved only when the handler succeeds; a save checks the revision
//! the state was loaded at, so two workers handling the same chat at once never lose an update
//! silently (the second fails with [`StateError::Conflict`], and its event is retried or
//! dead-lettered like any failed event); a stored state that no longer deserialises (the type
//! changed) is reported and reset for that chat only; a storage error fails the handler.

use crate::{BoxError, Ctx, Router};
use eventsock_core::{Event, LocalBoxFuture, Payload};
use serde::{de::DeserializeOwned, Serialize};
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Whose state: an instance and a chat.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChatKey {
    /// The instance.
    pub instance: String,
    /// The chat (a JID).
    pub chat: String,
}

impl ChatKey {
    /// The key of `chat` on `instance`.
    pub fn new(instance: impl Into<String>, chat: impl Into<String>) -> ChatKey {
        ChatKey {
            instance: instance.into(),
            chat: chat.into(),
        }
    }
}

/// A stored state: its bytes (JSON), its revision and when it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// The state, as JSON.
    pub bytes: Vec<u8>,
    /// Changes with every write; what a conditional write compares.
    pub revision: u64,
    /// When it was written, in milliseconds since the Unix epoch.
    pub updated_ms: u64,
}

/// A failed state operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// The state changed since it was loaded (another worker handled the same chat): nothing
    /// was written. The event is failed, so that it is handled again on the new state.
    #[error("the state of this chat changed since it was loaded (another worker handled it): nothing was written; the event will be handled again")]
    Conflict,
    /// The storage failed.
    #[error("state storage: {0}")]
    Storage(String),
}

/// Where states are kept: one entry per chat, written only at the revision it was read at.
/// One shared test suite (`tests/state.rs`) runs against every store.
pub trait StateStore: Send + Sync + 'static {
    /// The state of `key`, if there is one. A store that keeps removals as entries (a NATS
    /// bucket) gives a removed state as empty `bytes`, with the revision a save must match.
    fn load<'a>(
        &'a self,
        key: &'a ChatKey,
    ) -> LocalBoxFuture<'a, Result<Option<Stored>, StateError>>;

    /// Writes `bytes` for `key` if its revision is still `expected` (`None`: if it has none;
    /// a removed state that the store keeps as an empty entry has one, given by `load`);
    /// otherwise [`StateError::Conflict`]. Returns the new revision. Revisions of a key never
    /// repeat, also across a removal, so that a writer that read before it still conflicts.
    fn save<'a>(
        &'a self,
        key: &'a ChatKey,
        bytes: Vec<u8>,
        expected: Option<u64>,
    ) -> LocalBoxFuture<'a, Result<u64, StateError>>;

    /// Removes the state of `key` if its revision is still `expected` (a store may keep it as
    /// an empty entry with a new revision).
    fn remove<'a>(
        &'a self,
        key: &'a ChatKey,
        expected: u64,
    ) -> LocalBoxFuture<'a, Result<(), StateError>>;
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// States in memory: for tests and single-process bots that may forget on restart.
#[derive(Debug, Default)]
pub struct MemoryStore {
    states: Mutex<HashMap<ChatKey, Stored>>,
    revision: std::sync::atomic::AtomicU64,
}

impl StateStore for MemoryStore {
    fn load<'a>(
        &'a self,
        key: &'a ChatKey,
    ) -> LocalBoxFuture<'a, Result<Option<Stored>, StateError>> {
        let found = self
            .states
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .cloned();
        Box::pin(std::future::ready(Ok(found)))
    }

    fn save<'a>(
        &'a self,
        key: &'a ChatKey,
        bytes: Vec<u8>,
        expected: Option<u64>,
    ) -> LocalBoxFuture<'a, Result<u64, StateError>> {
        let mut states = self.states.lock().unwrap_or_else(PoisonError::into_inner);
        let result = if states.get(key).map(|s| s.revision) == expected {
            let revision = self
                .revision
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                + 1;
            states.insert(
                key.clone(),
                Stored {
                    bytes,
                    revision,
                    updated_ms: now_ms(),
                },
            );
            Ok(revision)
        } else {
            Err(StateError::Conflict)
        };
        Box::pin(std::future::ready(result))
    }

    fn remove<'a>(
        &'a self,
        key: &'a ChatKey,
        expected: u64,
    ) -> LocalBoxFuture<'a, Result<(), StateError>> {
        let mut states = self.states.lock().unwrap_or_else(PoisonError::into_inner);
        let result = match states.get(key) {
            Some(s) if s.revision == expected => {
                states.remove(key);
                Ok(())
            }
            None => Ok(()),
            Some(_) => Err(StateError::Conflict),
        };
        Box::pin(std::future::ready(result))
    }
}

#[cfg(feature = "sqlite")]
pub use sqlite::SqliteStore;

#[cfg(feature = "sqlite")]
mod sqlite {
    use super::{now_ms, ChatKey, StateError, StateStore, Stored};
    use eventsock_core::LocalBoxFuture;
    use std::path::Path;
    use std::sync::{Arc, Mutex, PoisonError};

    /// States in a SQLite file (WAL mode; SQLite is built in, nothing to install): the
    /// embedded default for a bot on one machine. Calls run on tokio's blocking threads.
    #[derive(Clone)]
    pub struct SqliteStore {
        db: Arc<Mutex<rusqlite::Connection>>,
        path: Arc<Path>,
    }

    impl std::fmt::Debug for SqliteStore {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("SqliteStore")
                .field("path", &self.path)
                .finish()
        }
    }

    fn storage(e: impl std::fmt::Display) -> StateError {
        StateError::Storage(e.to_string())
    }

    impl SqliteStore {
        /// Opens (or creates) the database at `path`, in WAL mode, with its table.
        pub fn open(path: impl AsRef<Path>) -> Result<SqliteStore, StateError> {
            let path = path.as_ref();
            let db = rusqlite::Connection::open(path)
                .map_err(|e| StateError::Storage(format!("cannot open {}: {e}", path.display())))?;
            db.pragma_update(None, "journal_mode", "WAL")
                .map_err(storage)?;
            db.pragma_update(None, "synchronous", "NORMAL")
                .map_err(storage)?;
            db.busy_timeout(std::time::Duration::from_secs(5))
                .map_err(storage)?;
            db.execute_batch(
                "CREATE TABLE IF NOT EXISTS eventsock_state (
                    instance TEXT NOT NULL,
                    chat TEXT NOT NULL,
                    state BLOB NOT NULL,
                    revision INTEGER NOT NULL,
                    updated_ms INTEGER NOT NULL,
                    PRIMARY KEY (instance, chat)
                )",
            )
            .map_err(storage)?;
            Ok(SqliteStore {
                db: Arc::new(Mutex::new(db)),
                path: path.into(),
            })
        }

        async fn with<R: Send + 'static>(
            &self,
            f: impl FnOnce(&rusqlite::Connection) -> Result<R, StateError> + Send + 'static,
        ) -> Result<R, StateError> {
            let db = self.db.clone();
            tokio::task::spawn_blocking(move || {
                let db = db.lock().unwrap_or_else(PoisonError::into_inner);
                f(&db)
            })
            .await
            .map_err(|e| StateError::Storage(format!("the storage thread failed: {e}")))?
        }
    }

    impl StateStore for SqliteStore {
        fn load<'a>(
            &'a self,
            key: &'a ChatKey,
        ) -> LocalBoxFuture<'a, Result<Option<Stored>, StateError>> {
            let key = key.clone();
            Box::pin(self.with(move |db| {
                let mut q = db
                    .prepare_cached(
                        "SELECT state, revision, updated_ms FROM eventsock_state WHERE instance = ?1 AND chat = ?2",
                    )
                    .map_err(storage)?;
                let mut rows = q.query((&key.instance, &key.chat)).map_err(storage)?;
                match rows.next().map_err(storage)? {
                    None => Ok(None),
                    Some(row) => Ok(Some(Stored {
                        // Whatever was stored there (by hand, say), as bytes: what does not
                        // read as the state type is reset like any stale state.
                        bytes: match row.get_ref(0).map_err(storage)? {
                            rusqlite::types::ValueRef::Blob(b) | rusqlite::types::ValueRef::Text(b) => b.to_vec(),
                            rusqlite::types::ValueRef::Null => Vec::new(),
                            other => format!("{other:?}").into_bytes(),
                        },
                        revision: row.get::<_, i64>(1).map_err(storage)? as u64,
                        updated_ms: row.get::<_, i64>(2).map_err(storage)? as u64,
                    })),
                }
            }))
        }

        fn save<'a>(
            &'a self,
            key: &'a ChatKey,
            bytes: Vec<u8>,
            expected: Option<u64>,
        ) -> LocalBoxFuture<'a, Result<u64, StateError>> {
            let key = key.clone();
            Box::pin(self.with(move |db| {
                let now = now_ms() as i64;
                let changed = match expected {
                    None => db
                        .prepare_cached(
                            "INSERT INTO eventsock_state (instance, chat, state, revision, updated_ms)
                             VALUES (?1, ?2, ?3, 1, ?4) ON CONFLICT DO NOTHING",
                        )
                        .and_then(|mut q| q.execute((&key.instance, &key.chat, &bytes, now))),
                    Some(rev) => db
                        .prepare_cached(
                            "UPDATE eventsock_state SET state = ?3, revision = revision + 1, updated_ms = ?4
                             WHERE instance = ?1 AND chat = ?2 AND revision = ?5",
                        )
                        .and_then(|mut q| {
                            q.execute((&key.instance, &key.chat, &bytes, now, rev as i64))
                        }),
                }
                .map_err(storage)?;
                if changed == 0 {
                    return Err(StateError::Conflict);
                }
                Ok(expected.map_or(1, |r| r + 1))
            }))
        }

        fn remove<'a>(
            &'a self,
            key: &'a ChatKey,
            expected: u64,
        ) -> LocalBoxFuture<'a, Result<(), StateError>> {
            let key = key.clone();
            Box::pin(self.with(move |db| {
                // Kept as an empty state, so that revisions never start again (a writer that
                // read the state before it was removed must still conflict).
                let changed = db
                    .prepare_cached(
                        "UPDATE eventsock_state SET state = x'', revision = revision + 1, updated_ms = ?4
                         WHERE instance = ?1 AND chat = ?2 AND revision = ?3",
                    )
                    .and_then(|mut q| {
                        q.execute((&key.instance, &key.chat, expected as i64, now_ms() as i64))
                    })
                    .map_err(storage)?;
                if changed == 0 {
                    let exists = db
                        .prepare_cached(
                            "SELECT 1 FROM eventsock_state WHERE instance = ?1 AND chat = ?2",
                        )
                        .and_then(|mut q| q.exists((&key.instance, &key.chat)))
                        .map_err(storage)?;
                    if exists {
                        return Err(StateError::Conflict);
                    }
                }
                Ok(())
            }))
        }
    }
}

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

type Guard<S> = Arc<dyn Fn(&S) -> bool + Send + Sync>;
type StateFn<T, S> =
    Arc<dyn Fn(Event<T>, Ctx, S) -> LocalBoxFuture<'static, Result<S, BoxError>> + Send + Sync>;

/// Handlers as a state machine: each message of a chat goes to the first handler whose guard
/// holds for the chat's state, which returns the state after it. Register with
/// [`Router::dialogue`]; events that are not messages with a chat, and the bot's own messages,
/// are not its business. Per-chat order is the subscription's: one event at a time.
pub struct Dialogue<S, T: Payload = eventsock_core::legacy::MessagesUpsert> {
    states: States<S>,
    branches: Vec<(Guard<S>, StateFn<T, S>)>,
}

impl<S, T: Payload> std::fmt::Debug for Dialogue<S, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dialogue")
            .field("branches", &self.branches.len())
            .finish()
    }
}

impl<S, T> Dialogue<S, T>
where
    S: Serialize + DeserializeOwned + Default + Clone + Send + 'static,
    T: Payload,
{
    /// A dialogue whose states are kept in `store`.
    pub fn new(store: Arc<dyn StateStore>) -> Dialogue<S, T> {
        Dialogue {
            states: States::new(store),
            branches: Vec::new(),
        }
    }

    /// A conversation idle (no message) this long starts again from the default state.
    pub fn idle_timeout(mut self, idle: Duration) -> Self {
        self.states = self.states.idle_timeout(idle);
        self
    }

    /// The states, to read or change them outside a handler.
    pub fn states(&self) -> States<S> {
        self.states.clone()
    }

    /// Handles the messages of chats whose state satisfies `guard` with `f`, which returns the
    /// state after the message (the same one to stay, `S::default()` to start over).
    pub fn when<F, Fut>(mut self, guard: impl Fn(&S) -> bool + Send + Sync + 'static, f: F) -> Self
    where
        F: Fn(Event<T>, Ctx, S) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<S, BoxError>> + 'static,
    {
        self.branches.push((
            Arc::new(guard),
            Arc::new(move |e, cx, s| Box::pin(f(e, cx, s))),
        ));
        self
    }

    /// Handles one event: load, route, save on success.
    async fn handle(self: Arc<Self>, event: Event<T>, cx: Ctx) -> Result<(), BoxError> {
        let (Some(instance), Some(chat)) = (cx.instance(), cx.chat()) else {
            return Ok(());
        };
        // The bot's own messages (its replies come back as messages) move no conversation.
        if event.payload.as_message().is_some_and(|m| m.is_from_me()) {
            return Ok(());
        }
        let key = ChatKey::new(instance, chat);
        let loaded = self.states.load(&key).await?;
        let Some((_, f)) = self.branches.iter().find(|(guard, _)| guard(&loaded.state)) else {
            return Ok(());
        };
        // Run again on the same state (a redelivery), the handler's messages get the same ids
        // and are not sent twice; on a changed state (after a conflict), new ones.
        let cx = cx.salted(&loaded.revision.unwrap_or(0).to_string());
        let next = f(event, cx, loaded.state).await?;
        // Saved after every message handled, changed or not: the write checks the revision the
        // state was read at, so a handler that acted on a state another worker had changed
        // meanwhile fails (and its event is handled again), and the idle timeout counts from
        // the last message.
        self.states.save(&key, &next, loaded.revision).await?;
        Ok(())
    }
}

impl Router {
    /// Runs `dialogue`: every `T` message of a chat goes, with the chat's state, to the
    /// handler of that state, and the state it returns is saved (see [`Dialogue`]).
    pub fn dialogue<S, T>(self, dialogue: Dialogue<S, T>) -> Self
    where
        S: Serialize + DeserializeOwned + Default + Clone + Send + 'static,
        T: Payload,
    {
        let dialogue = Arc::new(dialogue);
        self.on(move |event: Event<T>, cx: Ctx| dialogue.clone().handle(event, cx))
    }
}
