//! Bots built from pipelines, end to end over real sockets with the simulator.

mod common;

use actix::prelude::*;
use common::*;
use eventsock::client::Supervisor;
use eventsock::core::MessageLike;
use eventsock::core::Source;
use eventsock::core::{legacy, Token};
use eventsock::handler::builtin::{FlushRecorder, Recorder, Replay};
use eventsock::handler::{restarting, Bot, Dedup, GetBotStats, HandlerError, Pipeline, Route};
use eventsock::rest::RestClient;
use eventsock::sim::SimConfig;
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

type Upsert = Received<legacy::MessagesUpsert>;
type Log = Arc<Mutex<Vec<String>>>;

fn note(log: &Log, what: impl Into<String>) {
    log.lock().unwrap().push(what.into());
}

async fn wait_len(log: &Log, n: usize) -> Vec<String> {
    let log = log.clone();
    until(&format!("{n} entries"), || log.lock().unwrap().len() >= n).await;
    let entries = log.lock().unwrap().clone();
    entries
}

fn msg(chat: &str, id: &str, text: &str) -> serde_json::Value {
    json!({"keyId": id, "keyRemoteJid": chat, "keyFromMe": false, "messageType": "conversation",
           "content": {"text": text}, "messageTimestamp": 1_747_310_400})
}

fn supervise_bot<T: eventsock::core::Payload>(
    s: &TestServer,
    bot: Recipient<Received<T>>,
) -> Addr<Supervisor> {
    let token = Token::new(s.sim.mint_token("codechat", None));
    Supervisor::builder()
        .config(fast_config())
        .source(Source::new(s.endpoint(), token).unwrap())
        .router(Router::builder().actor::<T>(bot).build())
        .start()
        .unwrap()
}

#[actix_rt::test]
async fn a_composed_pipeline_routes_commands_and_counts_dead_letters() {
    let s = start_sim(SimConfig::default());
    let log: Log = Arc::default();
    let dedup = Dedup::new(Duration::from_secs(60));
    let command = |name: &'static str, log: Log| {
        Pipeline::<Upsert>::new()
            .command(name)
            .endpoint(move |e: Upsert| {
                note(&log, format!("{name} {}", e.text().unwrap_or_default()));
                async { Ok::<_, HandlerError>(()) }
            })
    };
    let route = Pipeline::<Upsert>::new()
        .incoming()
        .dedup_messages(&dedup)
        .branch([command("!ping", log.clone()), command("!help", log.clone())]);
    let dead = Arc::new(AtomicUsize::new(0));
    let d = dead.clone();
    let bot = Bot::build(route)
        .on_dead_letter(move |_| {
            d.fetch_add(1, Ordering::SeqCst);
        })
        .start();
    let _sup = supervise_bot(&s, bot.clone().recipient());
    until("the socket", || {
        s.sim.is_subscribed("codechat", "messages.upsert")
    })
    .await;
    let chat = "5511988887777@s.whatsapp.net";
    for (id, text) in [
        ("1", "!ping"),
        ("2", "hello"),
        ("3", "!help me"),
        ("1", "!ping"),
        ("4", "!pingpong"),
        ("5", "!ping now"),
    ] {
        s.sim
            .emit("codechat", "messages.upsert", &msg(chat, id, text));
    }
    let mine = json!({"keyId": "6", "keyRemoteJid": chat, "keyFromMe": true, "content": {"text": "!ping"}});
    s.sim.emit("codechat", "messages.upsert", &mine);
    s.sim
        .emit("codechat", "messages.upsert", &msg(chat, "7", "!help"));
    assert_eq!(
        wait_len(&log, 4).await,
        [
            "!ping !ping",
            "!help !help me",
            "!ping !ping now",
            "!help !help"
        ]
    );
    let stats = bot.send(GetBotStats).await.unwrap();
    // "hello", the duplicate id 1, "!pingpong" and our own message went nowhere.
    assert_eq!((stats.handled, stats.dead_letters), (4, 4));
    assert_eq!(dead.load(Ordering::SeqCst), 4);
}

