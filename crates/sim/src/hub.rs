//! The simulator's state: live sockets, which one gets each (scope, event), instances and tokens.
//!
//! Like the real server, the hub routes each (instance, event) to exactly one socket: the newest.
//! A replaced socket stays open and answers pings, but receives nothing, which is what makes a
//! second client for the same pair so hard to notice in production.

use crate::auth::{self, SimClaims};
use crate::config::{Protocol, SimConfig};
use bytestring::ByteString;
use eventsock_core::EventName;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::mpsc;

mod media;
mod records;
mod whatsapp;
pub use media::MediaFault;
pub(crate) use media::{encode_uri_component, Media, MEDIA_TYPES};
pub use records::{FindMode, Request, SendFailure, Sent, Ties, STORED};
pub(crate) use whatsapp::RECEIPT_STATUSES;

/// What a socket task is told to do.
#[derive(Debug)]
pub(crate) enum Control {
    /// Send a close frame with this code and reason, then end.
    Close(u16, String),
    /// End the connection without a close frame.
    Abort,
}

/// Who a socket belongs to: an instance name (instance events) or a user id (global events).
pub(crate) type Key = (String, String);

/// What a socket is sent.
#[derive(Debug, Clone)]
pub(crate) enum Out {
    /// One text frame.
    Text(ByteString),
    /// A Socket.IO packet and the binary frames of its attachments, which follow it.
    Packet(ByteString, Arc<[bytes::Bytes]>),
}

pub(crate) struct SocketEntry {
    pub(crate) key: Key,
    frames: mpsc::UnboundedSender<Out>,
    control: mpsc::UnboundedSender<Control>,
    /// Frames queued and not yet written: the newer server's send buffer.
    queued: Arc<AtomicUsize>,
}

/// The receiving half of a socket's queues, owned by its task.
pub(crate) struct SocketQueues {
    pub(crate) id: u64,
    pub(crate) frames: mpsc::UnboundedReceiver<Out>,
    pub(crate) control: mpsc::UnboundedReceiver<Control>,
    pub(crate) queued: Arc<AtomicUsize>,
}

#[derive(Default)]
struct State {
    sockets: HashMap<u64, SocketEntry>,
    routes: HashMap<Key, u64>,
    /// V2: the one valid token per instance (`Auth.token`).
    current_tokens: HashMap<String, String>,
    /// Evolution: the Socket.IO sessions joined to each instance's namespace.
    namespaces: HashMap<String, Vec<u64>>,
    /// Evolution: the namespaces that exist (made at an instance's first event).
    made: std::collections::HashSet<String>,
    /// Evolution: each instance's websocket settings, when set through `/websocket/set`.
    websockets: HashMap<String, crate::evolution::Websocket>,
}

/// A running simulator's handle: emit events, misbehave on purpose, mint tokens.
///
/// Cheap to clone; every clone drives the same simulator. The HTTP control API under `/control`
/// calls the same methods.
#[derive(Clone)]
pub struct Sim {
    inner: Arc<Inner>,
}

