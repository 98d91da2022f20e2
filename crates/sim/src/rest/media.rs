//! `POST /chat/mediaData/{instance}`: the file of a media message, as the real server serves it
//! (CodeChat's chat.router.ts, and `isMediaMessage` and `getMediaMessage` in
//! whatsapp.service.ts), or misbehaving on request ([`MediaFault`]).
//!
//! The body is the message (a `messages.upsert` payload, or a saved row). With `?binary=true`
//! the answer is the file, with its `Content-Type` and `Content-Disposition`; without, the real
//! server's multipart form. The simulator serves the files of the messages
//! [`Sim::media_message`] made; for any other media message it answers as the real server does
//! when WhatsApp no longer has the file.

use super::{admit, record, respond, Answer, Guards};
use crate::contract::Schema;
use crate::hub::{encode_uri_component, Media, MediaFault, Sim, MEDIA_TYPES};
use actix_web::body::{BodyStream, SizedStream};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt;
use serde_json::{json, Value};
use std::convert::Infallible;
use std::sync::Arc;

/// The most bytes a streamed answer sends at once.
const CHUNK: usize = 64 * 1024;

/// The wrappers the real server unwraps before it looks for the media (`MessageSubtype`).
const SUBTYPES: [&str; 4] = [
    "ephemeralMessage",
    "documentWithCaptionMessage",
    "viewOnceMessage",
    "viewOnceMessageV2",
];

/// What `getMediaMessage` finds: the file and what the answer says of it.
struct File {
    media_type: &'static str,
    file_name: String,
    caption: Option<String>,
    /// `{fileLength, height, width}`, those the message has.
    size: Value,
    mimetype: String,
    media: Arc<Media>,
}

/// `POST /chat/mediaData/{instance}`: the JWT and instance guards (the route's schema is
/// `null`), then the message's file: 200 with the file (`?binary=true`) or the multipart form;
/// 400 in the server's words for a message that is not a media message or whose file cannot be
/// had. The next answers that would serve a file misbehave if [`Sim::media_faults`] says so.
///
/// Where it differs from the real server: it announces the file's `Content-Length` (the real
/// server pipes a stream, chunked, without one), so that a client's length checks can be
/// tested; [`MediaFault::Endless`] gives the chunked answer.
pub(crate) async fn media_data(
    req: HttpRequest,
    raw: web::Bytes,
    sim: web::Data<Sim>,
) -> HttpResponse {
    let instance = req.match_info().get("instance").unwrap_or_default();
    let file = admit(
        &req,
        &sim,
        instance,
        &raw,
        Guards::JwtAndInstance,
        Schema::None,
    )
    .and_then(|body| media_file(&sim, instance, &body));
    let file = match file {
        Ok(file) => file,
        Err(answer) => return respond(&req, &sim, &raw, answer),
    };
    let binary = {
        let mut values = url::form_urlencoded::parse(req.query_string().as_bytes())
            .filter(|(k, _)| k == "binary")
            .map(|(_, v)| v);
        // Express's `query.binary === 'true'`: a repeated parameter is an array, not 'true'.
        matches!((values.next(), values.next()), (Some(v), None) if v == "true")
    };
    // Node refuses to set a header value with control characters: the route then fails.
    let content_type = match HeaderValue::from_str(&file.mimetype) {
        Ok(value) => value,
        Err(_) if binary => return respond(&req, &sim, &raw, Answer::crash()),
        Err(_) => HeaderValue::from_static("application/octet-stream"),
    };
    let fault = sim.take_media_fault();
    if let Some(MediaFault::Status(status)) = fault {
        let status = StatusCode::from_u16(status)
            .ok()
            .filter(|s| s.is_client_error() || s.is_server_error())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let refusal = Answer::error(
            &sim,
            status,
            vec!["refused by the simulator's control API".into()],
        );
        return respond(&req, &sim, &raw, refusal);
    }
    let file_name = encode_uri_component(&file.file_name);
    let parts = if binary {
        vec![file.media.bytes.clone()]
    } else {
        let (head, tail) = form(&file, &file_name);
        vec![head.into(), file.media.bytes.clone(), tail.into()]
    };
    let total: u64 = parts.iter().map(|p| p.len() as u64).sum();
    record(
        &req,
        &sim,
        &raw,
        StatusCode::OK,
        json!({
            "mediaType": file.media_type,
            "fileName": file.file_name,
            "mimetype": file.mimetype,
            "size": file.media.bytes.len(),
            "binary": binary,
            "fault": fault.map(|f| fault_name(&f)),
        }),
    );
    let mut response = HttpResponse::Ok();
    if binary {
        response.insert_header((header::CONTENT_TYPE, content_type));
        response.insert_header((
            header::CONTENT_DISPOSITION,
            format!("inline; filename=\"{file_name}\""),
        ));
    }
    // `body` and not `streaming`, which would add a `Content-Type` the form has not.
    match fault {
        None | Some(MediaFault::Status(_)) => {
            let body = slices(Slices::new(parts, total));
            if binary {
                response.body(SizedStream::new(total, body))
            } else {
                response.body(BodyStream::new(body))
            }
        }
        Some(MediaFault::Stall { after }) => {
            let sent = after.min(total.saturating_sub(1));
            let body = slices(Slices::new(parts, sent)).chain(futures_util::stream::pending());
            if binary {
                response.body(SizedStream::new(total, body))
            } else {
                response.body(BodyStream::new(body))
            }
        }
        Some(MediaFault::LyingLength { announced }) => {
            // Written as announced, not framed: the connection closes when the bytes are out.
            let announced = announced.max(1);
            let body = slices(Slices::new(parts, total.min(announced - 1)));
            response
                .no_chunking(announced)
                .force_close()
                .body(BodyStream::new(body))
        }
        Some(MediaFault::Endless) => response.body(BodyStream::new(slices(Slices::endless(parts)))),
    }
}

