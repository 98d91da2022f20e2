//! The test kit runs everything a handler can do, on the virtual clock: replies through the
//! outbox and its pacing, reactions, a failing or panicking handler, events other than
//! messages, a gap recovered over REST, a send the server refuses.

use eventsock::prelude::*;
use eventsock::testkit::TestKit;
use serde_json::json;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const DAY: Duration = Duration::from_secs(24 * 3600);

/// 1,440 answers to one chat, one a minute: a day of pacing.
#[actix_rt::test]
async fn a_day_of_pacing_runs_on_the_virtual_clock() {
    let router = Router::builder()
        .pacing(
            Pacing::default()
                .per_chat(Duration::from_secs(60))
                .jitter(0.0)
                .typing(None)
                .daily_cap(None)
                .capacity(2_000),
        )
        .on(|m: Msg| async move {
            if m.text() == Some("!day") {
                for minute in 0..1440 {
                    m.cx.send(&format!("minute {minute}")).await?;
                }
            }
            Ok(())
        })
        .build();
    let real = Instant::now();
    let kit = TestKit::new(router);
    let chat = kit.chat("5511988887777");
    let virtual_start = eventsock::core::clock::now_ms();
    chat.says("!day").await;
    let replies = chat.replies().await;
    let virtual_elapsed = eventsock::core::clock::now_ms() - virtual_start;
    println!(
        "a day of pacing: {} answers over {} of virtual time, in {} of real time",
        replies.len(),
        eventsock::core::human::duration(Duration::from_millis(virtual_elapsed)),
        eventsock::core::human::duration(real.elapsed())
    );
    assert_eq!(replies.len(), 1440);
    assert_eq!(replies[0], "minute 0");
    assert_eq!(replies[1439], "minute 1439");
    let sent = kit.sent();
    for pair in sent.windows(2) {
        let gap = pair[1].at_ms - pair[0].at_ms;
        assert!(gap >= 60_000, "answers {gap} ms apart");
    }
    let span = sent[1439].at_ms - sent[0].at_ms;
    assert!(
        span >= (DAY - Duration::from_secs(60)).as_millis() as u64,
        "{span} ms"
    );
}

#[actix_rt::test]
async fn reactions_and_read_receipts_reach_the_server() {
    let router = Router::builder()
        .on(|m: Msg| async move {
            if !m.is_from_me() {
                m.cx.mark_read().await?;
                m.cx.react("👍").await?;
            }
            Ok(())
        })
        .build();
    let kit = TestKit::new(router);
    kit.chat("5511988887777").says("hello").await;
    let paths: Vec<String> = kit
        .sim()
        .requests()
        .into_iter()
        .filter(|r| r.status == 200 || r.status == 201)
        .map(|r| r.path)
        .collect();
    assert_eq!(
        paths,
        [
            "/chat/markMessageAsRead/codechat",
            "/message/sendReaction/codechat"
        ]
    );
}

#[actix_rt::test]
async fn a_failing_or_panicking_handler_costs_its_event_only() {
    let router = Router::builder()
        .on(|m: Msg| async move {
            match m.text() {
                _ if m.is_from_me() => Ok(()),
                Some("fail") => Err("the kitchen is closed".into()),
                Some("panic") => panic!("a bug"),
                _ => {
                    m.cx.reply("ok").await?;
                    Ok(())
                }
            }
        })
        .build();
    let kit = TestKit::new(router);
    let chat = kit.chat("5511988887777");
    let failed = chat.says("fail").await;
    assert_eq!((failed.handled, failed.failed), (0, 1));
    assert!(
        failed.errors[0].contains("the kitchen is closed"),
        "{:?}",
        failed.errors
    );
    let panicked = chat.says("panic").await;
    assert_eq!(panicked.failed, 1);
    assert!(
        panicked.errors[0].contains("a bug"),
        "{:?}",
        panicked.errors
    );
    let fine = chat.says("hello").await;
    assert_eq!(fine.handled, 1);
    assert_eq!(chat.replies().await, ["ok"]);
}

#[actix_rt::test]
async fn events_other_than_messages_reach_their_handlers() {
    let receipts = Arc::new(AtomicU64::new(0));
    let counted = receipts.clone();
    let router = Router::builder()
        .on(move |u: Received<legacy::MessagesUpdate>| {
            let counted = counted.clone();
            async move {
                if u.status.as_deref() == Some("READ") {
                    counted.fetch_add(1, Ordering::Relaxed);
                }
                Ok(())
            }
        })
        .build();
    let kit = TestKit::new(router);
    for status in ["SERVER_ACK", "DELIVERY_ACK", "READ"] {
        let update = json!({
            "id": "3A0000000000000001",
            "remoteJid": "5511988887777@s.whatsapp.net",
            "fromMe": true,
            "status": status,
            "dateTime": "2026-12-06T12:00:00.000Z",
        });
        let tally = kit.emit("messages.update", &update).await;
        assert_eq!(tally.handled, 1, "{:?}", tally.problems);
    }
    assert_eq!(receipts.load(Ordering::Relaxed), 1);
}

