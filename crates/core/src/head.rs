//! [`MessageHead`]: the fields a bot reads first, read from a legacy message's text in the one
//! pass that also checks the whole text fits [`legacy::StoredMessage`], without building it.
//!
//! An [`Event`](crate::Event) of a legacy message keeps its frame's text and this head; the
//! typed payload is built on first access (and shared by every handler of the event). A bot that
//! reads only the text, the chat, the id, the type, the timestamp and whether it sent the
//! message never pays for the rest.
//!
//! The check never accepts what decoding refuses: every modelled field is read with the
//! decoder's own rules (a number or a numeric string for the timestamps, `null` as absent, a
//! duplicate modelled field refused), every other value is walked as `serde_json::Value` would
//! be (a number out of range or a bad escape refused). It refuses one thing decoding may accept,
//! serde_json's private markers as field names (`$serde_json::private::RawValue`): such a frame
//! is decoded at once ([`Frame::event`](crate::Frame::event) falls back to the decode, which has
//! the last word). (A build that turns on serde_json's `arbitrary_precision`, which eventsock
//! does not, hands every number of an unmodelled field over as such a marked object: its
//! messages are then decoded at once, as before.) `tests::check_agrees_with_decode` holds the
//! two to this on every fixture and tens of thousands of mutations of them.
//!
//! [`legacy::StoredMessage`]: crate::legacy::StoredMessage

use crate::wire::{self, Key};
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use std::borrow::Cow;
use std::fmt;

/// A legacy message's text (`messages.upsert`, `send.message`), checked to decode, with the
/// places in it of the fields a bot reads first. Made only by [`MessageHead::read`]; the
/// [`Event`](crate::Event) that keeps it answers them (through `MessageLike`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageHead {
    /// The message's JSON text, as the server sent it.
    json: Box<str>,
    id: Span,
    name: Span,
    from_me: bool,
    chat: Span,
    lid: Span,
    kind: Span,
    text: Span,
    caption: Span,
    timestamp: Option<i64>,
}

/// Where a string field is: a range of the text (it had no escapes), or its unescaped copy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
enum Span {
    #[default]
    Absent,
    At(usize, usize),
    Owned(Box<str>),
}

impl Span {
    fn of(base: &str, value: Option<Key<'_>>) -> Span {
        match value.map(Key::into_cow) {
            None => Span::Absent,
            Some(Cow::Borrowed(s)) => {
                // A borrowed string is a slice of `base`: its place is its distance from the start.
                let start = (s.as_ptr() as usize).wrapping_sub(base.as_ptr() as usize);
                match start
                    .checked_add(s.len())
                    .and_then(|end| base.get(start..end))
                {
                    Some(slice) if slice.as_ptr() == s.as_ptr() => Span::At(start, s.len()),
                    _ => Span::Owned(s.into()),
                }
            }
            Some(Cow::Owned(s)) => Span::Owned(s.into_boxed_str()),
        }
    }

    fn get<'t>(&'t self, text: &'t str) -> Option<&'t str> {
        match self {
            Span::Absent => None,
            Span::At(start, len) => text.get(*start..start.checked_add(*len)?),
            Span::Owned(s) => Some(s),
        }
    }
}

impl MessageHead {
    /// Checks that the whole of `text` decodes as a legacy `StoredMessage` and reads its head;
    /// the head keeps a copy of `text`.
    pub fn read(text: &str) -> Result<MessageHead, serde_json::Error> {
        let mut de = serde_json::Deserializer::from_str(text);
        let raw = de.deserialize_map(HeadVisitor)?;
        de.end()?;
        Ok(MessageHead {
            json: text.into(),
            id: Span::of(text, raw.id),
            name: Span::of(text, raw.name),
            from_me: raw.from_me,
            chat: Span::of(text, raw.chat),
            lid: Span::of(text, raw.lid),
            kind: Span::of(text, raw.kind),
            text: Span::of(text, raw.text),
            caption: Span::of(text, raw.caption),
            timestamp: raw.timestamp,
        })
    }

    /// `content.text`, else `content.caption` (as `StoredMessage::text`).
    pub(crate) fn text(&self) -> Option<&str> {
        self.text.get(&self.json).or(self.caption.get(&self.json))
    }

    /// `keyRemoteJid`, else `keyLid`; never empty (as the payload's `MessageLike::chat`).
    pub(crate) fn chat(&self) -> Option<&str> {
        self.chat
            .get(&self.json)
            .or(self.lid.get(&self.json))
            .filter(|c| !c.is_empty())
    }

    /// `pushName`.
    pub(crate) fn sender_name(&self) -> Option<&str> {
        self.name.get(&self.json)
    }

