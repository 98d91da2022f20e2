//! Evolution API's REST guard and bodies: the `apikey` header (the global key or the
//! instance's token), 404 for an unknown instance, and its routes' bodies turned into the ones
//! the simulator's routes act on. Read in `src/api/guards/auth.guard.ts`,
//! `instance.guard.ts`, `src/validate/message.schema.ts` and `chat.schema.ts` of
//! `EvolutionAPI/evolution-api` 2.3.6.

use super::{respond, Answer};
use crate::hub::Sim;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

/// The guards, in the server's order: an instance that exists (404, asked before the key),
/// then an `apikey` header that is the global key or the instance's token (401).
pub(super) fn guard(req: &HttpRequest, sim: &Sim, instance: &str) -> Result<(), Answer> {
    if sim.instance_id(instance).is_none() {
        return Err(Answer::error(
            sim,
            StatusCode::NOT_FOUND,
            vec![json!([format!(
                "The \"{instance}\" instance does not exist"
            )])],
        ));
    }
    let key = req
        .headers()
        .get("apikey")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !sim.accepts_key(key, Some(instance)) {
        return Err(Answer::error(
            sim,
            StatusCode::UNAUTHORIZED,
            vec!["Unauthorized".into()],
        ));
    }
    Ok(())
}

/// A schema violation, as Evolution's `dataValidate` answers it.
fn invalid(sim: &Sim, message: &str) -> Answer {
    Answer::error(sim, StatusCode::BAD_REQUEST, vec![json!([[message]])])
}

/// `sendText`'s body (`{number, text, delay?, quoted?, linkPreview?, ...}`, no client-chosen
/// id) as the simulator's send takes it (`{number, textMessage: {text}, options}`).
pub(super) fn send_text_body(sim: &Sim, body: &Value) -> Result<Value, Answer> {
    let Some(number) = body["number"].as_str() else {
        return Err(invalid(sim, "instance requires property \"number\""));
    };
    let Some(text) = body["text"].as_str() else {
        return Err(invalid(sim, "instance requires property \"text\""));
    };
    if text.trim().is_empty() {
        return Err(Answer::bad_request(sim, "Text is required"));
    }
    let mut options = json!({});
    if let Some(delay) = body.get("delay").filter(|d| !d.is_null()) {
        if !delay.is_u64() {
            return Err(invalid(sim, "instance.delay is not of a type(s) integer"));
        }
        options["delay"] = delay.clone();
    }
    if let Some(quoted) = body.get("quoted").filter(|q| !q.is_null()) {
        let Some(id) = quoted["key"]["id"].as_str().filter(|id| !id.is_empty()) else {
            return Err(invalid(sim, "instance.quoted.key requires property \"id\""));
        };
        let text = quoted["message"]["conversation"]
            .as_str()
            .unwrap_or_default();
        options["quotedMessage"] = json!({
            "keyId": id,
            "keyFromMe": quoted["key"]["fromMe"].as_bool().unwrap_or(false),
            "keyRemoteJid": quoted["key"]["remoteJid"].as_str().unwrap_or(number),
            "messageType": "conversation",
            "content": {"text": text},
        });
    }
    Ok(json!({"number": number, "textMessage": {"text": text}, "options": options}))
}

/// `sendReaction`'s body (`{key: {remoteJid, fromMe, id}, reaction}`, each key field required,
/// `message.schema.ts`), as the simulator's reaction takes it.
pub(super) fn reaction_body(sim: &Sim, body: &Value) -> Result<Value, Answer> {
    for field in ["remoteJid", "fromMe", "id"] {
        if body["key"].get(field).is_none() {
            return Err(invalid(
                sim,
                &format!("instance.key requires property \"{field}\""),
            ));
        }
    }
    let Some(reaction) = body["reaction"].as_str() else {
        return Err(invalid(sim, "instance requires property \"reaction\""));
    };
    Ok(json!({"key": body["key"], "reaction": reaction}))
}

