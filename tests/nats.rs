//! The JetStream bridge against a real nats-server with JetStream. Each test starts its own
//! server (`nats-server -js` on a free loopback port, its own store) and skips, saying why, when
//! the `nats-server` binary is not installed (`.ci/run` installs one); under CI it fails instead.

mod common;

use common::nats_server::{ingest, ingested, NatsServer};
use common::*;
use eventsock::client::Supervisor;
use eventsock::core::legacy;
use eventsock::core::{EventKind, Source, Token};
use eventsock::handler::{HandlerError, Received, Route, Router};
use eventsock::nats::{GetIngestStats, Ingest, StreamConfig, Worker, WorkerStats};
use eventsock::sim::SimConfig;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

type Seen = Arc<Mutex<HashMap<u64, u32>>>;

/// Counts each event (by its `burstSeq`) as it is handled. `stall`: count it as begun, then hold
/// it forever. `poison`: fail on that `burstSeq`, every time.
fn counting(
    seen: Seen,
    stall: bool,
    poison: Option<u64>,
) -> Route<Received<legacy::MessagesUpsert>> {
    Route::from_fn(move |e: Received<legacy::MessagesUpsert>| {
        let seq = e
            .extra
            .get("burstSeq")
            .and_then(|v| v.as_u64())
            .unwrap_or(u64::MAX);
        let seen = seen.clone();
        async move {
            if poison == Some(seq) {
                return Err(HandlerError::failed("poisoned"));
            }
            *seen.lock().unwrap().entry(seq).or_default() += 1;
            if stall {
                std::future::pending::<()>().await;
            }
            Ok::<_, HandlerError>(())
        }
    })
}

fn spawn_worker(
    url: &str,
    seen: Seen,
    stall: bool,
) -> (
    tokio::sync::oneshot::Sender<()>,
    actix_rt::task::JoinHandle<WorkerStats>,
) {
    spawn_worker_with(Worker::new(url), seen, stall, None)
}

fn spawn_worker_with(
    worker: Worker,
    seen: Seen,
    stall: bool,
    poison: Option<u64>,
) -> (
    tokio::sync::oneshot::Sender<()>,
    actix_rt::task::JoinHandle<WorkerStats>,
) {
    running(
        worker.ack_wait(Duration::from_secs(1)).router(
            Router::builder()
                .route(counting(seen, stall, poison))
                .build(),
        ),
    )
}

/// Runs `worker` in a task until the sender is used or dropped.
fn running(
    worker: Worker,
) -> (
    tokio::sync::oneshot::Sender<()>,
    actix_rt::task::JoinHandle<WorkerStats>,
) {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = actix_rt::spawn(async move {
        worker
            .run(async {
                let _ = stopped.await;
            })
            .await
            .unwrap()
    });
    (stop, task)
}

async fn all_seen(seen: &Seen, n: u64) {
    let seen = seen.clone();
    eventually(&format!("all {n} events handled"), || {
        let seen = seen.clone();
        async move { (seen.lock().unwrap().len() as u64 == n).then_some(()) }
    })
    .await;
}

#[actix_rt::test]
async fn three_workers_share_a_stream_with_none_lost_and_none_handled_twice_but_redeliveries() {
    const N: u64 = 30_000;
    let Some(nats) = NatsServer::started().await else {
        return;
    };
    let (_s, _sup, _ingest) = ingested(&nats, N).await;
    let seen: Seen = Arc::default();
    let workers: Vec<_> = (0..3)
        .map(|_| spawn_worker(&nats.url(), seen.clone(), false))
        .collect();
    all_seen(&seen, N).await;
    let mut stats = Vec::new();
    for (stop, task) in workers {
        let _ = stop.send(());
        stats.push(task.await.unwrap());
    }
    let handled: u64 = stats.iter().map(|s| s.handled).sum();
    let redelivered: u64 = stats.iter().map(|s| s.redelivered).sum();
    let extra: u64 = seen
        .lock()
        .unwrap()
        .values()
        .map(|c| u64::from(*c) - 1)
        .sum();
    println!("three workers: {stats:?}");
    assert_eq!(seen.lock().unwrap().len() as u64, N, "none lost");
    assert_eq!(extra, redelivered, "handled twice only when redelivered");
    assert_eq!(handled, N + extra);
    assert!(
        stats.iter().all(|s| s.handled > 0),
        "all three took part: {stats:?}"
    );
}

