//! Every REST call eventsock makes, against a simulator that checks what the real CodeChat
//! server checks (its guards, and each route's JSON schema from its `validate.schema.ts`): one
//! test per route and option, so that a body the real server refuses fails a test here.
//! `docs/conformance.md` lists each server behaviour, where it was read, and these tests.

mod common;

use common::*;
use eventsock::core::{legacy, MessageLike, QuotedMessage, Token};
use eventsock::prelude::*;
use eventsock::rest::{Outbox, Outcome, Outgoing, Quote, RestClient, SendText};
use eventsock::sim::{Request, SendFailure, Sim, SimConfig};
use serde_json::{json, Value};

fn client(s: &TestServer) -> RestClient {
    RestClient::new(
        &s.endpoint(),
        "codechat",
        Token::new(s.sim.mint_token("codechat", None)),
    )
}

/// A message from someone else, as the server sends it (`fixtures/legacy/messages.upsert.json`:
/// with its type, its timestamp and its chat's LID), with key id `id` and `text`.
fn message(id: &str, text: &str) -> Value {
    let mut m: Value =
        serde_json::from_str(include_str!("fixtures/legacy/messages.upsert.json")).unwrap();
    m["keyId"] = id.into();
    m["content"]["text"] = text.into();
    m.as_object_mut().unwrap().remove("id");
    m
}

/// What a reply to `message` quotes.
fn quote_of(message: &Value) -> QuotedMessage {
    serde_json::from_value::<legacy::MessagesUpsert>(message.clone())
        .unwrap()
        .quote()
        .unwrap()
}

/// The calls to `route` (`message/sendText`...), oldest first.
fn calls(sim: &Sim, route: &str) -> Vec<Request> {
    sim.requests()
        .into_iter()
        .filter(|r| r.path.starts_with(&format!("/{route}/")))
        .collect()
}

/// No call was refused for its body: the real server's schemas took every one.
fn none_refused_by_a_schema(sim: &Sim) {
    for r in sim.requests() {
        let violations = r.answer["message"]
            .as_array()
            .is_some_and(|m| m.iter().any(|m| m.get("property").is_some()));
        assert!(
            !violations,
            "{} {} {} refused: {}",
            r.method, r.path, r.body, r.answer
        );
    }
}

/// The README's bot, on the built-in simulator: a `!ping` is answered, quoting it, with a body
/// the server's schema takes (the body that CodeChat refused before: a key id as
/// `quotedMessageId`).
#[actix_rt::test]
async fn the_readme_bot_answers_with_a_body_the_server_takes() {
    let router = Router::builder()
        .on(|msg: Msg| async move {
            if !msg.is_from_me() && msg.text() == Some("!ping") {
                msg.cx.reply("pong").await?;
            }
            Ok(())
        })
        .build();
    let (running, sim) = started(router, Settings::default()).await;
    let ping = message("3A5F1C2B9D8E7F6A5B4C", "!ping");
    assert!(sim.emit("codechat", "messages.upsert", &ping));
    until("the answer", || !sim.sent().is_empty()).await;
    let sent = sim.sent().remove(0);
    assert_eq!(
        (sent.text.as_str(), sent.chat.as_str()),
        ("pong", "5511988887777@s.whatsapp.net")
    );
    assert_eq!(sent.quoted.as_deref(), Some("3A5F1C2B9D8E7F6A5B4C"));
    let call = calls(&sim, "message/sendText").remove(0);
    assert_eq!(call.status, 201, "{}", call.answer);
    let options = &call.body["options"];
    assert_eq!(
        options["quotedMessage"],
        json!({"keyId": "3A5F1C2B9D8E7F6A5B4C", "keyFromMe": false,
               "keyRemoteJid": "5511988887777@s.whatsapp.net", "messageType": "conversation",
               "content": {"text": "!ping"}, "messageTimestamp": 1_747_310_400}),
    );
    assert!(options.get("quotedMessageId").is_none(), "{options}");
    assert_eq!(options["messageId"], sent.id.as_str());
    none_refused_by_a_schema(&sim);
    running.stop().await;
}

