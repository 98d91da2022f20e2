//! `POST /chat/mediaData`: the files of media messages, served over real HTTP as the real
//! server serves them, refused in its words, and misbehaving on request.

use eventsock_core::{legacy, EventName, Frame};
use eventsock_sim::{Embedded, MediaFault, SimConfig};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

mod common;

use common::{DEADLINE, PERSON};

/// Bytes that differ from one offset to the next, so that a slice out of place shows.
fn file(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

/// Posts `body` to mediaData (with `?binary=true` when `binary`): the status, the headers
/// (names in lower case) and the whole body.
async fn media(
    s: &Embedded,
    token: Option<&str>,
    body: &Value,
    binary: bool,
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let query = if binary { "?binary=true" } else { "" };
    let path = format!("/chat/mediaData/codechat{query}");
    let answer = common::post(s, &path, token, body).await;
    (answer.status, answer.headers, answer.body)
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn json_of(body: &[u8]) -> Value {
    serde_json::from_slice(body).unwrap_or(Value::Null)
}

fn bad_request(message: &str) -> Value {
    json!({"status": 400, "error": "Bad Request", "message": [message]})
}

#[actix_rt::test]
async fn binary_answers_serve_the_stored_bytes_with_the_servers_headers() {
    let s = Embedded::start(SimConfig::default()).unwrap();
    let token = s.sim.mint_token("codechat", None);
    let pdf = file(300_000);
    let msg = s.sim.media_message(
        PERSON,
        "documentMessage",
        "application/pdf",
        pdf.clone(),
        Some("Segue a nota"),
        Some("nota fiscal 2025 (1).pdf"),
    );
    // Shaped as the real server's received media message.
    assert_eq!(msg["keyFromMe"], false);
    assert_eq!(msg["keyRemoteJid"], PERSON);
    assert_eq!(msg["messageType"], "documentMessage");
    assert_eq!(msg["isGroup"], false);
    let content = &msg["content"];
    assert_eq!(content["fileLength"], "300000");
    assert_eq!(content["mimetype"], "application/pdf");
    assert_eq!(content["caption"], "Segue a nota");
    assert_eq!(content["fileName"], "nota fiscal 2025 (1).pdf");
    for k in [
        "url",
        "fileSha256",
        "mediaKey",
        "directPath",
        "mediaKeyTimestamp",
    ] {
        assert!(content[k].as_str().is_some_and(|v| !v.is_empty()), "{k}");
    }
    assert_eq!(content["fileSha256"].as_str().unwrap().len(), 44);
    assert!(msg["media"]["path"]
        .as_str()
        .unwrap()
        .starts_with("/chat/public/document/download?q="));
    // eventsock's own decoder takes it, and reads the length off the string.
    let text = msg.to_string();
    let name = EventName::parse("messages.upsert");
    let decoded: legacy::MessagesUpsert =
        Frame::parse(&name, &text).unwrap().decode(&name).unwrap();
    assert_eq!(decoded.content.file_length, Some(300_000));
    s.sim.emit("codechat", "messages.upsert", &msg);

    let (status, headers, body) = media(&s, Some(&token), &msg, true).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(header(&headers, "content-type"), Some("application/pdf"));
    assert_eq!(
        header(&headers, "content-disposition"),
        Some("inline; filename=\"nota%20fiscal%202025%20(1).pdf\"")
    );
    assert_eq!(header(&headers, "content-length"), Some("300000"));
    assert!(body == pdf, "the bytes served differ from those stored");

    // No file name: the message id and mime-types' extension, as the server names it; the
    // MIME type exactly as the message has it.
    let voice = file(5_000);
    let ogg = s.sim.media_message(
        PERSON,
        "audioMessage",
        "audio/ogg; codecs=opus",
        voice.clone(),
        None,
        None,
    );
    let (status, headers, body) = media(&s, Some(&token), &ogg, true).await;
    assert_eq!(status, 200);
    assert_eq!(
        header(&headers, "content-type"),
        Some("audio/ogg; codecs=opus")
    );
    let id = ogg["keyId"].as_str().unwrap();
    assert_eq!(
        header(&headers, "content-disposition"),
        Some(format!("inline; filename=\"{id}.oga\"").as_str())
    );
    assert!(body == voice);

    // Every media type, and an empty file.
    for (kind, mime, ext) in [
        ("imageMessage", "image/jpeg", "jpg"),
        ("videoMessage", "video/mp4", "mp4"),
        ("stickerMessage", "image/webp", "webp"),
        ("ptvMessage", "video/mp4", "mp4"),
    ] {
        let bytes = file(70_000);
        let msg = s
            .sim
            .media_message(PERSON, kind, mime, bytes.clone(), None, None);
        let (status, headers, body) = media(&s, Some(&token), &msg, true).await;
        assert_eq!(status, 200, "{kind}");
        let id = msg["keyId"].as_str().unwrap();
        assert_eq!(
            header(&headers, "content-disposition"),
            Some(format!("inline; filename=\"{id}.{ext}\"").as_str())
        );
        assert!(body == bytes, "{kind}");
    }
    let empty = s
        .sim
        .media_message(PERSON, "imageMessage", "image/png", Vec::new(), None, None);
    let (status, headers, body) = media(&s, Some(&token), &empty, true).await;
    assert_eq!(
        (status, header(&headers, "content-length"), body.len()),
        (200, Some("0"), 0)
    );

    // A body with the saved row's key only: the server finds the row (getMessage) and serves it.
    let (status, _, body) = media(
        &s,
        Some(&token),
        &json!({"keyId": msg_id(&msg_of(&s, 0))}),
        true,
    )
    .await;
    assert_eq!(status, 200);
    assert!(body == pdf);
}

/// The first message saved on `codechat`.
fn msg_of(s: &Embedded, i: usize) -> Value {
    s.sim.stored("codechat")[i].clone()
}

fn msg_id(msg: &Value) -> String {
    msg["keyId"].as_str().unwrap().to_owned()
}

/// Without `binary=true`: the real server's multipart form (form-data), without a
/// `Content-Type`, chunked.
#[actix_rt::test]
async fn without_binary_the_answer_is_the_servers_multipart_form() {
    let s = Embedded::start(SimConfig::default()).unwrap();
    let token = s.sim.mint_token("codechat", None);
    let jpeg = file(100_000);
    let msg = s.sim.media_message(
        PERSON,
        "imageMessage",
        "image/jpeg",
        jpeg.clone(),
        Some("Foto"),
        None,
    );
    let (status, headers, body) = media(&s, Some(&token), &msg, false).await;
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "content-type"), None);
    assert_eq!(header(&headers, "content-length"), None);
    let id = msg["keyId"].as_str().unwrap();
    let boundary_line = body.split(|b| *b == b'\r').next().unwrap();
    let boundary = String::from_utf8(boundary_line.to_vec()).unwrap();
    assert!(boundary.starts_with("----------------------------"));
    assert_eq!(boundary.len(), 2 + 26 + 24, "{boundary}");
    let field = |name: &str, value: &str| {
        format!("{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
    };
    let mut expected = String::new();
    for (name, value) in [
        ("mediaType", "imageMessage"),
        ("fileName", &format!("{id}.jpg")),
        ("size", "{\"fileLength\":\"100000\"}"),
        ("mimetype", "image/jpeg"),
        ("caption", "Foto"),
    ] {
        expected.push_str(&field(name, value));
    }
    expected.push_str(&format!(
        "{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{id}.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n"
    ));
    let mut expected = expected.into_bytes();
    expected.extend_from_slice(&jpeg);
    expected.extend_from_slice(format!("\r\n{boundary}--\r\n").as_bytes());
    assert!(body == expected, "the form differs from the server's");
}

/// The refusals: the guards', the server's for a message that is not media, and Baileys' for a
/// file it cannot have, each as a 400 in the server's shape.
#[actix_rt::test]
async fn refusals_are_the_real_servers() {
    let s = Embedded::start(SimConfig::default()).unwrap();
    let token = s.sim.mint_token("codechat", None);
    let msg = s
        .sim
        .media_message(PERSON, "imageMessage", "image/jpeg", file(10), None, None);
    let (status, _, body) = media(&s, None, &msg, true).await;
    assert_eq!(
        (status, json_of(&body)),
        (401, json!({"status": 401, "error": "Unauthorized"}))
    );
    let stranger = s.sim.mint_token("nobody", None);
    let resp = awc::Client::new()
        .post(format!("{}/chat/mediaData/nobody?binary=true", s.url()))
        .bearer_auth(stranger)
        .send_json(&msg)
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);

    let text = json!({"keyId": "3A5F", "keyFromMe": false, "keyRemoteJid": PERSON,
                      "messageType": "conversation", "content": {"text": "oi"}});
    let not_media = bad_request("The message is not of the media type");
    for body in [text, json!({}), json!({"keyId": "no such row"}), json!([1])] {
        let (status, _, answer) = media(&s, Some(&token), &body, true).await;
        assert_eq!(
            (status, json_of(&answer)),
            (400, not_media.clone()),
            "{body}"
        );
    }
    // A media message the simulator has no file for (another id): WhatsApp has none either.
    let mut foreign = msg.clone();
    foreign["keyId"] = "3EB0FOREIGN".into();
    let (status, _, answer) = media(&s, Some(&token), &foreign, true).await;
    assert_eq!(
        (status, json_of(&answer)),
        (
            400,
            bad_request("Media re-upload failed by device (NOT_FOUND)")
        )
    );
    // Baileys' checks before it downloads.
    let mut no_key = msg.clone();
    no_key["content"]["mediaKey"] = Value::Null;
    let (status, _, answer) = media(&s, Some(&token), &no_key, true).await;
    assert_eq!(
        (status, json_of(&answer)),
        (400, bad_request("Cannot derive from empty media key"))
    );
    let mut no_url = msg.clone();
    no_url["content"] = json!({"mimetype": "image/jpeg", "mediaKey": "a2V5"});
    let (status, _, answer) = media(&s, Some(&token), &no_url, true).await;
    assert_eq!(
        (status, json_of(&answer)),
        (
            400,
            bad_request("\"imageMessage\" message is not a media message")
        )
    );
    // Each call is recorded, with its answer.
    let requests = s.sim.requests();
    assert!(requests
        .iter()
        .all(|r| r.path == "/chat/mediaData/codechat" || r.path == "/chat/mediaData/nobody"));
    assert_eq!(requests.len(), 9);
}

