//! Replies over the CodeChat REST API: send text (plain or quoting), react, mark as read, set
//! presence, find messages. On Evolution API ([`Protocol::Evolution`], from the source) the
//! same calls take its routes and bodies, with the key in an `apikey` header.
//!
//! Calls that change nothing on a retry (mark as read, set presence, find messages) are retried
//! on a timeout, a connection failure or a 5xx, up to [`RestClient::retries`] times. Sends are
//! never retried: a send that timed out may have gone out, and a second try would send twice.

use crate::retries::Retries;
use crate::RestError;
use eventsock_core::{Endpoint, Protocol, QuotedMessage, Source, Token, TokenProvider};
use serde::Serialize;
use serde_json::{json, Value};
use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A message's key, to react to it or mark it read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageKey {
    /// The chat.
    pub remote_jid: String,
    /// Whether this instance sent it.
    pub from_me: bool,
    /// WhatsApp message id.
    pub id: String,
}

/// The message a text quotes, in one of the two forms the server takes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum Quote {
    /// The server's database row id of the message (`options.quotedMessageId`, the `id` of a
    /// `messages.upsert` that the server saved): the server looks the row up, so it works only
    /// where it saves messages (`DATABASE_SAVE_DATA_NEW_MESSAGE=true`), and refuses the send
    /// otherwise.
    Row(i64),
    /// The message itself (`options.quotedMessage`): works on any server. What
    /// [`MessageLike::quote`](eventsock_core::MessageLike::quote) makes of a received message.
    Message(QuotedMessage),
}

impl From<QuotedMessage> for Quote {
    fn from(message: QuotedMessage) -> Quote {
        Quote::Message(message)
    }
}

impl From<i64> for Quote {
    fn from(row: i64) -> Quote {
        Quote::Row(row)
    }
}

impl Quote {
    /// Whether the server's refusal `body` of a send that carried this quote is about the
    /// quote: a quoted row the server cannot find or has no database for, or a quote its
    /// schema refuses. The server checks all of these before it sends anything.
    pub fn refused_in(body: &Value) -> bool {
        body["message"].as_array().into_iter().flatten().any(|m| {
            m["property"]
                .as_str()
                .is_some_and(|p| p.starts_with("options.quoted"))
                || m.as_str().is_some_and(|text| {
                    text == "Quoted message not found"
                        || text.contains("DATABASE_SAVE_DATA_NEW_MESSAGE")
                })
        })
    }
}

/// A page of `findMessages`, read from the server's `{messages: {total, pages, currentPage,
/// records}}` (CodeChat's `fetchMessages`): the one reading of that answer.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct FoundPage {
    /// How many messages match, over every page (`None` when the server did not say).
    pub total: Option<u64>,
    /// How many pages there are.
    pub pages: Option<u64>,
    /// Which page this is, from 1.
    pub current_page: Option<u64>,
    /// The page's messages: the server's `Message` rows, newest first by `messageTimestamp`.
    pub records: Vec<Value>,
}

impl FoundPage {
    /// Reads an answer; anything but a page of messages is a [`RestError::Decode`] that shows
    /// the start of what came.
    pub fn parse(mut answer: Value) -> Result<FoundPage, RestError> {
        let messages = answer.get_mut("messages");
        let number = |key: &str| messages.as_ref().and_then(|m| m[key].as_u64());
        let (total, pages, current_page) =
            (number("total"), number("pages"), number("currentPage"));
        match messages.and_then(|m| m.get_mut("records")).map(Value::take) {
            Some(Value::Array(records)) => Ok(FoundPage {
                total,
                pages,
                current_page,
                records,
            }),
            _ => Err(RestError::Decode(format!(
                "not a page of messages: {}",
                eventsock_core::human::excerpt(&answer.to_string(), 80)
            ))),
        }
    }

    /// The row id (`id`) of a record: CodeChat's autoincrement, so the order in which it
    /// saved the messages. `None` on Evolution API, whose ids (cuids) tell no order.
    pub fn row_id(record: &Value) -> Option<i64> {
        record["id"].as_i64()
    }

    /// The WhatsApp id of a record's message: CodeChat's `keyId`, Evolution API's `key.id`.
    pub fn message_id(record: &Value) -> Option<&str> {
        record["keyId"]
            .as_str()
            .or_else(|| record["key"]["id"].as_str())
    }