/// `sendText` with every option eventsock sets: a quote, typing, its own id, attributes.
#[actix_rt::test]
async fn send_text_with_every_option() {
    let s = start_sim(SimConfig::default());
    let ping = message("3A5F", "!ping");
    let answer = client(&s)
        .send(SendText {
            number: "5511988887777@s.whatsapp.net".into(),
            text: "pong".into(),
            quote: Some(quote_of(&ping).into()),
            delay: Some(150),
            external_attributes: Some(json!({"ticket": "T-1"})),
            message_id: Some("3EB0OWN0000000000000ABCD".into()),
        })
        .await
        .unwrap();
    assert_eq!(answer["keyId"], "3EB0OWN0000000000000ABCD");
    assert_eq!(answer["externalAttributes"], json!({"ticket": "T-1"}));
    assert_eq!(answer["content"]["contextInfo"]["stanzaId"], "3A5F");
    let sent = s.sim.sent().remove(0);
    assert_eq!(
        (sent.typing_ms, sent.quoted.as_deref()),
        (150, Some("3A5F"))
    );
    let call = calls(&s.sim, "message/sendText").remove(0);
    let mut keys: Vec<&str> = call.body["options"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["delay", "externalAttributes", "messageId", "quotedMessage"]
    );
    // A plain send, to a phone number: no options at all.
    client(&s)
        .send_text("5511988887777", "hello")
        .await
        .unwrap();
    assert!(calls(&s.sim, "message/sendText")[1]
        .body
        .get("options")
        .is_none());
    none_refused_by_a_schema(&s.sim);
}

/// A saved message's row id quotes it where the server saves messages.
#[actix_rt::test]
async fn a_row_id_quotes_where_messages_are_saved() {
    let s = start_sim(SimConfig::default());
    s.sim
        .emit("codechat", "messages.upsert", &message("ROW1", "hi"));
    let row = s.sim.history("codechat")[0]["id"].as_i64().unwrap();
    let answer = client(&s)
        .reply("5511988887777@s.whatsapp.net", "re", row)
        .await
        .unwrap();
    assert_eq!(answer["content"]["contextInfo"]["stanzaId"], "ROW1");
    assert_eq!(
        calls(&s.sim, "message/sendText")[0].body["options"]["quotedMessageId"],
        row
    );
    none_refused_by_a_schema(&s.sim);
}

/// A quote the server cannot resolve (a row id on a server that saves nothing, or a row it
/// does not have) is dropped: the outbox sends the message again at once, unquoted, and it
/// arrives once.
#[actix_rt::test]
async fn a_quote_the_server_cannot_resolve_is_sent_unquoted() {
    for saving in [false, true] {
        let s = start_sim(SimConfig {
            save_messages: saving,
            ..SimConfig::default()
        });
        let outbox = Outbox::new(client(&s), fast_pacing());
        let message =
            Outgoing::text("5511988887777@s.whatsapp.net", "re").quoting(Quote::Row(4242));
        let outcome = outbox.send(message).await.unwrap();
        assert!(
            matches!(outcome, Outcome::Sent { attempts: 2, .. }),
            "{outcome:?}"
        );
        let sent = s.sim.sent();
        assert_eq!(sent.len(), 1, "{sent:?}");
        assert_eq!(
            (sent[0].text.as_str(), sent[0].quoted.as_deref()),
            ("re", None)
        );
        let calls = calls(&s.sim, "message/sendText");
        let refusal = if saving {
            "Quoted message not found"
        } else {
            "The DATABASE_SAVE_DATA_NEW_MESSAGE environment variable is disabled"
        };
        assert_eq!(
            (calls[0].status, &calls[0].answer["message"]),
            (400, &json!([refusal]))
        );
        assert_eq!(calls[1].status, 201);
        assert!(calls[1].body["options"].get("quotedMessageId").is_none());
        assert_eq!(
            calls[0].body["options"]["messageId"],
            calls[1].body["options"]["messageId"]
        );
    }
}

