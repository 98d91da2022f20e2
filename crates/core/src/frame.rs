//! Reading one text frame: envelope or bare payload, then the typed payload.
//!
//! Decoding happens in two steps so nothing is lost: [`Frame::parse`] checks the JSON and splits
//! the envelope (if any) without building the payload; [`Frame::decode`] builds the typed payload.
//! A frame that is valid JSON but does not fit the type still has its data, as JSON, for whoever
//! wants it ([`Frame::to_value`]).

use crate::event::{Event, EventMeta};
use crate::name::EventName;
use crate::payload::{Extra, Payload};
use crate::wire::{self, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// How many characters of a bad frame an error shows.
const EXCERPT_CHARS: usize = 80;

/// The instance an enveloped frame belongs to.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceInfo {
    /// Database id.
    #[serde(default, with = "wire::opt_int")]
    pub id: Option<i64>,
    /// Instance name.
    pub name: Option<String>,
    /// `online`, `offline`...
    pub connection_status: Option<String>,
    /// The WhatsApp account's JID.
    pub owner_jid: Option<String>,
    /// Attributes set on the instance.
    pub external_attributes: Option<serde_json::Value>,
    /// Fields this version does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// One frame, split from its envelope; the payload is not built yet.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    enveloped: bool,
    /// Whether the text is known to be JSON (see [`Frame::bare`]).
    checked: bool,
    event: Option<&'a str>,
    instance: Option<&'a RawValue>,
    timestamp: Option<&'a RawValue>,
    data: &'a str,
}

#[derive(Deserialize)]
struct Probe<'a> {
    #[serde(borrow, default)]
    event: Option<&'a RawValue>,
    #[serde(borrow, default)]
    instance: Option<&'a RawValue>,
    // `null` is data too (Evolution's `logout.instance`): present, it is `Some`.
    #[serde(borrow, default, deserialize_with = "present")]
    data: Option<&'a RawValue>,
    #[serde(borrow, default)]
    timestamp: Option<&'a RawValue>,
}

/// A member that is there, whatever its value (`Option<&RawValue>` reads `null` as absent).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&'de RawValue>::deserialize(d).map(Some)
}

