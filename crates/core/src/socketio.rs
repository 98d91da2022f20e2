//! Engine.IO 4 and Socket.IO 5 packets, as Evolution API's server sends them over a WebSocket.
//!
//! Evolution API serves its events over Socket.IO on `/socket.io/`: every WebSocket text frame
//! is one Engine.IO packet (a digit, then its data); a message packet (`4`) carries one
//! Socket.IO packet (a digit, the namespace, an optional ack id, then JSON). An event is
//! `42/{instance},["messages.upsert",{envelope}]`; one with byte fields is a binary event
//! (`45<n>-/{instance},[...]`) whose `n` attachments follow as binary frames, each standing
//! where a `{"_placeholder":true,"num":k}` stands in the JSON.
//!
//! This module reads and writes packets and knows nothing of sockets: the client's connection
//! and the simulator's server both use it. Reading is strict: anything that is not a packet of
//! these protocols is an error naming what was wrong, never a panic.

use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::time::Duration;

/// The longest ack id read (JavaScript's safe integers have 16 digits).
const MAX_ACK_DIGITS: usize = 16;

/// What the server's open packet (`0{...}`) says about the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handshake {
    /// The session id (not a secret: it names the session in the server's logs).
    pub sid: String,
    /// How often the server pings.
    pub ping_interval: Duration,
    /// How long the server waits for the pong; a client that hears no ping within
    /// `ping_interval + ping_timeout` has lost the server.
    pub ping_timeout: Duration,
    /// The largest packet the server accepts from the client, in bytes.
    pub max_payload: u64,
}

impl Handshake {
    /// How long a client may go without a ping before the link counts as dead.
    pub fn silence_limit(&self) -> Duration {
        self.ping_interval.saturating_add(self.ping_timeout)
    }
}

/// One Engine.IO packet of the WebSocket transport.
#[derive(Debug, Clone, PartialEq)]
pub enum EnginePacket<'a> {
    /// `0`: the session opened.
    Open(Handshake),
    /// `1`: the server ends the session.
    Close,
    /// `2`: a ping (the server's heartbeat; answered with [`PONG`]).
    Ping,
    /// `3`: a pong.
    Pong,
    /// `4`: a message: one Socket.IO packet.
    Message(Packet<'a>),
    /// `5`, `6`: transport upgrade and noop, which a WebSocket-only session never needs.
    Noop,
}

/// One Socket.IO packet.
#[derive(Debug, Clone, PartialEq)]
pub enum Packet<'a> {
    /// `0`: the namespace was joined (from the server) or is asked for (from the client).
    Connect {
        /// The namespace, `/` for the root one.
        nsp: &'a str,
    },
    /// `1`: the namespace was left.
    Disconnect {
        /// The namespace.
        nsp: &'a str,
    },
    /// `2`: an event.
    Event {
        /// The namespace.
        nsp: &'a str,
        /// The ack id, when the sender wants an answer.
        ack: Option<u64>,
        /// The event's name and arguments, the JSON array as it came.
        body: &'a str,
    },
    /// `3`: an answer to an ack.
    Ack {
        /// The namespace.
        nsp: &'a str,
    },
    /// `4`: joining the namespace was refused.
    ConnectError {
        /// The namespace.
        nsp: &'a str,
        /// The server's reason (`Invalid namespace`), as sent, whole.
        message: String,
    },
    /// `5`: an event with `attachments` binary frames to follow.
    BinaryEvent {
        /// The namespace.
        nsp: &'a str,
        /// How many binary frames follow.
        attachments: usize,
        /// The ack id, when the sender wants an answer.
        ack: Option<u64>,
        /// The JSON array with placeholders.
        body: &'a str,
    },
    /// `6`: an answer to an ack, with attachments.
    BinaryAck {
        /// The namespace.
        nsp: &'a str,
        /// How many binary frames follow.
        attachments: usize,
    },
}

/// A frame that is not a packet these protocols send.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a Socket.IO packet ({reason}): {excerpt}")]
pub struct PacketError {
    /// What was wrong.
    pub reason: Cow<'static, str>,
    /// The start of the frame, escaped.
    pub excerpt: String,
}

