//! Payloads of the legacy Node server (`/ws/events`): the 13 events it actually sends.
//!
//! Frames are the bare payload (no envelope, no event name, no instance name). Shapes follow the
//! server's `ws.send` call sites: Prisma rows for stored data, Baileys objects passed through as-is
//! for the rest. Field names are Rust's; the wire names are kept by serde.

use crate::payload::{payload, Extra};
use crate::wire::{self, Timestamp};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::ops::{Deref, DerefMut};

/// `qrcode.updated`: a QR code to pair a phone, or a pairing code.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QrcodeUpdated {
    /// How many codes were issued in this pairing attempt.
    #[serde(default, with = "wire::opt_int")]
    pub count: Option<i64>,
    /// Pairing code for pairing by phone number (the wire name has the server's typo).
    #[serde(rename = "paringCode")]
    pub pairing_code: Option<String>,
    /// The text to draw as a QR code.
    pub code: Option<String>,
    /// The QR code as a `data:image/png;base64,...` URL.
    pub base64: Option<String>,
    /// Fields this version does not model.
    #[serde(flatten)]
    pub extra: Extra,
}
payload!(QrcodeUpdated, Legacy, [QrcodeUpdated]);

/// `connection.update`: the state of the instance's WhatsApp session.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionUpdate {
    /// The instance name.
    pub instance: Option<String>,
    /// `open`, `connecting` or `close`.
    pub state: Option<String>,
    /// Status code of the last disconnect (for example 515 restart required, 401 logged out),
    /// or 200 when there was none.
    #[serde(default, with = "wire::opt_int")]
    pub status_reason: Option<i64>,
    /// Fields this version does not model.
    #[serde(flatten)]
    pub extra: Extra,
}
payload!(ConnectionUpdate, Legacy, [ConnectionUpdate]);

/// A stored message, as sent on `messages.upsert` and `send.message`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredMessage {
    /// Database id; present only when the server stores new messages.
    #[serde(default, with = "wire::opt_int")]
    pub id: Option<i64>,
    /// WhatsApp message id.
    pub key_id: Option<String>,
    /// Whether this instance sent it.
    #[serde(default, deserialize_with = "wire::null_default")]
    pub key_from_me: bool,
    /// The chat: a contact JID, `@g.us` group, `@lid`, `@newsletter` or `@broadcast`.
    pub key_remote_jid: Option<String>,
    /// The chat's LID, when known.
    pub key_lid: Option<String>,
    /// The sender within a group.
    pub key_participant: Option<String>,
    /// The sender's LID within a group.
    pub key_participant_lid: Option<String>,
    /// Sender's display name.
    pub push_name: Option<String>,
    /// Message type, for example `conversation`, `extendedTextMessage`, `imageMessage`.
    pub message_type: Option<String>,
    /// The message body.
    #[serde(default, deserialize_with = "wire::null_default")]
    pub content: MessageContent,
    /// Send time, seconds since the epoch.
    #[serde(default, with = "wire::opt_int")]
    pub message_timestamp: Option<i64>,
    /// Database id of the instance.
    #[serde(default, with = "wire::opt_int")]
    pub instance_id: Option<i64>,
    /// `ios`, `android`, `web`, `desktop` or `unknown`.
    pub device: Option<String>,
    /// Whether the chat is a group.
    #[serde(default, deserialize_with = "wire::null_default")]
    pub is_group: bool,
    /// Upsert type (`notify` for new messages, `append` for history); absent for sent messages.
    pub info: Option<UpsertInfo>,
    /// Where to download the media, for media messages.
    pub media: Option<MediaRef>,
    /// Attributes attached by the API caller when sending.
    pub external_attributes: Option<serde_json::Value>,
    /// Fields this version does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

impl StoredMessage {
    /// The text of the message: a text body, or a media caption.
    pub fn text(&self) -> Option<&str> {
        self.content
            .text
            .as_deref()
            .or(self.content.caption.as_deref())
    }
}