/// The name the control API gives `fault`.
fn fault_name(fault: &MediaFault) -> &'static str {
    match fault {
        MediaFault::Status(_) => "status",
        MediaFault::Stall { .. } => "stall",
        MediaFault::LyingLength { .. } => "lying-length",
        MediaFault::Endless => "endless",
    }
}

/// What `getMediaMessage` does with the body, up to the file: the message as given (with a
/// `content`), or the saved row the body's members name (`getMessage`: the body as Prisma's
/// `where`); its media, unwrapped as `isMediaMessage` unwraps it; then Baileys' checks before
/// it downloads. A failure is a 400 with the error's message, as the real server answers.
fn media_file(sim: &Sim, instance: &str, body: &Value) -> Result<File, Answer> {
    let refuse = |message: String| Answer::bad_request(sim, message);
    let row;
    let m = if truthy(&body["content"]) {
        body
    } else {
        row = sim
            .first_stored_where(instance, body)
            .unwrap_or(Value::Null);
        &row
    };
    // JavaScript's `{[m.messageType]: m.content}` and `msg.key.id`.
    let message_type = js_string(&m["messageType"]);
    let key_id = js_string(&m["keyId"]);
    let mut message = serde_json::Map::new();
    message.insert(message_type, m["content"].clone());
    let Some((media_type, media)) = media_of(Value::Object(message)) else {
        return Err(refuse("The message is not of the media type".into()));
    };
    // Baileys' downloadMediaMessage, then downloadContentFromMessage and getMediaKeys.
    let has = |k: &str| media.as_object().is_some_and(|o| o.contains_key(k));
    if !media.is_object() || (!has("url") && !has("thumbnailDirectPath")) {
        return Err(refuse(format!(
            "\"{media_type}\" message is not a media message"
        )));
    }
    if !truthy(&media["directPath"]) && !truthy(&media["url"]) {
        return Err(refuse(
            "No valid media URL or directPath present in message".into(),
        ));
    }
    if !truthy(&media["mediaKey"]) {
        return Err(refuse("Cannot derive from empty media key".into()));
    }
    // WhatsApp has no file for it (404), and the phone none to upload again.
    let file = sim
        .media(&key_id)
        .ok_or_else(|| refuse("Media re-upload failed by device (NOT_FOUND)".into()))?;
    let mimetype = match media["mimetype"].as_str() {
        Some(m) => m.to_owned(),
        None => file.mimetype.clone(),
    };
    let file_name = match media["fileName"].as_str().filter(|n| !n.is_empty()) {
        Some(name) => name.to_owned(),
        None => format!("{key_id}.{}", extension(&mimetype)),
    };
    let mut size = serde_json::Map::new();
    for k in ["fileLength", "height", "width"] {
        if let Some(v) = media.get(k) {
            size.insert(k.into(), v.clone());
        }
    }
    Ok(File {
        media_type,
        file_name,
        caption: media["caption"]
            .as_str()
            .filter(|c| !c.is_empty())
            .map(str::to_owned),
        size: Value::Object(size),
        mimetype,
        media: file,
    })
}