/// A raw HTTP exchange, to see exactly what the server sends and when it stops.
struct Raw {
    stream: TcpStream,
    head: String,
    body: Vec<u8>,
}

/// Posts `body` to mediaData with `?binary=true` over a plain socket and reads the answer's
/// head (blocking: run it off the runtime's thread).
fn raw_post(addr: SocketAddr, token: &str, body: &Value) -> Raw {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    let body = body.to_string();
    write!(
        stream,
        "POST /chat/mediaData/codechat?binary=true HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&got[..end]).to_ascii_lowercase();
            let body = got[end + 4..].to_vec();
            return Raw { stream, head, body };
        }
        let n = stream
            .read(&mut buf)
            .expect("no answer within the deadline");
        assert!(n > 0, "the connection ended before the answer's head");
        got.extend_from_slice(&buf[..n]);
    }
}

impl Raw {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == name).then(|| v.trim())
        })
    }

    /// Reads until the server ends the connection, within the deadline.
    fn read_to_end(&mut self) {
        let until = Instant::now() + DEADLINE;
        let mut buf = [0u8; 65536];
        loop {
            assert!(Instant::now() < until, "the connection never ended");
            match self.stream.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => self.body.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return,
                Err(e) => panic!("the connection neither ended nor sent: {e}"),
            }
        }
    }

    /// Reads until `n` body bytes have come, within the deadline.
    fn read_at_least(&mut self, n: usize) {
        let mut buf = [0u8; 65536];
        while self.body.len() < n {
            let got = self.stream.read(&mut buf).expect("the bytes never came");
            assert!(
                got > 0,
                "the connection ended after {} bytes",
                self.body.len()
            );
            self.body.extend_from_slice(&buf[..got]);
        }
    }

    /// Whether the server sends nothing for `quiet`, the connection staying open.
    fn silent_for(&mut self, quiet: Duration) -> bool {
        self.stream.set_read_timeout(Some(quiet)).unwrap();
        let mut buf = [0u8; 1024];
        match self.stream.read(&mut buf) {
            Err(e) => matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
            // Bytes (`Ok(n > 0)`) or the end (`Ok(0)`): not silence either way.
            Ok(_n) => false,
        }
    }
}