    /// `keyId`.
    pub(crate) fn message_id(&self) -> Option<&str> {
        self.id.get(&self.json)
    }

    /// `messageType`.
    pub(crate) fn message_type(&self) -> Option<&str> {
        self.kind.get(&self.json)
    }

    /// `keyFromMe`.
    pub(crate) fn is_from_me(&self) -> bool {
        self.from_me
    }

    /// `keyLid`, when not empty.
    pub(crate) fn lid(&self) -> Option<&str> {
        self.lid.get(&self.json).filter(|l| !l.is_empty())
    }

    /// `messageTimestamp`, in seconds.
    pub(crate) fn timestamp(&self) -> Option<i64> {
        self.timestamp
    }

    /// The message's JSON text.
    pub(crate) fn json(&self) -> &str {
        &self.json
    }
}

/// The head as read, still borrowing the text.
#[derive(Default)]
struct RawHead<'de> {
    id: Option<Key<'de>>,
    name: Option<Key<'de>>,
    from_me: bool,
    chat: Option<Key<'de>>,
    lid: Option<Key<'de>>,
    kind: Option<Key<'de>>,
    text: Option<Key<'de>>,
    caption: Option<Key<'de>>,
    timestamp: Option<i64>,
}

/// Refuses a modelled field seen twice, as decoding does.
struct Seen(u32);

impl Seen {
    fn first<E: de::Error>(&mut self, bit: u32, name: &'static str) -> Result<(), E> {
        if self.0 & (1 << bit) != 0 {
            return Err(E::duplicate_field(name));
        }
        self.0 |= 1 << bit;
        Ok(())
    }
}

struct HeadVisitor;

impl<'de> Visitor<'de> for HeadVisitor {
    type Value = RawHead<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object (StoredMessage)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawHead<'de>, A::Error> {
        let mut head = RawHead::default();
        let mut seen = Seen(0);
        while let Some(key) = map.next_key::<Key<'de>>()? {
            // The fields and rules of `legacy::StoredMessage`'s decoding, in its order.
            match key.as_str() {
                "id" => {
                    seen.first(0, "id")?;
                    map.next_value::<OptInt>()?;
                }
                "keyId" => {
                    seen.first(1, "keyId")?;
                    head.id = map.next_value()?;
                }
                "keyFromMe" => {
                    seen.first(2, "keyFromMe")?;
                    head.from_me = map.next_value::<Flag>()?.0;
                }
                "keyRemoteJid" => {
                    seen.first(3, "keyRemoteJid")?;
                    head.chat = map.next_value()?;
                }
                "keyLid" => {
                    seen.first(4, "keyLid")?;
                    head.lid = map.next_value()?;
                }
                "keyParticipant" => {
                    seen.first(5, "keyParticipant")?;
                    map.next_value::<Option<Key<'de>>>()?;
                }
                "keyParticipantLid" => {
                    seen.first(6, "keyParticipantLid")?;
                    map.next_value::<Option<Key<'de>>>()?;
                }
                "pushName" => {
                    seen.first(7, "pushName")?;
                    head.name = map.next_value()?;
                }
                "messageType" => {
                    seen.first(8, "messageType")?;
                    head.kind = map.next_value()?;
                }
                "content" => {
                    seen.first(9, "content")?;
                    if let Some(content) = map.next_value::<Option<Content<'de>>>()? {
                        head.text = content.text;
                        head.caption = content.caption;
                    }
                }
                "messageTimestamp" => {
                    seen.first(10, "messageTimestamp")?;
                    head.timestamp = map.next_value::<OptInt>()?.0;
                }
                "instanceId" => {
                    seen.first(11, "instanceId")?;
                    map.next_value::<OptInt>()?;
                }
                "device" => {
                    seen.first(12, "device")?;
                    map.next_value::<Option<Key<'de>>>()?;
                }
                "isGroup" => {
                    seen.first(13, "isGroup")?;
                    map.next_value::<Flag>()?;
                }
                "info" => {
                    seen.first(14, "info")?;
                    map.next_value_seed(OptObject("type"))?;
                }
                "media" => {
                    seen.first(15, "media")?;
                    map.next_value_seed(OptObject("path"))?;
                }
                "externalAttributes" => {
                    seen.first(16, "externalAttributes")?;
                    map.next_value::<AnyJson>()?;
                }
                _ => {
                    map.next_value::<AnyJson>()?;
                }
            }
        }
        Ok(head)
    }
}

/// `content` (`legacy::MessageContent`), checked, with its text and caption.
struct Content<'de> {
    text: Option<Key<'de>>,
    caption: Option<Key<'de>>,
}

