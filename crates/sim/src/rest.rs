//! The REST routes bots call, answered as the real server answers them.
//!
//! On the legacy server a call passes, in this order (CodeChat's `src/app.module.ts`), the body
//! parser (`express.json`: a body that does not parse is refused with 400 before anything
//! else), the JWT guard (`src/guards/auth.guard.ts`: any failure is a bare `401`), the instance
//! guard (`src/guards/instance.guard.ts`: an unknown instance is a 400), and the route's JSON
//! schema (`dataValidate`, see [`crate::contract`]); only then does the route act. Every step
//! here is that step of the real server, and `docs/conformance.md` lists where each was read.
//! The newer server ([`Protocol::V2`]) has no public source: its routes keep the guards and
//! error shape of its documentation, without the legacy schemas.

use crate::config::Protocol;
use crate::contract::{self, Schema};
use crate::hub::{FindMode, Request, Sim};
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

mod evolution;
mod media;
pub(crate) use evolution::{find_websocket, set_websocket};
pub(crate) use media::media_data;

/// What a route answers: a status, a JSON body and, for a 429, a `Retry-After`.
struct Answer {
    status: StatusCode,
    body: Value,
    retry_after: Option<u64>,
}

impl Answer {
    fn ok(status: StatusCode, body: Value) -> Answer {
        Answer {
            status,
            body,
            retry_after: None,
        }
    }

    /// An error in the server's shape: the legacy `{status, error, message: [...]}` (the
    /// exceptions of CodeChat's `src/exceptions`, passed through `ErrorMiddle.appError`), with
    /// no `message` when there is nothing to say; the newer `{statusCode, error, messages}`.
    fn error(sim: &Sim, status: StatusCode, messages: Vec<Value>) -> Answer {
        let reason = status.canonical_reason().unwrap_or("Error");
        let body = match sim.config().protocol {
            Protocol::Legacy if messages.is_empty() => {
                json!({"status": status.as_u16(), "error": reason})
            }
            Protocol::Legacy => {
                json!({"status": status.as_u16(), "error": reason, "message": messages})
            }
            Protocol::V2 => {
                json!({"statusCode": status.as_u16(), "error": reason, "messages": messages})
            }
            // Evolution's exceptions, through its error middleware: `{status, error, response:
            // {message}}`.
            Protocol::Evolution => {
                let message = match messages.len() {
                    1 => messages.into_iter().next().unwrap_or_default(),
                    _ => Value::Array(messages),
                };
                json!({"status": status.as_u16(), "error": reason, "response": {"message": message}})
            }
        };
        Answer::ok(status, body)
    }

    fn bad_request(sim: &Sim, message: impl Into<Value>) -> Answer {
        Answer::error(sim, StatusCode::BAD_REQUEST, vec![message.into()])
    }

    /// What escapes the real server as a JavaScript `TypeError`: `500` with `{}` (an `Error`
    /// has no enumerable fields for `res.json` to write).
    fn crash() -> Answer {
        Answer::ok(StatusCode::INTERNAL_SERVER_ERROR, json!({}))
    }
}

/// Records the call for [`Sim::requests`]: answered `status` and `answer`.
fn record(req: &HttpRequest, sim: &Sim, raw: &[u8], status: StatusCode, answer: Value) {
    let body = if raw.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(raw)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(raw).into_owned()))
    };
    sim.record_request(Request {
        method: req.method().to_string(),
        path: req.path().to_owned(),
        status: status.as_u16(),
        body,
        answer,
    });
}

/// Answers `answer`, and records the call for [`Sim::requests`].
fn respond(req: &HttpRequest, sim: &Sim, raw: &[u8], answer: Answer) -> HttpResponse {
    record(req, sim, raw, answer.status, answer.body.clone());
    let mut response = HttpResponse::build(answer.status);
    if let Some(seconds) = answer.retry_after {
        response.insert_header((header::RETRY_AFTER, seconds.to_string()));
    }
    response.json(answer.body)
}

