//! Recovering what a gap lost: after every reconnect (and at start-up, from a checkpoint), the
//! `messages.upsert` events of the gap are fetched over REST (`POST /chat/findMessages`) and
//! delivered through the router, oldest first, each once.
//!
//! The server never replays, but it keeps messages when it runs with
//! `DATABASE_SAVE_DATA_NEW_MESSAGE=true`. Its `findMessages` has no time filter: it sorts by
//! `messageTimestamp`, newest first, and pages. So a recovery pages from the newest until it
//! reaches messages older than the gap's start (less a margin for clock skew), then delivers
//! what it found oldest first. A bounded window of the message ids delivered so far, live or
//! recovered, is the [`Gate`] of the router: a message is delivered once, whichever way it came
//! first. The window and the last delivered message of each instance are the checkpoint, written
//! atomically to a file when one is given, so a process killed and started again recovers what
//! arrived while it was down.
//!
//! Recovery never blocks live delivery: it runs as a task of its own, each page bounded in
//! time, the fetching bounded in pages, bytes and time. A gap stays open in the checkpoint until
//! a recovery of it succeeds: one that fails, or is cut short by a shutdown or a kill, is taken
//! up by the next gap or the next start. A server that cannot recover (no route, a token
//! refused, messages not saved) is reported once per instance.
//!
//! The server sorts only by `messageTimestamp`, and gives the messages of one second in any
//! order: what a recovery fetched is delivered by timestamp, then by row id (the server's
//! autoincrement, so the order it saved them in). Messages of one second that straddle a page
//! boundary can come back in another order on the next page, and one fall between the two: when
//! a second straddles pages, the recovery reads everything again in one request.

use eventsock_core::{human, CheckpointStore, EventKind, EventMeta, EventName, Origin, Recent};
use eventsock_handler::{Dispatcher, Gate};
use eventsock_rest::{FoundPage, RestClient, RestError};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Settings of the recovery of missed messages over REST: give them to
/// [`SupervisorBuilder::backfill`](crate::SupervisorBuilder::backfill). Legacy sources only
/// (the newer server's REST API differs).
#[derive(Debug, Clone)]
pub struct Backfill {
    pub(crate) store: Option<Arc<dyn CheckpointStore>>,
    pub(crate) margin: Duration,
    pub(crate) page_size: u32,
    pub(crate) max_pages: u32,
    pub(crate) page_timeout: Duration,
    pub(crate) time_limit: Duration,
    pub(crate) window: usize,
    pub(crate) watch: Option<Duration>,
    pub(crate) watch_grace: Duration,
}

impl Default for Backfill {
    fn default() -> Self {
        Backfill::new()
    }
}

impl Backfill {
    /// Recovery after every gap, with no checkpoint file: pages of 50, at most 200 pages (10,000
    /// messages), 10 s per page and 60 s in all, a margin of 60 s for clock skew, and the ids of
    /// the last 10,000 messages remembered to deliver each once.
    pub fn new() -> Backfill {
        Backfill {
            store: None,
            margin: Duration::from_secs(60),
            page_size: 50,
            max_pages: 200,
            page_timeout: Duration::from_secs(10),
            time_limit: Duration::from_secs(60),
            window: 10_000,
            watch: Some(Duration::from_secs(30)),
            watch_grace: Duration::from_secs(15),
        }
    }

    /// Keeps the checkpoint in the file at `path` (written atomically, at most every 200 ms and
    /// at shutdown), and recovers from it at start-up.
    pub fn checkpoint(self, path: impl Into<PathBuf>) -> Self {
        self.store(Arc::new(FileCheckpoint(path.into())))
    }

