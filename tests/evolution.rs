//! Evolution API: the README's bots, unchanged, served by the simulator playing Evolution
//! (Socket.IO on `/socket.io/`, its payloads, its REST routes); a burst in order. (The API key
//! kept out of a whole session's TRACE log: `tests/secrets.rs`, whose binary owns its log.)

mod common;

use actix::prelude::*;
use common::*;
use eventsock::core::{legacy, Protocol};
use eventsock::sim::{Sim, SimConfig};
use eventsock::{Run, Settings};
use serde_json::{json, Value};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

fn settings() -> Settings {
    Settings {
        protocol: Some(Protocol::Evolution),
        ..Settings::default()
    }
}

/// Starts `router` on the simulator playing Evolution; waits until it joined the namespace.
async fn started(router: Router) -> (eventsock::Running, Sim) {
    let running = Run::start(router, settings()).await.unwrap();
    let sim = running.sim().expect("the built-in simulator").clone();
    until("the namespace joined", || sim.joined("codechat") == 1).await;
    (running, sim)
}

/// An example bot, built by `cargo test` beside this test, run as a user runs it: against the
/// simulator playing Evolution, set up by the environment alone (`EVENTSOCK_URL`,
/// `EVENTSOCK_PROTOCOL=evolution`, `EVENTSOCK_INSTANCE`, `EVENTSOCK_TOKEN`).
struct Example(Child);

impl Example {
    fn start(name: &str, s: &TestServer, env: &[(&str, &str)]) -> Example {
        let bin = std::path::Path::new(env!("CARGO_BIN_EXE_eventsock"))
            .parent()
            .unwrap()
            .join("examples")
            .join(name);
        assert!(bin.exists(), "{} is built by cargo test", bin.display());
        let key = s.sim.api_key("codechat").unwrap();
        let child = Command::new(bin)
            .env("EVENTSOCK_URL", s.url())
            .env("EVENTSOCK_PROTOCOL", "evolution")
            .env("EVENTSOCK_INSTANCE", "codechat")
            .env("EVENTSOCK_TOKEN", key)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Example(child)
    }
}