/// A message body, as protobufjs writes it: text messages are `{text}`, media carry their fields.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageContent {
    /// Text of a text message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Caption of a media message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub caption: Option<String>,
    /// MIME type of a media message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mimetype: Option<String>,
    /// Encrypted media URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Media size in bytes (a protobuf 64-bit integer, written as a string).
    #[serde(
        default,
        with = "wire::opt_int_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub file_length: Option<i64>,
    /// Every other field of the protobuf message.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `info` of an upserted message.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UpsertInfo {
    /// `notify` (new) or `append` (history).
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Fields this version does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `media` of a media message.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MediaRef {
    /// Download path on the API server.
    pub path: Option<String>,
    /// Fields this version does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

wire::lossless_deserialize!(StoredMessage {
    "id" => id: Option<i64> = wire::opt_int::deserialize,
    "keyId" => key_id: Option<String>,
    "keyFromMe" => key_from_me: bool = wire::null_default,
    "keyRemoteJid" => key_remote_jid: Option<String>,
    "keyLid" => key_lid: Option<String>,
    "keyParticipant" => key_participant: Option<String>,
    "keyParticipantLid" => key_participant_lid: Option<String>,
    "pushName" => push_name: Option<String>,
    "messageType" => message_type: Option<String>,
    "content" => content: MessageContent = wire::null_default,
    "messageTimestamp" => message_timestamp: Option<i64> = wire::opt_int::deserialize,
    "instanceId" => instance_id: Option<i64> = wire::opt_int::deserialize,
    "device" => device: Option<String>,
    "isGroup" => is_group: bool = wire::null_default,
    "info" => info: Option<UpsertInfo>,
    "media" => media: Option<MediaRef>,
    "externalAttributes" => external_attributes: Option<serde_json::Value>,
});

wire::lossless_deserialize!(MessageContent {
    "text" => text: Option<String>,
    "caption" => caption: Option<String>,
    "mimetype" => mimetype: Option<String>,
    "url" => url: Option<String>,
    "fileLength" => file_length: Option<i64> = wire::opt_int_string::deserialize,
});

wire::lossless_deserialize!(UpsertInfo {
    "type" => kind: Option<String>,
});

wire::lossless_deserialize!(MediaRef {
    "path" => path: Option<String>,
});

macro_rules! message_event {
    ($(#[$doc:meta])* $name:ident, $kind:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
        #[serde(transparent)]
        pub struct $name(pub StoredMessage);

        impl Deref for $name {
            type Target = StoredMessage;
            fn deref(&self) -> &StoredMessage {
                &self.0
            }
        }

        impl DerefMut for $name {
            fn deref_mut(&mut self) -> &mut StoredMessage {
                &mut self.0
            }
        }

        payload!($name, Legacy, [$kind], lazy_message);
    };
}

message_event!(
    /// `messages.upsert`: a message received, or sent by this instance.
    MessagesUpsert,
    MessagesUpsert
);
message_event!(
    /// `send.message`: a message sent through the REST API (also sent on `messages.upsert`).
    SendMessage,
    SendMessage
);

/// `messages.update`: a delivery receipt or an edit of one message.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MessagesUpdate {
    /// The chat.
    pub remote_jid: Option<String>,
    /// WhatsApp message id.
    pub id: Option<String>,
    /// Whether this instance sent the message.
    #[serde(default, deserialize_with = "wire::null_default")]
    pub from_me: bool,
    /// The sender within a group.
    pub participant: Option<String>,
    /// `ERROR`, `PENDING`, `SERVER_ACK`, `DELIVERY_ACK`, `READ` or `PLAYED`; absent for edits.
    pub status: Option<String>,
    /// When the update happened.
    #[serde(default, with = "wire::opt_time_js")]
    pub date_time: Option<Timestamp>,
    /// Database id of the instance.
    #[serde(default, with = "wire::opt_int")]
    pub instance_id: Option<i64>,
    /// Fields this version does not model.
    #[serde(flatten)]
    pub extra: Extra,
}
payload!(MessagesUpdate, Legacy, [MessagesUpdate]);

/// A stored contact.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Contact {
    /// Database id.
    #[serde(default, with = "wire::opt_int")]
    pub id: Option<i64>,
    /// The contact's JID.
    pub remote_jid: Option<String>,
    /// Display name; the JID itself when the contact has none.
    pub push_name: Option<String>,
    /// Profile picture URL.
    pub profile_pic_url: Option<String>,
    /// Row creation time.
    #[serde(default, with = "wire::opt_time_js")]
    pub created_at: Option<Timestamp>,
    /// Row update time.
    #[serde(default, with = "wire::opt_time_js")]
    pub updated_at: Option<Timestamp>,
    /// Database id of the instance.
    #[serde(default, with = "wire::opt_int")]
    pub instance_id: Option<i64>,
    /// Fields this version does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `contacts.upsert`: contacts added or refreshed (one frame per contact, each a one-element list).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(transparent)]
pub struct ContactsUpsert(pub Vec<Contact>);
payload!(ContactsUpsert, Legacy, [ContactsUpsert]);

/// `presence.update`: presences in one chat.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct PresenceUpdate {
    /// The chat.
    pub id: Option<String>,
    /// Presence by participant JID.
    #[serde(default, deserialize_with = "wire::null_default")]
    pub presences: BTreeMap<String, Presence>,
    /// Fields this version does not model.
    #[serde(flatten)]
    pub extra: Extra,
}
payload!(PresenceUpdate, Legacy, [PresenceUpdate]);

