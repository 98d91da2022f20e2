//! The control API, for tests and demos: `/control/...`. Bind the simulator to loopback: anyone
//! who can reach it can drive it.

use crate::hub::Sim;
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};
use std::time::Duration;

pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/control")
            .route("/emit", web::post().to(emit))
            .route("/burst", web::post().to(burst))
            .route("/drop", web::post().to(drop_all))
            .route("/take", web::post().to(take))
            .route("/close", web::post().to(close_all))
            .route("/half-open", web::post().to(half_open))
            .route("/token", web::post().to(token))
            .route("/revoke", web::post().to(revoke))
            .route("/sockets", web::get().to(sockets))
            .route("/saving", web::post().to(saving))
            .route("/sent", web::get().to(sent))
            .route("/requests", web::get().to(requests))
            .route("/marked-read", web::get().to(marked_read))
            .route("/send-failures", web::post().to(send_failures))
            .route("/find-messages", web::post().to(find_messages))
            .route("/media-faults", web::post().to(media_faults))
            .route("/receipt", web::post().to(receipt))
            .route("/pair-lid", web::post().to(pair_lid)),
    );
}

/// `{instance?, event, data, text?}`: `text` sends those exact bytes instead of `data`.
#[derive(Debug, Deserialize)]
struct Emit {
    instance: Option<String>,
    event: String,
    #[serde(default)]
    data: Value,
    text: Option<String>,
    #[serde(default = "one")]
    count: u64,
}

fn one() -> u64 {
    1
}

async fn emit(sim: web::Data<Sim>, body: web::Json<Emit>) -> HttpResponse {
    let scope = body.instance.as_deref().unwrap_or(sim.default_instance());
    let delivered = match &body.text {
        Some(text) => sim.emit_text(scope, &body.event, text.clone()),
        None => sim.emit(scope, &body.event, &body.data),
    };
    HttpResponse::Ok().json(json!({ "delivered": delivered }))
}

async fn burst(sim: web::Data<Sim>, body: web::Json<Emit>) -> HttpResponse {
    let scope = body.instance.as_deref().unwrap_or(sim.default_instance());
    let delivered = sim.burst(scope, &body.event, &body.data, body.count);
    HttpResponse::Ok().json(json!({ "delivered": delivered }))
}

/// `{instance?, event}`: another client takes the stream (see [`Sim::take`]).
#[derive(Debug, Deserialize)]
struct Take {
    instance: Option<String>,
    event: String,
}

async fn take(sim: web::Data<Sim>, body: web::Json<Take>) -> HttpResponse {
    let scope = body.instance.as_deref().unwrap_or(sim.default_instance());
    HttpResponse::Ok().json(json!({ "taken": sim.take(scope, &body.event) }))
}

async fn drop_all(sim: web::Data<Sim>) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "dropped": sim.drop_all() }))
}

#[derive(Debug, Deserialize)]
struct Close {
    code: u16,
    #[serde(default)]
    reason: String,
}

async fn close_all(sim: web::Data<Sim>, body: web::Json<Close>) -> HttpResponse {
    if !(1000..=4999).contains(&body.code) || matches!(body.code, 1004..=1006 | 1015) {
        return HttpResponse::BadRequest().json(
            json!({ "error": format!("{} is not a close code a server may send", body.code) }),
        );
    }
    HttpResponse::Ok().json(json!({ "closed": sim.close_all(body.code, &body.reason) }))
}

#[derive(Debug, Deserialize)]
struct HalfOpen {
    enabled: bool,
}

async fn half_open(sim: web::Data<Sim>, body: web::Json<HalfOpen>) -> HttpResponse {
    sim.set_half_open(body.enabled);
    HttpResponse::Ok().json(json!({ "halfOpen": body.enabled }))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MintToken {
    instance: Option<String>,
    user_id: Option<String>,
    ttl_seconds: Option<u64>,
}

async fn token(sim: web::Data<Sim>, body: web::Json<MintToken>) -> HttpResponse {
    let ttl = body.ttl_seconds.map(Duration::from_secs);
    let token = match &body.user_id {
        Some(user) => sim.mint_user_token(user, ttl.unwrap_or(Duration::from_secs(3600))),
        None => sim.mint_token(
            body.instance.as_deref().unwrap_or(sim.default_instance()),
            ttl,
        ),
    };
    HttpResponse::Ok().json(json!({ "token": token }))
}

#[derive(Debug, Deserialize)]
struct Revoke {
    instance: Option<String>,
}

async fn revoke(sim: web::Data<Sim>, body: web::Json<Revoke>) -> HttpResponse {
    let instance = body.instance.as_deref().unwrap_or(sim.default_instance());
    HttpResponse::Ok().json(json!({ "closed": sim.revoke(instance) }))
}

async fn sockets(sim: web::Data<Sim>) -> HttpResponse {
    HttpResponse::Ok().json(sim.sockets())
}

/// `{enabled}`: whether `messages.upsert` events are saved for `findMessages` from now on.
#[derive(Debug, Deserialize)]
struct Saving {
    enabled: bool,
}

async fn saving(sim: web::Data<Sim>, body: web::Json<Saving>) -> HttpResponse {
    sim.set_saving(body.enabled);
    HttpResponse::Ok().json(json!({"saving": body.enabled}))
}

/// `{mode?, ties?}`: `mode` is `normal`, `hang` (never answer), `garbage` (200 with a body that
/// is not JSON) or `flood`; `ties` the order of messages of one second: `descending`,
/// `ascending` or `shuffled`.
#[derive(Debug, Deserialize)]
struct FindMessages {
    mode: Option<crate::hub::FindMode>,
    ties: Option<crate::hub::Ties>,
}

async fn find_messages(sim: web::Data<Sim>, body: web::Json<FindMessages>) -> HttpResponse {
    if let Some(mode) = body.mode {
        sim.set_find_mode(mode);
    }
    if let Some(ties) = body.ties {
        sim.set_ties(ties);
    }
    HttpResponse::Ok().json(json!({"mode": body.mode, "ties": body.ties}))
}

/// Every `sendText` accepted, in arrival order: `[{instance, chat, text, atMs, id, typingMs}]`.
async fn sent(sim: web::Data<Sim>) -> HttpResponse {
    HttpResponse::Ok().json(sim.sent())
}

/// Every REST call answered: `[{method, path, status, body, answer}]`.
async fn requests(sim: web::Data<Sim>) -> HttpResponse {
    HttpResponse::Ok().json(sim.requests())
}

/// The message keys `markMessageAsRead` passed on (groups and LIDs only, as the real server).
async fn marked_read(sim: web::Data<Sim>) -> HttpResponse {
    HttpResponse::Ok().json(sim.marked_read())
}

/// `{status, count, retryAfter?, delivered?}`: fail the next `count` sends with `status` (and a
/// `Retry-After` of `retryAfter` seconds); with `delivered: true` the messages go out anyway
/// and only the answer is an error.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SendFailures {
    status: u16,
    count: u64,
    retry_after: Option<u64>,
    #[serde(default)]
    delivered: bool,
}

