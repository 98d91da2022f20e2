//! The client against servers that misbehave: oversized and endless frames, peers that never
//! read, panicking decoders, rate limits, odd handshakes, refusals whose cause must be found.
//! Each server is real (raw TCP on 127.0.0.1:0, or the simulator) and each test fails without the
//! fix it covers.

mod common;

use actix::prelude::*;
use common::hostile::{self, Request, Stats};
use common::*;
use eventsock::client::{
    ClientConfig, ClientError, GetStatus, LifecycleKind, Shutdown, Subscribe, Supervisor,
};
use eventsock::core::Source;
use eventsock::core::{legacy, Backoff, Channel, Endpoint, EventKind, FrameProblem, Token};
use eventsock::sim::SimConfig;
use serde_json::json;
use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

const INSTANCE: &str = "codechat";

/// A token the hostile servers take (they check nothing).
fn any_token() -> Token {
    Token::new(eventsock::sim::Sim::new(SimConfig::default()).mint_token(INSTANCE, None))
}

fn hostile_source(h: &hostile::Hostile) -> Source {
    Source::new(Endpoint::parse(&h.url()).unwrap(), any_token()).unwrap()
}

fn disconnected_because(rec: &Recorder) -> Option<String> {
    rec.lifecycle().into_iter().find_map(|k| match k {
        LifecycleKind::Disconnected { reason, .. } => Some(reason),
        _ => None,
    })
}

#[actix_rt::test]
async fn a_frame_announcing_2_62_bytes_fails_the_connection_at_once() {
    // A text frame whose header declares 2^62 bytes, then as much payload as the client takes.
    let server = hostile::serve(|mut s: TcpStream, r: Request, stats: &Stats| {
        if !hostile::upgrade(&mut s, &r) {
            return;
        }
        let mut header = vec![0x81];
        hostile::header_len(&mut header, 1 << 62);
        if !hostile::send(&mut s, &header, stats) {
            return;
        }
        hostile::flood(&mut s, &[b' '; 64 * 1024], stats);
    });
    let (sup, rec) = supervise_with(hostile_source(&server), fast_config());
    let reason = rec
        .wait("the connection to fail", disconnected_because)
        .await;
    assert!(
        reason.contains("announced a frame of 4611686018427387904 bytes"),
        "{reason}"
    );
    // The client hung up instead of buffering: the server could not write more than what the
    // socket buffers hold.
    until("the server to see the client gone", || {
        server.stats.peer_gone.load(Ordering::Acquire)
    })
    .await;
    let written = server.written();
    println!("the server wrote {written} bytes before the client hung up");
    assert!(written < 64 * 1024 * 1024, "{written} bytes were taken");
    sup.send(Shutdown).await.unwrap();
}

/// Holds each event until the test opens the gate.
struct Gated(Arc<tokio::sync::Semaphore>);

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
        let gate = self.0.clone();
        Box::pin(async move {
            gate.acquire().await.unwrap().forget();
        })
    }
}

#[actix_rt::test]
async fn the_queue_is_bounded_in_bytes() {
    const FRAME: usize = 1024 * 1024;
    const FRAMES: usize = 40;
    // 40 frames of 1 MiB, written as fast as the client takes them.
    let server = hostile::serve(|mut s: TcpStream, r: Request, stats: &Stats| {
        if !hostile::upgrade(&mut s, &r) {
            return;
        }
        let body = format!("{{\"keyId\":\"{}\"}}", "x".repeat(FRAME - 12));
        let one = hostile::frame(1, body.as_bytes());
        for _ in 0..FRAMES {
            if !hostile::send(&mut s, &one, stats) {
                return;
            }
        }
        hostile::hold(stats);
    });
    let mut config = fast_config();
    config.queue_bytes = 4 * FRAME;
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let handler = Gated(gate.clone()).start();
    let sup = Supervisor::builder()
        .config(config)
        .source(hostile_source(&server))
        .router(
            Router::builder()
                .actor::<legacy::MessagesUpsert>(handler.recipient())
                .build(),
        )
        .start()
        .unwrap();
    // The handler holds the first event: the client must stop reading once 4 MiB wait.
    let written = hostile::until_stalled(&server.stats).await;
    let status = &sup.send(GetStatus).await.unwrap()[0];
    println!(
        "stalled: the server wrote {} MiB; the client read {} frames and holds {} MiB",
        written / FRAME as u64,
        status.frames,
        status.queued_bytes / FRAME as u64
    );
    assert!(status.queued_bytes <= 4 * FRAME as u64, "{status:?}");
    // In hand: the one being handled, 3 more within the byte budget, one waiting for room.
    assert!(status.frames <= 6, "{} frames read", status.frames);
    // The stream goes on once the handler does.
    gate.add_permits(FRAMES);
    eventually("every frame", || {
        let sup = sup.clone();
        async move {
            let s = &sup.send(GetStatus).await.unwrap()[0];
            (s.events == FRAMES as u64).then_some(())
        }
    })
    .await;
}