/// Which guards a route has.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Guards {
    /// None: `refreshToken`.
    None,
    /// The JWT guard only: `connectionState` (the instance guard lets every URL containing
    /// `/instance/connect` through, and that includes `/instance/connectionState`).
    Jwt,
    /// The JWT guard, then the instance guard: every other route.
    JwtAndInstance,
}

/// The body as `express.json` gives it to a route: `{}` when there is none or it is not JSON
/// by its content type; a refusal when it says it is JSON and does not parse, or is not an
/// object or array (the parser's strict mode).
fn parsed_body(req: &HttpRequest, raw: &[u8]) -> Result<Value, Answer> {
    let json_typed = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|t| t.trim().to_ascii_lowercase())
        .is_some_and(|t| t == "application/json" || t.ends_with("+json"));
    if !json_typed || raw.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    let refused = || {
        // body-parser's error (an http-errors object), as `res.json` writes it.
        Answer::ok(
            StatusCode::BAD_REQUEST,
            json!({"expose": true, "statusCode": 400, "status": 400,
                   "body": String::from_utf8_lossy(raw), "type": "entity.parse.failed"}),
        )
    };
    match serde_json::from_slice::<Value>(raw) {
        Ok(v @ (Value::Object(_) | Value::Array(_))) => Ok(v),
        _ => Err(refused()),
    }
}

/// The JWT guard: `Authorization: Bearer <JWT>` signed by this server, unexpired when expiry is
/// on, for the path's instance and `whatsapp-api`; any failure is a bare 401.
fn jwt_guard(req: &HttpRequest, sim: &Sim, instance: &str) -> Result<(), Answer> {
    let unauthorized = || match sim.config().protocol {
        Protocol::V2 => Answer::error(sim, StatusCode::UNAUTHORIZED, vec!["invalid token".into()]),
        _ => Answer::error(sim, StatusCode::UNAUTHORIZED, Vec::new()),
    };
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let mut parts = authorization.split(' ');
    let (bearer, token) = (parts.next().unwrap_or_default(), parts.next());
    let token = token
        .filter(|_| bearer.eq_ignore_ascii_case("bearer"))
        .filter(|t| t.split('.').count() == 3)
        .ok_or_else(unauthorized)?;
    let claims = sim.verify(token).map_err(|_| unauthorized())?;
    if claims.instance_name.as_deref() != Some(instance)
        || claims.api_name.as_deref() != Some("whatsapp-api")
    {
        return Err(unauthorized());
    }
    Ok(())
}

/// The guards of a route, then its schema (legacy only): the body the route acts on.
fn admit(
    req: &HttpRequest,
    sim: &Sim,
    instance: &str,
    raw: &[u8],
    guards: Guards,
    schema: Schema,
) -> Result<Value, Answer> {
    let mut body = parsed_body(req, raw)?;
    if sim.config().protocol == Protocol::Evolution {
        evolution::guard(req, sim, instance)?;
        return Ok(body);
    }
    if guards != Guards::None {
        jwt_guard(req, sim, instance)?;
    }
    if guards == Guards::JwtAndInstance && sim.instance_id(instance).is_none() {
        return Err(match sim.config().protocol {
            Protocol::V2 => Answer::error(sim, StatusCode::NOT_FOUND, vec!["not found".into()]),
            _ => Answer::bad_request(
                sim,
                format!("The \"{instance}\" instance does not exist or is not connected"),
            ),
        });
    }
    if req.method() == actix_web::http::Method::GET {
        // dataValidate merges the query into the body of a GET.
        if let (Some(object), Ok(query)) = (
            body.as_object_mut(),
            web::Query::<std::collections::HashMap<String, String>>::from_query(req.query_string()),
        ) {
            for (k, v) in query.into_inner() {
                object.insert(k, v.into());
            }
        }
    }
    if sim.config().protocol == Protocol::Legacy {
        if let Err(violations) = contract::check(schema, &body) {
            let messages = violations
                .into_iter()
                .map(|v| json!({"property": v.property, "message": v.message}))
                .collect();
            return Err(Answer::error(sim, StatusCode::BAD_REQUEST, messages));
        }
    }
    Ok(body)
}

