//! Recovering missed messages over REST after a gap, against the simulator's `findMessages`
//! (which answers as CodeChat's does): exactly once, oldest first, never in the way of live
//! delivery, and honest about servers that cannot recover.

mod common;

use actix::Actor;
use common::*;
use eventsock::client::{Backfill, LifecycleKind, Supervisor};
use eventsock::core::{legacy, Backoff, Origin, Source, Token};
use eventsock::sim::{FindMode, SimConfig, Ties};
use serde_json::{json, Value};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn message(id: &str, timestamp: i64) -> Value {
    json!({"keyId": id, "keyFromMe": false, "keyRemoteJid": "5511988887777@s.whatsapp.net",
           "pushName": "Maria", "messageType": "conversation", "content": {"text": id},
           "messageTimestamp": timestamp, "device": "ios", "isGroup": false})
}

/// A supervisor recording `messages.upsert` and lifecycle, with `backfill`, reconnecting after
/// `reconnect` (so that a test can emit while nobody listens).
fn supervise(
    s: &TestServer,
    backfill: Backfill,
    reconnect: Duration,
) -> (actix::Addr<Supervisor>, Recorder) {
    let mut config = fast_config();
    config.backoff = Backoff::Fixed(reconnect);
    let rec = Recorder::default();
    let addr = rec.clone().start();
    let token = Token::new(s.sim.mint_token("codechat", None));
    let sup = Supervisor::builder()
        .config(config)
        .source(Source::new(s.endpoint(), token).unwrap())
        .router(
            Router::builder()
                .actor::<legacy::MessagesUpsert>(addr.clone().recipient())
                .build(),
        )
        .lifecycle(addr.recipient())
        .backfill(backfill)
        .start()
        .unwrap();
    (sup, rec)
}

/// The key ids of the events received, with their origin, in order.
fn received(rec: &Recorder) -> Vec<(String, Origin)> {
    rec.events()
        .into_iter()
        .map(|(meta, json)| (json["keyId"].as_str().unwrap().to_owned(), meta.origin))
        .collect()
}

/// Waits until message `id` has been received.
async fn got(rec: &Recorder, id: &str) {
    rec.wait(id, |r| {
        received(r).iter().any(|(got, _)| got == id).then_some(())
    })
    .await;
}

/// Drops the connection and waits until nobody listens.
async fn drop_link(s: &TestServer) {
    s.sim.drop_all();
    until("the socket to be gone", || {
        !s.sim.is_subscribed("codechat", "messages.upsert")
    })
    .await;
}

#[actix_rt::test]
async fn a_gap_of_500_messages_is_recovered_oldest_first_each_once() {
    let s = start_sim(SimConfig::default());
    // Messages up to 10 minutes old count: the live ones are searched again, and must not be
    // delivered twice.
    let backfill = Backfill::new().margin(Duration::from_secs(600));
    let (_sup, rec) = supervise(&s, backfill, Duration::from_millis(1500));
    subscribed(&s, "messages.upsert").await;
    let now = now_secs();
    for i in 0..20 {
        assert!(s.sim.emit(
            "codechat",
            "messages.upsert",
            &message(&format!("L{i:02}"), now)
        ));
    }
    rec.wait_events(20).await;

    drop_link(&s).await;
    for i in 0..500 {
        let emitted = s.sim.emit(
            "codechat",
            "messages.upsert",
            &message(&format!("G{i:03}"), now - 500 + i),
        );
        assert!(!emitted, "nobody listens during the gap");
    }
    let recovered = rec
        .wait_lifecycle("the recovery", |k| {
            matches!(k, LifecycleKind::Recovered { .. })
        })
        .await;
    assert!(
        matches!(recovered, LifecycleKind::Recovered { delivered: 500, .. }),
        "{recovered:?}"
    );
    let got = received(&rec);
    assert_eq!(got.len(), 520, "each once");
    let live: Vec<_> = (0..20)
        .map(|i| (format!("L{i:02}"), Origin::Live))
        .collect();
    let gap: Vec<_> = (0..500)
        .map(|i| (format!("G{i:03}"), Origin::Recovered))
        .collect();
    assert_eq!(got[..20], live[..]);
    assert_eq!(got[20..], gap[..], "oldest first");
    // Live delivery goes on after the recovery, and a recovered message sent again live is
    // not delivered twice.
    s.sim
        .emit("codechat", "messages.upsert", &message("G499", now));
    s.sim
        .emit("codechat", "messages.upsert", &message("AFTER", now));
    rec.wait_events(521).await;
    assert_eq!(received(&rec)[520], ("AFTER".to_owned(), Origin::Live));
}

