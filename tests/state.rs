//! Per-chat conversation state: one suite run against every store (in memory, a SQLite file,
//! a NATS KV bucket on a real nats-server), a dialogue routed by state, and two NATS workers
//! updating one chat at once without losing an update.

mod common;

use common::nats_server::{ingested, NatsServer};
use common::*;
use eventsock::core::legacy;
use eventsock::handler::{
    ChatKey, Dialogue, Dispatcher, MemoryStore, Received, Router, SqliteStore, StateError,
    StateStore, States,
};
use eventsock::nats::{KvStateStore, Worker};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Counter {
    n: u64,
}

/// What every store must do.
async fn suite(store: Arc<dyn StateStore>) {
    let key = ChatKey::new("codechat", "5511988887777@s.whatsapp.net");
    let other = ChatKey::new("codechat", "120363000000000000@g.us");
    let absent = |s: Option<eventsock::handler::Stored>| s.is_none_or(|s| s.bytes.is_empty());
    assert!(absent(store.load(&key).await.unwrap()));

    // Created once; a second creation conflicts.
    let r1 = store
        .save(&key, br#"{"n":1}"#.to_vec(), None)
        .await
        .unwrap();
    assert_eq!(
        store.save(&key, br#"{"n":9}"#.to_vec(), None).await,
        Err(StateError::Conflict)
    );
    let loaded = store.load(&key).await.unwrap().unwrap();
    assert_eq!(
        (loaded.bytes.as_slice(), loaded.revision),
        (&br#"{"n":1}"#[..], r1)
    );
    let written = loaded.updated_ms;
    assert!(eventsock::handler::now_ms().abs_diff(written) < 60_000);

    // Written only at the revision read.
    assert_eq!(
        store
            .save(&key, br#"{"n":9}"#.to_vec(), Some(r1 + 100))
            .await,
        Err(StateError::Conflict)
    );
    let r2 = store
        .save(&key, br#"{"n":2}"#.to_vec(), Some(r1))
        .await
        .unwrap();
    assert_ne!(r1, r2);
    assert_eq!(
        store.save(&key, br#"{"n":9}"#.to_vec(), Some(r1)).await,
        Err(StateError::Conflict),
        "a stale revision"
    );
    assert!(absent(store.load(&other).await.unwrap()), "keys are apart");

    // Removed only at the revision read; then created again.
    assert_eq!(store.remove(&key, r1).await, Err(StateError::Conflict));
    store.remove(&key, r2).await.unwrap();
    assert!(absent(store.load(&key).await.unwrap()));
    let states = States::<Counter>::new(store.clone());
    let fresh = states.load(&key).await.unwrap();
    assert_eq!(fresh.state, Counter::default());
    let r3 = states
        .save(&key, &Counter { n: 5 }, fresh.revision)
        .await
        .unwrap();
    assert_eq!(states.load(&key).await.unwrap().state, Counter { n: 5 });
    // A writer that read before the removal still conflicts: revisions never start again.
    assert!(r3 != r1 && r3 != r2, "{r1} {r2} {r3}");
    assert_eq!(
        store.save(&key, br#"{"n":9}"#.to_vec(), Some(r1)).await,
        Err(StateError::Conflict)
    );

    // A stored state that no longer reads as its type: reported, and that chat starts again.
    let current = store.load(&other).await.unwrap().map(|s| s.revision);
    store
        .save(&other, br#"{"n":"not a number"}"#.to_vec(), current)
        .await
        .unwrap();
    let bad = states.load(&other).await.unwrap();
    assert_eq!(bad.state, Counter::default());
    assert_eq!(bad.reset, Some("it no longer deserialises"));
    assert_eq!(
        states.load(&key).await.unwrap().state,
        Counter { n: 5 },
        "others untouched"
    );
    states
        .save(&other, &Counter { n: 1 }, bad.revision)
        .await
        .unwrap();
    assert_eq!(states.load(&other).await.unwrap().state, Counter { n: 1 });

    // Idle longer than the timeout: the conversation starts again.
    let written = store.load(&key).await.unwrap().unwrap().updated_ms;
    until("a millisecond to pass", || {
        eventsock::handler::now_ms() > written + 1
    })
    .await;
    let idle = States::<Counter>::new(store.clone()).idle_timeout(Duration::from_millis(1));
    let expired = idle.load(&key).await.unwrap();
    assert_eq!(expired.state, Counter::default());
    assert_eq!(expired.reset, Some("idle for longer than the idle timeout"));

    // Reset, and updates racing on one chat: none lost.
    states.reset(&key).await.unwrap();
    assert_eq!(states.load(&key).await.unwrap().state, Counter::default());
    let bump = |states: States<Counter>, key: ChatKey| async move {
        for _ in 0..25 {
            states
                .update(&key, |c| Some(Counter { n: c.n + 1 }))
                .await
                .unwrap();
        }
    };
    let a = actix_rt::spawn(bump(states.clone(), key.clone()));
    let b = actix_rt::spawn(bump(states.clone(), key.clone()));
    a.await.unwrap();
    b.await.unwrap();
    assert_eq!(states.load(&key).await.unwrap().state, Counter { n: 50 });
}

#[actix_rt::test]
async fn the_memory_store_passes_the_suite() {
    suite(Arc::new(MemoryStore::default())).await;
}

#[actix_rt::test]
async fn the_sqlite_store_passes_the_suite_and_keeps_states_in_its_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("states.db");
    suite(Arc::new(SqliteStore::open(&path).unwrap())).await;
    // Opened again (a restart): the states are there.
    let states = States::<Counter>::new(Arc::new(SqliteStore::open(&path).unwrap()));
    let other = ChatKey::new("codechat", "120363000000000000@g.us");
    assert_eq!(states.load(&other).await.unwrap().state, Counter { n: 1 });
    let e = SqliteStore::open(dir.path().join("no/such/dir/states.db")).unwrap_err();
    assert!(e.to_string().contains("cannot open"), "{e}");
}

#[actix_rt::test]
async fn the_nats_kv_store_passes_the_suite() {
    let Some(nats) = NatsServer::started().await else {
        return;
    };
    let store = KvStateStore::open(&nats.url(), "eventsock-states")
        .await
        .unwrap();
    suite(Arc::new(store)).await;
}

type Message = Received<legacy::MessagesUpsert>;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
enum Order {
    #[default]
    Start,
    Size,
    Address {
        size: String,
    },
}

/// A dialogue routed by state, run through a router over real frames; a handler that fails
/// leaves the state as it was.
#[actix_rt::test]
async fn a_dialogue_routes_by_state_and_saves_only_after_success() {
    use eventsock::core::{Channel, EventKind, EventName};
    let store: Arc<dyn StateStore> = Arc::new(MemoryStore::default());
    let dialogue = Dialogue::<Order>::new(store.clone())
        .when(
            |s| *s == Order::Start,
            |_: Message, _| async move { Ok(Order::Size) },
        )
        .when(
            |s| *s == Order::Size,
            |m: Message, s| async move {
                match m.text() {
                    Some("fail") => Err("asked to fail".into()),
                    Some(size) => Ok(Order::Address { size: size.into() }),
                    None => Ok(s),
                }
            },
        );
    let states = dialogue.states();
    let router = Router::builder().dialogue(dialogue).build();
    let dispatcher = Dispatcher::new(router);
    let event = EventName::from(EventKind::MessagesUpsert);
    let meta = |_: Option<&eventsock::core::Frame<'_>>| live_meta(&event);
    let say = |id: &str, text: &str| {
        format!(
            r#"{{"keyId":"{id}","keyFromMe":false,"keyRemoteJid":"5511900000001@s.whatsapp.net","messageType":"conversation","content":{{"text":"{text}"}},"messageTimestamp":1}}"#
        )
    };
    let key = ChatKey::new("codechat", "5511900000001@s.whatsapp.net");
    for (id, text, handled, failed, after) in [
        ("M1", "hi", 1, 0, Order::Size),
        ("M2", "fail", 0, 1, Order::Size),
        (
            "M3",
            "large",
            1,
            0,
            Order::Address {
                size: "large".into(),
            },
        ),
    ] {
        let tally = dispatcher
            .handle(&event, Some(Channel::Legacy), &say(id, text), &meta, true)
            .await;
        assert_eq!((tally.handled, tally.failed), (handled, failed), "{text}");
        assert_eq!(
            states.load(&key).await.unwrap().state,
            after,
            "after {text}"
        );
    }
    // A state that no state handles: nothing runs, nothing changes.
    let tally = dispatcher
        .handle(&event, Some(Channel::Legacy), &say("M4", "x"), &meta, true)
        .await;
    assert_eq!(tally.failed, 0);
    assert_eq!(
        states.load(&key).await.unwrap().state,
        Order::Address {
            size: "large".into()
        }
    );
}

/// Two NATS workers take 1,000 events of one chat at once (each fetches its own batches); each
/// event adds one to the chat's count in a KV bucket, pausing a millisecond between reading
/// and writing it, so the workers race. A save that meets the other worker's write conflicts,
/// fails the event, and the event is redelivered: the count ends at exactly 1,000.
#[actix_rt::test]
async fn two_workers_updating_one_chat_lose_no_update() {
    const N: u64 = 1000;
    let Some(nats) = NatsServer::started().await else {
        return;
    };
    let (_sim, _sup, _ingest) = ingested(&nats, N).await;
    let store: Arc<dyn StateStore> = Arc::new(
        KvStateStore::open(&nats.url(), "eventsock-states")
            .await
            .unwrap(),
    );
    let count = || {
        Router::builder()
            .dialogue(Dialogue::<Counter>::new(store.clone()).when(
                |_| true,
                |_: Message, c| async move {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    Ok(Counter { n: c.n + 1 })
                },
            ))
            .build()
    };
    let mut stops = Vec::new();
    let mut tasks = Vec::new();
    for _ in 0..2 {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        // A long ack_wait: events wait in a worker's batch longer than a second here, and a
        // redelivery of an event already handled would count it twice (delivery is at least
        // once; a conflict is redelivered at once, with a nak).
        let worker = Worker::new(nats.url())
            .ack_wait(Duration::from_secs(60))
            .max_deliver(1000)
            .router(count());
        stops.push(stop);
        tasks.push(actix_rt::spawn(async move {
            worker
                .run(async {
                    let _ = stopped.await;
                })
                .await
                .unwrap()
        }));
    }
    let states = States::<Counter>::new(store.clone());
    let chat = {
        let template: serde_json::Value =
            serde_json::from_str(include_str!("fixtures/legacy/messages.upsert.json")).unwrap();
        template["keyRemoteJid"].as_str().unwrap().to_owned()
    };
    let key = ChatKey::new("codechat", chat);
    eventually("every event counted", || {
        let (states, key) = (states.clone(), key.clone());
        async move { (states.load(&key).await.unwrap().state.n >= N).then_some(()) }
    })
    .await;
    for stop in stops {
        let _ = stop.send(());
    }
    let mut failed = 0;
    for task in tasks {
        let stats = task.await.unwrap();
        failed += stats.failed;
        assert_eq!(stats.dead, 0);
    }
    assert_eq!(states.load(&key).await.unwrap().state, Counter { n: N });
    assert!(
        failed > 0,
        "the workers never raced: the test shows nothing"
    );
    println!("{failed} conflicts, each handled again");
}