#[actix_rt::test]
async fn same_chat_in_order_different_chats_concurrently_within_the_worker_bound() {
    const WORKERS: usize = 3;
    let s = start_sim(SimConfig::default());
    let log: Log = Arc::default();
    let in_flight = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let (l, f, p) = (log.clone(), in_flight.clone(), peak.clone());
    let route = Route::from_fn(move |e: Upsert| {
        let (l, f, p) = (l.clone(), f.clone(), p.clone());
        async move {
            let now = f.fetch_add(1, Ordering::SeqCst) + 1;
            p.fetch_max(now, Ordering::SeqCst);
            // Long enough that other chats' messages overlap with this one.
            tokio::time::sleep(Duration::from_millis(5)).await;
            note(&l, format!("{} {}", e.chat().unwrap(), e.text().unwrap()));
            f.fetch_sub(1, Ordering::SeqCst);
            Ok::<_, HandlerError>(())
        }
    });
    let bot = Bot::build(route)
        .ordered_by(
            |e: &Upsert| e.chat().unwrap_or_default().to_owned(),
            WORKERS,
            8,
        )
        .start();
    let _sup = supervise_bot(&s, bot.recipient());
    until("the socket", || {
        s.sim.is_subscribed("codechat", "messages.upsert")
    })
    .await;
    let chats = [
        "a@s.whatsapp.net",
        "b@s.whatsapp.net",
        "c@s.whatsapp.net",
        "d@s.whatsapp.net",
        "e@s.whatsapp.net",
    ];
    for n in 0..20 {
        for c in chats {
            s.sim.emit(
                "codechat",
                "messages.upsert",
                &msg(c, &format!("{c}{n}"), &n.to_string()),
            );
        }
    }
    let entries = wait_len(&log, 100).await;
    for c in chats {
        let order: Vec<u32> = entries
            .iter()
            .filter_map(|e| e.strip_prefix(c).map(|n| n.trim().parse().unwrap()))
            .collect();
        assert_eq!(order, (0..20).collect::<Vec<_>>(), "chat {c} out of order");
    }
    let peak = peak.load(Ordering::SeqCst);
    assert!(
        peak >= 2,
        "different chats never ran concurrently (peak {peak})"
    );
    assert!(
        peak <= WORKERS,
        "more than {WORKERS} ran at once (peak {peak})"
    );
}

#[actix_rt::test]
async fn a_panicking_closure_is_reported_and_the_next_events_are_handled() {
    let s = start_sim(SimConfig::default());
    let log: Log = Arc::default();
    let errors: Log = Arc::default();
    let (l, e) = (log.clone(), errors.clone());
    let route = Route::from_fn(move |ev: Upsert| {
        if ev.text() == Some("boom") {
            panic!("bad input");
        }
        note(&l, ev.text().unwrap_or_default());
        async { Ok::<_, HandlerError>(()) }
    });
    let bot = Bot::build(route)
        .on_error(move |f| note(&e, f.error.to_string()))
        .start();
    let _sup = supervise_bot(&s, bot.clone().recipient());
    until("the socket", || {
        s.sim.is_subscribed("codechat", "messages.upsert")
    })
    .await;
    for t in ["one", "boom", "two", "three"] {
        s.sim.emit(
            "codechat",
            "messages.upsert",
            &msg("x@s.whatsapp.net", t, t),
        );
    }
    assert_eq!(wait_len(&log, 3).await, ["one", "two", "three"]);
    assert_eq!(*errors.lock().unwrap(), ["the handler panicked: bad input"]);
    assert_eq!(bot.send(GetBotStats).await.unwrap().panicked, 1);
}

/// A handler actor that panics on "boom"; each one knows which restart it is.
struct Fragile {
    generation: usize,
    log: Log,
}

impl Actor for Fragile {
    type Context = Context<Self>;
}

impl Handler<Upsert> for Fragile {
    type Result = ();

    fn handle(&mut self, e: Upsert, _: &mut Context<Self>) {
        if e.text() == Some("boom") {
            panic!("fragile actor {} hit a bomb", self.generation);
        }
        note(
            &self.log,
            format!(
                "actor {} got {}",
                self.generation,
                e.text().unwrap_or_default()
            ),
        );
    }
}

