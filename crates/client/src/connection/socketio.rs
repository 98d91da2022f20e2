//! A connection's Socket.IO session (Evolution API): the open packet, the namespace join, the
//! server's heartbeat, and event packets, of which the subscribed event's envelopes are queued.
//!
//! Packets are read by `eventsock_core::socketio`; this is the session's state between them, and
//! the [`Reader`]'s steps that act on what the session made of a frame.

use super::{Cause, Reader, Step};
use crate::status::Counters;
use bytes::Bytes;
use eventsock_core::socketio::{self, EnginePacket, Handshake, Packet};
use eventsock_core::{human, EventName};
use std::time::{Duration, SystemTime};

/// The most attachments one binary event of the subscribed event may announce (their bytes are
/// bounded too, by the frame limit): Evolution's messages carry a handful. Another event's are
/// only counted as they pass, never kept, whatever their number (`messages.set`, a history
/// sync, carries every message's).
const MAX_ATTACHMENTS: usize = 1024;

/// What the session made of one frame.
pub(super) enum Heard {
    /// Nothing for the subscription (a packet of another event, a noop...).
    Nothing,
    /// The server's open packet: the namespace connect is to be written; the server must be
    /// heard from again within the duration.
    Opened(String, Duration),
    /// The server's heartbeat: it is to be answered, and heard again within the duration.
    Ping(Duration),
    /// The namespace was joined: the subscription is up.
    Joined,
    /// An envelope of the subscribed event, to queue.
    Event(Bytes),
    /// A packet that cannot be read: reported, and the stream goes on.
    Unreadable(String),
    /// The session ends, for this reason.
    End(End),
}

/// Why a session ended.
pub(super) enum End {
    /// The server refused the namespace with this message.
    Refused(String),
    /// The server ended the session or left the namespace.
    Left(&'static str),
    /// The server broke the protocol.
    Protocol(String),
}

/// A binary event waiting for its attachments.
struct Binary {
    /// Whether it is to be delivered (an event) or only skipped (an ack).
    deliver: bool,
    body: String,
    want: usize,
    /// The attachments kept (an event to deliver).
    got: Vec<Bytes>,
    /// The attachments come so far.
    received: usize,
    /// Its bytes so far, JSON and attachments: bounded like one frame (an event to deliver).
    size: usize,
    /// Why its header could not be read: told once its attachments have passed.
    unreadable: Option<String>,
}

/// The session's state.
pub(super) struct Session {
    /// The API key, redacted from whatever a frame that cannot be read is told with.
    key: String,
    nsp: String,
    event: EventName,
    limit: usize,
    open: Option<Handshake>,
    joined: bool,
    binary: Option<Binary>,
}

impl Session {
    /// A session that joins `instance`'s namespace and keeps `event`'s envelopes, none larger
    /// than `limit` bytes (attachments included); `key` is never told.
    pub(super) fn new(instance: &str, event: &EventName, limit: usize, key: &str) -> Session {
        Session {
            key: key.to_owned(),
            nsp: socketio::namespace(instance),
            event: event.clone(),
            limit,
            open: None,
            joined: false,
            binary: None,
        }
    }

    /// One data frame: text (`Some`) or binary.
    pub(super) fn frame(&mut self, text: Option<&str>, bytes: Bytes) -> Heard {
        match text {
            None => self.attachment(bytes),
            Some(_) if self.binary.is_some() => End::Protocol(
                "a text packet came while a binary event waited for its attachments".into(),
            )
            .into(),
            Some(text) => match socketio::read(text) {
                Ok(packet) => self.packet(packet, &bytes),
                Err(e) => self.unreadable(&e.reason, text),
            },
        }
    }

    /// A packet read from `frame`'s text.
    fn packet(&mut self, packet: EnginePacket<'_>, frame: &Bytes) -> Heard {
        match packet {
            EnginePacket::Open(open) => {
                if self.open.is_some() {
                    return Heard::Unreadable("a second open packet".into());
                }
                let silence = open.silence_limit();
                self.open = Some(open);
                Heard::Opened(socketio::connect(&self.nsp), silence)
            }
            EnginePacket::Ping => match &self.open {
                Some(open) => Heard::Ping(open.silence_limit()),
                None => End::Protocol("a ping before the open packet".into()).into(),
            },
            EnginePacket::Pong | EnginePacket::Noop => Heard::Nothing,
            EnginePacket::Close => End::Left("the server closed the Engine.IO session").into(),
            EnginePacket::Message(p) => self.message(p, frame),
        }
    }

