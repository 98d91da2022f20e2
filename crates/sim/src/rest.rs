//! The REST endpoint bots reply through: send a text message.

use crate::config::Protocol;
use crate::hub::{FindMode, Sim};
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

/// Body of `POST /message/sendText/{instance}`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SendText {
    number: Option<String>,
    text_message: Option<TextMessage>,
    #[serde(default)]
    options: Option<SendOptions>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct TextMessage {
    text: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SendOptions {
    external_attributes: Option<Value>,
    quoted_message_id: Option<Value>,
    /// The sender's own WhatsApp id for the message (the real server's `options.messageId`).
    message_id: Option<String>,
    /// Milliseconds of "typing" before the message goes out (`options.delay`).
    delay: Option<u64>,
}

/// The longest "typing" the simulator plays before a send (the real server waits as long as
/// it is told).
const MAX_TYPING_MS: u64 = 60_000;

fn error(sim: &Sim, status: StatusCode, message: &str) -> HttpResponse {
    let body = match sim.config().protocol {
        Protocol::Legacy => {
            json!({"status": status.as_u16(), "error": status.canonical_reason(), "message": [message]})
        }
        Protocol::V2 => {
            json!({"statusCode": status.as_u16(), "error": status.canonical_reason(), "messages": [message]})
        }
    };
    HttpResponse::build(status).json(body)
}

/// Checks `Authorization: Bearer` against the instance in the path, as the server's guard does.
fn authorize(
    req: &HttpRequest,
    sim: &Sim,
    instance: &str,
) -> Result<(), (StatusCode, &'static str)> {
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or((StatusCode::UNAUTHORIZED, "missing bearer token"))?;
    let claims = sim
        .verify(token)
        .map_err(|_| (StatusCode::UNAUTHORIZED, "invalid token"))?;
    if claims.instance_name.as_deref() != Some(instance)
        || claims.api_name.as_deref() != Some("whatsapp-api")
    {
        return Err((
            StatusCode::UNAUTHORIZED,
            "the token is not for this instance",
        ));
    }
    if sim.instance_id(instance).is_none() {
        return Err((StatusCode::NOT_FOUND, "instance not found"));
    }
    Ok(())
}

/// `POST /message/sendText/{instance}` (and the newer `/instance/{instance}/send/text`): answers
/// with the sent message and emits it on `send.message` and `messages.upsert`, as the server does.
pub(crate) async fn send_text(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    sim: web::Data<Sim>,
) -> HttpResponse {
    let instance = path.into_inner();
    if let Err((status, message)) = authorize(&req, &sim, &instance) {
        return error(&sim, status, message);
    }
    let body: SendText = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => return error(&sim, StatusCode::BAD_REQUEST, &format!("invalid body: {e}")),
    };
    let Some(number) = body.number.filter(|n| !n.trim().is_empty()) else {
        return error(&sim, StatusCode::BAD_REQUEST, "number is required");
    };
    let Some(text) = body.text_message.and_then(|t| t.text) else {
        return error(
            &sim,
            StatusCode::BAD_REQUEST,
            "textMessage.text is required",
        );
    };
    let failure = sim.take_send_failure();
    let refusal = |failure: crate::hub::SendFailure| {
        let status =
            StatusCode::from_u16(failure.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = error(&sim, status, "refused by the simulator's control API");
        if let Some(seconds) = failure.retry_after {
            if let Ok(value) = header::HeaderValue::from_str(&seconds.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
        }
        response
    };
    if let Some(failure) = failure.filter(|f| !f.delivered) {
        return refusal(failure);
    }
    let options = body.options.unwrap_or_default();
    let jid = if number.contains('@') {
        number
    } else {
        format!("{}@s.whatsapp.net", number.trim_start_matches('+'))
    };
    let typing_ms = options.delay.unwrap_or(0).min(MAX_TYPING_MS);
    if typing_ms > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(typing_ms)).await;
    }
    let message = sent_message(&sim, &instance, &jid, &text, &options);
    let key_id = message["keyId"].as_str().unwrap_or_default();
    sim.record_sent(&instance, &jid, &text, key_id, typing_ms);
    tracing::info!(
        instance = %eventsock_core::human::escaped(&instance),
        to = %eventsock_core::human::escaped(&jid),
        "sent: {}",
        eventsock_core::human::escaped(&text)
    );
    for event in ["send.message", "messages.upsert"] {
        sim.emit(&instance, event, &message);
    }
    // Sent, and the answer lost: what a client sees when the server fails after sending.
    if let Some(failure) = failure {
        return refusal(failure);
    }
    let status = match sim.config().protocol {
        Protocol::Legacy => StatusCode::CREATED,
        Protocol::V2 => StatusCode::OK,
    };
    HttpResponse::build(status).json(message)
}

