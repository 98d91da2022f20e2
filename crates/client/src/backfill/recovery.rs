//! The shared state of recovery: the checkpoint (the last message delivered per instance, the
//! open gaps, the window of delivered ids), kept in a file or a store, and the router's gate.

use super::*;

/// The last message delivered for an instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Mark {
    /// Its `messageTimestamp`, in seconds.
    pub(super) timestamp: i64,
    /// Its `keyId`.
    pub(super) id: String,
}

/// The checkpoint file.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct Checkpoint {
    /// The last delivered message of each instance.
    pub(super) instances: HashMap<String, Mark>,
    /// The ids delivered most recently, oldest first, as (instance, id).
    pub(super) recent: Vec<(String, String)>,
    /// Gaps not recovered yet (a recovery failed or was cut short): their start per instance.
    #[serde(default)]
    pub(super) open: HashMap<String, i64>,
}

#[derive(Debug, Default)]
pub(super) struct State {
    pub(super) marks: HashMap<String, Mark>,
    /// The ids of each instance's messages delivered most recently.
    pub(super) windows: HashMap<String, Recent>,
    /// Gaps not recovered yet, by the start of the earliest.
    pub(super) open: HashMap<String, i64>,
    /// Instances already told that recovery is unavailable.
    pub(super) unavailable: HashSet<String>,
    /// Instances with a recovery under way, and the earliest start asked for meanwhile.
    pub(super) running: HashMap<String, Option<i64>>,
}

/// The shared state of recovery: the gate of the router, and the checkpoint.
#[derive(Debug)]
pub(crate) struct Recovery {
    pub(crate) settings: Backfill,
    pub(super) state: Mutex<State>,
    pub(super) dirty: AtomicBool,
}

