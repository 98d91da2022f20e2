//! Payloads of Evolution API (`EvolutionAPI/evolution-api` 2.3), sent over Socket.IO.
//!
//! Every event comes in an envelope, `{event, instance, data, server_url, date_time, sender,
//! apikey}` (`websocket.controller.ts`, `emit`); these types are its `data`. Messages keep
//! Baileys' shape (`key {remoteJid, fromMe, id}`, `message {...}`), built by `prepareMessage`
//! in `whatsapp.baileys.service.ts`: an `extendedTextMessage` is turned into `conversation`
//! there, so a text's body is `message.conversation`.
//!
//! Bots written against [`legacy::MessagesUpsert`] (what `eventsock::Msg` is) run on Evolution
//! unchanged: a message is read in this shape, then given to them in the legacy one
//! ([`Message::into_legacy`]), with what that shape has no field for kept in its `extra`.
//! Handlers that want Evolution's own shape take [`MessagesUpsert`] here.

use crate::legacy;
use crate::message::{MediaInfo, MessageLike};
use crate::payload::{payload, Extra};
use crate::wire;
use serde::{Deserialize, Serialize};
use std::ops::{Deref, DerefMut};

/// A message's key, as Baileys writes it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageKey {
    /// The chat's JID.
    pub remote_jid: Option<String>,
    /// Whether this instance sent it.
    pub from_me: bool,
    /// WhatsApp's message id.
    pub id: Option<String>,
    /// The sender within a group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub participant: Option<String>,
    /// Fields this version does not model (`remoteJidAlt`, `addressingMode`, `senderLid`...).
    #[serde(flatten)]
    pub extra: Extra,
}

/// A message as Evolution API sends it on `messages.upsert` and `send.message`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    /// The message's key.
    pub key: MessageKey,
    /// The sender's display name.
    pub push_name: Option<String>,
    /// `PENDING`, `SERVER_ACK`, `DELIVERY_ACK`, `READ`, `PLAYED` or `ERROR`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// The body, as WhatsApp's protobuf message in JSON: `{"conversation": "hi"}`,
    /// `{"imageMessage": {...}}`... Byte fields that came as Socket.IO attachments are base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<serde_json::Value>,
    /// The body's context (the quoted message, mentions...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_info: Option<serde_json::Value>,
    /// `conversation`, `imageMessage`...
    pub message_type: Option<String>,
    /// Send time, seconds since the epoch (a number, a string, or protobuf's
    /// `{low, high, unsigned}`).
    #[serde(serialize_with = "wire::opt_long::serialize")]
    pub message_timestamp: Option<i64>,
    /// The instance's id (a UUID).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    /// The sender's device: `android`, `ios`, `web`, `desktop` or `unknown`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Fields this version does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

// Read field by field, the rest kept: `#[serde(flatten)]` would buffer the whole message first.
wire::lossless_deserialize!(MessageKey {
    "remoteJid" => remote_jid: Option<String>,
    "fromMe" => from_me: bool = wire::null_default,
    "id" => id: Option<String>,
    "participant" => participant: Option<String>,
});

wire::lossless_deserialize!(Message {
    "key" => key: MessageKey = wire::null_default,
    "pushName" => push_name: Option<String>,
    "status" => status: Option<String>,
    "message" => message: Option<serde_json::Value>,
    "contextInfo" => context_info: Option<serde_json::Value>,
    "messageType" => message_type: Option<String>,
    "messageTimestamp" => message_timestamp: Option<i64> = wire::opt_long::deserialize,
    "instanceId" => instance_id: Option<String>,
    "source" => source: Option<String>,
});

impl Message {
    /// The body under the message's type (`message.imageMessage` for an image).
    fn body(&self) -> Option<&serde_json::Value> {
        self.message.as_ref()?.get(self.message_type.as_deref()?)
    }

    /// The text: a text's body (`message.conversation`, or an `extendedTextMessage`'s text),
    /// or a media caption.
    pub fn text(&self) -> Option<&str> {
        let message = self.message.as_ref()?;
        message
            .get("conversation")
            .and_then(|t| t.as_str())
            .or_else(|| message.pointer("/extendedTextMessage/text")?.as_str())
            .or_else(|| self.body()?.get("caption")?.as_str())
    }

