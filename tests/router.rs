//! One bot, one router: the same echo bot served live (the runtime on its built-in
//! simulator), from a recording, and by a NATS worker; and the runtime's metrics and health
//! checks, scraped over real HTTP while it runs.

mod common;

use common::nats_server::NatsServer;
use common::*;
use eventsock::handler::builtin::{FlushRecorder, Recorder, Replay};
use eventsock::handler::RouterBuilder;
use eventsock::nats::{GetIngestStats, Ingest, StreamConfig, Worker};
use eventsock::prelude::*;
use eventsock::sim::Sim;
use serde_json::Value;
use std::time::Duration;

/// The bot under test, written once: answers `!ping` with `pong`, quoting it.
fn echo_bot() -> RouterBuilder {
    Router::builder().on(|msg: Msg| async move {
        if !msg.is_from_me() && msg.text() == Some("!ping") {
            msg.cx.reply("pong").await?;
        }
        Ok(())
    })
}

/// A message from someone else, with `text` and message id `id`.
fn message(id: &str, text: &str) -> Value {
    let mut m: Value =
        serde_json::from_str(include_str!("fixtures/legacy/messages.upsert.json")).unwrap();
    m["keyId"] = id.into();
    m["content"]["text"] = text.into();
    m
}

/// The replies the simulator was sent that quote message `id`.
fn replies_to(sim: &Sim, id: &str) -> Vec<Value> {
    sim.history("codechat")
        .into_iter()
        .filter(|m| m["keyFromMe"] == true && m["content"]["contextInfo"]["stanzaId"] == id)
        .collect()
}

/// Waits until the simulator was sent `pong` quoting `id`.
async fn answered(sim: &Sim, id: &str) {
    until(&format!("the reply to {id}"), || {
        !replies_to(sim, id).is_empty()
    })
    .await;
    let replies = replies_to(sim, id);
    assert_eq!(replies.len(), 1, "one reply: {replies:?}");
    assert_eq!(replies[0]["content"]["text"], "pong");
    assert_eq!(replies[0]["keyRemoteJid"], "5511988887777@s.whatsapp.net");
}

#[actix_rt::test]
async fn the_bot_runs_live_on_the_built_in_simulator() {
    let (running, sim) = started(echo_bot().build(), Settings::default()).await;
    assert!(
        running.describe().contains("built-in simulator"),
        "{}",
        running.describe()
    );
    assert!(sim.emit("codechat", "messages.upsert", &message("LIVE1", "!ping")));
    answered(&sim, "LIVE1").await;
    let status = running.stop().await;
    // messages.upsert, and messages.update for the receipts of what the bot sends.
    let events: Vec<String> = status.iter().map(|s| s.event.to_string()).collect();
    assert_eq!(events, ["messages.upsert", "messages.update"]);
    assert!(status.iter().all(|s| s.state == SubscriptionState::Stopped));
}

#[actix_rt::test]
async fn the_same_bot_runs_from_a_recording() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("recording.jsonl");
    // Record a live stream: a ping and a message the bot does not answer.
    let recorder = actix::Actor::start(Recorder::create(&path).unwrap());
    let live = Router::builder()
        .raw(
            [EventKind::MessagesUpsert.into()],
            recorder.clone().recipient::<RawEvent>(),
        )
        .build();
    let (running, sim) = started(live, Settings::default()).await;
    sim.emit("codechat", "messages.upsert", &message("REC1", "!ping"));
    sim.emit("codechat", "messages.upsert", &message("REC2", "hello"));
    eventually("two events recorded", || {
        let recorder = recorder.clone();
        async move { (recorder.send(FlushRecorder).await.unwrap() == 2).then_some(()) }
    })
    .await;
    assert!(
        replies_to(&sim, "REC1").is_empty(),
        "nobody answers while recording"
    );

    // Replay it through the bot, answering through the simulator's REST API.
    let rest = RestClient::for_source(running.source());
    let report = Replay::open(&path, echo_bot().build())
        .rest(rest)
        .run()
        .await
        .unwrap();
    assert_eq!((report.records, report.delivered, report.failed), (2, 2, 0));
    answered(&sim, "REC1").await;
    assert!(replies_to(&sim, "REC2").is_empty());
    running.stop().await;
}

