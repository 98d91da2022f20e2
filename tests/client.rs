//! The supervisor and its connections against the simulator, over real sockets.

mod common;

use actix::prelude::*;
use common::*;
use eventsock::client::{
    ClientConfig, ClientError, GetStatus, GiveUp, LifecycleKind, Shutdown, Subscribe,
    SubscriptionState, Supervisor,
};
use eventsock::core::Protocol;
use eventsock::core::{legacy, v2, EventKind, FrameProblem, Intensity, Token};
use eventsock::core::{FnTokenProvider, Source, TokenProviderError};
use eventsock::sim::SimConfig;
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

const INSTANCE: &str = "codechat";

/// A supervisor of the simulator's `codechat` with one recorder (see [`supervise_with`]).
fn supervise(s: &TestServer, config: ClientConfig) -> (Addr<Supervisor>, Recorder) {
    let token = Token::new(s.sim.mint_token(INSTANCE, None));
    supervise_with(Source::new(s.endpoint(), token).unwrap(), config)
}

#[actix_rt::test]
async fn delivers_typed_events_with_their_metadata() {
    let s = start_sim(SimConfig::default());
    let (sup, rec) = supervise(&s, fast_config());
    subscribed(&s, "messages.upsert").await;
    s.sim.emit(
        INSTANCE,
        "messages.upsert",
        &json!({"keyId": "A", "content": {"text": "oi"}}),
    );
    let events = rec.wait_events(1).await;
    let (meta, json) = &events[0];
    assert_eq!(meta.event, EventKind::MessagesUpsert);
    assert_eq!(
        meta.instance.as_deref(),
        Some(INSTANCE),
        "from the token's claims"
    );
    assert_eq!((meta.seq, meta.generation), (1, 1));
    assert_eq!(json["content"]["text"], "oi");
    let status = sup.send(GetStatus).await.unwrap();
    assert_eq!(status.len(), 1);
    assert_eq!(status[0].state, SubscriptionState::Connected);
    assert_eq!((status[0].frames, status[0].events), (1, 1));
}

#[actix_rt::test]
async fn reconnects_after_abrupt_drops_many_times_with_a_gap_notice_each_time() {
    let s = start_sim(SimConfig::default());
    let (sup, rec) = supervise(&s, fast_config());
    const DROPS: u64 = 15;
    for g in 1..=DROPS + 1 {
        rec.wait_lifecycle(&format!("generation {g}"), |k| connected(k, g))
            .await;
        subscribed(&s, "messages.upsert").await;
        assert!(s.sim.emit(
            INSTANCE,
            "messages.upsert",
            &json!({"keyId": format!("E{g}")})
        ));
        let events = rec.wait_events(g as usize).await;
        let (meta, json) = events.last().unwrap();
        assert_eq!(
            (meta.generation, meta.seq),
            (g, 1),
            "a new connection starts at seq 1"
        );
        assert_eq!(json["keyId"], format!("E{g}"));
        if g <= DROPS {
            assert_eq!(s.sim.drop_all(), 1);
        }
    }
    // Every reconnect told the handlers which span may have lost events.
    let gaps = rec.count_lifecycle(|k| matches!(k, LifecycleKind::Gap { from, to } if from <= to));
    assert_eq!(gaps as u64, DROPS);
    let status = &sup.send(GetStatus).await.unwrap()[0];
    assert_eq!((status.generation, status.restarts), (DROPS + 1, DROPS));
}