    /// Keeps the checkpoint in `store` (a NATS KV bucket with `eventsock_nats::KvCheckpoint`,
    /// or your own), and recovers from it at start-up.
    pub fn store(mut self, store: Arc<dyn CheckpointStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// Searches this much before a gap's start, for clocks that disagree (60 s).
    pub fn margin(mut self, margin: Duration) -> Self {
        self.margin = margin;
        self
    }

    /// How many message ids are remembered per instance to deliver each message once (10,000,
    /// and never fewer than one recovery can deliver plus 1,000).
    pub fn window(mut self, ids: usize) -> Self {
        self.window = ids.max(1);
        self
    }

    /// How many delivered ids are remembered per instance: the window, and at least what one
    /// recovery can read, plus 1,000.
    fn remembered(&self) -> usize {
        let one_recovery = self.page_size as usize * self.max_pages as usize;
        self.window.max(one_recovery + 1_000)
    }

    /// Messages per page (50, the server's default; at least 1) and the most pages one recovery
    /// reads (200).
    pub fn pages(mut self, page_size: u32, max_pages: u32) -> Self {
        self.page_size = page_size.max(1);
        self.max_pages = max_pages.max(1);
        self
    }

    /// How often a held `messages.upsert` stream is watched (every 30 s; `None`: never). The
    /// server gives a stream to the newest client that asks for it and leaves the older socket
    /// open and silent, so nothing on the socket tells that another client took it: the watch
    /// asks `findMessages` for the newest saved messages (one request of 20) and compares them
    /// with what arrived live. One that the socket never delivered, sent after the connection
    /// came up and older than the grace, means the stream is lost: the supervisor says so
    /// ([`LifecycleKind::Displaced`](crate::LifecycleKind::Displaced)), takes the stream back
    /// and recovers what it missed. It cannot see events the server does not save (anything
    /// but messages, and messages on a server that saves none).
    pub fn watch(mut self, every: Option<Duration>) -> Self {
        self.watch = every.map(|d| d.max(Duration::from_millis(10)));
        self
    }

    /// How old a saved message must be before its absence from the stream counts (15 s): the
    /// server saves a message just before it sends it.
    pub fn watch_grace(mut self, grace: Duration) -> Self {
        self.watch_grace = grace;
        self
    }

    /// How long one page (10 s) and the fetching of one recovery (60 s) may take; delivering
    /// what was fetched is not limited.
    pub fn time_limits(mut self, page: Duration, recovery: Duration) -> Self {
        self.page_timeout = page;
        self.time_limit = recovery;
        self
    }
}

/// The last message delivered for an instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Mark {
    /// Its `messageTimestamp`, in seconds.
    timestamp: i64,
    /// Its `keyId`.
    id: String,
}

/// The checkpoint file.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Checkpoint {
    /// The last delivered message of each instance.
    instances: HashMap<String, Mark>,
    /// The ids delivered most recently, oldest first, as (instance, id).
    recent: Vec<(String, String)>,
    /// Gaps not recovered yet (a recovery failed or was cut short): their start per instance.
    #[serde(default)]
    open: HashMap<String, i64>,
}

#[derive(Debug, Default)]
struct State {
    marks: HashMap<String, Mark>,
    /// The ids of each instance's messages delivered most recently.
    windows: HashMap<String, Recent>,
    /// Gaps not recovered yet, by the start of the earliest.
    open: HashMap<String, i64>,
    /// Instances already told that recovery is unavailable.
    unavailable: HashSet<String>,
    /// Instances with a recovery under way, and the earliest start asked for meanwhile.
    running: HashMap<String, Option<i64>>,
}

/// The shared state of recovery: the gate of the router, and the checkpoint.
#[derive(Debug)]
pub(crate) struct Recovery {
    pub(crate) settings: Backfill,
    state: Mutex<State>,
    dirty: AtomicBool,
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

