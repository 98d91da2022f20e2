//! The cost of per-chat state per handled event: `N` messages over 100 chats through a router,
//! one at a time, each adding one to its chat's count. Rows: a handler with no state (the
//! floor), a dialogue on each store, and, as the baseline, what a user would write by hand with
//! rusqlite (read the row, write it back, on the handler's thread).

use eventsock_core::{legacy, Channel, EventKind, EventMeta, EventName};
use eventsock_handler::{
    Dialogue, Dispatcher, MemoryStore, Received, Router, SqliteStore, StateStore,
};
use std::sync::Arc;
use std::time::Instant;

#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
struct Count {
    n: u64,
}

type Message = Received<legacy::MessagesUpsert>;

const CHATS: u64 = 100;

fn frame(i: u64) -> String {
    format!(
        r#"{{"keyId":"B{i}","keyFromMe":false,"keyRemoteJid":"55119{:08}@s.whatsapp.net","messageType":"conversation","content":{{"text":"hi"}},"messageTimestamp":1}}"#,
        i % CHATS
    )
}

/// Runs `n` events through `router`, one after another; seconds taken.
async fn drive(router: &Router, n: u64) -> f64 {
    let event = EventName::from(EventKind::MessagesUpsert);
    let meta = |_: Option<&eventsock_core::Frame<'_>>| EventMeta::live(event.clone(), "codechat");
    let frames: Vec<String> = (0..n).map(frame).collect();
    let dispatcher = Dispatcher::new(router.clone());
    let started = Instant::now();
    for f in &frames {
        let tally = dispatcher
            .handle(&event, Some(Channel::Legacy), f, &meta, true)
            .await;
        assert_eq!(tally.handled, 1, "{:?}", tally.errors);
    }
    started.elapsed().as_secs_f64()
}

fn counting(store: Arc<dyn StateStore>) -> Router {
    Router::builder()
        .dialogue(Dialogue::<Count>::new(store).when(
            |_| true,
            |_: Message, c| async move { Ok(Count { n: c.n + 1 }) },
        ))
        .build()
}

/// The baseline: a handler that keeps the count in SQLite itself.
fn by_hand(path: &std::path::Path) -> anyhow::Result<Router> {
    let db = rusqlite::Connection::open(path)?;
    db.pragma_update(None, "journal_mode", "WAL")?;
    db.pragma_update(None, "synchronous", "NORMAL")?;
    db.execute_batch(
        "CREATE TABLE IF NOT EXISTS counts (chat TEXT PRIMARY KEY, n INTEGER NOT NULL)",
    )?;
    let db = Arc::new(std::sync::Mutex::new(db));
    Ok(Router::builder().on(move |m: Message| {
        let db = db.clone();
        async move {
            let chat = eventsock_core::MessageLike::chat(&m.event).unwrap_or_default().to_owned();
            let db = db.lock().map_err(|_| "poisoned")?;
            let n: u64 = db
                .query_row("SELECT n FROM counts WHERE chat = ?1", [&chat], |r| r.get::<_, i64>(0))
                .map(|n| n as u64)
                .unwrap_or(0);
            db.execute(
                "INSERT INTO counts (chat, n) VALUES (?1, ?2) ON CONFLICT(chat) DO UPDATE SET n = ?2",
                (&chat, (n + 1) as i64),
            )?;
            Ok(())
        }
    }).build())
}

pub(crate) async fn state(events: u64, nats: Option<String>) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("eventsock-bench-state-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut rows: Vec<(String, f64)> = Vec::new();
    let floor = Router::builder().on(|_: Message| async { Ok(()) }).build();
    rows.push(("no state (the floor)".into(), drive(&floor, events).await));
    rows.push((
        "Dialogue, MemoryStore".into(),
        drive(&counting(Arc::new(MemoryStore::default())), events).await,
    ));
    rows.push((
        "by hand: rusqlite read and write in the handler (WAL)".into(),
        drive(&by_hand(&dir.join("by-hand.db"))?, events).await,
    ));
    rows.push((
        "Dialogue, SqliteStore (WAL)".into(),
        drive(
            &counting(Arc::new(SqliteStore::open(dir.join("states.db"))?)),
            events,
        )
        .await,
    ));
    if let Some(url) = nats {
        let store = eventsock_nats::KvStateStore::open(&url, "eventsock-bench-states").await?;
        rows.push((
            "Dialogue, KvStateStore (local nats-server, file storage)".into(),
            drive(&counting(Arc::new(store)), events).await,
        ));
    }
    let _ = std::fs::remove_dir_all(&dir);
    println!("# {events} messages over {CHATS} chats, one at a time, each adding one to its chat's count\n");
    println!("| handler | events/s | µs per event | over the floor |");
    println!("|---|---:|---:|---:|");
    let floor = rows[0].1 / events as f64;
    for (name, seconds) in &rows {
        let per = seconds / events as f64;
        println!(
            "| {name} | {:.0} | {:.1} | {:+.1} µs |",
            events as f64 / seconds,
            per * 1e6,
            (per - floor) * 1e6
        );
    }
    Ok(())
}
