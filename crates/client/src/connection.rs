//! The connection actor: one WebSocket for one (endpoint, instance, event).
//!
//! # Lifecycle
//! - **started**: asks the token provider for a token, opens the socket (awc), tells the
//!   supervisor it is up, then reads until the socket ends. Each text frame is queued for the
//!   subscription's dispatcher; pings are answered; its own pings detect a dead link.
//! - **stopping**: when the socket ends for any reason, the actor tells the supervisor why
//!   ([`ConnDown`]) and stops. It is never restarted: the supervisor starts a new one, with a new
//!   generation, after the backoff.
//! - **[`CloseConnection`]**: sends a close frame (1000), waits up to `close_timeout` for the
//!   server's, then ends; frames read meanwhile are still delivered.
//!
//! The actor never sends data frames: the newer server closes with 1008 a client that does.

use crate::config::{ClientConfig, Overflow};
use crate::route::{Body, Inbound};
use crate::source::Source;
use crate::status::Counters;
use actix::{
    Actor, ActorContext, ActorFutureExt, AsyncContext, Context, Handler, Message, Recipient,
    WrapFuture,
};
use actix_http::ws::Item;
use awc::error::WsClientError;
use awc::ws::{CloseCode, CloseReason, Frame, Message as WsMessage};
use bytes::{Bytes, BytesMut};
use eventsock_core::{Channel, EventName};
use futures_util::{SinkExt, StreamExt};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::{mpsc, oneshot};
use tracing::Instrument;

/// Why a connection ended.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cause {
    /// We closed it (shutdown).
    Shutdown,
    /// The token provider failed.
    Token(String),
    /// The server refused the handshake with this HTTP status.
    Refused(u16),
    /// No TCP/TLS/HTTP connection.
    ConnectFailed(String),
    /// The handshake took longer than `connect_timeout`.
    ConnectTimeout,
    /// The server sent a close frame.
    Closed { code: Option<u16>, reason: String },
    /// Nothing heard within `pong_timeout` after a ping: a half-open link.
    Dead(Duration),
    /// The stream ended without a close frame.
    Eof,
    /// A WebSocket protocol error (bad frame, oversized frame...).
    Protocol(String),
}

impl Cause {
    /// A refusal of the token: retried no faster than the maximum backoff.
    pub(crate) fn is_auth(&self) -> bool {
        matches!(
            self,
            Cause::Token(_)
                | Cause::Refused(401 | 403)
                | Cause::Closed {
                    code: Some(4001 | 4003),
                    ..
                }
        )
    }

    pub(crate) fn code(&self) -> Option<u16> {
        match self {
            Cause::Closed { code, .. } => *code,
            _ => None,
        }
    }
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cause::Shutdown => f.write_str("shut down"),
            Cause::Token(e) => write!(f, "the token provider failed: {e}"),
            Cause::Refused(401) => f.write_str("handshake refused: 401 Unauthorized (bad, expired or unknown token, or unknown event)"),
            Cause::Refused(403) => f.write_str("handshake refused: 403 Forbidden (token revoked or out of scope)"),
            Cause::Refused(s) => write!(f, "handshake refused with HTTP {s}"),
            Cause::ConnectFailed(e) => write!(f, "cannot connect: {e}"),
            Cause::ConnectTimeout => f.write_str("the handshake timed out"),
            Cause::Closed { code: Some(c), reason } if reason.is_empty() => write!(f, "closed by the server with {c}"),
            Cause::Closed { code: Some(c), reason } => write!(f, "closed by the server with {c}: {reason}"),
            Cause::Closed { code: None, .. } => f.write_str("closed by the server"),
            Cause::Dead(t) => write!(f, "no answer to a ping within {t:?}: the link is dead"),
            Cause::Eof => f.write_str("the connection ended without a close frame"),
            Cause::Protocol(e) => write!(f, "protocol error: {e}"),
        }
    }
}

/// How a connection went.
#[derive(Debug, Clone)]
pub(crate) struct End {
    pub(crate) cause: Cause,
    /// When the handshake succeeded, if it did.
    pub(crate) up_since: Option<Instant>,
    /// The last time anything was heard from the server.
    pub(crate) last_heard: Option<SystemTime>,
}

/// Told to the supervisor when the handshake succeeds.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(crate) struct ConnUp {
    pub(crate) sub: usize,
    pub(crate) generation: u64,
    pub(crate) at: SystemTime,
}

/// Told to the supervisor when the connection has ended.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(crate) struct ConnDown {
    pub(crate) sub: usize,
    pub(crate) generation: u64,
    pub(crate) end: End,
}

/// Asks a connection to close with 1000.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(crate) struct CloseConnection;

