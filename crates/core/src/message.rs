//! Messages, whichever server sent them: the [`MessageLike`] view of message payloads.

use crate::{legacy, v2};

/// A payload that is a chat message, whichever server sent it.
pub trait MessageLike {
    /// The text, or a media caption.
    fn text(&self) -> Option<&str>;
    /// The chat the message belongs to: its JID, or its LID for chats the server knows only by
    /// LID (the server leaves `keyRemoteJid` out then, and gives `keyLid`). `None` when the
    /// server sent neither: old-style group ids (`5511...-1600000000@g.us`) fail the server's
    /// JID check, and such a message names its sender (`keyParticipant`) but not its group.
    fn chat(&self) -> Option<&str>;
    /// The WhatsApp message id.
    fn message_id(&self) -> Option<&str>;
    /// The name the sender gave themselves (`pushName`), when the server sent it.
    fn sender_name(&self) -> Option<&str>;
    /// The message type (`conversation`, `extendedTextMessage`, `imageMessage`...).
    fn message_type(&self) -> Option<&str>;
    /// Whether this instance sent it.
    fn is_from_me(&self) -> bool;
    /// The chat's LID (`keyLid`), when the server knows it.
    fn lid(&self) -> Option<&str>;
    /// When it was sent, in seconds since the epoch.
    fn timestamp(&self) -> Option<i64>;
    /// The media the message carries (an image, a voice note, a document...), described by
    /// its metadata; `None` for a message without media. The bytes are downloaded apart (the
    /// handler's `Ctx::download`).
    fn media(&self) -> Option<MediaInfo<'_>>;

    /// What a reply needs to quote this message (see [`QuotedMessage`]), or `None` when the
    /// payload lacks its id, chat or type, without which the server cannot build a quote.
    fn quote(&self) -> Option<QuotedMessage> {
        QuotedMessage::new(
            self.message_id()?,
            self.is_from_me(),
            self.chat()?,
            self.message_type()?,
            self.text(),
            self.timestamp(),
        )
    }
}

/// A message to quote, in the form the server's `options.quotedMessage` takes (the columns of
/// its `Message` row that `sendMessageWithTyping` in CodeChat's whatsapp.service.ts reads to
/// build the quote): it needs no database on the server, unlike a row id.
///
/// [`MessageLike::quote`] makes one from a received message, with its text or caption as the
/// body: WhatsApp shows the quote with that text (and without a media thumbnail).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QuotedMessage {
    /// The quoted message's WhatsApp id.
    pub key_id: String,
    /// Whether this instance sent it.
    pub key_from_me: bool,
    /// Its chat.
    pub key_remote_jid: String,
    /// Its type (`conversation`, `imageMessage`...).
    pub message_type: String,
    /// Its body, under that type: `{text}` or `{caption}`.
    pub content: serde_json::Value,
    /// When it was sent, in seconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_timestamp: Option<i64>,
}

impl QuotedMessage {
    /// The quote of message `key_id` of `chat`, of `message_type`, whose text (or caption) is
    /// `text`; `None` without an id or a type, which the server needs to build a quote.
    pub fn new(
        key_id: &str,
        key_from_me: bool,
        chat: &str,
        message_type: &str,
        text: Option<&str>,
        message_timestamp: Option<i64>,
    ) -> Option<QuotedMessage> {
        if key_id.is_empty() || message_type.is_empty() {
            return None;
        }
        let content = match (message_type, text) {
            (_, None) => serde_json::json!({}),
            ("conversation" | "extendedTextMessage", Some(text)) => {
                serde_json::json!({"text": text})
            }
            (_, Some(caption)) => serde_json::json!({"caption": caption}),
        };
        Some(QuotedMessage {
            key_id: key_id.to_owned(),
            key_from_me,
            key_remote_jid: chat.to_owned(),
            message_type: message_type.to_owned(),
            content,
            message_timestamp,
        })
    }
}

/// What kind of media a message carries: the server's `TypeMediaMessage` (CodeChat's
/// whatsapp.service.ts), the message types it can download.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MediaKind {
    /// `imageMessage`.
    Image,
    /// `documentMessage` (and `documentWithCaptionMessage`).
    Document,
    /// `audioMessage`: a voice note or an audio file.
    Audio,
    /// `videoMessage`.
    Video,
    /// `stickerMessage`.
    Sticker,
    /// `ptvMessage`: a round video note.
    VideoNote,
}