#[actix_rt::test]
async fn a_refused_token_is_retried_at_the_slowest_pace_with_a_fresh_token_each_time() {
    let s = start_sim(SimConfig::default());
    let good = Token::new(s.sim.mint_token(INSTANCE, None));
    let bad = foreign_token();
    // The first three attempts get a token the server refuses; then the rotated one.
    let calls = Arc::new(AtomicUsize::new(0));
    let provider = {
        let calls = calls.clone();
        FnTokenProvider(move || {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            let t = if n < 3 { bad.clone() } else { good.clone() };
            async move { Ok::<_, TokenProviderError>(t) }
        })
    };
    let mut config = fast_config();
    config.backoff = eventsock::core::Backoff::exponential(
        Duration::from_millis(10),
        Duration::from_millis(150),
    );
    let rec = Recorder::default();
    let addr = rec.clone().start();
    let _sup = Supervisor::builder()
        .config(config)
        .source(Source::with_provider(s.endpoint(), INSTANCE, provider))
        .router(
            Router::builder()
                .actor::<legacy::MessagesUpsert>(addr.clone().recipient())
                .build(),
        )
        .lifecycle(addr.recipient())
        .start()
        .unwrap();
    rec.wait_lifecycle("the rotated token to connect", |k| connected(k, 1))
        .await;
    // Each refusal was followed by the maximum delay, never the short exponential steps.
    let delays: Vec<Duration> = rec
        .lifecycle()
        .into_iter()
        .filter_map(|k| match k {
            LifecycleKind::Reconnecting { delay, .. } => Some(delay),
            _ => None,
        })
        .collect();
    assert_eq!(delays, vec![Duration::from_millis(150); 3]);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        4,
        "the provider is asked before every attempt"
    );
    subscribed(&s, "messages.upsert").await;
    s.sim
        .emit(INSTANCE, "messages.upsert", &json!({"keyId": "after"}));
    rec.wait_events(1).await;
}

#[actix_rt::test]
async fn a_half_open_link_is_detected_and_replaced() {
    let s = start_sim(SimConfig::default());
    let mut config = fast_config();
    config.ping_interval = Duration::from_millis(50);
    config.pong_timeout = Duration::from_millis(200);
    let (_sup, rec) = supervise(&s, config);
    rec.wait_lifecycle("generation 1", |k| connected(k, 1))
        .await;
    s.sim.set_half_open(true);
    let down = rec
        .wait_lifecycle("the dead link to be noticed", |k| {
            matches!(k, LifecycleKind::Disconnected { .. })
        })
        .await;
    assert!(
        format!("{down:?}").contains("no answer to a ping"),
        "{down:?}"
    );
    s.sim.set_half_open(false);
    rec.wait_lifecycle("generation 2", |k| connected(k, 2))
        .await;
    until("the new socket", || {
        s.sim.sockets().iter().any(|x| x.routed)
    })
    .await;
    s.sim
        .emit(INSTANCE, "messages.upsert", &json!({"keyId": "fresh"}));
    let events = rec.wait_events(1).await;
    assert_eq!(events[0].0.generation, 2);
}