/// A route that acts at once: admitted by its guards and schema, then `act` on the instance
/// and the body.
fn route(
    req: &HttpRequest,
    sim: &Sim,
    raw: &[u8],
    (guards, schema): (Guards, Schema),
    act: impl FnOnce(&str, Value) -> Result<Answer, Answer>,
) -> HttpResponse {
    let instance = req.match_info().get("instance").unwrap_or_default();
    let answer =
        admit(req, sim, instance, raw, guards, schema).and_then(|body| act(instance, body));
    respond(req, sim, raw, answer.unwrap_or_else(|a| a))
}

/// The JID the server sends to for `number` (`createJid` in CodeChat's whatsapp.service.ts):
/// a full JID as it is; a Brazilian mobile number of 13 digits whose area code is 31 or more
/// and whose subscriber number starts with 7 to 9 loses its leading 9, as do such Mexican (52)
/// and Argentinian (54) numbers from area code 11; a number with a `-` is a group. `None` for
/// what the real server turns into `undefined@s.whatsapp.net` (any other 13-digit number: a
/// missing `return` in its `formatBRNumber`), which it then finds not on WhatsApp.
fn create_jid(number: &str) -> Option<String> {
    let (user, domain) = number.split_once('@').unwrap_or((number, ""));
    let full = !user.is_empty()
        && user.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && ["s.whatsapp.net", "g.us", "lid", "broadcast", "newsletter"]
            .iter()
            .any(|d| domain.eq_ignore_ascii_case(d));
    if full {
        return Some(number.to_owned());
    }
    let digits13 = number.len() == 13 && number.bytes().all(|b| b.is_ascii_digit());
    if digits13 {
        // (\d{2})(\d{2})\d(\d{8}): country, area, the ninth digit, the subscriber number.
        let (country, area, rest) = (&number[..2], &number[2..4], &number[5..]);
        let joker = rest.as_bytes()[0] - b'0';
        let area: u32 = area.parse().unwrap_or_default();
        return match country {
            "55" if joker < 7 || area < 31 => Some(format!("{number}@s.whatsapp.net")),
            "55" => Some(format!("{country}{area}{rest}@s.whatsapp.net")),
            _ => None,
        };
    }
    if number.contains('-') {
        return Some(format!("{number}@g.us"));
    }
    Some(format!("{number}@s.whatsapp.net"))
}

/// The recipient, or the server's refusal of a number not on WhatsApp (the simulator counts
/// every well-formed number as on WhatsApp).
fn recipient(sim: &Sim, number: &str) -> Result<String, Answer> {
    create_jid(number).ok_or_else(|| {
        Answer::bad_request(
            sim,
            json!({"exists": false, "jid": "undefined@s.whatsapp.net"}),
        )
    })
}

/// The longest "typing" the simulator plays before a send (the real server waits as long as
/// it is told).
const MAX_TYPING_MS: u64 = 60_000;

/// `POST /message/sendText/{instance}` (and the newer `/instance/{instance}/send/text`): answers
/// with the sent message and emits it on `send.message` and `messages.upsert`, as the server does.
pub(crate) async fn send_text(
    req: HttpRequest,
    path: web::Path<String>,
    raw: web::Bytes,
    sim: web::Data<Sim>,
) -> HttpResponse {
    let instance = path.into_inner();
    let answer = match send_text_answer(&req, &sim, &instance, &raw).await {
        Ok(a) | Err(a) => a,
    };
    respond(&req, &sim, &raw, answer)
}