fn sent_message(sim: &Sim, instance: &str, jid: &str, text: &str, options: &SendOptions) -> Value {
    let id = sim.next_message_id();
    let key_id = match options.message_id.as_deref().map(str::trim) {
        Some(own) if !own.is_empty() => own.to_owned(),
        _ => format!("01JSIM{id:020}"),
    };
    let mut message = json!({
        "keyId": key_id,
        "keyFromMe": true,
        "keyRemoteJid": jid,
        "content": {"text": text},
        "messageTimestamp": crate::auth::now_secs(),
        "instanceId": sim.instance_id(instance),
        "device": "web",
        "isGroup": jid.ends_with("@g.us"),
        "id": id,
    });
    let obj = message.as_object_mut().expect("a json! object");
    match sim.config().protocol {
        Protocol::Legacy => {
            obj.insert("messageType".into(), "extendedTextMessage".into());
            if let Some(quoted) = &options.quoted_message_id {
                obj["content"]["contextInfo"] = json!({"stanzaId": quoted});
            }
        }
        Protocol::V2 => {
            obj.insert("messageType".into(), "conversation".into());
            for k in [
                "keyLid",
                "keyParticipant",
                "keyParticipantLid",
                "pushName",
                "metadata",
            ] {
                obj.insert(k.into(), Value::Null);
            }
        }
    }
    if let Some(attrs) = &options.external_attributes {
        obj.insert("externalAttributes".into(), attrs.clone());
    }
    message
}

/// Checks the guard, then parses a JSON body (an empty body reads as `{}`).
fn guarded<T: serde::de::DeserializeOwned>(
    req: &HttpRequest,
    sim: &Sim,
    instance: &str,
    body: &[u8],
) -> Result<T, (StatusCode, String)> {
    authorize(req, sim, instance).map_err(|(s, m)| (s, m.to_owned()))?;
    let body = if body.is_empty() {
        b"{}".as_slice()
    } else {
        body
    };
    serde_json::from_slice(body)
        .map_err(|e| (StatusCode::BAD_REQUEST, format!("invalid body: {e}")))
}

