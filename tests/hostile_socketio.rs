//! The Socket.IO client (Evolution API) against servers that misbehave, written by hand on raw
//! TCP: packets that are not packets, a packet over the frame limit, a refused namespace,
//! binary attachments, attachments that never come or were never announced, a server that
//! never pings, and one that pings and checks the answers.

mod common;

use common::hostile::{self, Request, Stats};
use common::*;
use eventsock::client::{LifecycleKind, Shutdown};
use eventsock::core::{Endpoint, Source, Token};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

const NSP: &str = "/codechat";

fn source(h: &hostile::Hostile) -> Source {
    Source::evolution(
        Endpoint::parse(&h.url()).unwrap(),
        "codechat",
        Token::new("hostile-key"),
    )
}

/// The text frame of an event of `messages.upsert` whose message says `text`.
fn event(text: &str) -> Vec<u8> {
    let packet = format!(
        r#"42{NSP},["messages.upsert",{{"event":"messages.upsert","instance":"codechat","data":{{"key":{{"remoteJid":"5511988887777@s.whatsapp.net","fromMe":false,"id":"{text}"}},"message":{{"conversation":"{text}"}},"messageType":"conversation","messageTimestamp":1747310400}},"apikey":null}}]"#
    );
    hostile::frame(1, packet.as_bytes())
}