#[actix_rt::test]
async fn a_peer_that_pings_and_never_reads_is_found_dead_and_shutdown_still_works() {
    // Pings as fast as it can and reads nothing: not our pings, not our pongs.
    let server = hostile::serve(|mut s: TcpStream, r: Request, stats: &Stats| {
        if !hostile::upgrade(&mut s, &r) {
            return;
        }
        hostile::flood(&mut s, &hostile::frame(9, &[7; 125]), stats);
    });
    let mut config = fast_config();
    config.ping_interval = Duration::from_millis(200);
    config.pong_timeout = Duration::from_secs(1);
    let (sup, rec) = supervise_with(hostile_source(&server), config);
    let reason = rec
        .wait(
            "the unanswered ping to end the connection",
            disconnected_because,
        )
        .await;
    assert_eq!(reason, "no answer to a ping within 1s: the link is dead");

    // A shutdown while the next connection floods the same way completes anyway: once the
    // server has sent 16 MiB of pings, whatever we write sits in full buffers.
    rec.wait_lifecycle("the next connection", |k| connected(k, 2))
        .await;
    let from = server.written();
    until("16 MiB of pings", || {
        server.written() > from + 16 * 1024 * 1024
    })
    .await;
    let asked = Instant::now();
    tokio::time::timeout(DEADLINE, sup.send(Shutdown))
        .await
        .expect("shutdown hung behind a write")
        .unwrap();
    println!(
        "shutdown with a peer that never reads took {} ms",
        asked.elapsed().as_millis()
    );
}

/// A payload type whose decoding panics on a frame with `"boom"`: a stand-in for a bug in a
/// payload type, which must cost that frame only.
#[derive(Debug, Clone, serde::Serialize)]
struct Fragile(serde_json::Value);

impl<'de> serde::Deserialize<'de> for Fragile {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        assert!(v.get("boom").is_none(), "a decoder bug");
        Ok(Fragile(v))
    }
}

impl eventsock::core::Payload for Fragile {
    const CHANNEL: Channel = Channel::Legacy;
    const EVENTS: &'static [EventKind] = &[EventKind::MessagesUpsert];
}

