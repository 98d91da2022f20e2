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
    /// The message type (`conversation`, `extendedTextMessage`, `imageMessage`...).
    fn message_type(&self) -> Option<&str>;
    /// Whether this instance sent it.
    fn is_from_me(&self) -> bool;
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
            fn message_type(&self) -> Option<&str> {
                self.0.message_type.as_deref()
            }
            fn is_from_me(&self) -> bool {
                self.key_from_me
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