#[actix_rt::test]
async fn the_same_bot_runs_on_a_nats_worker() {
    let Some(nats) = NatsServer::started().await else {
        return;
    };
    // One process ingests the live stream into JetStream...
    let ingest = Ingest::start(&nats.url(), StreamConfig::default())
        .await
        .unwrap();
    let live = Router::builder()
        .raw(
            [EventKind::MessagesUpsert.into()],
            ingest.clone().recipient::<RawEvent>(),
        )
        .build();
    let (running, sim) = started(live, Settings::default()).await;
    sim.emit("codechat", "messages.upsert", &message("NATS1", "!ping"));
    eventually("the ping published", || {
        let ingest = ingest.clone();
        async move { (ingest.send(GetIngestStats).await.unwrap().published >= 1).then_some(()) }
    })
    .await;

    // ...and a worker runs the bot on it.
    let rest = RestClient::for_source(running.source());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = actix_rt::spawn(
        Worker::new(nats.url())
            .router(echo_bot().build())
            .rest(rest)
            .run(async {
                let _ = stopped.await;
            }),
    );
    answered(&sim, "NATS1").await;
    let _ = stop.send(());
    let stats = worker.await.unwrap().unwrap();
    assert!(stats.handled >= 1, "{stats:?}");
    assert_eq!(stats.failed, 0);
    running.stop().await;
}

/// GETs `path` from the metrics server: (status, body).
async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let mut response = awc::Client::default()
        .get(format!("http://{addr}{path}"))
        .send()
        .await
        .unwrap();
    let body = response.body().await.unwrap();
    (
        response.status().as_u16(),
        String::from_utf8(body.to_vec()).unwrap(),
    )
}