    fn lock(&self) -> MutexGuard<'_, State> {
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
    fn window(&self) -> usize {
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
    fn open(&self, instance: &str, from: i64) -> i64 {
        let mut state = self.lock();
        let start = state.open.entry(instance.to_owned()).or_insert(from);
        *start = (*start).min(from);
        let start = *start;
        drop(state);
        self.dirty.store(true, Ordering::Release);
        start
    }

    /// The gaps of `instance` are recovered.
    fn close(&self, instance: &str) {
        self.lock().open.remove(instance);
        self.dirty.store(true, Ordering::Release);
    }

    /// Claims the recovery of `instance` from `from`: `false` when one is under way (it runs
    /// again afterwards, from the earliest start asked for).
    fn claim(&self, instance: &str, from: i64) -> bool {
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
    fn release(&self, instance: &str) -> Option<i64> {
        let mut state = self.lock();
        let pending = state.running.remove(instance).flatten();
        if pending.is_some() {
            state.running.insert(instance.to_owned(), None);
        }
        pending
    }

    /// Whether `instance` was already told that recovery is unavailable (and marks it told).
    fn told_unavailable(&self, instance: &str) -> bool {
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
struct FileCheckpoint(PathBuf);

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

fn now_secs() -> i64 {
    secs(SystemTime::now())
}

/// Seconds since the epoch of `t`.
pub(crate) fn secs(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// How one recovery ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Recovered {
    /// Delivered this many messages (not counting those already delivered).
    Delivered(u64),
    /// Not possible on this server: said once per instance (`None` when already said).
    Unavailable(Option<String>),
    /// This recovery failed; its gap stays open for the next gap (or the next start).
    Failed(String),
    /// Another recovery of the instance is under way: it will cover this one too.
    Merged,
}

/// What went wrong with a page.
enum Failure {
    Unavailable(String),
    Failed(String),
}

/// One page of `findMessages`: `size` records of page `number`, within the page's time limit.
async fn page(
    rest: &RestClient,
    settings: &Backfill,
    size: u32,
    number: u32,
) -> Result<FoundPage, Failure> {
    let call = rest.find_messages_page(json!({}), size, number);
    // The client's own timeout is the page's (see `SupervisorBuilder::start`); this one only
    // guards against a client built otherwise.
    let guard = settings.page_timeout + Duration::from_secs(1);
    match tokio::time::timeout(guard, call).await {
        Err(_) => Err(Failure::Failed(format!(
            "findMessages did not answer within {}",
            human::duration(settings.page_timeout)
        ))),
        Ok(Err(RestError::NotFound { .. })) => Err(Failure::Unavailable(
            "the server has no findMessages route (404)".into(),
        )),
        Ok(Err(RestError::Unauthorized { .. })) => Err(Failure::Unavailable(
            "the server refuses this token for findMessages (401)".into(),
        )),
        Ok(Err(e)) => Err(Failure::Failed(format!("findMessages: {e}"))),
        Ok(Ok(found)) => Ok(found),
    }
}

/// The records a recovery fetched: each message once, by key id, at most `cap` of them.
struct Fetched {
    cap: usize,
    /// (timestamp, row id, the record's text).
    records: Vec<(i64, i64, String)>,
    keys: HashSet<String>,
    bytes: usize,
}

impl Fetched {
    /// Keeps the first `size` records of `page` sent at or after `from`; returns whether the
    /// page reached older ones.
    fn keep(&mut self, page: &FoundPage, size: u32, from: i64) -> bool {
        let mut older = false;
        // A page holds at most `size` records: a server that sends more gets no more read.
        for record in page.records.iter().take(size as usize) {
            if self.records.len() >= self.cap {
                break;
            }
            match FoundPage::timestamp(record) {
                Some(t) if t < from => older = true,
                t => {
                    let key = record["keyId"].as_str().unwrap_or_default();
                    if !key.is_empty() && !self.keys.insert(key.to_owned()) {
                        continue;
                    }
                    let text = record.to_string();
                    self.bytes += text.len();
                    let row = FoundPage::row_id(record).unwrap_or(i64::MAX);
                    self.records.push((t.unwrap_or(i64::MIN), row, text));
                }
            }
        }
        older
    }
}

/// Pages `findMessages` from the newest until older than `from`: the records at or after it,
/// oldest first.
///
/// The server sorts by `messageTimestamp` alone, and each request may order the messages of one
/// second differently: where such a second straddles two pages, a message can fall between
/// them. When that happened, everything is read again in one request (one sort on the server,
/// so every second that fits in it comes whole), with a page's room for what arrived meanwhile.
async fn fetch(
    rest: &RestClient,
    from: i64,
    settings: &Backfill,
) -> Result<Vec<(i64, String)>, Failure> {
    let size = settings.page_size;
    let most = u64::from(settings.page_size) * u64::from(settings.max_pages);
    let mut fetched = Fetched {
        cap: usize::try_from(most).unwrap_or(usize::MAX),
        records: Vec::new(),
        keys: HashSet::new(),
        bytes: 0,
    };
    let mut pages = 0;
    let mut straddled = false;
    let mut last_before: Option<i64> = None;
    // How far down the server's order the pages went.
    let mut depth = 0u64;
    for number in 1..=settings.max_pages {
        let found = page(rest, settings, size, number).await?;
        pages = number;
        let first = found.records.first().and_then(FoundPage::timestamp);
        straddled |= last_before.is_some() && first == last_before;
        let read = found.records.len().min(size as usize);
        depth += read as u64;
        last_before = found.records[..read].last().and_then(FoundPage::timestamp);
        let older = fetched.keep(&found, size, from);
        if fetched.bytes > MAX_BYTES {
            tracing::warn!(
                "recovery stopped at {} MiB of messages; older missed messages are not recovered",
                MAX_BYTES >> 20
            );
            break;
        }
        if older || found.records.len() < size as usize {
            break;
        }
        if number == settings.max_pages {
            tracing::warn!(
                pages = number,
                "recovery stopped after its last page; older missed messages are not recovered"
            );
        }
    }
    // Within the recovery's pages: a recovery that used them all reads no more.
    if straddled && pages < settings.max_pages {
        let whole = (depth + u64::from(size)).min(most);
        let whole = u32::try_from(whole).unwrap_or(u32::MAX);
        match page(rest, settings, whole, 1).await {
            Ok(found) => {
                fetched.keep(&found, whole, from);
            }
            Err(Failure::Failed(e) | Failure::Unavailable(e)) => tracing::warn!(
                "messages of one second straddled two pages, and reading them again failed ({e}): one of them may be missing"
            ),
        }
    }
    // In arrival order: by timestamp, then by row id (the server's autoincrement), since the
    // server sorts by timestamp alone and gives the messages of one second in any order.
    let mut records = fetched.records;
    records.sort_by_key(|(t, row, _)| (*t, *row));
    Ok(records.into_iter().map(|(t, _, text)| (t, text)).collect())
}

/// How many of the newest saved messages a watch reads.
const WATCH_PAGE: u32 = 20;

/// What a watch of a held stream found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Watched {
    /// Every saved message it looked at arrived live.
    Held,
    /// `missing` saved messages never arrived live, the oldest sent at `since` (seconds).
    Lost { missing: u64, since: i64 },
}

/// Compares the newest saved messages of `instance` with what arrived live: a message sent
/// since `up_since` (when the connection came up) and older than the grace that the socket
/// never delivered means the server gives the stream to another client.
pub(crate) async fn watch(
    recovery: &Recovery,
    rest: &RestClient,
    instance: &str,
    up_since: SystemTime,
) -> Result<Watched, String> {
    let settings = &recovery.settings;
    let found = page(rest, settings, WATCH_PAGE, 1)
        .await
        .map_err(|(Failure::Failed(e) | Failure::Unavailable(e))| e)?;
    let grace = i64::try_from(settings.watch_grace.as_secs()).unwrap_or(i64::MAX);
    let (from, until) = (secs(up_since), now_secs().saturating_sub(grace));
    let (mut missing, mut since) = (0, i64::MAX);
    for record in found.records.iter().take(WATCH_PAGE as usize) {
        let (Some(t), Some(id)) = (FoundPage::timestamp(record), record["keyId"].as_str()) else {
            continue;
        };
        if (from..=until).contains(&t) && !recovery.delivered(instance, id) {
            missing += 1;
            since = since.min(t);
        }
    }
    Ok(match missing {
        0 => Watched::Held,
        _ => Watched::Lost { missing, since },
    })
}

/// The most message bytes one recovery holds before it delivers them.
const MAX_BYTES: usize = 64 << 20;

/// Recovers the messages of `instance` from `from` (seconds) and delivers them through
/// `dispatcher`; runs again, when asked meanwhile, for a later gap.
pub(crate) async fn recover(
    recovery: Arc<Recovery>,
    rest: RestClient,
    dispatcher: Dispatcher,
    instance: Arc<str>,
    from: i64,
) -> Recovered {
    if !recovery.claim(&instance, from) {
        recovery.open(&instance, from);
        return Recovered::Merged;
    }
    let mut from = from;
    let mut result;
    loop {
        // Open until recovered: a recovery that fails, or is cut short by a shutdown or a
        // kill, leaves its gap to the next one (or the next start).
        let start = recovery.open(&instance, from);
        result = recover_once(&recovery, &rest, &dispatcher, &instance, start).await;
        if matches!(result, Recovered::Delivered(_)) {
            recovery.close(&instance);
        }
        match recovery.release(&instance) {
            Some(next) => from = next,
            None => break,
        }
    }
    recovery.save();
    result
}

async fn recover_once(
    recovery: &Recovery,
    rest: &RestClient,
    dispatcher: &Dispatcher,
    instance: &Arc<str>,
    from: i64,
) -> Recovered {
    let unavailable = |reason: String| {
        Recovered::Unavailable((!recovery.told_unavailable(instance)).then_some(reason))
    };
    // The time limit is on fetching; delivery goes on until every message fetched is handled.
    let limit = recovery.settings.time_limit;
    let records = match tokio::time::timeout(limit, fetch(rest, from, &recovery.settings)).await {
        Err(_) => {
            return Recovered::Failed(format!(
                "fetching took longer than {}",
                human::duration(limit)
            ))
        }
        Ok(Ok(r)) => r,
        Ok(Err(Failure::Unavailable(reason))) => return unavailable(reason),
        Ok(Err(Failure::Failed(reason))) => return Recovered::Failed(reason),
    };
    let event = EventName::from(EventKind::MessagesUpsert);
    let mut delivered = 0;
    for (n, (_, text)) in records.iter().enumerate() {
        let meta = EventMeta {
            event: event.clone(),
            instance: Some(instance.clone()),
            instance_info: None,
            server_time: None,
            received_at: SystemTime::now(),
            seq: n as u64 + 1,
            generation: 0,
            origin: Origin::Recovered,
        };
        let tally = dispatcher
            .handle(&event, None, text, &|_| meta.clone(), true)
            .await;
        delivered += u64::from(tally.delivered());
    }
    if records.is_empty() {
        // Nothing found: is nothing missed, or does the server keep nothing? Ask for the last
        // message this client delivered: a server that saves messages has it.
        let last = recovery.lock().marks.get(&**instance).map(|m| m.id.clone());
        if let Some(id) = last {
            let call = rest.find_messages(json!({ "keyId": id }));
            if let Ok(Ok(answer)) = tokio::time::timeout(recovery.settings.page_timeout, call).await
            {
                if answer.total == Some(0) {
                    return unavailable("the server keeps no messages (findMessages does not find one this client received): start it with DATABASE_SAVE_DATA_NEW_MESSAGE=true".into());
                }
            }
        }
    }
    Recovered::Delivered(delivered)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(instance: &str) -> EventMeta {
        EventMeta::live(EventKind::MessagesUpsert, instance)
    }

    #[test]
    fn the_gate_admits_each_message_once_within_its_window() {
        // Pages of 1, at most 1: a window of 1,001 ids per instance.
        let r = Recovery::load(Backfill::new().window(2).pages(1, 1));
        assert_eq!(r.window(), 1_001);
        assert!(r.admit(&meta("a"), "1", Some(10)));
        assert!(!r.admit(&meta("a"), "1", Some(10)));
        assert!(r.admit(&meta("b"), "1", Some(5)), "another instance's id");
        for i in 2..=1_002 {
            assert!(r.admit(&meta("a"), &i.to_string(), Some(9)));
        }
        // The window holds 1,001 per instance: "a/1" was forgotten, "b/1" was not.
        assert!(r.admit(&meta("a"), "1", Some(10)));
        assert!(!r.admit(&meta("b"), "1", Some(5)));
        // The mark is the newest delivered, not the last, and never in the future.
        assert_eq!(r.start_up("a", 0), Some(10));
        assert!(r.admit(&meta("a"), "future", Some(i64::MAX)));
        assert!(r.start_up("a", 0).unwrap() <= now_secs() + 60);
    }

    #[test]
    fn the_checkpoint_survives_a_restart_and_a_bad_file_is_ignored() {
        let dir = std::env::temp_dir().join(format!("eventsock-backfill-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("checkpoint.json");
        let r = Recovery::load(Backfill::new().checkpoint(&path));
        assert!(r.admit(&meta("a"), "X", Some(42)));
        r.save();
        assert_eq!(r.open("a", 30), 30);
        r.save();
        let again = Recovery::load(Backfill::new().checkpoint(&path));
        assert_eq!(again.start_up("a", 0), Some(30), "the open gap comes first");
        again.close("a");
        assert_eq!(again.start_up("a", 0), Some(42));
        assert!(
            !again.admit(&meta("a"), "X", Some(42)),
            "remembered across the restart"
        );
        std::fs::write(&path, b"{garbage").unwrap();
        let fresh = Recovery::load(Backfill::new().checkpoint(&path));
        assert_eq!(fresh.start_up("a", 0), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_second_recovery_waits_for_the_first_and_takes_the_earliest_start() {
        let r = Recovery::load(Backfill::new());
        assert!(r.claim("a", 100));
        assert!(!r.claim("a", 90));
        assert!(!r.claim("a", 95));
        assert_eq!(r.release("a"), Some(90));
        assert_eq!(r.release("a"), None);
        assert!(r.claim("a", 1));
    }
}