/// One participant's presence.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Presence {
    /// `available`, `unavailable`, `composing`, `recording` or `paused`.
    pub last_known_presence: Option<String>,
    /// Last seen, seconds since the epoch.
    #[serde(default, with = "wire::opt_int")]
    pub last_seen: Option<i64>,
    /// Fields this version does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A stored chat.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Chat {
    /// Database id; absent on `chats.update`.
    #[serde(default, with = "wire::opt_int")]
    pub id: Option<i64>,
    /// The chat's JID.
    pub remote_jid: Option<String>,
    /// The Baileys chat object (unread count, archive flag, timestamps...); absent on `chats.set`.
    pub content: Option<Extra>,
    /// Row creation time.
    #[serde(default, with = "wire::opt_time_js")]
    pub created_at: Option<Timestamp>,
    /// Row update time.
    #[serde(default, with = "wire::opt_time_js")]
    pub updated_at: Option<Timestamp>,
    /// Database id of the instance.
    #[serde(default, with = "wire::opt_int")]
    pub instance_id: Option<i64>,
    /// Fields this version does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `chats.upsert`: chats created (one frame per chat, each a one-element list).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(transparent)]
pub struct ChatsUpsert(pub Vec<Chat>);
payload!(ChatsUpsert, Legacy, [ChatsUpsert]);

/// `chats.update`: chats changed, as a batch.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(transparent)]
pub struct ChatsUpdate(pub Vec<Chat>);
payload!(ChatsUpdate, Legacy, [ChatsUpdate]);

/// A group's metadata; in `groups.update` only the changed fields are present.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Group {
    /// The group JID.
    pub id: Option<String>,
    /// The group name.
    pub subject: Option<String>,
    /// Owner JID.
    pub owner: Option<String>,
    /// Creation time, seconds since the epoch.
    #[serde(default, with = "wire::opt_int")]
    pub creation: Option<i64>,
    /// Number of members.
    #[serde(default, with = "wire::opt_int")]
    pub size: Option<i64>,
    /// Only admins may send.
    pub announce: Option<bool>,
    /// Only admins may change settings.
    pub restrict: Option<bool>,
    /// Members, when the whole metadata is sent.
    pub participants: Option<Vec<GroupParticipant>>,
    /// Who made the change.
    pub author: Option<String>,
    /// The author's phone-number JID.
    pub author_pn: Option<String>,
    /// Fields this version does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A group member.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupParticipant {
    /// Member JID (often a LID).
    pub id: Option<String>,
    /// The member's phone-number JID.
    pub phone_number: Option<String>,
    /// `admin`, `superadmin`, or none.
    pub admin: Option<String>,
    /// Fields this version does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `groups.upsert`: groups joined or created.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(transparent)]