#[actix_rt::test]
async fn a_worker_killed_mid_stream_has_its_events_redelivered_to_the_others() {
    const N: u64 = 3_000;
    let Some(nats) = NatsServer::started().await else {
        return;
    };
    let (_s, _sup, _ingest) = ingested(&nats, N).await;
    // A worker that fetches and never finishes, then dies without acknowledging anything.
    let stalled: Seen = Arc::default();
    let (_stop, doomed) = spawn_worker(&nats.url(), stalled.clone(), true);
    let begun = stalled.clone();
    eventually("the doomed worker to hold an event", || {
        let begun = begun.clone();
        async move { (!begun.lock().unwrap().is_empty()).then_some(()) }
    })
    .await;
    doomed.abort();
    let seen: Seen = Arc::default();
    let others: Vec<_> = (0..2)
        .map(|_| spawn_worker(&nats.url(), seen.clone(), false))
        .collect();
    all_seen(&seen, N).await;
    let mut redelivered = 0;
    for (stop, task) in others {
        let _ = stop.send(());
        redelivered += task.await.unwrap().redelivered;
    }
    println!("killed worker: {redelivered} of its events redelivered to the others");
    assert_eq!(
        stalled.lock().unwrap().len(),
        1,
        "it began one event and finished none"
    );
    assert!(redelivered > 0, "the dead worker's events came back");
    assert_eq!(seen.lock().unwrap().len() as u64, N);
}

#[actix_rt::test]
async fn a_nats_restart_during_ingest_loses_nothing() {
    const N: u64 = 3_000;
    let Some(mut nats) = NatsServer::started().await else {
        return;
    };
    let (_s, _sup, ingest) = ingest(&nats, N).await;
    eventually("ingest under way", || {
        let ingest = ingest.clone();
        async move { (ingest.send(GetIngestStats).await.unwrap().published >= 300).then_some(()) }
    })
    .await;
    nats.restart();
    nats.ready().await;
    eventually("every event published after the restart", || {
        let ingest = ingest.clone();
        async move { (ingest.send(GetIngestStats).await.unwrap().published == N).then_some(()) }
    })
    .await;
    let stats = ingest.send(GetIngestStats).await.unwrap();
    let seen: Seen = Arc::default();
    let (stop, task) = spawn_worker(&nats.url(), seen.clone(), false);
    all_seen(&seen, N).await;
    let _ = stop.send(());
    let worker = task.await.unwrap();
    let twice = seen.lock().unwrap().values().filter(|c| **c > 1).count();
    println!("NATS restart: ingest {stats:?}, worker {worker:?}, handled twice {twice}");
    assert_eq!(seen.lock().unwrap().len() as u64, N, "nothing lost");
    assert_eq!(twice, 0, "re-publishes were dropped by the message id");
}