#[actix_rt::test]
async fn malformed_frames_are_reported_and_the_stream_goes_on() {
    let s = start_sim(SimConfig::default());
    let (sup, rec) = supervise(&s, fast_config());
    subscribed(&s, "messages.upsert").await;
    s.sim
        .emit_text(INSTANCE, "messages.upsert", "{\"keyId\": \"A\", oops");
    s.sim
        .emit_text(INSTANCE, "messages.upsert", r#"{"keyId": 5}"#);
    s.sim
        .emit_text(INSTANCE, "messages.upsert", "\u{1}\u{2}binary-ish");
    s.sim
        .emit(INSTANCE, "messages.upsert", &json!({"keyId": "good"}));
    let events = rec.wait_events(1).await;
    assert_eq!(events[0].1["keyId"], "good");
    assert_eq!(
        (events[0].0.seq, events[0].0.generation),
        (4, 1),
        "same connection, nothing skipped"
    );
    let bad = rec
        .wait("three reports", |r| {
            let u = r.undelivered();
            (u.len() >= 3).then_some(u)
        })
        .await;
    assert!(matches!(&bad[0].error, FrameProblem::InvalidJson(e) if e.excerpt.contains("oops")));
    match &bad[1].error {
        FrameProblem::WrongShape { error, data } => {
            assert_eq!(error.path, "keyId");
            assert_eq!(data["keyId"], 5, "the data is delivered with the error");
        }
        other => panic!("expected a wrong shape, got {other:?}"),
    }
    assert!(matches!(&bad[2].error, FrameProblem::InvalidJson(_)));
    let status = &sup.send(GetStatus).await.unwrap()[0];
    assert_eq!(
        (
            status.frames,
            status.events,
            status.decode_errors,
            status.generation
        ),
        (4, 1, 3, 1)
    );
}

/// Counts a burst and checks its order as it arrives, without keeping the events.
struct BurstCheck {
    next: u64,
    out_of_order: u64,
    done: Option<tokio::sync::oneshot::Sender<(u64, u64)>>,
    total: u64,
}

impl Actor for BurstCheck {
    type Context = Context<Self>;
}

impl Handler<Received<legacy::MessagesUpsert>> for BurstCheck {
    type Result = ();

    fn handle(&mut self, msg: Received<legacy::MessagesUpsert>, _: &mut Context<Self>) {
        let seq = msg.extra.get("burstSeq").and_then(|v| v.as_u64());
        if seq != Some(self.next) {
            self.out_of_order += 1;
        }
        self.next += 1;
        if self.next == self.total {
            if let Some(done) = self.done.take() {
                let _ = done.send((self.next, self.out_of_order));
            }
        }
    }
}

#[actix_rt::test]
async fn a_burst_of_100k_events_arrives_complete_and_in_order() {
    const N: u64 = 100_000;
    let s = start_sim(SimConfig::default());
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let check = BurstCheck {
        next: 0,
        out_of_order: 0,
        done: Some(done_tx),
        total: N,
    }
    .start();
    let token = Token::new(s.sim.mint_token(INSTANCE, None));
    let sup = Supervisor::builder()
        .config(fast_config())
        .source(Source::new(s.endpoint(), token).unwrap())
        .router(
            Router::builder()
                .actor::<legacy::MessagesUpsert>(check.recipient())
                .build(),
        )
        .start()
        .unwrap();
    subscribed(&s, "messages.upsert").await;
    let template: serde_json::Value =
        serde_json::from_str(include_str!("fixtures/legacy/messages.upsert.json")).unwrap();
    assert_eq!(s.sim.burst(INSTANCE, "messages.upsert", &template, N), N);
    let (received, out_of_order) = tokio::time::timeout(Duration::from_secs(120), done_rx)
        .await
        .expect("the burst did not arrive in time")
        .unwrap();
    assert_eq!((received, out_of_order), (N, 0));
    let status = &sup.send(GetStatus).await.unwrap()[0];
    assert_eq!((status.frames, status.events, status.generation), (N, N, 1));
}

#[actix_rt::test]
async fn fan_out_gives_every_handler_every_event_in_order() {
    let s = start_sim(SimConfig::default());
    let token = Token::new(s.sim.mint_token(INSTANCE, None));
    let recs: Vec<Recorder> = (0..3).map(|_| Recorder::default()).collect();
    let mut router = Router::builder();
    for r in &recs {
        router = router.actor::<legacy::MessagesUpsert>(r.clone().start().recipient());
    }
    let _sup = Supervisor::builder()
        .config(fast_config())
        .source(Source::new(s.endpoint(), token).unwrap())
        // Recorders send nothing: no delivery receipts to follow.
        .router(router.receipts(false).build())
        .start()
        .unwrap();
    subscribed(&s, "messages.upsert").await;
    for i in 0..20 {
        s.sim.emit(
            INSTANCE,
            "messages.upsert",
            &json!({"keyId": format!("K{i}")}),
        );
    }
    for r in &recs {
        let keys: Vec<String> = r
            .wait_events(20)
            .await
            .iter()
            .map(|(_, j)| j["keyId"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(keys, (0..20).map(|i| format!("K{i}")).collect::<Vec<_>>());
    }
    assert_eq!(s.sim.sockets().len(), 1, "three handlers, one socket");
}

#[actix_rt::test]
async fn duplicate_subscriptions_share_one_connection() {
    let s = start_sim(SimConfig::default());
    let token = Token::new(s.sim.mint_token(INSTANCE, None));
    let typed = Recorder::default();
    let raw = Recorder::default();
    let sup = Supervisor::builder()
        .config(fast_config())
        .source(Source::new(s.endpoint(), token.clone()).unwrap())
        .router(
            Router::builder()
                .actor::<legacy::MessagesUpsert>(typed.clone().start().recipient())
                .raw(
                    [EventKind::MessagesUpsert.into()],
                    raw.clone().start().recipient::<eventsock::core::RawEvent>(),
                )
                // Recorders send nothing: no delivery receipts to follow.
                .receipts(false)
                .build(),
        )
        .start()
        .unwrap();
    subscribed(&s, "messages.upsert").await;
    // A handler added while running shares the open connection too.
    let late = Recorder::default();
    sup.send(Subscribe(
        Router::builder()
            .actor::<legacy::MessagesUpsert>(late.clone().start().recipient())
            .receipts(false)
            .build(),
    ))
    .await
    .unwrap()
    .unwrap();
    s.sim
        .emit(INSTANCE, "messages.upsert", &json!({"keyId": "shared"}));
    typed.wait_events(1).await;
    late.wait_events(1).await;
    raw.wait("the raw event", |r| {
        r.records().into_iter().find_map(|x| match x {
            Record::Raw(e) => Some(e),
            _ => None,
        })
    })
    .await;
    assert_eq!(s.sim.accepted(), 1, "one handshake for three handlers");
    // A handler that cannot be served is refused and changes nothing: the next one is taken.
    let refused = sup
        .send(Subscribe(
            Router::builder()
                .raw(
                    [eventsock::core::EventName::parse("message.upsert")],
                    Recorder::default()
                        .start()
                        .recipient::<eventsock::core::RawEvent>(),
                )
                .build(),
        ))
        .await
        .unwrap();
    assert!(
        matches!(refused, Err(ClientError::Unserved { .. })),
        "{refused:?}"
    );
    let updates = Recorder::default();
    sup.send(Subscribe(
        Router::builder()
            .actor::<legacy::MessagesUpdate>(updates.clone().start().recipient())
            .build(),
    ))
    .await
    .unwrap()
    .unwrap();
    subscribed(&s, "messages.update").await;
    // Another supervisor in this process asking for the same stream is refused, not starved;
    // and being refused does not release the first supervisor's claim (asked twice).
    for _ in 0..2 {
        let other = Supervisor::builder()
            .source(Source::new(s.endpoint(), token.clone()).unwrap())
            .router(
                Router::builder()
                    .actor::<legacy::MessagesUpsert>(Recorder::default().start().recipient())
                    .build(),
            )
            .start();
        assert!(
            matches!(other, Err(ClientError::AlreadyHeld { .. })),
            "{other:?}"
        );
    }
}

#[actix_rt::test]
async fn shutdown_closes_with_1000_after_handling_what_was_read() {
    let s = start_sim(SimConfig::default());
    let (sup, rec) = supervise(&s, fast_config());
    subscribed(&s, "messages.upsert").await;
    for i in 0..500 {
        s.sim.emit(
            INSTANCE,
            "messages.upsert",
            &json!({"keyId": format!("K{i}")}),
        );
    }
    let status = sup.send(Shutdown).await.unwrap();
    let handled = rec.events().len() as u64;
    assert_eq!(
        status[0].frames, handled,
        "every frame read was handled before the reply"
    );
    assert_eq!(status[0].events, handled);
    assert_eq!(status[0].state, SubscriptionState::Stopped);
    until("the close frame", || !s.sim.client_closes().is_empty()).await;
    assert_eq!(s.sim.client_closes(), vec![Some(1000)]);
    assert!(
        !sup.connected() || sup.send(GetStatus).await.is_err(),
        "the supervisor stopped"
    );
}

/// A handler that takes 5 ms per event, and counts them.
struct Slow(Arc<AtomicUsize>);

impl Actor for Slow {
    type Context = Context<Self>;
}

impl Handler<Received<legacy::MessagesUpsert>> for Slow {
    type Result = ResponseFuture<()>;

    fn handle(
        &mut self,
        _: Received<legacy::MessagesUpsert>,
        _: &mut Context<Self>,
    ) -> Self::Result {
        let handled = self.0.clone();
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(5)).await;
            handled.fetch_add(1, Ordering::SeqCst);
        })
    }
}