impl<'a> Frame<'a> {
    /// Checks that `text` is one JSON document and finds its payload: the `data` of a
    /// `{event, instance?, data, timestamp?}` envelope (newer server), or the whole document (legacy
    /// server, which sends the bare payload). `subscribed` names the event in errors. One pass
    /// over the text.
    pub fn parse(subscribed: &EventName, text: &'a str) -> Result<Frame<'a>, FrameError> {
        let bare = Frame {
            enveloped: false,
            checked: true,
            event: None,
            instance: None,
            timestamp: None,
            data: text,
        };
        if !text.trim_start().starts_with('{') {
            return serde_json::from_str::<serde::de::IgnoredAny>(text)
                .map(|_| bare)
                .map_err(|e| FrameError::new(subscribed, text, &e));
        }
        // Reading the envelope's members checks the whole document on the way. An envelope is
        // an object with a string `event` and a `data` member; no legacy payload has both (legacy
        // `connection.update` has `instance`, but neither `event` nor `data`).
        let probe = serde_json::from_str::<Probe<'a>>(text)
            .map_err(|e| FrameError::new(subscribed, text, &e))?;
        match (probe.event, probe.data) {
            (Some(event), Some(data)) if event.get().starts_with('"') => Ok(Frame {
                enveloped: true,
                checked: true,
                event: serde_json::from_str::<&'a str>(event.get()).ok(),
                instance: probe.instance,
                timestamp: probe.timestamp,
                data: data.get(),
            }),
            _ => Ok(bare),
        }
    }

    /// A frame of an endpoint that sends only bare payloads (the legacy `/ws/events`), taken as
    /// it is: no pass over the text here. The first [`Frame::decode`] or [`Frame::value`] checks
    /// it; when one fails, [`Frame::parse`] tells whether the text is not JSON at all.
    pub fn bare(text: &'a str) -> Frame<'a> {
        Frame {
            enveloped: false,
            checked: false,
            event: None,
            instance: None,
            timestamp: None,
            data: text,
        }
    }

    /// Whether the text is known to be one JSON document ([`Frame::parse`] made it).
    pub fn is_checked(&self) -> bool {
        self.checked
    }

    /// Whether the frame came in an envelope.
    pub fn is_enveloped(&self) -> bool {
        self.enveloped
    }

    /// The event name the envelope gives, if any (escaped names are not read here).
    pub fn event_name(&self) -> Option<EventName> {
        self.event.map(EventName::parse)
    }

    /// The envelope's instance, if it has one: an object, or a bare name.
    pub fn instance(&self) -> Option<InstanceInfo> {
        let raw = self.instance?.get();
        if let Ok(name) = serde_json::from_str::<String>(raw) {
            return Some(InstanceInfo {
                id: None,
                name: Some(name),
                connection_status: None,
                owner_jid: None,
                external_attributes: None,
                extra: Extra::new(),
            });
        }
        serde_json::from_str(raw).ok()
    }

    /// The envelope's timestamp, if it has one that reads as a date.
    pub fn timestamp(&self) -> Option<Timestamp> {
        #[derive(Deserialize)]
        struct T(#[serde(with = "wire::opt_time")] Option<Timestamp>);
        serde_json::from_str::<T>(self.timestamp?.get()).ok()?.0
    }

    /// The payload's JSON text.
    pub fn data(&self) -> &'a str {
        self.data
    }

    /// The payload as a JSON value, for raw handlers and for frames that do not fit their type.
    /// Fails only for a [`Frame::bare`] frame that is not JSON.
    pub fn value(&self, event: &EventName) -> Result<serde_json::Value, DecodeError> {
        serde_json::from_str(self.data).map_err(|e| DecodeError {
            event: event.clone(),
            type_name: "serde_json::Value",
            path: String::new(),
            message: e.to_string(),
        })
    }

    /// The payload's text, checked to be one JSON document (without building a value).
    pub fn raw_data(&self, event: &EventName) -> Result<Box<RawValue>, DecodeError> {
        RawValue::from_string(self.data.to_owned()).map_err(|e| DecodeError {
            event: event.clone(),
            type_name: "JSON",
            path: String::new(),
            message: e.to_string(),
        })
    }

    /// The typed event of this frame, with `meta`: a payload decoded on first access
    /// ([`Payload::head`]) is only checked here, every other one is built.
    pub fn event<T: Payload>(&self, meta: EventMeta) -> Result<Event<T>, DecodeError> {
        if let Some(Ok(head)) = T::head(self.data) {
            return Ok(Event::unread(meta, head));
        }
        // Refused by the check (or decoded at once): the decode names what did not fit.
        self.decode::<T>(&meta.event).map(|p| Event::new(meta, p))
    }

    /// The typed event of a frame of `channel`, another endpoint than `T`'s, read through
    /// [`Payload::translate`]; a type that is not read from there is a decode error.
    pub fn translate<T: Payload>(
        &self,
        channel: crate::Channel,
        meta: EventMeta,
    ) -> Result<Event<T>, DecodeError> {
        let error = |message: String| DecodeError {
            event: meta.event.clone(),
            type_name: short_type_name::<T>(),
            path: String::new(),
            message,
        };
        match T::translate(channel, self.data) {
            Some(Ok(payload)) => Ok(Event::new(meta, payload)),
            Some(Err(e)) => Err(error(e.to_string())),
            None => Err(error(format!(
                "this type is not read from {} frames",
                crate::Protocol::of(channel)
            ))),
        }
    }

    /// Builds the typed payload of the event `event`.
    pub fn decode<T: Payload>(&self, event: &EventName) -> Result<T, DecodeError> {
        let text = self.data;
        serde_json::from_str(text).map_err(|first| {
            // Decode again, only on failure, to name the field that did not fit.
            let de = &mut serde_json::Deserializer::from_str(text);
            let path = match serde_path_to_error::deserialize::<_, T>(de) {
                Err(e) => e.path().to_string(),
                Ok(_) => String::new(),
            };
            DecodeError {
                event: event.clone(),
                type_name: short_type_name::<T>(),
                path,
                message: first.to_string(),
            }
        })
    }
}

fn short_type_name<T>() -> &'static str {
    let full = std::any::type_name::<T>();
    // `eventsock_core::legacy::MessagesUpsert` -> `legacy::MessagesUpsert`
    let mut parts = full.rsplitn(3, "::");
    let last = parts.next().unwrap_or(full);
    match parts.next() {
        Some(module) => &full[full.len() - last.len() - module.len() - 2..],
        None => last,
    }
}

/// A frame that is not one JSON document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid JSON in a `{event}` frame of {len} bytes, at line {line} column {column}: {message}; near: {excerpt}"
)]
#[non_exhaustive]
pub struct FrameError {
    /// The subscribed event.
    pub event: EventName,
    /// Size of the frame in bytes.
    pub len: usize,
    /// Line of the error, from 1.
    pub line: usize,
    /// Column of the error, from 1.
    pub column: usize,
    /// What the JSON parser said.
    pub message: String,
    /// At most 80 characters of the frame around the error, escaped.
    pub excerpt: String,
}