/// Everything one connection needs.
pub(crate) struct ConnectionParams {
    pub(crate) sub: usize,
    pub(crate) source: Source,
    pub(crate) channel: Channel,
    pub(crate) event: EventName,
    pub(crate) generation: u64,
    pub(crate) config: Arc<ClientConfig>,
    pub(crate) client: awc::Client,
    pub(crate) queue: mpsc::Sender<Inbound>,
    pub(crate) counters: Arc<Counters>,
    pub(crate) up: Recipient<ConnUp>,
    pub(crate) down: Recipient<ConnDown>,
}

/// The actor owning one socket. See the module docs for its lifecycle.
pub(crate) struct ConnectionActor {
    params: Option<ConnectionParams>,
    close: Option<oneshot::Sender<()>>,
}

impl std::fmt::Debug for ConnectionActor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionActor").finish_non_exhaustive()
    }
}

impl ConnectionActor {
    pub(crate) fn new(params: ConnectionParams) -> Self {
        ConnectionActor {
            params: Some(params),
            close: None,
        }
    }
}

impl Actor for ConnectionActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let Some(p) = self.params.take() else {
            return;
        };
        let (close_tx, close_rx) = oneshot::channel();
        self.close = Some(close_tx);
        // Spans carry the instance and the event, never the token.
        let span = tracing::info_span!("conn", instance = %p.source.scope, event = %p.event, generation = p.generation);
        let down = p.down.clone();
        let (sub, generation) = (p.sub, p.generation);
        let run = async move { run(&p, close_rx).await }.instrument(span);
        ctx.spawn(run.into_actor(self).map(move |end, _, ctx| {
            down.do_send(ConnDown {
                sub,
                generation,
                end,
            });
            ctx.stop();
        }));
    }
}

impl Handler<CloseConnection> for ConnectionActor {
    type Result = ();

    fn handle(&mut self, _: CloseConnection, _: &mut Context<Self>) {
        if let Some(close) = self.close.take() {
            let _ = close.send(());
        }
    }
}

/// Replaces the token wherever an error message might echo the URL.
fn redact(message: String, token: &str) -> String {
    if token.is_empty() {
        message
    } else {
        message.replace(token, "<redacted>")
    }
}