#[actix_rt::test]
async fn a_panicking_actor_is_restarted_and_gets_every_event_after_the_failure() {
    let s = start_sim(SimConfig::default());
    let log: Log = Arc::default();
    let errors: Log = Arc::default();
    let made = Arc::new(AtomicUsize::new(0));
    let (l, m) = (log.clone(), made.clone());
    let route = restarting(move || {
        let generation = m.fetch_add(1, Ordering::SeqCst) + 1;
        Fragile {
            generation,
            log: l.clone(),
        }
        .start()
    });
    let e = errors.clone();
    let bot = Bot::build(route)
        .on_error(move |f| note(&e, f.error.to_string()))
        .start();
    let _sup = supervise_bot(&s, bot.recipient());
    until("the socket", || {
        s.sim.is_subscribed("codechat", "messages.upsert")
    })
    .await;
    for t in ["a", "b", "boom", "c", "d", "boom", "e"] {
        s.sim.emit(
            "codechat",
            "messages.upsert",
            &msg("x@s.whatsapp.net", t, t),
        );
    }
    let entries = wait_len(&log, 5).await;
    assert_eq!(
        entries,
        [
            "actor 1 got a",
            "actor 1 got b",
            "actor 2 got c",
            "actor 2 got d",
            "actor 3 got e"
        ]
    );
    assert_eq!(
        *errors.lock().unwrap(),
        vec!["the handler actor has stopped"; 2]
    );
    assert_eq!(made.load(Ordering::SeqCst), 3);
}

#[actix_rt::test]
async fn an_echo_bot_replies_over_rest_and_the_reply_comes_back_as_send_message() {
    let s = start_sim(SimConfig::default());
    let token = Token::new(s.sim.mint_token("codechat", None));
    let rest = RestClient::new(&s.endpoint(), "codechat", token.clone());
    let echo = Pipeline::<Upsert>::new()
        .incoming()
        .command("!ping")
        .endpoint(move |e: Upsert| {
            let rest = rest.clone();
            async move {
                let chat = e.chat().unwrap_or_default().to_owned();
                let quote = e
                    .quote()
                    .expect("a message as the server sends it can be quoted");
                rest.reply(&chat, "pong", quote).await?;
                Ok::<_, eventsock::rest::RestError>(())
            }
        });
    let bot = Bot::build(echo).start();
    let sent = Recorder_::default();
    let sent_addr = sent.clone().start();
    let _sup = Supervisor::builder()
        .config(fast_config())
        .source(Source::new(s.endpoint(), token).unwrap())
        .router(
            Router::builder()
                .actor::<legacy::MessagesUpsert>(bot.clone().recipient())
                .actor::<legacy::SendMessage>(sent_addr.recipient())
                .build(),
        )
        .start()
        .unwrap();
    until("both sockets", || {
        s.sim.is_subscribed("codechat", "messages.upsert")
            && s.sim.is_subscribed("codechat", "send.message")
    })
    .await;
    s.sim.emit(
        "codechat",
        "messages.upsert",
        &msg("5511988887777@s.whatsapp.net", "Q1", "!ping"),
    );
    let (_, reply) = sent.wait_events(1).await.remove(0);
    assert_eq!(reply["content"]["text"], "pong");
    assert_eq!(
        reply["content"]["contextInfo"]["stanzaId"], "Q1",
        "quotes the ping"
    );
    assert_eq!(reply["keyFromMe"], true);
    // The reply also came back on messages.upsert: the bot saw it and did not answer itself.
    let stats = eventually("the bot to see its own reply", || async {
        let stats = bot.send(GetBotStats).await.unwrap();
        (stats.handled + stats.dead_letters == 2).then_some(stats)
    })
    .await;
    assert_eq!((stats.handled, stats.dead_letters), (1, 1));
}

use common::Recorder as Recorder_;