    /// The `messageTimestamp` of a record, in seconds (a number or a numeric string).
    pub fn timestamp(record: &Value) -> Option<i64> {
        eventsock_core::wire::opt_int::deserialize(record.get("messageTimestamp")?)
            .ok()
            .flatten()
    }
}

/// What to send with [`RestClient::send`].
#[derive(Debug, Clone, Default)]
pub struct SendText {
    /// Phone number or JID.
    pub number: String,
    /// The text.
    pub text: String,
    /// The message to quote.
    pub quote: Option<Quote>,
    /// Milliseconds of "typing" before sending.
    pub delay: Option<u64>,
    /// Attributes the server stores with the message and echoes back on events.
    pub external_attributes: Option<Value>,
    /// The message's WhatsApp id, chosen by the sender (the server's `options.messageId`;
    /// by default the server makes one). The [`Outbox`](crate::Outbox) gives every message its
    /// own, so that it can look a message up after an answer was lost. Evolution API takes
    /// none: there it is not sent, and the server makes the id.
    pub message_id: Option<String>,
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
    /// A server in this process that answers instead of the network (a test kit's).
    pub(crate) loopback: Option<Arc<dyn Loopback>>,
    base: url::Url,
    instance: Arc<str>,
    pub(crate) tokens: Arc<dyn TokenProvider>,
    protocol: Protocol,
    tls: Arc<rustls::ClientConfig>,
    timeout: Duration,
    pub(crate) retries: u32,
    pub(crate) media_limits: crate::MediaLimits,
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

    /// A client for a [`Source`]'s instance and server, sharing its token provider (so a
    /// [`RefreshingToken`](crate::RefreshingToken) serves the sockets and the REST calls alike).
    pub fn for_source(source: &Source) -> RestClient {
        Self::with_provider(source.endpoint(), source.instance(), source.tokens())
            .protocol(source.protocol())
    }

    /// A client whose token is asked of `tokens` before every call.
    pub fn with_provider(
        endpoint: &Endpoint,
        instance: impl Into<Arc<str>>,
        tokens: impl TokenProvider,
    ) -> RestClient {
        RestClient {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            loopback: None,
            base: endpoint.rest_base(),
            instance: instance.into(),
            tokens: Arc::new(tokens),
            protocol: Protocol::Legacy,
            tls: crate::tls::default_tls(),
            timeout: Duration::from_secs(30),
            retries: 2,
            media_limits: crate::MediaLimits::default(),
        }
    }

    /// A client whose calls `server`, in this process, answers instead of the network: the
    /// same requests (URL, token, JSON body), the same answers and errors, and no socket. The
    /// test kit's in-memory simulator is one.
    pub fn loopback(
        instance: impl Into<Arc<str>>,
        tokens: impl TokenProvider,
        server: Arc<dyn Loopback>,
    ) -> RestClient {
        let endpoint = Endpoint::parse("http://loopback.invalid").expect("a valid URL");
        RestClient {
            loopback: Some(server),
            ..Self::with_provider(&endpoint, instance, tokens)
        }
    }

    /// Which server's routes and bodies to use (CodeChat's, the default, or Evolution API's).
    pub fn protocol(mut self, protocol: Protocol) -> Self {
        self.protocol = protocol;
        self
    }

    /// The server's protocol this client speaks.
    pub fn server_protocol(&self) -> Protocol {
        self.protocol
    }

    /// How long one call may take (30 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long one call may take.
    pub fn request_timeout(&self) -> Duration {
        self.timeout
    }