impl MediaKind {
    /// The kind of a message of type `message_type`, if that type carries media.
    pub fn of(message_type: &str) -> Option<MediaKind> {
        Some(match message_type {
            "imageMessage" => MediaKind::Image,
            "documentMessage" | "documentWithCaptionMessage" => MediaKind::Document,
            "audioMessage" => MediaKind::Audio,
            "videoMessage" => MediaKind::Video,
            "stickerMessage" => MediaKind::Sticker,
            "ptvMessage" => MediaKind::VideoNote,
            _ => return None,
        })
    }

    /// A word for people: `image`, `document`, `audio`, `video`, `sticker`, `video note`.
    pub fn as_str(self) -> &'static str {
        match self {
            MediaKind::Image => "image",
            MediaKind::Document => "document",
            MediaKind::Audio => "audio",
            MediaKind::Video => "video",
            MediaKind::Sticker => "sticker",
            MediaKind::VideoNote => "video note",
        }
    }
}

impl std::fmt::Display for MediaKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The media of a message, as its payload announces it ([`MessageLike::media`]). What the
/// sender's phone wrote: the download checks the bytes against its own cap, not against these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct MediaInfo<'a> {
    /// What it is.
    pub kind: MediaKind,
    /// Its MIME type (`image/jpeg`, `audio/ogg; codecs=opus`...), when given.
    pub mimetype: Option<&'a str>,
    /// Its size in bytes (`fileLength`), when given.
    pub file_length: Option<u64>,
    /// The file name a document was sent with (`fileName`).
    pub file_name: Option<&'a str>,
}

impl<'a> MediaInfo<'a> {
    /// The media of a message of type `message_type` with body `content`. A
    /// `documentWithCaptionMessage` holds its document in `message.documentMessage`.
    pub fn of(message_type: Option<&str>, content: &'a legacy::MessageContent) -> Option<Self> {
        let kind = MediaKind::of(message_type?)?;
        if message_type == Some("documentWithCaptionMessage") {
            let inner = content.extra.get("message")?.get("documentMessage")?;
            let file_length = match inner.get("fileLength")? {
                serde_json::Value::String(n) => n.parse().ok(),
                other => other.as_u64(),
            };
            return Some(MediaInfo {
                kind,
                mimetype: inner.get("mimetype").and_then(|v| v.as_str()),
                file_length,
                file_name: inner.get("fileName").and_then(|v| v.as_str()),
            });
        }
        Some(MediaInfo {
            kind,
            mimetype: content.mimetype.as_deref(),
            file_length: content.file_length.and_then(|n| u64::try_from(n).ok()),
            file_name: content.extra.get("fileName").and_then(|v| v.as_str()),
        })
    }
}

macro_rules! message_like {
    ($($t:ty),*) => {$(
        impl MessageLike for $t {
            fn text(&self) -> Option<&str> {
                self.0.text()
            }
            fn chat(&self) -> Option<&str> {
                self.key_remote_jid
                    .as_deref()
                    .or(self.key_lid.as_deref())
                    .filter(|c| !c.is_empty())
            }
            fn message_id(&self) -> Option<&str> {
                self.key_id.as_deref()
            }
            fn sender_name(&self) -> Option<&str> {
                self.0.push_name.as_deref()
            }
            fn message_type(&self) -> Option<&str> {
                self.0.message_type.as_deref()
            }
            fn is_from_me(&self) -> bool {
                self.key_from_me
            }
            fn lid(&self) -> Option<&str> {
                self.key_lid.as_deref().filter(|l| !l.is_empty())
            }
            fn timestamp(&self) -> Option<i64> {
                self.0.message_timestamp
            }
            fn media(&self) -> Option<MediaInfo<'_>> {
                MediaInfo::of(self.0.message_type.as_deref(), &self.0.content)
            }
        }
    )*};
}

message_like!(
    legacy::MessagesUpsert,
    legacy::SendMessage,
    v2::MessagesUpsert,
    v2::SendMessage
);

#[cfg(test)]
mod tests {
    use super::*;