    /// The message in the legacy CodeChat shape that [`legacy::MessagesUpsert`] has: the key's
    /// fields flattened (`keyId`, `keyRemoteJid`...), the body under `content` (`{text}` for a
    /// text, the media message's fields for a media), `source` as `device`. What that shape has
    /// no field for is kept in `extra` under its own name (`status`, `message`, the whole body
    /// as it came, `contextInfo`, `keyExtra` for the key's other fields, `evolutionInstanceId`).
    pub fn into_legacy(self) -> legacy::StoredMessage {
        let mut content = legacy::MessageContent::default();
        match self.body() {
            Some(serde_json::Value::Object(fields)) => {
                for (name, value) in fields {
                    let text = || value.as_str().map(str::to_owned);
                    match name.as_str() {
                        "text" => content.text = text(),
                        "caption" => content.caption = text(),
                        "mimetype" => content.mimetype = text(),
                        "url" => content.url = text(),
                        // A number, a string, or (2.3.6) protobuf's `{low, high, unsigned}`.
                        "fileLength" => content.file_length = long(value),
                        _ => {
                            content.extra.insert(name.clone(), value.clone());
                        }
                    }
                }
            }
            Some(serde_json::Value::String(text)) => content.text = Some(text.clone()),
            _ => {}
        }
        if content.text.is_none() && content.caption.is_none() {
            content.text = self.text().map(str::to_owned);
        }
        let lid = |v: Option<&serde_json::Value>| {
            v.and_then(|v| v.as_str())
                .filter(|s| s.ends_with("@lid"))
                .map(str::to_owned)
        };
        let key_lid = lid(self.key.extra.get("remoteJidAlt"))
            .or_else(|| lid(self.key.extra.get("senderLid")));
        let key_participant_lid = lid(self.key.extra.get("participantAlt"));
        let Message {
            key,
            push_name,
            status,
            message,
            context_info,
            message_type,
            message_timestamp,
            instance_id,
            source,
            mut extra,
        } = self;
        let mut put = |name: &str, value: Option<serde_json::Value>| {
            if let Some(v) = value {
                extra.insert(name.to_owned(), v);
            }
        };
        put("status", status.map(Into::into));
        put("message", message);
        put("contextInfo", context_info);
        put("evolutionInstanceId", instance_id.map(Into::into));
        if !key.extra.is_empty() {
            put("keyExtra", Some(key.extra.into()));
        }
        legacy::StoredMessage {
            id: None,
            key_id: key.id,
            key_from_me: key.from_me,
            is_group: key
                .remote_jid
                .as_deref()
                .is_some_and(|c| c.ends_with("@g.us")),
            key_lid,
            key_remote_jid: key.remote_jid,
            key_participant: key.participant,
            key_participant_lid,
            push_name,
            message_type,
            content,
            message_timestamp,
            instance_id: None,
            device: source,
            info: None,
            media: None,
            external_attributes: None,
            extra,
        }
    }
}

/// A 64-bit value as Evolution writes it: a number, a numeric string, or `{low, high,
/// unsigned}`.
fn long(value: &serde_json::Value) -> Option<i64> {
    wire::opt_long::deserialize(value).ok().flatten()
}

impl MessageLike for Message {
    fn text(&self) -> Option<&str> {
        Message::text(self)
    }
    fn chat(&self) -> Option<&str> {
        self.key.remote_jid.as_deref()
    }
    fn message_id(&self) -> Option<&str> {
        self.key.id.as_deref()
    }
    fn sender_name(&self) -> Option<&str> {
        self.push_name.as_deref()
    }
    fn message_type(&self) -> Option<&str> {
        self.message_type.as_deref()
    }
    fn is_from_me(&self) -> bool {
        self.key.from_me
    }
    fn lid(&self) -> Option<&str> {
        self.key
            .extra
            .get("remoteJidAlt")
            .and_then(|v| v.as_str())
            .filter(|s| s.ends_with("@lid"))
    }
    fn timestamp(&self) -> Option<i64> {
        self.message_timestamp
    }
    fn media(&self) -> Option<MediaInfo<'_>> {
        let kind = crate::MediaKind::of(self.message_type.as_deref()?)?;
        let body = self.body()?;
        Some(MediaInfo {
            kind,
            mimetype: body.get("mimetype").and_then(|v| v.as_str()),
            file_length: body
                .get("fileLength")
                .and_then(long)
                .and_then(|n| u64::try_from(n).ok()),
            file_name: body.get("fileName").and_then(|v| v.as_str()),
        })
    }
}