/// A message key as the REST API takes it.
#[derive(Debug, Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Key {
    remote_jid: String,
    from_me: bool,
    id: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SendReaction {
    reaction_message: ReactionMessage,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ReactionMessage {
    key: Key,
    reaction: String,
}

/// `POST /message/sendReaction/{instance}`: answers 201 with the reaction message.
pub(crate) async fn send_reaction(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    sim: web::Data<Sim>,
) -> HttpResponse {
    let instance = path.into_inner();
    let body: SendReaction = match guarded(&req, &sim, &instance, &body) {
        Ok(b) => b,
        Err((status, message)) => return error(&sim, status, &message),
    };
    let id = sim.next_message_id();
    HttpResponse::Created().json(json!({
        "keyId": format!("01JSIM{id:020}"),
        "keyFromMe": true,
        "keyRemoteJid": body.reaction_message.key.remote_jid,
        "messageType": "reactionMessage",
        "content": {"key": body.reaction_message.key, "text": body.reaction_message.reaction},
        "messageTimestamp": crate::auth::now_secs(),
        "instanceId": sim.instance_id(&instance),
        "device": "web",
        "id": id,
    }))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ReadMessages {
    read_messages: Vec<Key>,
}

/// `PUT /chat/markMessageAsRead/{instance}`.
pub(crate) async fn mark_as_read(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    sim: web::Data<Sim>,
) -> HttpResponse {
    let instance = path.into_inner();
    match guarded::<ReadMessages>(&req, &sim, &instance, &body) {
        Ok(b) if b.read_messages.is_empty() => {
            error(&sim, StatusCode::BAD_REQUEST, "readMessages is empty")
        }
        Ok(_) => HttpResponse::Ok().json(json!({"message": "Read messages", "read": "success"})),
        Err((status, message)) => error(&sim, status, &message),
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct UpdatePresence {
    number: String,
    presence: String,
}

/// `PATCH /chat/updatePresence/{instance}`.
pub(crate) async fn update_presence(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    sim: web::Data<Sim>,
) -> HttpResponse {
    let instance = path.into_inner();
    const PRESENCES: &[&str] = &[
        "available",
        "unavailable",
        "composing",
        "recording",
        "paused",
    ];
    match guarded::<UpdatePresence>(&req, &sim, &instance, &body) {
        Ok(b) if !PRESENCES.contains(&b.presence.as_str()) => error(
            &sim,
            StatusCode::BAD_REQUEST,
            &format!("presence must be one of {PRESENCES:?}"),
        ),
        Ok(b) => HttpResponse::Ok().json(json!({"number": b.number, "presence": b.presence})),
        Err((status, message)) => error(&sim, status, &message),
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct FindMessages {
    #[serde(default, rename = "where")]
    filter: serde_json::Map<String, Value>,
    offset: Option<u64>,
    page: Option<u64>,
}

/// The `where` members the real server filters on (`fetchMessages` in CodeChat's
/// whatsapp.service.ts); any other member is ignored there too.
const FILTERS: [&str; 6] = [
    "id",
    "keyId",
    "keyFromMe",
    "keyRemoteJid",
    "device",
    "messageType",
];

/// `POST /chat/findMessages/{instance}`, as the real server answers it: the saved messages (see
/// [`Sim::emit`]) whose columns equal the `where` members it filters on, newest first by
/// `messageTimestamp`, `offset` per page (50 by default) and `page` from 1, as
/// `{messages: {total, pages, currentPage, records}}`. With saving off there is nothing to find.
pub(crate) async fn find_messages(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    sim: web::Data<Sim>,
) -> HttpResponse {
    sim.count_find_request();
    let instance = path.into_inner();
    let query: FindMessages = match guarded(&req, &sim, &instance, &body) {
        Ok(q) => q,
        Err((status, message)) => return error(&sim, status, &message),
    };
    match sim.find_mode() {
        FindMode::Normal => {}
        FindMode::Hang => return std::future::pending().await,
        FindMode::Garbage => {
            return HttpResponse::Ok()
                .content_type("application/json")
                .body("<html>502 Bad Gateway</html>")
        }
        FindMode::Flood => {
            let asked = query.offset.filter(|o| *o > 0).unwrap_or(50).min(10_000);
            let page = query.page.unwrap_or(1);
            let now = crate::auth::now_secs();
            let records: Vec<Value> = (0..asked * 10)
                .map(|i| {
                    json!({"keyId": format!("FLOOD{page}-{i}"), "keyFromMe": false,
                                "keyRemoteJid": "5511988887777@s.whatsapp.net",
                                "content": {"text": "flood"}, "messageTimestamp": now})
                })
                .collect();
            return HttpResponse::Ok().json(json!({"messages": {
                "total": u64::MAX, "pages": u64::MAX, "currentPage": page, "records": records,
            }}));
        }
    }
    let offset = query.offset.filter(|o| *o > 0).unwrap_or(50);
    let page = query.page.filter(|p| *p > 0).unwrap_or(1);
    let skip = usize::try_from(offset.saturating_mul(page - 1)).unwrap_or(usize::MAX);
    let take = usize::try_from(offset).unwrap_or(usize::MAX);
    let keep = |m: &Value| {
        FILTERS
            .iter()
            .filter_map(|k| Some((k, query.filter.get(*k)?)))
            .all(|(k, v)| m.get(*k) == Some(v))
    };
    let (total, records) = sim.find_stored(&instance, keep, skip, take);
    let total = total as u64;
    HttpResponse::Ok().json(json!({"messages": {
        "total": total,
        "pages": total.div_ceil(offset),
        "currentPage": page,
        "records": records,
    }}))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RefreshToken {
    old_token: Option<String>,
}

/// `PUT /instance/refreshToken/{instance}`, with no guard, as on the real server: the instance in
/// the path is not checked; `oldToken` must be signed by this server (expired or not) and be the
/// stored token. Answers 201 with the new `Auth` row; 400 `Invalid "oldToken"` otherwise.
pub(crate) async fn refresh_token(body: web::Bytes, sim: web::Data<Sim>) -> HttpResponse {
    let old = serde_json::from_slice::<RefreshToken>(&body)
        .ok()
        .and_then(|b| b.old_token)
        .filter(|t| !t.is_empty());
    let Some(old) = old else {
        return error(&sim, StatusCode::BAD_REQUEST, "oldToken is required");
    };
    let Some((token, instance_id)) = sim.refresh_token(&old) else {
        return error(&sim, StatusCode::BAD_REQUEST, "Invalid \"oldToken\"");
    };
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    HttpResponse::Created().json(json!({
        "id": instance_id,
        "token": token,
        "createdAt": now,
        "updatedAt": now,
        "instanceId": instance_id,
    }))
}

/// `GET /instance/connectionState/{instance}`: the JWT guard only (the real server's instance
/// guard skips this route), so a 200 says the token is accepted for this instance.
pub(crate) async fn connection_state(
    req: HttpRequest,
    path: web::Path<String>,
    sim: web::Data<Sim>,
) -> HttpResponse {
    let instance = path.into_inner();
    match authorize(&req, &sim, &instance) {
        Err((StatusCode::UNAUTHORIZED, message)) => error(&sim, StatusCode::UNAUTHORIZED, message),
        Err(_) => HttpResponse::Ok().json(json!({"state": "close", "statusReason": 400})),
        Ok(()) => HttpResponse::Ok()
            .json(json!({"instance": {"instanceName": instance, "state": "open"}})),
    }
}