impl PacketError {
    /// An error about `text`. The reason is kept whole (serde's messages can quote the input,
    /// which whoever tells it must redact before cutting it).
    fn new(reason: impl Into<Cow<'static, str>>, text: &str) -> PacketError {
        let reason = reason.into();
        PacketError {
            reason,
            excerpt: crate::human::excerpt(text, 60),
        }
    }
}

/// The client's answer to a ping.
pub const PONG: &str = "3";
/// The server's ping.
pub const PING: &str = "2";

/// Reads one WebSocket text frame as an Engine.IO packet.
pub fn read(text: &str) -> Result<EnginePacket<'_>, PacketError> {
    let mut chars = text.chars();
    let Some(kind) = chars.next() else {
        return Err(PacketError::new("an empty frame", text));
    };
    let rest = chars.as_str();
    match kind {
        '0' => read_open(rest)
            .map(EnginePacket::Open)
            .map_err(|e| PacketError::new(format!("an open packet: {e}"), text)),
        '1' => Ok(EnginePacket::Close),
        '2' => Ok(EnginePacket::Ping),
        '3' => Ok(EnginePacket::Pong),
        '4' => read_packet(rest)
            .map(EnginePacket::Message)
            .map_err(|reason| PacketError::new(reason, text)),
        '5' | '6' => Ok(EnginePacket::Noop),
        _ => Err(PacketError::new("an unknown packet type", text)),
    }
}

fn read_open(json: &str) -> Result<Handshake, String> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Open {
        sid: String,
        ping_interval: u64,
        ping_timeout: u64,
        #[serde(default = "default_max_payload")]
        max_payload: u64,
    }
    fn default_max_payload() -> u64 {
        1_000_000
    }
    let open: Open = serde_json::from_str(json).map_err(|e| e.to_string())?;
    // A day at most: a larger value is a server's mistake, and would turn the dead-link check off.
    let ms = |v: u64| Duration::from_millis(v.min(86_400_000));
    Ok(Handshake {
        sid: open.sid,
        ping_interval: ms(open.ping_interval),
        ping_timeout: ms(open.ping_timeout),
        max_payload: open.max_payload,
    })
}

/// Reads the Socket.IO packet of a message packet's data.
fn read_packet(s: &str) -> Result<Packet<'_>, Cow<'static, str>> {
    let mut rest = s;
    let kind = take_char(&mut rest).ok_or("a message packet with no Socket.IO packet")?;
    let attachments = if matches!(kind, '5' | '6') {
        let (digits, after) = rest
            .split_once('-')
            .ok_or("a binary packet without its attachment count")?;
        if digits.is_empty() || digits.len() > 6 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err("a binary packet whose attachment count is not a number".into());
        }
        rest = after;
        digits.parse::<usize>().map_err(|e| e.to_string())?
    } else {
        0
    };
    let nsp = if rest.starts_with('/') {
        let end = rest.find(',').unwrap_or(rest.len());
        let nsp = &rest[..end];
        rest = rest.get(end + 1..).unwrap_or("");
        nsp
    } else {
        "/"
    };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let ack = if digits == 0 {
        None
    } else if digits > MAX_ACK_DIGITS {
        return Err("an ack id too long to be one".into());
    } else {
        let id = rest[..digits].parse::<u64>().map_err(|e| e.to_string())?;
        rest = &rest[digits..];
        Some(id)
    };
    let body = rest;
    match kind {
        '0' => Ok(Packet::Connect { nsp }),
        '1' => Ok(Packet::Disconnect { nsp }),
        '2' => Ok(Packet::Event { nsp, ack, body }),
        '3' => Ok(Packet::Ack { nsp }),
        '4' => {
            #[derive(Deserialize)]
            struct Refusal {
                message: Option<String>,
            }
            let message = serde_json::from_str::<Refusal>(body)
                .ok()
                .and_then(|r| r.message)
                .unwrap_or_else(|| body.to_owned());
            // Kept whole: whoever tells it redacts it, then cuts it.
            Ok(Packet::ConnectError { nsp, message })
        }
        '5' => Ok(Packet::BinaryEvent {
            nsp,
            attachments,
            ack,
            body,
        }),
        '6' => Ok(Packet::BinaryAck { nsp, attachments }),
        _ => Err("an unknown Socket.IO packet type".into()),
    }
}

fn take_char(s: &mut &str) -> Option<char> {
    let mut chars = s.chars();
    let c = chars.next()?;
    *s = chars.as_str();
    Some(c)
}

