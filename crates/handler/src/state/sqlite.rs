//! [`SqliteStore`]: states in a SQLite file (feature `sqlite`).

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