async fn send_text_answer(
    req: &HttpRequest,
    sim: &Sim,
    instance: &str,
    raw: &[u8],
) -> Result<Answer, Answer> {
    let mut body = admit(
        req,
        sim,
        instance,
        raw,
        Guards::JwtAndInstance,
        Schema::SendText,
    )?;
    if sim.config().protocol == Protocol::Evolution {
        body = evolution::send_text_body(sim, &body)?;
    }
    let (Some(number), Some(text)) = (
        body["number"].as_str().filter(|n| !n.trim().is_empty()),
        body["textMessage"]["text"].as_str(),
    ) else {
        // Only the newer server gets here (the legacy schema requires both).
        return Err(Answer::bad_request(
            sim,
            "number and textMessage.text are required",
        ));
    };
    let options = &body["options"];
    let quoted = quoted(sim, options)?;
    let jid = recipient(sim, number)?;
    let failure = sim.take_send_failure();
    let refusal = |failure: crate::hub::SendFailure| {
        let status =
            StatusCode::from_u16(failure.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut answer = Answer::error(
            sim,
            status,
            vec!["refused by the simulator's control API".into()],
        );
        answer.retry_after = failure.retry_after;
        answer
    };
    if let Some(failure) = failure.filter(|f| !f.delivered) {
        return Err(refusal(failure));
    }
    let typing_ms = options["delay"]
        .as_u64()
        .unwrap_or_default()
        .min(MAX_TYPING_MS);
    if typing_ms > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(typing_ms)).await;
    }
    let mut content = json!({"text": text});
    if let Some(quoted) = &quoted {
        content["contextInfo"] = context_info(quoted);
    }
    let message = sent_message(sim, instance, &jid, "extendedTextMessage", content, options);
    let key_id = message["keyId"].as_str().unwrap_or_default();
    sim.record_sent(
        instance,
        &jid,
        text,
        key_id,
        typing_ms,
        quoted
            .as_ref()
            .and_then(|q| q["keyId"].as_str())
            .map(str::to_owned),
    );
    tracing::info!(
        instance = %eventsock_core::human::escaped(instance),
        to = %eventsock_core::human::escaped(&jid),
        "sent: {}",
        eventsock_core::human::escaped(text)
    );
    // Evolution's Baileys socket does not emit its own sends (`emitOwnEvents: false`): only
    // `send.message` tells of them.
    let events: &[&str] = match sim.config().protocol {
        Protocol::Evolution => {
            // Saved all the same (`DATABASE_SAVE_DATA_NEW_MESSAGE`): findMessages finds it.
            if sim.saving() {
                sim.save(instance, &message);
            }
            &["send.message"]
        }
        _ => &["send.message", "messages.upsert"],
    };
    for event in events {
        sim.emit(instance, event, &message);
    }
    sim.acknowledge(instance, &message);
    // Sent, and the answer lost: what a client sees when the server fails after sending.
    if let Some(failure) = failure {
        return Err(refusal(failure));
    }
    let (status, message) = match sim.config().protocol {
        Protocol::V2 => (StatusCode::OK, message),
        Protocol::Legacy => (StatusCode::CREATED, message),
        Protocol::Evolution => (
            StatusCode::CREATED,
            sim.evolution_message(instance, &message),
        ),
    };
    Ok(Answer::ok(status, message))
}

/// The message a send quotes (`sendMessageWithTyping`): the saved row `quotedMessageId` names,
/// which needs a server that saves messages, or the `quotedMessage` object as given.
fn quoted(sim: &Sim, options: &Value) -> Result<Option<Value>, Answer> {
    // JavaScript's `if (options?.quotedMessageId)`: 0 quotes nothing.
    if let Some(id) = options["quotedMessageId"].as_i64().filter(|id| *id != 0) {
        if !sim.saving() {
            return Err(Answer::bad_request(
                sim,
                "The DATABASE_SAVE_DATA_NEW_MESSAGE environment variable is disabled",
            ));
        }
        return match sim.stored_row(id) {
            Some(row) => Ok(Some(row)),
            None => Err(Answer::bad_request(sim, "Quoted message not found")),
        };
    }
    Ok(options
        .get("quotedMessage")
        .filter(|q| q.is_object())
        .cloned())
}

/// The `contextInfo` WhatsApp gives a message that quotes `quoted` (a `Message` row): the
/// quoted id, its sender, and its body under its type (`conversation` becomes
/// `extendedTextMessage`, as the server renames it).
fn context_info(quoted: &Value) -> Value {
    let kind = match quoted["messageType"].as_str() {
        Some("conversation") | None => "extendedTextMessage",
        Some(other) => other,
    };
    let mut quoted_message = serde_json::Map::new();
    quoted_message.insert(kind.to_owned(), quoted["content"].clone());
    json!({
        "stanzaId": quoted["keyId"],
        "participant": quoted["keyRemoteJid"],
        "quotedMessage": quoted_message,
    })
}