/// The server sorts by the timestamp alone and gives the messages of one second in any order,
/// anew on every request: 200 messages of one second, read in pages of 50, are all recovered,
/// in the order the server saved them (its row ids).
#[actix_rt::test]
async fn messages_of_one_second_are_recovered_in_arrival_order() {
    let s = start_sim(SimConfig::default());
    s.sim.set_ties(Ties::Shuffled);
    let backfill = Backfill::new().pages(50, 10);
    let (_sup, rec) = supervise(&s, backfill, Duration::from_millis(1500));
    subscribed(&s, "messages.upsert").await;
    drop_link(&s).await;
    let second = now_secs();
    for i in 0..200 {
        s.sim.emit(
            "codechat",
            "messages.upsert",
            &message(&format!("S{i:03}"), second),
        );
    }
    let recovered = rec
        .wait_lifecycle("the recovery", |k| {
            matches!(k, LifecycleKind::Recovered { .. })
        })
        .await;
    assert!(
        matches!(recovered, LifecycleKind::Recovered { delivered: 200, .. }),
        "{recovered:?}"
    );
    let got: Vec<String> = received(&rec).into_iter().map(|(id, _)| id).collect();
    let sent: Vec<String> = (0..200).map(|i| format!("S{i:03}")).collect();
    assert_eq!(got, sent, "in arrival order");
}

/// Another client takes the bot's stream (the server leaves the bot's socket open and silent):
/// the watch finds saved messages that never arrived, says so, takes the stream back at once,
/// and every message sent meanwhile is delivered exactly once. Taken again, the stream is taken
/// back only after 30 s, then longer: no tug of war.
#[actix_rt::test]
async fn a_stream_taken_by_another_client_is_noticed_taken_back_and_recovered() {
    let s = start_sim(SimConfig::default());
    let backfill = Backfill::new()
        .watch(Some(Duration::from_millis(100)))
        .watch_grace(Duration::from_secs(1));
    let (sup, rec) = supervise(&s, backfill, Duration::from_millis(50));
    subscribed(&s, "messages.upsert").await;
    s.sim
        .emit("codechat", "messages.upsert", &message("LIVE", now_secs()));
    got(&rec, "LIVE").await;

    assert!(
        s.sim.take("codechat", "messages.upsert"),
        "the bot had the stream"
    );
    for i in 0..10 {
        let m = message(&format!("T{i}"), now_secs());
        assert!(
            !s.sim.emit("codechat", "messages.upsert", &m),
            "sent to the other client"
        );
    }
    let displaced = rec
        .wait_lifecycle("the displacement", |k| {
            matches!(k, LifecycleKind::Displaced { .. })
        })
        .await;
    assert!(
        matches!(displaced, LifecycleKind::Displaced { missing: 10, retake_in, .. } if retake_in == Duration::ZERO),
        "{displaced:?}"
    );
    rec.wait_lifecycle("the recovery", |k| {
        matches!(k, LifecycleKind::Recovered { delivered: 10, .. })
    })
    .await;
    let mut expected = vec![("LIVE".to_owned(), Origin::Live)];
    expected.extend((0..10).map(|i| (format!("T{i}"), Origin::Recovered)));
    assert_eq!(received(&rec), expected, "each once, in order");
    subscribed(&s, "messages.upsert").await;
    s.sim
        .emit("codechat", "messages.upsert", &message("AFTER", now_secs()));
    got(&rec, "AFTER").await;

    // Taken again at once: the second time, the stream is taken back after 30 s.
    s.sim.take("codechat", "messages.upsert");
    s.sim
        .emit("codechat", "messages.upsert", &message("T10", now_secs()));
    let second = rec
        .wait("the second displacement", |r| {
            r.lifecycle()
                .into_iter()
                .filter_map(|k| match k {
                    LifecycleKind::Displaced { retake_in, .. } => Some(retake_in),
                    _ => None,
                })
                .nth(1)
        })
        .await;
    assert_eq!(second, Duration::from_secs(30));
    let status = sup.send(eventsock::client::GetStatus).await.unwrap();
    assert_eq!(status[0].displacements, 2);
    assert_eq!(
        status[0].state,
        eventsock::client::SubscriptionState::Displaced
    );
}