/// An event's name and its first argument, read from an event packet's body.
#[derive(Debug, Clone, PartialEq)]
pub struct EventBody<'a> {
    /// The event's name, as sent (`messages.upsert`).
    pub name: Cow<'a, str>,
    /// The first argument's JSON text, as it stood in the body.
    pub argument: &'a str,
}

/// Reads `["name", argument, ...]`.
pub fn event_body(body: &str) -> Result<EventBody<'_>, PacketError> {
    let items: Vec<&RawValue> = serde_json::from_str(body)
        .map_err(|e| PacketError::new(format!("an event that is not a JSON array: {e}"), body))?;
    let Some(first) = items.first() else {
        return Err(PacketError::new("an event without a name", body));
    };
    let name: Cow<'_, str> = serde_json::from_str(first.get())
        .map_err(|_| PacketError::new("an event whose name is not a string", body))?;
    let Some(argument) = items.get(1) else {
        return Err(PacketError::new("an event without its argument", body));
    };
    Ok(EventBody {
        name,
        argument: argument.get(),
    })
}

/// Puts a binary event's attachments where their placeholders stand, each as a base64 string
/// (standard alphabet, padded): the JSON the event would be had its bytes been written as text.
/// A placeholder naming no attachment is an error.
pub fn fill_placeholders<B: AsRef<[u8]>>(
    body: &str,
    attachments: &[B],
) -> Result<String, PacketError> {
    // socket.io-parser writes each placeholder as `JSON.stringify` does, always alike: put in
    // its place as text, in one pass. (Inside a JSON string its quotes would be escaped, so
    // this text only ever is a placeholder.) Any other writing of one is read as JSON below.
    if let Some(filled) = fill_as_written(body, attachments) {
        return filled;
    }
    let mut value: serde_json::Value = serde_json::from_str(body)
        .map_err(|e| PacketError::new(format!("a binary event that is not JSON: {e}"), body))?;
    fill(&mut value, attachments, 0).map_err(|reason| PacketError::new(reason, body))?;
    Ok(value.to_string())
}

/// The placeholders as socket.io-parser writes them, filled as text: `None` when the body has
/// none so written (then the slower reading as JSON decides).
fn fill_as_written<B: AsRef<[u8]>>(
    body: &str,
    attachments: &[B],
) -> Option<Result<String, PacketError>> {
    use base64::Engine as _;
    const MARK: &str = r#"{"_placeholder":true,"num":"#;
    let mut out = String::with_capacity(body.len() + attachments.len() * 48);
    let mut rest = body;
    let mut filled = 0;
    while let Some(at) = rest.find(MARK) {
        let after = &rest[at + MARK.len()..];
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        let Some(tail) = after[digits..].strip_prefix('}') else {
            // Not as socket.io-parser writes it: leave the whole body to the JSON reading.
            return None;
        };
        let Some(bytes) = after[..digits]
            .parse::<usize>()
            .ok()
            .and_then(|n| attachments.get(n))
        else {
            return Some(Err(PacketError::new(
                "a placeholder naming an attachment that did not come",
                body,
            )));
        };
        out.push_str(&rest[..at]);
        out.push('"');
        base64::engine::general_purpose::STANDARD.encode_string(bytes.as_ref(), &mut out);
        out.push('"');
        rest = tail;
        filled += 1;
    }
    if filled == 0 {
        return None;
    }
    out.push_str(rest);
    Some(Ok(out))
}