impl FrameError {
    fn new(event: &EventName, text: &str, e: &serde_json::Error) -> FrameError {
        FrameError {
            event: event.clone(),
            len: text.len(),
            line: e.line(),
            column: e.column(),
            message: strip_position(&e.to_string()),
            excerpt: excerpt(text, e.line(), e.column()),
        }
    }
}

fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

/// Up to [`EXCERPT_CHARS`] characters of `text` ending near (line, column), escaped so control
/// characters cannot garble a log line.
fn excerpt(text: &str, line: usize, column: usize) -> String {
    let line_start: usize = text
        .split_inclusive('\n')
        .take(line.saturating_sub(1))
        .map(str::len)
        .sum();
    // serde_json's column counts bytes; move to a char boundary.
    let mut at = (line_start + column).min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    let before: Vec<char> = text[..at].chars().rev().take(EXCERPT_CHARS / 2).collect();
    let after: String = text[at..].chars().take(EXCERPT_CHARS / 2).collect();
    let before: String = before.into_iter().rev().collect();
    let start_cut = if before.len() < at { "…" } else { "" };
    let end_cut = if at + after.len() < text.len() {
        "…"
    } else {
        ""
    };
    format!(
        "{start_cut}{}{end_cut}",
        format!("{before}{after}").escape_debug()
    )
}

/// A frame that is valid JSON but does not fit the payload type of its event. The frame's data
/// is still delivered as JSON beside this error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a `{event}` frame does not fit {type_name}{}: {}", if path.is_empty() || path == "." { String::new() } else { format!(" at `{}`", crate::human::escaped(path)) }, crate::human::escaped(message))]
#[non_exhaustive]
pub struct DecodeError {
    /// The event.
    pub event: EventName,
    /// The payload type, for example `legacy::MessagesUpsert`.
    pub type_name: &'static str,
    /// Where in the payload it failed, for example `participants[0].admin`.
    pub path: String,
    /// What serde said.
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::legacy;
    use crate::name::EventKind;

    fn upsert() -> EventName {
        EventKind::MessagesUpsert.into()
    }