    fn message(&mut self, packet: Packet<'_>, frame: &Bytes) -> Heard {
        match packet {
            Packet::Connect { nsp } if nsp == self.nsp => {
                if std::mem::replace(&mut self.joined, true) {
                    Heard::Nothing
                } else {
                    Heard::Joined
                }
            }
            Packet::ConnectError { nsp, message } if nsp == self.nsp => {
                // The key redacted from the server's words, then cut (not escaped: the cause
                // is escaped where it is told).
                let message = self.redact(&message);
                let message = match message.char_indices().nth(200) {
                    Some((i, _)) => format!("{}…", &message[..i]),
                    None => message,
                };
                End::Refused(message).into()
            }
            Packet::Disconnect { nsp } if nsp == self.nsp => {
                End::Left("the server made the client leave the namespace").into()
            }
            Packet::Event { nsp, body, .. } if nsp == self.nsp => self.event(body, frame),
            Packet::BinaryEvent {
                nsp,
                attachments,
                body,
                ..
            } => self.expect(nsp == self.nsp, attachments, body, frame),
            Packet::BinaryAck { attachments, .. } => self.expect(false, attachments, "", frame),
            // Another namespace's packets, acks: nothing for this subscription.
            _ => Heard::Nothing,
        }
    }

    /// A frame that cannot be read, told with its start, the key redacted first (an excerpt
    /// could cut the key, and then no longer show it whole to redact).
    /// The words are escaped here, the key redacted from both (serde's reason can quote the
    /// input).
    fn unreadable(&self, reason: &str, text: &str) -> Heard {
        Heard::Unreadable(format!(
            "not a Socket.IO packet ({}): {}",
            human::excerpt(&self.redact(reason), 120),
            human::excerpt(&self.redact(text), 60)
        ))
    }

    /// `text` with the key redacted.
    fn redact(&self, text: &str) -> String {
        super::redact(text.to_owned(), &self.key)
    }

    /// An event packet's body, read from `source`'s bytes: its envelope, if it is the
    /// subscribed event (a slice of those bytes, unless the key had to be redacted).
    fn event(&self, body: &str, source: &Bytes) -> Heard {
        match socketio::event_body(body) {
            Err(e) => self.unreadable(&e.reason, body),
            Ok(ev) if ev.name != self.event.as_str() => Heard::Nothing,
            Ok(ev) => match socketio::redact_api_key(ev.argument) {
                std::borrow::Cow::Borrowed(envelope) => Heard::Event(within(source, envelope)),
                std::borrow::Cow::Owned(redacted) => Heard::Event(Bytes::from(redacted)),
            },
        }
    }

    /// A binary packet announcing `want` attachments: kept if it is the subscribed event
    /// (`ours`: of this namespace, and its name read from its header), else only counted.
    fn expect(&mut self, ours: bool, want: usize, body: &str, frame: &Bytes) -> Heard {
        let mut unreadable = None;
        let deliver = ours
            && match socketio::event_body(body) {
                Ok(ev) => ev.name == self.event.as_str(),
                Err(e) => {
                    if want == 0 {
                        return self.unreadable(&e.reason, body);
                    }
                    // Its attachments still follow: counted, then it is told of.
                    if let Heard::Unreadable(why) = self.unreadable(&e.reason, body) {
                        unreadable = Some(why);
                    }
                    false
                }
            };
        if deliver && want > MAX_ATTACHMENTS {
            return End::Protocol(format!(
                "a binary packet announces {want} attachments (at most {MAX_ATTACHMENTS} are taken)"
            ))
            .into();
        }
        if want == 0 {
            return if deliver {
                self.event(body, frame)
            } else {
                Heard::Nothing
            };
        }
        self.binary = Some(Binary {
            deliver,
            body: if deliver {
                body.to_owned()
            } else {
                String::new()
            },
            want,
            got: Vec::with_capacity(if deliver { want } else { 0 }),
            received: 0,
            size: body.len(),
            unreadable,
        });
        Heard::Nothing
    }