fn fill<B: AsRef<[u8]>>(
    value: &mut serde_json::Value,
    attachments: &[B],
    depth: usize,
) -> Result<(), &'static str> {
    use base64::Engine as _;
    use serde_json::Value;
    // serde_json refuses documents nested deeper than 128: this bound is never reached.
    if depth > 256 {
        return Err("a binary event nested too deeply");
    }
    match value {
        Value::Object(map) => {
            if map.get("_placeholder") == Some(&Value::Bool(true)) {
                let num = map
                    .get("num")
                    .and_then(Value::as_u64)
                    .ok_or("a placeholder without its number")?;
                let bytes = usize::try_from(num)
                    .ok()
                    .and_then(|n| attachments.get(n))
                    .ok_or("a placeholder naming an attachment that did not come")?;
                *value =
                    Value::String(base64::engine::general_purpose::STANDARD.encode(bytes.as_ref()));
                return Ok(());
            }
            for v in map.values_mut() {
                fill(v, attachments, depth + 1)?;
            }
        }
        Value::Array(items) => {
            for v in items {
                fill(v, attachments, depth + 1)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// The envelope with the value of its `apikey` member replaced by `"<redacted>"` when it is a
/// string: Evolution puts the API key in every event when it exposes it, and it must reach no
/// log, recording or handler. Any other text comes back unchanged and unallocated.
pub fn redact_api_key(envelope: &str) -> Cow<'_, str> {
    // How Evolution writes an envelope whose key it does not expose (`JSON.stringify`, the key
    // last): nothing to read.
    if envelope.ends_with(r#","apikey":null}"#) {
        return Cow::Borrowed(envelope);
    }
    #[derive(Deserialize)]
    struct Probe<'a> {
        #[serde(borrow, default)]
        apikey: Option<&'a RawValue>,
    }
    let Ok(Probe { apikey: Some(raw) }) = serde_json::from_str::<Probe<'_>>(envelope) else {
        return Cow::Borrowed(envelope);
    };
    let raw = raw.get();
    if !raw.starts_with('"') || raw == "\"<redacted>\"" {
        return Cow::Borrowed(envelope);
    }
    // The raw value borrows from `envelope`: its place there is its address less the start's.
    let start = raw.as_ptr() as usize - envelope.as_ptr() as usize;
    let end = start + raw.len();
    let mut out = String::with_capacity(envelope.len());
    out.push_str(&envelope[..start]);
    out.push_str("\"<redacted>\"");
    out.push_str(&envelope[end..]);
    Cow::Owned(out)
}

/// The client's request to join `nsp`: `40/{instance},`.
pub fn connect(nsp: &str) -> String {
    if nsp == "/" {
        "40".into()
    } else {
        format!("40{nsp},")
    }
}

/// The namespace of an instance: `/{instance}`.
pub fn namespace(instance: &str) -> String {
    format!("/{instance}")
}

/// Writes an event packet (server side): `42/{nsp},["name",argument]`.
pub fn event(nsp: &str, name: &str, argument: &serde_json::Value) -> String {
    let body = serde_json::json!([name, argument]);
    if nsp == "/" {
        format!("42{body}")
    } else {
        format!("42{nsp},{body}")
    }
}

/// Writes the open packet (server side).
pub fn open(
    sid: &str,
    ping_interval: Duration,
    ping_timeout: Duration,
    max_payload: u64,
) -> String {
    let open = serde_json::json!({
        "sid": sid,
        "upgrades": [],
        "pingInterval": u64::try_from(ping_interval.as_millis()).unwrap_or(u64::MAX),
        "pingTimeout": u64::try_from(ping_timeout.as_millis()).unwrap_or(u64::MAX),
        "maxPayload": max_payload,
    });
    format!("0{open}")
}