pub struct GroupsUpsert(pub Vec<Group>);
payload!(GroupsUpsert, Legacy, [GroupsUpsert]);

/// `groups.update`: group settings changed; each entry has the id and the changed fields.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(transparent)]
pub struct GroupsUpdate(pub Vec<Group>);
payload!(GroupsUpdate, Legacy, [GroupsUpdate]);

/// `group-participants.update`: members added, removed, promoted or demoted.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupParticipantsUpdate {
    /// The group JID.
    pub id: Option<String>,
    /// Who made the change.
    pub author: Option<String>,
    /// The author's phone-number JID.
    pub author_pn: Option<String>,
    /// The members concerned.
    #[serde(default, deserialize_with = "wire::null_default")]
    pub participants: Vec<GroupParticipant>,
    /// `add`, `remove`, `promote`, `demote` or `modify`.
    pub action: Option<String>,
    /// Fields this version does not model.
    #[serde(flatten)]
    pub extra: Extra,
}
payload!(GroupParticipantsUpdate, Legacy, [GroupParticipantsUpdate]);

/// `call.upsert`: one call event (offer, ringing, accept, reject, terminate...).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CallUpsert {
    /// The chat.
    pub chat_id: Option<String>,
    /// The caller.
    pub from: Option<String>,
    /// The caller's phone number.
    pub caller_pn: Option<String>,
    /// Call id.
    pub id: Option<String>,
    /// When it happened.
    #[serde(default, with = "wire::opt_time_js")]
    pub date: Option<Timestamp>,
    /// Received while offline.
    pub offline: Option<bool>,
    /// `offer`, `ringing`, `timeout`, `reject`, `accept` or `terminate`.
    pub status: Option<String>,
    /// Video call.
    pub is_video: Option<bool>,
    /// Group call.
    pub is_group: Option<bool>,
    /// The group, for group calls.
    pub group_jid: Option<String>,
    /// Fields this version does not model.
    #[serde(flatten)]
    pub extra: Extra,
}
payload!(CallUpsert, Legacy, [CallUpsert]);

// The legacy server accepts the names below at the handshake but sends their data only to the
// webhook (`{event, instance, data}` bodies). They are typed too, for webhook receivers and
// for servers that do send them on the socket.

/// A message from the history sync (`messages.set`): `content` is the raw value, so a text
/// message's content is a bare string here.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryMessage {
    /// WhatsApp message id.
    pub key_id: Option<String>,
    /// Whether this instance sent it.
    #[serde(default, deserialize_with = "wire::null_default")]
    pub key_from_me: bool,
    /// The chat.
    pub key_remote_jid: Option<String>,
    /// Sender's display name.
    pub push_name: Option<String>,
    /// Message type.
    pub message_type: Option<String>,
    /// The body, as sent: a string for text, an object for media.
    pub content: Option<serde_json::Value>,
    /// Send time, seconds since the epoch.
    #[serde(default, with = "wire::opt_int")]
    pub message_timestamp: Option<i64>,
    /// Fields this version does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `messages.set` (webhook only): messages from the history sync.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(transparent)]
pub struct MessagesSet(pub Vec<HistoryMessage>);
payload!(MessagesSet, Legacy, [MessagesSet]);

/// `chats.set` (webhook only): chats from the history sync.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(transparent)]
pub struct ChatsSet(pub Vec<Chat>);
payload!(ChatsSet, Legacy, [ChatsSet]);

/// `chats.delete` (webhook only): the JIDs of deleted chats.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(transparent)]
pub struct ChatsDelete(pub Vec<String>);
payload!(ChatsDelete, Legacy, [ChatsDelete]);