/// The media of `message`, as `isMediaMessage` finds it: a `documentWithCaptionMessage` gives
/// its document, each wrapper of [`SUBTYPES`] present is replaced by its `message`, then the
/// first of [`MEDIA_TYPES`] present is the media.
fn media_of(mut message: Value) -> Option<(&'static str, Value)> {
    if truthy(&message["documentWithCaptionMessage"]) {
        let document = message["documentWithCaptionMessage"]["message"]["documentMessage"].clone();
        if let Some(obj) = message.as_object_mut() {
            obj.insert("documentMessage".into(), document);
        }
    }
    for subtype in SUBTYPES {
        if truthy(&message[subtype]) {
            message = message[subtype]["message"].clone();
        }
    }
    MEDIA_TYPES.iter().find_map(|t| {
        let media = &message[*t];
        truthy(media).then(|| (*t, media.clone()))
    })
}

/// JavaScript's truthiness of a JSON value.
fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

/// A value as a JavaScript template string writes it (`undefined` for a missing one).
fn js_string(v: &Value) -> String {
    match v {
        Value::Null => "undefined".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `mime.extension(type)` of the npm package mime-types (3.0, mime-db 1.54) for the types
/// WhatsApp media has: the first extension mime-db lists; `false` for a type it does not know,
/// which the real server then writes into the file name as is. The simulator knows these
/// types only; for any other it answers `false` too.
fn extension(mimetype: &str) -> &'static str {
    let essence = mimetype
        .trim_start()
        .split([';', ' ', '\t'])
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    match essence.as_str() {
        "image/jpeg" => "jpg",
        "image/png" => "png",
        "image/webp" => "webp",
        "image/gif" => "gif",
        "image/heic" => "heic",
        "image/bmp" => "bmp",
        "image/tiff" => "tif",
        "image/svg+xml" => "svg",
        "audio/ogg" => "oga",
        "audio/mpeg" => "mpga",
        "audio/mp4" => "m4a",
        "audio/aac" => "adts",
        "audio/amr" => "amr",
        "audio/wav" | "audio/x-wav" => "wav",
        "audio/webm" => "weba",
        "video/mp4" => "mp4",
        "video/3gpp" => "3gp",
        "video/quicktime" => "qt",
        "video/webm" => "webm",
        "video/x-matroska" => "mkv",
        "video/mpeg" => "mpeg",
        "application/pdf" => "pdf",
        "text/plain" => "txt",
        "text/csv" => "csv",
        "text/html" => "html",
        "text/vcard" => "vcard",
        "text/x-vcard" => "vcf",
        "application/json" => "json",
        "application/xml" | "text/xml" => "xml",
        "application/zip" => "zip",
        "application/x-rar-compressed" => "rar",
        "application/x-7z-compressed" => "7z",
        "application/octet-stream" => "bin",
        "application/msword" => "doc",
        "application/vnd.ms-excel" => "xls",
        "application/vnd.ms-powerpoint" => "ppt",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document" => "docx",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet" => "xlsx",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation" => "pptx",
        "application/vnd.oasis.opendocument.text" => "odt",
        "application/vnd.android.package-archive" => "apk",
        _ => "false",
    }
}

/// The multipart form the real server answers without `binary=true` (the npm package
/// form-data): its fields `mediaType`, `fileName` (URI-encoded), `size` (JSON), `mimetype`,
/// `caption` when there is one, then `file`; the parts before the file and after it. Its
/// boundary is form-data's (26 dashes and 24 digits). The real server pipes the form without
/// a `Content-Type` (so without the boundary): the simulator does the same.
fn form(file: &File, file_name: &str) -> (String, String) {
    let boundary: String = std::iter::repeat_with(|| char::from(b'0' + fastrand::u8(0..10)))
        .take(24)
        .collect();
    let boundary = format!("--------------------------{boundary}");
    let mut head = String::new();
    let mut field = |name: &str, value: &str| {
        head.push_str(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
        ));
    };
    field("mediaType", file.media_type);
    field("fileName", file_name);
    field("size", &file.size.to_string());
    field("mimetype", &file.mimetype);
    if let Some(caption) = &file.caption {
        field("caption", caption);
    }
    head.push_str(&format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{file_name}\"\r\nContent-Type: {}\r\n\r\n",
        file.mimetype
    ));
    (head, format!("\r\n--{boundary}--\r\n"))
}