impl<'de> Deserialize<'de> for Content<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ContentVisitor;
        impl<'de> Visitor<'de> for ContentVisitor {
            type Value = Content<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object (MessageContent)")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Content<'de>, A::Error> {
                let (mut text, mut caption) = (None, None);
                let mut seen = Seen(0);
                while let Some(key) = map.next_key::<Key<'de>>()? {
                    match key.as_str() {
                        "text" => {
                            seen.first(0, "text")?;
                            text = map.next_value()?;
                        }
                        "caption" => {
                            seen.first(1, "caption")?;
                            caption = map.next_value()?;
                        }
                        "mimetype" => {
                            seen.first(2, "mimetype")?;
                            map.next_value::<Option<Key<'de>>>()?;
                        }
                        "url" => {
                            seen.first(3, "url")?;
                            map.next_value::<Option<Key<'de>>>()?;
                        }
                        "fileLength" => {
                            seen.first(4, "fileLength")?;
                            map.next_value::<OptIntString>()?;
                        }
                        _ => {
                            map.next_value::<AnyJson>()?;
                        }
                    }
                }
                Ok(Content { text, caption })
            }
        }
        d.deserialize_map(ContentVisitor)
    }
}

/// An optional object with one modelled string field (`info`'s `type`, `media`'s `path`).
struct OptObject(&'static str);

impl<'de> DeserializeSeed<'de> for OptObject {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_option(self)
    }
}

impl<'de> Visitor<'de> for OptObject {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "an object with `{}`", self.0)
    }

    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = false;
        while let Some(key) = map.next_key::<Key<'de>>()? {
            if key.as_str() == self.0 {
                if seen {
                    return Err(de::Error::duplicate_field(self.0));
                }
                seen = true;
                map.next_value::<Option<Key<'de>>>()?;
            } else {
                map.next_value::<AnyJson>()?;
            }
        }
        Ok(())
    }
}

/// `wire::opt_int`'s rules.
struct OptInt(Option<i64>);

impl<'de> Deserialize<'de> for OptInt {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        wire::opt_int::deserialize(d).map(OptInt)
    }
}

/// `wire::opt_int_string`'s rules.
struct OptIntString;

impl<'de> Deserialize<'de> for OptIntString {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        wire::opt_int_string::deserialize(d).map(|_| OptIntString)
    }
}

/// A `bool` read with `wire::null_default`.
struct Flag(bool);

impl<'de> Deserialize<'de> for Flag {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        wire::null_default(d).map(Flag)
    }
}

/// Any JSON value, checked as `serde_json::Value` reads it, kept nowhere.
struct AnyJson;

impl<'de> Deserialize<'de> for AnyJson {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(AnyJson)
    }
}

