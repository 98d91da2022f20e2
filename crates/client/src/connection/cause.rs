//! Why a connection ended, and how that is told: the one word every end of a connection is put
//! in, for the supervisor's retry policy and for people.

use std::time::Duration;

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
    /// A write (pong, ping, close) could not go out within `write_timeout`: the server does not
    /// read.
    Stalled(Duration),
    /// The stream ended without a close frame.
    Eof,
    /// A WebSocket protocol error (bad frame, oversized frame...).
    Protocol(String),
    /// The subscription's dispatcher is gone: nothing can take frames any more.
    DispatcherGone,
    /// Evolution API refused the API key at the handshake (HTTP 400, its answer to a missing or
    /// unknown `apikey`).
    KeyRefused,
    /// Evolution API refused to let the client join the instance's namespace, with this
    /// message; `setting` is the subscribed event as the instance's settings name it.
    NamespaceRefused {
        namespace: String,
        message: String,
        setting: String,
    },
    /// The Socket.IO session ended by the server's doing.
    SessionEnded(&'static str),
    /// Nothing heard from a Socket.IO server for longer than its heartbeat allows.
    Silent(Duration),
}

impl Cause {
    /// A refusal of the token: retried no faster than the maximum backoff, unless the token
    /// provider has a new token to try.
    pub(crate) fn is_auth(&self) -> bool {
        matches!(
            self,
            Cause::Token(_)
                | Cause::KeyRefused
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
        use eventsock_core::human::{duration, escaped};
        match self {
            Cause::Shutdown => f.write_str("shut down"),
            Cause::Token(e) => write!(f, "the token provider failed: {}", escaped(e)),
            Cause::Refused(401) => f.write_str("handshake refused: 401 Unauthorized"),
            Cause::Refused(403) => {
                f.write_str("handshake refused: 403 Forbidden (token revoked or out of scope)")
            }
            Cause::Refused(404) => {
                f.write_str("handshake refused: 404 Not Found (no such socket path or instance)")
            }
            Cause::Refused(429) => f.write_str("handshake refused: 429 Too Many Requests"),
            Cause::Refused(s) => write!(f, "handshake refused with HTTP {s}"),
            Cause::ConnectFailed(e) => write!(f, "cannot connect: {}", escaped(e)),
            Cause::ConnectTimeout => f.write_str("the handshake timed out"),
            Cause::Closed {
                code: Some(c),
                reason,
            } if reason.is_empty() => write!(f, "closed by the server with {c}"),
            Cause::Closed {
                code: Some(c),
                reason,
            } => write!(f, "closed by the server with {c}: {}", escaped(reason)),
            Cause::Closed { code: None, .. } => f.write_str("closed by the server"),
            Cause::Dead(t) => write!(
                f,
                "no answer to a ping within {}: the link is dead",
                duration(*t)
            ),
            Cause::Stalled(t) => write!(
                f,
                "the server stopped reading: a write waited more than {}",
                duration(*t)
            ),
            Cause::Eof => f.write_str("the connection ended without a close frame"),
            Cause::Protocol(e) => write!(f, "protocol error: {}", escaped(e)),
            Cause::DispatcherGone => f.write_str("the subscription's dispatcher stopped"),
            Cause::KeyRefused => f.write_str(
                "handshake refused: 400 Bad Request, Evolution API's answer to a missing or unknown API key: give the instance's token or the global key (--token, EVENTSOCK_TOKEN)",
            ),
            Cause::NamespaceRefused {
                namespace,
                message,
                setting,
            } => write!(
                f,
                "the server refused the namespace {}: {} (Evolution API makes an instance's namespace at the first event it sends there, so it is missing after each restart of the server until then, and forever when the instance's websocket is off or lists no event: POST /websocket/set/{} with {{\"websocket\":{{\"enabled\":true,\"events\":[\"{setting}\"]}}}} turns it on)",
                escaped(namespace),
                escaped(message),
                escaped(namespace.trim_start_matches('/')),
            ),
            Cause::SessionEnded(why) => f.write_str(why),
            Cause::Silent(t) => write!(
                f,
                "the server's heartbeat stopped: nothing heard for {}; the link is dead",
                duration(*t)
            ),
        }
    }
}