/// An answer's body as a stream.
fn slices(slices: Slices) -> impl futures_util::Stream<Item = Result<web::Bytes, Infallible>> {
    futures_util::stream::iter(slices.map(Ok))
}

/// The first `left` bytes of `parts`, in slices of [`CHUNK`] bytes at most: views of the parts'
/// shared buffers, never copies. Endless, it starts over at the end.
struct Slices {
    parts: Vec<web::Bytes>,
    part: usize,
    offset: usize,
    left: u64,
    endless: bool,
}

impl Slices {
    fn new(parts: Vec<web::Bytes>, left: u64) -> Slices {
        Slices {
            parts,
            part: 0,
            offset: 0,
            left,
            endless: false,
        }
    }

    /// `parts` over and over; zeros when they are empty (nothing to repeat).
    fn endless(mut parts: Vec<web::Bytes>) -> Slices {
        if parts.iter().all(|p| p.is_empty()) {
            static ZEROS: [u8; CHUNK] = [0; CHUNK];
            parts = vec![web::Bytes::from_static(&ZEROS)];
        }
        Slices {
            endless: true,
            ..Slices::new(parts, u64::MAX)
        }
    }
}

impl Iterator for Slices {
    type Item = web::Bytes;

    fn next(&mut self) -> Option<web::Bytes> {
        while self.left > 0 {
            let Some(part) = self.parts.get(self.part) else {
                if !self.endless {
                    return None;
                }
                self.part = 0;
                continue;
            };
            if self.offset >= part.len() {
                self.part += 1;
                self.offset = 0;
                continue;
            }
            let left = usize::try_from(self.left).unwrap_or(usize::MAX);
            let n = (part.len() - self.offset).min(CHUNK).min(left);
            let slice = part.slice(self.offset..self.offset + n);
            self.offset += n;
            if !self.endless {
                self.left -= n as u64;
            }
            return Some(slice);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The slices are views of the one buffer, at most 64 KiB each, in order.
    #[test]
    fn slices_share_the_buffer_and_stay_small() {
        let file = web::Bytes::from((0..200_000u32).map(|i| i as u8).collect::<Vec<u8>>());
        let range = file.as_ptr() as usize..file.as_ptr() as usize + file.len();
        let all: Vec<web::Bytes> = Slices::new(vec![file.clone()], file.len() as u64).collect();
        assert!(all
            .iter()
            .all(|s| s.len() <= CHUNK && range.contains(&(s.as_ptr() as usize))));
        assert_eq!(all.concat(), file.to_vec());
        let first: Vec<web::Bytes> = Slices::new(vec![file.clone()], 70_000).collect();
        assert_eq!(first.concat(), file[..70_000].to_vec());
        let endless: usize = Slices::endless(vec![file.clone()])
            .take(20)
            .map(|s| s.len())
            .sum();
        assert!(endless > 3 * file.len());
        assert_eq!(
            Slices::endless(vec![web::Bytes::new()])
                .next()
                .unwrap()
                .len(),
            CHUNK
        );
    }

    #[test]
    fn media_is_found_as_the_real_server_finds_it() {
        let image = json!({"url": "u", "mimetype": "image/jpeg"});
        assert_eq!(
            media_of(json!({"imageMessage": image})).map(|m| m.0),
            Some("imageMessage")
        );
        let wrapped = json!({"viewOnceMessageV2": {"message": {"imageMessage": image}}});
        assert_eq!(media_of(wrapped).map(|m| m.0), Some("imageMessage"));
        let captioned =
            json!({"documentWithCaptionMessage": {"message": {"documentMessage": image}}});
        assert_eq!(media_of(captioned).map(|m| m.0), Some("documentMessage"));
        assert!(media_of(json!({"extendedTextMessage": {"text": "hi"}})).is_none());
        assert!(media_of(json!({"imageMessage": ""})).is_none());
        assert!(media_of(Value::Null).is_none());
        assert_eq!(extension("audio/ogg; codecs=opus"), "oga");
        assert_eq!(extension("image/JPEG"), "jpg");
        assert_eq!(extension("x-unknown/thing"), "false");
    }
}
