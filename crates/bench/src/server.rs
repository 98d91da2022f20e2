//! The load generator: a bare WebSocket server that writes realistic `messages.upsert` frames
//! (the legacy fixture, with a sequence number and the send time added) as fast as it can or at a
//! fixed rate. It runs in its own process, so the client's memory and CPU are measured alone.
//!
//! What to send is read from the request path, so every client (eventsock, the raw baseline,
//! Node) gets exactly the same frames from the same URL: `/n=COUNT/r=RATE/ws/events?...` sends
//! COUNT frames at RATE per second (0: as fast as possible); `/idle/ws/events?...` sends nothing;
//! a `c=CHATS` segment spreads the frames over that many chats.
//! After a connection's frames are written, the server prints `{"sent":N,"us":T}` on stdout:
//! the generator's own rate, reported beside each figure.

use futures_util::{SinkExt, StreamExt};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::Message;

const FIXTURE: &str = include_str!("../../../tests/fixtures/legacy/messages.upsert.json");
/// Evolution API's `messages.upsert` as it comes on the wire since 2.3.6: a binary event whose
/// three byte fields follow as attachments.
const EVOLUTION: &str = include_str!("../../../tests/fixtures/evolution/messages.upsert.json");

/// Microseconds since the epoch: comparable across processes on one machine.
pub(crate) fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or_default()
}

/// The fixture, compact, with `{"seq":N,"sentAtUs":T,` spliced in front.
pub(crate) struct Template {
    rest: String,
}

impl Template {
    pub(crate) fn new() -> Template {
        let compact: serde_json::Value =
            serde_json::from_str(FIXTURE).expect("the fixture is valid JSON");
        let text = compact.to_string();
        Template {
            rest: text[1..].to_owned(),
        }
    }

    pub(crate) fn frame(&self, seq: u64) -> String {
        format!("{{\"seq\":{seq},\"sentAtUs\":{},{}", now_us(), self.rest)
    }

    /// [`Template::frame`], in chat `seq % chats` (`keyRemoteJid` replaced) when `chats` > 0.
    fn frame_in(&self, seq: u64, chats: u64) -> String {
        let frame = self.frame(seq);
        if chats == 0 {
            return frame;
        }
        frame.replacen(
            "5511988887777@s.whatsapp.net",
            &format!("55119{:08}@s.whatsapp.net", seq % chats),
            1,
        )
    }
}

/// Evolution's event, compact, with `"seq":N,"sentAtUs":T` spliced at the front of its data,
/// as a Socket.IO binary event of namespace `/bot`.
pub(crate) struct EvolutionTemplate {
    head: String,
    rest: String,
    attachments: [Vec<u8>; 3],
}

impl EvolutionTemplate {
    pub(crate) fn new() -> EvolutionTemplate {
        // Compacted in the fixture's order (the server's: `apikey` last), which a `Value`
        // would sort.
        let envelope = minified(EVOLUTION);
        let body = format!("[\"messages.upsert\",{envelope}]");
        let at = body.find("\"data\":{").expect("an envelope with data") + "\"data\":{".len();
        EvolutionTemplate {
            head: format!("453-/bot,{}", &body[..at]),
            rest: body[at..].to_owned(),
            attachments: [vec![7; 32], vec![9; 32], vec![1; 32]],
        }
    }

    /// The packet's text and its attachments.
    pub(crate) fn frames(&self, seq: u64) -> [Message; 4] {
        let text = format!(
            "{}\"seq\":{seq},\"sentAtUs\":{},{}",
            self.head,
            now_us(),
            self.rest
        );
        let [a, b, c] = self.attachments.clone();
        [
            Message::text(text),
            Message::binary(a),
            Message::binary(b),
            Message::binary(c),
        ]
    }
}

/// `json` without the whitespace between its tokens, members in their order.
fn minified(json: &str) -> String {
    let (mut out, mut in_string, mut escaped) = (String::with_capacity(json.len()), false, false);
    for c in json.chars() {
        if in_string {
            out.push(c);
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
        } else if !c.is_whitespace() {
            in_string = c == '"';
            out.push(c);
        }
    }
    out
}

struct Plan {
    count: u64,
    rate: u64,
    idle: bool,
    /// Spread the frames over this many chats (0: all in the fixture's one).
    chats: u64,
}