/// Reactions, read receipts and presence from a handler, through its `Ctx`: each body taken by
/// the server's schema; the read receipt names the chat's LID, the only kind of person's chat
/// the server marks read.
#[actix_rt::test]
async fn react_mark_read_and_presence_from_a_handler() {
    let router = Router::builder()
        .on(|msg: Msg| async move {
            if msg.is_from_me() {
                return Ok(());
            }
            let cx = &msg.cx;
            // Both go through the outbox: awaited here so that the presence comes after.
            cx.react("👍").await?.await?;
            cx.mark_read().await?.await?;
            cx.rest()?
                .set_presence(cx.chat().unwrap_or_default(), "composing")
                .await?;
            Ok(())
        })
        .build();
    let (running, sim) = started(router, Settings::default()).await;
    sim.emit("codechat", "messages.upsert", &message("R1", "hello"));
    until("the presence", || {
        !calls(&sim, "chat/updatePresence").is_empty()
    })
    .await;
    let reaction = calls(&sim, "message/sendReaction").remove(0);
    assert_eq!(reaction.status, 201, "{}", reaction.answer);
    assert_eq!(
        reaction.body,
        json!({"reactionMessage": {"key": {"remoteJid": "5511988887777@s.whatsapp.net", "fromMe": false, "id": "R1"}, "reaction": "👍"}})
    );
    assert_eq!(reaction.answer["messageType"], "reactionMessage");
    let read = calls(&sim, "chat/markMessageAsRead").remove(0);
    assert_eq!(
        (read.status, &read.answer),
        (200, &json!({"message": "Read messages", "read": "success"}))
    );
    assert_eq!(
        sim.marked_read(),
        [json!({"remoteJid": "123456789012345@lid", "fromMe": false, "id": "R1"})]
    );
    let presence = calls(&sim, "chat/updatePresence").remove(0);
    assert_eq!(
        (presence.status, &presence.answer),
        (200, &json!({"message": "success"}))
    );
    none_refused_by_a_schema(&sim);
    running.stop().await;
}

/// findMessages as eventsock calls it: paged (recovery), filtered (a resync), and by key id
/// (the outbox's lookup after a lost answer).
#[actix_rt::test]
async fn find_messages_paging_filters_and_lookups() {
    let s = start_sim(SimConfig::default());
    for i in 0..60 {
        s.sim.emit(
            "codechat",
            "messages.upsert",
            &message(&format!("F{i:02}"), "x"),
        );
    }
    let rest = client(&s);
    let page = rest.find_messages_page(json!({}), 50, 2).await.unwrap();
    assert_eq!(page.records.len(), 10);
    let found = rest
        .find_messages(json!({"keyRemoteJid": "5511988887777@s.whatsapp.net"}))
        .await
        .unwrap();
    assert_eq!(found.total, Some(60));
    // Sent, and the answer lost: the outbox looks the message up by its id.
    s.sim.fail_next_sends(
        SendFailure {
            status: 502,
            retry_after: None,
            delivered: true,
        },
        1,
    );
    let outbox = Outbox::new(rest.clone(), fast_pacing());
    let outcome = outbox
        .send(Outgoing::text("5511988887777", "answer lost"))
        .await
        .unwrap();
    assert!(matches!(outcome, Outcome::Found { .. }), "{outcome:?}");
    let lookups = calls(&s.sim, "chat/findMessages");
    assert_eq!(lookups.len(), 3, "two finds and one lookup");
    assert!(
        lookups[2].body["where"]["keyId"].is_string(),
        "{}",
        lookups[2].body
    );
    assert!(lookups.iter().all(|c| c.status == 200));
    none_refused_by_a_schema(&s.sim);
}

/// The token's routes: connectionState (the JWT guard only) and refreshToken (no guard).
#[actix_rt::test]
async fn connection_state_and_refresh_token() {
    let s = start_sim(SimConfig::default());
    let state = client(&s).connection_state().await.unwrap();
    assert_eq!(state, json!({"state": "open", "statusReason": 200}));
    let tokens = RefreshingToken::new(
        &s.endpoint(),
        Token::new(s.sim.mint_token("codechat", None)),
    )
    .unwrap();
    tokens.refresh().await.unwrap();
    let refresh = calls(&s.sim, "instance/refreshToken").remove(0);
    assert_eq!((refresh.method.as_str(), refresh.status), ("PUT", 201));
    assert!(refresh.body["oldToken"].is_string());
    none_refused_by_a_schema(&s.sim);
}
