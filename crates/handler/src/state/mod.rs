//! Conversations that survive restarts: a typed state per (instance, chat), loaded before a
//! handler runs and saved after it succeeds, in a [`StateStore`] (in memory, SQLite with the
//! `sqlite` feature, or NATS JetStream KV for several workers).
//!
//! A [`Dialogue`] routes each message by the current state of its chat to the handler of that
//! state, which returns the state after the message:
//!
//! ```
//! use eventsock_core::legacy;
//! use eventsock_handler::{Dialogue, MemoryStore, Received, Router};
//! use std::sync::Arc;
//!
//! #[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
//! enum Order {
//!     #[default]
//!     Start,
//!     Size,
//! }
//!
//! type Msg = Received<legacy::MessagesUpsert>;
//!
//! let dialogue = Dialogue::<Order>::new(Arc::new(MemoryStore::default()))
//!     .when(|s| *s == Order::Start, |msg: Msg, _| async move {
//!         msg.cx.reply("What size?").await?;
//!         Ok(Order::Size)
//!     })
//!     .when(|s| *s == Order::Size, |msg: Msg, _| async move {
//!         msg.cx.reply(&format!("{} it is.", msg.text().unwrap_or_default())).await?;
//!         Ok(Order::Start)
//!     });
//! let router = Router::builder().dialogue(dialogue).build();
//! # let _ = router;
//! ```
//!
//! Guarantees: the state is saved only when the handler succeeds; a save checks the revision
//! the state was loaded at, so two workers handling the same chat at once never lose an update
//! silently (the second fails with [`StateError::Conflict`], and its event is retried or
//! dead-lettered like any failed event); a stored state that no longer deserialises (the type
//! changed) is reported and reset for that chat only; a storage error fails the handler.

mod dialogue;
mod memory;
#[cfg(feature = "sqlite")]
mod sqlite;
mod states;

pub use dialogue::Dialogue;
pub use memory::MemoryStore;
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteStore;
pub use states::{Loaded, States, ATTEMPTS};

use eventsock_core::LocalBoxFuture;

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

pub use eventsock_core::clock::now_ms;
