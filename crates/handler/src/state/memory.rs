//! [`MemoryStore`]: states in memory.

use super::{now_ms, ChatKey, StateError, StateStore, Stored};
use eventsock_core::LocalBoxFuture;
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

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