/// Stopped while the reader waits for room in a full queue (the server's close is not read by
/// then): the frame it read still goes to the handlers, and every frame read is handled.
#[actix_rt::test]
async fn a_frame_waiting_for_room_at_shutdown_is_still_handled() {
    let s = start_sim(SimConfig::default());
    let mut config = fast_config();
    config.queue_capacity = 2;
    config.close_timeout = Duration::from_millis(50);
    let handled = Arc::new(AtomicUsize::new(0));
    let slow = Slow(handled.clone()).start();
    let token = Token::new(s.sim.mint_token(INSTANCE, None));
    let sup = Supervisor::builder()
        .config(config)
        .source(Source::new(s.endpoint(), token).unwrap())
        .router(
            Router::builder()
                .actor::<legacy::MessagesUpsert>(slow.recipient())
                .build(),
        )
        .start()
        .unwrap();
    subscribed(&s, "messages.upsert").await;
    for i in 0..400 {
        s.sim.emit(
            INSTANCE,
            "messages.upsert",
            &json!({"keyId": format!("K{i}")}),
        );
    }
    until("a few handled", || handled.load(Ordering::SeqCst) >= 5).await;
    let status = sup.send(Shutdown).await.unwrap();
    let handled = handled.load(Ordering::SeqCst) as u64;
    assert!(
        status[0].frames < 400,
        "stopped mid-stream: {}",
        status[0].frames
    );
    assert_eq!(
        (status[0].frames, status[0].dropped),
        (handled, 0),
        "every frame read was handled"
    );
}

