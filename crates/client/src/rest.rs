//! Replies over the CodeChat REST API: send text (plain or quoting), react, mark as read, set
//! presence, find messages.
//!
//! Calls that change nothing on a retry (mark as read, set presence, find messages) are retried
//! on a timeout, a connection failure or a 5xx, up to [`RestClient::retries`] times. Sends are
//! never retried: a send that timed out may have gone out, and a second try would send twice.

use crate::source::TokenProvider;
use eventsock_core::{Endpoint, Token};
use serde::Serialize;
use serde_json::{json, Value};
use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A failed REST call. The token is never part of it.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum RestError {
    /// 401: the token is wrong, expired, or not for this instance.
    #[error("401 Unauthorized: {body}")]
    Unauthorized {
        /// The server's error body.
        body: Value,
    },
    /// 404: no such instance (or route).
    #[error("404 Not Found: {body}")]
    NotFound {
        /// The server's error body.
        body: Value,
    },
    /// Another 4xx: the request was refused (bad number, bad body...).
    #[error("{status} refused: {body}")]
    Rejected {
        /// The status.
        status: u16,
        /// The server's error body.
        body: Value,
    },
    /// A 5xx.
    #[error("server error {status}: {body}")]
    Server {
        /// The status.
        status: u16,
        /// The server's error body.
        body: Value,
    },
    /// No answer in time.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// No connection.
    #[error("cannot reach the server: {0}")]
    Connect(String),
    /// The answer is not the JSON expected.
    #[error("unexpected answer: {0}")]
    Decode(String),
    /// The token provider failed.
    #[error("no token: {0}")]
    Token(String),
}

impl RestError {
    /// Worth another try for an idempotent call.
    fn transient(&self) -> bool {
        matches!(
            self,
            RestError::Server { .. } | RestError::Timeout(_) | RestError::Connect(_)
        )
    }
}

/// A message's key, to react to it or mark it read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageKey {
    /// The chat.
    pub remote_jid: String,
    /// Whether this instance sent it.
    pub from_me: bool,
    /// WhatsApp message id.
    pub id: String,
}

/// What to send with [`RestClient::send`].
#[derive(Debug, Clone, Default)]
pub struct SendText {
    /// Phone number or JID.
    pub number: String,
    /// The text.
    pub text: String,
    /// Quote this message id.
    pub quoted_message_id: Option<String>,
    /// Milliseconds of "typing" before sending.
    pub delay: Option<u64>,
    /// Attributes the server stores with the message and echoes back on events.
    pub external_attributes: Option<Value>,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    // awc's client is not Send: each thread that makes calls keeps one per RestClient, so a
    // RestClient can be cloned into handlers on any arbiter and still reuse connections.
    static CLIENTS: RefCell<Vec<(u64, awc::Client)>> = const { RefCell::new(Vec::new()) };
}

/// A client for one instance's REST API. Cheap to clone; usable from any thread.
#[derive(Clone)]
pub struct RestClient {
    id: u64,
    base: url::Url,
    instance: Arc<str>,
    tokens: Arc<dyn TokenProvider>,
    tls: Arc<rustls::ClientConfig>,
    timeout: Duration,
    retries: u32,
}

impl std::fmt::Debug for RestClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RestClient")
            .field("base", &self.base.as_str())
            .field("instance", &self.instance)
            .field("timeout", &self.timeout)
            .field("retries", &self.retries)
            .finish_non_exhaustive()
    }
}

impl RestClient {
    /// A client for `instance` on `endpoint`, with a fixed token.
    pub fn new(endpoint: &Endpoint, instance: impl Into<Arc<str>>, token: Token) -> RestClient {
        Self::with_provider(endpoint, instance, token)
    }

    /// A client whose token is asked of `tokens` before every call.
    pub fn with_provider(
        endpoint: &Endpoint,
        instance: impl Into<Arc<str>>,
        tokens: impl TokenProvider,
    ) -> RestClient {
        RestClient {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            base: endpoint.rest_base(),
            instance: instance.into(),
            tokens: Arc::new(tokens),
            tls: crate::tls::default_tls(),
            timeout: Duration::from_secs(30),
            retries: 2,
        }
    }

    /// How long one call may take (30 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How many times an idempotent call is retried after a transient failure (2).
    pub fn retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    /// TLS settings for `https://`.
    pub fn tls(mut self, tls: Arc<rustls::ClientConfig>) -> Self {
        self.tls = tls;
        self
    }

    /// The instance this client acts for.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// Sends a text message; returns the sent message, the same object the server then emits
    /// on `send.message` and `messages.upsert`. Never retried.
    pub async fn send_text(&self, number: &str, text: &str) -> Result<Value, RestError> {
        self.send(SendText {
            number: number.to_owned(),
            text: text.to_owned(),
            ..SendText::default()
        })
        .await
    }