#[actix_rt::test]
async fn an_event_that_always_fails_goes_to_the_dead_letter_subject_after_max_deliver() {
    const N: u64 = 100;
    let Some(nats) = NatsServer::started().await else {
        return;
    };
    let (_s, _sup, _ingest) = ingested(&nats, N).await;
    let seen: Seen = Arc::default();
    let (stop, task) = spawn_worker_with(
        Worker::new(nats.url()).max_deliver(3),
        seen.clone(),
        false,
        Some(7),
    );
    all_seen(&seen, N - 1).await;
    let js = async_nats::jetstream::new(async_nats::connect(nats.url()).await.unwrap());
    eventually("the poisoned event in the dead-letter stream", || {
        let js = js.clone();
        async move {
            let mut stream = js.get_stream("EVENTSOCK_DEAD").await.ok()?;
            (stream.info().await.ok()?.state.messages == 1).then_some(())
        }
    })
    .await;
    let _ = stop.send(());
    let stats = task.await.unwrap();
    println!("dead letter: {stats:?}");
    assert!(!seen.lock().unwrap().contains_key(&7), "never handled");
    assert_eq!(
        (stats.failed, stats.dead),
        (2, 1),
        "two failed deliveries, then moved"
    );
    assert_eq!(stats.handled, N - 1);
}

#[actix_rt::test]
async fn a_worker_filtered_to_one_instance_gets_its_events_in_stream_order() {
    const N: u64 = 500;
    let Some(nats) = NatsServer::started().await else {
        return;
    };
    let (_s, _sup, _ingest) = ingested(&nats, N).await;
    let order = Arc::new(Mutex::new(Vec::new()));
    let o = order.clone();
    let route = Route::from_fn(move |e: Received<legacy::MessagesUpsert>| {
        o.lock().unwrap().push(
            e.extra
                .get("burstSeq")
                .and_then(|v| v.as_u64())
                .unwrap_or(u64::MAX),
        );
        async { Ok::<_, HandlerError>(()) }
    });
    let (stop, task) = running(
        Worker::new(nats.url())
            .durable("codechat-only")
            .filter("eventsock.codechat.>")
            .router(Router::builder().route(route).build()),
    );
    let seen = order.clone();
    eventually("all events", || {
        let seen = seen.clone();
        async move { (seen.lock().unwrap().len() as u64 == N).then_some(()) }
    })
    .await;
    let _ = stop.send(());
    task.await.unwrap();
    assert_eq!(*order.lock().unwrap(), (0..N).collect::<Vec<_>>());
}

/// A stream partitioned by chat: 400 messages of 8 chats, ingested, then one worker per
/// partition. Every message is handled once, each chat by one partition's worker only, and in
/// the order it was sent, also the chats that move from their phone number to their LID
/// halfway (one message with both ids, then the LID only): a person is partitioned by their
/// identity. Needs nats-server 2.10 or later (subject transforms).
#[actix_rt::test]
async fn a_stream_partitioned_by_chat_keeps_each_chat_in_one_partition_and_in_order() {
    partitioned_by_chat(false).await;
}

/// The same, the ingest registered as a raw handler (each payload parsed into a value).
#[actix_rt::test]
async fn a_raw_ingest_partitions_by_chat_the_same_way() {
    partitioned_by_chat(true).await;
}

