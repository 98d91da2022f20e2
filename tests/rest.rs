//! The REST client against the simulator's endpoints, and against a server that never answers.

mod common;

use common::*;
use eventsock::core::{Endpoint, Token};
use eventsock::rest::{MessageKey, RestClient, RestError};
use eventsock::sim::SimConfig;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn client(s: &TestServer, instance: &str) -> RestClient {
    RestClient::new(
        &s.endpoint(),
        instance,
        Token::new(s.sim.mint_token(instance, None)),
    )
}

#[actix_rt::test]
async fn sends_text_and_the_message_comes_back() {
    let s = start_sim(SimConfig::default());
    let rest = client(&s, "codechat");
    let sent = rest.send_text("5511988887777", "pong").await.unwrap();
    assert_eq!(sent["content"]["text"], "pong");
    assert_eq!(sent["keyRemoteJid"], "5511988887777@s.whatsapp.net");
    let quote = eventsock::core::QuotedMessage {
        key_id: "3A5F".into(),
        key_from_me: false,
        key_remote_jid: "5511988887777@s.whatsapp.net".into(),
        message_type: "conversation".into(),
        content: json!({"text": "ping"}),
        message_timestamp: Some(1_747_310_400),
    };
    let quoted = rest.reply("5511988887777", "re", quote).await.unwrap();
    assert_eq!(quoted["content"]["contextInfo"]["stanzaId"], "3A5F");
    // The sent messages can be found again, as a bot does to resync after a gap.
    let found = rest
        .find_messages(json!({"keyId": sent["keyId"]}))
        .await
        .unwrap();
    assert_eq!(found.total, Some(1));
    let record = &found.records[0];
    assert_eq!(
        (&record["keyId"], &record["content"]),
        (&sent["keyId"], &sent["content"])
    );
}

/// `findMessages` as CodeChat's `fetchMessages` answers: saved rows (`Message` columns, no
/// `info` or `isGroup`, statuses in `MessageUpdate`), newest first, paged by `offset` and `page`,
/// filtered on its `where` columns; nothing found for what was emitted while saving was off.
#[actix_rt::test]
async fn find_messages_pages_newest_first_like_the_real_server() {
    let s = start_sim(SimConfig::default());
    let rest = client(&s, "codechat");
    let base = 1_747_310_400;
    for i in 0..120 {
        let m = json!({"keyId": format!("K{i:03}"), "keyFromMe": i % 2 == 0, "messageTimestamp": base + i,
                       "keyRemoteJid": "5511988887777@s.whatsapp.net", "content": {"text": format!("m{i}")},
                       "isGroup": false, "info": {"type": "notify"}});
        s.sim.emit("codechat", "messages.upsert", &m);
    }
    let page = |filter, size, n| rest.find_messages_page(filter, size, n);
    let first = page(json!({}), 50, 1).await.unwrap();
    assert_eq!(
        (first.total, first.pages, first.current_page),
        (Some(120), Some(3), Some(1))
    );
    let ids: Vec<&str> = first
        .records
        .iter()
        .map(|r| r["keyId"].as_str().unwrap())
        .collect();
    assert_eq!((ids.len(), ids[0], ids[49]), (50, "K119", "K070"));
    let row = &first.records[0];
    assert!(
        row.get("isGroup").is_none() && row.get("info").is_none(),
        "{row}"
    );
    assert_eq!(row["MessageUpdate"], json!([]));
    assert_eq!(row["messageTimestamp"], base + 119);
    let last = page(json!({}), 50, 3).await.unwrap();
    assert_eq!(last.records.len(), 20);
    assert_eq!(last.records[19]["keyId"], "K000");
    let mine = page(json!({"keyFromMe": true}), 50, 1).await.unwrap();
    assert_eq!(mine.total, Some(60));
    // The default page is 50.
    let default = rest.find_messages(json!({})).await.unwrap();
    assert_eq!(default.records.len(), 50);

    s.sim.set_saving(false);
    s.sim.emit(
        "codechat",
        "messages.upsert",
        &json!({"keyId": "UNSAVED", "messageTimestamp": base + 500}),
    );
    let found = rest
        .find_messages(json!({"keyId": "UNSAVED"}))
        .await
        .unwrap();
    assert_eq!(found.total, Some(0));
    assert_eq!(s.sim.find_requests(), 5);
}

#[actix_rt::test]
async fn reacts_marks_read_and_sets_presence() {
    let s = start_sim(SimConfig::default());
    let rest = client(&s, "codechat");
    let key = MessageKey {
        remote_jid: "5511988887777@s.whatsapp.net".into(),
        from_me: false,
        id: "3A5F".into(),
    };
    let reaction = rest.send_reaction(&key, "👍").await.unwrap();
    assert_eq!(reaction["content"]["text"], "👍");
    assert_eq!(rest.mark_as_read(&[key]).await.unwrap()["read"], "success");
    assert_eq!(
        rest.set_presence("5511988887777", "composing")
            .await
            .unwrap(),
        json!({"message": "success"})
    );
}