    #[test]
    fn bare_payload() {
        let f = Frame::parse(&upsert(), r#"{"keyId":"A","content":{"text":"hi"}}"#).unwrap();
        assert!(!f.is_enveloped());
        let m: legacy::MessagesUpsert = f.decode(&upsert()).unwrap();
        assert_eq!(m.text(), Some("hi"));
        let arr = Frame::parse(&upsert(), "[1,2]").unwrap();
        assert_eq!(arr.data(), "[1,2]");
    }

    #[test]
    fn enveloped_payload() {
        let text = r#"{"event":"messages.upsert","instance":{"id":1,"name":"codechat"},
            "data":{"keyId":"A"},"timestamp":"2026-07-04T18:00:00Z"}"#;
        let f = Frame::parse(&upsert(), text).unwrap();
        assert!(f.is_enveloped());
        assert_eq!(f.event_name(), Some(upsert()));
        assert_eq!(f.instance().unwrap().name.as_deref(), Some("codechat"));
        assert_eq!(
            f.timestamp().unwrap().to_rfc3339(),
            "2026-07-04T18:00:00+00:00"
        );
        assert_eq!(f.data(), r#"{"keyId":"A"}"#);
    }

    #[test]
    fn bare_frames_are_checked_by_their_first_decode() {
        let good = Frame::bare(r#"{"keyId":"A"}"#);
        assert!(!good.is_checked());
        assert!(good.decode::<legacy::MessagesUpsert>(&upsert()).is_ok());
        let broken = Frame::bare(r#"{"keyId":"A""#);
        assert!(broken.decode::<legacy::MessagesUpsert>(&upsert()).is_err());
        assert!(broken.value(&upsert()).is_err());
        // Which `parse` then reports as not JSON, with an excerpt.
        assert!(Frame::parse(&upsert(), broken.data()).is_err());
    }

    #[test]
    fn one_pass_parse_still_rejects_trailing_garbage() {
        assert!(Frame::parse(&upsert(), r#"{"a":1} x"#).is_err());
        assert!(Frame::parse(&upsert(), r#"[1] ]"#).is_err());
        assert!(Frame::parse(&upsert(), "  [1]").is_ok());
    }

    #[test]
    fn legacy_connection_update_is_not_an_envelope() {
        let text = r#"{"instance":"codechat","state":"open","statusReason":200}"#;
        let f = Frame::parse(&EventKind::ConnectionUpdate.into(), text).unwrap();
        assert!(!f.is_enveloped());
    }

    #[test]
    fn invalid_json_names_event_and_shows_bounded_excerpt() {
        let long = format!(r#"{{"keyId":"{}", oops}}"#, "x".repeat(500));
        let err = Frame::parse(&upsert(), &long).unwrap_err();
        let shown = err.to_string();
        assert!(shown.contains("`messages.upsert`"), "{shown}");
        assert!(shown.contains("oops"), "{shown}");
        assert!(
            err.excerpt.chars().count() <= EXCERPT_CHARS + 2,
            "{}",
            err.excerpt
        );
        assert_eq!(err.len, long.len());
    }

    #[test]
    fn excerpt_is_safe_on_multibyte_and_control_characters() {
        for text in [
            "{\"a\":\"é\u{7}ção",
            "",
            "ção",
            "{\"a\":\n\n\"b\" x}",
            "\u{1F600}{",
        ] {
            let err = Frame::parse(&upsert(), text).unwrap_err();
            assert!(!err.excerpt.contains('\u{7}'));
        }
    }

    #[test]
    fn wrong_shape_keeps_the_data_and_names_the_field() {
        let text = r#"{"keyId":"A","messageTimestamp":"soon"}"#;
        let f = Frame::parse(&upsert(), text).unwrap();
        let err = f.decode::<legacy::MessagesUpsert>(&upsert()).unwrap_err();
        assert_eq!(err.type_name, "legacy::MessagesUpsert");
        assert_eq!(err.path, "messageTimestamp");
        assert!(err.to_string().contains("at `messageTimestamp`"), "{err}");
        assert_eq!(f.value(&upsert()).unwrap()["messageTimestamp"], "soon");
    }
}