    fn attachment(&mut self, bytes: Bytes) -> Heard {
        let Some(b) = self.binary.as_mut() else {
            return End::Protocol("a binary frame that no binary packet announced".into()).into();
        };
        b.received += 1;
        if b.deliver {
            b.size = b.size.saturating_add(bytes.len());
            if b.size > self.limit {
                return End::Protocol(format!(
                    "a binary event exceeds {} with its attachments",
                    human::bytes(self.limit as u64)
                ))
                .into();
            }
            b.got.push(bytes);
        }
        if b.received < b.want {
            return Heard::Nothing;
        }
        let Some(b) = self.binary.take() else {
            return Heard::Nothing;
        };
        if !b.deliver {
            return b.unreadable.map_or(Heard::Nothing, Heard::Unreadable);
        }
        match socketio::fill_placeholders(&b.body, &b.got) {
            Ok(body) => {
                let filled = Bytes::from(body);
                match std::str::from_utf8(&filled) {
                    Ok(text) => self.event(text, &filled),
                    Err(_) => self.unreadable("a binary event that is not UTF-8", &b.body),
                }
            }
            Err(e) => self.unreadable(&e.reason, &b.body),
        }
    }
}

/// `part` as a slice of `source`'s bytes when it lies within them (no copy), else a copy.
fn within(source: &Bytes, part: &str) -> Bytes {
    let (start, end) = (
        source.as_ptr() as usize,
        source.as_ptr() as usize + source.len(),
    );
    let at = part.as_ptr() as usize;
    if start <= at && at + part.len() <= end {
        source.slice_ref(part.as_bytes())
    } else {
        Bytes::copy_from_slice(part.as_bytes())
    }
}

impl Reader<'_> {
    /// A Socket.IO frame (Evolution API): the session reads it; the subscribed event's envelope
    /// is queued.
    pub(super) fn session_frame(&mut self, text: bool, bytes: Bytes, heard: SystemTime) -> Step {
        let Some(session) = self.session.as_mut() else {
            return self.queue(text, bytes, heard);
        };
        let heard_packet = if text {
            match std::str::from_utf8(&bytes) {
                Ok(t) => session.frame(Some(t), bytes.clone()),
                Err(_) => return Step::End(Cause::Protocol("a text frame is not UTF-8".into())),
            }
        } else {
            session.frame(None, bytes)
        };
        match heard_packet {
            Heard::Nothing => Step::Go,
            Heard::Opened(connect, silence) => {
                self.controls.connect(connect);
                self.join_deadline =
                    Some(tokio::time::Instant::now() + self.p.config.connect_timeout);
                self.heartbeat(silence)
            }
            Heard::Ping(silence) => {
                self.controls.packet(eventsock_core::socketio::PONG);
                self.heartbeat(silence)
            }
            Heard::Joined => {
                self.join_deadline = None;
                Step::Up
            }
            Heard::Event(envelope) => self.queue(true, envelope, heard),
            Heard::Unreadable(why) => {
                Counters::bump(&self.p.counters.decode_errors);
                // Escaped and redacted by the session.
                tracing::warn!("{why}; skipped");
                Step::Go
            }
            Heard::End(End::Refused(message)) => Step::End(Cause::NamespaceRefused {
                namespace: eventsock_core::socketio::namespace(self.p.source.instance()),
                message,
                setting: self.p.event.evolution_setting(),
            }),
            Heard::End(End::Left(why)) => Step::End(Cause::SessionEnded(why)),
            Heard::End(End::Protocol(why)) => Step::End(Cause::Protocol(why)),
        }
    }

    /// The frame that waited for room is queued: on Socket.IO, the server's heartbeat is
    /// awaited again, from now.
    pub(super) fn resumed(&mut self) -> Step {
        if self.session.is_some() && !self.silence.is_zero() {
            return self.heartbeat(self.silence);
        }
        Step::Go
    }

    /// The server must be heard from again within `silence`.
    fn heartbeat(&mut self, silence: Duration) -> Step {
        if self.closing_deadline.is_some() {
            return Step::Go;
        }
        self.silence = silence;
        self.heartbeat_deadline = Some(tokio::time::Instant::now() + silence);
        match self.next_deadline() {
            Some(at) => Step::Wait(at),
            None => Step::Go,
        }
    }
}

