//! The event sockets: handshake checks, then one task per socket.

use crate::auth::Refusal;
use crate::config::Protocol;
use crate::hub::{Control, Key, Sim, SocketQueues};
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use actix_ws::{CloseCode, CloseReason, Message};
use eventsock_core::{Channel, EventKind};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// A refused handshake: the status and, for the newer server, an error body.
fn refuse(sim: &Sim, status: StatusCode, message: &str) -> HttpResponse {
    tracing::debug!(%status, message, "handshake refused");
    match sim.config().protocol {
        // The legacy server writes a bare status line and destroys the socket.
        Protocol::Legacy => HttpResponse::Unauthorized()
            .insert_header((header::CONNECTION, "close"))
            .finish(),
        // Evolution's refusals are made by its Socket.IO endpoint (`socketio.rs`).
        Protocol::V2 | Protocol::Evolution => HttpResponse::build(status).json(serde_json::json!({
            "statusCode": status.as_u16(),
            "error": status.canonical_reason().unwrap_or_default(),
            "messages": [message],
        })),
    }
}

fn is_upgrade(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// Every path: the legacy server checks the path itself and answers 401 to a wrong one.
pub(crate) async fn any_path(
    req: HttpRequest,
    body: web::Payload,
    sim: web::Data<Sim>,
) -> HttpResponse {
    let channel = Channel::from_path(req.path());
    match (sim.config().protocol, channel) {
        (Protocol::Evolution, Some(Channel::Evolution)) if is_upgrade(&req) => {
            crate::socketio::handshake(&req, body, &sim)
        }
        (Protocol::Legacy, Some(Channel::Legacy)) if is_upgrade(&req) => {
            handshake(&req, body, &sim, Channel::Legacy)
        }
        (Protocol::Legacy, _) if is_upgrade(&req) => refuse(&sim, StatusCode::UNAUTHORIZED, "path"),
        (Protocol::V2, Some(c @ (Channel::Instance | Channel::Global))) => {
            if !is_upgrade(&req) {
                return refuse(&sim, StatusCode::UPGRADE_REQUIRED, "not a WebSocket upgrade");
            }
            handshake(&req, body, &sim, c)
        }
        _ => HttpResponse::NotFound().json(serde_json::json!({
            "statusCode": 404, "error": "Not Found", "messages": [format!("Cannot {} {}", req.method(), req.path())],
        })),
    }
}

fn handshake(req: &HttpRequest, body: web::Payload, sim: &Sim, channel: Channel) -> HttpResponse {
    // The first of repeated parameters counts, as `URLSearchParams.get` takes it.
    let mut query: HashMap<String, String> = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(req.query_string().as_bytes()) {
        query
            .entry(k.into_owned())
            .or_insert_with(|| v.into_owned());
    }
    let legacy = sim.config().protocol == Protocol::Legacy;
    let bad_request = if legacy {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::BAD_REQUEST
    };

    let Some(event) = query.get("event").filter(|e| !e.is_empty()) else {
        return refuse(sim, bad_request, "event is required");
    };
    let known = event
        .parse::<EventKind>()
        .is_ok_and(|k| k.served_on(channel))
        // The newer server serves group call families it documents only by prefix.
        || (channel == Channel::Instance && event.starts_with("call."));
    if !known {
        return refuse(sim, bad_request, "event is not allowed");
    }
    let Some(token) = query.get("token").filter(|t| !t.is_empty()) else {
        return refuse(sim, bad_request, "token is required");
    };
    let claims = match sim.verify(token) {
        Ok(c) => c,
        Err(Refusal::Expired) => return refuse(sim, StatusCode::UNAUTHORIZED, "token expired"),
        Err(Refusal::Invalid) => return refuse(sim, StatusCode::UNAUTHORIZED, "invalid token"),
    };
    let scope = if channel == Channel::Global {
        match (&claims.user_id, claims.exp) {
            (Some(user), Some(_)) => user.clone(),
            _ => {
                return refuse(
                    sim,
                    StatusCode::UNAUTHORIZED,
                    "a user token with exp is required",
                )
            }
        }
    } else {
        let Some(instance) = claims.instance_name.clone() else {
            return refuse(sim, StatusCode::UNAUTHORIZED, "instanceName is missing");
        };
        if !legacy {
            if sim.instance_id(&instance).is_none() {
                return refuse(sim, StatusCode::NOT_FOUND, "instance not found");
            }
            if !sim.is_current_token(&instance, token) {
                return refuse(
                    sim,
                    StatusCode::FORBIDDEN,
                    "token does not match the instance",
                );
            }
        }
        instance
    };

    let (response, session, stream) = match actix_ws::handle(req, body) {
        Ok(parts) => parts,
        Err(e) => return e.error_response(),
    };
    let queues = sim.register((scope.clone(), event.clone()));
    tracing::debug!(scope, event, id = queues.id, "socket open");
    let expires_in = (!legacy && sim.config().jwt_expires_in.is_some())
        .then_some(())
        .and(claims.exp)
        .map(|exp| Duration::from_secs(exp.saturating_sub(crate::auth::now_secs())));
    actix_web::rt::spawn(serve_socket(
        sim.clone(),
        (scope, event.clone()),
        queues,
        session,
        stream,
        expires_in,
    ));
    response
}

/// One socket's life: write queued frames, answer (or send) pings, obey control messages.
async fn serve_socket(
    sim: Sim,
    key: Key,
    mut q: SocketQueues,
    mut session: actix_ws::Session,
    stream: actix_ws::MessageStream,
    expires_in: Option<Duration>,
) {
    let v2 = sim.config().protocol == Protocol::V2;
    // The legacy server's `ws` takes frames up to 100 MiB (its `maxPayload`) and ignores them;
    // a larger one closes the socket with 1009. The newer server reads none.
    let mut stream = stream.max_frame_size(if v2 { 64 * 1024 } else { 100 * 1024 * 1024 });
    let mut ping = tokio::time::interval(sim.config().ping_interval);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ping.tick().await; // the first tick is immediate
    let mut last_pong = Instant::now();
    let expiry = tokio::time::sleep(expires_in.unwrap_or(Duration::from_secs(u32::MAX as u64)));
    tokio::pin!(expiry);
    let mut frames_open = true;

    // `None`: end without a close frame; `Some`: send this close frame first.
    let close: Option<CloseReason> = loop {
        tokio::select! {
            biased;
            ctl = q.control.recv() => match ctl {
                Some(Control::Close(code, reason)) => break Some(close_reason(code, reason)),
                Some(Control::Abort) | None => break None,
            },
            _ = &mut expiry, if expires_in.is_some() => {
                break Some(close_reason(4001, "token expired".into()));
            }
            frame = q.frames.recv(), if frames_open => match frame {
                Some(out) => {
                    q.queued.fetch_sub(1, Ordering::Relaxed);
                    if crate::socketio::write(&mut session, out).await.is_err() {
                        break None;
                    }
                }
                None => frames_open = false,
            },
            _ = ping.tick(), if v2 => {
                if last_pong.elapsed() > sim.config().pong_timeout {
                    tracing::debug!(id = q.id, "no pong: dropping the socket");
                    break None;
                }
                if !sim.half_open() && session.ping(b"").await.is_err() {
                    break None;
                }
            }
            msg = stream.recv() => match msg {
                Some(Ok(Message::Ping(bytes))) => {
                    if sim.half_open() {
                        sim.swallow_ping();
                    } else if session.pong(&bytes).await.is_err() {
                        break None;
                    }
                }
                Some(Ok(Message::Pong(_))) => last_pong = Instant::now(),
                Some(Ok(Message::Close(reason))) => {
                    sim.record_client_close(reason.as_ref().map(|r| u16::from(r.code)));
                    break reason.or(Some(CloseCode::Normal.into()));
                }
                Some(Ok(Message::Text(_) | Message::Binary(_) | Message::Continuation(_))) if v2 => {
                    break Some(close_reason(1008, "clients must not send messages".into()));
                }
                // The legacy server ignores whatever a client sends.
                Some(Ok(_)) => {}
                Some(Err(actix_ws::ProtocolError::Overflow)) if !v2 => {
                    break Some(close_reason(1009, "Max payload size exceeded".into()));
                }
                Some(Err(e)) => {
                    tracing::debug!(id = q.id, error = %e, "protocol error from client");
                    break None;
                }
                None => break None,
            },
        }
    };
    sim.unregister(q.id);
    tracing::debug!(scope = key.0, event = key.1, id = q.id, closed = ?close, "socket closed");
    match close {
        Some(reason) => {
            let _ = session.close(Some(reason)).await;
        }
        // Dropping the session and the stream ends the response: the TCP connection closes with
        // no close frame.
        None => drop(session),
    }
}

fn close_reason(code: u16, reason: String) -> CloseReason {
    CloseReason {
        code: CloseCode::from(code),
        description: Some(reason),
    }
}