fn texts(rec: &Recorder) -> Vec<String> {
    rec.events()
        .into_iter()
        .map(|(_, v)| v["content"]["text"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn reconnect_cause(rec: &Recorder) -> Option<String> {
    rec.lifecycle().into_iter().find_map(|k| match k {
        LifecycleKind::Reconnecting { cause, .. } => Some(cause),
        _ => None,
    })
}

#[actix_rt::test]
async fn packets_that_are_not_packets_are_skipped_and_the_stream_goes_on() {
    let server = hostile::serve(|mut s: TcpStream, r: Request, stats: &Stats| {
        let Some(connect) = hostile::socket_io_open(&mut s, &r, stats, 25_000, 20_000) else {
            return;
        };
        assert_eq!(
            connect,
            format!("40{NSP},"),
            "the client's namespace connect"
        );
        let joined = format!(r#"40{NSP},{{"sid":"x"}}"#);
        hostile::send(&mut s, &hostile::frame(1, joined.as_bytes()), stats);
        let garbage: [&[u8]; 10] = [
            b"42/codechat,[\"messages.upsert\"]",
            b"",
            b"9",
            b"4",
            b"4x",
            b"42/codechat,nope",
            b"42/codechat,[]",
            b"42/codechat,[1,{}]",
            b"\xff\xfe",
            b"42/codechat,[\"messages.upsert\",{\"event\":\"messages.upsert\",\"data\":7}]",
        ];
        hostile::send(&mut s, &event("first"), stats);
        for g in garbage {
            // A frame that is not UTF-8 goes as binary: an attachment nobody announced.
            if std::str::from_utf8(g).is_ok() {
                hostile::send(&mut s, &hostile::frame(1, g), stats);
            }
        }
        // A binary event without its argument, its attachment following.
        let headless = hostile::frame(1, b"451-/codechat,[\"messages.upsert\"]");
        hostile::send(&mut s, &headless, stats);
        hostile::send(&mut s, &hostile::frame(2, b"x"), stats);
        hostile::send(&mut s, &event("second"), stats);
        hostile::hold(stats);
    });
    let (sup, rec) = supervise_with(source(&server), fast_config());
    rec.wait_events(2).await;
    assert_eq!(texts(&rec), ["first", "second"]);
    // One connection: nothing above ended it. The data that does not fit is reported.
    assert_eq!(server.sessions(), 1);
    rec.wait("the misfit reported", |r| {
        (!r.undelivered().is_empty()).then_some(())
    })
    .await;
    sup.send(Shutdown).await.unwrap();
}

#[actix_rt::test]
async fn a_packet_over_the_frame_limit_ends_the_connection_and_it_comes_back() {
    let server = hostile::serve(|mut s: TcpStream, r: Request, stats: &Stats| {
        if hostile::socket_io_open(&mut s, &r, stats, 25_000, 20_000).is_none() {
            return;
        }
        let joined = format!(r#"40{NSP},{{"sid":"x"}}"#);
        hostile::send(&mut s, &hostile::frame(1, joined.as_bytes()), stats);
        // A header announcing 1 GiB, then as much as the client takes.
        let mut header = vec![0x81];
        hostile::header_len(&mut header, 1 << 30);
        if hostile::send(&mut s, &header, stats) {
            hostile::flood(&mut s, &[b' '; 64 * 1024], stats);
        }
    });
    let mut config = fast_config();
    config.max_frame_size = 64 * 1024;
    let (sup, rec) = supervise_with(source(&server), config);
    let cause = rec.wait("a reconnect", reconnect_cause).await;
    assert!(cause.contains("1073741824 bytes"), "{cause}");
    until("a second connection", || server.sessions() >= 2).await;
    // It hung up instead of buffering the gigabyte.
    assert!(
        server.written() < 64 * 1024 * 1024,
        "{} bytes taken",
        server.written()
    );
    sup.send(Shutdown).await.unwrap();
}

#[actix_rt::test]
async fn a_refused_namespace_is_retried_and_said_with_the_call_that_fixes_it() {
    let attempts = Arc::new(AtomicUsize::new(0));
    let seen = attempts.clone();
    let server = hostile::serve(move |mut s: TcpStream, r: Request, stats: &Stats| {
        if hostile::socket_io_open(&mut s, &r, stats, 25_000, 20_000).is_none() {
            return;
        }
        // Refused until the third attempt: Evolution makes the namespace at the instance's
        // first event after a restart.
        if seen.fetch_add(1, Ordering::SeqCst) < 2 {
            let refused = format!(r#"44{NSP},{{"message":"Invalid namespace"}}"#);
            hostile::send(&mut s, &hostile::frame(1, refused.as_bytes()), stats);
            hostile::hold(stats);
            return;
        }
        let joined = format!(r#"40{NSP},{{"sid":"x"}}"#);
        hostile::send(&mut s, &hostile::frame(1, joined.as_bytes()), stats);
        hostile::send(&mut s, &event("after"), stats);
        hostile::hold(stats);
    });
    let (sup, rec) = supervise_with(source(&server), fast_config());
    let cause = rec.wait("a reconnect", reconnect_cause).await;
    assert!(
        cause.contains("refused the namespace /codechat: Invalid namespace")
            && cause.contains("POST /websocket/set/codechat"),
        "{cause}"
    );
    rec.wait_events(1).await;
    assert_eq!(texts(&rec), ["after"]);
    assert_eq!(attempts.load(Ordering::SeqCst), 3);
    // Up only once joined: the two refusals were never "connected".
    let ups = rec.count_lifecycle(|k| matches!(k, LifecycleKind::Connected { .. }));
    assert_eq!(ups, 1);
    sup.send(Shutdown).await.unwrap();
}

#[actix_rt::test]
async fn binary_attachments_stand_where_their_placeholders_stood() {
    let server = hostile::serve(|mut s: TcpStream, r: Request, stats: &Stats| {
        if hostile::socket_io_open(&mut s, &r, stats, 25_000, 20_000).is_none() {
            return;
        }
        let joined = format!(r#"40{NSP},{{"sid":"x"}}"#);
        hostile::send(&mut s, &hostile::frame(1, joined.as_bytes()), stats);
        let head = format!(
            r#"452-{NSP},["messages.upsert",{{"event":"messages.upsert","data":{{"key":{{"remoteJid":"5511988887777@s.whatsapp.net","fromMe":false,"id":"B1"}},"message":{{"conversation":"with bytes","messageContextInfo":{{"messageSecret":{{"_placeholder":true,"num":1}},"hash":{{"_placeholder":true,"num":0}}}}}},"messageType":"conversation","messageTimestamp":{{"low":1747310400,"high":0,"unsigned":true}}}}}}]"#
        );
        hostile::send(&mut s, &hostile::frame(1, head.as_bytes()), stats);
        hostile::send(&mut s, &hostile::frame(2, b"\x00\x01\x02"), stats);
        hostile::send(&mut s, &hostile::frame(2, &[0xff; 32]), stats);
        // Then one announcing two attachments, with a text packet where the second should be:
        // the session cannot go on.
        let broken = format!(r#"452-{NSP},["messages.upsert",{{"data":{{}}}}]"#);
        hostile::send(&mut s, &hostile::frame(1, broken.as_bytes()), stats);
        hostile::send(&mut s, &hostile::frame(2, b"x"), stats);
        hostile::send(&mut s, &event("too soon"), stats);
        hostile::hold(stats);
    });
    let (sup, rec) = supervise_with(source(&server), fast_config());
    let (_, message) = rec.wait_events(1).await.remove(0);
    assert_eq!(message["content"]["text"], "with bytes");
    assert_eq!(message["messageTimestamp"], 1747310400);
    let info = &message["message"]["messageContextInfo"];
    assert_eq!(info["hash"], "AAEC");
    assert_eq!(info["messageSecret"], format!("{}8=", "/".repeat(42)));
    let cause = rec.wait("a reconnect", reconnect_cause).await;
    assert!(
        cause.contains("binary event waited for its attachments"),
        "{cause}"
    );
    assert_eq!(
        texts(&rec),
        ["with bytes"],
        "nothing of the broken packet was delivered"
    );
    sup.send(Shutdown).await.unwrap();
}

#[actix_rt::test]
async fn a_server_that_stops_pinging_is_found_dead() {
    let server = hostile::serve(|mut s: TcpStream, r: Request, stats: &Stats| {
        // Pings promised every 200 ms, answered within 100 ms: none ever comes.
        if hostile::socket_io_open(&mut s, &r, stats, 200, 100).is_none() {
            return;
        }
        let joined = format!(r#"40{NSP},{{"sid":"x"}}"#);
        hostile::send(&mut s, &hostile::frame(1, joined.as_bytes()), stats);
        hostile::hold(stats);
    });
    let (sup, rec) = supervise_with(source(&server), fast_config());
    let cause = rec.wait("a reconnect", reconnect_cause).await;
    assert!(
        cause.contains("heartbeat stopped: nothing heard for 300ms"),
        "{cause}"
    );
    until("a second connection", || server.sessions() >= 2).await;
    sup.send(Shutdown).await.unwrap();
}

#[actix_rt::test]
async fn the_servers_pings_are_answered_and_keep_the_link() {
    let pongs = Arc::new(AtomicUsize::new(0));
    let counted = pongs.clone();
    let server = hostile::serve(move |mut s: TcpStream, r: Request, stats: &Stats| {
        if hostile::socket_io_open(&mut s, &r, stats, 100, 100).is_none() {
            return;
        }
        let joined = format!(r#"40{NSP},{{"sid":"x"}}"#);
        hostile::send(&mut s, &hostile::frame(1, joined.as_bytes()), stats);
        // Ping every 100 ms, as engine.io does, and drop a client that does not answer `3`.
        while !stats.stop.load(Ordering::Acquire) {
            std::thread::sleep(Duration::from_millis(100));
            if !hostile::send(&mut s, &hostile::frame(1, b"2"), stats) {
                return;
            }
            let answered = loop {
                match hostile::read_client_frame(&mut s, Duration::from_millis(100)) {
                    Some((1, p)) if p == b"3" => break true,
                    // The client's own WebSocket pings: answered as the `ws` library does.
                    Some((9, p)) => {
                        hostile::send(&mut s, &hostile::frame(10, &p), stats);
                    }
                    Some(_) => {}
                    None => break false,
                }
            };
            if !answered {
                return;
            }
            counted.fetch_add(1, Ordering::SeqCst);
        }
    });
    let (sup, rec) = supervise_with(source(&server), fast_config());
    until("ten pings answered", || pongs.load(Ordering::SeqCst) >= 10).await;
    assert_eq!(server.sessions(), 1, "the link was kept");
    assert!(reconnect_cause(&rec).is_none());
    sup.send(Shutdown).await.unwrap();
}

#[actix_rt::test]
async fn a_server_that_never_answers_the_namespace_connect_is_not_waited_for_forever() {
    let server = hostile::serve(|mut s: TcpStream, r: Request, stats: &Stats| {
        // The open packet, the client's connect read, then nothing (pings far apart).
        if hostile::socket_io_open(&mut s, &r, stats, 25_000, 20_000).is_some() {
            hostile::hold(stats);
        }
    });
    let mut config = fast_config();
    config.connect_timeout = Duration::from_millis(300);
    let (sup, rec) = supervise_with(source(&server), config);
    let cause = rec.wait("a reconnect", reconnect_cause).await;
    assert!(cause.contains("the handshake timed out"), "{cause}");
    until("a second session", || server.sessions() >= 2).await;
    assert_eq!(
        rec.count_lifecycle(|k| matches!(k, LifecycleKind::Connected { .. })),
        0,
        "never up: never joined"
    );
    sup.send(Shutdown).await.unwrap();
}

/// Holds each event until the test opens the gate.
struct Gated(Arc<tokio::sync::Semaphore>);

impl actix::Actor for Gated {
    type Context = actix::Context<Self>;
}

impl actix::Handler<Received<eventsock::core::legacy::MessagesUpsert>> for Gated {
    type Result = actix::ResponseFuture<()>;

    fn handle(
        &mut self,
        _: Received<eventsock::core::legacy::MessagesUpsert>,
        _: &mut actix::Context<Self>,
    ) -> Self::Result {
        let gate = self.0.clone();
        Box::pin(async move {
            gate.acquire().await.unwrap().forget();
        })
    }
}

#[actix_rt::test]
async fn slow_handlers_are_not_taken_for_a_dead_server() {
    use actix::Actor;
    // A server that pings every 100 ms (silence allowed: 200 ms) and sends 4 events at once.
    let server = hostile::serve(|mut s: TcpStream, r: Request, stats: &Stats| {
        if hostile::socket_io_open(&mut s, &r, stats, 100, 100).is_none() {
            return;
        }
        let joined = format!(r#"40{NSP},{{"sid":"x"}}"#);
        hostile::send(&mut s, &hostile::frame(1, joined.as_bytes()), stats);
        for n in 0..4 {
            hostile::send(&mut s, &event(&format!("e{n}")), stats);
        }
        while !stats.stop.load(Ordering::Acquire) {
            std::thread::sleep(Duration::from_millis(100));
            if !hostile::send(&mut s, &hostile::frame(1, b"2"), stats) {
                return;
            }
        }
    });
    // One frame in the queue at a time: the handler holds the reader.
    let mut config = fast_config();
    config.queue_capacity = 1;
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let handler = Gated(gate.clone()).start();
    let rec = Recorder::default();
    let lifecycle = rec.clone().start();
    let sup = eventsock::client::Supervisor::builder()
        .config(config)
        .source(source(&server))
        .router(
            Router::builder()
                .actor::<eventsock::core::legacy::MessagesUpsert>(handler.recipient())
                .receipts(false)
                .build(),
        )
        .lifecycle(lifecycle.recipient())
        .start()
        .unwrap();
    until("the session", || server.sessions() == 1).await;
    // Held for a second, five times the silence the server's heartbeat allows (the hold is
    // what is tested: there is nothing to wait on).
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        reconnect_cause(&rec).is_none(),
        "{:?}",
        reconnect_cause(&rec)
    );
    gate.add_permits(4);
    // Then the four are handled on the same link.
    until("the four handled", || gate.available_permits() == 0).await;
    assert_eq!(server.sessions(), 1);
    assert!(
        reconnect_cause(&rec).is_none(),
        "{:?}",
        reconnect_cause(&rec)
    );
    sup.send(Shutdown).await.unwrap();
}