#[actix_rt::test]
async fn frames_of_several_megabytes_are_accepted() {
    let s = start_sim(SimConfig::default());
    let (_sup, rec) = supervise(&s, fast_config());
    subscribed(&s, "messages.upsert").await;
    let text = "x".repeat(3 * 1024 * 1024);
    s.sim.emit(
        INSTANCE,
        "messages.upsert",
        &json!({"keyId": "big", "content": {"text": text}}),
    );
    let events = rec.wait_events(1).await;
    assert_eq!(
        events[0].1["content"]["text"].as_str().unwrap().len(),
        3 * 1024 * 1024
    );
}

#[actix_rt::test]
async fn too_many_restarts_give_the_subscription_up() {
    let s = start_sim(SimConfig::default());
    let mut config = fast_config();
    config.intensity = Intensity {
        max_restarts: 2,
        within: Duration::from_secs(60),
    };
    config.give_up = GiveUp::MarkFailed;
    let (sup, rec) = supervise(&s, config);
    for g in 1..=3 {
        rec.wait_lifecycle(&format!("generation {g}"), |k| connected(k, g))
            .await;
        subscribed(&s, "messages.upsert").await;
        s.sim.drop_all();
    }
    let gave_up = rec
        .wait_lifecycle("giving up", |k| matches!(k, LifecycleKind::GaveUp { .. }))
        .await;
    assert!(
        gave_up
            .to_string()
            .contains("3 connections dropped within 1m"),
        "{gave_up}"
    );
    let status = &sup.send(GetStatus).await.unwrap()[0];
    assert_eq!(status.state, SubscriptionState::Failed);
    assert_eq!(rec.count_lifecycle(|k| connected(k, 4)), 0);
}