/// The chunks of a chunked body, as far as they are complete: their sizes and their data.
fn dechunk(raw: &[u8]) -> (Vec<usize>, Vec<u8>) {
    let (mut sizes, mut data, mut at) = (Vec::new(), Vec::new(), 0);
    while let Some(eol) = raw[at..].windows(2).position(|w| w == b"\r\n") {
        let line = std::str::from_utf8(&raw[at..at + eol]).unwrap();
        let size = usize::from_str_radix(line, 16).unwrap();
        let start = at + eol + 2;
        if size == 0 || raw.len() < start + size + 2 {
            break;
        }
        sizes.push(size);
        data.extend_from_slice(&raw[start..start + size]);
        at = start + size + 2;
    }
    (sizes, data)
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::time::timeout(DEADLINE * 2, tokio::task::spawn_blocking(f))
        .await
        .expect("the exchange outlived its deadline")
        .unwrap()
}

/// Each fault, as a client sees it on the wire; each is used up by one answer that would
/// have served a file, and a refusal uses none.
#[actix_rt::test]
async fn faults_misbehave_as_asked_and_only_as_often_as_asked() {
    let s = Embedded::start(SimConfig::default()).unwrap();
    let token = s.sim.mint_token("codechat", None);
    let bytes = file(300_000);
    let msg = s.sim.media_message(
        PERSON,
        "videoMessage",
        "video/mp4",
        bytes.clone(),
        None,
        None,
    );

    // Status: the status, with a JSON error body; a refusal does not use the fault up.
    s.sim.media_faults(MediaFault::Status(503), 1);
    let text = json!({"messageType": "conversation", "content": {"text": "oi"}});
    let (status, _, _) = media(&s, Some(&token), &text, true).await;
    assert_eq!(status, 400);
    let (status, _, body) = media(&s, Some(&token), &msg, true).await;
    assert_eq!(
        (status, json_of(&body)),
        (
            503,
            json!({"status": 503, "error": "Service Unavailable",
                               "message": ["refused by the simulator's control API"]})
        )
    );
    let (status, _, body) = media(&s, Some(&token), &msg, true).await;
    assert_eq!(status, 200, "the fault was for one answer");
    assert!(body == bytes);

    // Stall: the length announced, `after` bytes, then silence on an open connection.
    s.sim.media_faults(MediaFault::Stall { after: 100_000 }, 1);
    let (addr, t, m) = (s.addr, token.clone(), msg.clone());
    let (length, got, silent) = blocking(move || {
        let mut raw = raw_post(addr, &t, &m);
        raw.read_at_least(100_000);
        let silent = raw.silent_for(Duration::from_millis(300));
        (
            raw.header("content-length").map(str::to_owned),
            raw.body,
            silent,
        )
    })
    .await;
    assert_eq!(length.as_deref(), Some("300000"));
    assert!(got == bytes[..100_000], "the stalled answer's bytes differ");
    assert!(silent, "the stalled answer went on, or ended");

    // LyingLength: more announced than sent, then the connection ends.
    for (announced, sent) in [(1_000_000u64, 300_000usize), (10, 9)] {
        s.sim.media_faults(MediaFault::LyingLength { announced }, 1);
        let (addr, t, m) = (s.addr, token.clone(), msg.clone());
        let (length, got) = blocking(move || {
            let mut raw = raw_post(addr, &t, &m);
            raw.read_to_end();
            (raw.header("content-length").map(str::to_owned), raw.body)
        })
        .await;
        assert_eq!(length, Some(announced.to_string()));
        assert_eq!(got.len(), sent);
        assert!(got == bytes[..sent]);
    }

    // Endless: chunked, no length, chunks of 64 KiB at most, the file over and over.
    s.sim.media_faults(MediaFault::Endless, 1);
    let (addr, t, m) = (s.addr, token.clone(), msg.clone());
    let raw = blocking(move || {
        let mut raw = raw_post(addr, &t, &m);
        raw.read_at_least(1_000_000);
        raw
    })
    .await;
    assert_eq!(raw.header("content-length"), None);
    assert_eq!(raw.header("transfer-encoding"), Some("chunked"));
    let (sizes, data) = dechunk(&raw.body);
    assert!(sizes.iter().all(|n| *n <= 64 * 1024), "{sizes:?}");
    assert!(data.len() > 3 * bytes.len());
    assert!(data[..bytes.len()] == bytes[..] && data[bytes.len()..2 * bytes.len()] == bytes[..]);
    drop(raw);

    // Used up: the file again.
    let (status, _, body) = media(&s, Some(&token), &msg, true).await;
    assert_eq!(status, 200);
    assert!(body == bytes);
}