/// `POST /websocket/set/{instance}`: `{"websocket": {"enabled", "events"}}`; 201 with the
/// stored settings.
pub(crate) async fn set_websocket(
    req: HttpRequest,
    raw: web::Bytes,
    sim: web::Data<Sim>,
) -> HttpResponse {
    let instance = req
        .match_info()
        .get("instance")
        .unwrap_or_default()
        .to_owned();
    let answer = (|| {
        guard(&req, &sim, &instance)?;
        let body: Value = serde_json::from_slice(&raw).unwrap_or_default();
        let ws = &body["websocket"];
        let Some(enabled) = ws["enabled"].as_bool() else {
            return Err(invalid(
                &sim,
                "instance.websocket requires property \"enabled\"",
            ));
        };
        let events: Vec<&str> = ws["events"]
            .as_array()
            .map(|e| e.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        sim.set_websocket(&instance, enabled, &events);
        let stored = sim
            .websocket(&instance)
            .to_json(&sim.instance_uuid(&instance));
        Ok(Answer::ok(StatusCode::CREATED, stored))
    })();
    respond(&req, &sim, &raw, answer.unwrap_or_else(|a| a))
}

/// `GET /websocket/find/{instance}`: the settings.
pub(crate) async fn find_websocket(req: HttpRequest, sim: web::Data<Sim>) -> HttpResponse {
    let instance = req
        .match_info()
        .get("instance")
        .unwrap_or_default()
        .to_owned();
    let answer = guard(&req, &sim, &instance).map(|()| {
        let stored = sim
            .websocket(&instance)
            .to_json(&sim.instance_uuid(&instance));
        Answer::ok(StatusCode::OK, stored)
    });
    respond(&req, &sim, &[], answer.unwrap_or_else(|a| a))
}

/// `findMessages`' `where` (chat.schema.ts, and the Prisma query of `fetchMessages` in
/// whatsapp.baileys.service.ts): the key's fields (`fromMe` only when true), the type, and a
/// `messageTimestamp` range, both ends needed, ISO dates or milliseconds.
pub(super) struct Filter {
    id: Option<String>,
    remote_jid: Option<String>,
    from_me: bool,
    message_type: Option<String>,
    /// Seconds, both ends included.
    range: Option<(i64, i64)>,
}

impl Filter {
    pub(super) fn read(filter: &Value) -> Filter {
        let key = &filter["key"];
        let text = |v: &Value| v.as_str().map(str::to_owned);
        let range = match filter.get("messageTimestamp").filter(|v| !v.is_null()) {
            None => None,
            Some(r) => {
                let end = |v: &Value| -> Option<i64> {
                    match v {
                        Value::String(s) => chrono::DateTime::parse_from_rfc3339(s)
                            .ok()
                            .map(|t| t.timestamp()),
                        // `new Date(n)`: milliseconds.
                        Value::Number(n) => n.as_i64().map(|ms| ms.div_euclid(1000)),
                        _ => None,
                    }
                };
                // The server filters only with both ends, and ignores the filter otherwise.
                match (end(&r["gte"]), end(&r["lte"])) {
                    (Some(a), Some(b)) => Some((a, b)),
                    _ => None,
                }
            }
        };
        Filter {
            id: text(&key["id"]),
            remote_jid: text(&key["remoteJid"]),
            from_me: key["fromMe"].as_bool().unwrap_or(false),
            message_type: text(&filter["messageType"]),
            range,
        }
    }

    /// Whether the saved row (legacy shape) is found.
    pub(super) fn keeps(&self, row: &Value) -> bool {
        let same = |want: &Option<String>, field: &str| {
            want.as_deref()
                .is_none_or(|w| row[field].as_str() == Some(w))
        };
        let time = row["messageTimestamp"].as_i64().unwrap_or_default();
        same(&self.id, "keyId")
            && same(&self.remote_jid, "keyRemoteJid")
            && same(&self.message_type, "messageType")
            && (!self.from_me || row["keyFromMe"] == true)
            && self.range.is_none_or(|(a, b)| a <= time && time <= b)
    }
}

/// A saved row as `findMessages` answers it: the message in Evolution's shape, its row id a
/// cuid, its receipts under `MessageUpdate`, and no `status` of its own.
pub(super) fn record(sim: &Sim, instance: &str, row: &Value) -> Value {
    let mut out = sim.evolution_message(instance, row);
    crate::evolution::bytes_as_text(&mut out);
    if let Some(obj) = out.as_object_mut() {
        obj.remove("status");
        obj.insert(
            "id".into(),
            format!("cmsim{:020}", row["id"].as_i64().unwrap_or_default()).into(),
        );
        obj.insert("MessageUpdate".into(), json!([]));
    }
    out
}