#[actix_rt::test]
async fn errors_are_typed_with_the_servers_body() {
    let s = start_sim(SimConfig::default());
    let rest = client(&s, "codechat");
    match rest.set_presence("5511988887777", "dancing").await {
        Err(RestError::Rejected { status: 400, body }) => {
            // The server's schema, in the server's words.
            assert_eq!(
                body["message"],
                json!([{"property": "presence",
                        "message": "presence is not one of enum values: unavailable,available,composing,recording,paused"}])
            )
        }
        other => panic!("expected a 400, got {other:?}"),
    }
    assert!(matches!(
        rest.mark_as_read(&[]).await,
        Err(RestError::Rejected { status: 400, .. })
    ));
    let stranger = RestClient::new(&s.endpoint(), "codechat", Token::new("not.a.token"));
    match stranger.send_text("1", "x").await {
        Err(RestError::Unauthorized { body }) => assert_eq!(body["status"], 401),
        other => panic!("expected a 401, got {other:?}"),
    }
    // A valid token for an instance the server does not have: its instance guard says so.
    match client(&s, "ghost").send_text("1", "x").await {
        Err(RestError::Rejected { status: 400, body }) => assert_eq!(
            body["message"],
            json!(["The \"ghost\" instance does not exist or is not connected"])
        ),
        other => panic!("expected a 400, got {other:?}"),
    }
    let shown = format!("{stranger:?} {:?}", stranger.send_text("1", "x").await);
    assert!(!shown.contains("not.a.token"), "{shown}");
}

#[actix_rt::test]
async fn only_idempotent_calls_are_retried_and_timeouts_are_typed() {
    // A server that accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    actix_rt::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            held.push(socket);
        }
    });
    let endpoint = Endpoint::parse(&format!("http://{addr}")).unwrap();
    let rest = RestClient::new(&endpoint, "codechat", Token::new("t.t.t"))
        .timeout(Duration::from_millis(150))
        .retries(2);
    assert!(matches!(
        rest.send_text("1", "x").await,
        Err(RestError::Timeout(_))
    ));
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "a send is never retried"
    );
    let key = MessageKey {
        remote_jid: "1@s.whatsapp.net".into(),
        from_me: false,
        id: "A".into(),
    };
    assert!(matches!(
        rest.mark_as_read(&[key]).await,
        Err(RestError::Timeout(_))
    ));
    until("the retries", || accepted.load(Ordering::SeqCst) == 4).await;
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        4,
        "one try and two retries"
    );

    // Nothing listening at all.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let rest = RestClient::new(
        &Endpoint::parse(&format!("http://{closed}")).unwrap(),
        "c",
        Token::new("t.t.t"),
    )
    .retries(0);
    assert!(matches!(
        rest.set_presence("1", "available").await,
        Err(RestError::Connect(_))
    ));
}

/// What an outbox is measured against: the simulator lists every send it accepted, in order,
/// and refuses the next sends on request, with `Retry-After`, sending nothing.
#[actix_rt::test]
async fn the_simulator_lists_what_it_was_sent_and_refuses_sends_on_request() {
    let s = start_sim(SimConfig::default());
    let rest = client(&s, "codechat");
    let http = awc::Client::default();
    let control = |path: &str| format!("{}/control/{path}", s.url());
    rest.send_text("5511988887777", "one").await.unwrap();
    let mut refuse = http
        .post(control("send-failures"))
        .send_json(&json!({"status": 429, "count": 2, "retryAfter": 3}))
        .await
        .unwrap();
    assert_eq!(refuse.status(), 200, "{:?}", refuse.body().await);
    for _ in 0..2 {
        let token = s.sim.mint_token("codechat", None);
        let response = http
            .post(format!("{}/message/sendText/codechat", s.url()))
            .bearer_auth(token)
            .send_json(&json!({"number": "5511988887777", "textMessage": {"text": "refused"}}))
            .await
            .unwrap();
        assert_eq!(response.status(), 429);
        assert_eq!(response.headers().get("retry-after").unwrap(), "3");
    }
    s.sim.fail_sends(500, None, 1);
    let e = rest
        .send_text("5511988887777", "refused")
        .await
        .unwrap_err();
    assert!(
        matches!(e, eventsock::rest::RestError::Server { status: 500, .. }),
        "{e}"
    );
    rest.send_text("120363000000000000@g.us", "two")
        .await
        .unwrap();

    let mut listed = http.get(control("sent")).send().await.unwrap();
    let sent: Value = listed.json().await.unwrap();
    let sent = sent.as_array().unwrap();
    let texts: Vec<(&str, &str)> = sent
        .iter()
        .map(|m| (m["chat"].as_str().unwrap(), m["text"].as_str().unwrap()))
        .collect();
    assert_eq!(
        texts,
        [
            ("5511988887777@s.whatsapp.net", "one"),
            ("120363000000000000@g.us", "two")
        ]
    );
    let (first, second) = (
        sent[0]["atMs"].as_u64().unwrap(),
        sent[1]["atMs"].as_u64().unwrap(),
    );
    assert!(
        first > 1_700_000_000_000 && first <= second,
        "{first} {second}"
    );
    assert_eq!(sent[0]["instance"], "codechat");
}
