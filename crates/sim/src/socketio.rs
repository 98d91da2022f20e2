//! Evolution API's Socket.IO endpoint, `/socket.io/`, as socket.io 4.8 and engine.io 6.6 serve
//! it over WebSocket, behind Evolution's `allowRequest`.
//!
//! - The handshake needs `EIO=4` and `transport=websocket`, and an `apikey` (query or header)
//!   that is the global key or an instance's token; a refused key is a 400 whose body is the
//!   reason as text (`apiKey is required`, `Invalid global token`), before the upgrade. (The
//!   real server lets its `WEBSOCKET_ALLOWED_HOSTS`, the loopback addresses by default, in
//!   without a key; the simulator asks everyone, so that tests see the check.)
//! - The open packet, then the server's heartbeat: `2` every `ping_interval` after the last
//!   pong, and the session dropped when `3` does not come within `pong_timeout`. A client's
//!   `2` is a wrong heartbeat direction: dropped.
//! - A namespace is joined only once it exists (an instance's first event makes it):
//!   `44/{instance},{"message":"Invalid namespace"}` before. A session that joins nothing
//!   within 45 s (`connectTimeout`) is dropped.
//! - Anything else a client sends that is not a packet (or binary) ends the session, as
//!   socket.io does.

use crate::hub::{Control, Out, Sim};
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use actix_ws::{CloseCode, CloseReason, Message};
use eventsock_core::socketio::{self, EnginePacket, Packet};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// What socket.io waits for a first namespace join (`connectTimeout`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(45);
/// engine.io's `maxPayload`: a larger message from a client closes the session with 1009.
const MAX_PAYLOAD: u64 = 1_000_000;

/// Writes what the hub sends a session: a packet, then its attachments.
pub(crate) async fn write(
    session: &mut actix_ws::Session,
    out: Out,
) -> Result<(), actix_ws::Closed> {
    match out {
        Out::Text(text) => session.text(text).await,
        Out::Packet(text, attachments) => {
            session.text(text).await?;
            for a in attachments.iter() {
                session.binary(a.clone()).await?;
            }
            Ok(())
        }
    }
}

/// engine.io's refusal of a handshake it cannot take: 400 with `{code, message}`.
fn engine_refusal(code: u8, message: &str) -> HttpResponse {
    HttpResponse::BadRequest().json(serde_json::json!({"code": code, "message": message}))
}

/// Evolution's `allowRequest` refusal: 400, the reason as the body's text, and the connection
/// closed.
fn key_refusal(reason: &'static str) -> HttpResponse {
    tracing::debug!(reason, "socket.io handshake refused");
    HttpResponse::build(StatusCode::BAD_REQUEST)
        .insert_header((header::CONNECTION, "close"))
        .content_type("text/html")
        .body(reason)
}

/// `/socket.io/`: checks the handshake, then serves the session.
pub(crate) fn handshake(req: &HttpRequest, body: web::Payload, sim: &Sim) -> HttpResponse {
    let mut query: HashMap<String, String> = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(req.query_string().as_bytes()) {
        query
            .entry(k.into_owned())
            .or_insert_with(|| v.into_owned());
    }
    match query.get("transport").map(String::as_str) {
        Some("websocket") => {}
        Some("polling") => {
            return engine_refusal(3, "Bad request: the simulator serves WebSocket only")
        }
        _ => return engine_refusal(0, "Transport unknown"),
    }
    if query.get("EIO").map(String::as_str) != Some("4") {
        return engine_refusal(5, "Unsupported protocol version");
    }
    let key = query.get("apikey").cloned().or_else(|| {
        req.headers()
            .get("apikey")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    });
    match key.filter(|k| !k.is_empty()) {
        None => return key_refusal("apiKey is required"),
        Some(k) if !sim.accepts_key(&k, None) => return key_refusal("Invalid global token"),
        Some(_) => {}
    }
    let (response, session, stream) = match actix_ws::handle(req, body) {
        Ok(parts) => parts,
        Err(e) => return e.error_response(),
    };
    let queues = sim.register((String::new(), "*".into()));
    tracing::debug!(id = queues.id, "socket.io session open");
    actix_web::rt::spawn(serve(sim.clone(), queues, session, stream));
    response
}

/// A session's id, 20 characters as engine.io's.
fn sid(id: u64) -> String {
    format!("sim{id:017}")
}

