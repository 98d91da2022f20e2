//! The outbox against the simulator (which lists every send it accepted, with its arrival time)
//! and against hostile servers: paced, in order per chat, retried, never sent twice.

mod common;

use common::hostile::{self, Stats};
use common::*;
use eventsock::core::{Endpoint, Token};
use eventsock::rest::{
    Outbox, OutboxError, Outcome, Outgoing, Pacing, RestClient, RestError, Typing, WhenFull,
};
use eventsock::sim::{SendFailure, Sent, SimConfig};
use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn client(s: &TestServer) -> RestClient {
    RestClient::new(
        &s.endpoint(),
        "codechat",
        Token::new(s.sim.mint_token("codechat", None)),
    )
}

fn chat(i: usize) -> String {
    format!("55119000000{i:02}@s.whatsapp.net")
}

/// The sends of `chat`, in arrival order.
fn of_chat<'a>(sent: &'a [Sent], chat: &str) -> Vec<&'a Sent> {
    sent.iter().filter(|s| s.chat == chat).collect()
}

/// Every message arrived exactly once: the simulator's ids are the posted ones, no more, no
/// fewer, no repeats.
fn exactly_once(sent: &[Sent], posted: &[Outgoing]) {
    let ids: Vec<&str> = sent.iter().map(|s| s.id.as_str()).collect();
    let unique: HashSet<&str> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "a message was sent twice: {ids:?}");
    let wanted: HashSet<&str> = posted.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(unique, wanted, "the sent ids are not the posted ones");
}

#[actix_rt::test]
async fn messages_are_paced_kept_in_order_per_chat_and_sent_once() {
    let s = start_sim(SimConfig::default());
    let (rate, per_chat) = (20.0, Duration::from_millis(150));
    let outbox = Outbox::new(
        client(&s),
        Pacing::default().rate(rate).per_chat(per_chat).jitter(0.25),
    );
    let posted: Vec<Outgoing> = (0..40)
        .map(|i| Outgoing::text(chat(i % 4), format!("message {i}")))
        .collect();
    let mut receipts = Vec::new();
    for m in &posted {
        receipts.push(outbox.post(m.clone()).await.unwrap());
    }
    for r in receipts {
        assert!(matches!(
            r.await.unwrap(),
            Outcome::Sent { attempts: 1, .. }
        ));
    }
    let sent = s.sim.sent();
    exactly_once(&sent, &posted);
    for c in 0..4 {
        let mine = of_chat(&sent, &chat(c));
        let texts: Vec<&str> = mine.iter().map(|s| s.text.as_str()).collect();
        let wanted: Vec<String> = (0..40)
            .filter(|i| i % 4 == c)
            .map(|i| format!("message {i}"))
            .collect();
        assert_eq!(texts, wanted, "chat {c} out of order");
        // The next message of a chat starts only after the previous one was answered, plus
        // the interval: arrivals at least that far apart.
        for pair in mine.windows(2) {
            let gap = pair[1].at_ms - pair[0].at_ms;
            assert!(gap >= 150, "chat {c}: two messages {gap} ms apart");
        }
    }
    // Starts are at least 1/rate apart; an arrival can only be moved by the network's delay,
    // so a one-second window holds at most one more than the rate.
    let most = sent
        .iter()
        .map(|a| {
            sent.iter()
                .filter(|b| b.at_ms >= a.at_ms && b.at_ms < a.at_ms + 1000)
                .count()
        })
        .max()
        .unwrap();
    assert!(
        most <= 21,
        "{most} messages in one second at a rate of 20/s"
    );
    let stats = outbox.stats();
    assert_eq!(
        (stats.queued, stats.sent, stats.retried, stats.failed),
        (0, 40, 0, 0)
    );
}

