//! Measurements that need a process of their own (memory) or no network (fuzzing).

use eventsock_client::{GetStatus, Shutdown, SubscriptionState, Supervisor};
use eventsock_core::Source;
use eventsock_core::{legacy, v2, Endpoint, EventName, Frame, Token};
use futures_util::StreamExt;
use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

/// Resident memory of this process, in bytes.
pub(crate) fn rss() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

struct Sink;

impl actix::Actor for Sink {
    type Context = actix::Context<Self>;
}

impl actix::Handler<eventsock_handler::Received<legacy::MessagesUpsert>> for Sink {
    type Result = ();
    fn handle(
        &mut self,
        _: eventsock_handler::Received<legacy::MessagesUpsert>,
        _: &mut Self::Context,
    ) {
    }
}

/// Opens `k` idle subscriptions and prints `{"k", "before", "after"}` (RSS in bytes).
pub(crate) async fn memory(client: &str, k: usize, base: &str) -> anyhow::Result<()> {
    use actix::Actor;
    // Warm up what every run needs (allocator arenas, the runtime) before the baseline.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let before = rss();
    match client {
        "eventsock" => {
            let endpoint = Endpoint::parse(base)?;
            let mut builder = Supervisor::builder();
            for i in 0..k {
                builder = builder.source(Source::with_provider(
                    endpoint.clone(),
                    format!("i{i}"),
                    Token::new("bench"),
                ));
            }
            let sup = builder
                .router(
                    eventsock_handler::Router::builder()
                        .actor::<legacy::MessagesUpsert>(Sink.start().recipient())
                        // One socket per instance, to weigh one subscription: a bot's
                        // receipts socket (messages.update) is one more of the same kind.
                        .receipts(false)
                        .build(),
                )
                .start()?;
            let deadline = Instant::now() + Duration::from_secs(120);
            loop {
                let status = sup.send(GetStatus).await?;
                if status
                    .iter()
                    .all(|s| s.state == SubscriptionState::Connected)
                {
                    break;
                }
                if Instant::now() >= deadline {
                    let mut states = std::collections::BTreeMap::new();
                    for s in &status {
                        *states.entry(format!("{:?}", s.state)).or_insert(0) += 1;
                    }
                    let error = status.iter().find_map(|s| s.last_error.clone());
                    anyhow::bail!(
                        "not all {k} subscriptions connected: {states:?}; an error: {error:?}"
                    );
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            let after = rss();
            println!("{{\"k\":{k},\"before\":{before},\"after\":{after}}}");
            let _ = sup.send(Shutdown).await;
        }
        "raw" => {
            let url = format!(
                "{}/ws/events?event=messages.upsert&token=bench",
                base.replacen("http", "ws", 1)
            );
            let mut tasks = Vec::with_capacity(k);
            for _ in 0..k {
                let (ws, _) = tokio_tungstenite::connect_async(url.as_str()).await?;
                tasks.push(actix_rt::spawn(async move {
                    let (_sink, mut stream) = ws.split();
                    while let Some(Ok(_)) = stream.next().await {}
                    drop(_sink);
                }));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            let after = rss();
            println!("{{\"k\":{k},\"before\":{before},\"after\":{after}}}");
        }
        other => anyhow::bail!("unknown client {other}"),
    }
    Ok(())
}

/// Mutated fixtures through frame parsing and decoding: counts, and panics (which must be 0).
#[derive(Debug, Default)]
pub(crate) struct FuzzReport {
    pub(crate) cases: u64,
    pub(crate) not_json: u64,
    pub(crate) decoded: u64,
    pub(crate) wrong_shape: u64,
    pub(crate) panics: u64,
    /// Inputs where a legacy message's check on arrival and its decode disagreed (one accepted,
    /// the other refused, their answers differed, or the payload built later did not equal the
    /// decode, or panicked): must be 0.
    pub(crate) head_disagreements: u64,
    /// Inputs the check accepted as a legacy message, to be built on first access.
    pub(crate) head_checked: u64,
}

/// How a legacy message's check on arrival and its decode did on `input`: whether they
/// agree (the event is made exactly when the decode succeeds, answers as the built payload
/// does and builds into it), and whether the event was made by the check (decoded later).
fn head_agrees(input: &str) -> (bool, bool) {
    use eventsock_core::MessageLike;
    let meta = eventsock_core::EventMeta::live(eventsock_core::EventKind::MessagesUpsert, "fuzz");
    let event = Frame::bare(input).event::<legacy::MessagesUpsert>(meta);
    let full = serde_json::from_str::<legacy::MessagesUpsert>(input);
    match (event, full) {
        (Ok(e), Ok(m)) => {
            let lazy = !e.is_decoded();
            let same = e.text() == m.text()
                && e.chat() == m.chat()
                && e.message_id() == m.message_id()
                && e.sender_name() == m.sender_name()
                && e.message_type() == m.message_type()
                && e.is_from_me() == m.is_from_me()
                && e.lid() == m.lid()
                && MessageLike::timestamp(&e) == MessageLike::timestamp(&m)
                && *e.payload() == m;
            (same, lazy)
        }
        (Err(_), Err(_)) => (true, false),
        _ => (false, false),
    }
}

const TOKENS: &[&str] = &[
    "null",
    "\"",
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "1e999",
    "-0",
    "\"\\u0000\"",
    "\"\\ud800\"",
    "18446744073709551616",
    "true",
    "\"2025-13-45T99:99:99Z\"",
    "é",
    "\u{1F600}",
    "{\"$serde_json::private::RawValue\":0}",
    "{\"$serde_json::private::RawValue\":\"1\"}",
];

fn mutate(text: &str) -> String {
    let mut b = text.as_bytes().to_vec();
    for _ in 0..fastrand::usize(1..=4) {
        if b.is_empty() {
            b.extend_from_slice(b"{}");
        }
        let at = fastrand::usize(..b.len());
        match fastrand::u8(..5) {
            0 => b[at] = fastrand::u8(..),
            1 => {
                let end = (at + fastrand::usize(..16)).min(b.len());
                b.drain(at..end);
            }
            2 => {
                let t = TOKENS[fastrand::usize(..TOKENS.len())].as_bytes();
                b.splice(at..at, t.iter().copied());
            }
            3 => b.truncate(at),
            _ => {
                let dup: Vec<u8> = b[at..(at + fastrand::usize(..32)).min(b.len())].to_vec();
                b.splice(at..at, dup);
            }
        }
    }
    String::from_utf8_lossy(&b).into_owned()
}

fn decode_all(name: &EventName, frame: &Frame<'_>) -> (u64, u64) {
    let mut ok = 0;
    let mut bad = 0;
    macro_rules! each {
        ($($t:ty),*) => {$(
            match frame.decode::<$t>(name) {
                Ok(_) => ok += 1,
                Err(e) => { bad += 1; let _ = e.to_string(); }
            }
        )*};
    }
    each!(
        legacy::MessagesUpsert,
        legacy::MessagesUpdate,
        legacy::ContactsUpsert,
        legacy::PresenceUpdate,
        legacy::GroupsUpsert,
        legacy::GroupParticipantsUpdate,
        legacy::CallUpsert,
        legacy::QrcodeUpdated,
        legacy::ConnectionUpdate,
        legacy::ChatsUpdate,
        v2::MessagesUpsert,
        v2::BatchEvent,
        v2::CallEvent,
        v2::PresenceUpdated
    );
    (ok, bad)
}

/// Runs `cases` mutated fixtures (all of `tests/fixtures`) through `Frame::parse` and every
/// decoder, catching panics.
pub(crate) fn fuzz(cases: u64) -> anyhow::Result<FuzzReport> {
    let mut seeds = Vec::new();
    for dir in [
        "legacy",
        "legacy/variants",
        "legacy/webhook-only",
        "v2",
        "v2/variants",
    ] {
        let path = crate::repo_root().join("tests/fixtures").join(dir);
        for entry in std::fs::read_dir(path)? {
            let p = entry?.path();
            if p.extension().is_some_and(|e| e == "json") {
                seeds.push(std::fs::read_to_string(p)?);
            }
        }
    }
    let name = EventName::parse("messages.upsert");
    let mut r = FuzzReport::default();
    // Panics are counted, not printed.
    std::panic::set_hook(Box::new(|_| {}));
    for _ in 0..cases {
        let input = mutate(&seeds[fastrand::usize(..seeds.len())]);
        r.cases += 1;
        match std::panic::catch_unwind(|| head_agrees(&input)) {
            Ok((true, lazy)) => r.head_checked += u64::from(lazy),
            _ => r.head_disagreements += 1,
        }
        let outcome =
            std::panic::catch_unwind(AssertUnwindSafe(|| match Frame::parse(&name, &input) {
                Err(e) => {
                    let _ = e.to_string();
                    None
                }
                Ok(frame) => {
                    let _ = (
                        frame.instance(),
                        frame.timestamp(),
                        frame.event_name(),
                        frame.value(&name),
                    );
                    Some(decode_all(&name, &frame))
                }
            }));
        match outcome {
            Err(_) => r.panics += 1,
            Ok(None) => r.not_json += 1,
            Ok(Some((ok, bad))) => {
                r.decoded += ok;
                r.wrong_shape += bad;
            }
        }
    }
    let _ = std::panic::take_hook();
    Ok(r)
}