#[actix_rt::test]
async fn v2_envelopes_give_the_instance_and_server_time() {
    let s = start_sim(SimConfig {
        protocol: Protocol::V2,
        ..Default::default()
    });
    let token = Token::new(s.sim.mint_token(INSTANCE, None));
    let rec = Recorder::default();
    let _sup = Supervisor::builder()
        .config(fast_config())
        .source(Source::new(s.endpoint(), token).unwrap().v2())
        .router(
            Router::builder()
                .actor::<v2::MessagesUpsert>(rec.clone().start().recipient())
                .build(),
        )
        .start()
        .unwrap();
    subscribed(&s, "messages.upsert").await;
    s.sim.emit(
        INSTANCE,
        "messages.upsert",
        &json!({"keyId": "V2", "content": {"text": "olá"}}),
    );
    let (meta, json) = rec.wait_events(1).await.remove(0);
    assert_eq!(json["keyId"], "V2");
    assert_eq!(meta.instance_info.unwrap().id, Some(1));
    assert!(meta.server_time.is_some());
}

#[actix_rt::test]
async fn a_handler_that_panics_does_not_take_the_connection_down() {
    struct Bomb;
    impl Actor for Bomb {
        type Context = Context<Self>;
    }
    impl Handler<Received<legacy::MessagesUpsert>> for Bomb {
        type Result = ();
        fn handle(&mut self, msg: Received<legacy::MessagesUpsert>, _: &mut Context<Self>) {
            if msg.key_id.as_deref() == Some("boom") {
                panic!("handler bug");
            }
        }
    }
    let s = start_sim(SimConfig::default());
    let token = Token::new(s.sim.mint_token(INSTANCE, None));
    let rec = Recorder::default();
    // The bomb lives on its own arbiter: a panic ends that actor, not the connection's thread.
    let arbiter = actix::Arbiter::new();
    let bomb = Bomb::start_in_arbiter(&arbiter.handle(), |_| Bomb);
    let sup = Supervisor::builder()
        .config(fast_config())
        .source(Source::new(s.endpoint(), token).unwrap())
        .router(
            Router::builder()
                .actor::<legacy::MessagesUpsert>(bomb.recipient())
                .actor::<legacy::MessagesUpsert>(rec.clone().start().recipient())
                .build(),
        )
        .start()
        .unwrap();
    subscribed(&s, "messages.upsert").await;
    for k in ["before", "boom", "after"] {
        s.sim
            .emit(INSTANCE, "messages.upsert", &json!({"keyId": k}));
    }
    let keys: Vec<_> = rec
        .wait_events(3)
        .await
        .iter()
        .map(|(m, j)| (m.generation, j["keyId"].clone()))
        .collect();
    assert_eq!(
        keys,
        vec![
            (1, json!("before")),
            (1, json!("boom")),
            (1, json!("after"))
        ]
    );
    let status = &sup.send(GetStatus).await.unwrap()[0];
    assert_eq!(
        (status.generation, status.state),
        (1, SubscriptionState::Connected)
    );
    assert!(status.handler_failures >= 1);
}

#[actix_rt::test]
async fn close_4001_from_the_server_is_retried_at_the_slowest_pace() {
    let s = start_sim(SimConfig {
        protocol: Protocol::V2,
        ..Default::default()
    });
    let token = Token::new(s.sim.mint_token(INSTANCE, None));
    let mut config = fast_config();
    config.backoff = eventsock::core::Backoff::exponential(
        Duration::from_millis(10),
        Duration::from_millis(300),
    );
    let rec = Recorder::default();
    let addr = rec.clone().start();
    let _sup = Supervisor::builder()
        .config(config)
        .source(Source::new(s.endpoint(), token).unwrap().v2())
        .router(
            Router::builder()
                .actor::<v2::MessagesUpsert>(addr.clone().recipient())
                .build(),
        )
        .lifecycle(addr.recipient())
        .start()
        .unwrap();
    rec.wait_lifecycle("generation 1", |k| connected(k, 1))
        .await;
    subscribed(&s, "messages.upsert").await;
    s.sim.close_all(4001, "token expired");
    let down = rec
        .wait_lifecycle("the close", |k| {
            matches!(k, LifecycleKind::Disconnected { .. })
        })
        .await;
    assert_eq!(
        down,
        LifecycleKind::Disconnected {
            code: Some(4001),
            reason: "closed by the server with 4001: token expired".into()
        }
    );
    let next = rec
        .wait_lifecycle("the retry", |k| {
            matches!(k, LifecycleKind::Reconnecting { .. })
        })
        .await;
    assert_eq!(
        next,
        LifecycleKind::Reconnecting {
            attempt: 1,
            delay: Duration::from_millis(300),
            cause: "closed by the server with 4001: token expired".into(),
        }
    );
}