#[actix_rt::test]
async fn a_429_pauses_every_send_for_its_retry_after_and_nothing_is_sent_twice() {
    let s = start_sim(SimConfig::default());
    let outbox = Outbox::new(client(&s), fast_pacing());
    s.sim.fail_sends(429, Some(1), 2);
    let start = now_ms();
    // One chat: its messages go one at a time, so the first meets both refusals.
    let posted: Vec<Outgoing> = (0..6)
        .map(|i| Outgoing::text(chat(0), format!("m{i}")))
        .collect();
    let mut receipts = Vec::new();
    for m in &posted {
        receipts.push(outbox.post(m.clone()).await.unwrap());
    }
    let mut attempts = Vec::new();
    for r in receipts {
        match r.await.unwrap() {
            Outcome::Sent { attempts: a, .. } => attempts.push(a),
            other => panic!("{other:?}"),
        }
    }
    // The first message was refused twice, each time pausing all sends for a second.
    assert_eq!(attempts, [3, 1, 1, 1, 1, 1]);
    let sent = s.sim.sent();
    exactly_once(&sent, &posted);
    assert!(
        sent[0].at_ms >= start + 2000,
        "sent {} ms after two 429s asking for a second each",
        sent[0].at_ms - start
    );
    let texts: Vec<&str> = sent.iter().map(|s| s.text.as_str()).collect();
    assert_eq!(texts, ["m0", "m1", "m2", "m3", "m4", "m5"], "order kept");
    assert_eq!(outbox.stats().retried, 2);
}

#[actix_rt::test]
async fn a_lost_answer_is_looked_up_and_the_message_is_never_sent_twice() {
    let s = start_sim(SimConfig::default());
    let outbox = Outbox::new(client(&s), fast_pacing());
    let to = chat(1);
    // A first send: its answer shows that the server keeps what it sends.
    let first = Outgoing::text(&to, "first");
    outbox.send(first.clone()).await.unwrap();
    // Refused with a 500 and not sent: the lookup does not find it, so it goes again.
    s.sim.fail_sends(500, None, 1);
    let refused = Outgoing::text(&to, "refused once");
    let outcome = outbox.send(refused.clone()).await.unwrap();
    assert!(
        matches!(outcome, Outcome::Sent { attempts: 2, .. }),
        "{outcome:?}"
    );
    // Sent, and the answer a 500: the lookup finds it, and it is not sent again.
    s.sim.fail_next_sends(
        SendFailure {
            status: 502,
            retry_after: None,
            delivered: true,
        },
        1,
    );
    let lost = Outgoing::text(&to, "answer lost");
    let outcome = outbox.send(lost.clone()).await.unwrap();
    assert_eq!(
        outcome,
        Outcome::Found {
            id: lost.id.clone(),
            attempts: 1
        }
    );
    exactly_once(&s.sim.sent(), &[first, refused, lost]);
    let stats = outbox.stats();
    assert_eq!((stats.sent, stats.found, stats.failed), (3, 1, 0));
}

#[actix_rt::test]
async fn a_server_that_keeps_nothing_leaves_a_lost_answer_in_doubt_and_unsent_again() {
    let s = start_sim(SimConfig::default());
    s.sim.set_saving(false);
    let outbox = Outbox::new(client(&s), fast_pacing());
    s.sim.fail_next_sends(
        SendFailure {
            status: 500,
            retry_after: None,
            delivered: true,
        },
        1,
    );
    let m = Outgoing::text(chat(1), "in doubt");
    let e = outbox.send(m.clone()).await.unwrap_err();
    assert!(matches!(e, OutboxError::InDoubt { .. }), "{e}");
    assert!(e.to_string().contains("never sent twice"), "{e}");
    exactly_once(&s.sim.sent(), &[m]);
    assert_eq!(outbox.stats().in_doubt, 1);
}

#[actix_rt::test]
async fn a_refusal_fails_that_message_only() {
    let s = start_sim(SimConfig::default());
    let outbox = Outbox::new(client(&s), fast_pacing());
    s.sim.fail_sends(400, None, 1);
    let bad = outbox.post(Outgoing::text(chat(1), "bad")).await.unwrap();
    let good = outbox.post(Outgoing::text(chat(1), "good")).await.unwrap();
    let e = bad.await.unwrap_err();
    assert!(
        matches!(
            e,
            OutboxError::Refused(RestError::Rejected { status: 400, .. })
        ),
        "{e}"
    );
    good.await.unwrap();
    let texts: Vec<String> = s.sim.sent().into_iter().map(|s| s.text).collect();
    assert_eq!(texts, ["good"]);
    let e = outbox
        .post(Outgoing::text(" ", "nobody"))
        .await
        .unwrap_err();
    assert!(matches!(e, OutboxError::Refused(RestError::NoRecipient)));
}