/// A message this instance sent, as the server answers it, emits it and saves it: the row `id`
/// only when it saves messages, `externalAttributes` only when given.
fn sent_message(
    sim: &Sim,
    instance: &str,
    jid: &str,
    kind: &str,
    content: Value,
    options: &Value,
) -> Value {
    let key_id = match options["messageId"].as_str().map(str::trim) {
        Some(own) if !own.is_empty() => own.to_owned(),
        _ => format!("01JSIM{:020}", sim.next_message_id()),
    };
    let mut message = json!({
        "keyId": key_id,
        "keyFromMe": true,
        "keyRemoteJid": jid,
        "messageType": kind,
        "content": content,
        "messageTimestamp": crate::auth::now_secs(),
        "instanceId": sim.instance_id(instance),
        "device": "web",
        "isGroup": jid.ends_with("@g.us"),
    });
    let obj = message.as_object_mut().expect("a json! object");
    if sim.saving() {
        obj.insert("id".into(), sim.next_message_id().into());
    }
    if sim.config().protocol == Protocol::V2 {
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
    if let Some(attrs) = options.get("externalAttributes").filter(|a| !a.is_null()) {
        obj.insert("externalAttributes".into(), attrs.clone());
    }
    message
}

/// `POST /message/sendReaction/{instance}`: sent like any message (`sendMessageWithTyping` to
/// the key's chat), so emitted and saved too; answers 201 with the reaction message.
pub(crate) async fn send_reaction(
    req: HttpRequest,
    raw: web::Bytes,
    sim: web::Data<Sim>,
) -> HttpResponse {
    let checks = (Guards::JwtAndInstance, Schema::SendReaction);
    route(&req, &sim, &raw, checks, |instance, body| {
        let evolution = sim.config().protocol == Protocol::Evolution;
        // Evolution's body is `{key, reaction}`; CodeChat's wraps it in `reactionMessage`.
        let reaction = match evolution {
            true => evolution::reaction_body(&sim, &body)?,
            false => body["reactionMessage"].clone(),
        };
        let jid = recipient(
            &sim,
            reaction["key"]["remoteJid"].as_str().unwrap_or_default(),
        )?;
        let content = json!({"key": reaction["key"], "text": reaction["reaction"]});
        let message = sent_message(&sim, instance, &jid, "reactionMessage", content, &json!({}));
        // Evolution's own sends come back as `send.message` only.
        let events: &[&str] = match evolution {
            true => &["send.message"],
            false => &["send.message", "messages.upsert"],
        };
        for event in events {
            sim.emit(instance, event, &message);
        }
        sim.acknowledge(instance, &message);
        let answer = match evolution {
            true => sim.evolution_message(instance, &message),
            false => message,
        };
        Ok(Answer::ok(StatusCode::CREATED, answer))
    })
}

/// `POST /chat/whatsappNumbers/{instance}` (its guards, then `whatsappNumberSchema`): 200 with
/// what the real server's `whatsappNumber` answers for each number, in order (see
/// [`on_whatsapp`]). Without `numbers` the legacy server crashes (500 `{}`: it iterates over
/// `undefined`), though its schema lets the body through.
pub(crate) async fn whatsapp_numbers(
    req: HttpRequest,
    raw: web::Bytes,
    sim: web::Data<Sim>,
) -> HttpResponse {
    let checks = (Guards::JwtAndInstance, Schema::WhatsappNumbers);
    route(&req, &sim, &raw, checks, |_, body| {
        let numbers: Option<Vec<&str>> = body["numbers"]
            .as_array()
            .and_then(|n| n.iter().map(Value::as_str).collect());
        let Some(numbers) = numbers else {
            return Err(match sim.config().protocol {
                // Only the newer server gets here with numbers that are not strings.
                Protocol::V2 => Answer::bad_request(&sim, "numbers must be an array of strings"),
                _ => Answer::crash(),
            });
        };
        let answer = numbers.into_iter().flat_map(|n| on_whatsapp(&sim, n));
        Ok(Answer::ok(StatusCode::OK, answer.collect()))
    })
}

/// What the real server's `whatsappNumber` answers for `number` (`OnWhatsAppDto`s: `{exists,
/// jid, lid?, name?}`, undefined members left out), the simulator counting every phone number
/// as on WhatsApp and every group as one the instance is in:
///
/// - a phone number: `{exists: true, jid}`, `jid` as `createJid` makes it, with the `lid`
///   paired with it ([`Sim::pair_lid`]) when there is one;
/// - a LID: `{exists: true, jid: "", lid}`, and then, as the real server goes on to ask
///   WhatsApp about it as a phone number (`onWhatsApp` skips LIDs, and reading `exists` of
///   nothing throws into its `catch`), `{exists: false, jid: number}`: two entries;
/// - a group: `{exists: true, jid, lid: ""}` (no `name`: the simulator knows no subjects);
/// - a broadcast list: `{exists: true, jid}`;
/// - a number `createJid` turns into `undefined@s.whatsapp.net` (see [`create_jid`]):
///   `{exists: false, jid: number}`.
fn on_whatsapp(sim: &Sim, number: &str) -> Vec<Value> {
    let Some(jid) = create_jid(number) else {
        return vec![json!({"exists": false, "jid": number})];
    };
    let mut answer = Vec::new();
    let lid = jid.ends_with("@lid");
    if lid {
        answer.push(json!({"exists": true, "jid": "", "lid": jid}));
    }
    if jid.ends_with("@g.us") {
        answer.push(json!({"exists": true, "jid": jid, "lid": ""}));
    } else if jid.contains("@broadcast") {
        answer.push(json!({"exists": true, "jid": jid}));
    } else if lid {
        answer.push(json!({"exists": false, "jid": number}));
    } else {
        let mut found = json!({"exists": true, "jid": jid});
        if let Some(lid) = sim.lid_of(&jid) {
            found["lid"] = lid.into();
        }
        answer.push(found);
    }
    answer
}

/// `PUT /chat/markMessageAsRead/{instance}`: passes on the keys of groups and LIDs only, as the
/// real server does (the others are dropped without a word), and answers success either way.
pub(crate) async fn mark_as_read(
    req: HttpRequest,
    raw: web::Bytes,
    sim: web::Data<Sim>,
) -> HttpResponse {
    let checks = (Guards::JwtAndInstance, Schema::MarkMessageAsRead);
    route(&req, &sim, &raw, checks, |_, body| {
        let evolution = sim.config().protocol == Protocol::Evolution;
        for key in body["readMessages"].as_array().into_iter().flatten() {
            let jid = key["remoteJid"].as_str().unwrap_or_default();
            // Evolution passes on a group's or a phone number's keys and drops a LID's;
            // CodeChat's filter keeps a group's and a LID's.
            let passed = match evolution {
                true => jid.ends_with("@g.us") || jid.ends_with("@s.whatsapp.net"),
                false => jid.ends_with("@g.us") || jid.ends_with("@lid"),
            };
            if passed {
                sim.mark_read(key.clone());
            }
        }
        let read = json!({"message": "Read messages", "read": "success"});
        let status = if evolution {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        Ok(Answer::ok(status, read))
    })
}

/// `PATCH /chat/updatePresence/{instance}`: `{message: "success"}`; without a `number` the
/// real server crashes (500 `{}`), though its schema lets it through.
pub(crate) async fn update_presence(
    req: HttpRequest,
    raw: web::Bytes,
    sim: web::Data<Sim>,
) -> HttpResponse {
    let checks = (Guards::JwtAndInstance, Schema::UpdatePresence);
    route(&req, &sim, &raw, checks, |_, body| {
        let number = body["number"].as_str().ok_or_else(Answer::crash)?;
        recipient(&sim, number)?;
        Ok(Answer::ok(StatusCode::OK, json!({"message": "success"})))
    })
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
/// `messageTimestamp` (its `sort` is accepted and ignored), `offset` per page (50 by default)
/// and `page` from 1, as `{messages: {total, pages, currentPage, records}}`. With saving off
/// there is nothing to find.
pub(crate) async fn find_messages(
    req: HttpRequest,
    path: web::Path<String>,
    raw: web::Bytes,
    sim: web::Data<Sim>,
) -> HttpResponse {
    sim.count_find_request();
    let instance = path.into_inner();
    let query = match admit(
        &req,
        &sim,
        &instance,
        &raw,
        Guards::JwtAndInstance,
        Schema::FindMessages,
    ) {
        Ok(q) => q,
        Err(answer) => return respond(&req, &sim, &raw, answer),
    };
    let positive = |k: &str| query[k].as_u64().filter(|n| *n > 0);
    let (offset, page) = (positive("offset"), positive("page"));
    match sim.find_mode() {
        FindMode::Normal => {}
        FindMode::Hang => return std::future::pending().await,
        FindMode::Garbage => {
            return HttpResponse::Ok()
                .content_type("application/json")
                .body("<html>502 Bad Gateway</html>")
        }
        FindMode::Flood => {
            let asked = offset.unwrap_or(50).min(10_000);
            let page = page.unwrap_or(1);
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
    let offset = offset.unwrap_or(50);
    let page = page.unwrap_or(1);
    let skip = usize::try_from(offset.saturating_mul(page - 1)).unwrap_or(usize::MAX);
    let take = usize::try_from(offset).unwrap_or(usize::MAX);
    let (total, records) = if sim.config().protocol == Protocol::Evolution {
        let filter = evolution::Filter::read(&query["where"]);
        let (total, rows) = sim.find_stored(&instance, |m| filter.keeps(m), skip, take);
        let records = rows
            .iter()
            .map(|r| evolution::record(&sim, &instance, r))
            .collect();
        (total, records)
    } else {
        let filter = query["where"].as_object();
        let keep = |m: &Value| {
            FILTERS
                .iter()
                .filter_map(|k| Some((k, filter?.get(*k)?)))
                .all(|(k, v)| m.get(*k) == Some(v))
        };
        sim.find_stored(&instance, keep, skip, take)
    };
    let total = total as u64;
    let answer = Answer::ok(
        StatusCode::OK,
        json!({"messages": {
            "total": total,
            "pages": total.div_ceil(offset),
            "currentPage": page,
            "records": records,
        }}),
    );
    respond(&req, &sim, &raw, answer)
}

/// `PUT /instance/refreshToken/{instance}`, with no guard, as on the real server: the instance in
/// the path is not checked; `oldToken` must be signed by this server (expired or not) and be the
/// stored token. Answers 201 with the new `Auth` row; 400 `Invalid "oldToken"` otherwise.
pub(crate) async fn refresh_token(
    req: HttpRequest,
    raw: web::Bytes,
    sim: web::Data<Sim>,
) -> HttpResponse {
    route(
        &req,
        &sim,
        &raw,
        (Guards::None, Schema::RefreshToken),
        |_, body| {
            let old = body["oldToken"].as_str().filter(|t| !t.is_empty());
            let old = old.ok_or_else(|| Answer::bad_request(&sim, "oldToken is required"))?;
            let (token, instance_id) = sim
                .refresh_token(old)
                .ok_or_else(|| Answer::bad_request(&sim, "Invalid \"oldToken\""))?;
            let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            Ok(Answer::ok(
                StatusCode::CREATED,
                json!({
                    "id": instance_id,
                    "token": token,
                    "createdAt": now,
                    "updatedAt": now,
                    "instanceId": instance_id,
                }),
            ))
        },
    )
}

/// `GET /instance/connectionState/{instance}`: the JWT guard only (the real server's instance
/// guard skips this route), so a 200 says the token is accepted for this instance. Answers the
/// instance's `{state, statusReason}`; `{state: "close", statusReason: 400}` for an instance
/// the server has not loaded.
pub(crate) async fn connection_state(req: HttpRequest, sim: web::Data<Sim>) -> HttpResponse {
    route(
        &req,
        &sim,
        b"",
        (Guards::Jwt, Schema::InstanceName),
        |instance, _| {
            let state = match sim.instance_id(instance) {
                Some(_) => json!({"state": "open", "statusReason": 200}),
                None => json!({"state": "close", "statusReason": 400}),
            };
            Ok(Answer::ok(StatusCode::OK, state))
        },
    )
}