/// Holds each event until the gate gives a permit, then counts it.
struct Gated {
    gate: Arc<tokio::sync::Semaphore>,
    handled: Arc<AtomicUsize>,
}

impl Actor for Gated {
    type Context = Context<Self>;
}

impl Handler<Received<legacy::MessagesUpsert>> for Gated {
    type Result = ResponseFuture<()>;

    fn handle(
        &mut self,
        _: Received<legacy::MessagesUpsert>,
        _: &mut Context<Self>,
    ) -> Self::Result {
        let (gate, handled) = (self.gate.clone(), self.handled.clone());
        Box::pin(async move {
            if let Ok(permit) = gate.acquire().await {
                permit.forget();
            }
            handled.fetch_add(1, Ordering::SeqCst);
        })
    }
}

#[actix_rt::test]
async fn drop_newest_keeps_reading_and_counts_what_it_drops() {
    const N: u64 = 50;
    let s = start_sim(SimConfig::default());
    let token = Token::new(s.sim.mint_token(INSTANCE, None));
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let handled = Arc::new(AtomicUsize::new(0));
    let mut config = fast_config();
    config.queue_capacity = 4;
    config.overflow = eventsock::client::Overflow::DropNewest;
    let sup = Supervisor::builder()
        .config(config)
        .source(Source::new(s.endpoint(), token).unwrap())
        .router(
            Router::builder()
                .actor::<legacy::MessagesUpsert>(
                    Gated {
                        gate: gate.clone(),
                        handled: handled.clone(),
                    }
                    .start()
                    .recipient(),
                )
                .build(),
        )
        .start()
        .unwrap();
    subscribed(&s, "messages.upsert").await;
    for i in 0..N {
        s.sim.emit(
            INSTANCE,
            "messages.upsert",
            &json!({"keyId": format!("K{i}")}),
        );
    }
    // The handler is stuck on the first event; the socket is still read to the end.
    let status = eventually("every frame read", || async {
        let status = sup.send(GetStatus).await.unwrap().remove(0);
        (status.frames == N).then_some(status)
    })
    .await;
    // Four held (the capacity counts a frame until it is handled: one in the handler, three
    // queued); the rest dropped.
    assert_eq!(status.dropped, N - 4, "dropped {}", status.dropped);
    gate.add_permits(N as usize);
    until("the held events", || {
        handled.load(Ordering::SeqCst) as u64 + status.dropped == N
    })
    .await;
    let status = sup.send(GetStatus).await.unwrap().remove(0);
    assert_eq!(
        status.events + status.dropped,
        N,
        "every frame is either handled or counted as dropped"
    );
}

#[actix_rt::test]
async fn more_than_a_hundred_subscriptions_all_connect() {
    // awc's connector allows 100 connections by default; WebSockets hold theirs forever.
    const N: usize = 150;
    let names: Vec<String> = (0..N).map(|i| format!("i{i}")).collect();
    let s = start_sim(SimConfig {
        instances: names.clone(),
        ..Default::default()
    });
    let mut builder = Supervisor::builder().config(fast_config());
    for n in &names {
        builder = builder
            .source(Source::new(s.endpoint(), Token::new(s.sim.mint_token(n, None))).unwrap());
    }
    let rec = Recorder::default();
    let sup = builder
        .router(
            Router::builder()
                .actor::<legacy::MessagesUpsert>(rec.clone().start().recipient())
                .build(),
        )
        .start()
        .unwrap();
    until("every subscription", || {
        names
            .iter()
            .all(|n| s.sim.is_subscribed(n, "messages.upsert"))
    })
    .await;
    for n in &names {
        s.sim.emit(n, "messages.upsert", &json!({"keyId": n}));
    }
    assert_eq!(rec.wait_events(N).await.len(), N);
    let status = sup.send(GetStatus).await.unwrap();
    assert!(status
        .iter()
        .all(|x| x.state == SubscriptionState::Connected && x.generation == 1));
}

