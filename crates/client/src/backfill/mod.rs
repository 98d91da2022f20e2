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

use eventsock_core::{
    human, Channel, CheckpointStore, EventKind, EventMeta, EventName, Origin, Protocol, Recent,
};
use eventsock_handler::{Dispatcher, Gate};
use eventsock_rest::{FoundPage, RestClient, RestError};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

mod fetch;
mod recovery;

use fetch::*;
pub(crate) use recovery::Recovery;
use recovery::*;

/// Settings of the recovery of missed messages over REST: give them to
/// [`SupervisorBuilder::backfill`](crate::SupervisorBuilder::backfill). Legacy CodeChat and
/// Evolution API sources (the newer CodeChat server's REST API differs). On Evolution, whose
/// record ids tell no order, messages of one second are delivered in the reverse of the order
/// the server gave them (it answers newest first; among messages of one second its order is
/// undefined).
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

    /// The margin, in seconds.
    pub(crate) fn margin_secs(&self) -> i64 {
        i64::try_from(self.margin.as_secs()).unwrap_or(i64::MAX)
    }

    /// Where the recovery of a gap that began at `since` starts: the margin before it, in
    /// seconds since the epoch.
    pub(crate) fn gap_start(&self, since: SystemTime) -> i64 {
        secs(since).saturating_sub(self.margin_secs())
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

/// The recovery of gaps the supervisor runs after each reconnect, for code that reads events
/// without a supervisor (the test kit): give its [`gate`](GapRecovery::gate) to the
/// [`Dispatcher`] that delivers live events, so each message is delivered once whichever way it
/// came, and [`recover`](GapRecovery::recover) a gap over REST through the same dispatcher.
#[derive(Clone)]
pub struct GapRecovery(Arc<Recovery>);

impl std::fmt::Debug for GapRecovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("GapRecovery")
            .field(&self.0.settings)
            .finish()
    }
}

impl GapRecovery {
    /// A recovery with `settings` (its checkpoint loaded, when it has one).
    pub fn new(settings: Backfill) -> GapRecovery {
        GapRecovery(Arc::new(Recovery::load(settings)))
    }

    /// The gate that remembers what was delivered, for [`Dispatcher::gate`].
    pub fn gate(&self) -> Arc<dyn Gate> {
        self.0.clone()
    }

    /// Recovers the messages of `rest`'s instance sent since `since` (less the margin) and
    /// delivers them through `dispatcher`, oldest first, each once. Returns how many were
    /// delivered, or why nothing could be.
    pub async fn recover(
        &self,
        rest: RestClient,
        dispatcher: Dispatcher,
        since: SystemTime,
    ) -> Result<u64, String> {
        let from = self.0.settings.gap_start(since);
        let instance: Arc<str> = Arc::from(rest.instance());
        match recover(self.0.clone(), rest, dispatcher, instance, from).await {
            Recovered::Delivered(n) => Ok(n),
            Recovered::Merged => Ok(0),
            Recovered::Unavailable(reason) => {
                Err(reason.unwrap_or_else(|| "recovery is not possible on this server".to_owned()))
            }
            Recovered::Failed(reason) => Err(reason),
        }
    }
}

/// Seconds since the epoch, now, on tokio's clock (as the messages of a test kit's simulator
/// are stamped).
fn now_secs() -> i64 {
    i64::try_from(eventsock_core::clock::now_secs()).unwrap_or(i64::MAX)
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
        let (Some(t), Some(id)) = (FoundPage::timestamp(record), FoundPage::message_id(record))
        else {
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
    // Each server's records in its own shape: Evolution's are read as its events' data.
    let channel = (rest.server_protocol() == Protocol::Evolution).then_some(Channel::Evolution);
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
            .handle(&event, channel, text, &|_| meta.clone(), true)
            .await;
        delivered += u64::from(tally.delivered());
    }
    if records.is_empty() {
        // Nothing found: is nothing missed, or does the server keep nothing? Ask for the last
        // message this client delivered: a server that saves messages has it.
        let last = recovery.lock().marks.get(&**instance).map(|m| m.id.clone());
        if let Some(id) = last {
            let call = rest.find_message(&id);
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