/// `POST /control/media-faults`, and its refusals.
#[actix_rt::test]
async fn the_control_api_sets_faults() {
    let s = Embedded::start(SimConfig::default()).unwrap();
    let token = s.sim.mint_token("codechat", None);
    let msg = s.sim.media_message(
        PERSON,
        "imageMessage",
        "image/jpeg",
        file(1_000),
        None,
        None,
    );
    let control = |body: Value| {
        let url = format!("{}/control/media-faults", s.url());
        async move {
            let mut resp = awc::Client::new().post(url).send_json(&body).await.unwrap();
            (
                resp.status().as_u16(),
                resp.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let (status, answer) = control(json!({"fault": "status", "status": 500, "count": 2})).await;
    assert_eq!(status, 200, "{answer}");
    for expected in [500, 500, 200] {
        let (status, _, _) = media(&s, Some(&token), &msg, true).await;
        assert_eq!(status, expected);
    }
    let (status, _) = control(json!({"fault": "lying-length", "announced": 5000})).await;
    assert_eq!(status, 200);
    let (status, answer) = control(json!({"fault": "endless", "count": 0})).await;
    assert_eq!((status, &answer["failing"]), (200, &json!(0)));
    let (status, _, body) = media(&s, Some(&token), &msg, true).await;
    assert_eq!(
        (status, body.len()),
        (200, 1_000),
        "a count of 0 ends the faults"
    );
    for (bad, says) in [
        (json!({"fault": "sulk"}), "unknown fault \"sulk\""),
        (json!({"fault": "status"}), "needs a status"),
        (json!({"fault": "status", "status": 200}), "400 to 599"),
        (json!({"fault": "lying-length"}), "announced"),
        (
            json!({"fault": "lying-length", "announced": 0}),
            "announced",
        ),
    ] {
        let (status, answer) = control(bad.clone()).await;
        assert_eq!(status, 400, "{bad}");
        assert!(
            answer["error"].as_str().is_some_and(|e| e.contains(says)),
            "{bad}: {answer}"
        );
    }
    s.sim.media_faults(MediaFault::Stall { after: 0 }, 0);
}