struct Inner {
    config: SimConfig,
    state: Mutex<State>,
    next_socket: AtomicU64,
    next_message: AtomicI64,
    half_open: AtomicBool,
    accepted: AtomicU64,
    swallowed_pings: AtomicU64,
    client_closes: Mutex<Vec<Option<u16>>>,
    emitted: AtomicU64,
    delivered: AtomicU64,
    refreshes: AtomicU64,
    /// The latest `messages.upsert` payloads per instance, as emitted (see [`Sim::history`]).
    history: Mutex<HashMap<String, std::collections::VecDeque<serde_json::Value>>>,
    /// The messages the server saved, per instance, as `Message` rows (for `findMessages`).
    stored: Mutex<HashMap<String, std::collections::VecDeque<serde_json::Value>>>,
    saving: AtomicBool,
    find_mode: Mutex<FindMode>,
    ties: Mutex<Ties>,
    find_requests: AtomicU64,
    /// Every `sendText` accepted, in arrival order (the oldest forgotten past `SENT`).
    sent: Mutex<std::collections::VecDeque<Sent>>,
    /// The next sends to refuse: (status, `Retry-After` seconds, how many left).
    send_failures: Mutex<Option<(SendFailure, u64)>>,
    /// The REST calls received, oldest first (the oldest forgotten past `REQUESTS`).
    requests: Mutex<std::collections::VecDeque<Request>>,
    /// The message keys `markMessageAsRead` passed on to WhatsApp.
    marked_read: Mutex<Vec<serde_json::Value>>,
    /// The media files of the messages [`Sim::media_message`] made, by message id.
    media: Mutex<media::MediaStore>,
    /// How the next media answers misbehave: (fault, how many left).
    media_faults: Mutex<Option<(MediaFault, u64)>>,
    /// The LID of each phone number's JID that has one ([`Sim::pair_lid`]).
    lids: Mutex<HashMap<String, String>>,
    /// Evolution: whether envelopes carry the API key ([`Sim::expose_api_key`]).
    expose_key: AtomicBool,
}

/// How many emitted messages [`Sim::history`] keeps per instance.
const HISTORY: usize = 10_000;
impl std::fmt::Debug for Sim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sim")
            .field("config", &self.inner.config)
            .field("sockets", &self.lock().sockets.len())
            .finish()
    }
}

/// A socket as the control API lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SocketInfo {
    /// Socket id, in order of connection.
    pub id: u64,
    /// Instance name, or user id for global events.
    pub scope: String,
    /// The subscribed event.
    pub event: String,
    /// Whether this socket gets the events (false once a newer socket replaced it).
    pub routed: bool,
}

impl Sim {
    /// A simulator with `config`; serve it with [`crate::run`].
    pub fn new(config: SimConfig) -> Sim {
        let config_saves = config.save_messages;
        let mut state = State::default();
        if config.protocol == Protocol::Evolution {
            // Evolution's instances send `connection.update` as they connect at start, which
            // makes their namespaces.
            state.made.extend(config.instances.iter().cloned());
        }
        Sim {
            inner: Arc::new(Inner {
                config,
                state: Mutex::new(state),
                next_socket: AtomicU64::new(1),
                refreshes: AtomicU64::new(0),
                next_message: AtomicI64::new(1),
                half_open: AtomicBool::new(false),
                accepted: AtomicU64::new(0),
                swallowed_pings: AtomicU64::new(0),
                client_closes: Mutex::default(),
                emitted: AtomicU64::new(0),
                delivered: AtomicU64::new(0),
                history: Mutex::default(),
                stored: Mutex::default(),
                saving: AtomicBool::new(config_saves),
                find_mode: Mutex::default(),
                ties: Mutex::default(),
                find_requests: AtomicU64::new(0),
                sent: Mutex::default(),
                send_failures: Mutex::default(),
                requests: Mutex::default(),
                marked_read: Mutex::default(),
                media: Mutex::default(),
                media_faults: Mutex::default(),
                lids: Mutex::default(),
                expose_key: AtomicBool::new(false),
            }),
        }
    }

