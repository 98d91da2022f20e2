//! What the simulator plays of WhatsApp: the receipts of what an instance sends
//! (`messages.update`), and phone numbers and LIDs (`POST /chat/whatsappNumbers`).

use awc::ws::Frame;
use awc::BoxedSocket;
use eventsock_core::{legacy, EventName, Protocol};
use eventsock_sim::{Embedded, SimConfig};
use futures_util::StreamExt;
use serde_json::{json, Value};
use std::time::Duration;

type Socket = actix_codec::Framed<BoxedSocket, awc::ws::Codec>;

mod common;

use common::{DEADLINE, PERSON};

/// A socket on `event` of `codechat`, once the simulator routes the event to it.
async fn subscribe(s: &Embedded, token: &str, event: &str) -> Socket {
    let url = format!("ws://{}/ws/events?event={event}&token={token}", s.addr);
    let (_, socket) = awc::Client::new().ws(url).connect().await.unwrap();
    tokio::time::timeout(DEADLINE, async {
        while !s.sim.is_subscribed("codechat", event) {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await
    .expect("the socket was never registered");
    socket
}

async fn next_json(socket: &mut Socket) -> Value {
    match tokio::time::timeout(DEADLINE, socket.next()).await {
        Ok(Some(Ok(Frame::Text(t)))) => serde_json::from_slice(&t).unwrap(),
        other => panic!("expected a text frame, got {other:?}"),
    }
}

/// POSTs `body` to `path` (with the token when given): the status and the JSON answer.
async fn post(s: &Embedded, path: &str, token: Option<&str>, body: &Value) -> (u16, Value) {
    let answer = common::post(s, path, token, body).await;
    (answer.status, answer.json())
}

fn text_to(number: &str) -> Value {
    json!({"number": number, "textMessage": {"text": "pong"}})
}

/// The legacy server's receipt shape, with a `dateTime` of `new Date()` (milliseconds, `Z`).
fn assert_receipt(update: &Value, chat: &str, id: &str, status: &str) {
    assert_eq!(update["remoteJid"], chat, "{update}");
    assert_eq!(update["id"], id, "{update}");
    assert_eq!(update["fromMe"], true, "{update}");
    assert_eq!(update["status"], status, "{update}");
    assert_eq!(update["instanceId"], 1, "{update}");
    let when = update["dateTime"].as_str().unwrap();
    assert!(
        when.len() == 24 && when.ends_with('Z') && when.as_bytes()[19] == b'.',
        "{when}"
    );
    let members: Vec<&String> = update.as_object().unwrap().keys().collect();
    assert_eq!(members.len(), 6, "{update}");
    // eventsock's own decoder takes it.
    let name = EventName::parse("messages.update");
    let text = update.to_string();
    let decoded: legacy::MessagesUpdate = eventsock_core::Frame::parse(&name, &text)
        .unwrap()
        .decode(&name)
        .unwrap();
    assert_eq!(decoded.status.as_deref(), Some(status));
}

/// A text the simulator accepts is acknowledged: `SERVER_ACK`, then `DELIVERY_ACK`, after the
/// send's own events; a reaction too; a group send is not (its receipts are per participant).
#[actix_rt::test]
async fn sends_are_acknowledged_by_the_server_then_the_recipient() {
    let s = Embedded::start(SimConfig::default()).unwrap();
    let token = s.sim.mint_token("codechat", None);
    let mut updates = subscribe(&s, &token, "messages.update").await;
    let mut upserts = subscribe(&s, &token, "messages.upsert").await;
    let (status, sent) = post(
        &s,
        "/message/sendText/codechat",
        Some(&token),
        &text_to("5511988887777"),
    )
    .await;
    assert_eq!(status, 201, "{sent}");
    let id = sent["keyId"].as_str().unwrap();
    let upsert = next_json(&mut upserts).await;
    assert_eq!(upsert["keyId"], id);
    assert_receipt(&next_json(&mut updates).await, PERSON, id, "SERVER_ACK");
    assert_receipt(&next_json(&mut updates).await, PERSON, id, "DELIVERY_ACK");
    // send.message, messages.upsert, then the two receipts, in that order of emission.
    assert_eq!(s.sim.emitted().0, 4);

    // A reaction is a message like another.
    let key = json!({"id": "3A5F", "fromMe": false, "remoteJid": PERSON});
    let (status, reaction) = post(
        &s,
        "/message/sendReaction/codechat",
        Some(&token),
        &json!({"reactionMessage": {"key": key, "reaction": "👍"}}),
    )
    .await;
    assert_eq!(status, 201, "{reaction}");
    let rid = reaction["keyId"].as_str().unwrap();
    assert_receipt(&next_json(&mut updates).await, PERSON, rid, "SERVER_ACK");
    assert_receipt(&next_json(&mut updates).await, PERSON, rid, "DELIVERY_ACK");

    // A group: no messages.update (the send's two events only).
    let before = s.sim.emitted().0;
    let (status, _) = post(
        &s,
        "/message/sendText/codechat",
        Some(&token),
        &text_to("120363041234567890@g.us"),
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(s.sim.emitted().0, before + 2);

    // A refused send is not acknowledged; one that went out before the answer failed is.
    s.sim.fail_sends(500, None, 1);
    let before = s.sim.emitted().0;
    let (status, _) = post(
        &s,
        "/message/sendText/codechat",
        Some(&token),
        &text_to("5511988887777"),
    )
    .await;
    assert_eq!((status, s.sim.emitted().0), (500, before));
    s.sim.fail_next_sends(
        eventsock_sim::SendFailure {
            status: 500,
            retry_after: None,
            delivered: true,
        },
        1,
    );
    let (status, _) = post(
        &s,
        "/message/sendText/codechat",
        Some(&token),
        &text_to("5511988887777"),
    )
    .await;
    assert_eq!(status, 500);
    assert_eq!(s.sim.emitted().0, before + 4);
    let late = s.sim.sent().last().unwrap().id.clone();
    assert_receipt(&next_json(&mut updates).await, PERSON, &late, "SERVER_ACK");
    assert_receipt(
        &next_json(&mut updates).await,
        PERSON,
        &late,
        "DELIVERY_ACK",
    );
}

#[actix_rt::test]
async fn receipts_can_be_turned_off() {
    let s = Embedded::start(SimConfig {
        receipts: false,
        ..SimConfig::default()
    })
    .unwrap();
    let token = s.sim.mint_token("codechat", None);
    let (status, _) = post(
        &s,
        "/message/sendText/codechat",
        Some(&token),
        &text_to("5511988887777"),
    )
    .await;
    assert_eq!((status, s.sim.emitted().0), (201, 2));
}

/// `Sim::receipt` and `POST /control/receipt`: any status, for a message the instance sent.
#[actix_rt::test]
async fn receipts_on_request_name_the_chat_the_message_went_to() {
    let s = Embedded::start(SimConfig {
        receipts: false,
        ..SimConfig::default()
    })
    .unwrap();
    let token = s.sim.mint_token("codechat", None);
    let mut updates = subscribe(&s, &token, "messages.update").await;
    let (_, sent) = post(
        &s,
        "/message/sendText/codechat",
        Some(&token),
        &text_to("123456789012345@lid"),
    )
    .await;
    let id = sent["keyId"].as_str().unwrap();
    assert!(s.sim.receipt("codechat", id, "READ"));
    assert_receipt(
        &next_json(&mut updates).await,
        "123456789012345@lid",
        id,
        "READ",
    );
    assert!(!s.sim.receipt("codechat", "NO-SUCH-ID", "READ"));
    assert!(!s.sim.receipt("other", id, "READ"));
    assert!(!s.sim.receipt("codechat", id, "read"));

    // A message emitted as sent by the instance (from its phone, say) counts too.
    let own = json!({"keyId": "3EB0PHONE", "keyFromMe": true, "keyRemoteJid": "5521966665555@s.whatsapp.net",
                     "messageType": "conversation", "content": {"text": "from the phone"}});
    s.sim.emit("codechat", "messages.upsert", &own);
    let (status, answer) = post(
        &s,
        "/control/receipt",
        None,
        &json!({"instance": "codechat", "id": "3EB0PHONE", "status": "PLAYED"}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_receipt(
        &next_json(&mut updates).await,
        "5521966665555@s.whatsapp.net",
        "3EB0PHONE",
        "PLAYED",
    );
    let (status, answer) = post(
        &s,
        "/control/receipt",
        None,
        &json!({"id": "NO-SUCH-ID", "status": "READ"}),
    )
    .await;
    assert_eq!(status, 404);
    assert!(answer["error"]
        .as_str()
        .is_some_and(|e| e.contains("NO-SUCH-ID")));
    let (status, answer) = post(
        &s,
        "/control/receipt",
        None,
        &json!({"id": id, "status": "SEEN"}),
    )
    .await;
    assert_eq!(status, 400);
    assert!(answer["error"]
        .as_str()
        .is_some_and(|e| e.contains("SEEN") && e.contains("DELIVERY_ACK")));
}

/// The newer server's receipts (no public source): the generator's shape.
#[actix_rt::test]
async fn v2_receipts_have_the_generators_shape() {
    let s = Embedded::start(SimConfig {
        protocol: Protocol::V2,
        ..SimConfig::default()
    })
    .unwrap();
    let token = s.sim.mint_token("codechat", None);
    let (status, sent) = post(
        &s,
        "/instance/codechat/send/text",
        Some(&token),
        &text_to("5511988887777"),
    )
    .await;
    assert_eq!(status, 200, "{sent}");
    assert_eq!(s.sim.emitted().0, 4);
    assert!(s
        .sim
        .receipt("codechat", sent["keyId"].as_str().unwrap(), "READ"));
}

/// `whatsappNumberSchema`, judged as the real server judges it (its verdicts, computed with
/// the npm package jsonschema 1.5 on the server's schema).
#[actix_rt::test]
async fn whatsapp_numbers_checks_bodies_as_the_real_server_does() {
    let s = Embedded::start(SimConfig::default()).unwrap();
    let token = s.sim.mint_token("codechat", None);
    let path = "/chat/whatsappNumbers/codechat";
    let item = "\"numbers\" must be an array of numeric strings";
    for (body, errors) in [
        (
            json!({"numbers": []}),
            json!([{"property": "numbers", "message": "numbers does not meet minimum length of 1"}]),
        ),
        (
            json!({"numbers": "5511"}),
            json!([{"property": "numbers", "message": "numbers is not of a type(s) array"}]),
        ),
        (
            json!({"numbers": ["5511988887777", "5511988887777"]}),
            json!([{"property": "numbers", "message": "numbers contains duplicate item"}]),
        ),
        (
            json!({"numbers": ["+5511988887777"]}),
            json!([{"property": "numbers[0]", "message": item}]),
        ),
        (
            json!({"numbers": [5511988887777u64]}),
            json!([{"property": "numbers[0]", "message": item}]),
        ),
        (
            json!({"numbers": ["abc", 12]}),
            json!([{"property": "numbers[0]", "message": item}, {"property": "numbers[1]", "message": item}]),
        ),
    ] {
        let (status, answer) = post(&s, path, Some(&token), &body).await;
        assert_eq!(
            (status, answer),
            (
                400,
                json!({"status": 400, "error": "Bad Request", "message": errors})
            ),
            "{body}"
        );
    }
    // The schema takes a body without numbers; the server then crashes on it.
    assert_eq!(
        post(&s, path, Some(&token), &json!({})).await,
        (500, json!({}))
    );
    let guarded = post(&s, path, None, &json!({"numbers": ["5511988887777"]})).await;
    assert_eq!(
        guarded,
        (401, json!({"status": 401, "error": "Unauthorized"}))
    );
}

/// What `whatsappNumber` answers for each kind of number, LIDs paired with `pair_lid` (or the
/// control API) included.
#[actix_rt::test]
async fn whatsapp_numbers_answers_as_the_real_server_does() {
    let s = Embedded::start(SimConfig::default()).unwrap();
    let token = s.sim.mint_token("codechat", None);
    s.sim.pair_lid(PERSON, "123456789012345@lid");
    let (status, answer) = post(
        &s,
        "/control/pair-lid",
        None,
        &json!({"phoneJid": "553188887777@s.whatsapp.net", "lid": "987654321098765@lid"}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let (status, answer) = post(
        &s,
        "/control/pair-lid",
        None,
        &json!({"phoneJid": PERSON, "lid": "5511"}),
    )
    .await;
    assert_eq!(status, 400);
    assert!(answer["error"].as_str().is_some_and(|e| e.contains("@lid")));
    let numbers = json!({"numbers": [
        "5511988887777",
        "5531988887777",
        "5521966665555@s.whatsapp.net",
        "123456789012345@lid",
        "120363041234567890@g.us",
        "1234567890@broadcast",
        "5211234567890",
    ]});
    let (status, answer) = post(&s, "/chat/whatsappNumbers/codechat", Some(&token), &numbers).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer,
        json!([
            {"exists": true, "jid": PERSON, "lid": "123456789012345@lid"},
            // Area code 31 and up: the ninth digit goes (createJid), and the pairing is found.
            {"exists": true, "jid": "553188887777@s.whatsapp.net", "lid": "987654321098765@lid"},
            {"exists": true, "jid": "5521966665555@s.whatsapp.net"},
            // A LID: two entries, as the real server gives.
            {"exists": true, "jid": "", "lid": "123456789012345@lid"},
            {"exists": false, "jid": "123456789012345@lid"},
            {"exists": true, "jid": "120363041234567890@g.us", "lid": ""},
            {"exists": true, "jid": "1234567890@broadcast"},
            {"exists": false, "jid": "5211234567890"},
        ])
    );
}