impl From<End> for Heard {
    fn from(end: End) -> Heard {
        Heard::End(end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> Session {
        Session::new("bot", &EventName::parse("messages.upsert"), 1024, "SECRET")
    }

    /// A text frame, read as the connection reads one: its text within its bytes.
    fn text(s: &mut Session, t: &str) -> Heard {
        let bytes = Bytes::copy_from_slice(t.as_bytes());
        let text = std::str::from_utf8(&bytes).unwrap();
        s.frame(Some(text), bytes.clone())
    }

    #[test]
    fn joins_then_keeps_only_its_event() {
        let mut s = session();
        let open = r#"0{"sid":"a","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}"#;
        assert!(
            matches!(text(&mut s, open), Heard::Opened(c, d) if c == "40/bot," && d == Duration::from_secs(45))
        );
        assert!(matches!(
            text(&mut s, r#"40/bot,{"sid":"b"}"#),
            Heard::Joined
        ));
        assert!(matches!(text(&mut s, "2"), Heard::Ping(_)));
        let other = r#"42/bot,["messages.update",{"event":"messages.update","data":{}}]"#;
        assert!(matches!(text(&mut s, other), Heard::Nothing));
        let elsewhere = r#"42/other,["messages.upsert",{"data":{}}]"#;
        assert!(matches!(text(&mut s, elsewhere), Heard::Nothing));
        let mine =
            r#"42/bot,["messages.upsert",{"event":"messages.upsert","data":{"a":1},"apikey":"K"}]"#;
        let Heard::Event(e) = text(&mut s, mine) else {
            panic!("not queued")
        };
        assert_eq!(
            &e[..],
            br#"{"event":"messages.upsert","data":{"a":1},"apikey":"<redacted>"}"#
        );
    }

    #[test]
    fn binary_events_are_put_together_and_bounded() {
        let mut s = session();
        let head =
            r#"451-/bot,["messages.upsert",{"data":{"secret":{"_placeholder":true,"num":0}}}]"#;
        assert!(matches!(text(&mut s, head), Heard::Nothing));
        let Heard::Event(e) = s.frame(None, Bytes::from_static(b"\x00\x01")) else {
            panic!("not put together")
        };
        assert_eq!(&e[..], br#"{"data":{"secret":"AAE="}}"#);
        // A text packet amid the attachments, a stray binary frame, too many or too large.
        assert!(matches!(text(&mut s, head), Heard::Nothing));
        assert!(matches!(text(&mut s, "2"), Heard::End(End::Protocol(_))));
        let mut s = session();
        assert!(matches!(
            s.frame(None, Bytes::new()),
            Heard::End(End::Protocol(_))
        ));
        let many = r#"452000-/bot,["messages.upsert",{}]"#;
        assert!(matches!(text(&mut s, many), Heard::End(End::Protocol(_))));
        let mut s = session();
        text(&mut s, head);
        assert!(matches!(
            s.frame(None, Bytes::from(vec![0; 2048])),
            Heard::End(End::Protocol(_))
        ));
    }

    #[test]
    fn another_events_attachments_pass_uncounted_against_the_limits() {
        let mut s = session();
        // A history sync: 5,000 attachments of 1 KiB, beyond both the count and the byte limit
        // of an event kept; then the subscribed event.
        let history = r#"455000-/bot,["messages.set",{"data":[]}]"#;
        assert!(matches!(text(&mut s, history), Heard::Nothing));
        for _ in 0..5000 {
            assert!(matches!(
                s.frame(None, Bytes::from(vec![0; 1024])),
                Heard::Nothing
            ));
        }
        let mine = r#"42/bot,["messages.upsert",{"data":1}]"#;
        assert!(matches!(text(&mut s, mine), Heard::Event(_)));
        // An event without its argument, plain or binary, is not one.
        assert!(matches!(
            text(&mut s, r#"42/bot,["messages.upsert"]"#),
            Heard::Unreadable(_)
        ));
        assert!(matches!(
            text(&mut s, r#"451-/bot,["messages.upsert"]"#),
            Heard::Nothing
        ));
        assert!(matches!(
            s.frame(None, Bytes::from_static(b"x")),
            Heard::Unreadable(_)
        ));
    }

    #[test]
    fn a_refusal_and_garbage_are_told_apart() {
        let mut s = session();
        assert!(matches!(
            text(&mut s, r#"44/bot,{"message":"Invalid namespace"}"#),
            Heard::End(End::Refused(m)) if m == "Invalid namespace"
        ));
        for bad in ["", "x", "42/bot,nope", "42/bot,[]", "4", "0{"] {
            assert!(
                matches!(text(&mut s, bad), Heard::Unreadable(_)),
                "{bad:?} was taken"
            );
        }
        // The key is redacted before the excerpt is cut, in the text and in serde's reason,
        // which quotes the input (here far past where a reason is cut).
        let long = format!("42/bot,{}SECRET", "x".repeat(50));
        let Heard::Unreadable(told) = text(&mut s, &long) else {
            panic!("taken")
        };
        assert!(!told.contains("SECRET") && !told.contains("SECR"), "{told}");
        let quoted = format!("42/bot,\"{}SECRET\"", "y".repeat(100));
        let Heard::Unreadable(told) = text(&mut s, &quoted) else {
            panic!("taken")
        };
        assert!(!told.contains("SECR"), "{told}");
        let refused = format!(r#"44/bot,{{"message":"{}SECRET"}}"#, "z".repeat(190));
        let Heard::End(End::Refused(told)) = text(&mut s, &refused) else {
            panic!("not a refusal")
        };
        assert!(
            !told.contains("SECR") && told.chars().count() <= 201,
            "{told}"
        );
        assert!(
            matches!(text(&mut s, "2"), Heard::End(End::Protocol(_))),
            "a ping before the open packet"
        );
    }
}