#[actix_rt::test]
async fn pipelined_delivery_keeps_order_and_shutdown_still_waits_for_handlers() {
    let s = start_sim(SimConfig::default());
    let mut config = fast_config();
    config.delivery = eventsock::client::Delivery::Pipelined;
    let (sup, rec) = supervise(&s, config);
    subscribed(&s, "messages.upsert").await;
    for i in 0..2000 {
        s.sim.emit(
            INSTANCE,
            "messages.upsert",
            &json!({"keyId": format!("K{i}")}),
        );
    }
    rec.wait_events(2000).await;
    let keys: Vec<String> = rec
        .events()
        .iter()
        .map(|(_, j)| j["keyId"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(keys, (0..2000).map(|i| format!("K{i}")).collect::<Vec<_>>());
    for i in 0..500 {
        s.sim.emit(
            INSTANCE,
            "messages.upsert",
            &json!({"keyId": format!("L{i}")}),
        );
    }
    let status = sup.send(Shutdown).await.unwrap();
    assert_eq!(
        status[0].frames,
        rec.events().len() as u64,
        "every frame read was handled before the reply"
    );
}

/// After the server drops every socket, the subscriptions reconnect together (the first one up
/// brings the others forward): each must come back with exactly one connection, and a shutdown
/// must end. A reconnect timer cancelled by that wake-up used to run anyway when its time came in
/// the same turn of the supervisor, starting a second connection that nothing owned; it held the
/// subscription's queue, so `Shutdown` waited for it forever (`eventsock demo` hung about once
/// in 40 runs).
#[actix_rt::test]
async fn a_reconnect_storm_leaves_one_connection_per_subscription_and_shutdown_ends() {
    let s = start_sim(SimConfig::default());
    let token = Token::new(s.sim.mint_token(INSTANCE, None));
    let events: Vec<eventsock::core::EventName> = EventKind::ALL
        .iter()
        .filter(|k| k.served_on(eventsock::core::Channel::Legacy))
        .map(|k| (*k).into())
        .collect();
    let subscriptions = events.len();
    let rec = Recorder::default();
    let mut config = fast_config();
    // One delay for every subscription: their timers come due in the same turn.
    config.backoff =
        eventsock::core::Backoff::exponential(Duration::from_millis(50), Duration::from_millis(50));
    let sup = Supervisor::builder()
        .config(config)
        .source(Source::new(s.endpoint(), token).unwrap())
        .router(
            Router::builder()
                .raw::<eventsock::core::RawEvent>(events, rec.clone().start().recipient())
                .build(),
        )
        .start()
        .unwrap();
    let all_up = |generation: u64| {
        let sup = sup.clone();
        async move {
            sup.send(GetStatus).await.ok().filter(|st| {
                st.iter()
                    .all(|s| s.state == SubscriptionState::Connected && s.generation == generation)
            })
        }
    };
    eventually("every subscription connected", || all_up(1)).await;
    for round in 2..=6 {
        s.sim.drop_all();
        eventually("every subscription connected again", || all_up(round)).await;
        // A connection nothing owns would be one socket too many (the server keeps both open).
        until("one socket per subscription", || {
            s.sim.sockets().len() == subscriptions
        })
        .await;
    }
    let stopped = tokio::time::timeout(Duration::from_secs(20), sup.send(Shutdown)).await;
    assert!(stopped.is_ok(), "the shutdown did not end within 20 s");
}
