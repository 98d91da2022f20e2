//! The connection actor: one WebSocket for one (endpoint, instance, event).
//!
//! # Lifecycle
//! - **started**: asks the token provider for a token, opens the socket (awc), tells the
//!   supervisor it is up, then reads until the socket ends. Each text frame is queued for the
//!   subscription's dispatcher; pings are answered; its own pings detect a dead link. On
//!   Evolution API the socket carries a Socket.IO session (`socketio.rs`): the subscription is
//!   up once the instance's namespace is joined, and each frame is a packet, of which the
//!   subscribed event's envelopes are queued.
//! - **stopping**: when the socket ends for any reason, the actor tells the supervisor why
//!   ([`ConnDown`]) and stops. It is never restarted: the supervisor starts a new one, with a new
//!   generation, after the backoff.
//! - **[`CloseConnection`]**: sends a close frame (1000), waits up to `close_timeout` for the
//!   server's, then ends; frames read meanwhile are still delivered.
//!
//! The actor never sends data frames (the newer CodeChat server closes with 1008 a client that
//! does), but on Socket.IO the two packets the protocol asks of a client: the namespace connect
//! and the answers to the server's pings.

use crate::codec::LimitedCodec;
use crate::config::ClientConfig;
use crate::handshake::Heads;
use crate::queue::{Body, Inbound};
use crate::queue::{Offer, Queue};
use crate::status::Counters;
use actix::{
    Actor, ActorContext, ActorFutureExt, AsyncContext, Context, Handler, Message, Recipient,
    WrapFuture,
};
use actix_http::ws::Item;
use actix_http::Version;
use awc::error::WsClientError;
use awc::ws::{CloseCode, CloseReason, Frame};
use bytes::{Bytes, BytesMut};
use eventsock_core::Source;
use eventsock_core::{Channel, EventName, SubscriptionUrl, Token};
use futures_util::future::LocalBoxFuture;
use futures_util::StreamExt;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::oneshot;
use tracing::Instrument;

mod cause;
mod socketio;
mod write;

pub(crate) use cause::Cause;

use socketio::Session;
use write::{write_all, AbortOnDrop, Controls, WriteFail};