impl Drop for Example {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn evolution_sim() -> TestServer {
    start_sim(SimConfig {
        protocol: Protocol::Evolution,
        ..SimConfig::default()
    })
}

#[actix_rt::test]
async fn the_echo_bot_runs_unchanged_on_evolution() {
    let s = evolution_sim();
    let _bot = Example::start("echo_bot", &s, &[]);
    until("the bot joined the namespace", || {
        s.sim.joined("codechat") == 1
    })
    .await;
    let sim = &s.sim;
    for (id, text) in [("E1", "!ping"), ("E2", "hello"), ("E3", "!ping")] {
        sim.emit(
            "codechat",
            "messages.upsert",
            &evolution_message(id, "5511988887777", text),
        );
    }
    until("two pongs", || sent_texts(sim, "5511988887777").len() == 2).await;
    assert_eq!(sent_texts(sim, "5511988887777"), ["pong", "pong"]);
    // Each quotes its ping, through Evolution's `quoted.key.id`.
    let quoted: Vec<_> = sim.sent().iter().map(|s| s.quoted.clone()).collect();
    assert_eq!(quoted, [Some("E1".to_owned()), Some("E3".to_owned())]);
    // Evolution's body: `{number, text, quoted}`, with the key in an `apikey` header (the
    // simulator answers 401 without it).
    let call = sim
        .requests()
        .into_iter()
        .find(|r| r.path == "/message/sendText/codechat")
        .expect("a sendText call");
    assert_eq!(call.status, 201, "{}", call.answer);
    assert_eq!(call.body["text"], "pong");
    assert_eq!(call.body["quoted"]["key"]["id"], "E1");
    assert!(call.body.get("textMessage").is_none(), "{}", call.body);
}

#[actix_rt::test]
async fn the_order_bot_runs_unchanged_on_evolution() {
    let s = evolution_sim();
    let db = tempfile::tempdir().unwrap();
    let path = db.path().join("orders.db");
    let _bot = Example::start("order_bot", &s, &[("ORDER_BOT_DB", path.to_str().unwrap())]);
    until("the bot joined the namespace", || {
        s.sim.joined("codechat") == 1
    })
    .await;
    let (sim, chat) = (&s.sim, "5511988887777");
    let want = [
        "Hello! What would you like: pizza or salad?",
        "One pizza. Which size: small or large?",
        "Small or large?",
        "Where shall we bring it?",
        "Ordered: one large pizza, to Rua Augusta 100. Thank you!",
    ];
    for (n, text) in ["hi", "Pizza", "huge", "large", "Rua Augusta 100"]
        .into_iter()
        .enumerate()
    {
        sim.emit(
            "codechat",
            "messages.upsert",
            &evolution_message(&format!("O{n}"), chat, text),
        );
        // One answer before the next message, as a person types.
        until(&format!("answer {}", n + 1), || {
            sent_texts(sim, chat).len() == n + 1
        })
        .await;
    }
    assert_eq!(sent_texts(sim, chat), want);
}

/// Records the `burstSeq` of each message, in the order handled.
#[derive(Default, Clone)]
struct Seqs(Arc<Mutex<Vec<u64>>>);

impl Actor for Seqs {
    type Context = Context<Self>;
}

impl Handler<Received<legacy::MessagesUpsert>> for Seqs {
    type Result = ();
    fn handle(&mut self, m: Received<legacy::MessagesUpsert>, _: &mut Context<Self>) {
        let seq = m.extra.get("burstSeq").and_then(Value::as_u64);
        self.0.lock().unwrap().push(seq.unwrap_or(u64::MAX));
    }
}

#[actix_rt::test]
async fn a_burst_of_50000_events_arrives_whole_and_in_order() {
    let seqs = Seqs::default();
    let addr = seqs.clone().start();
    let router = Router::builder()
        .actor::<legacy::MessagesUpsert>(addr.recipient())
        .receipts(false)
        .build();
    let (running, sim) = started(router).await;
    const N: u64 = 50_000;
    let taken = sim.burst(
        "codechat",
        "messages.upsert",
        &evolution_message("B", "5511988887777", "burst"),
        N,
    );
    assert_eq!(taken, N, "the session took every event");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while seqs.0.lock().unwrap().len() < N as usize {
        assert!(
            std::time::Instant::now() < deadline,
            "{} of {N} handled",
            seqs.0.lock().unwrap().len()
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let got = seqs.0.lock().unwrap().clone();
    assert_eq!(got.len(), N as usize);
    assert!(got.iter().copied().eq(0..N), "out of order or incomplete");
    running.stop().await;
}

#[actix_rt::test]
async fn a_websocket_that_is_off_is_said_with_the_call_that_fixes_it() {
    let s = evolution_sim();
    // Off, and the server restarted: the instance's namespace is not made.
    s.sim.set_websocket("codechat", false, &[]);
    s.sim.restart_namespaces();
    let key = s.sim.api_key("codechat").unwrap();
    let source = eventsock::core::Source::evolution(
        eventsock::core::Endpoint::parse(&s.url()).unwrap(),
        "codechat",
        eventsock::core::Token::new(key.as_str()),
    );
    let (sup, rec) = supervise_with(source, fast_config());
    let cause = rec
        .wait("a reconnect", |r| {
            r.lifecycle().into_iter().find_map(|k| match k {
                eventsock::client::LifecycleKind::Reconnecting { cause, .. } => Some(cause),
                _ => None,
            })
        })
        .await;
    assert!(
        cause.contains("the websocket of instance codechat is off: turn it on with POST /websocket/set/codechat"),
        "{cause}"
    );
    // Turned on over REST, as the message says; the instance's next event makes the namespace.
    let answer = awc::Client::default()
        .post(format!("{}/websocket/set/codechat", s.url()))
        .insert_header(("apikey", key.as_str()))
        .send_json(&json!({"websocket": {"enabled": true, "events": ["MESSAGES_UPSERT"]}}))
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 201);
    s.sim
        .emit("codechat", "connection.update", &json!({"state": "open"}));
    assert!(
        !s.sim
            .emit("codechat", "connection.update", &json!({"state": "open"})),
        "not listed: not sent"
    );
    s.sim.emit(
        "codechat",
        "messages.upsert",
        &evolution_message("W0", "5511988887777", "made"),
    );
    until("joined", || s.sim.joined("codechat") == 1).await;
    s.sim.emit(
        "codechat",
        "messages.upsert",
        &evolution_message("W1", "5511988887777", "hello"),
    );
    let events = rec.wait_events(1).await;
    assert_eq!(events[0].1["content"]["text"], "hello");
    sup.send(eventsock::client::Shutdown).await.unwrap();
}

#[actix_rt::test]
async fn a_refused_key_is_said_and_retried_at_the_slowest_pace() {
    let s = evolution_sim();
    let source = eventsock::core::Source::evolution(
        eventsock::core::Endpoint::parse(&s.url()).unwrap(),
        "codechat",
        eventsock::core::Token::new("not-the-key"),
    );
    let (sup, rec) = supervise_with(source, fast_config());
    let (cause, delay) = rec
        .wait("a reconnect", |r| {
            r.lifecycle().into_iter().find_map(|k| match k {
                eventsock::client::LifecycleKind::Reconnecting { cause, delay, .. } => {
                    Some((cause, delay))
                }
                _ => None,
            })
        })
        .await;
    assert!(
        cause.contains("400 Bad Request, Evolution API's answer to a missing or unknown API key"),
        "{cause}"
    );
    assert_eq!(delay, fast_config().backoff.max_delay());
    sup.send(eventsock::client::Shutdown).await.unwrap();
}

/// An outbox on Evolution API, which takes no id of the sender's: a lost answer is looked up by
/// chat, text and time.
#[actix_rt::test]
async fn a_lost_answer_is_looked_up_by_its_text_and_never_sent_twice() {
    use eventsock::rest::{Outbox, Outcome, Outgoing, RestClient};
    use eventsock::sim::SendFailure;
    let s = evolution_sim();
    let key = s.sim.api_key("codechat").unwrap();
    let source = eventsock::core::Source::evolution(
        eventsock::core::Endpoint::parse(&s.url()).unwrap(),
        "codechat",
        eventsock::core::Token::new(key.as_str()),
    );
    let outbox = Outbox::new(RestClient::for_source(&source), fast_pacing());
    let to = "5511988887777";
    // Sent, with the server's own id.
    let first = outbox.send(Outgoing::text(to, "first")).await.unwrap();
    let Outcome::Sent { id, .. } = &first else {
        panic!("{first:?}")
    };
    assert_eq!(Some(id.as_str()), s.sim.sent()[0].id.as_str().into());
    // Refused with a 500, nothing sent: not found, so sent again, once.
    s.sim.fail_sends(500, None, 1);
    let again = outbox
        .send(Outgoing::text(to, "refused once"))
        .await
        .unwrap();
    assert!(
        matches!(again, Outcome::Sent { attempts: 2, .. }),
        "{again:?}"
    );
    // Sent, and the answer lost: found by its text, with the server's id, not sent again.
    s.sim.fail_next_sends(
        SendFailure {
            status: 502,
            retry_after: None,
            delivered: true,
        },
        1,
    );
    let lost = outbox
        .send(Outgoing::text(to, "answer lost"))
        .await
        .unwrap();
    let Outcome::Found { id, attempts: 1 } = &lost else {
        panic!("{lost:?}")
    };
    let sent = s.sim.sent();
    let texts: Vec<&str> = sent.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts, ["first", "refused once", "answer lost"]);
    assert_eq!(id, &sent[2].id, "the id the server gave it");
}

/// Recovery over REST on Evolution API: what was sent while nobody listened comes from its
/// `findMessages`, each message once.
#[actix_rt::test]
async fn a_gap_is_recovered_over_evolutions_find_messages_each_message_once() {
    use eventsock::client::{Backfill, Supervisor};
    use eventsock::core::{Backoff, Origin};
    let s = evolution_sim();
    let key = s.sim.api_key("codechat").unwrap();
    let mut config = fast_config();
    // Slow to come back, so that messages are sent while nobody listens.
    config.backoff = Backoff::Fixed(std::time::Duration::from_millis(1500));
    let rec = Recorder::default();
    let addr = rec.clone().start();
    let _sup = Supervisor::builder()
        .config(config)
        .source(eventsock::core::Source::evolution(
            eventsock::core::Endpoint::parse(&s.url()).unwrap(),
            "codechat",
            eventsock::core::Token::new(key.as_str()),
        ))
        .router(
            Router::builder()
                .actor::<legacy::MessagesUpsert>(addr.clone().recipient())
                .build(),
        )
        .lifecycle(addr.recipient())
        .backfill(Backfill::new().margin(std::time::Duration::from_secs(600)))
        .start()
        .unwrap();
    until("joined", || s.sim.joined("codechat") == 1).await;
    let received = |r: &Recorder| -> Vec<(String, Origin)> {
        r.events()
            .into_iter()
            .map(|(meta, m)| {
                (
                    m["keyId"].as_str().unwrap_or_default().to_owned(),
                    meta.origin,
                )
            })
            .collect()
    };
    let chat = "5511988887777";
    for id in ["L1", "L2"] {
        s.sim.emit(
            "codechat",
            "messages.upsert",
            &evolution_message(id, chat, id),
        );
    }
    rec.wait_events(2).await;
    s.sim.drop_all();
    until("nobody listens", || s.sim.joined("codechat") == 0).await;
    for id in ["G1", "G2", "G3"] {
        assert!(!s.sim.emit(
            "codechat",
            "messages.upsert",
            &evolution_message(id, chat, id)
        ));
    }
    let all = rec
        .wait("the gap recovered", |r| {
            let got = received(r);
            (got.len() >= 5).then_some(got)
        })
        .await;
    // The live ones once (the recovery found them too), the missed ones recovered, in order.
    let ids: Vec<&str> = all.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, ["L1", "L2", "G1", "G2", "G3"]);
    assert!(all[2..].iter().all(|(_, o)| *o == Origin::Recovered));
    // The findMessages calls were Evolution's, with the key in its header.
    let finds: Vec<_> = s
        .sim
        .requests()
        .into_iter()
        .filter(|r| r.path == "/chat/findMessages/codechat")
        .collect();
    assert!(
        !finds.is_empty() && finds.iter().all(|r| r.status == 200),
        "{:?}",
        finds.len()
    );
}