async fn serve(
    sim: Sim,
    mut q: crate::hub::SocketQueues,
    mut session: actix_ws::Session,
    stream: actix_ws::MessageStream,
) {
    let config = sim.config().clone();
    let mut stream = stream.max_frame_size(MAX_PAYLOAD as usize);
    let sid = sid(q.id);
    let open = socketio::open(&sid, config.ping_interval, config.pong_timeout, MAX_PAYLOAD);
    if session.text(open).await.is_err() {
        sim.unregister(q.id);
        return;
    }
    // The namespaces joined: a second connect to one ends the session, as socket.io does.
    let mut joined: Vec<String> = Vec::new();
    let connect_timeout = tokio::time::sleep(CONNECT_TIMEOUT);
    tokio::pin!(connect_timeout);
    // The next ping, and the pong awaited: one timer for both.
    let heartbeat = tokio::time::sleep(config.ping_interval);
    tokio::pin!(heartbeat);
    let mut awaiting_pong = false;
    let mut frames_open = true;

    let close: Option<CloseReason> = loop {
        tokio::select! {
            biased;
            ctl = q.control.recv() => match ctl {
                Some(Control::Close(code, reason)) => break Some(CloseReason {
                    code: CloseCode::from(code),
                    description: Some(reason),
                }),
                Some(Control::Abort) | None => break None,
            },
            _ = &mut connect_timeout, if joined.is_empty() => {
                tracing::debug!(id = q.id, "no namespace joined in time: dropping the session");
                break None;
            }
            _ = &mut heartbeat => {
                if awaiting_pong {
                    tracing::debug!(id = q.id, "no pong: dropping the session");
                    break None;
                }
                // A half-open link: the server's pings are lost, and so the client's silence
                // timer runs out.
                if !sim.half_open() && session.text(socketio::PING).await.is_err() {
                    break None;
                }
                awaiting_pong = true;
                heartbeat.as_mut().reset(tokio::time::Instant::now() + config.pong_timeout);
            }
            frame = q.frames.recv(), if frames_open => match frame {
                Some(out) => {
                    q.queued.fetch_sub(1, Ordering::Relaxed);
                    if write(&mut session, out).await.is_err() {
                        break None;
                    }
                }
                None => frames_open = false,
            },
            msg = stream.recv() => match msg {
                Some(Ok(Message::Text(text))) => match client_packet(&sim, q.id, &text, &mut joined) {
                    Reply::Nothing => {}
                    Reply::Pong => {
                        awaiting_pong = false;
                        heartbeat.as_mut().reset(tokio::time::Instant::now() + config.ping_interval);
                    }
                    Reply::Send(answer) => {
                        if session.text(answer).await.is_err() {
                            break None;
                        }
                    }
                    Reply::Drop(why) => {
                        tracing::debug!(id = q.id, why, "dropping the session");
                        break None;
                    }
                },
                Some(Ok(Message::Ping(bytes))) => {
                    if sim.half_open() {
                        sim.swallow_ping();
                    } else if session.pong(&bytes).await.is_err() {
                        break None;
                    }
                }
                Some(Ok(Message::Close(reason))) => {
                    sim.record_client_close(reason.as_ref().map(|r| u16::from(r.code)));
                    break reason.or(Some(CloseCode::Normal.into()));
                }
                Some(Ok(Message::Pong(_) | Message::Nop)) => {}
                Some(Ok(Message::Binary(_) | Message::Continuation(_))) => {
                    break None;
                }
                Some(Err(actix_ws::ProtocolError::Overflow)) => {
                    break Some(CloseReason {
                        code: CloseCode::Size,
                        description: None,
                    });
                }
                Some(Err(_)) | None => break None,
            },
        }
    };
    sim.unregister(q.id);
    tracing::debug!(id = q.id, "socket.io session closed");
    match close {
        Some(reason) => {
            let _ = session.close(Some(reason)).await;
        }
        None => drop(session),
    }
}

/// What the server does about one packet from a client.
enum Reply {
    Nothing,
    Pong,
    Send(String),
    Drop(&'static str),
}

fn client_packet(sim: &Sim, id: u64, text: &str, joined: &mut Vec<String>) -> Reply {
    match socketio::read(text) {
        Ok(EnginePacket::Pong) => Reply::Pong,
        Ok(EnginePacket::Ping) => {
            Reply::Drop("a ping from the client: invalid heartbeat direction")
        }
        // engine.io ignores a client's close packet on a WebSocket.
        Ok(EnginePacket::Close | EnginePacket::Noop) => Reply::Nothing,
        Ok(EnginePacket::Open(_)) => Reply::Drop("an open packet from the client"),
        Ok(EnginePacket::Message(Packet::Connect { nsp })) => {
            if joined.iter().any(|j| j == nsp) {
                return Reply::Drop("a second connect to a namespace already joined");
            }
            // The root namespace always exists (it has Evolution's own handlers).
            if nsp == "/" || sim.join(id, nsp.trim_start_matches('/')) {
                joined.push(nsp.to_owned());
                Reply::Send(socketio::connect_answer(nsp, &sid(id), None))
            } else {
                Reply::Send(socketio::connect_answer(
                    nsp,
                    &sid(id),
                    Some("Invalid namespace"),
                ))
            }
        }
        Ok(EnginePacket::Message(Packet::Disconnect { .. })) => Reply::Nothing,
        // Evolution's clients send nothing else the simulator plays (its `sendNode` is not).
        Ok(EnginePacket::Message(_)) => Reply::Nothing,
        Err(_) => Reply::Drop("a packet that does not parse"),
    }
}