/// The value of the metric line that starts with `series` (name and labels).
fn value(page: &str, series: &str) -> Option<f64> {
    page.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[actix_rt::test]
async fn metrics_and_health_are_served_while_the_bot_runs() {
    let settings = Settings {
        metrics: Some("127.0.0.1:0".parse().unwrap()),
        ..Settings::default()
    };
    let bot = echo_bot()
        .on(|msg: Msg| async move {
            if msg.text() == Some("!fail") {
                return Err("asked to fail".into());
            }
            Ok(())
        })
        .build();
    let (running, sim) = started(bot, settings).await;
    let addr = running.metrics_addr().expect("metrics served");
    eventually("ready", || async {
        (get(addr, "/readyz").await.0 == 200).then_some(())
    })
    .await;

    // 3 pings (each answered: the 3 pongs come back on messages.upsert), 1 failure, 1 frame
    // that is not JSON: 8 frames, 7 events.
    for id in ["M1", "M2", "M3"] {
        sim.emit("codechat", "messages.upsert", &message(id, "!ping"));
    }
    sim.emit("codechat", "messages.upsert", &message("M4", "!fail"));
    sim.emit_text("codechat", "messages.upsert", "{not json");
    let sub = r#"{instance="codechat",event="messages.upsert"}"#;
    // Frames are counted when read, events once handled: wait for both.
    let page = eventually("8 frames read and 7 events handled", || async {
        let (status, page) = get(addr, "/metrics").await;
        assert_eq!(status, 200);
        (value(&page, &format!("eventsock_frames_total{sub}")) == Some(8.0)
            && value(&page, &format!("eventsock_events_total{sub}")) == Some(7.0))
        .then_some(page)
    })
    .await;
    let v = |series: &str| value(&page, series).unwrap_or_else(|| panic!("{series} in\n{page}"));
    assert_eq!(v(&format!("eventsock_events_total{sub}")), 7.0);
    assert_eq!(v(&format!("eventsock_bad_frames_total{sub}")), 1.0);
    assert_eq!(v(&format!("eventsock_dropped_total{sub}")), 0.0);
    assert_eq!(v(&format!("eventsock_restarts_total{sub}")), 0.0);
    assert_eq!(v(&format!("eventsock_displacements_total{sub}")), 0.0);
    assert_eq!(v(&format!("eventsock_queue_bytes{sub}")), 0.0);
    let state = |s: &str| {
        v(&format!(
            r#"eventsock_subscription_state{{instance="codechat",event="messages.upsert",state="{s}"}}"#
        ))
    };
    assert_eq!((state("connected"), state("backing_off")), (1.0, 0.0));
    let handler = |name: &str, n: &str| {
        v(&format!(
            r#"eventsock_handler_{name}_total{{handler="{n}"}}"#
        ))
    };
    assert_eq!(handler("handled", "legacy::MessagesUpsert#0"), 7.0);
    assert_eq!(handler("failed", "legacy::MessagesUpsert#0"), 0.0);
    assert_eq!(handler("handled", "legacy::MessagesUpsert#1"), 6.0);
    assert_eq!(handler("failed", "legacy::MessagesUpsert#1"), 1.0);
    assert!(page.ends_with("# EOF\n"), "{page}");
    // The 3 pongs went through the outbox (counted once their answers are in).
    let outbox = |name: &str| format!(r#"eventsock_outbox_{name}{{instance="codechat"}}"#);
    let page = eventually("3 sent by the outbox", || async {
        let page = get(addr, "/metrics").await.1;
        (value(&page, &outbox("sent_total")) == Some(3.0)).then_some(page)
    })
    .await;
    let v = |series: &str| value(&page, series).unwrap_or_else(|| panic!("{series} in\n{page}"));
    assert_eq!(
        (v(&outbox("queued")), v(&outbox("failed_total"))),
        (0.0, 0.0)
    );
    // Histograms: every delivery timed (the failed one too), every message's age taken, every
    // send's latency.
    let hist = |name: &str, labels: &str| {
        (
            v(&format!("eventsock_{name}_count{{{labels}}}")),
            v(&format!("eventsock_{name}_sum{{{labels}}}")),
        )
    };
    for (n, deliveries) in [("0", 7.0), ("1", 7.0)] {
        let labels = format!(r#"handler="legacy::MessagesUpsert#{n}""#);
        let (count, sum) = hist("handler_duration_seconds", &labels);
        assert_eq!(count, deliveries, "{page}");
        assert!((0.0..10.0).contains(&sum), "{sum}");
        // The frame that is not JSON reached no handler. Of the 7 messages, the 4 pings (the
        // fixture's, sent in May 2025) are over a day old, and the 3 pongs are new.
        let (aged, _) = hist("handler_event_age_seconds", &labels);
        assert_eq!(aged, 7.0, "{page}");
        let age_bucket = |le: &str| {
            v(&format!(
                r#"eventsock_handler_event_age_seconds_bucket{{le="{le}",{labels}}}"#
            ))
        };
        assert_eq!(
            (age_bucket("60.0"), age_bucket("86400.0")),
            (3.0, 3.0),
            "{page}"
        );
        assert_eq!(age_bucket("+Inf"), 7.0);
    }
    let (sends, latency) = hist("outbox_send_latency_seconds", r#"instance="codechat""#);
    assert_eq!(sends, 3.0, "{page}");
    assert!(latency > 0.0, "{latency}");
    // The simulator acknowledged each pong as the server does (SERVER_ACK, then DELIVERY_ACK)
    // on messages.update, which the router subscribed to: the outbox followed them.
    let receipts =
        |s: &str| format!(r#"eventsock_outbox_receipts_total{{instance="codechat",status="{s}"}}"#);
    let page = eventually("the pongs' receipts", || async {
        let page = get(addr, "/metrics").await.1;
        (value(&page, &receipts("DELIVERY_ACK")) == Some(3.0)).then_some(page)
    })
    .await;
    let v = |series: &str| value(&page, series).unwrap_or_else(|| panic!("{series} in\n{page}"));
    assert_eq!(
        ["ERROR", "SERVER_ACK", "DELIVERY_ACK", "READ"].map(|s| v(&receipts(s))),
        [0.0, 3.0, 3.0, 0.0]
    );
    let delivered = v(r#"eventsock_outbox_delivery_seconds_count{instance="codechat"}"#);
    assert_eq!(delivered, 3.0, "{page}");
    println!(
        "{}",
        page.lines()
            .filter(|l| l.contains("_seconds_") && !l.contains("_bucket"))
            .collect::<Vec<_>>()
            .join("\n")
    );

    assert_eq!(get(addr, "/healthz").await, (200, "ok\n".to_owned()));
    let (status, body) = get(addr, "/readyz").await;
    assert_eq!(
        (status, body.as_str()),
        (200, "ready: 2 subscriptions up\n")
    );
    running.stop().await;
}

#[actix_rt::test]
async fn readiness_says_what_is_not_up() {
    // A server that refuses every connection: the subscription never comes up.
    let sim = start_sim(eventsock::sim::SimConfig::default());
    let token = sim.sim.mint_token("codechat", None);
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let settings = Settings {
        url: Some(url),
        token: Some(Token::new(token)),
        metrics: Some("127.0.0.1:0".parse().unwrap()),
        config: fast_config(),
        ..Settings::default()
    };
    let running = echo_bot().build().start(settings).await.unwrap();
    let addr = running.metrics_addr().unwrap();
    let body = eventually("not ready, with the reason", || async {
        let (status, body) = get(addr, "/readyz").await;
        assert_eq!(status, 503);
        body.contains("cannot connect").then_some(body)
    })
    .await;
    assert!(body.starts_with("codechat messages.upsert: "), "{body}");
    assert_eq!(get(addr, "/healthz").await.0, 200);
    running.stop().await;
}

#[actix_rt::test]
async fn hostile_clients_of_the_metrics_server_stop_neither_it_nor_the_bot() {
    use tokio::io::AsyncWriteExt;
    let settings = Settings {
        metrics: Some("127.0.0.1:0".parse().unwrap()),
        ..Settings::default()
    };
    let running = echo_bot().build().start(settings).await.unwrap();
    let addr = running.metrics_addr().unwrap();
    let sim = running.sim().unwrap().clone();
    let connect = || tokio::net::TcpStream::connect(addr);
    // Garbage; a request that never ends; a header of 1 MiB; requests never read.
    let mut garbage = connect().await.unwrap();
    garbage
        .write_all(b"\x00\xff NOT HTTP \r\n\r\n")
        .await
        .unwrap();
    let mut endless = connect().await.unwrap();
    endless
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut huge = connect().await.unwrap();
    let header = format!(
        "GET /metrics HTTP/1.1\r\nX-Big: {}\r\n",
        "a".repeat(1 << 20)
    );
    let _ = huge.write_all(header.as_bytes()).await; // the server may hang up midway
    let mut unread = connect().await.unwrap();
    let mut requests = Vec::new();
    for _ in 0..2000 {
        requests.extend_from_slice(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    }
    let _ = tokio::time::timeout(DEADLINE, unread.write_all(&requests)).await;

    assert_eq!(get(addr, "/healthz").await, (200, "ok\n".to_owned()));
    until("the socket", || {
        sim.is_subscribed("codechat", "messages.upsert")
    })
    .await;
    sim.emit("codechat", "messages.upsert", &message("HOSTILE1", "!ping"));
    answered(&sim, "HOSTILE1").await;
    running.stop().await;
    drop((garbage, endless, huge, unread));
}

#[actix_rt::test]
async fn a_bot_whose_subscriptions_all_gave_up_says_so_and_is_not_healthy() {
    let mut config = fast_config();
    config.intensity = eventsock::core::Intensity {
        max_restarts: 1,
        within: std::time::Duration::from_secs(60),
    };
    let settings = Settings {
        metrics: Some("127.0.0.1:0".parse().unwrap()),
        config,
        ..Settings::default()
    };
    let running = echo_bot().build().start(settings).await.unwrap();
    let addr = running.metrics_addr().unwrap();
    let sim = running.sim().unwrap().clone();
    // Two connections of each subscription (the messages and their receipts) that drop right
    // after they came up: more than the intensity allows. Both are awaited before each drop,
    // or a subscription slower to come back misses the second one and never gives up.
    let events = ["messages.upsert", "messages.update"];
    for _ in 0..2 {
        until("both sockets", || {
            events.iter().all(|e| sim.is_subscribed("codechat", e))
        })
        .await;
        assert_eq!(get(addr, "/healthz").await.0, 200);
        sim.drop_all();
        until("the drop", || {
            events.iter().all(|e| !sim.is_subscribed("codechat", e))
        })
        .await;
    }
    tokio::time::timeout(DEADLINE, running.given_up())
        .await
        .expect("given up within the deadline");
    assert_eq!(
        get(addr, "/healthz").await,
        (503, "every subscription has given up\n".to_owned())
    );
    let status = running.stop().await;
    assert_eq!(status[0].state, SubscriptionState::Failed);
}

/// The echo bot written three ways: a closure, a pipeline (a filter and a branch of commands),
/// and an actor of its own. Each runs alone on a simulator and is sent four pings in each of
/// three chats, interleaved: every ping is answered once, quoting it, each chat's answers come
/// in the order of its pings, and no chat is answered faster than the router's pacing allows.
#[actix_rt::test]
async fn one_bot_written_three_ways_answers_once_paced_and_in_order() {
    use actix::prelude::{Actor, Context, Handler, ResponseFuture};

    struct Echo;
    impl Actor for Echo {
        type Context = Context<Self>;
    }
    impl Handler<Msg> for Echo {
        type Result = ResponseFuture<()>;
        fn handle(&mut self, msg: Msg, _: &mut Context<Self>) -> Self::Result {
            Box::pin(async move {
                if !msg.is_from_me() && msg.text() == Some("!ping") {
                    msg.cx.reply("pong").await.expect("queued");
                }
            })
        }
    }

    let per_chat = Duration::from_millis(150);
    let pacing = Pacing::default().rate(50.0).per_chat(per_chat).jitter(0.0);
    let closure = echo_bot().pacing(pacing.clone());
    let reply = |text: &'static str| {
        Route::from_fn(move |m: Msg| async move { m.cx.reply(text).await.map(drop) })
    };
    let pipeline = Router::builder().pacing(pacing.clone()).route(
        Pipeline::<Msg>::new()
            .incoming()
            .filter(|m| m.text().is_some())
            .branch([
                Pipeline::new().command("!ping").to_route(reply("pong")),
                Pipeline::new()
                    .command("!help")
                    .to_route(reply("try !ping")),
            ]),
    );
    let actor = Router::builder()
        .pacing(pacing.clone())
        .actor(Echo.start().recipient());

    let chats = ["5511900000001", "5511900000002", "5511900000003"];
    for (way, router) in [
        ("closure", closure),
        ("pipeline", pipeline),
        ("actor", actor),
    ] {
        let (running, sim) = started(router.build(), Settings::default()).await;
        let mut pings: Vec<(String, String)> = Vec::new();
        for n in 0..4 {
            for chat in chats {
                let id = format!("{way}-{chat}-{n}");
                let mut m = message(&id, "!ping");
                m["keyRemoteJid"] = format!("{chat}@s.whatsapp.net").into();
                sim.emit("codechat", "messages.upsert", &m);
                pings.push((format!("{chat}@s.whatsapp.net"), id));
            }
        }
        // Something else the bot must not answer: it shows a late extra answer, if any.
        sim.emit(
            "codechat",
            "messages.upsert",
            &message(&format!("{way}-x"), "hello"),
        );
        until(&format!("the {way}'s 12 answers"), || {
            sim.sent().len() >= 12
        })
        .await;
        let status = running.stop().await;
        assert_eq!(status[0].handler_failures, 0, "{way}");
        let sent = sim.sent();
        assert_eq!(
            sent.len(),
            12,
            "{way}: one answer per ping, no more: {sent:?}"
        );
        for chat in chats {
            let jid = format!("{chat}@s.whatsapp.net");
            let answers: Vec<_> = sent.iter().filter(|s| s.chat == jid).collect();
            let quoted: Vec<_> = answers.iter().map(|s| s.quoted.clone().unwrap()).collect();
            let asked: Vec<_> = pings
                .iter()
                .filter(|(c, _)| *c == jid)
                .map(|(_, id)| id.clone())
                .collect();
            assert_eq!(
                quoted, asked,
                "{way}: {chat}'s answers in the order of its pings"
            );
            assert!(
                answers.iter().all(|s| s.text == "pong"),
                "{way}: {answers:?}"
            );
            for pair in answers.windows(2) {
                let gap = pair[1].at_ms - pair[0].at_ms;
                assert!(
                    gap >= per_chat.as_millis() as u64,
                    "{way}: {chat} answered {gap} ms apart, under its pace of {} ms",
                    per_chat.as_millis()
                );
            }
        }
    }
}