async fn run(p: &ConnectionParams, mut close: oneshot::Receiver<()>) -> End {
    let mut end = End {
        cause: Cause::Shutdown,
        up_since: None,
        last_heard: None,
    };
    let token = tokio::select! {
        t = p.source.tokens.token() => t,
        _ = &mut close => return end,
    };
    let token = match token {
        Ok(t) => t,
        Err(e) => {
            end.cause = Cause::Token(e.to_string());
            return end;
        }
    };
    let url = p.source.endpoint.subscription(p.channel, &p.event, &token);
    tracing::debug!(url = %url, "connecting");
    let request = p
        .client
        .ws(url.expose())
        .max_frame_size(p.config.max_frame_size);
    let connect = tokio::time::timeout(p.config.connect_timeout, request.connect());
    let framed = tokio::select! {
        r = connect => match r {
            Err(_) => { end.cause = Cause::ConnectTimeout; return end; }
            Ok(Err(WsClientError::InvalidResponseStatus(s))) => {
                end.cause = Cause::Refused(s.as_u16());
                return end;
            }
            Ok(Err(e)) => {
                end.cause = Cause::ConnectFailed(redact(e.to_string(), token.expose()));
                return end;
            }
            Ok(Ok((_, framed))) => framed,
        },
        _ = &mut close => return end,
    };
    drop(url);
    end.up_since = Some(Instant::now());
    end.last_heard = Some(SystemTime::now());
    p.up.do_send(ConnUp {
        sub: p.sub,
        generation: p.generation,
        at: SystemTime::now(),
    });
    tracing::debug!("connected");

    let (mut sink, mut stream) = framed.split();
    let cfg = &p.config;
    let mut ping = tokio::time::interval_at(
        tokio::time::Instant::now() + cfg.ping_interval,
        cfg.ping_interval,
    );
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Set when a ping is out and nothing has been heard since; cleared by anything heard.
    let mut pong_deadline: Option<tokio::time::Instant> = None;
    // Set once we have sent our close frame.
    let mut closing_deadline: Option<tokio::time::Instant> = None;
    let mut partial: Option<(bool, BytesMut)> = None;
    let mut seq = 0u64;
    // One timer, re-armed only when a deadline is set: building a fresh one (and reading the
    // clock) on every frame showed up in profiles.
    let deadline = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(deadline);

    end.cause = loop {
        let pong_wait = pong_deadline.or(closing_deadline);
        tokio::select! {
            biased;
            _ = &mut close, if closing_deadline.is_none() => {
                tracing::debug!("closing with 1000");
                let _ = sink.send(WsMessage::Close(Some(CloseReason::from(CloseCode::Normal)))).await;
                let at = tokio::time::Instant::now() + cfg.close_timeout;
                closing_deadline = Some(at);
                deadline.as_mut().reset(at);
                pong_deadline = None;
            }
            _ = &mut deadline, if pong_wait.is_some() => {
                break if closing_deadline.is_some() { Cause::Shutdown } else { Cause::Dead(cfg.pong_timeout) };
            }
            _ = ping.tick(), if closing_deadline.is_none() && pong_deadline.is_none() => {
                if sink.send(WsMessage::Ping(Bytes::new())).await.is_err() {
                    break Cause::Eof;
                }
                let at = tokio::time::Instant::now() + cfg.pong_timeout;
                pong_deadline = Some(at);
                deadline.as_mut().reset(at);
            }
            frame = stream.next() => {
                let heard = SystemTime::now();
                end.last_heard = Some(heard);
                pong_deadline = None;
                let frame = match frame {
                    None => break if closing_deadline.is_some() { Cause::Shutdown } else { Cause::Eof },
                    Some(Err(e)) => break Cause::Protocol(e.to_string()),
                    Some(Ok(f)) => f,
                };
                let body = match frame {
                    Frame::Text(b) => Some((true, b)),
                    Frame::Binary(b) => Some((false, b)),
                    Frame::Continuation(item) => match assemble(&mut partial, item, cfg.max_frame_size) {
                        Ok(done) => done,
                        Err(e) => break Cause::Protocol(e),
                    },
                    Frame::Ping(b) => {
                        if sink.send(WsMessage::Pong(b)).await.is_err() {
                            break Cause::Eof;
                        }
                        None
                    }
                    Frame::Pong(_) => None,
                    Frame::Close(reason) => {
                        if closing_deadline.is_some() {
                            break Cause::Shutdown;
                        }
                        // Echo the close, as the protocol asks, before ending.
                        let _ = sink.send(WsMessage::Close(reason.clone())).await;
                        break Cause::Closed {
                            code: reason.as_ref().map(|r| u16::from(r.code)),
                            reason: reason.and_then(|r| r.description).unwrap_or_default(),
                        };
                    }
                };
                let Some((text, bytes)) = body else { continue };
                seq += 1;
                Counters::bump(&p.counters.frames);
                let body = if text {
                    match bytestring::ByteString::try_from(bytes) {
                        Ok(s) => Body::Text(s),
                        Err(_) => break Cause::Protocol("a text frame is not UTF-8".into()),
                    }
                } else {
                    Body::Binary(bytes.len())
                };
                let item = Inbound { body, generation: p.generation, seq, received_at: heard };
                match cfg.overflow {
                    Overflow::Wait => match p.queue.try_send(item) {
                        Ok(()) => {}
                        Err(mpsc::error::TrySendError::Closed(_)) => break Cause::Shutdown,
                        Err(mpsc::error::TrySendError::Full(item)) => {
                            if p.queue.send(item).await.is_err() {
                                break Cause::Shutdown;
                            }
                            // Time spent waiting for handlers is not the link's silence.
                            end.last_heard = Some(SystemTime::now());
                        }
                    },
                    Overflow::DropNewest => {
                        if let Err(mpsc::error::TrySendError::Full(dropped)) = p.queue.try_send(item) {
                            Counters::bump(&p.counters.dropped);
                            tracing::warn!(seq = dropped.seq, "queue full: frame dropped");
                        }
                    }
                }
            }
        }
    };
    tracing::debug!(cause = %end.cause, "connection ended");
    end
}

/// Joins a fragmented message; `Ok(Some)` once its last fragment is in.
fn assemble(
    partial: &mut Option<(bool, BytesMut)>,
    item: Item,
    max: usize,
) -> Result<Option<(bool, Bytes)>, String> {
    let (first_text, chunk, last) = match item {
        Item::FirstText(b) => (Some(true), b, false),
        Item::FirstBinary(b) => (Some(false), b, false),
        Item::Continue(b) => (None, b, false),
        Item::Last(b) => (None, b, true),
    };
    if let Some(text) = first_text {
        *partial = Some((text, BytesMut::new()));
    }
    let Some((text, buf)) = partial.as_mut() else {
        return Err("a continuation frame without a first fragment".into());
    };
    if buf.len() + chunk.len() > max {
        return Err(format!("a fragmented message exceeds {max} bytes"));
    }
    buf.extend_from_slice(&chunk);
    if !last {
        return Ok(None);
    }
    let text = *text;
    let (_, buf) = partial.take().unwrap_or_default();
    Ok(Some((text, buf.freeze())))
}
