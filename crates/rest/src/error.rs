//! [`RestError`]: what a failed REST call says, without the token, with the server's text
//! escaped and cut short.

use serde_json::Value;
use std::time::Duration;

/// A failed REST call. The token is never part of it; the server's body is shown escaped and
/// cut to 200 characters.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum RestError {
    /// 401: the token is wrong, expired, or not for this instance.
    #[error("401 Unauthorized: {}", shown(body))]
    Unauthorized {
        /// The server's error body.
        body: Value,
    },
    /// 404: no such instance (or route).
    #[error("404 Not Found: {}", shown(body))]
    NotFound {
        /// The server's error body.
        body: Value,
    },
    /// 429: too many requests; nothing was done. Try again after `retry_after` when the server
    /// said (its `Retry-After`, in seconds).
    #[error("429 Too Many Requests{}: {}", retry_after.map(|d| format!(" (try again in {})", eventsock_core::human::duration(d))).unwrap_or_default(), shown(body))]
    RateLimited {
        /// The server's `Retry-After`, when it sent one in seconds.
        retry_after: Option<Duration>,
        /// The server's error body.
        body: Value,
    },
    /// Another 4xx: the request was refused (bad number, bad body...).
    #[error("{status} refused: {}", shown(body))]
    Rejected {
        /// The status.
        status: u16,
        /// The server's error body.
        body: Value,
    },
    /// A 5xx.
    #[error("server error {status}: {}", shown(body))]
    Server {
        /// The status.
        status: u16,
        /// The server's error body.
        body: Value,
    },
    /// No answer in time.
    #[error("no answer within {}", eventsock_core::human::duration(*.0))]
    Timeout(Duration),
    /// No connection.
    #[error("cannot reach the server: {}", eventsock_core::human::escaped(.0))]
    Connect(String),
    /// The answer is not the JSON expected.
    #[error("unexpected answer: {}", eventsock_core::human::escaped(.0))]
    Decode(String),
    /// The token provider failed.
    #[error("no token: {}", eventsock_core::human::escaped(.0))]
    Token(String),
    /// Nothing was sent: the message names no recipient (for example a chat id that the event
    /// did not carry).
    #[error("nothing sent: the recipient is empty")]
    NoRecipient,
    /// The call cannot be made here (no REST client, no message id); nothing was sent.
    #[error("nothing sent: {}", eventsock_core::human::escaped(.0))]
    Unavailable(String),
}

/// A server's body for an error message: JSON (which escapes control characters), at most 200
/// characters.
fn shown(body: &Value) -> String {
    let text = body.to_string();
    match text.char_indices().nth(200) {
        Some((i, _)) => format!("{}… ({} bytes)", &text[..i], text.len()),
        None => text,
    }
}

impl RestError {
    /// The same error with every occurrence of `secret` replaced by `<redacted>`: for errors of
    /// calls that carry a secret in their body, which a server may echo.
    pub(crate) fn scrubbed(self, secret: &str) -> RestError {
        if secret.is_empty() {
            return self;
        }
        let text = |s: String| s.replace(secret, "<redacted>");
        let body = |v: Value| {
            let shown = v.to_string();
            if shown.contains(secret) {
                serde_json::from_str(&text(shown)).unwrap_or(Value::Null)
            } else {
                v
            }
        };
        match self {
            RestError::Unauthorized { body: b } => RestError::Unauthorized { body: body(b) },
            RestError::NotFound { body: b } => RestError::NotFound { body: body(b) },
            RestError::RateLimited {
                retry_after,
                body: b,
            } => RestError::RateLimited {
                retry_after,
                body: body(b),
            },
            RestError::Rejected { status, body: b } => RestError::Rejected {
                status,
                body: body(b),
            },
            RestError::Server { status, body: b } => RestError::Server {
                status,
                body: body(b),
            },
            RestError::Connect(e) => RestError::Connect(text(e)),
            RestError::Decode(e) => RestError::Decode(text(e)),
            RestError::Token(e) => RestError::Token(text(e)),
            other => other,
        }
    }

    /// Worth another try for an idempotent call.
    pub(crate) fn transient(&self) -> bool {
        matches!(
            self,
            RestError::Server { .. } | RestError::Timeout(_) | RestError::Connect(_)
        )
    }
}