#[actix_rt::test]
async fn a_panic_while_decoding_costs_one_frame_and_the_stream_goes_on() {
    let s = start_sim(SimConfig::default());
    let rec = Recorder::default();
    let addr = rec.clone().start();
    let sup = Supervisor::builder()
        .config(fast_config())
        .source(Source::new(s.endpoint(), Token::new(s.sim.mint_token(INSTANCE, None))).unwrap())
        .router(
            Router::builder()
                .actor::<Fragile>(addr.clone().recipient())
                .undelivered(addr.clone().recipient())
                .build(),
        )
        .lifecycle(addr.recipient())
        .start()
        .unwrap();
    subscribed(&s, "messages.upsert").await;
    for data in [
        json!({"keyId": "1"}),
        json!({"boom": 1}),
        json!({"keyId": "2"}),
    ] {
        s.sim.emit(INSTANCE, "messages.upsert", &data);
    }
    let events = rec.wait_events(2).await;
    assert_eq!(events[0].1["keyId"], "1");
    assert_eq!(events[1].1["keyId"], "2");
    let problem = rec
        .wait("the panic report", |r| r.undelivered().first().cloned())
        .await;
    match &problem.error {
        FrameProblem::Panicked { message, excerpt } => {
            assert!(message.contains("a decoder bug"), "{message}");
            assert_eq!(excerpt, r#"{"boom":1}"#);
        }
        other => panic!("expected a panic report, got {other}"),
    }
    assert_eq!(problem.meta.seq, 2);
    let status = &sup.send(GetStatus).await.unwrap()[0];
    assert_eq!((status.generation, status.restarts), (1, 0), "no reconnect");
}

#[actix_rt::test]
async fn a_v2_date_of_i64_min_is_a_bad_frame_not_a_dead_subscription() {
    // `n.abs()` on i64::MIN panicked here (with overflow checks) and killed the dispatcher.
    let s = start_sim(SimConfig {
        protocol: eventsock::core::Protocol::V2,
        ..SimConfig::default()
    });
    let rec = Recorder::default();
    let addr = rec.clone().start();
    let _sup = Supervisor::builder()
        .config(fast_config())
        .source(
            Source::new(s.endpoint(), Token::new(s.sim.mint_token(INSTANCE, None)))
                .unwrap()
                .v2(),
        )
        .router(
            Router::builder()
                .actor::<eventsock::core::v2::ChatsUpdated>(addr.clone().recipient())
                .undelivered(addr.clone().recipient())
                .build(),
        )
        .lifecycle(addr.recipient())
        .start()
        .unwrap();
    until("chats.updated to be subscribed", || {
        s.sim.is_subscribed(INSTANCE, "chats.updated")
    })
    .await;
    let min = i64::MIN;
    s.sim.emit(
        INSTANCE,
        "chats.updated",
        &json!({"chatJid": "A", "dateTime": min}),
    );
    s.sim.emit(
        INSTANCE,
        "chats.updated",
        &json!({"chatJid": "B", "dateTime": 1747310400}),
    );
    let events = rec.wait_events(1).await;
    assert_eq!(events[0].1["chatJid"], "B");
    let problem = rec
        .wait("the bad frame's report", |r| {
            r.undelivered().first().cloned()
        })
        .await;
    assert!(
        problem
            .error
            .to_string()
            .contains("is not a valid epoch time"),
        "{}",
        problem.error
    );
    assert_eq!(rec.count_lifecycle(|k| connected(k, 2)), 0, "no reconnect");
}

/// Answers every request with `answer`, then closes.
fn always(answer: &'static str) -> hostile::Hostile {
    hostile::serve(move |mut s: TcpStream, _: Request, _: &Stats| {
        let _ = s.write_all(answer.as_bytes());
    })
}

fn retry_delays(rec: &Recorder) -> Vec<(Duration, String)> {
    rec.lifecycle()
        .into_iter()
        .filter_map(|k| match k {
            LifecycleKind::Reconnecting { delay, cause, .. } => Some((delay, cause)),
            _ => None,
        })
        .collect()
}

#[actix_rt::test]
async fn too_many_requests_waits_for_retry_after_up_to_the_longest_backoff() {
    let server =
        always("HTTP/1.1 429 Too Many Requests\r\nRetry-After: 120\r\nContent-Length: 0\r\n\r\n");
    let mut config = fast_config();
    config.backoff = Backoff::exponential(Duration::from_millis(10), Duration::from_secs(3));
    let (sup, rec) = supervise_with(hostile_source(&server), config);
    let (delay, cause) = rec
        .wait("a retry", |r| retry_delays(r).first().cloned())
        .await;
    // Retry-After said 120 s; the longest backoff (3 s) caps it. Without it: 10 ms.
    assert_eq!(delay, Duration::from_secs(3));
    assert_eq!(
        cause, "handshake refused: 429 Too Many Requests",
        "the cause is on the retry line"
    );
    let status = &sup.send(GetStatus).await.unwrap()[0];
    assert_eq!(status.attempts, 1);
}

#[actix_rt::test]
async fn a_101_over_http_1_0_is_refused() {
    let server = hostile::serve(|mut s: TcpStream, r: Request, stats: &Stats| {
        let _ = s.write_all(hostile::switching(&r, "HTTP/1.0").as_bytes());
        hostile::hold(stats);
    });
    let (_sup, rec) = supervise_with(hostile_source(&server), fast_config());
    let (_, cause) = rec
        .wait("a retry", |r| retry_delays(r).first().cloned())
        .await;
    assert!(
        cause.contains("switched to WebSocket over HTTP/1.0; only HTTP/1.1 can carry an upgrade"),
        "{cause}"
    );
    assert_eq!(rec.count_lifecycle(|k| connected(k, 1)), 0);
}

#[actix_rt::test]
async fn a_401_says_whether_the_token_or_the_path_is_wrong() {
    let s = start_sim(SimConfig::default());
    let good = Token::new(s.sim.mint_token(INSTANCE, None));
    let bad = foreign_token();
    let first_retry = |endpoint: Endpoint, token: Token| async move {
        let (sup, rec) = supervise_with(Source::new(endpoint, token).unwrap(), fast_config());
        let cause = rec
            .wait("a retry", |r| retry_delays(r).first().cloned())
            .await
            .1;
        sup.send(Shutdown).await.unwrap();
        cause
    };

    let cause = first_retry(s.endpoint(), bad).await;
    assert!(
        cause.starts_with("handshake refused: 401 Unauthorized: the server refuses this token (REST answered 401 too)"),
        "{cause}"
    );

    // A path prefix the server does not have: its REST routes are not there either.
    let prefixed = Endpoint::parse(&format!("{}/api", s.url())).unwrap();
    let cause = first_retry(prefixed, good.clone()).await;
    assert!(
        cause.contains("the server has no /instance/connectionState route (404)"),
        "{cause}"
    );

    // A server that takes the token over REST but refuses the socket: the path or the event.
    let picky = hostile::serve(|mut s: TcpStream, r: Request, _: &Stats| {
        let answer = if r.is_upgrade() {
            "HTTP/1.1 401 Unauthorized\r\n\r\n"
        } else {
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 17\r\n\r\n{\"state\":\"open\"}\n"
        };
        let _ = s.write_all(answer.as_bytes());
    });
    let cause = first_retry(Endpoint::parse(&picky.url()).unwrap(), good.clone()).await;
    assert!(
        cause.contains("the server accepts this token (GET /instance/connectionState answered 200), so it refused the socket's path or event"),
        "{cause}"
    );

    // The newer server answers 404 to the legacy path.
    let v2 = start_sim(SimConfig {
        protocol: eventsock::core::Protocol::V2,
        ..SimConfig::default()
    });
    let token = Token::new(v2.sim.mint_token(INSTANCE, None));
    let cause = first_retry(v2.endpoint(), token).await;
    assert!(cause.contains("use its protocol, v2"), "{cause}");
}

#[actix_rt::test]
async fn impossible_settings_and_unserved_events_are_refused_when_built() {
    let s = start_sim(SimConfig::default());
    let source = Source::new(s.endpoint(), Token::new(s.sim.mint_token(INSTANCE, None))).unwrap();
    let rec = Recorder::default().start();
    let mut config = ClientConfig::default();
    config.ping_interval = Duration::ZERO;
    let err = Supervisor::builder()
        .config(config)
        .source(source.clone())
        .router(
            Router::builder()
                .actor::<legacy::MessagesUpsert>(rec.clone().recipient())
                .build(),
        )
        .start()
        .unwrap_err();
    assert!(matches!(err, ClientError::Config(_)));
    assert_eq!(
        err.to_string(),
        "impossible client setting: ping_interval is zero: it must be at least a millisecond"
    );

    let err = Supervisor::builder()
        .source(source)
        .router(
            Router::builder()
                .raw(
                    [eventsock::core::EventName::parse("message.upsert")],
                    rec.recipient::<eventsock::core::RawEvent>(),
                )
                .build(),
        )
        .start()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "the legacy CodeChat server does not serve `message.upsert`; did you mean `messages.upsert`?"
    );
}

/// Forwards connections to `target` while up; while down, accepts and closes at once, and
/// going down cuts every forwarded connection.
struct Proxy {
    addr: std::net::SocketAddr,
    up: Arc<std::sync::atomic::AtomicBool>,
    live: Arc<std::sync::Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    fn start(target: std::net::SocketAddr) -> Proxy {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let up = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let live: Arc<std::sync::Mutex<Vec<TcpStream>>> = Arc::default();
        let (up2, live2) = (up.clone(), live.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if !up2.load(Ordering::Acquire) {
                    continue; // dropped: closed at once
                }
                let Ok(server) = TcpStream::connect(target) else {
                    continue;
                };
                live2.lock().unwrap().push(client.try_clone().unwrap());
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        Proxy { addr, up, live }
    }

    fn down(&self) {
        self.up.store(false, Ordering::Release);
        for s in self.live.lock().unwrap().drain(..) {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }

    fn up(&self) {
        self.up.store(true, Ordering::Release);
    }
}

#[actix_rt::test]
async fn when_one_subscription_reconnects_its_waiting_siblings_follow() {
    let s = start_sim(SimConfig::default());
    let proxy = Proxy::start(s.url().trim_start_matches("http://").parse().unwrap());
    let endpoint = Endpoint::parse(&format!("http://{}", proxy.addr)).unwrap();
    let token = Token::new(s.sim.mint_token(INSTANCE, None));
    let mut config = fast_config();
    // After a drop each subscription waits a minute: only the wake-up brings them back sooner.
    config.backoff = Backoff::Fixed(Duration::from_secs(60));
    let rec = Recorder::default();
    let addr = rec.clone().start();
    let sup = Supervisor::builder()
        .config(config)
        .source(Source::new(endpoint, token).unwrap())
        .router(
            Router::builder()
                .actor::<legacy::MessagesUpsert>(addr.clone().recipient())
                .actor::<legacy::ContactsUpsert>(addr.clone().recipient())
                .actor::<legacy::ChatsUpsert>(addr.clone().recipient())
                // Three subscriptions exactly: the recorder sends nothing, no receipts.
                .receipts(false)
                .build(),
        )
        .lifecycle(addr.clone().recipient())
        .start()
        .unwrap();
    rec.wait("three first connections", |r| {
        (r.count_lifecycle(|k| connected(k, 1)) >= 3).then_some(())
    })
    .await;
    proxy.down();
    rec.wait("three waits of a minute", |r| {
        (retry_delays(r).len() >= 3).then_some(())
    })
    .await;
    proxy.up();
    // A new subscription connects at once; its success wakes the three.
    let back = Instant::now();
    sup.send(Subscribe(
        Router::builder()
            .actor::<legacy::MessagesUpdate>(addr.recipient())
            .build(),
    ))
    .await
    .unwrap()
    .unwrap();
    rec.wait("the three second connections", |r| {
        (r.count_lifecycle(|k| connected(k, 2)) >= 3).then_some(())
    })
    .await;
    println!(
        "all three back {} ms after the server was (their backoff: 60 s)",
        back.elapsed().as_millis()
    );
    let statuses = sup.send(GetStatus).await.unwrap();
    let reconnected = statuses.iter().filter(|st| st.generation == 2).count();
    assert_eq!(reconnected, 3, "{statuses:?}");
}

#[actix_rt::test]
async fn a_message_with_no_recipient_is_never_sent() {
    let s = start_sim(SimConfig::default());
    let token = Token::new(s.sim.mint_token(INSTANCE, None));
    let rest = eventsock::rest::RestClient::new(&s.endpoint(), INSTANCE, token);
    let err = rest.send_text("", "pong").await.unwrap_err();
    assert!(matches!(err, eventsock::rest::RestError::NoRecipient));
    assert!(
        s.sim.history(INSTANCE).is_empty(),
        "nothing reached the server"
    );
}