async fn partitioned_by_chat(raw: bool) {
    const N: u64 = 400;
    const PARTS: u32 = 4;
    if !NatsServer::transforms() {
        return;
    }
    let Some(nats) = NatsServer::started().await else {
        return;
    };
    let mut cfg = StreamConfig::default();
    cfg.stream = "PARTS".into();
    cfg.prefix = "parts".into();
    cfg.partitions = PARTS;
    let s = start_sim(SimConfig::default());
    let ingest = Ingest::start(&nats.url(), cfg.clone()).await.unwrap();
    let builder = Supervisor::builder()
        .config(fast_config())
        .source(Source::new(s.endpoint(), Token::new(s.sim.mint_token("codechat", None))).unwrap());
    let events = [EventKind::MessagesUpsert.into()];
    let _sup = if raw {
        builder.router(
            Router::builder()
                .raw(
                    events,
                    ingest.clone().recipient::<eventsock::core::RawEvent>(),
                )
                .build(),
        )
    } else {
        builder.router(
            Router::builder()
                .raw(
                    events,
                    ingest.clone().recipient::<eventsock::core::RawFrame>(),
                )
                .build(),
        )
    }
    .start()
    .unwrap();
    until("the socket", || {
        s.sim.is_subscribed("codechat", "messages.upsert")
    })
    .await;
    for n in 0..N {
        let person = n % 8;
        let phone = format!("551190000000{person}@s.whatsapp.net");
        let lid = format!("90000000000000{person}@lid");
        let id = format!("M{n}");
        let data = match n / 8 {
            0..25 => serde_json::json!({"keyId": id, "keyRemoteJid": phone, "n": n}),
            // The move: the server knows both ids.
            25 => serde_json::json!({"keyId": id, "keyRemoteJid": phone, "keyLid": lid, "n": n}),
            _ => serde_json::json!({"keyId": id, "keyLid": lid, "n": n}),
        };
        assert!(s.sim.emit("codechat", "messages.upsert", &data));
    }
    common::nats_server::published(&ingest, N).await;

    // (partition, chat, n) of every message handled.
    let seen: Arc<Mutex<Vec<(u32, String, u64)>>> = Arc::default();
    let mut stops = Vec::new();
    for k in 0..PARTS {
        let seen = seen.clone();
        let route = Route::from_fn(move |e: Received<legacy::MessagesUpsert>| {
            let n = e
                .extra
                .get("n")
                .and_then(|v| v.as_u64())
                .unwrap_or(u64::MAX);
            // The person: their number, also for a message that names them by LID only.
            let chat = e.key_remote_jid.clone().unwrap_or_else(|| {
                let lid = e.key_lid.clone().unwrap_or_default();
                let person = lid.split('@').next().unwrap_or_default();
                format!(
                    "551190000000{}@s.whatsapp.net",
                    &person[person.len().saturating_sub(1)..]
                )
            });
            seen.lock().unwrap().push((k, chat, n));
            async { Ok::<_, HandlerError>(()) }
        });
        stops.push(running(
            Worker::new(nats.url())
                .stream(cfg.clone())
                .durable("parts")
                .partition(k)
                .router(Router::builder().route(route).build()),
        ));
    }
    let probe = seen.clone();
    eventually("every message handled", || {
        let probe = probe.clone();
        async move { (probe.lock().unwrap().len() as u64 >= N).then_some(()) }
    })
    .await;
    let mut handled = Vec::new();
    for (stop, task) in stops {
        let _ = stop.send(());
        handled.push(task.await.unwrap().handled);
    }
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    let mut ns: Vec<u64> = seen.iter().map(|(_, _, n)| *n).collect();
    ns.sort_unstable();
    assert_eq!(ns, (0..N).collect::<Vec<_>>(), "each message once");
    let mut by_chat: HashMap<&str, (u32, Vec<u64>)> = HashMap::new();
    for (k, chat, n) in seen.iter() {
        let entry = by_chat.entry(chat.as_str()).or_insert((*k, Vec::new()));
        assert_eq!(entry.0, *k, "{chat} was handled by two partitions");
        entry.1.push(*n);
    }
    assert_eq!(by_chat.len(), 8);
    for (chat, (_, ns)) in &by_chat {
        assert!(
            ns.windows(2).all(|w| w[0] < w[1]),
            "{chat} out of order: {ns:?}"
        );
    }
    let used = handled.iter().filter(|h| **h > 0).count();
    println!("handled per partition: {handled:?}");
    assert!(used > 1, "the chats spread over partitions: {handled:?}");

    // A partition the stream does not have, and an ingest that does not partition, are refused.
    let wrong = Worker::new(nats.url())
        .stream(cfg.clone())
        .partition(PARTS)
        .run(std::future::pending())
        .await
        .unwrap_err();
    assert!(
        wrong.to_string().contains("partition 4 asked for"),
        "{wrong}"
    );
    let mut flat = cfg.clone();
    flat.partitions = 0;
    let refused = Ingest::start(&nats.url(), flat).await.unwrap_err();
    assert!(
        refused.to_string().contains("partitioned otherwise"),
        "{refused}"
    );
}