macro_rules! message_payload {
    ($(#[$doc:meta])* $name:ident, $kind:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
        #[serde(transparent)]
        pub struct $name(pub Message);

        impl Deref for $name {
            type Target = Message;
            fn deref(&self) -> &Message {
                &self.0
            }
        }

        impl DerefMut for $name {
            fn deref_mut(&mut self) -> &mut Message {
                &mut self.0
            }
        }

        impl MessageLike for $name {
            // Boilerplate: each answer is the message's.
            fn text(&self) -> Option<&str> { self.0.text() }
            fn chat(&self) -> Option<&str> { self.0.chat() }
            fn message_id(&self) -> Option<&str> { self.0.message_id() }
            fn sender_name(&self) -> Option<&str> { self.0.sender_name() }
            fn message_type(&self) -> Option<&str> { MessageLike::message_type(&self.0) }
            fn is_from_me(&self) -> bool { self.0.is_from_me() }
            fn lid(&self) -> Option<&str> { self.0.lid() }
            fn timestamp(&self) -> Option<i64> { self.0.timestamp() }
            fn media(&self) -> Option<MediaInfo<'_>> { self.0.media() }
        }

        payload!($name, Evolution, [$kind], message);
    };
}

message_payload!(
    /// `messages.upsert`: a message received, or sent by this instance.
    MessagesUpsert,
    MessagesUpsert
);
message_payload!(
    /// `send.message`: a message sent through the REST API.
    SendMessage,
    SendMessage
);

// The other payloads, and the items of lists, are records of optional fields, camelCase on the
// wire, with an `extra` map; a payload names its events.
macro_rules! record {
    ($(#[$doc:meta])* $name:ident [$($kind:ident),+] $fields:tt) => {
        record!($(#[$doc])* $name $fields);
        payload!($name, Evolution, [$($kind),+]);
    };
    ($(#[$doc:meta])* $name:ident {
        $( $(#[$fdoc:meta])* $field:ident : $ty:ty $(=> $with:literal)? ),* $(,)?
    }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
        #[serde(rename_all = "camelCase")]
        pub struct $name {
            $(
                $(#[$fdoc])*
                #[serde(default, skip_serializing_if = "Option::is_none" $(, with = $with)?)]
                pub $field: $ty,
            )*
            /// Fields this version does not model.
            #[serde(flatten)]
            pub extra: Extra,
        }
    };
}

record! {
    /// `messages.update`: a receipt (`status`) of one message.
    MessagesUpdate [MessagesUpdate] {
        /// The message's row id in Evolution's database.
        message_id: Option<String>,
        /// WhatsApp's message id.
        key_id: Option<String>,
        /// The chat.
        remote_jid: Option<String>,
        /// Whether this instance sent it.
        from_me: Option<bool>,
        /// The sender within a group.
        participant: Option<String>,
        /// `SERVER_ACK`, `DELIVERY_ACK`, `READ`, `PLAYED`, `DELETED`...
        status: Option<String>,
        /// The instance's id.
        instance_id: Option<String>,
    }
}

record! {
    /// `connection.update`: the instance's WhatsApp connection opened, closed, is opening, or
    /// was refused (the QR code limit).
    ConnectionUpdate [ConnectionUpdate] {
        /// The instance's name.
        instance: Option<String>,
        /// `open`, `connecting`, `close` or `refused`.
        state: Option<String>,
        /// The reason code of the last change (Baileys' `DisconnectReason`, or 200).
        status_reason: Option<i64> => "wire::opt_int",
        /// The account's JID, once open.
        wuid: Option<String>,
        /// The account's name, once open.
        profile_name: Option<String>,
        /// The account's picture, once open.
        profile_picture_url: Option<String>,
    }
}

record! {
    /// `qrcode.updated`: a new pairing code, or the end of the codes (`message`,
    /// `statusCode`) when the limit was reached.
    QrcodeUpdated [QrcodeUpdated] {
        /// `{instance, pairingCode, code, base64}`.
        qrcode: Option<serde_json::Value>,
        /// Why no code comes any more.
        message: Option<String>,
        /// With `message`: 500.
        status_code: Option<i64> => "wire::opt_int",
    }
}

record! {
    /// `messages.delete`: a message deleted: its key (from WhatsApp), or the whole message
    /// (deleted through the REST API).
    MessagesDelete [MessagesDelete] {
        /// The chat (a key).
        remote_jid: Option<String>,
        /// Whether this instance sent it (a key).
        from_me: Option<bool>,
        /// WhatsApp's message id (a key), or the row id (a message).
        id: Option<String>,
        /// The sender within a group.
        participant: Option<String>,
        /// The message's key (a message).
        key: Option<serde_json::Value>,
        /// The message's type (a message).
        message_type: Option<String>,
        /// Its body (a message).
        message: Option<serde_json::Value>,
    }
}

record! {
    /// `messages.edited` (a message edited or revoked on WhatsApp) and `send.message.update` (a
    /// message edited through the REST API): the protocol message of the edit, as protobuf's
    /// `toJSON` writes it (enum names, 64-bit values as strings).
    Edit [MessagesEdited, SendMessageUpdate] {
        /// The edited message's key.
        key: Option<serde_json::Value>,
        /// `MESSAGE_EDIT`, `REVOKE`...
        #[serde(rename = "type")]
        kind: Option<serde_json::Value>,
        /// The new body.
        edited_message: Option<serde_json::Value>,
        /// When, in milliseconds (a number or a string).
        timestamp_ms: Option<serde_json::Value>,
    }
}

record! {
    /// `presence.update`: who is typing, recording or online in a chat.
    PresenceUpdate [PresenceUpdate] {
        /// The chat.
        id: Option<String>,
        /// Each participant's `{lastKnownPresence, lastSeen}`, by JID.
        presences: Option<serde_json::Value>,
    }
}

record! {
    /// `call`: a call offered, accepted, rejected or ended (or, sent to sockets only, a raw
    /// call packet: `event` and `packet` in `extra`).
    Call [Call] {
        /// The chat.
        chat_id: Option<String>,
        /// The caller.
        from: Option<String>,
        /// The call's id.
        id: Option<String>,
        /// When it began.
        date: Option<serde_json::Value>,
        /// Whether it was offered while the instance was offline.
        offline: Option<bool>,
        /// `offer`, `ringing`, `timeout`, `reject`, `accept`, `terminate`.
        status: Option<String>,
        /// Whether it is a video call.
        is_video: Option<bool>,
        /// Whether it is a group call.
        is_group: Option<bool>,
    }
}

record! {
    /// `group-participants.update`: participants added, removed, promoted or demoted.
    GroupParticipantsUpdate [GroupParticipantsUpdate] {
        /// The group.
        id: Option<String>,
        /// Who did it.
        author: Option<String>,
        /// The participants (JIDs, or `{id, phoneNumber, admin}` objects).
        participants: Option<serde_json::Value>,
        /// `add`, `remove`, `promote`, `demote`.
        action: Option<String>,
    }
}

record! {
    /// `labels.association`: a label put on or taken off a chat.
    LabelsAssociation [LabelsAssociation] {
        /// The instance.
        instance: Option<String>,
        /// `add` or `remove`.
        #[serde(rename = "type")]
        kind: Option<String>,
        /// The chat.
        chat_id: Option<String>,
        /// The label.
        label_id: Option<String>,
    }
}

record! {
    /// `labels.edit`: a label made, changed or deleted.
    LabelsEdit [LabelsEdit] {
        /// The label.
        id: Option<String>,
        /// Its name.
        name: Option<String>,
        /// Its colour index.
        color: Option<serde_json::Value>,
        /// Whether it was deleted.
        deleted: Option<bool>,
        /// WhatsApp's own label it stands for.
        predefined_id: Option<serde_json::Value>,
        /// The instance.
        instance: Option<String>,
    }
}

record! {
    /// `status.instance`: the instance's connection status, with why it was lost.
    StatusInstance [StatusInstance] {
        /// The instance.
        instance: Option<String>,
        /// `open`, `close`...
        status: Option<String>,
        /// When it was lost.
        disconnection_at: Option<serde_json::Value>,
        /// Why, as a code.
        disconnection_reason_code: Option<serde_json::Value>,
        /// Why, as WhatsApp told.
        disconnection_object: Option<serde_json::Value>,
    }
}

record! {
    /// `instance.create` and `instance.delete`: an instance made or deleted.
    InstanceEvent [InstanceCreate, InstanceDelete] {
        /// Its name.
        instance_name: Option<String>,
        /// Its id.
        instance_id: Option<String>,
    }
}

record! {
    /// A contact as `contacts.upsert` and `contacts.update` carry it.
    Contact {
        /// Its JID.
        remote_jid: Option<String>,
        /// Its name.
        push_name: Option<String>,
        /// Its picture.
        profile_pic_url: Option<String>,
        /// The instance's id.
        instance_id: Option<String>,
    }
}

/// One item, or a list of them: Evolution sends some events either way, by the code path that
/// emits them.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum OneOrMany<T> {
    /// A list.
    Many(Vec<T>),
    /// One.
    One(T),
}

impl<T> OneOrMany<T> {
    /// The items, one or many.
    pub fn items(&self) -> &[T] {
        match self {
            OneOrMany::Many(v) => v,
            OneOrMany::One(one) => std::slice::from_ref(one),
        }
    }
}

record! {
    /// A chat as the `chats.*` events carry it.
    Chat {
        /// Its JID.
        remote_jid: Option<String>,
        /// Its JID, as Baileys names it (a rename).
        id: Option<String>,
        /// Its name.
        name: Option<String>,
        /// Unread messages.
        unread_messages: Option<i64> => "wire::opt_int",
        /// The instance's id.
        instance_id: Option<String>,
    }
}

record! {
    /// A group as `groups.upsert` and `groups.update` carry it (Baileys' `GroupMetadata`; the
    /// rest, `participants`, `creation`, `announce`..., in `extra`).
    Group {
        /// Its JID.
        id: Option<String>,
        /// Its subject.
        subject: Option<String>,
        /// Who changed it (an update).
        author: Option<String>,
        /// Its owner.
        owner: Option<String>,
        /// How many participants.
        size: Option<i64> => "wire::opt_int",
    }
}

// A payload that is a list, or another shape, under an event name: a transparent newtype that
// derefs to it.
macro_rules! newtype {
    ($(#[$doc:meta])* $name:ident($inner:ty), [$($kind:ident),+]) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
        #[serde(transparent)]
        pub struct $name(pub $inner);

        impl Deref for $name {
            type Target = $inner;
            fn deref(&self) -> &$inner {
                &self.0
            }
        }

        payload!($name, Evolution, [$($kind),+]);
    };
}

newtype!(
    /// `contacts.upsert`: contacts seen for the first time (one, or a list).
    ContactsUpsert(OneOrMany<Contact>),
    [ContactsUpsert]
);
newtype!(
    /// `contacts.update`: contacts whose name or picture changed (one, or a list).
    ContactsUpdate(OneOrMany<Contact>),
    [ContactsUpdate]
);
newtype!(
    /// `chats.upsert` and `chats.update`: chats made, renamed, or read.
    ChatsUpsert(Vec<Chat>),
    [ChatsUpsert, ChatsUpdate]
);
newtype!(
    /// `chats.delete`: the JIDs of chats deleted.
    ChatsDelete(Vec<String>),
    [ChatsDelete]
);
newtype!(
    /// `groups.upsert` and `groups.update`: groups joined or changed.
    GroupsUpsert(Vec<Group>),
    [GroupsUpsert, GroupsUpdate]
);
newtype!(
    /// `logout.instance` and `remove.instance`: the instance logged out, or was removed
    /// (`null`).
    InstanceGone(Option<serde_json::Value>),
    [LogoutInstance, RemoveInstance]
);
newtype!(
    /// The events whose data this version does not model, as they came: `messages.set` and
    /// `chats.set` (a history sync), `typebot.start`, `typebot.change-status`, and
    /// `contacts.set`, `messaging-history.set`, `creds.update` and `application.startup`, which
    /// 2.3.6 never sends.
    Unmodelled(serde_json::Value),
    [
        MessagesSet,
        ChatsSet,
        ContactsSet,
        MessagingHistorySet,
        CredsUpdate,
        ApplicationStartup,
        TypebotStart,
        TypebotChangeStatus
    ]
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EventKind, EventName, Frame, Payload};

    const UPSERT: &str = r#"{"key":{"remoteJid":"5511988887777@s.whatsapp.net","remoteJidAlt":"123456789012345@lid","fromMe":false,"id":"3EB0C4A1B2C3D4E5F6A7"},
        "pushName":"Maria","status":"DELIVERY_ACK","message":{"conversation":"!ping","messageContextInfo":{"messageSecret":"AAEC"}},
        "contextInfo":null,"messageType":"conversation","messageTimestamp":{"low":1747310400,"high":0,"unsigned":true},
        "instanceId":"6c2d1f0e-0000-4000-8000-000000000001","source":"android","chatwootMessageId":null}"#;

    #[test]
    fn a_message_reads_and_round_trips() {
        let m: MessagesUpsert = serde_json::from_str(UPSERT).unwrap();
        assert_eq!(m.text(), Some("!ping"));
        assert_eq!(m.chat(), Some("5511988887777@s.whatsapp.net"));
        assert_eq!(m.message_timestamp, Some(1747310400));
        assert_eq!(MessageLike::lid(&m), Some("123456789012345@lid"));
        assert!(m.extra.contains_key("chatwootMessageId"));
        // Re-encoded: the same members, a 64-bit value as a number.
        let back = serde_json::to_value(&m).unwrap();
        let mut want: serde_json::Value = serde_json::from_str(UPSERT).unwrap();
        want["messageTimestamp"] = 1747310400.into();
        want.as_object_mut().unwrap().remove("contextInfo");
        assert_eq!(back, want);
    }

    #[test]
    fn a_message_reads_as_the_legacy_one_bots_are_written_against() {
        let m: Message = serde_json::from_str(UPSERT).unwrap();
        let legacy = legacy::MessagesUpsert(m.into_legacy());
        assert_eq!(legacy.text(), Some("!ping"));
        assert_eq!(legacy.key_id.as_deref(), Some("3EB0C4A1B2C3D4E5F6A7"));
        assert_eq!(legacy.key_lid.as_deref(), Some("123456789012345@lid"));
        assert_eq!(legacy.device.as_deref(), Some("android"));
        assert_eq!(legacy.extra["status"], "DELIVERY_ACK");
        let quote = legacy.quote().unwrap();
        assert_eq!(quote.content, serde_json::json!({"text": "!ping"}));
        let image: Message = serde_json::from_str(
            r#"{"key":{"remoteJid":"1203630@g.us","fromMe":false,"id":"X","participant":"551@s.whatsapp.net"},
                "message":{"imageMessage":{"caption":"look","mimetype":"image/jpeg","fileLength":{"low":2048,"high":0,"unsigned":true},"url":"u","jpegThumbnail":"AAE="}},
                "messageType":"imageMessage","messageTimestamp":1747310400}"#,
        )
        .unwrap();
        assert_eq!(image.text(), Some("look"));
        assert_eq!(image.media().unwrap().file_length, Some(2048));
        let legacy = image.clone().into_legacy();
        assert!(legacy.is_group);
        assert_eq!(legacy.content.caption.as_deref(), Some("look"));
        assert_eq!(legacy.content.file_length, Some(2048));
        assert_eq!(legacy.content.mimetype.as_deref(), Some("image/jpeg"));
        assert_eq!(legacy.content.text, None, "the caption is the caption");
        assert_eq!(legacy.content.extra["jpegThumbnail"], "AAE=");
        assert_eq!(
            legacy::MessagesUpsert(legacy.clone())
                .media()
                .unwrap()
                .file_length,
            Some(2048)
        );
        assert_eq!(
            legacy.key_participant.as_deref(),
            Some("551@s.whatsapp.net")
        );
    }

    #[test]
    fn an_enveloped_event_is_read_through_its_frame() {
        let text = format!(
            r#"{{"event":"messages.upsert","instance":"bot","data":{UPSERT},"server_url":"http://localhost:8080","date_time":"2026-12-06T10:00:00.000Z","sender":"5511999999999@s.whatsapp.net","apikey":null}}"#
        );
        let event = EventName::from(EventKind::MessagesUpsert);
        let frame = Frame::parse(&event, &text).unwrap();
        assert!(frame.is_enveloped());
        assert_eq!(frame.instance().unwrap().name.as_deref(), Some("bot"));
        let m: MessagesUpsert = frame.decode(&event).unwrap();
        assert_eq!(m.text(), Some("!ping"));
        assert!(MessagesUpsert::accepts(&event));
    }
}