    /// Sends a text message quoting `quoted_message_id`. Never retried.
    pub async fn reply(
        &self,
        number: &str,
        text: &str,
        quoted_message_id: &str,
    ) -> Result<Value, RestError> {
        self.send(SendText {
            number: number.to_owned(),
            text: text.to_owned(),
            quoted_message_id: Some(quoted_message_id.to_owned()),
            ..SendText::default()
        })
        .await
    }

    /// Sends a text message with options. Never retried.
    pub async fn send(&self, message: SendText) -> Result<Value, RestError> {
        let mut options = serde_json::Map::new();
        if let Some(q) = message.quoted_message_id {
            options.insert("quotedMessageId".into(), q.into());
        }
        if let Some(d) = message.delay {
            options.insert("delay".into(), d.into());
        }
        if let Some(a) = message.external_attributes {
            options.insert("externalAttributes".into(), a);
        }
        let mut body = json!({"number": message.number, "textMessage": {"text": message.text}});
        if !options.is_empty() {
            body["options"] = Value::Object(options);
        }
        self.call(Method::Post, "message/sendText", &body, false)
            .await
    }

    /// Reacts to a message with `reaction` (an emoji; empty removes it). Never retried.
    pub async fn send_reaction(
        &self,
        key: &MessageKey,
        reaction: &str,
    ) -> Result<Value, RestError> {
        let body = json!({"reactionMessage": {"key": key, "reaction": reaction}});
        self.call(Method::Post, "message/sendReaction", &body, false)
            .await
    }

    /// Marks messages as read. Retried on transient failures.
    pub async fn mark_as_read(&self, keys: &[MessageKey]) -> Result<Value, RestError> {
        self.call(
            Method::Put,
            "chat/markMessageAsRead",
            &json!({"readMessages": keys}),
            true,
        )
        .await
    }

    /// Sets this account's presence in a chat: `available`, `unavailable`, `composing`,
    /// `recording` or `paused`. Retried on transient failures.
    pub async fn set_presence(&self, number: &str, presence: &str) -> Result<Value, RestError> {
        let body = json!({"number": number, "presence": presence});
        self.call(Method::Patch, "chat/updatePresence", &body, true)
            .await
    }

    /// Finds stored messages whose fields match `filter` (the server's `where`), for example
    /// `{"keyRemoteJid": "5511...@s.whatsapp.net"}`: how a bot resyncs after a gap notice.
    /// Returns the server's answer as JSON. Retried on transient failures.
    pub async fn find_messages(&self, filter: Value) -> Result<Value, RestError> {
        self.call(
            Method::Post,
            "chat/findMessages",
            &json!({"where": filter}),
            true,
        )
        .await
    }

    async fn call(
        &self,
        method: Method,
        route: &str,
        body: &Value,
        idempotent: bool,
    ) -> Result<Value, RestError> {
        let mut attempt = 0;
        loop {
            match self.once(method, route, body).await {
                Err(e) if idempotent && e.transient() && attempt < self.retries => {
                    attempt += 1;
                    let wait = Duration::from_millis(200 << attempt.min(6));
                    tracing::debug!(route, attempt, error = %e, ?wait, "retrying");
                    tokio::time::sleep(wait).await;
                }
                other => return other,
            }
        }
    }

    async fn once(&self, method: Method, route: &str, body: &Value) -> Result<Value, RestError> {
        let token = self
            .tokens
            .token()
            .await
            .map_err(|e| RestError::Token(e.to_string()))?;
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|_| RestError::Connect("the endpoint cannot take a path".into()))?
            .pop_if_empty()
            .extend(route.split('/'))
            .push(&self.instance);
        let http = self.http();
        let request = match method {
            Method::Post => http.post(url.as_str()),
            Method::Put => http.put(url.as_str()),
            Method::Patch => http.patch(url.as_str()),
        }
        .bearer_auth(token.expose())
        .timeout(self.timeout);
        let mut response = request.send_json(body).await.map_err(|e| match e {
            awc::error::SendRequestError::Timeout => RestError::Timeout(self.timeout),
            other => RestError::Connect(other.to_string().replace(token.expose(), "<redacted>")),
        })?;
        let status = response.status().as_u16();
        let bytes = response
            .body()
            .limit(64 * 1024 * 1024)
            .await
            .map_err(|e| RestError::Decode(e.to_string()))?;
        let body: Value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        match status {
            200..=299 => Ok(body),
            401 => Err(RestError::Unauthorized { body }),
            404 => Err(RestError::NotFound { body }),
            400..=499 => Err(RestError::Rejected { status, body }),
            _ => Err(RestError::Server { status, body }),
        }
    }

    fn http(&self) -> awc::Client {
        CLIENTS.with(|clients| {
            let mut clients = clients.borrow_mut();
            if let Some((_, c)) = clients.iter().find(|(id, _)| *id == self.id) {
                return c.clone();
            }
            let client = awc::Client::builder()
                .connector(awc::Connector::new().rustls_0_23(self.tls.clone()))
                .finish();
            clients.push((self.id, client.clone()));
            client
        })
    }
}

#[derive(Debug, Clone, Copy)]
enum Method {
    Post,
    Put,
    Patch,
}