#[actix_rt::test]
async fn typing_is_shown_for_a_time_that_grows_with_the_text() {
    let s = start_sim(SimConfig::default());
    let typing = Typing {
        per_char: Duration::from_millis(2),
        min: Duration::from_millis(20),
        max: Duration::from_millis(100),
    };
    let outbox = Outbox::new(client(&s), fast_pacing().typing(Some(typing)));
    outbox.send(Outgoing::text(chat(1), "hi")).await.unwrap();
    outbox
        .send(Outgoing::text(chat(1), "x".repeat(30)))
        .await
        .unwrap();
    outbox
        .send(Outgoing::text(chat(1), "x".repeat(500)))
        .await
        .unwrap();
    let typed: Vec<u64> = s.sim.sent().iter().map(|s| s.typing_ms).collect();
    assert_eq!(typed, [20, 60, 100]);
}

#[actix_rt::test]
async fn a_daily_cap_holds_the_rest_back() {
    let s = start_sim(SimConfig::default());
    let outbox = Outbox::new(client(&s), fast_pacing().daily_cap(Some(2)));
    let mut receipts = Vec::new();
    for i in 0..3 {
        receipts.push(
            outbox
                .post(Outgoing::text(chat(i), format!("m{i}")))
                .await
                .unwrap(),
        );
    }
    let third = receipts.pop().unwrap();
    for r in receipts {
        r.await.unwrap();
    }
    assert_eq!(s.sim.sent().len(), 2);
    assert_eq!(outbox.stats().queued, 1, "the third waits for tomorrow");
    assert_eq!(outbox.stop().await, 1);
    assert!(matches!(third.await, Err(OutboxError::Stopped)));
    assert_eq!(s.sim.sent().len(), 2);
}

/// A server that takes sends and never answers them, counting them.
fn never_answers(sends: Arc<AtomicUsize>) -> hostile::Hostile {
    hostile::serve(move |_stream, request, stats: &Stats| {
        if request.path().starts_with("/message/sendText") {
            sends.fetch_add(1, Ordering::AcqRel);
        }
        hostile::hold(stats);
    })
}

fn rest_for(url: &str, timeout: Duration) -> RestClient {
    RestClient::new(
        &Endpoint::parse(url).unwrap(),
        "codechat",
        Token::new("secret"),
    )
    .timeout(timeout)
    .retries(0)
}

#[actix_rt::test]
async fn a_full_outbox_waits_or_refuses_and_stop_always_works_on_a_server_that_never_answers() {
    let sends = Arc::new(AtomicUsize::new(0));
    let server = never_answers(sends.clone());
    let rest = rest_for(&server.url(), Duration::from_secs(600));
    let failing = Outbox::new(
        rest.clone(),
        fast_pacing().capacity(2).when_full(WhenFull::Fail),
    );
    let _a = failing.post(Outgoing::text(chat(1), "a")).await.unwrap();
    let _b = failing.post(Outgoing::text(chat(2), "b")).await.unwrap();
    let e = failing
        .post(Outgoing::text(chat(3), "c"))
        .await
        .unwrap_err();
    assert!(matches!(e, OutboxError::Full { capacity: 2 }), "{e}");
    assert!(e.to_string().contains("nothing was queued"));

    let waiting = Outbox::new(rest, fast_pacing().capacity(1).per_chat(Duration::ZERO));
    let held = waiting.post(Outgoing::text(chat(1), "a")).await.unwrap();
    until("the first send to reach the server", || {
        sends.load(Ordering::Acquire) == 3
    })
    .await;
    let blocked = {
        let waiting = waiting.clone();
        actix_rt::spawn(async move { waiting.post(Outgoing::text(chat(2), "b")).await })
    };
    // Stopping answers at once though a send hangs, and lets the blocked caller go.
    let dropped = tokio::time::timeout(DEADLINE, waiting.stop())
        .await
        .expect("stop hung");
    assert_eq!(dropped, 0, "the one message is in flight, not queued");
    let e = tokio::time::timeout(DEADLINE, blocked)
        .await
        .expect("the blocked caller was never let go")
        .unwrap()
        .unwrap_err();
    assert!(matches!(e, OutboxError::Stopped), "{e}");
    drop(held);
    assert_eq!(sends.load(Ordering::Acquire), 3, "nothing was sent again");
}