/// A reaction and a read mark through a handler's `Ctx`, on Evolution API's routes and bodies.
#[actix_rt::test]
async fn reactions_and_read_marks_take_evolutions_routes() {
    let router = Router::builder()
        .on(|msg: eventsock::Msg| async move {
            msg.cx.react("👍").await?;
            msg.cx.mark_read().await?;
            Ok(())
        })
        .build();
    let (running, sim) = started(router).await;
    sim.emit(
        "codechat",
        "messages.upsert",
        &evolution_message("R1", "5511988887777", "hello"),
    );
    until("the read mark", || !sim.marked_read().is_empty()).await;
    let calls = sim.requests();
    let call = |path: &str| {
        calls
            .iter()
            .find(|r| r.path == path)
            .unwrap_or_else(|| panic!("no call to {path}"))
    };
    let reaction = call("/message/sendReaction/codechat");
    assert_eq!(reaction.status, 201, "{}", reaction.answer);
    assert_eq!(reaction.body["key"]["id"], "R1");
    assert_eq!(reaction.body["reaction"], "👍");
    let read = call("/chat/markMessageAsRead/codechat");
    assert_eq!((read.method.as_str(), read.status), ("POST", 201));
    assert_eq!(read.body["readMessages"][0]["id"], "R1");
    assert_eq!(sim.marked_read()[0]["id"], "R1");
    running.stop().await;
}