/// Ten minutes of a client that takes the stream back every 5 s, against the default watch (every
/// 30 s, a grace of 15 s), with a message every second: the bot takes the stream back at growing
/// intervals, never in a loop, and in the end every message is delivered exactly once. Slow
/// (11 minutes): `cargo test --test backfill -- --ignored --nocapture`; its figures are in
/// docs/benchmarks.md.
#[actix_rt::test]
#[ignore = "takes 11 minutes"]
async fn ten_minutes_of_a_tug_of_war() {
    let s = start_sim(SimConfig::default());
    let (sup, rec) = supervise(&s, Backfill::new(), Duration::from_millis(50));
    subscribed(&s, "messages.upsert").await;
    let started = std::time::Instant::now();
    let mut sent = Vec::new();
    let mut n = 0u32;
    while started.elapsed() < Duration::from_secs(600) {
        if n % 5 == 2 {
            s.sim.take("codechat", "messages.upsert");
        }
        let id = format!("W{n:04}");
        s.sim
            .emit("codechat", "messages.upsert", &message(&id, now_secs()));
        sent.push(id);
        n += 1;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let reconnects = rec.count_lifecycle(|k| matches!(k, LifecycleKind::Connected { .. })) - 1;
    let retakes: Vec<Duration> = rec
        .lifecycle()
        .into_iter()
        .filter_map(|k| match k {
            LifecycleKind::Displaced { retake_in, .. } => Some(retake_in),
            _ => None,
        })
        .collect();
    println!(
        "in 10 minutes: {} messages, {reconnects} reconnects, retakes after {retakes:?}",
        sent.len()
    );
    // The other client stops; the bot takes the stream back and recovers the rest.
    let last = sent.last().unwrap().clone();
    rec.wait_with(Duration::from_secs(660), "the last message", |r| {
        received(r).iter().any(|(id, _)| *id == last).then_some(())
    })
    .await;
    let got: Vec<String> = received(&rec).into_iter().map(|(id, _)| id).collect();
    assert_eq!(got, sent, "every message once, in order");
    assert!(reconnects <= 6, "{reconnects} reconnects");
    let status = sup.send(eventsock::client::GetStatus).await.unwrap();
    println!("displacements: {}", status[0].displacements);
}

/// A findMessages that hangs, answers garbage or never runs out costs the watch only: live
/// delivery goes on, and nothing counts as displaced.
#[actix_rt::test]
async fn a_watch_against_a_bad_find_messages_costs_the_watch_only() {
    let s = start_sim(SimConfig::default());
    let backfill = Backfill::new()
        .watch(Some(Duration::from_millis(50)))
        .watch_grace(Duration::from_secs(1))
        .time_limits(Duration::from_millis(300), Duration::from_secs(1));
    let (sup, rec) = supervise(&s, backfill, Duration::from_millis(50));
    subscribed(&s, "messages.upsert").await;
    for (n, mode) in [FindMode::Hang, FindMode::Garbage, FindMode::Flood]
        .into_iter()
        .enumerate()
    {
        s.sim.set_find_mode(mode);
        let before = s.sim.find_requests();
        until("two watches", || s.sim.find_requests() >= before + 2).await;
        let id = format!("LIVE{n}");
        s.sim
            .emit("codechat", "messages.upsert", &message(&id, now_secs()));
        got(&rec, &id).await;
    }
    let status = sup.send(eventsock::client::GetStatus).await.unwrap();
    assert_eq!(status[0].displacements, 0);
    assert_eq!(
        status[0].state,
        eventsock::client::SubscriptionState::Connected
    );
}

#[actix_rt::test]
async fn a_server_that_saves_nothing_is_reported_once_without_a_retry_storm() {
    let s = start_sim(SimConfig {
        save_messages: false,
        ..SimConfig::default()
    });
    let (_sup, rec) = supervise(&s, Backfill::new(), Duration::from_millis(300));
    subscribed(&s, "messages.upsert").await;
    s.sim
        .emit("codechat", "messages.upsert", &message("L0", now_secs()));
    rec.wait_events(1).await;
    for generation in 2..=4 {
        drop_link(&s).await;
        let lost = message(&format!("LOST{generation}"), now_secs());
        assert!(
            !s.sim.emit("codechat", "messages.upsert", &lost),
            "LOST{generation} was to be sent while nobody listened"
        );
        rec.wait_lifecycle("the reconnect", |k| connected(k, generation))
            .await;
        // Each recovery ends (said or not) before the next drop.
        until("the recovery to end", || {
            s.sim.find_requests() >= 2 * (generation - 1)
        })
        .await;
    }
    let unavailable = rec
        .wait_lifecycle("recovery reported unavailable", |k| {
            matches!(k, LifecycleKind::RecoveryUnavailable { .. })
        })
        .await;
    assert!(
        unavailable
            .to_string()
            .contains("DATABASE_SAVE_DATA_NEW_MESSAGE=true"),
        "{unavailable}"
    );
    assert_eq!(
        rec.count_lifecycle(|k| matches!(k, LifecycleKind::RecoveryUnavailable { .. })),
        1
    );
    // Three gaps: one page and one probe each.
    assert_eq!(s.sim.find_requests(), 6);
    assert_eq!(received(&rec).len(), 1);
}

#[actix_rt::test]
async fn a_find_messages_that_hangs_or_answers_garbage_does_not_stop_live_delivery() {
    let s = start_sim(SimConfig::default());
    let backfill = Backfill::new().time_limits(Duration::from_millis(500), Duration::from_secs(5));
    let (_sup, rec) = supervise(&s, backfill, Duration::from_millis(300));
    subscribed(&s, "messages.upsert").await;

    s.sim.set_find_mode(FindMode::Hang);
    drop_link(&s).await;
    let missed = s.sim.emit(
        "codechat",
        "messages.upsert",
        &message("MISSED1", now_secs()),
    );
    rec.wait_lifecycle("the reconnect", |k| connected(k, 2))
        .await;
    subscribed(&s, "messages.upsert").await;
    // The recovery hangs; live messages flow.
    s.sim
        .emit("codechat", "messages.upsert", &message("LIVE1", now_secs()));
    got(&rec, "LIVE1").await;
    let failed = rec
        .wait_lifecycle("the recovery to fail", |k| {
            matches!(k, LifecycleKind::RecoveryFailed { .. })
        })
        .await;
    assert!(
        failed.to_string().contains("no answer within 500ms"),
        "{failed}"
    );

    s.sim.set_find_mode(FindMode::Garbage);
    drop_link(&s).await;
    rec.wait_lifecycle("the reconnect", |k| connected(k, 3))
        .await;
    subscribed(&s, "messages.upsert").await;
    s.sim
        .emit("codechat", "messages.upsert", &message("LIVE2", now_secs()));
    got(&rec, "LIVE2").await;
    rec.wait("a second failed recovery", |r| {
        (r.count_lifecycle(|k| matches!(k, LifecycleKind::RecoveryFailed { .. })) == 2)
            .then_some(())
    })
    .await;

    // A server that behaves again: the next gap recovers what this one missed too.
    s.sim.set_find_mode(FindMode::Normal);
    drop_link(&s).await;
    rec.wait_lifecycle("the reconnect", |k| connected(k, 4))
        .await;
    got(&rec, "MISSED1").await;
    let got = received(&rec);
    assert!(!missed, "MISSED1 was to be sent while nobody listened");
    assert!(
        got.contains(&("MISSED1".to_owned(), Origin::Recovered)),
        "{got:?}"
    );
    let ids: Vec<&str> = got.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(
        ids.iter().filter(|id| **id == "LIVE1").count(),
        1,
        "{ids:?}"
    );
}

#[actix_rt::test]
async fn the_checkpoint_in_a_nats_kv_bucket_recovers_across_a_restart() {
    use common::nats_server::NatsServer;
    use eventsock::nats::KvCheckpoint;
    use eventsock::prelude::CheckpointStore;
    let Some(nats) = NatsServer::started().await else {
        return;
    };
    let url = nats.url();
    let open = || KvCheckpoint::open(&url, "eventsock-checkpoints", "codechat");
    let s = start_sim(SimConfig::default());
    let backfill = |store: KvCheckpoint| Backfill::new().store(std::sync::Arc::new(store));
    let (first, rec) = supervise(
        &s,
        backfill(open().await.unwrap()),
        Duration::from_millis(50),
    );
    subscribed(&s, "messages.upsert").await;
    let now = now_secs();
    for i in 0..5 {
        s.sim.emit(
            "codechat",
            "messages.upsert",
            &message(&format!("L{i}"), now),
        );
    }
    rec.wait_events(5).await;
    // Shut down at once: the supervisor waits until the last checkpoint is in the bucket.
    first.send(eventsock::client::Shutdown).await.unwrap();
    let saved = open()
        .await
        .unwrap()
        .load()
        .unwrap()
        .expect("a checkpoint in the bucket");
    assert!(
        String::from_utf8(saved).unwrap().contains("\"L4\""),
        "the last one"
    );
    until("the socket to close", || {
        !s.sim.is_subscribed("codechat", "messages.upsert")
    })
    .await;

    for i in 0..20 {
        s.sim.emit(
            "codechat",
            "messages.upsert",
            &message(&format!("M{i:02}"), now),
        );
    }
    // Another process: it knows only the bucket.
    let (_second, rec) = supervise(
        &s,
        backfill(open().await.unwrap()),
        Duration::from_millis(50),
    );
    rec.wait_lifecycle("the recovery", |k| {
        matches!(k, LifecycleKind::Recovered { .. })
    })
    .await;
    let expected: Vec<_> = (0..20)
        .map(|i| (format!("M{i:02}"), Origin::Recovered))
        .collect();
    assert_eq!(
        received(&rec),
        expected,
        "what it missed, oldest first, and not L0..L4 again"
    );
}

#[actix_rt::test]
async fn a_server_that_never_runs_out_of_messages_is_read_within_the_bounds() {
    let s = start_sim(SimConfig::default());
    // Pages of 10, at most 5 pages: 50 messages at most, however much the server sends.
    let backfill = Backfill::new().pages(10, 5);
    let (_sup, rec) = supervise(&s, backfill, Duration::from_millis(50));
    subscribed(&s, "messages.upsert").await;
    s.sim.set_find_mode(FindMode::Flood);
    drop_link(&s).await;
    let recovered = rec
        .wait_lifecycle("the recovery", |k| {
            matches!(k, LifecycleKind::Recovered { .. })
        })
        .await;
    assert!(
        matches!(recovered, LifecycleKind::Recovered { delivered: 50, .. }),
        "{recovered:?}"
    );
    assert_eq!(s.sim.find_requests(), 5);
    subscribed(&s, "messages.upsert").await;
    s.sim
        .emit("codechat", "messages.upsert", &message("LIVE", now_secs()));
    got(&rec, "LIVE").await;
    assert_eq!(received(&rec).len(), 51);
}