    /// Payloads as the real server sends them (`messageRaw` in CodeChat's whatsapp.service.ts,
    /// built from `getJidUser` in src/utils/extract-id.ts).
    /// The media of each kind, as the fixtures carry it; a document wrapped with its caption
    /// reads from inside; a text has none.
    #[test]
    fn media_of_real_payloads() {
        let decode = |json: &str| -> legacy::MessagesUpsert { serde_json::from_str(json).unwrap() };
        let image = decode(
            r#"{"keyId":"A","messageType":"imageMessage","content":{"mimetype":"image/jpeg","fileLength":"5242880","caption":"look"}}"#,
        );
        let media = image.media().unwrap();
        assert_eq!(
            (
                media.kind,
                media.mimetype,
                media.file_length,
                media.file_name
            ),
            (MediaKind::Image, Some("image/jpeg"), Some(5_242_880), None)
        );
        let wrapped = decode(
            r#"{"keyId":"B","messageType":"documentWithCaptionMessage","content":{"message":{"documentMessage":{"mimetype":"application/pdf","fileLength":"300000","fileName":"a.pdf","caption":"c"}}}}"#,
        );
        let media = wrapped.media().unwrap();
        assert_eq!(
            (
                media.kind,
                media.mimetype,
                media.file_length,
                media.file_name
            ),
            (
                MediaKind::Document,
                Some("application/pdf"),
                Some(300_000),
                Some("a.pdf")
            )
        );
        let text = decode(r#"{"keyId":"C","messageType":"conversation","content":{"text":"hi"}}"#);
        assert_eq!(text.media(), None);
    }

    /// A received message quotes as the server's `quotedMessage` takes it; one without its
    /// type cannot be quoted; a LID-only chat is quoted by its LID.
    #[test]
    fn quote_of_real_payloads() {
        let decode = |json: &str| -> legacy::MessagesUpsert { serde_json::from_str(json).unwrap() };
        let text = decode(
            r#"{"keyId":"3A5F","keyFromMe":false,"keyRemoteJid":"5511988887777@s.whatsapp.net",
                "messageType":"conversation","content":{"text":"!ping"},"messageTimestamp":1747310400,"id":1024}"#,
        );
        assert_eq!(
            serde_json::to_value(text.quote().unwrap()).unwrap(),
            serde_json::json!({"keyId": "3A5F", "keyFromMe": false,
                "keyRemoteJid": "5511988887777@s.whatsapp.net", "messageType": "conversation",
                "content": {"text": "!ping"}, "messageTimestamp": 1747310400})
        );
        let image = decode(
            r#"{"keyId":"B","keyLid":"1@lid","messageType":"imageMessage","content":{"caption":"look","url":"u"}}"#,
        );
        let quote = image.quote().unwrap();
        assert_eq!(
            (
                quote.key_remote_jid.as_str(),
                &quote.content,
                quote.message_timestamp
            ),
            ("1@lid", &serde_json::json!({"caption": "look"}), None)
        );
        let untyped = decode(r#"{"keyId":"C","keyRemoteJid":"5511988887777@s.whatsapp.net"}"#);
        assert_eq!(untyped.quote(), None);
    }

    #[test]
    fn chat_of_real_payloads() {
        let decode = |json: &str| -> legacy::MessagesUpsert { serde_json::from_str(json).unwrap() };
        let normal = decode(
            r#"{"keyId":"A","keyRemoteJid":"5511988887777@s.whatsapp.net","keyLid":"1@lid"}"#,
        );
        assert_eq!(normal.chat(), Some("5511988887777@s.whatsapp.net"));
        // A chat known only by its LID: no keyRemoteJid at all.
        let lid_only = decode(r#"{"keyId":"B","keyLid":"123456789012345@lid","keyFromMe":false}"#);
        assert_eq!(lid_only.chat(), Some("123456789012345@lid"));
        // An old-style group id fails the server's JID check: neither field is sent.
        let old_group = decode(
            r#"{"keyId":"C","isGroup":true,"keyParticipant":"5511988887777@s.whatsapp.net"}"#,
        );
        assert_eq!(old_group.chat(), None);
        let v2_lid: v2::MessagesUpsert =
            serde_json::from_str(r#"{"keyId":"D","keyRemoteJid":null,"keyLid":"9@lid"}"#).unwrap();
        assert_eq!(v2_lid.chat(), Some("9@lid"));
    }
}