#[actix_rt::test]
async fn a_gap_is_recovered_over_rest_in_order_and_once() {
    let router = Router::builder()
        .on(|m: Msg| async move {
            if let (false, Some(text)) = (m.is_from_me(), m.text()) {
                m.cx.reply(&format!("got {text}")).await?;
            }
            Ok(())
        })
        .build();
    let kit = TestKit::new(router);
    let chat = kit.chat("5511988887777");
    chat.says("before").await;
    kit.disconnect();
    for text in ["one", "two", "three"] {
        let tally = chat.says(text).await;
        assert_eq!(tally.handled, 0, "lost to the bot while disconnected");
    }
    // The three messages of the gap (the bot's answer to "before" came back live before the
    // gap, so the gate knows it as it knows "before").
    assert_eq!(kit.reconnect().await, Ok(3));
    chat.says("after").await;
    assert_eq!(
        chat.replies().await,
        ["got before", "got one", "got two", "got three", "got after"]
    );
}

#[actix_rt::test]
async fn a_send_the_server_refuses_for_a_while_is_retried_and_sent_once() {
    let router = Router::builder()
        .on(|m: Msg| async move {
            if !m.is_from_me() {
                m.cx.reply("pong").await?;
            }
            Ok(())
        })
        .build();
    let kit = TestKit::new(router);
    kit.sim().fail_sends(429, Some(30), 2);
    let chat = kit.chat("5511988887777");
    chat.says("!ping").await;
    assert_eq!(chat.replies().await, ["pong"]);
    let refused = kit
        .sim()
        .requests()
        .into_iter()
        .filter(|r| r.status == 429)
        .count();
    assert_eq!(refused, 2);
}

#[actix_rt::test]
async fn the_bot_s_own_messages_come_back_to_it_as_the_server_sends_them() {
    let own = Arc::new(AtomicU64::new(0));
    let counted = own.clone();
    let router = Router::builder()
        .on(move |m: Msg| {
            let counted = counted.clone();
            async move {
                if m.is_from_me() {
                    counted.fetch_add(1, Ordering::Relaxed);
                } else {
                    m.cx.reply("pong").await?;
                }
                Ok(())
            }
        })
        .build();
    let kit = TestKit::new(router);
    let chat = kit.chat("5511988887777");
    chat.says("!ping").await;
    chat.says("!ping").await;
    assert_eq!(chat.replies().await, ["pong", "pong"]);
    assert_eq!(own.load(Ordering::Relaxed), 2);
}

#[actix_rt::test]
#[should_panic(expected = "does it answer its own messages")]
async fn a_bot_that_answers_itself_forever_is_stopped_with_the_reason() {
    let router = Router::builder()
        .on(|m: Msg| async move {
            m.cx.reply("echo").await?;
            Ok(())
        })
        .build();
    let kit = TestKit::new(router);
    kit.chat("5511988887777").says("hi").await;
}

/// A bot that downloads the photos it is sent, tested in process: the kit's simulator serves
/// the media of the message it made, through the same `Ctx::download` as over HTTP.
#[actix_rt::test]
async fn a_bot_downloads_a_photo_it_is_sent() {
    let bot = Router::builder()
        .on(|msg: Msg| async move {
            if msg.is_from_me() || msg.cx.media().is_none() {
                return Ok(());
            }
            let mut bytes = Vec::new();
            let got = msg.cx.download(&mut bytes).await?;
            let kind = msg
                .cx
                .media()
                .map(|m| m.kind.to_string())
                .unwrap_or_default();
            let first = bytes.first().copied().unwrap_or_default();
            msg.cx
                .reply(&format!(
                    "{kind}, {} bytes of {}, starting with {first}",
                    got.size,
                    got.content_type.unwrap_or_default()
                ))
                .await?;
            Ok(())
        })
        .build();
    let kit = TestKit::new(bot);
    let photo = kit.sim().media_message(
        "5511988887777@s.whatsapp.net",
        "imageMessage",
        "image/jpeg",
        vec![0xff; 2048],
        Some("look"),
        None,
    );
    kit.emit("messages.upsert", &photo).await;
    let chat = kit.chat("5511988887777");
    assert_eq!(
        chat.replies().await,
        ["image, 2048 bytes of image/jpeg, starting with 255"]
    );
}
