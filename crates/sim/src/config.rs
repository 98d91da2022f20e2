//! What kind of server the simulator plays.

pub use eventsock_core::Protocol;
use std::time::Duration;

/// Simulator settings. `Default` gives the legacy server with one instance, `codechat`.
#[derive(Clone)]
pub struct SimConfig {
    /// Which server to behave like: [`Protocol::Legacy`] (`/ws/events`, bare frames, 401 for
    /// every refused handshake, never pings) or [`Protocol::V2`] (`/ws/instance/events`,
    /// enveloped frames, 400/401/403/404 before the upgrade, pings, close codes 4001/4003/4008).
    pub protocol: Protocol,
    /// The HS256 secret tokens are signed with (`AUTHENTICATION_JWT_SECRET`).
    pub secret: String,
    /// The instances that exist, in id order (the first has id 1).
    pub instances: Vec<String>,
    /// V2: how often the server pings (`WEBSOCKET_PING_INTERVAL`, 25 s).
    pub ping_interval: Duration,
    /// V2: how long the server waits for a pong before dropping the socket (60 s).
    pub pong_timeout: Duration,
    /// V2: frames queued per socket before the client counts as slow and is closed with 4008 (256).
    pub send_buffer: usize,
    /// `AUTHENTICATION_JWT_EXPIRES_IN`. `None` is CodeChat's shipped `0`: tokens carry
    /// `exp == iat` and expiry is never checked. `Some(ttl)`: tokens expire after `ttl` (the real
    /// server turns any other value into one hour) and an expired token is refused on every new
    /// socket and REST call (and, on the newer server, its sockets close with 4001 at `exp`).
    pub jwt_expires_in: Option<Duration>,
    /// `DATABASE_SAVE_DATA_NEW_MESSAGE=true`: every `messages.upsert` is saved, and
    /// `findMessages` finds it (true here; the real server's default is off).
    pub save_messages: bool,
    /// Whether WhatsApp acknowledges what the instance sends: after each text or reaction the
    /// simulator accepts for a person's chat, it emits `messages.update` with `SERVER_ACK`,
    /// then `DELIVERY_ACK`, as the real server passes on WhatsApp's receipts (true). In a
    /// group WhatsApp's receipts are per participant, which the real server does not pass on,
    /// so none are emitted there. [`Sim::receipt`](crate::Sim::receipt) emits any other.
    pub receipts: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            protocol: Protocol::Legacy,
            secret: "eventsock-sim-secret".into(),
            instances: vec!["codechat".into()],
            ping_interval: Duration::from_secs(25),
            pong_timeout: Duration::from_secs(60),
            send_buffer: 256,
            jwt_expires_in: None,
            save_messages: true,
            receipts: true,
        }
    }
}

impl std::fmt::Debug for SimConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimConfig")
            .field("protocol", &self.protocol)
            .field("secret", &"<redacted>")
            .field("instances", &self.instances)
            .field("ping_interval", &self.ping_interval)
            .field("pong_timeout", &self.pong_timeout)
            .field("send_buffer", &self.send_buffer)
            .field("jwt_expires_in", &self.jwt_expires_in)
            .field("save_messages", &self.save_messages)
            .field("receipts", &self.receipts)
            .finish()
    }
}