/// How a connection went.
#[derive(Debug, Clone)]
pub(crate) struct End {
    pub(crate) cause: Cause,
    /// When the handshake succeeded, if it did.
    pub(crate) up_since: Option<Instant>,
    /// The last time anything was heard from the server.
    pub(crate) last_heard: Option<SystemTime>,
    /// After an auth refusal: the token provider will give a new token next time.
    pub(crate) renewed: bool,
    /// A refusal's `Retry-After`, when it had one.
    pub(crate) retry_after: Option<Duration>,
    /// The token a refused handshake carried, to find out over REST whether it is the cause.
    pub(crate) refused_token: Option<Token>,
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
    /// What refused handshakes answered (for `Retry-After`).
    pub(crate) heads: Heads,
    pub(crate) queue: Queue,
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
        let span = tracing::info_span!("conn", instance = %p.source.instance(), event = %p.event, generation = p.generation);
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

/// Runs one connection from its handshake to its end: the handshake ([`handshake`]), then a
/// read loop whose steps are the [`Reader`]'s, then the ending ([`Reader::finish`]).
async fn run(p: &ConnectionParams, mut close: oneshot::Receiver<()>) -> End {
    let mut end = End {
        cause: Cause::Shutdown,
        up_since: None,
        last_heard: None,
        renewed: false,
        retry_after: None,
        refused_token: None,
    };
    let Some((token, framed)) = handshake(p, &mut close, &mut end).await else {
        return end;
    };
    let cfg = &p.config;
    // The frame size is checked on each frame's header, before its payload is buffered.
    let framed = framed.into_map_codec(|codec| LimitedCodec::new(codec, cfg.max_frame_size));
    let (sink, mut stream) = framed.split();
    // Writes go through the controls to a task of their own: nothing below ever waits on a write.
    let controls = Rc::new(Controls::default());
    let (written_tx, mut written) = oneshot::channel();
    let writer = actix_rt::spawn({
        let (controls, limit) = (controls.clone(), cfg.write_timeout);
        async move {
            let _ = written_tx.send(write_all(sink, controls, limit).await);
        }
    });
    // Ends the writer (and closes the socket's writing half) however this function returns.
    let _writer = AbortOnDrop(writer);
    let mut writer_done = false;
    let mut ping = tokio::time::interval_at(
        tokio::time::Instant::now() + cfg.ping_interval,
        cfg.ping_interval,
    );
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut r = Reader {
        p,
        controls,
        pong_deadline: None,
        closing_deadline: None,
        partial: None,
        seq: 0,
        waiting: None,
        session: (p.channel == Channel::Evolution).then(|| {
            Session::new(
                p.source.instance(),
                &p.event,
                cfg.max_frame_size,
                token.expose(),
            )
        }),
        heartbeat_deadline: None,
        silence: Duration::ZERO,
        join_deadline: None,
    };
    // One timer, re-armed only when a deadline is set: building a fresh one (and reading the
    // clock) on every frame showed up in profiles.
    let deadline = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(deadline);
    end.cause = loop {
        let waiting_for = r.next_deadline();
        let step = tokio::select! {
            biased;
            _ = &mut close, if r.closing_deadline.is_none() => Step::Wait(r.close()),
            _ = &mut deadline, if waiting_for.is_some() => r.timed_out(),
            written = &mut written, if !writer_done => {
                writer_done = true;
                r.written(written.unwrap_or(Err(WriteFail::Failed("the writer stopped".into()))))
            }
            _ = ping.tick(), if r.may_ping() => Step::Wait(r.ping()),
            queued = async { match r.waiting.as_mut() { Some(w) => w.await, None => std::future::pending().await } }, if r.waiting.is_some() => {
                r.waiting = None;
                if !queued {
                    break Cause::DispatcherGone;
                }
                // Time spent waiting for handlers is not the link's silence.
                end.last_heard = Some(SystemTime::now());
                r.resumed()
            }
            frame = stream.next(), if r.waiting.is_none() => {
                let heard = SystemTime::now();
                end.last_heard = Some(heard);
                match frame {
                    None => Step::End(r.eof()),
                    Some(Err(e)) => Step::End(Cause::Protocol(e.to_string())),
                    Some(Ok(f)) => r.frame(f, heard),
                }
            }
        };
        match step {
            Step::Go => {}
            Step::Wait(at) => deadline.as_mut().reset(at),
            Step::Up => up(p, &mut end),
            Step::End(cause) => break cause,
        }
    };
    r.finish(&mut end, writer_done, &mut written).await;
    // A close with 4001 or 4003: the same rule as a refused handshake.
    if end.cause.is_auth() {
        end.renewed = p.source.tokens().refused(&token);
    }
    tracing::debug!(cause = %end.cause, "connection ended");
    end
}

/// The socket of a successful handshake.
type Socket = actix_codec::Framed<awc::BoxedSocket, awc::ws::Codec>;

/// Gets a token and opens the socket. `None`: it did not open, and `end` says why (or a close
/// was asked for meanwhile).
async fn handshake(
    p: &ConnectionParams,
    close: &mut oneshot::Receiver<()>,
    end: &mut End,
) -> Option<(Token, Socket)> {
    let token = tokio::select! {
        t = p.source.tokens().token() => t,
        _ = &mut *close => return None,
    };
    let token = match token {
        Ok(t) => t,
        Err(e) => {
            end.cause = Cause::Token(e.to_string());
            return None;
        }
    };
    let evolution = p.channel == Channel::Evolution;
    let url = if evolution {
        // The key goes in a header: the URL holds no secret.
        SubscriptionUrl::without_secret(p.source.endpoint().socket_io())
    } else {
        p.source
            .endpoint()
            .subscription(p.channel, &p.event, &token)
    };
    tracing::debug!(url = %url, "connecting");
    let mut request = p
        .client
        .ws(url.expose())
        .max_frame_size(p.config.max_frame_size);
    if evolution {
        request = request.header("apikey", token.expose());
    }
    let connect = tokio::time::timeout(p.config.connect_timeout, request.connect());
    let connected = tokio::select! {
        r = connect => r,
        _ = &mut *close => {
            p.heads.forget(url.expose());
            return None;
        }
    };
    let refused_head = p.heads.forget(url.expose());
    let (response, framed) = match connected {
        Err(_) => {
            end.cause = Cause::ConnectTimeout;
            return None;
        }
        Ok(Err(WsClientError::InvalidResponseStatus(s))) => {
            end.cause = match s.as_u16() {
                400 if evolution => Cause::KeyRefused,
                s => Cause::Refused(s),
            };
            end.retry_after = refused_head.and_then(|h| h.retry_after);
            if end.cause.is_auth() {
                end.renewed = p.source.tokens().refused(&token);
                end.refused_token = Some(token);
            }
            return None;
        }
        Ok(Err(e)) => {
            end.cause = Cause::ConnectFailed(redact(e.to_string(), token.expose()));
            return None;
        }
        Ok(Ok(parts)) => parts,
    };
    drop(url);
    if response.version() != Version::HTTP_11 {
        end.cause = Cause::Protocol(format!(
            "the server switched to WebSocket over {}; only HTTP/1.1 can carry an upgrade",
            http_version(response.version())
        ));
        return None;
    }
    end.last_heard = Some(SystemTime::now());
    if !evolution {
        up(p, end);
    }
    Some((token, framed))
}

/// The subscription is up: on Socket.IO once the namespace is joined, else at the handshake.
fn up(p: &ConnectionParams, end: &mut End) {
    end.up_since = Some(Instant::now());
    p.up.do_send(ConnUp {
        sub: p.sub,
        generation: p.generation,
        at: SystemTime::now(),
    });
    tracing::debug!("connected");
}

/// What the read loop does after one step.
enum Step {
    /// Go on.
    Go,
    /// Go on, waking at this deadline unless something comes first.
    Wait(tokio::time::Instant),
    /// Go on: the Socket.IO namespace was joined.
    Up,
    /// The connection ends.
    End(Cause),
}

/// The state of an open connection's reading: what it waits for, and the frame it assembles.
struct Reader<'a> {
    p: &'a ConnectionParams,
    controls: Rc<Controls>,
    /// Set when a ping is out and nothing has been heard since; cleared by anything heard.
    pong_deadline: Option<tokio::time::Instant>,
    /// Set once we have sent our close frame.
    closing_deadline: Option<tokio::time::Instant>,
    /// A message arriving in continuation frames: whether it is text, and its bytes so far.
    partial: Option<(bool, BytesMut)>,
    /// Frames read on this connection.
    seq: u64,
    /// A frame waiting for room in the subscription's queue (frames or bytes): while it waits,
    /// the socket is not read, so TCP pushes back on the server.
    waiting: Option<LocalBoxFuture<'static, bool>>,
    /// On Socket.IO (Evolution API), the session read from the frames.
    session: Option<Session>,
    /// On Socket.IO, when the server must have been heard from again (its heartbeat).
    heartbeat_deadline: Option<tokio::time::Instant>,
    /// On Socket.IO, how long the server may go silent (its ping interval and timeout).
    silence: Duration,
    /// On Socket.IO, when the namespace must be joined (`connect_timeout` after the open
    /// packet): a server that never answers the connect is not waited for forever.
    join_deadline: Option<tokio::time::Instant>,
}