    /// How many times an idempotent call is retried after a transient failure (2).
    pub fn retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    /// How much and how long a media download may take (see [`MediaLimits`](crate::MediaLimits)).
    pub fn media_limits(mut self, limits: crate::MediaLimits) -> Self {
        self.media_limits = limits;
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

    /// Sends a text message quoting `quote` (a received message's
    /// [`quote`](eventsock_core::MessageLike::quote), or a saved message's row id). Never
    /// retried.
    pub async fn reply(
        &self,
        number: &str,
        text: &str,
        quote: impl Into<Quote>,
    ) -> Result<Value, RestError> {
        self.send(SendText {
            number: number.to_owned(),
            text: text.to_owned(),
            quote: Some(quote.into()),
            ..SendText::default()
        })
        .await
    }

    /// Sends a text message with options. Never retried, except after a 401 when the token
    /// provider has a new token (the server refused the request, so nothing was sent). An empty
    /// recipient is refused here, with nothing sent.
    pub async fn send(&self, message: SendText) -> Result<Value, RestError> {
        if message.number.trim().is_empty() {
            return Err(RestError::NoRecipient);
        }
        if self.protocol == Protocol::Evolution {
            return self.send_evolution(message).await;
        }
        let mut options = serde_json::Map::new();
        match message.quote {
            Some(Quote::Row(id)) => {
                options.insert("quotedMessageId".into(), id.into());
            }
            Some(Quote::Message(quoted)) => {
                let quoted = serde_json::to_value(quoted)
                    .map_err(|e| RestError::Unavailable(format!("the quote: {e}")))?;
                options.insert("quotedMessage".into(), quoted);
            }
            None => {}
        }
        if let Some(d) = message.delay {
            options.insert("delay".into(), d.into());
        }
        if let Some(a) = message.external_attributes {
            options.insert("externalAttributes".into(), a);
        }
        if let Some(id) = message.message_id {
            options.insert("messageId".into(), id.into());
        }
        let mut body = json!({"number": message.number, "textMessage": {"text": message.text}});
        if !options.is_empty() {
            body["options"] = Value::Object(options);
        }
        self.call(Method::Post, "message/sendText", &body, false)
            .await
    }

    /// Evolution API's `sendText`: `{number, text, delay?, quoted?}` (its `quoted` is the
    /// message's key and body); no id of the sender's.
    async fn send_evolution(&self, message: SendText) -> Result<Value, RestError> {
        let mut body = json!({"number": message.number, "text": message.text});
        if let Some(d) = message.delay {
            body["delay"] = d.into();
        }
        match message.quote {
            Some(Quote::Message(q)) => {
                let text = q.content["text"]
                    .as_str()
                    .or(q.content["caption"].as_str())
                    .unwrap_or_default();
                body["quoted"] = json!({
                    "key": {"id": q.key_id, "remoteJid": q.key_remote_jid, "fromMe": q.key_from_me},
                    "message": {"conversation": text},
                });
            }
            Some(Quote::Row(_)) => {
                return Err(RestError::Unavailable(
                    "Evolution API quotes a message by its key, not by a row id: quote the message (MessageLike::quote)".into(),
                ))
            }
            None => {}
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
        let body = match self.protocol {
            Protocol::Evolution => json!({"key": key, "reaction": reaction}),
            _ => json!({"reactionMessage": {"key": key, "reaction": reaction}}),
        };
        self.call(Method::Post, "message/sendReaction", &body, false)
            .await
    }

    /// Marks messages as read. Retried on transient failures.
    pub async fn mark_as_read(&self, keys: &[MessageKey]) -> Result<Value, RestError> {
        // A PUT on CodeChat, a POST on Evolution API.
        let method = match self.protocol {
            Protocol::Evolution => Method::Post,
            _ => Method::Put,
        };
        self.call(
            method,
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

    /// The LID WhatsApp gives the person with phone number `phone` (digits, or a phone-number
    /// JID), if it gives one (`POST /chat/whatsappNumbers`, which asks WhatsApp: the server
    /// cannot answer the other way, a LID's number). `None` when the number is not on
    /// WhatsApp or WhatsApp gave no LID. Retried on transient failures.
    pub async fn lid_of(&self, phone: &str) -> Result<Option<String>, RestError> {
        let number = phone.split('@').next().unwrap_or_default();
        if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
            return Err(RestError::Unavailable(format!(
                "{} is not a phone number",
                eventsock_core::human::escaped(phone)
            )));
        }
        let answer = self
            .call(
                Method::Post,
                "chat/whatsappNumbers",
                &json!({"numbers": [number]}),
                true,
            )
            .await?;
        let Some(entries) = answer.as_array() else {
            return Err(RestError::Decode(format!(
                "whatsappNumbers answered {}, not a list",
                eventsock_core::human::excerpt(&answer.to_string(), 80)
            )));
        };
        // One entry per number asked; the LID, when WhatsApp gave one, is non-empty.
        Ok(entries
            .iter()
            .filter(|e| e["exists"] == true)
            .filter_map(|e| e["lid"].as_str())
            .find(|l| eventsock_core::identity::is_lid(l))
            .map(str::to_owned))
    }

    /// The instance's connection state (`GET /instance/connectionState/{instance}`). The legacy
    /// server checks the token on this route and nothing else, so a 200 also says that the
    /// server accepts the token for this instance. Retried on transient failures.
    pub async fn connection_state(&self) -> Result<Value, RestError> {
        self.call(Method::Get, "instance/connectionState", &Value::Null, true)
            .await
    }

    /// Evolution API: the instance's websocket settings (`GET /websocket/find/{instance}`):
    /// `{enabled, events: ["MESSAGES_UPSERT", ...]}`, or `null` when never set. Retried on
    /// transient failures. CodeChat has no such route.
    pub async fn websocket_settings(&self) -> Result<Value, RestError> {
        if self.protocol != Protocol::Evolution {
            return Err(RestError::Unavailable(
                "websocket settings are Evolution API's: CodeChat has no such route".into(),
            ));
        }
        self.call(Method::Get, "websocket/find", &Value::Null, true)
            .await
    }

    /// Finds stored messages whose fields match `filter` (the server's `where`), for example
    /// `{"keyRemoteJid": "5511...@s.whatsapp.net"}`: how a bot resyncs after a gap notice.
    /// The server's first page (50 messages, newest first). Retried on transient failures.
    pub async fn find_messages(&self, filter: Value) -> Result<FoundPage, RestError> {
        let answer = self
            .call(
                Method::Post,
                "chat/findMessages",
                &json!({"where": filter}),
                true,
            )
            .await?;
        FoundPage::parse(answer)
    }

    /// The saved message whose WhatsApp id is `id` (a page of at most 10 records; the one
    /// whose [`FoundPage::message_id`] is `id`, if any, is the message), in each server's
    /// words: `{"keyId": id}` on CodeChat, `{"key": {"id": id}}` on Evolution API. Retried on
    /// transient failures.
    pub async fn find_message(&self, id: &str) -> Result<FoundPage, RestError> {
        let filter = match self.protocol {
            Protocol::Evolution => json!({"key": {"id": id}}),
            _ => json!({"keyId": id}),
        };
        self.find_messages_page(filter, 10, 1).await
    }

    /// One page of [`find_messages`](Self::find_messages): the server sorts by
    /// `messageTimestamp`, newest first, and answers `page_size` records of page `page` (from
    /// 1).
    pub async fn find_messages_page(
        &self,
        filter: Value,
        page_size: u32,
        page: u32,
    ) -> Result<FoundPage, RestError> {
        let body = json!({"where": filter, "offset": page_size, "page": page});
        let answer = self
            .call(Method::Post, "chat/findMessages", &body, true)
            .await?;
        FoundPage::parse(answer)
    }

    async fn call(
        &self,
        method: Method,
        route: &str,
        body: &Value,
        idempotent: bool,
    ) -> Result<Value, RestError> {
        let mut retries = Retries::new(self, route, idempotent, None);
        loop {
            let token = retries.token().await?;
            let url = self.url(route)?;
            let answer = match &self.loopback {
                Some(server) => {
                    let call = LoopbackCall {
                        method,
                        url: url.clone(),
                        token: Some(token.clone()),
                        body: body.clone(),
                    };
                    match tokio::time::timeout(self.timeout, server.answer(call)).await {
                        Ok(reply) => reply.into_result(),
                        Err(_) => Err(RestError::Timeout(self.timeout)),
                    }
                }
                None => {
                    let auth = match self.protocol {
                        Protocol::Evolution => Auth::ApiKey(&token),
                        _ => Auth::Bearer(&token),
                    };
                    send(&self.http(), method, &url, auth, body, self.timeout).await
                }
            };
            match answer {
                Err(e) if retries.again(&e, &token).await => {}
                other => return other,
            }
        }
    }

    pub(crate) fn url(&self, route: &str) -> Result<url::Url, RestError> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|_| RestError::Connect("the endpoint cannot take a path".into()))?
            .pop_if_empty()
            .extend(route.split('/'))
            .push(&self.instance);
        Ok(url)
    }

    pub(crate) fn http(&self) -> awc::Client {
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

/// An HTTP method, for [`request`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// GET (sends no body).
    Get,
    /// POST.
    Post,
    /// PUT.
    Put,
    /// PATCH.
    Patch,
}

/// One HTTP call: JSON in (none for GET), JSON out, errors by status. The token, when given,
/// goes in `Authorization: Bearer` and never into an error. For calls [`RestClient`] does not
/// wrap; the body is read up to 64 MiB.
pub async fn request(
    http: &awc::Client,
    method: Method,
    url: &url::Url,
    token: Option<&Token>,
    body: &Value,
    timeout: Duration,
) -> Result<Value, RestError> {
    let auth = token.map_or(Auth::None, Auth::Bearer);
    send(http, method, url, auth, body, timeout).await
}

/// How a call carries its token.
#[derive(Clone, Copy)]
enum Auth<'a> {
    None,
    /// `Authorization: Bearer` (CodeChat).
    Bearer(&'a Token),
    /// `apikey` (Evolution API).
    ApiKey(&'a Token),
}

async fn send(
    http: &awc::Client,
    method: Method,
    url: &url::Url,
    auth: Auth<'_>,
    body: &Value,
    timeout: Duration,
) -> Result<Value, RestError> {
    let token = match auth {
        Auth::None => None,
        Auth::Bearer(t) | Auth::ApiKey(t) => Some(t),
    };
    let mut request = match method {
        Method::Get => http.get(url.as_str()),
        Method::Post => http.post(url.as_str()),
        Method::Put => http.put(url.as_str()),
        Method::Patch => http.patch(url.as_str()),
    }
    .timeout(timeout);
    match auth {
        Auth::None => {}
        Auth::Bearer(token) => request = request.bearer_auth(token.expose()),
        Auth::ApiKey(token) => request = request.insert_header(("apikey", token.expose())),
    }
    let sent = match method {
        Method::Get => request.send().await,
        _ => request.send_json(body).await,
    };
    let redact = |text: String| match token {
        Some(t) => text.replace(t.expose(), "<redacted>"),
        None => text,
    };
    let mut response = sent.map_err(|e| match e {
        awc::error::SendRequestError::Timeout => RestError::Timeout(timeout),
        other => RestError::Connect(redact(other.to_string())),
    })?;
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let body = response
        .body()
        .limit(64 * 1024 * 1024)
        .await
        .map_err(|e| RestError::Decode(e.to_string()))?;
    LoopbackReply {
        status,
        retry_after,
        headers: Vec::new(),
        body: body.to_vec(),
    }
    .into_result()
}

/// One call a [`RestClient::loopback`] client makes: what would go over HTTP.
#[derive(Clone)]
pub struct LoopbackCall {
    /// The method.
    pub method: Method,
    /// The URL, with the instance's name as its last segment.
    pub url: url::Url,
    /// The token, for `Authorization: Bearer`.
    pub token: Option<Token>,
    /// The JSON body (ignored for GET).
    pub body: Value,
}

impl std::fmt::Debug for LoopbackCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token stays out, as it does from every other Debug.
        f.debug_struct("LoopbackCall")
            .field("method", &self.method)
            .field("url", &self.url.as_str())
            .finish_non_exhaustive()
    }
}

/// A server's answer to a [`LoopbackCall`]: what would come back over HTTP.
#[derive(Debug, Clone)]
pub struct LoopbackReply {
    /// The HTTP status.
    pub status: u16,
    /// The `Retry-After` header, in seconds.
    pub retry_after: Option<u64>,
    /// Other headers a caller reads (`Content-Type`, `Content-Disposition` of a media), as
    /// (name, value).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl LoopbackReply {
    /// The answer as a call's result: the body as JSON (or as a string when it is not), or the
    /// error its status means. Every answer, over HTTP or not, is read here.
    pub fn into_result(self) -> Result<Value, RestError> {
        let LoopbackReply {
            status,
            retry_after,
            body: bytes,
            ..
        } = self;
        let body: Value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        match status {
            200..=299 => Ok(body),
            401 => Err(RestError::Unauthorized { body }),
            404 => Err(RestError::NotFound { body }),
            429 => Err(RestError::RateLimited {
                retry_after: retry_after.map(Duration::from_secs),
                body,
            }),
            400..=499 => Err(RestError::Rejected { status, body }),
            _ => Err(RestError::Server { status, body }),
        }
    }
}

/// A server in this process that answers a [`RestClient::loopback`] client's calls, with no
/// socket between them: the test kit's simulator.
pub trait Loopback: Send + Sync + 'static {
    /// Answers one call.
    fn answer(
        &self,
        call: LoopbackCall,
    ) -> futures_util::future::LocalBoxFuture<'static, LoopbackReply>;
}