#[actix_rt::test]
async fn a_recorded_stream_replays_through_the_same_handlers() {
    let s = start_sim(SimConfig::default());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stream.jsonl");
    let recorder = Recorder::create(&path).unwrap().start();
    let live = Recorder_::default();
    let token = Token::new(s.sim.mint_token("codechat", None));
    let _sup = Supervisor::builder()
        .config(fast_config())
        .source(Source::new(s.endpoint(), token).unwrap())
        .router(
            Router::builder()
                .raw(
                    [eventsock::core::EventKind::MessagesUpsert.into()],
                    recorder.clone().recipient::<eventsock::core::RawEvent>(),
                )
                .actor::<legacy::MessagesUpsert>(live.clone().start().recipient())
                .build(),
        )
        .start()
        .unwrap();
    until("the socket", || {
        s.sim.is_subscribed("codechat", "messages.upsert")
    })
    .await;
    for i in 0..10 {
        s.sim.emit(
            "codechat",
            "messages.upsert",
            &msg("x@s.whatsapp.net", &i.to_string(), &format!("m{i}")),
        );
    }
    let live_events = live.wait_events(10).await;
    // Everything handled live was written: the dispatcher delivers each frame to the raw and
    // the typed handler before it takes the next.
    let written = recorder.send(FlushRecorder).await.unwrap();
    assert_eq!(written, 10);
    // A line that is not a recorded event is reported and skipped, not fatal.
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str("not json\n");
    std::fs::write(&path, text).unwrap();

    let replayed = Recorder_::default();
    let report = Replay::open(
        &path,
        Router::builder()
            .actor::<legacy::MessagesUpsert>(replayed.clone().start().recipient())
            .build(),
    )
    .run()
    .await
    .unwrap();
    assert_eq!(
        (
            report.records,
            report.delivered,
            report.bad_lines,
            report.decode_errors
        ),
        (11, 10, 1, 0)
    );
    let replayed_events = replayed.wait_events(10).await;
    let payloads = |v: &[(eventsock::core::EventMeta, serde_json::Value)]| {
        v.iter()
            .map(|(m, j)| (m.seq, j.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        payloads(&replayed_events),
        payloads(&live_events),
        "same payloads, same order"
    );
}

#[actix_rt::test]
async fn one_dedup_shared_by_two_streams_lets_an_api_sent_message_through_once() {
    let s = start_sim(SimConfig::default());
    let token = Token::new(s.sim.mint_token("codechat", None));
    let dedup = Dedup::new(Duration::from_secs(60));
    let log: Log = Arc::default();
    let (l1, l2) = (log.clone(), log.clone());
    let upserts = Pipeline::<Upsert>::new()
        .dedup_messages(&dedup)
        .endpoint(move |e: Upsert| {
            note(
                &l1,
                format!("upsert {}", e.message_id().unwrap_or_default()),
            );
            async { Ok::<_, HandlerError>(()) }
        });
    let sends = Pipeline::<Received<legacy::SendMessage>>::new()
        .dedup_messages(&dedup)
        .endpoint(move |e: Received<legacy::SendMessage>| {
            note(&l2, format!("send {}", e.message_id().unwrap_or_default()));
            async { Ok::<_, HandlerError>(()) }
        });
    let upsert_bot = Bot::build(upserts).start();
    let send_bot = Bot::build(sends).start();
    let _sup = Supervisor::builder()
        .config(fast_config())
        .source(Source::new(s.endpoint(), token.clone()).unwrap())
        .router(
            Router::builder()
                .actor::<legacy::MessagesUpsert>(upsert_bot.clone().recipient())
                .actor::<legacy::SendMessage>(send_bot.clone().recipient())
                .build(),
        )
        .start()
        .unwrap();
    until("both sockets", || {
        s.sim.is_subscribed("codechat", "messages.upsert")
            && s.sim.is_subscribed("codechat", "send.message")
    })
    .await;
    let rest = RestClient::new(&s.endpoint(), "codechat", token);
    for text in ["one", "two", "three"] {
        rest.send_text("5511988887777", text).await.unwrap();
    }
    // Six frames (each message on both sockets); each bot sees its three, one of each pair passes.
    let total = || async {
        let (a, b) = (
            upsert_bot.send(GetBotStats).await.unwrap(),
            send_bot.send(GetBotStats).await.unwrap(),
        );
        (a.handled + b.handled, a.dead_letters + b.dead_letters)
    };
    let counts = eventually("all six frames handled", || async {
        let c = total().await;
        (c.0 + c.1 == 6).then_some(c)
    })
    .await;
    assert_eq!(
        counts,
        (3, 3),
        "each message handled once, its twin dropped"
    );
    assert_eq!(log.lock().unwrap().len(), 3);
}