/// Answers `sendText` with `answer` (counting the sends) and `findMessages` with `lookup`.
fn answering(
    answer: &'static str,
    lookup: &'static str,
    sends: Arc<AtomicUsize>,
    lookups: Arc<AtomicUsize>,
) -> hostile::Hostile {
    hostile::serve(move |mut stream: TcpStream, request, _stats: &Stats| {
        let reply = if request.path().starts_with("/message/sendText") {
            sends.fetch_add(1, Ordering::AcqRel);
            answer
        } else {
            lookups.fetch_add(1, Ordering::AcqRel);
            lookup
        };
        let _ = stream.write_all(reply.as_bytes());
    })
}

#[actix_rt::test]
async fn answers_cut_short_or_garbage_never_make_a_second_send() {
    // The answer's head promises a body the server never finishes: in doubt. The lookups
    // answer garbage, so the outbox never learns, and gives up without sending again.
    let sends = Arc::new(AtomicUsize::new(0));
    let lookups = Arc::new(AtomicUsize::new(0));
    let server = answering(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\nConnection: close\r\n\r\n{\"key",
        "HTTP/1.1 200 OK\r\nContent-Length: 9\r\nConnection: close\r\n\r\n\x00\x7fgarbag",
        sends.clone(),
        lookups.clone(),
    );
    let outbox = Outbox::new(
        rest_for(&server.url(), Duration::from_secs(5)),
        fast_pacing().retries(3),
    );
    let e = outbox
        .send(Outgoing::text(chat(1), "hello"))
        .await
        .unwrap_err();
    assert!(matches!(e, OutboxError::InDoubt { .. }), "{e}");
    assert_eq!(
        sends.load(Ordering::Acquire),
        1,
        "sent again though it may have arrived"
    );
    assert_eq!(
        lookups.load(Ordering::Acquire),
        3,
        "looked up once per retry left"
    );

    // A 429 asking for a pause of 30 years is capped, and stop still works during it.
    let sends = Arc::new(AtomicUsize::new(0));
    let server = answering(
        "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 999999999\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
        "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        sends.clone(),
        Arc::default(),
    );
    let outbox = Outbox::new(
        rest_for(&server.url(), Duration::from_secs(5)),
        fast_pacing().max_pause(Duration::from_secs(3600)),
    );
    let receipt = outbox.post(Outgoing::text(chat(1), "later")).await.unwrap();
    until("the refused send", || sends.load(Ordering::Acquire) == 1).await;
    let behind = outbox
        .post(Outgoing::text(chat(1), "behind"))
        .await
        .unwrap();
    // 2 dropped when the 429 was in, 1 when it was still on its way (the first then ends as
    // it comes back): neither was sent, and both say so.
    let dropped = tokio::time::timeout(DEADLINE, outbox.stop()).await.unwrap();
    assert!(dropped == 1 || dropped == 2, "{dropped}");
    assert!(matches!(receipt.await, Err(OutboxError::Stopped)));
    assert!(matches!(behind.await, Err(OutboxError::Stopped)));
    assert_eq!(sends.load(Ordering::Acquire), 1);
}

#[actix_rt::test]
async fn the_same_id_posted_twice_is_sent_once() {
    let s = start_sim(SimConfig::default());
    let outbox = Outbox::new(
        client(&s),
        fast_pacing().per_chat(Duration::from_millis(50)),
    );
    let blocker = outbox.post(Outgoing::text(chat(1), "first")).await.unwrap();
    let m = Outgoing::text(chat(1), "once");
    let a = outbox.post(m.clone()).await.unwrap();
    let b = outbox.post(m.clone()).await.unwrap();
    blocker.await.unwrap();
    assert_eq!(a.await.unwrap().id(), m.id);
    assert_eq!(b.await.unwrap().id(), m.id);
    let texts: HashMap<String, usize> =
        s.sim.sent().into_iter().fold(HashMap::new(), |mut n, s| {
            *n.entry(s.text).or_default() += 1;
            n
        });
    assert_eq!(texts.get("once"), Some(&1));
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Workers queue in JetStream; a sender dies holding messages (some sent, none acknowledged);
/// the next sender delivers the rest, looking up each message it is given again: every message
/// arrives exactly once, each chat's in order.
#[actix_rt::test]
async fn the_jetstream_outbox_delivers_each_message_once_across_a_sender_that_dies() {
    use common::nats_server::NatsServer;
    use eventsock::nats::{JetStreamOutbox, OutboxConfig, OutboxSender};
    use eventsock::rest::Postbox;
    let Some(nats) = NatsServer::started().await else {
        return;
    };
    let s = start_sim(SimConfig::default());
    let cfg = || OutboxConfig::default().ack_wait(Duration::from_secs(1));
    let queue = JetStreamOutbox::connect(&nats.url(), cfg()).await.unwrap();
    let posted: Vec<Outgoing> = (0..30)
        .map(|i| Outgoing::text(chat(i % 3), format!("m{i:02}")))
        .collect();
    for m in &posted {
        // As a worker's Ctx does: the receipt says it is queued.
        let receipt = queue.post("codechat", m.clone()).await.unwrap();
        assert_eq!(receipt.await.unwrap(), Outcome::Queued { id: m.id.clone() });
    }
    // The same message queued again (a worker retrying) is stored once.
    assert_eq!(
        queue.enqueue("codechat", &posted[0]).await.unwrap(),
        1,
        "the first message's place in the stream, not a new one"
    );

    let pacing = || fast_pacing().rate(40.0);
    let first = Outbox::new(client(&s), pacing());
    let run =
        OutboxSender::new(nats.url(), first.clone(), cfg()).run(std::future::pending(), |_, _| {});
    // It dies once 10 messages are out: the run is dropped mid-way, acknowledging nothing
    // more, and its outbox drops what it held (the sends in flight still land).
    tokio::select! {
        _ = run => panic!("the sender stopped by itself"),
        () = until("10 sends", || s.sim.sent().len() >= 10) => {}
    }
    first.stop().await;
    let sent_by_first = s.sim.sent().len();

    let second = Outbox::new(client(&s), pacing());
    let sim = s.sim.clone();
    let stats = OutboxSender::new(nats.url(), second, cfg())
        .run(
            until("every message", move || sim.sent().len() >= 30),
            |_, _| {},
        )
        .await
        .unwrap();
    let sent = s.sim.sent();
    exactly_once(&sent, &posted);
    for c in 0..3 {
        let texts: Vec<&str> = of_chat(&sent, &chat(c))
            .iter()
            .map(|s| s.text.as_str())
            .collect();
        let mut sorted = texts.clone();
        sorted.sort();
        assert_eq!(texts, sorted, "chat {c} out of order");
    }
    // What the first had taken came back; the second sent only what was not out yet.
    assert!(stats.redelivered > 0, "{stats:?}");
    assert!(stats.sent as usize <= 30 - sent_by_first, "{stats:?}");
    assert_eq!(stats.dead, 0);
    println!("first sender: {sent_by_first} sent; second: {stats:?}");
}

#[actix_rt::test]
async fn a_chat_keeps_its_interval_after_its_queue_emptied() {
    let s = start_sim(SimConfig::default());
    let outbox = Outbox::new(
        client(&s),
        fast_pacing().per_chat(Duration::from_millis(300)),
    );
    outbox.send(Outgoing::text(chat(1), "a")).await.unwrap();
    // Nothing waits for the chat now; the next message still waits out its interval.
    outbox.send(Outgoing::text(chat(1), "b")).await.unwrap();
    let sent = s.sim.sent();
    let gap = sent[1].at_ms - sent[0].at_ms;
    assert!(gap >= 300, "two messages to one chat {gap} ms apart");
}

/// An outbox that learnt no pairs (a JetStream sender's) paces a person's messages to their
/// LID and to their number as one chat when the messages say who the person is
/// (`Outgoing::person`, which a handler's context sets); a message of another chat goes at once.
#[actix_rt::test]
async fn messages_that_name_their_person_are_paced_as_one_chat() {
    let s = start_sim(SimConfig::default());
    let outbox = Outbox::new(
        client(&s),
        fast_pacing().per_chat(Duration::from_millis(300)),
    );
    let (phone, lid) = ("5511988887777@s.whatsapp.net", "123456789012345@lid");
    outbox.send(Outgoing::text(phone, "a")).await.unwrap();
    let by_lid = Outgoing::text(lid, "b").for_person(phone);
    assert_eq!(by_lid.person.as_deref(), Some(phone));
    // It travels with the message (through a JetStream outbox, as JSON).
    let json = serde_json::to_value(&by_lid).unwrap();
    assert_eq!(json["person"], phone);
    assert_eq!(Outgoing::text(phone, "c").for_person(phone).person, None);
    outbox.send(by_lid).await.unwrap();
    outbox.send(Outgoing::text(chat(2), "other")).await.unwrap();
    let sent = s.sim.sent();
    let at = |text: &str| sent.iter().find(|m| m.text == text).unwrap().at_ms;
    assert!(at("b") - at("a") >= 300, "{sent:?}");
    assert!(at("other") - at("b") < 300, "{sent:?}");
}

#[actix_rt::test]
async fn stopping_while_a_message_is_in_doubt_says_it_may_have_been_sent() {
    let s = start_sim(SimConfig::default());
    let outbox = Outbox::new(client(&s), fast_pacing().backoff(Duration::from_secs(60)));
    s.sim.fail_next_sends(
        SendFailure {
            status: 500,
            retry_after: None,
            delivered: true,
        },
        1,
    );
    let receipt = outbox.post(Outgoing::text(chat(1), "maybe")).await.unwrap();
    until("the send", || s.sim.sent().len() == 1).await;
    eventually("the 500 to leave it in doubt", || async {
        (outbox.stats().doubts == 1).then_some(())
    })
    .await;
    assert_eq!(outbox.stats().retried, 0, "not looked up yet");
    // Waiting a minute for its lookup: stopping now cannot say it was not sent.
    outbox.stop().await;
    let e = receipt.await.unwrap_err();
    assert!(matches!(e, OutboxError::StoppedInDoubt), "{e}");
    assert!(
        e.to_string().contains("may or may not have been sent"),
        "{e}"
    );
}

#[actix_rt::test]
async fn a_sent_id_is_never_sent_again_and_a_taken_id_is_refused() {
    let s = start_sim(SimConfig::default());
    let outbox = Outbox::new(client(&s), fast_pacing());
    let m = Outgoing::text(chat(1), "once");
    outbox.send(m.clone()).await.unwrap();
    let again = outbox.send(m.clone()).await.unwrap();
    assert_eq!(
        again,
        Outcome::Found {
            id: m.id.clone(),
            attempts: 0
        }
    );
    let slow = Outbox::new(client(&s), fast_pacing().per_chat(Duration::from_secs(60)));
    slow.send(Outgoing::text(chat(2), "first")).await.unwrap();
    let queued = Outgoing::text(chat(2), "queued");
    let _waiting = slow.post(queued.clone()).await.unwrap();
    let e = slow
        .send(Outgoing::text(chat(2), "other text").with_id(queued.id.clone()))
        .await
        .unwrap_err();
    assert!(matches!(e, OutboxError::IdTaken(_)), "{e}");
    assert_eq!(s.sim.sent().len(), 2);
    slow.stop().await;
}

/// A handler run twice on the same message (a NATS redelivery after a failure) makes the same
/// reply, with the same id: it is sent once.
#[actix_rt::test]
async fn a_handler_run_again_on_the_same_message_replies_once() {
    use eventsock::core::{Channel, EventName};
    use eventsock::prelude::*;
    let s = start_sim(SimConfig::default());
    let router = Router::builder()
        .pacing(fast_pacing())
        .on(|m: Msg| async move {
            m.cx.reply("pong").await?;
            m.cx.send("and again").await?;
            Ok(())
        })
        .build();
    let dispatcher = eventsock::handler::Dispatcher::new(router).rest(client(&s));
    let event = EventName::from(EventKind::MessagesUpsert);
    let meta = |_: Option<&eventsock::core::Frame<'_>>| live_meta(&event);
    let frame = r#"{"keyId":"M1","keyFromMe":false,"keyRemoteJid":"5511900000001@s.whatsapp.net","messageType":"conversation","content":{"text":"!ping"},"messageTimestamp":1}"#;
    for _ in 0..2 {
        let tally = dispatcher
            .handle(&event, Some(Channel::Legacy), frame, &meta, true)
            .await;
        assert_eq!(tally.handled, 1);
    }
    let outbox = dispatcher.outboxes().pop().unwrap();
    outbox.flush().await.unwrap();
    let texts: Vec<String> = s.sim.sent().into_iter().map(|s| s.text).collect();
    assert_eq!(texts, ["pong", "and again"]);
    assert_eq!(
        outbox.stats().sent,
        2,
        "the second run's two were not sent again"
    );
}

/// A sender stopped cleanly gives back what it has not sent, marked unsent: the next sender
/// sends it at once, even on a server that keeps no sent messages (where a lookup could not
/// tell, and the message would otherwise end in doubt).
#[actix_rt::test]
async fn a_sender_stopped_cleanly_gives_back_unsent_messages_the_next_one_sends() {
    use common::nats_server::NatsServer;
    use eventsock::nats::{JetStreamOutbox, OutboxConfig, OutboxSender};
    let Some(nats) = NatsServer::started().await else {
        return;
    };
    let s = start_sim(SimConfig::default());
    s.sim.set_saving(false);
    let queue = JetStreamOutbox::connect(&nats.url(), OutboxConfig::default())
        .await
        .unwrap();
    let posted: Vec<Outgoing> = (0..12)
        .map(|i| Outgoing::text(chat(i % 2), format!("m{i:02}")))
        .collect();
    for m in &posted {
        queue.enqueue("codechat", m).await.unwrap();
    }
    let cfg = || OutboxConfig::default().ack_wait(Duration::from_secs(1));
    // One message every 300 ms: stopped after 3, with the rest queued in its outbox.
    let slow = Outbox::new(client(&s), fast_pacing().rate(3.0));
    let sim = s.sim.clone();
    let first = OutboxSender::new(nats.url(), slow, cfg())
        .run(until("3 sends", move || sim.sent().len() >= 3), |_, _| {})
        .await
        .unwrap();
    assert!(first.left > 0, "{first:?}");
    let sim = s.sim.clone();
    let second = OutboxSender::new(nats.url(), Outbox::new(client(&s), fast_pacing()), cfg())
        .run(
            until("every message", move || sim.sent().len() >= 12),
            |_, _| {},
        )
        .await
        .unwrap();
    exactly_once(&s.sim.sent(), &posted);
    assert_eq!(second.dead, 0, "nothing given up as in doubt: {second:?}");
    assert_eq!(
        second.sent as usize + first.sent as usize,
        12,
        "{first:?} {second:?}"
    );
}

/// Reactions and read receipts from a handler go through the outbox with its messages: in the
/// order the handler asked for them, the reaction paced like a message (its chat waits its
/// interval after it), the read receipt not.
#[actix_rt::test]
async fn reactions_and_read_receipts_go_through_the_outbox_in_order() {
    use eventsock::prelude::*;
    let per_chat = Duration::from_millis(200);
    let router = Router::builder()
        .pacing(fast_pacing().per_chat(per_chat))
        .on(|m: Msg| async move {
            if m.is_from_me() {
                return Ok(());
            }
            m.cx.reply("first").await?;
            m.cx.react("👍").await?;
            m.cx.mark_read().await?;
            m.cx.send("second").await?;
            Ok(())
        })
        .build();
    let (running, sim) = started(router, Settings::default()).await;
    let mut ping: serde_json::Value =
        serde_json::from_str(include_str!("fixtures/legacy/messages.upsert.json")).unwrap();
    ping["keyId"] = "R1".into();
    sim.emit("codechat", "messages.upsert", &ping);
    until("the second message", || sim.sent().len() >= 2).await;
    running.stop().await;
    let calls: Vec<String> = sim
        .requests()
        .into_iter()
        .map(|r| {
            r.path
                .rsplit_once('/')
                .map(|(p, _)| p.to_owned())
                .unwrap_or(r.path)
        })
        .filter(|p| p != "/chat/findMessages")
        .collect();
    assert_eq!(
        calls,
        [
            "/message/sendText",
            "/message/sendReaction",
            "/chat/markMessageAsRead",
            "/message/sendText"
        ]
    );
    let sent = sim.sent();
    assert_eq!(
        sent.iter().map(|s| s.text.as_str()).collect::<Vec<_>>(),
        ["first", "second"]
    );
    assert!(
        sent[1].at_ms - sent[0].at_ms >= per_chat.as_millis() as u64,
        "the reaction between them waited its turn: {} ms",
        sent[1].at_ms - sent[0].at_ms
    );
}

/// With the NATS outbox, the sender follows the receipts of what it sends: the simulator
/// acknowledges each send on `messages.update` (SERVER_ACK, then DELIVERY_ACK), an ingest fed
/// by a supervisor (as `eventsock bridge` runs it) publishes them to JetStream, and the
/// sender's outbox, subscribed to them, counts them.
#[actix_rt::test]
async fn the_jetstream_sender_follows_the_receipts_of_what_it_sends() {
    use common::nats_server::NatsServer;
    use eventsock::nats::{Ingest, JetStreamOutbox, OutboxConfig, OutboxSender, StreamConfig};
    use eventsock::rest::{Delivery, Postbox};
    let Some(nats) = NatsServer::started().await else {
        return;
    };
    let s = start_sim(SimConfig::default());
    let mut events = StreamConfig::default();
    events.stream = "RECEIPTS".into();
    events.prefix = "receipts".into();
    let ingest = Ingest::start(&nats.url(), events).await.unwrap();
    let token = Token::new(s.sim.mint_token("codechat", None));
    let _bridge = eventsock::client::Supervisor::builder()
        .config(fast_config())
        .source(eventsock::core::Source::new(s.endpoint(), token).unwrap())
        .router(
            Router::builder()
                .raw(
                    [eventsock::core::EventKind::MessagesUpdate.into()],
                    ingest.clone().recipient::<eventsock::core::RawFrame>(),
                )
                .build(),
        )
        .start()
        .unwrap();
    until("the bridge's messages.update socket", || {
        s.sim.is_subscribed("codechat", "messages.update")
    })
    .await;

    let queue = JetStreamOutbox::connect(&nats.url(), OutboxConfig::default())
        .await
        .unwrap();
    for i in 0..3 {
        let m = Outgoing::text(chat(i), format!("m{i}"));
        queue.post("codechat", m).await.unwrap();
    }
    let outbox = Outbox::new(client(&s), fast_pacing());
    let probe = outbox.clone();
    let stats = OutboxSender::new(nats.url(), outbox.clone(), OutboxConfig::default())
        .receipts_from("receipts")
        .run(
            until("3 messages delivered", move || {
                probe.stats().delivery.count(Delivery::Delivered) >= 3
            }),
            |_, _| {},
        )
        .await
        .unwrap();
    assert_eq!(stats.sent, 3, "{stats:?}");
    assert_eq!(s.sim.sent().len(), 3);
    let receipts = outbox.stats().delivery;
    assert_eq!(
        (
            receipts.count(Delivery::Sent),
            receipts.count(Delivery::Delivered),
            receipts.to_delivered.count
        ),
        (3, 3, 3),
        "{receipts:?}"
    );
}