/// Writes the answer to a client's connect (server side): joined, with the socket's id, or
/// refused with `message`.
pub fn connect_answer(nsp: &str, sid: &str, refused: Option<&str>) -> String {
    // The root namespace is written without its name and comma.
    let prefix = if nsp == "/" {
        String::new()
    } else {
        format!("{nsp},")
    };
    match refused {
        None => format!("40{prefix}{}", serde_json::json!({ "sid": sid })),
        Some(message) => format!("44{prefix}{}", serde_json::json!({ "message": message })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_socket_io_4_sends() {
        let open = r#"0{"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}"#;
        let EnginePacket::Open(h) = read(open).unwrap() else {
            panic!("not an open packet")
        };
        assert_eq!(h.ping_interval, Duration::from_secs(25));
        assert_eq!(h.silence_limit(), Duration::from_secs(45));
        assert_eq!(h.max_payload, 1_000_000);
        assert_eq!(read("2").unwrap(), EnginePacket::Ping);
        assert_eq!(
            read("40/bot,{\"sid\":\"x\"}").unwrap(),
            EnginePacket::Message(Packet::Connect { nsp: "/bot" })
        );
        assert_eq!(
            read(r#"44/bot,{"message":"Invalid namespace"}"#).unwrap(),
            EnginePacket::Message(Packet::ConnectError {
                nsp: "/bot",
                message: "Invalid namespace".into()
            })
        );
        let ev = r#"42/bot,["messages.upsert",{"event":"messages.upsert","data":{}}]"#;
        let EnginePacket::Message(Packet::Event { nsp, ack, body }) = read(ev).unwrap() else {
            panic!("not an event")
        };
        assert_eq!((nsp, ack), ("/bot", None));
        let b = event_body(body).unwrap();
        assert_eq!(b.name, "messages.upsert");
        assert_eq!(b.argument, r#"{"event":"messages.upsert","data":{}}"#);
        // The root namespace has no prefix; an ack id comes before the JSON.
        assert_eq!(
            read(r#"4212["a",1]"#).unwrap(),
            EnginePacket::Message(Packet::Event {
                nsp: "/",
                ack: Some(12),
                body: r#"["a",1]"#
            })
        );
        let bin = r#"452-/bot,["messages.upsert",{"a":{"_placeholder":true,"num":0},"b":[{"_placeholder":true,"num":1}]}]"#;
        let EnginePacket::Message(Packet::BinaryEvent {
            nsp,
            attachments,
            body,
            ..
        }) = read(bin).unwrap()
        else {
            panic!("not a binary event")
        };
        assert_eq!((nsp, attachments), ("/bot", 2));
        let filled = fill_placeholders(body, &[&b"hi"[..], &[0xff][..]]).unwrap();
        assert_eq!(filled, r#"["messages.upsert",{"a":"aGk=","b":["/w=="]}]"#);
    }

    #[test]
    fn refuses_what_is_not_a_packet_without_panicking() {
        for bad in [
            "",
            "9",
            "4",
            "49",
            "45-/bot,[]",
            "45x-/bot,[]",
            "4599999999-[]",
            "0{}",
            "0nope",
            "42/bot,12345678901234567890[]",
            "\u{e9}",
        ] {
            assert!(read(bad).is_err(), "{bad:?} was read as a packet");
        }
        for bad in ["", "{}", "[]", "[1]", "[\"a\"", "nope", "[\"a\"]"] {
            assert!(event_body(bad).is_err(), "{bad:?} was read as an event");
        }
        assert!(fill_placeholders::<&[u8]>(r#"[{"_placeholder":true,"num":3}]"#, &[]).is_err());
        // Written otherwise than socket.io-parser writes it: read as JSON, filled alike.
        let spaced = r#"[{"b": {"num": 0, "_placeholder": true}}]"#;
        assert_eq!(
            fill_placeholders(spaced, &[&b"hi"[..]]).unwrap(),
            r#"[{"b":"aGk="}]"#
        );
        // Inside a string, the text of a placeholder is not one.
        let quoted = r#"["{\"_placeholder\":true,\"num\":0}"]"#;
        assert_eq!(fill_placeholders(quoted, &[&b"hi"[..]]).unwrap(), quoted);
        assert!(fill_placeholders::<&[u8]>(r#"[{"_placeholder":true}]"#, &[]).is_err());
    }

    #[test]
    fn the_api_key_is_redacted_and_nothing_else_changes() {
        let e = r#"{"event":"x","data":{"apikey":"inner"},"apikey":"SECRET-KEY","sender":"a"}"#;
        let r = redact_api_key(e);
        assert_eq!(
            r,
            r#"{"event":"x","data":{"apikey":"inner"},"apikey":"<redacted>","sender":"a"}"#
        );
        let null = r#"{"event":"x","apikey":null}"#;
        assert!(matches!(redact_api_key(null), Cow::Borrowed(_)));
        assert!(matches!(redact_api_key("not json"), Cow::Borrowed(_)));
    }

    #[test]
    fn writes_what_a_server_reads() {
        assert_eq!(connect("/bot"), "40/bot,");
        assert_eq!(connect("/"), "40");
        let ev = event("/bot", "call", &serde_json::json!({"a": 1}));
        assert_eq!(ev, r#"42/bot,["call",{"a":1}]"#);
        assert!(matches!(
            read(&ev),
            Ok(EnginePacket::Message(Packet::Event { .. }))
        ));
        let o = open(
            "s",
            Duration::from_secs(25),
            Duration::from_secs(20),
            1_000_000,
        );
        assert!(matches!(read(&o), Ok(EnginePacket::Open(_))));
        assert_eq!(
            connect_answer("/bot", "x", Some("Invalid namespace")),
            r#"44/bot,{"message":"Invalid namespace"}"#
        );
    }
}
