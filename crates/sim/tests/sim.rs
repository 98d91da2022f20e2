//! The simulator, driven over real sockets by a real WebSocket client (awc).

use awc::ws::{CloseCode, Frame, Message};
use awc::BoxedSocket;
use eventsock_core::Protocol;
use eventsock_sim::{run, Sim, SimConfig};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::time::Duration;

type Socket = actix_codec::Framed<BoxedSocket, awc::ws::Codec>;

const DEADLINE: Duration = Duration::from_secs(10);

/// A simulator served on 127.0.0.1:0, stopped when dropped.
struct Server {
    sim: Sim,
    addr: SocketAddr,
    _stop: tokio::sync::oneshot::Sender<()>,
}

fn start(config: SimConfig) -> Server {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let sim = Sim::new(config);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    actix_rt::spawn(run(listener, sim.clone(), async {
        let _ = stopped.await;
    }));
    Server {
        sim,
        addr,
        _stop: stop,
    }
}

impl Server {
    fn url(&self, path: &str, event: &str, token: &str) -> String {
        format!("ws://{}{path}?event={event}&token={token}", self.addr)
    }

    fn http(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

async fn connect(url: &str) -> Result<Socket, awc::error::WsClientError> {
    let (_, socket) = awc::Client::new()
        .ws(url)
        .max_frame_size(16 * 1024 * 1024)
        .connect()
        .await?;
    Ok(socket)
}

async fn refused_status(url: &str) -> u16 {
    match connect(url).await {
        Err(awc::error::WsClientError::InvalidResponseStatus(status)) => status.as_u16(),
        Err(other) => panic!("{url}: expected a refusal, got {other}"),
        Ok(_) => panic!("{url}: the handshake was accepted"),
    }
}

/// The next frame, skipping nothing; fails the test after the deadline.
async fn next(socket: &mut Socket) -> Option<Frame> {
    tokio::time::timeout(DEADLINE, socket.next())
        .await
        .expect("no frame within the deadline")
        .map(|f| f.expect("protocol error"))
}

/// The next frame must be a close frame with `code`; returns its reason.
async fn expect_close(socket: &mut Socket, code: CloseCode) -> Option<String> {
    match next(socket).await {
        Some(Frame::Close(Some(r))) => {
            assert_eq!(r.code, code);
            r.description
        }
        other => panic!("expected close {code:?}, got {other:?}"),
    }
}

async fn next_json(socket: &mut Socket) -> Value {
    match next(socket).await {
        Some(Frame::Text(t)) => serde_json::from_slice(&t).unwrap(),
        other => panic!("expected a text frame, got {other:?}"),
    }
}

/// Waits until the simulator routes (scope, event) to a socket: the handshake response reaches
/// the client just before the server registers it.
async fn until_subscribed(sim: &Sim, scope: &str, event: &str) {
    tokio::time::timeout(DEADLINE, async {
        while !sim.is_subscribed(scope, event) {
            tokio::task::yield_now().await;
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await
    .expect("the socket was never registered");
}

#[actix_rt::test]
async fn legacy_refuses_bad_handshakes_with_401() {
    // Expiry on, so that an expired token is refused (with CodeChat's default it never is).
    let expiring = SimConfig {
        jwt_expires_in: Some(Duration::from_secs(3600)),
        ..SimConfig::default()
    };
    let s = start(expiring.clone());
    let good = s.sim.mint_token("codechat", None);
    let expired = {
        let other = Sim::new(expiring);
        let t = other.mint_token("codechat", Some(Duration::from_secs(1)));
        // Wait on the clock itself, not a guess: the token's exp is in whole seconds.
        let exp = t.clone();
        tokio::time::timeout(DEADLINE, async {
            loop {
                let claims = eventsock_core::Token::new(exp.as_str()).claims().unwrap();
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_secs() as i64;
                if now > claims.exp.unwrap() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await
        .unwrap();
        t
    };
    let wrong_secret = Sim::new(SimConfig {
        secret: "other".into(),
        ..Default::default()
    })
    .mint_token("codechat", None);
    let cases = [
        ("wrong path", s.url("/ws/event", "messages.upsert", &good)),
        (
            "newer path",
            s.url("/ws/instance/events", "messages.upsert", &good),
        ),
        (
            "unknown event",
            s.url("/ws/events", "messages.upserted", &good),
        ),
        (
            "newer-only event",
            s.url("/ws/events", "presence.updated", &good),
        ),
        (
            "missing event",
            format!("ws://{}/ws/events?token={good}", s.addr),
        ),
        (
            "missing token",
            format!("ws://{}/ws/events?event=messages.upsert", s.addr),
        ),
        ("not a JWT", s.url("/ws/events", "messages.upsert", "abc")),
        (
            "wrong secret",
            s.url("/ws/events", "messages.upsert", &wrong_secret),
        ),
        ("expired", s.url("/ws/events", "messages.upsert", &expired)),
    ];
    for (what, url) in cases {
        assert_eq!(refused_status(&url).await, 401, "{what}");
    }
    assert_eq!(s.sim.accepted(), 0);
    // And a good one is accepted.
    connect(&s.url("/ws/events", "messages.upsert", &good))
        .await
        .unwrap();
}

#[actix_rt::test]
async fn control_api_emit_arrives_at_a_real_client() {
    let s = start(SimConfig::default());
    let token = s.sim.mint_token("codechat", None);
    let mut ws = connect(&s.url("/ws/events", "messages.upsert", &token))
        .await
        .unwrap();
    until_subscribed(&s.sim, "codechat", "messages.upsert").await;

    let data = json!({"keyId": "ABC", "content": {"text": "hello"}});
    let mut resp = awc::Client::new()
        .post(s.http("/control/emit"))
        .send_json(&json!({"event": "messages.upsert", "data": data}))
        .await
        .unwrap();
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        json!({"delivered": true})
    );
    // The legacy server sends the bare payload, with the id of the row it saved it as.
    let mut frame = next_json(&mut ws).await;
    assert!(frame["id"].is_i64(), "{frame}");
    frame.as_object_mut().unwrap().remove("id");
    assert_eq!(frame, data);

    // Nobody on `send.message`: the event is lost, and the API says so.
    let mut resp = awc::Client::new()
        .post(s.http("/control/emit"))
        .send_json(&json!({"event": "send.message", "data": {}}))
        .await
        .unwrap();
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        json!({"delivered": false})
    );
}

#[actix_rt::test]
async fn a_second_socket_silently_replaces_the_first() {
    let s = start(SimConfig::default());
    let token = s.sim.mint_token("codechat", None);
    let url = s.url("/ws/events", "messages.upsert", &token);
    let mut first = connect(&url).await.unwrap();
    until_subscribed(&s.sim, "codechat", "messages.upsert").await;
    let mut second = connect(&url).await.unwrap();
    tokio::time::timeout(DEADLINE, async {
        while s.sim.sockets().iter().filter(|x| x.routed).count() != 1 || s.sim.sockets().len() != 2
        {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await
    .unwrap();
    assert!(s.sim.emit("codechat", "messages.upsert", &json!({"n": 1})));
    assert_eq!(next_json(&mut second).await, json!({"n": 1}));
    // The first socket is still open (it answers a ping) but got nothing: frames on one socket
    // are in order, so anything sent to it would have arrived before this pong.
    first
        .send(Message::Ping("still there?".into()))
        .await
        .unwrap();
    match next(&mut first).await {
        Some(Frame::Pong(p)) => assert_eq!(&p[..], b"still there?"),
        other => panic!("expected the pong and nothing before it, got {other:?}"),
    }
}

#[actix_rt::test]
async fn send_text_answers_201_and_emits_on_both_sockets() {
    let s = start(SimConfig::default());
    let token = s.sim.mint_token("codechat", None);
    let mut sent = connect(&s.url("/ws/events", "send.message", &token))
        .await
        .unwrap();
    let mut upsert = connect(&s.url("/ws/events", "messages.upsert", &token))
        .await
        .unwrap();
    until_subscribed(&s.sim, "codechat", "send.message").await;
    until_subscribed(&s.sim, "codechat", "messages.upsert").await;

    let body = json!({"number": "5511988887777", "textMessage": {"text": "pong"}, "options": {"externalAttributes": {"ticket": 7}}});
    let mut resp = awc::Client::new()
        .post(s.http("/message/sendText/codechat"))
        .bearer_auth(&token)
        .send_json(&body)
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 201);
    let message: Value = resp.json().await.unwrap();
    assert_eq!(message["content"]["text"], "pong");
    assert_eq!(message["keyRemoteJid"], "5511988887777@s.whatsapp.net");
    assert_eq!(message["keyFromMe"], true);
    assert_eq!(message["externalAttributes"], json!({"ticket": 7}));
    assert_eq!(next_json(&mut sent).await, message);
    assert_eq!(next_json(&mut upsert).await, message);

    // The guard: a token for another instance, no token, a bad token.
    let other = s.sim.mint_token("someone-else", None);
    for auth in [Some(other.as_str()), None, Some("garbage")] {
        let mut req = awc::Client::new().post(s.http("/message/sendText/codechat"));
        if let Some(t) = auth {
            req = req.bearer_auth(t);
        }
        let mut resp = req.send_json(&body).await.unwrap();
        assert_eq!(resp.status().as_u16(), 401);
        assert_eq!(resp.json::<Value>().await.unwrap()["status"], 401);
    }
    let resp = awc::Client::new()
        .post(s.http("/message/sendText/codechat"))
        .bearer_auth(&token)
        .send_json(&json!({"number": "1"}))
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
}

#[actix_rt::test]
async fn drop_ends_sockets_without_a_close_frame_and_close_sends_the_code() {
    let s = start(SimConfig::default());
    let token = s.sim.mint_token("codechat", None);
    let url = s.url("/ws/events", "messages.upsert", &token);
    let mut ws = connect(&url).await.unwrap();
    until_subscribed(&s.sim, "codechat", "messages.upsert").await;
    assert_eq!(s.sim.drop_all(), 1);
    // The stream ends (or errors) with no Close frame first.
    match tokio::time::timeout(DEADLINE, ws.next()).await.unwrap() {
        None | Some(Err(_)) => {}
        Some(Ok(f)) => panic!("expected the connection to end abruptly, got {f:?}"),
    }

    let mut ws = connect(&url).await.unwrap();
    until_subscribed(&s.sim, "codechat", "messages.upsert").await;
    let mut resp = awc::Client::new()
        .post(s.http("/control/close"))
        .send_json(&json!({"code": 4001, "reason": "token expired"}))
        .await
        .unwrap();
    assert_eq!(resp.json::<Value>().await.unwrap(), json!({"closed": 1}));
    let reason = expect_close(&mut ws, CloseCode::Other(4001)).await;
    assert_eq!(reason.as_deref(), Some("token expired"));
}

#[actix_rt::test]
async fn half_open_swallows_pings_and_frames() {
    let s = start(SimConfig::default());
    let token = s.sim.mint_token("codechat", None);
    let mut ws = connect(&s.url("/ws/events", "messages.upsert", &token))
        .await
        .unwrap();
    until_subscribed(&s.sim, "codechat", "messages.upsert").await;
    s.sim.set_half_open(true);
    ws.send(Message::Ping("a".into())).await.unwrap();
    assert!(!s
        .sim
        .emit("codechat", "messages.upsert", &json!({"lost": true})));
    tokio::time::timeout(DEADLINE, async {
        while s.sim.swallowed_pings() == 0 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await
    .expect("the server never read the ping");
    s.sim.set_half_open(false);
    ws.send(Message::Ping("b".into())).await.unwrap();
    // Only the second ping is answered; the frame sent while half-open is gone.
    match next(&mut ws).await {
        Some(Frame::Pong(p)) => assert_eq!(&p[..], b"b"),
        other => panic!("expected only the second pong, got {other:?}"),
    }
}

fn v2() -> SimConfig {
    SimConfig {
        protocol: Protocol::V2,
        instances: vec!["codechat".into(), "other".into()],
        ..Default::default()
    }
}

#[actix_rt::test]
async fn v2_handshake_statuses() {
    let s = start(v2());
    let stale = s.sim.mint_token("codechat", None);
    let token = s.sim.mint_token("codechat", None); // replaces `stale` as the instance's token
    let ghost = s.sim.mint_token("ghost", None);
    let user = s.sim.mint_user_token(
        "11111111-1111-4111-8111-111111111111",
        Duration::from_secs(60),
    );
    let p = "/ws/instance/events";
    let cases = [
        (400, format!("ws://{}{p}?token={token}", s.addr)),
        (400, s.url(p, "chats.update", &token)), // legacy-only name
        (400, format!("ws://{}{p}?event=messages.upsert", s.addr)),
        (401, s.url(p, "messages.upsert", "abc")),
        (403, s.url(p, "messages.upsert", &stale)),
        (404, s.url(p, "messages.upsert", &ghost)),
        (
            401,
            s.url("/ws/global/events", "message.batch.progress", &token),
        ), // not a user token
        (400, s.url("/ws/global/events", "messages.upsert", &user)),
    ];
    for (status, url) in cases {
        assert_eq!(refused_status(&url).await, status, "{url}");
    }
    connect(&s.url(p, "call.participant.joined", &token))
        .await
        .unwrap();
    connect(&s.url("/ws/global/events", "message.batch.progress", &user))
        .await
        .unwrap();
    // Not an upgrade at all.
    let resp = awc::Client::new().get(s.http(p)).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 426);
}

#[actix_rt::test]
async fn v2_frames_are_enveloped_and_clients_must_not_send() {
    let s = start(v2());
    let token = s.sim.mint_token("codechat", None);
    let mut ws = connect(&s.url("/ws/instance/events", "messages.upsert", &token))
        .await
        .unwrap();
    until_subscribed(&s.sim, "codechat", "messages.upsert").await;
    s.sim
        .emit("codechat", "messages.upsert", &json!({"keyId": "A"}));
    let frame = next_json(&mut ws).await;
    assert_eq!(frame["event"], "messages.upsert");
    assert_eq!(frame["instance"]["name"], "codechat");
    assert_eq!(frame["instance"]["id"], 1);
    assert_eq!(frame["data"]["keyId"], "A");
    assert!(
        frame["data"]["id"].is_i64(),
        "a saved message has its row id"
    );
    assert!(frame["timestamp"].is_string());
    ws.send(Message::Text("hello".into())).await.unwrap();
    expect_close(&mut ws, CloseCode::Policy).await;
}

#[actix_rt::test]
async fn v2_closes_with_4001_at_expiry_and_4003_on_revoke() {
    let s = start(SimConfig {
        jwt_expires_in: Some(Duration::from_secs(3600)),
        ..v2()
    });
    let short = s.sim.mint_token("codechat", Some(Duration::from_secs(1)));
    let mut ws = connect(&s.url("/ws/instance/events", "messages.upsert", &short))
        .await
        .unwrap();
    expect_close(&mut ws, CloseCode::Other(4001)).await;
    let token = s.sim.mint_token("other", None);
    let mut ws = connect(&s.url("/ws/instance/events", "messages.upsert", &token))
        .await
        .unwrap();
    until_subscribed(&s.sim, "other", "messages.upsert").await;
    assert_eq!(s.sim.revoke("other"), 1);
    expect_close(&mut ws, CloseCode::Other(4003)).await;
    assert_eq!(
        refused_status(&s.url("/ws/instance/events", "messages.upsert", &token)).await,
        403
    );
}

#[actix_rt::test]
async fn v2_pings_and_drops_a_client_that_never_answers() {
    let s = start(SimConfig {
        ping_interval: Duration::from_millis(50),
        pong_timeout: Duration::from_millis(200),
        ..v2()
    });
    let token = s.sim.mint_token("codechat", None);
    let mut ws = connect(&s.url("/ws/instance/events", "messages.upsert", &token))
        .await
        .unwrap();
    // awc does not answer pings by itself; this client never does, so the server gives up.
    let mut pings = 0;
    loop {
        match tokio::time::timeout(DEADLINE, ws.next()).await.unwrap() {
            Some(Ok(Frame::Ping(_))) => pings += 1,
            None | Some(Err(_)) => break,
            Some(Ok(f)) => panic!("unexpected {f:?}"),
        }
    }
    assert!(pings >= 2, "the server pinged {pings} times");
}

#[actix_rt::test]
async fn v2_closes_a_slow_client_with_4008() {
    let s = start(SimConfig {
        send_buffer: 4,
        ..v2()
    });
    let token = s.sim.mint_token("codechat", None);
    let mut ws = connect(&s.url("/ws/instance/events", "messages.upsert", &token))
        .await
        .unwrap();
    until_subscribed(&s.sim, "codechat", "messages.upsert").await;
    // The client reads nothing while large frames pile up: socket buffers fill, then the send
    // buffer, and the server gives up on the client.
    let big = json!({"blob": "x".repeat(256 * 1024)});
    let mut refused = false;
    for _ in 0..400 {
        if !s.sim.emit("codechat", "messages.upsert", &big) {
            refused = true;
            break;
        }
        tokio::task::yield_now().await;
    }
    assert!(refused, "the send buffer never filled");
    loop {
        match next(&mut ws).await {
            Some(Frame::Text(_)) => continue,
            Some(Frame::Close(Some(r))) => {
                assert_eq!(r.code, CloseCode::Other(4008));
                break;
            }
            other => panic!("expected frames then close 4008, got {other:?}"),
        }
    }
}

#[actix_rt::test]
async fn legacy_takes_the_first_event_parameter_and_ignores_large_client_frames() {
    let s = start(SimConfig::default());
    let token = s.sim.mint_token("codechat", None);
    // URLSearchParams.get gives the first of repeated parameters.
    let url = format!(
        "ws://{}/ws/events?event=messages.upsert&event=send.message&token={token}",
        s.addr
    );
    let mut ws = connect(&url).await.unwrap();
    until_subscribed(&s.sim, "codechat", "messages.upsert").await;
    assert!(!s.sim.is_subscribed("codechat", "send.message"));
    // A 1 MiB frame from the client: the legacy server reads and ignores it.
    ws.send(Message::Text("x".repeat(1024 * 1024).into()))
        .await
        .unwrap();
    s.sim
        .emit("codechat", "messages.upsert", &json!({"keyId": "after"}));
    assert_eq!(next_json(&mut ws).await["keyId"], "after");
}

#[actix_rt::test]
async fn legacy_refusals_have_no_body_and_close_the_connection() {
    use std::io::{Read, Write};
    let s = start(SimConfig::default());
    let addr = s.addr;
    let answer = tokio::task::spawn_blocking(move || {
        let mut tcp = std::net::TcpStream::connect(addr).unwrap();
        tcp.write_all(
            b"GET /ws/events?event=messages.upsert&token=nope HTTP/1.1\r\nHost: x\r\n\
              Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        )
        .unwrap();
        let mut answer = String::new();
        // The server closes: read_to_string ends.
        tcp.read_to_string(&mut answer).unwrap();
        answer
    })
    .await
    .unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 401 Unauthorized\r\n"),
        "{answer}"
    );
    assert!(answer.ends_with("\r\n\r\n"), "no body: {answer:?}");
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );
}

#[actix_rt::test]
async fn the_refresh_route_answers_as_the_real_server_does() {
    let s = start(SimConfig::default());
    let old = s.sim.mint_token("codechat", None);
    let client = awc::Client::new();
    let url = s.http("/instance/refreshToken/codechat");
    let mut ok = client
        .put(&url)
        .send_json(&json!({"oldToken": old}))
        .await
        .unwrap();
    assert_eq!(ok.status().as_u16(), 201);
    let body: Value = ok.json().await.unwrap();
    assert!(body["token"].as_str().is_some_and(|t| t != old), "{body}");
    assert_eq!(body["instanceId"], 1);
    for bad in [
        json!({"oldToken": old}),
        json!({"oldToken": "x"}),
        json!({}),
    ] {
        let mut refused = client.put(&url).send_json(&bad).await.unwrap();
        assert_eq!(refused.status().as_u16(), 400, "{bad}");
        let body: Value = refused.json().await.unwrap();
        assert_eq!(body["status"], 400, "{body}");
    }
    assert_eq!(s.sim.refreshes(), 1);
}

/// Sends `body` as JSON with `method` to `path`, with `token` when given: the status and the
/// answer.
async fn call(
    s: &Server,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &Value,
) -> (u16, Value) {
    let client = awc::Client::new();
    let mut req = match method {
        "GET" => client.get(s.http(path)),
        "PUT" => client.put(s.http(path)),
        "PATCH" => client.patch(s.http(path)),
        _ => client.post(s.http(path)),
    };
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let mut resp = if method == "GET" {
        req.send().await.unwrap()
    } else {
        req.send_json(body).await.unwrap()
    };
    let answer = resp.json::<Value>().await.unwrap_or(Value::Null);
    (resp.status().as_u16(), answer)
}

/// Every body of `fixtures/schema-verdicts.json` (the server's schemas, the server's validator:
/// `scripts/server-schemas.sh` computed the table from CodeChat's source) is judged by the
/// simulator as the real server judges it: the same violations, in the same words, as
/// `400 {status, error, message}`; a body the server takes passes the schema here too.
#[actix_rt::test]
async fn every_route_judges_bodies_as_the_real_servers_schemas_do() {
    let s = start(SimConfig::default());
    let token = s.sim.mint_token("codechat", None);
    let table: Vec<Value> =
        serde_json::from_str(include_str!("fixtures/schema-verdicts.json")).unwrap();
    assert!(table.len() >= 30);
    let sorted = |v: &Value| {
        let mut list: Vec<String> = v
            .as_array()
            .into_iter()
            .flatten()
            .map(Value::to_string)
            .collect();
        list.sort();
        list
    };
    for case in &table {
        let body = &case["body"];
        let (method, path, token) = match case["schema"].as_str().unwrap() {
            "sendText" => (
                "POST",
                "/message/sendText/codechat".to_owned(),
                Some(&token),
            ),
            "sendReaction" => (
                "POST",
                "/message/sendReaction/codechat".into(),
                Some(&token),
            ),
            "markMessageAsRead" => (
                "PUT",
                "/chat/markMessageAsRead/codechat".into(),
                Some(&token),
            ),
            "updatePresence" => (
                "PATCH",
                "/chat/updatePresence/codechat".into(),
                Some(&token),
            ),
            "findMessages" => ("POST", "/chat/findMessages/codechat".into(), Some(&token)),
            "refreshToken" => ("PUT", "/instance/refreshToken/codechat".into(), None),
            "instanceName" => {
                // A GET: its query is the body that dataValidate checks.
                let query: Vec<String> = body
                    .as_object()
                    .unwrap()
                    .iter()
                    .map(|(k, v)| format!("{k}={}", v.as_str().unwrap()))
                    .collect();
                let path = format!("/instance/connectionState/codechat?{}", query.join("&"));
                ("GET", path, Some(&token))
            }
            other => panic!("no route for {other}"),
        };
        let (status, answer) = call(&s, method, &path, token.map(String::as_str), body).await;
        let expected = &case["errors"];
        if expected.as_array().unwrap().is_empty() {
            let refused_by_schema = answer["message"]
                .as_array()
                .is_some_and(|m| m.iter().any(|m| m.get("property").is_some()));
            assert!(
                !refused_by_schema,
                "{method} {path} {body}: the server's schema takes it, the simulator refused it: {status} {answer}"
            );
        } else {
            assert_eq!(status, 400, "{method} {path} {body}: {answer}");
            assert_eq!(
                (&answer["status"], &answer["error"]),
                (&json!(400), &json!("Bad Request")),
                "{answer}"
            );
            assert_eq!(
                sorted(&answer["message"]),
                sorted(expected),
                "{method} {path} {body}"
            );
        }
    }
}

/// The guards of the real server, in its order: a body that does not parse is refused before
/// anything else; any token failure is a bare 401; an unknown instance a 400; refreshToken has
/// no guard, and connectionState no instance guard.
#[actix_rt::test]
async fn guards_refuse_as_the_real_server_does() {
    let s = start(SimConfig::default());
    let token = s.sim.mint_token("codechat", None);
    let text = json!({"number": "5511988887777", "textMessage": {"text": "hi"}});
    let bare_401 = json!({"status": 401, "error": "Unauthorized"});
    let other = s.sim.mint_token("someone-else", None);
    for auth in [None, Some("garbage"), Some("a.b.c"), Some(other.as_str())] {
        let answer = call(&s, "POST", "/message/sendText/codechat", auth, &text).await;
        assert_eq!(answer, (401, bare_401.clone()), "{auth:?}");
    }
    let answer = call(
        &s,
        "POST",
        "/message/sendText/nobody",
        Some(&s.sim.mint_token("nobody", None)),
        &text,
    )
    .await;
    assert_eq!(
        answer,
        (
            400,
            json!({"status": 400, "error": "Bad Request",
                     "message": ["The \"nobody\" instance does not exist or is not connected"]})
        )
    );
    // Not JSON: body-parser refuses it before the guards look at the token.
    let mut resp = awc::Client::new()
        .post(s.http("/message/sendText/codechat"))
        .content_type("application/json")
        .send_body("{not json")
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["type"],
        "entity.parse.failed"
    );
    // connectionState: the token only.
    let answer = call(
        &s,
        "GET",
        "/instance/connectionState/codechat",
        Some(&token),
        &Value::Null,
    )
    .await;
    assert_eq!(answer, (200, json!({"state": "open", "statusReason": 200})));
    let answer = call(
        &s,
        "GET",
        "/instance/connectionState/codechat",
        None,
        &Value::Null,
    )
    .await;
    assert_eq!(answer, (401, bare_401));
    // Every call was recorded, with what it was answered.
    let requests = s.sim.requests();
    assert_eq!(requests.len(), 8);
    assert_eq!((requests[0].status, &requests[0].body), (401, &text));
}

/// What the real server does with a quote, with and without saved messages; the answer to a
/// send carries the row id only where messages are saved.
#[actix_rt::test]
async fn quotes_and_row_ids_depend_on_saving_as_on_the_real_server() {
    for saving in [true, false] {
        let s = start(SimConfig {
            save_messages: saving,
            ..SimConfig::default()
        });
        let token = s.sim.mint_token("codechat", None);
        let ping = json!({"keyId": "3A5F", "keyFromMe": false, "keyRemoteJid": "5511988887777@s.whatsapp.net",
                          "messageType": "conversation", "content": {"text": "!ping"}, "messageTimestamp": 1_747_310_400});
        s.sim.emit("codechat", "messages.upsert", &ping);
        let saved = s.sim.history("codechat").pop().unwrap();
        assert_eq!(saved["id"].is_i64(), saving, "{saved}");
        let send = |options: Value| json!({"number": "5511988887777@s.whatsapp.net", "textMessage": {"text": "pong"}, "options": options});
        // The message itself: quoted with or without a database.
        let (status, answer) = call(
            &s,
            "POST",
            "/message/sendText/codechat",
            Some(&token),
            &send(json!({"quotedMessage": ping})),
        )
        .await;
        assert_eq!(status, 201, "{answer}");
        assert_eq!(answer["content"]["contextInfo"]["stanzaId"], "3A5F");
        assert_eq!(
            answer["content"]["contextInfo"]["quotedMessage"],
            json!({"extendedTextMessage": {"text": "!ping"}})
        );
        assert_eq!(answer["id"].is_i64(), saving, "{answer}");
        assert_eq!(s.sim.sent()[0].quoted.as_deref(), Some("3A5F"));
        // A row id: only where rows are saved, and only one that exists.
        let (status, answer) = call(
            &s,
            "POST",
            "/message/sendText/codechat",
            Some(&token),
            &send(json!({"quotedMessageId": saved["id"].as_i64().unwrap_or(1)})),
        )
        .await;
        if saving {
            assert_eq!(
                (status, &answer["content"]["contextInfo"]["stanzaId"]),
                (201, &json!("3A5F")),
                "{answer}"
            );
        } else {
            assert_eq!(
                (status, &answer["message"]),
                (
                    400,
                    &json!(["The DATABASE_SAVE_DATA_NEW_MESSAGE environment variable is disabled"])
                )
            );
        }
        let (status, answer) = call(
            &s,
            "POST",
            "/message/sendText/codechat",
            Some(&token),
            &send(json!({"quotedMessageId": 999_999})),
        )
        .await;
        let refusal = if saving {
            "Quoted message not found"
        } else {
            "The DATABASE_SAVE_DATA_NEW_MESSAGE environment variable is disabled"
        };
        assert_eq!((status, &answer["message"]), (400, &json!([refusal])));
        // The key id as a quotedMessageId, as eventsock sent it before: the schema refuses it.
        let (status, answer) = call(
            &s,
            "POST",
            "/message/sendText/codechat",
            Some(&token),
            &send(json!({"quotedMessageId": "3A5F"})),
        )
        .await;
        assert_eq!(
            (status, &answer["message"]),
            (
                400,
                &json!([{"property": "options.quotedMessageId", "message": "Enter the message id"}])
            )
        );
        assert_eq!(
            s.sim.sent().len(),
            if saving { 2 } else { 1 },
            "a refused send sends nothing"
        );
    }
}

/// markMessageAsRead passes on group and LID keys only, and answers success for all.
#[actix_rt::test]
async fn mark_as_read_marks_only_groups_and_lids() {
    let s = start(SimConfig::default());
    let token = s.sim.mint_token("codechat", None);
    let key = |jid: &str| json!({"id": "3A5F", "fromMe": false, "remoteJid": jid});
    let body = json!({"readMessages": [key("5511988887777@s.whatsapp.net"), key("123456789012345@lid"), key("120363025246125486@g.us")]});
    let answer = call(
        &s,
        "PUT",
        "/chat/markMessageAsRead/codechat",
        Some(&token),
        &body,
    )
    .await;
    assert_eq!(
        answer,
        (200, json!({"message": "Read messages", "read": "success"}))
    );
    assert_eq!(
        s.sim.marked_read(),
        vec![key("123456789012345@lid"), key("120363025246125486@g.us")]
    );
}