impl Recovery {
    /// Recovery with `settings`, from the checkpoint file if there is one. A file that cannot
    /// be read is reported and recovery starts afresh.
    pub(crate) fn load(settings: Backfill) -> Recovery {
        let mut state = State::default();
        if let Some(store) = &settings.store {
            match store.load() {
                Ok(Some(bytes)) => match serde_json::from_slice::<Checkpoint>(&bytes) {
                    Ok(c) => {
                        state.marks = c.instances;
                        state.open = c.open;
                        for (instance, id) in c.recent {
                            let limit = settings.remembered();
                            let w = state.windows.entry(instance);
                            w.or_insert_with(|| Recent::new(limit)).insert(id, ());
                        }
                    }
                    Err(e) => tracing::warn!(
                        ?store,
                        "the checkpoint is not one eventsock wrote ({e}); starting without it"
                    ),
                },
                Ok(None) => {}
                Err(e) => tracing::warn!(
                    ?store,
                    "cannot read the checkpoint ({e}); starting without it"
                ),
            }
        }
        Recovery {
            settings,
            state: Mutex::new(state),
            dirty: AtomicBool::new(false),
        }
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Where a recovery of `instance` at start-up begins: the start of a gap not recovered yet,
    /// else the last message delivered (less `margin`), from the checkpoint.
    pub(crate) fn start_up(&self, instance: &str, margin: i64) -> Option<i64> {
        let state = self.lock();
        let last = state
            .marks
            .get(instance)
            .map(|m| m.timestamp.saturating_sub(margin));
        match (state.open.get(instance).copied(), last) {
            (Some(open), Some(last)) => Some(open.min(last)),
            (open, last) => open.or(last),
        }
    }

    /// How many ids are remembered per instance: at least what one recovery can deliver, so
    /// that a recovery never forgets the live messages it must not deliver again.
    pub(super) fn window(&self) -> usize {
        self.settings.remembered()
    }

    /// Whether message `id` of `instance` was delivered (within what is remembered).
    pub(crate) fn delivered(&self, instance: &str, id: &str) -> bool {
        self.lock()
            .windows
            .get(instance)
            .is_some_and(|w| w.contains(id))
    }

    /// Records that the gap of `instance` from `from` is not recovered yet; returns where the
    /// recovery must start: the earliest open gap.
    pub(super) fn open(&self, instance: &str, from: i64) -> i64 {
        let mut state = self.lock();
        let start = state.open.entry(instance.to_owned()).or_insert(from);
        *start = (*start).min(from);
        let start = *start;
        drop(state);
        self.dirty.store(true, Ordering::Release);
        start
    }

    /// The gaps of `instance` are recovered.
    pub(super) fn close(&self, instance: &str) {
        self.lock().open.remove(instance);
        self.dirty.store(true, Ordering::Release);
    }

    /// Claims the recovery of `instance` from `from`: `false` when one is under way (it runs
    /// again afterwards, from the earliest start asked for).
    pub(super) fn claim(&self, instance: &str, from: i64) -> bool {
        let mut state = self.lock();
        match state.running.get_mut(instance) {
            Some(pending) => {
                *pending = Some(pending.map_or(from, |p| p.min(from)));
                false
            }
            None => {
                state.running.insert(instance.to_owned(), None);
                true
            }
        }
    }

    /// Ends the recovery of `instance`; gives the start of the next one, if one was asked for.
    pub(super) fn release(&self, instance: &str) -> Option<i64> {
        let mut state = self.lock();
        let pending = state.running.remove(instance).flatten();
        if pending.is_some() {
            state.running.insert(instance.to_owned(), None);
        }
        pending
    }

    /// Whether `instance` was already told that recovery is unavailable (and marks it told).
    pub(super) fn told_unavailable(&self, instance: &str) -> bool {
        !self.lock().unavailable.insert(instance.to_owned())
    }

    /// Writes the checkpoint if anything changed since the last write.
    pub(crate) fn save(&self) {
        let Some(store) = &self.settings.store else {
            return;
        };
        if !self.dirty.swap(false, Ordering::AcqRel) {
            return;
        }
        let checkpoint = {
            let state = self.lock();
            Checkpoint {
                instances: state.marks.clone(),
                recent: state
                    .windows
                    .iter()
                    .flat_map(|(i, w)| w.iter().map(move |(id, ())| (i.clone(), id.to_owned())))
                    .collect(),
                open: state.open.clone(),
            }
        };
        let saved = serde_json::to_vec(&checkpoint)
            .map_err(|e| e.to_string())
            .and_then(|bytes| store.save(bytes));
        if let Err(e) = saved {
            self.dirty.store(true, Ordering::Release);
            tracing::error!(?store, "cannot save the checkpoint: {e}");
        }
    }
}

/// A checkpoint in a file, replaced atomically.
#[derive(Debug)]
pub(super) struct FileCheckpoint(pub(super) PathBuf);

impl CheckpointStore for FileCheckpoint {
    fn load(&self) -> Result<Option<Vec<u8>>, String> {
        match std::fs::read(&self.0) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("{}: {e}", self.0.display())),
        }
    }

    fn save(&self, checkpoint: Vec<u8>) -> Result<(), String> {
        eventsock_core::file::write_atomically(&self.0, &checkpoint, false)
            .map_err(|e| format!("{}: {e}", self.0.display()))
    }
}

impl Gate for Recovery {
    fn admit(&self, meta: &EventMeta, id: &str, timestamp: Option<i64>) -> bool {
        let instance = meta.instance.as_deref().unwrap_or_default();
        let limit = self.window();
        let mut state = self.lock();
        let w = state.windows.entry(instance.to_owned());
        if !w
            .or_insert_with(|| Recent::new(limit))
            .insert(id.to_owned(), ())
        {
            return false;
        }
        // A timestamp from the future (a wrong clock) must not pin the mark there.
        let now = now_secs();
        let timestamp = timestamp.unwrap_or(now).min(now.saturating_add(60));
        let newer = state
            .marks
            .get(instance)
            .is_none_or(|m| m.timestamp <= timestamp);
        if newer {
            state.marks.insert(
                instance.to_owned(),
                Mark {
                    timestamp,
                    id: id.to_owned(),
                },
            );
        }
        drop(state);
        self.dirty.store(true, Ordering::Release);
        true
    }
}