    /// The settings it runs with.
    pub fn config(&self) -> &SimConfig {
        &self.inner.config
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the maps half-updated (each change is one
        // insert or remove), so a poisoned lock is still safe to use.
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The first configured instance, used when a call names none.
    pub fn default_instance(&self) -> &str {
        self.inner
            .config
            .instances
            .first()
            .map_or("codechat", String::as_str)
    }

    pub(crate) fn instance_id(&self, instance: &str) -> Option<i64> {
        let i = self
            .inner
            .config
            .instances
            .iter()
            .position(|n| n == instance)?;
        Some(i as i64 + 1)
    }

    /// Mints an instance token with an `exp` of `ttl` from now, or, without `ttl`, as the server
    /// would ([`SimConfig::jwt_expires_in`]). `exp` is checked only when the server's expiry is on.
    /// The token becomes the instance's stored token (`Auth.token`): the one a refresh must name,
    /// and on the newer server the only valid one, so earlier tokens get 403 from then on.
    pub fn mint_token(&self, instance: &str, ttl: Option<Duration>) -> String {
        let ttl = ttl.or(self.inner.config.jwt_expires_in);
        let token = auth::sign(
            &self.inner.config.secret,
            &auth::instance_claims(instance, ttl),
        );
        self.lock()
            .current_tokens
            .insert(instance.to_owned(), token.clone());
        token
    }

    /// Mints a user token for `/ws/global/events` (the newer server requires an expiry).
    pub fn mint_user_token(&self, user_id: &str, ttl: Duration) -> String {
        auth::sign(&self.inner.config.secret, &auth::user_claims(user_id, ttl))
    }

    /// Checks a token as the server's guards do: the signature, and `exp` when expiry is on.
    pub(crate) fn verify(&self, token: &str) -> Result<SimClaims, auth::Refusal> {
        let check_expiry = self.inner.config.jwt_expires_in.is_some();
        auth::verify(&self.inner.config.secret, token, check_expiry)
    }

    /// `PUT /instance/refreshToken`: the old token's signature is checked (its expiry never),
    /// and its `tokenId` must be the stored token's. Then a new token is minted and stored.
    pub(crate) fn refresh_token(&self, old: &str) -> Option<(String, i64)> {
        let claims = auth::verify(&self.inner.config.secret, old, false).ok()?;
        let instance = claims.instance_name?;
        let id = self.instance_id(&instance)?;
        let stored = self.lock().current_tokens.get(&instance).cloned()?;
        let stored = auth::verify(&self.inner.config.secret, &stored, false).ok()?;
        if stored.token_id != claims.token_id {
            return None;
        }
        let token = self.mint_token(&instance, None);
        self.inner.refreshes.fetch_add(1, Ordering::Relaxed);
        Some((token, id))
    }

    /// Tokens refreshed through `PUT /instance/refreshToken` so far.
    pub fn refreshes(&self) -> u64 {
        self.inner.refreshes.load(Ordering::Relaxed)
    }

    pub(crate) fn is_current_token(&self, instance: &str, token: &str) -> bool {
        self.lock()
            .current_tokens
            .get(instance)
            .is_some_and(|t| t == token)
    }

    /// Revokes the instance's token (newer server): its sockets are closed with 4003 and the
    /// token is refused with 403 from then on. Returns how many sockets were closed.
    pub fn revoke(&self, instance: &str) -> usize {
        let mut state = self.lock();
        state.current_tokens.remove(instance);
        let mut n = 0;
        for s in state.sockets.values().filter(|s| s.key.0 == instance) {
            n += usize::from(
                s.control
                    .send(Control::Close(4003, "permission revoked".into()))
                    .is_ok(),
            );
        }
        n
    }

    /// A client that is not the one under test connects to (`scope`, `event`), as a dashboard,
    /// a script or a second copy of a bot would: the server gives it the stream, and the socket
    /// that had it stays open, answers pings and receives nothing (CodeChat's hub keeps one
    /// socket per key). Returns whether a socket had the stream.
    pub fn take(&self, scope: &str, event: &str) -> bool {
        let thief = self.inner.next_socket.fetch_add(1, Ordering::Relaxed);
        let mut state = self.lock();
        let held = state
            .routes
            .insert((scope.to_owned(), event.to_owned()), thief);
        held.is_some_and(|id| state.sockets.contains_key(&id))
    }

    pub(crate) fn register(&self, key: Key) -> SocketQueues {
        let id = self.inner.next_socket.fetch_add(1, Ordering::Relaxed);
        let (frames_tx, frames) = mpsc::unbounded_channel();
        let (control_tx, control) = mpsc::unbounded_channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let mut state = self.lock();
        state.routes.insert(key.clone(), id);
        state.sockets.insert(
            id,
            SocketEntry {
                key,
                frames: frames_tx,
                control: control_tx,
                queued: queued.clone(),
            },
        );
        self.inner.accepted.fetch_add(1, Ordering::Relaxed);
        SocketQueues {
            id,
            frames,
            control,
            queued,
        }
    }

    pub(crate) fn unregister(&self, id: u64) {
        let mut state = self.lock();
        for sessions in state.namespaces.values_mut() {
            sessions.retain(|s| *s != id);
        }
        if let Some(entry) = state.sockets.remove(&id) {
            if state.routes.get(&entry.key) == Some(&id) {
                state.routes.remove(&entry.key);
            }
        }
    }

    /// Evolution: joins session `id` to `instance`'s namespace, if the namespace exists (the
    /// real server makes it at the instance's first event). Returns whether it was joined.
    pub(crate) fn join(&self, id: u64, instance: &str) -> bool {
        let mut state = self.lock();
        if !state.made.contains(instance) {
            return false;
        }
        let sessions = state.namespaces.entry(instance.to_owned()).or_default();
        if !sessions.contains(&id) {
            sessions.push(id);
        }
        if let Some(entry) = state.sockets.get_mut(&id) {
            entry.key.0 = instance.to_owned();
        }
        true
    }

    /// Evolution: makes `instance`'s namespace, as the real server does at its first event.
    pub(crate) fn make_namespace(&self, instance: &str) {
        let mut state = self.lock();
        if !state.made.contains(instance) {
            state.made.insert(instance.to_owned());
        }
    }

    /// Evolution: forgets every namespace, as a restart of the real server does: sessions
    /// are dropped, and joining is refused (`Invalid namespace`) until an instance's next
    /// event. Returns how many sessions were dropped.
    pub fn restart_namespaces(&self) -> usize {
        let dropped = self.drop_all();
        let mut state = self.lock();
        state.made.clear();
        state.namespaces.clear();
        dropped
    }

    /// Evolution: how many Socket.IO sessions are joined to `instance`'s namespace.
    pub fn joined(&self, instance: &str) -> usize {
        self.lock().namespaces.get(instance).map_or(0, Vec::len)
    }

    /// Evolution: whether every event carries the API key in its envelope's `apikey`
    /// (`AUTHENTICATION_EXPOSE_IN_FETCH_INSTANCES=true`; off by default, and the field is null).
    pub fn expose_api_key(&self, on: bool) {
        self.inner.expose_key.store(on, Ordering::Relaxed);
    }

    pub(crate) fn exposes_api_key(&self) -> bool {
        self.inner.expose_key.load(Ordering::Relaxed)
    }

    /// Evolution: an instance's websocket settings (`/websocket/set`); by default on, with
    /// every event.
    pub(crate) fn websocket(&self, instance: &str) -> crate::evolution::Websocket {
        self.lock()
            .websockets
            .get(instance)
            .cloned()
            .unwrap_or_default()
    }

    /// Evolution: sets an instance's websocket settings, as `POST /websocket/set` does.
    pub fn set_websocket(&self, instance: &str, enabled: bool, events: &[&str]) {
        let settings = crate::evolution::Websocket::new(enabled, events);
        self.lock().websockets.insert(instance.to_owned(), settings);
    }

    /// How many WebSocket handshakes were accepted since start.
    pub fn accepted(&self) -> u64 {
        self.inner.accepted.load(Ordering::Relaxed)
    }

    /// The open sockets.
    pub fn sockets(&self) -> Vec<SocketInfo> {
        let state = self.lock();
        let mut out: Vec<SocketInfo> = state
            .sockets
            .iter()
            .map(|(id, s)| SocketInfo {
                id: *id,
                scope: s.key.0.clone(),
                event: s.key.1.clone(),
                routed: state.routes.get(&s.key) == Some(id),
            })
            .collect();
        out.sort_by_key(|s| s.id);
        out
    }

    /// Whether a socket currently receives `event` for `scope`.
    pub fn is_subscribed(&self, scope: &str, event: &str) -> bool {
        self.lock()
            .routes
            .contains_key(&(scope.to_owned(), event.to_owned()))
    }

    /// The frame text for `data` on `event`: the bare payload (legacy) or the envelope (v2).
    pub(crate) fn frame(&self, scope: &str, event: &str, data: &serde_json::Value) -> String {
        match self.inner.config.protocol {
            // Evolution's events are packets, made by `emit_evolution`.
            Protocol::Legacy | Protocol::Evolution => data.to_string(),
            Protocol::V2 => {
                let name = EventName::parse(event);
                let timestamp =
                    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
                let envelope = if name.kind().is_some_and(|k| k.is_global()) {
                    serde_json::json!({"event": event, "data": data, "timestamp": timestamp})
                } else {
                    serde_json::json!({
                        "event": event,
                        "instance": {
                            "id": self.instance_id(scope),
                            "name": scope,
                            "connectionStatus": "online",
                            "ownerJid": "5511999999999@s.whatsapp.net",
                            "externalAttributes": {},
                        },
                        "data": data,
                        "timestamp": timestamp,
                    })
                };
                envelope.to_string()
            }
        }
    }

    /// Sends one event to the socket subscribed to (`scope`, `event`), if any. Returns whether a
    /// socket took it. Like the real server, nothing is kept for a socket that is not there.
    ///
    /// A `messages.upsert` is also saved, as the real server saves it with
    /// `DATABASE_SAVE_DATA_NEW_MESSAGE=true` (see [`Sim::set_saving`]), whether a socket takes it
    /// or not: `findMessages` finds it.
    ///
    /// Saved, a message (a payload with a `keyId`) carries its row `id` as the real server's
    /// does (the id of the row it was saved as: a payload that has an `id` already keeps it);
    /// with saving off it has none.
    pub fn emit(&self, scope: &str, event: &str, data: &serde_json::Value) -> bool {
        let mut numbered = None;
        if event == "messages.upsert" && data.is_object() {
            if self.inner.saving.load(Ordering::Relaxed) {
                if data.get("id").is_none() && data.get("keyId").is_some() {
                    let mut with_id = data.clone();
                    with_id["id"] = self.next_message_id().into();
                    numbered = Some(with_id);
                }
                self.save(scope, numbered.as_ref().unwrap_or(data));
            }
            let data = numbered.as_ref().unwrap_or(data);
            let mut history = self.inner.history.lock().unwrap_or_else(|p| p.into_inner());
            let list = history.entry(scope.to_owned()).or_default();
            if list.len() == HISTORY {
                list.pop_front();
            }
            list.push_back(data.clone());
        }
        let data = numbered.as_ref().unwrap_or(data);
        if self.inner.config.protocol == Protocol::Evolution {
            return self.emit_evolution(scope, event, data);
        }
        self.emit_text(scope, event, self.frame(scope, event, data))
    }

    /// Sends a frame of exactly `text`, valid JSON or not: for testing how clients take bad input.
    /// On Evolution API, `text` goes as it is to every session joined to `scope`'s namespace
    /// (a whole Engine.IO packet, such as `42/{instance},["messages.upsert",{...}]`).
    pub fn emit_text(&self, scope: &str, event: &str, text: impl Into<ByteString>) -> bool {
        self.send_out(scope, event, Out::Text(text.into()))
    }

    /// Sends `out` as [`Sim::emit_text`] sends a text.
    pub(crate) fn send_out(&self, scope: &str, event: &str, out: Out) -> bool {
        self.inner.emitted.fetch_add(1, Ordering::Relaxed);
        let taken = self.route(scope, event, out);
        if taken {
            self.inner.delivered.fetch_add(1, Ordering::Relaxed);
        }
        taken
    }

    /// Events emitted since start (by any means), and how many of them a socket took; the rest
    /// were lost, as on the real server, for want of a socket.
    pub fn emitted(&self) -> (u64, u64) {
        (
            self.inner.emitted.load(Ordering::Relaxed),
            self.inner.delivered.load(Ordering::Relaxed),
        )
    }

    fn route(&self, scope: &str, event: &str, text: Out) -> bool {
        if self.half_open() {
            return false; // lost on a dead link
        }
        let state = self.lock();
        if self.inner.config.protocol == Protocol::Evolution {
            // Socket.IO broadcasts to every session in the namespace.
            let mut taken = false;
            for id in state.namespaces.get(scope).into_iter().flatten() {
                if let Some(socket) = state.sockets.get(id) {
                    socket.queued.fetch_add(1, Ordering::Relaxed);
                    taken |= socket.frames.send(text.clone()).is_ok();
                }
            }
            return taken;
        }
        let Some(id) = state.routes.get(&(scope.to_owned(), event.to_owned())) else {
            return false;
        };
        let Some(socket) = state.sockets.get(id) else {
            return false;
        };
        if self.inner.config.protocol == Protocol::V2
            && socket.queued.load(Ordering::Relaxed) >= self.inner.config.send_buffer
        {
            // The newer server drops a client whose send buffer is full.
            let _ = socket
                .control
                .send(Control::Close(4008, "slow client".into()));
            return false;
        }
        socket.queued.fetch_add(1, Ordering::Relaxed);
        socket.frames.send(text).is_ok()
    }

    /// Sends `count` events made from `data`; object payloads get a `burstSeq` member (0, 1, ...)
    /// so a client can check order and completeness. Returns how many a socket took.
    pub fn burst(&self, scope: &str, event: &str, data: &serde_json::Value, count: u64) -> u64 {
        let mut data = data.clone();
        let mut sent = 0;
        for i in 0..count {
            if let Some(obj) = data.as_object_mut() {
                obj.insert("burstSeq".into(), i.into());
            }
            sent += u64::from(self.emit(scope, event, &data));
        }
        sent
    }

    /// Ends every socket at once, without a close frame, as a crashed server or a cut cable would.
    pub fn drop_all(&self) -> usize {
        self.tell_all(|| Control::Abort)
    }

    /// Closes every socket with a close frame of `code` and `reason`.
    pub fn close_all(&self, code: u16, reason: &str) -> usize {
        self.tell_all(|| Control::Close(code, reason.to_owned()))
    }

    fn tell_all(&self, msg: impl Fn() -> Control) -> usize {
        let state = self.lock();
        state
            .sockets
            .values()
            .filter(|s| s.control.send(msg()).is_ok())
            .count()
    }

    /// Half-open mode: while on, the server neither answers pings nor sends pings, and frames
    /// emitted meanwhile are lost, as on a link that died without either side noticing.
    pub fn set_half_open(&self, on: bool) {
        self.inner.half_open.store(on, Ordering::Relaxed);
    }

    pub(crate) fn half_open(&self) -> bool {
        self.inner.half_open.load(Ordering::Relaxed)
    }

    pub(crate) fn swallow_ping(&self) {
        self.inner.swallowed_pings.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn record_client_close(&self, code: Option<u16>) {
        self.inner
            .client_closes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(code);
    }

    /// The close codes clients sent, in order (`None` for a close frame without a code).
    pub fn client_closes(&self) -> Vec<Option<u16>> {
        self.inner
            .client_closes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// How many client pings went unanswered in half-open mode since start.
    pub fn swallowed_pings(&self) -> u64 {
        self.inner.swallowed_pings.load(Ordering::Relaxed)
    }

    pub(crate) fn next_message_id(&self) -> i64 {
        self.inner.next_message.fetch_add(1, Ordering::Relaxed)
    }
}