impl Reader<'_> {
    /// Closing was asked for: our close frame goes out, and the server's is awaited until the
    /// deadline returned.
    fn close(&mut self) -> tokio::time::Instant {
        tracing::debug!("closing with 1000");
        self.controls
            .close(Some(CloseReason::from(CloseCode::Normal)));
        let at = tokio::time::Instant::now() + self.p.config.close_timeout;
        self.closing_deadline = Some(at);
        self.pong_deadline = None;
        self.heartbeat_deadline = None;
        self.join_deadline = None;
        at
    }

    /// The first of the deadlines set: the server's close, our ping's answer, its heartbeat.
    fn next_deadline(&self) -> Option<tokio::time::Instant> {
        [
            self.closing_deadline,
            self.pong_deadline,
            self.heartbeat_deadline,
            self.join_deadline,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Whether a ping may go out now: not while closing, while one is out, or while a frame
    /// waits for the handlers (their time is not the link's silence).
    fn may_ping(&self) -> bool {
        self.closing_deadline.is_none() && self.pong_deadline.is_none() && self.waiting.is_none()
    }

    /// Sends a ping; the answer is awaited until the deadline returned (or an earlier one).
    fn ping(&mut self) -> tokio::time::Instant {
        self.controls.ping();
        let at = tokio::time::Instant::now() + self.p.config.pong_timeout;
        self.pong_deadline = Some(at);
        self.next_deadline().unwrap_or(at)
    }

    /// The timer fired: the server's close never came, our ping was never answered, or the
    /// server's heartbeat stopped; or a deadline it was set for was met, and it waits for the
    /// next one.
    fn timed_out(&self) -> Step {
        let now = tokio::time::Instant::now();
        let passed = |d: Option<tokio::time::Instant>| d.is_some_and(|d| d <= now);
        if passed(self.closing_deadline) {
            Step::End(Cause::Shutdown)
        } else if passed(self.pong_deadline) {
            Step::End(Cause::Dead(self.p.config.pong_timeout))
        } else if passed(self.heartbeat_deadline) {
            Step::End(Cause::Silent(self.silence))
        } else if passed(self.join_deadline) {
            Step::End(Cause::ConnectTimeout)
        } else {
            match self.next_deadline() {
                Some(at) => Step::Wait(at),
                None => Step::Go,
            }
        }
    }

    /// The stream ended.
    fn eof(&self) -> Cause {
        if self.closing_deadline.is_some() {
            Cause::Shutdown
        } else {
            Cause::Eof
        }
    }

    /// The writer ended: our close frame is out (the server's is awaited), or writing failed.
    fn written(&self, written: Result<(), WriteFail>) -> Step {
        match written {
            Ok(()) => Step::Go,
            Err(_) if self.closing_deadline.is_some() => Step::End(Cause::Shutdown),
            Err(WriteFail::Stalled) => Step::End(Cause::Stalled(self.p.config.write_timeout)),
            Err(WriteFail::Failed(e)) => Step::End(Cause::Protocol(format!("cannot write: {e}"))),
        }
    }

    /// One frame read at `heard`: a control frame is answered, a data frame (whole, or the last
    /// piece of one) is queued for the subscription.
    fn frame(&mut self, frame: Frame, heard: SystemTime) -> Step {
        let cfg = &self.p.config;
        // Anything but a ping answers ours: a peer that only pings may not be reading at all
        // (and its pings are answered with one coalesced pong at a time).
        if !matches!(frame, Frame::Ping(_)) {
            self.pong_deadline = None;
        }
        let (text, bytes) = match frame {
            Frame::Text(b) => (true, b),
            Frame::Binary(b) => (false, b),
            Frame::Continuation(item) => {
                match assemble(&mut self.partial, item, cfg.max_frame_size) {
                    Ok(Some(done)) => done,
                    Ok(None) => return Step::Go,
                    Err(e) => return Step::End(Cause::Protocol(e)),
                }
            }
            Frame::Ping(b) => {
                // Only the latest pong waits: a peer that pings and never reads costs one pong
                // of memory, and is found out by `write_timeout`.
                self.controls.pong(b);
                return Step::Go;
            }
            Frame::Pong(_) => return Step::Go,
            Frame::Close(reason) => {
                if self.closing_deadline.is_some() {
                    return Step::End(Cause::Shutdown);
                }
                // Echo the close, as the protocol asks, before ending.
                self.controls.close(reason.clone());
                return Step::End(Cause::Closed {
                    code: reason.as_ref().map(|r| u16::from(r.code)),
                    reason: reason.and_then(|r| r.description).unwrap_or_default(),
                });
            }
        };
        if self.session.is_some() {
            return self.session_frame(text, bytes, heard);
        }
        self.queue(text, bytes, heard)
    }

    /// Queues a data frame for the subscription.
    fn queue(&mut self, text: bool, bytes: Bytes, heard: SystemTime) -> Step {
        let p = self.p;
        self.seq += 1;
        Counters::bump(&p.counters.frames);
        let size = bytes.len();
        let body = if text {
            match bytestring::ByteString::try_from(bytes) {
                Ok(s) => Body::Text(s),
                Err(_) => return Step::End(Cause::Protocol("a text frame is not UTF-8".into())),
            }
        } else {
            Body::Binary(size)
        };
        let item = Inbound {
            body,
            generation: p.generation,
            seq: self.seq,
            received_at: heard,
            room: None,
        };
        match p.queue.offer(item, size, p.config.overflow) {
            Offer::Queued => {}
            Offer::Closed => return Step::End(Cause::DispatcherGone),
            Offer::Dropped(seq) => {
                Counters::bump(&p.counters.dropped);
                tracing::warn!(seq, size, "queue full: frame dropped");
            }
            Offer::Wait(w) => {
                self.waiting = Some(w);
                // Time spent waiting for handlers is not the link's silence: no pong is
                // awaited (and no ping sent), nor the server's heartbeat, until the frame is
                // queued.
                self.pong_deadline = None;
                self.heartbeat_deadline = None;
            }
        }
        Step::Go
    }

    /// After the loop: a frame read but still waiting for room is handed over (within the write
    /// timeout), and the echo of the server's close is let out.
    async fn finish(
        mut self,
        end: &mut End,
        writer_done: bool,
        written: &mut oneshot::Receiver<Result<(), WriteFail>>,
    ) {
        let cfg = &self.p.config;
        if let Some(waiting) = self.waiting.take() {
            // Read before the end: it goes to the handlers as soon as they make room (the
            // dispatcher drains until this connection lets go of the queue), within the write
            // timeout, so a stuck handler cannot hold the shutdown forever.
            let queued = tokio::time::timeout(cfg.write_timeout, waiting)
                .await
                .unwrap_or(false);
            if !queued {
                Counters::bump(&self.p.counters.dropped);
                tracing::warn!(
                    seq = self.seq,
                    "a frame read before the connection ended was not handled: the handlers made no room for it within {}",
                    eventsock_core::human::duration(cfg.write_timeout)
                );
            }
        }
        if !writer_done && matches!(end.cause, Cause::Closed { .. }) && self.controls.has_close() {
            // Let the echo of the server's close go out, within bounds.
            let _ = tokio::time::timeout(cfg.close_timeout.min(cfg.write_timeout), written).await;
        }
    }
}

fn http_version(v: Version) -> &'static str {
    match v {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_11 => "HTTP/1.1",
        Version::HTTP_2 => "HTTP/2",
        Version::HTTP_3 => "HTTP/3",
        _ => "an unknown HTTP version",
    }
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
        if partial.is_some() {
            return Err("a fragmented message began before the previous one ended".into());
        }
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