async fn send_failures(sim: web::Data<Sim>, body: web::Json<SendFailures>) -> HttpResponse {
    if !(400..=599).contains(&body.status) {
        return HttpResponse::BadRequest().json(json!({"error": "status must be 400 to 599"}));
    }
    let failure = crate::hub::SendFailure {
        status: body.status,
        retry_after: body.retry_after,
        delivered: body.delivered,
    };
    sim.fail_next_sends(failure, body.count);
    HttpResponse::Ok().json(json!({"failing": body.count}))
}

/// `{fault, status?, after?, announced?, count?}`: the next `count` (1) media answers misbehave:
/// `status` answers `status` (400 to 599) with a JSON error; `stall` sends `after` (0) bytes,
/// then nothing; `lying-length` announces `announced` bytes (1 or more) and sends fewer;
/// `endless` never ends. A `count` of 0 ends the faults.
#[derive(Debug, Deserialize)]
struct MediaFaults {
    fault: String,
    status: Option<u16>,
    after: Option<u64>,
    announced: Option<u64>,
    count: Option<u64>,
}

async fn media_faults(sim: web::Data<Sim>, body: web::Json<MediaFaults>) -> HttpResponse {
    use crate::hub::MediaFault;
    let refuse = |error: String| HttpResponse::BadRequest().json(json!({ "error": error }));
    let fault = match body.fault.as_str() {
        "status" => match body.status {
            Some(status @ 400..=599) => MediaFault::Status(status),
            Some(other) => return refuse(format!("status must be 400 to 599, not {other}")),
            None => return refuse("the status fault needs a status (400 to 599)".into()),
        },
        "stall" => MediaFault::Stall {
            after: body.after.unwrap_or(0),
        },
        "lying-length" => match body.announced {
            Some(announced) if announced > 0 => MediaFault::LyingLength { announced },
            _ => {
                return refuse(
                    "the lying-length fault needs the length to announce: announced, 1 or more"
                        .into(),
                )
            }
        },
        "endless" => MediaFault::Endless,
        other => {
            return refuse(format!(
                "unknown fault \"{other}\": status, stall, lying-length or endless"
            ))
        }
    };
    let count = body.count.unwrap_or(1);
    sim.media_faults(fault, count);
    HttpResponse::Ok().json(json!({"fault": body.fault, "failing": count}))
}

/// `{instance?, id, status}`: a receipt of `status` for the message `id` the instance sent.
#[derive(Debug, Deserialize)]
struct Receipt {
    instance: Option<String>,
    id: String,
    status: String,
}

async fn receipt(sim: web::Data<Sim>, body: web::Json<Receipt>) -> HttpResponse {
    let instance = body.instance.as_deref().unwrap_or(sim.default_instance());
    if !crate::hub::RECEIPT_STATUSES.contains(&body.status.as_str()) {
        return HttpResponse::BadRequest().json(json!({"error": format!(
            "unknown receipt status \"{}\": {}",
            body.status,
            crate::hub::RECEIPT_STATUSES.join(", ")
        )}));
    }
    if !sim.receipt(instance, &body.id, &body.status) {
        return HttpResponse::NotFound().json(json!({"error": format!(
            "the instance \"{instance}\" sent no message with id \"{}\" that the simulator remembers",
            body.id
        )}));
    }
    HttpResponse::Ok().json(json!({"id": body.id, "status": body.status}))
}

/// `{phoneJid, lid}`: the person with this phone number's JID has this LID too.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PairLid {
    phone_jid: String,
    lid: String,
}

async fn pair_lid(sim: web::Data<Sim>, body: web::Json<PairLid>) -> HttpResponse {
    if !body.lid.ends_with("@lid") {
        return HttpResponse::BadRequest().json(json!({"error": format!(
            "\"{}\" is not a LID: a LID ends with @lid",
            body.lid
        )}));
    }
    sim.pair_lid(&body.phone_jid, &body.lid);
    HttpResponse::Ok().json(json!({"phoneJid": body.phone_jid, "lid": body.lid}))
}