impl<'de> Visitor<'de> for AnyJson {
    type Value = AnyJson;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<AnyJson, E> {
        Ok(AnyJson)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<AnyJson, E> {
        Ok(AnyJson)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<AnyJson, E> {
        Ok(AnyJson)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<AnyJson, E> {
        Ok(AnyJson)
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<AnyJson, E> {
        Ok(AnyJson)
    }

    fn visit_unit<E: de::Error>(self) -> Result<AnyJson, E> {
        Ok(AnyJson)
    }

    fn visit_none<E: de::Error>(self) -> Result<AnyJson, E> {
        Ok(AnyJson)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<AnyJson, D::Error> {
        AnyJson::deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<AnyJson, A::Error> {
        while seq.next_element::<AnyJson>()?.is_some() {}
        Ok(AnyJson)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<AnyJson, A::Error> {
        while let Some(key) = map.next_key::<Key<'de>>()? {
            // serde_json's own markers (a raw value, an arbitrary-precision number) make
            // `Value` read the object differently: refused here, such a frame is decoded at
            // once, and the decode has the last word.
            if key.as_str().starts_with("$serde_json::private::") {
                return Err(de::Error::custom(
                    "serde_json's private marker as a field name",
                ));
            }
            map.next_value::<AnyJson>()?;
        }
        Ok(AnyJson)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::legacy::MessagesUpsert;
    use crate::MessageLike;

    fn fixtures() -> Vec<String> {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/legacy");
        let mut out = Vec::new();
        let mut dirs = vec![std::path::PathBuf::from(root)];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                } else if path.extension().is_some_and(|e| e == "json") {
                    out.push(std::fs::read_to_string(path).unwrap());
                }
            }
        }
        out.sort();
        out
    }

    /// The head answers as the built payload does, and never accepts what decoding refuses;
    /// it refuses what decoding accepts only for serde_json's private markers (the frame is then
    /// decoded at once).
    fn agree(text: &str) {
        let head = MessageHead::read(text);
        let full = serde_json::from_str::<MessagesUpsert>(text);
        match (&head, &full) {
            (Ok(h), Ok(m)) => {
                assert_eq!(h.sender_name(), m.push_name.as_deref(), "name of {text}");
                assert_eq!(h.text(), m.text(), "text of {text}");
                assert_eq!(h.chat(), m.chat(), "chat of {text}");
                assert_eq!(h.message_id(), m.message_id(), "id of {text}");
                assert_eq!(h.message_type(), m.message_type(), "type of {text}");
                assert_eq!(h.is_from_me(), m.is_from_me(), "from-me of {text}");
                assert_eq!(h.lid(), m.lid(), "lid of {text}");
                assert_eq!(h.timestamp(), MessageLike::timestamp(m), "time of {text}");
            }
            (Err(_), Err(_)) => {}
            (Err(_), Ok(_)) if text.contains("serde_json::private") => {}
            _ => panic!(
                "the check and the decode disagree on {text:?}: check {:?}, decode {:?}",
                head.map(drop),
                full.map(drop)
            ),
        }
    }

    #[test]
    fn check_agrees_with_decode() {
        let fixtures = fixtures();
        assert!(fixtures.len() > 20, "fixtures found: {}", fixtures.len());
        let splices = [
            "1e999",
            "-",
            "\"\\ud800\"",
            "\"\\u00e9\"",
            "null",
            "[]",
            "{}",
            "\"12\"",
            "\"x\"",
            "1.5",
            "true",
            "18446744073709551616",
            "{\"text\":1}",
            "\"\\\"\"",
            ",",
            ":",
            "}",
            r#"{"$serde_json::private::RawValue":0}"#,
            r#"{"$serde_json::private::RawValue":"1"}"#,
            r#"{"$serde_json::private::RawValu\u0065":0}"#,
            r#"{"a":{"$serde_json::private::Number":"1"}}"#,
        ];
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move |n: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % n.max(1) as u64) as usize
        };
        let mut cases = 0;
        for text in &fixtures {
            agree(text);
            for _ in 0..2_000 {
                let mut t = text.clone().into_bytes();
                match next(3) {
                    // Replace a value: after a colon, up to the next comma or brace.
                    0 => {
                        let colons: Vec<usize> = (0..t.len()).filter(|&i| t[i] == b':').collect();
                        if colons.is_empty() {
                            continue;
                        }
                        let at = colons[next(colons.len())] + 1;
                        let end = (at..t.len())
                            .find(|&i| matches!(t[i], b',' | b'}'))
                            .unwrap_or(t.len());
                        let splice = splices[next(splices.len())].as_bytes();
                        t.splice(at..end, splice.iter().copied());
                    }
                    // Repeat a range (duplicate fields, among others).
                    1 => {
                        let a = next(t.len());
                        let b = (a + next(60)).min(t.len());
                        let copy = t[a..b].to_vec();
                        t.splice(b..b, copy);
                    }
                    // Flip a byte.
                    _ => {
                        let at = next(t.len());
                        let bytes = b"{}[]\",:\\0a \x01";
                        t[at] = bytes[next(bytes.len())];
                    }
                }
                let Ok(t) = String::from_utf8(t) else {
                    continue;
                };
                agree(&t);
                cases += 1;
            }
        }
        assert!(cases > 20_000, "mutations tried: {cases}");
    }

    /// serde_json's raw-value marker, which `Value` reads its own way, never gets a frame past
    /// the check that its decode refuses (it did: the payload's first access panicked).
    #[test]
    fn serde_json_markers_are_left_to_the_decode() {
        let refused = r#"{"keyId":"A","externalAttributes":{"$serde_json::private::RawValue":0}}"#;
        assert!(MessageHead::read(refused).is_err());
        assert!(serde_json::from_str::<MessagesUpsert>(refused).is_err());
        let accepted =
            r#"{"keyId":"A","externalAttributes":{"$serde_json::private::RawValue":"1"}}"#;
        assert!(MessageHead::read(accepted).is_err());
        assert!(serde_json::from_str::<MessagesUpsert>(accepted).is_ok());
        agree(refused);
        agree(accepted);
    }

    #[test]
    fn escaped_strings_are_unescaped() {
        let text = r#"{"keyId":"A\"B","keyRemoteJid":"55@s.whatsapp.net","content":{"caption":"ol\u00e1"}}"#;
        let head = MessageHead::read(text).unwrap();
        assert_eq!(head.message_id(), Some("A\"B"));
        assert_eq!(head.text(), Some("olá"));
        assert_eq!(head.chat(), Some("55@s.whatsapp.net"));
    }
}