fn plan(path: &str) -> Plan {
    let mut p = Plan {
        count: 0,
        rate: 0,
        idle: false,
        chats: 0,
    };
    for seg in path.split('/') {
        if seg == "idle" {
            p.idle = true;
        } else if let Some(n) = seg.strip_prefix("n=") {
            p.count = n.parse().unwrap_or(0);
        } else if let Some(r) = seg.strip_prefix("r=") {
            p.rate = r.parse().unwrap_or(0);
        } else if let Some(c) = seg.strip_prefix("c=") {
            p.chats = c.parse().unwrap_or(0);
        }
    }
    p
}

pub(crate) async fn serve(port: u16) -> anyhow::Result<()> {
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    println!("listening {}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let mut path = String::new();
            // The signature is tungstenite's (its error type is an HTTP response).
            #[allow(clippy::result_large_err)]
            let callback = |req: &Request, resp: Response| {
                path = req.uri().path().to_owned();
                // A subscription to another event than messages.upsert (a bot's receipts, on
                // messages.update) is served nothing, as a server would have little for it.
                let other_event = req.uri().query().is_some_and(|q| {
                    q.split('&')
                        .any(|kv| kv.starts_with("event=") && kv != "event=messages.upsert")
                });
                if other_event {
                    path.push_str("/idle");
                }
                Ok(resp)
            };
            let Ok(ws) = tokio_tungstenite::accept_hdr_async(stream, callback).await else {
                return;
            };
            let plan = plan(&path);
            let (mut sink, mut stream) = ws.split();
            if path.ends_with("/socket.io/") {
                // Evolution API: the open packet, the client's namespace connect, then events.
                let open = r#"0{"sid":"bench0000000000000000","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}"#;
                if sink.send(Message::text(open)).await.is_err() {
                    return;
                }
                let nsp = loop {
                    match stream.next().await {
                        Some(Ok(Message::Text(t))) if t.starts_with("40/") => {
                            break t.trim_start_matches("40").trim_end_matches(',').to_owned();
                        }
                        Some(Ok(_)) => {}
                        _ => return,
                    }
                };
                let joined = format!(r#"40{nsp},{{"sid":"bench"}}"#);
                if sink.send(Message::text(joined)).await.is_err() {
                    return;
                }
            }
            // Answer pings and notice when the client leaves.
            let reader =
                tokio::spawn(async move { while let Some(Ok(_)) = stream.next().await {} });
            if !plan.idle && plan.count > 0 && path.ends_with("/socket.io/") {
                let template = EvolutionTemplate::new();
                let started = Instant::now();
                let start_us = now_us();
                let mut sent = 0u64;
                while sent < plan.count {
                    for frame in template.frames(sent) {
                        if sink.feed(frame).await.is_err() {
                            return;
                        }
                    }
                    sent += 1;
                    if sent.is_multiple_of(64) && sink.flush().await.is_err() {
                        return;
                    }
                }
                let _ = sink.flush().await;
                println!(
                    "{{\"sent\":{sent},\"us\":{},\"start_us\":{start_us}}}",
                    started.elapsed().as_micros()
                );
            } else if !plan.idle && plan.count > 0 {
                let template = Template::new();
                let started = Instant::now();
                let start_us = now_us();
                let mut sent = 0u64;
                if plan.rate == 0 {
                    while sent < plan.count {
                        if sink
                            .feed(Message::text(template.frame_in(sent, plan.chats)))
                            .await
                            .is_err()
                        {
                            return;
                        }
                        sent += 1;
                        if sent.is_multiple_of(64) && sink.flush().await.is_err() {
                            return;
                        }
                    }
                } else {
                    let mut tick = tokio::time::interval(Duration::from_millis(1));
                    while sent < plan.count {
                        tick.tick().await;
                        let due = ((started.elapsed().as_secs_f64() * plan.rate as f64) as u64)
                            .min(plan.count);
                        while sent < due {
                            if sink
                                .feed(Message::text(template.frame_in(sent, plan.chats)))
                                .await
                                .is_err()
                            {
                                return;
                            }
                            sent += 1;
                        }
                        if sink.flush().await.is_err() {
                            return;
                        }
                    }
                }
                let _ = sink.flush().await;
                println!(
                    "{{\"sent\":{sent},\"us\":{},\"start_us\":{start_us}}}",
                    started.elapsed().as_micros()
                );
            }
            let _ = reader.await;
        });
    }
}