/// `labels.association` (webhook only): a label put on or taken off a chat.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct LabelsAssociation {
    /// `{type, chatId, labelId}` (or `messageId` for message labels).
    pub association: Option<Extra>,
    /// `add` or `remove`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Fields this version does not model.
    #[serde(flatten)]
    pub extra: Extra,
}
payload!(LabelsAssociation, Legacy, [LabelsAssociation]);

/// `labels.edit` (webhook only): a label created, changed or deleted.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LabelsEdit {
    /// Label id.
    pub id: Option<String>,
    /// Label name.
    pub name: Option<String>,
    /// Colour index.
    #[serde(default, with = "wire::opt_int")]
    pub color: Option<i64>,
    /// Whether it was deleted.
    pub deleted: Option<bool>,
    /// Fields this version does not model.
    #[serde(flatten)]
    pub extra: Extra,
}
payload!(LabelsEdit, Legacy, [LabelsEdit]);

/// `status.instance` (webhook only): the instance was loaded or removed.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct StatusInstance {
    /// The instance name.
    pub instance: Option<String>,
    /// `loaded` or `removed`.
    pub status: Option<String>,
    /// Fields this version does not model.
    #[serde(flatten)]
    pub extra: Extra,
}
payload!(StatusInstance, Legacy, [StatusInstance]);

/// `refresh.token` (webhook only): `{event: "new.jwt", auth}` after a token rotation.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct RefreshToken {
    /// `new.jwt`.
    pub event: Option<String>,
    /// The new token (never shown by `Debug`).
    pub auth: Option<crate::token::Token>,
    /// Fields this version does not model.
    #[serde(flatten)]
    pub extra: Extra,
}
payload!(RefreshToken, Legacy, [RefreshToken]);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_message_keeps_unknown_fields_at_every_level_and_reads_loose_forms() {
        let wire = json!({
            "keyId": "A1",
            "keyFromMe": null,
            "messageTimestamp": "1747310400",
            "content": {"text": "hi", "fileLength": "12", "contextInfo": {"stanzaId": "B2"}},
            "info": {"type": "notify", "source": "web"},
            "sentAtUs": 17,
            "key\"odd": [1, 2]
        });
        let m: StoredMessage = serde_json::from_value(wire.clone()).unwrap();
        assert_eq!(m.key_id.as_deref(), Some("A1"));
        assert!(!m.key_from_me);
        assert_eq!(m.message_timestamp, Some(1747310400));
        assert_eq!(m.content.file_length, Some(12));
        assert_eq!(m.content.extra["contextInfo"], json!({"stanzaId": "B2"}));
        assert_eq!(m.info.as_ref().unwrap().extra["source"], "web");
        assert_eq!(m.extra["sentAtUs"], 17);
        assert_eq!(m.extra["key\"odd"], json!([1, 2]));
        // The same from text (borrowed keys, escaped keys) as from a value.
        let from_text: StoredMessage = serde_json::from_str(&wire.to_string()).unwrap();
        assert_eq!(from_text, m);
        // Nothing modelled is lost on the way back.
        let back = serde_json::to_value(&m).unwrap();
        assert_eq!(back["sentAtUs"], 17);
        assert_eq!(back["content"]["contextInfo"]["stanzaId"], "B2");
    }

    #[test]
    fn a_message_of_the_wrong_shape_is_refused_with_the_field() {
        let twice = serde_json::from_str::<StoredMessage>(r#"{"keyId":"A","keyId":"B"}"#);
        assert!(twice
            .unwrap_err()
            .to_string()
            .contains("duplicate field `keyId`"));
        let wrong = serde_json::from_str::<StoredMessage>(r#"{"keyId": 5}"#);
        assert!(wrong.unwrap_err().to_string().contains("invalid type"));
        let not_object = serde_json::from_str::<StoredMessage>("[1]");
        assert!(not_object
            .unwrap_err()
            .to_string()
            .contains("an object (StoredMessage)"));
        let empty: StoredMessage = serde_json::from_str("{}").unwrap();
        assert_eq!(empty.content, MessageContent::default());
    }
}
