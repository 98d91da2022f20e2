//! Payloads of the newer CodeChat API (`/ws/instance/events`, `/ws/global/events`).
//!
//! These are the `data` of each enveloped frame: normalised DTOs, different from the legacy
//! server's Baileys objects even where the event name is the same, so they live in their own
//! module. Renamed events (`chats.updated`, `groups.participants.update`, `presence.updated`)
//! have their own types here.

use crate::legacy;
use crate::name::{EventKind, EventName};
use crate::payload::{payload, Extra, Payload};
use crate::wire::{self, Timestamp};
use serde::{Deserialize, Serialize};
use std::ops::{Deref, DerefMut};

/// A stored message, as sent on `messages.upsert` and `send.message`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredMessage {
    /// Database id.
    #[serde(default, with = "wire::opt_int")]
    pub id: Option<i64>,
    /// WhatsApp message id (required by the schema, missing from some documented examples).
    pub key_id: Option<String>,
    /// The chat JID.
    pub key_remote_jid: Option<String>,
    /// The chat's LID.
    pub key_lid: Option<String>,
    /// Whether this instance sent it.
    #[serde(default, deserialize_with = "wire::null_default")]
    pub key_from_me: bool,
    /// The sender within a group.
    pub key_participant: Option<String>,
    /// The sender's LID within a group.
    pub key_participant_lid: Option<String>,
    /// Sender's display name.
    pub push_name: Option<String>,
    /// Message type: `conversation` or `text` (both are documented), `imageMessage`...
    pub message_type: Option<String>,
    /// The message body.
    #[serde(default, deserialize_with = "wire::null_default")]
    pub content: legacy::MessageContent,
    /// Send time, seconds since the epoch.
    #[serde(default, with = "wire::opt_int")]
    pub message_timestamp: Option<i64>,
    /// `ios`, `android`, `web`, `desktop` or `unknown`.
    pub device: Option<String>,
    /// Whether the chat is a group.
    #[serde(default, deserialize_with = "wire::null_default")]
    pub is_group: bool,
    /// Database id of the instance.
    #[serde(default, with = "wire::opt_int")]
    pub instance_id: Option<i64>,
    /// Server-side metadata.
    pub metadata: Option<serde_json::Value>,
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

// A payload that is another type under a different name or channel: a transparent newtype that
// derefs to it, so handlers read the fields directly.
macro_rules! newtype_payload {
    ($(#[$doc:meta])* $name:ident($inner:ty), [$($kind:ident),+] $(, $message:ident)?) => {
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

        impl DerefMut for $name {
            fn deref_mut(&mut self) -> &mut $inner {
                &mut self.0
            }
        }

        payload!($name, Instance, [$($kind),+] $(, $message)?);
    };
}

newtype_payload!(
    /// `messages.upsert`: a message received or sent.
    MessagesUpsert(StoredMessage),
    [MessagesUpsert],
    message
);
newtype_payload!(
    /// `send.message`: a message sent through the REST API.
    SendMessage(StoredMessage),
    [SendMessage],
    message
);

// Most newer-API payloads are flat records of optional fields. One macro writes them so that
// each stays a plain struct with documented fields, camelCase on the wire and an `extra` map.
macro_rules! record {
    (
        $(#[$doc:meta])* $name:ident [$($kind:ident),+] {
            $( $(#[$fdoc:meta])* $field:ident : $ty:ty $(=> $with:literal)? ),* $(,)?
        }
    ) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
        #[serde(rename_all = "camelCase")]
        pub struct $name {
            $(
                $(#[$fdoc])*
                $(#[serde(default, with = $with)])?
                pub $field: $ty,
            )*
            /// Fields this version does not model.
            #[serde(flatten)]
            pub extra: Extra,
        }
        payload!($name, Instance, [$($kind),+]);
    };
}

record! {
    /// `call.upsert`: an incoming call offer or its end.
    CallUpsert [CallUpsert] {
        /// The chat.
        chat_id: Option<String>,
        /// The caller.
        from: Option<String>,
        /// The caller's phone number.
        caller_pn: Option<String>,
        /// Call id.
        id: Option<String>,
        /// When it happened.
        date: Option<Timestamp> => "wire::opt_time",
        /// Received while offline.
        offline: Option<bool>,
        /// `offer`, `ringing`, `timeout`, `reject`, `accept` or `terminate`.
        status: Option<String>,
        /// Video call.
        is_video: Option<bool>,
        /// Group call.
        is_group: Option<bool>,
        /// The group, for group calls.
        group_jid: Option<String>,
        /// Network latency.
        latency_ms: Option<i64> => "wire::opt_int",
    }
}

record! {
    /// `messages.update`: a message's delivery status changed.
    MessagesUpdate [MessagesUpdate] {
        /// Database id of the message.
        message_id: Option<i64> => "wire::opt_int",
        /// `sent`, `delivered`, `read`, `played`...
        status: Option<String>,
        /// When it changed.
        date_time: Option<Timestamp> => "wire::opt_time",
    }
}

record! {
    /// `connection.update`: the WhatsApp session's state.
    ConnectionUpdate [ConnectionUpdate] {
        /// `open`, `connecting` or `close`.
        connection: Option<String>,
        /// What happened: `connected`, `disconnected`, `logged_out`...
        #[serde(rename = "type")]
        kind: Option<String>,
        /// When the session last connected.
        last_connection: Option<Timestamp> => "wire::opt_time",
    }
}

record! {
    /// `qrcode.updated`: a QR code to pair a phone.
    QrcodeUpdated [QrcodeUpdated] {
        /// How many codes were issued in this pairing attempt.
        count: Option<i64> => "wire::opt_int",
        /// The text to draw as a QR code.
        code: Option<String>,
        /// The QR code as a `data:image/png;base64,...` URL.
        base64: Option<String>,
        /// Seconds until the code expires.
        expires_in_seconds: Option<i64> => "wire::opt_int",
        /// When the code expires.
        expires_at: Option<Timestamp> => "wire::opt_time",
    }
}

record! {
    /// `contacts.upsert`: one contact added or refreshed.
    ContactsUpsert [ContactsUpsert] {
        /// `upserted`.
        action: Option<String>,
        /// Database id.
        id: Option<i64> => "wire::opt_int",
        /// The contact's JID.
        remote_jid: Option<String>,
        /// The contact's LID.
        lid: Option<String>,
        /// Display name.
        push_name: Option<String>,
        /// Profile picture URL.
        profile_pic_url: Option<String>,
    }
}

/// One contact change in `contacts.update`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContactChange {
    /// `updated`.
    pub action: Option<String>,
    /// Database id.
    #[serde(default, with = "wire::opt_int")]
    pub id: Option<i64>,
    /// The contact's JID.
    pub remote_jid: Option<String>,
    /// The contact's LID.
    pub lid: Option<String>,
    /// Display name.
    pub push_name: Option<String>,
    /// Business name.
    pub business_name: Option<String>,
    /// What changed it, for example `pushName`.
    pub source: Option<String>,
    /// Fields this version does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

newtype_payload!(
    /// `contacts.update`: contacts changed.
    ContactsUpdate(Vec<ContactChange>),
    [ContactsUpdate]
);

record! {
    /// `chats.updated`: a chat changed (archived, pinned, muted...).
    ChatsUpdated [ChatsUpdated] {
        /// The chat.
        chat_jid: Option<String>,
        /// What changed: `archive`, `pin`, `mute`...
        #[serde(rename = "type")]
        kind: Option<String>,
        /// When it changed.
        date_time: Option<Timestamp> => "wire::opt_time",
    }
}

record! {
    /// `chats.delete`: a chat deleted.
    ChatsDelete [ChatsDelete] {
        /// The chat.
        chat_jid: Option<String>,
        /// Whether its media was deleted too.
        delete_media: Option<bool>,
        /// When it happened.
        date_time: Option<Timestamp> => "wire::opt_time",
    }
}

/// A group member.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupParticipant {
    /// Member JID.
    pub id: Option<String>,
    /// The member's LID.
    pub lid: Option<String>,
    /// `admin`, `superadmin`, or none.
    pub admin: Option<String>,
    /// Whether the member is an admin.
    pub is_admin: Option<bool>,
    /// Whether the member is the super admin.
    pub is_super_admin: Option<bool>,
    /// Fields this version does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

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
    /// Only admins may send.
    pub announce: Option<bool>,
    /// Members, when the whole metadata is sent.
    pub participants: Option<Vec<GroupParticipant>>,
    /// Fields this version does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

newtype_payload!(
    /// `groups.upsert`: groups joined or created.
    GroupsUpsert(Vec<Group>),
    [GroupsUpsert]
);

/// One entry of `groups.update`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct GroupChange {
    /// The group id and the fields that changed.
    pub partial: Option<Group>,
    /// Fields this version does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

newtype_payload!(
    /// `groups.update`: group settings changed.
    GroupsUpdate(Vec<GroupChange>),
    [GroupsUpdate]
);

record! {
    /// `groups.participants.update`: members added, removed, promoted or demoted.
    GroupsParticipantsUpdate [GroupsParticipantsUpdate] {
        /// The group JID.
        id: Option<String>,
        /// `add`, `remove`, `promote` or `demote`.
        action: Option<String>,
        /// Who made the change.
        author: Option<String>,
        /// The author's phone number.
        author_pn: Option<String>,
        /// The members concerned.
        participants: Option<Vec<GroupParticipant>>,
    }
}

record! {
    /// `presence.updated`: chat presence (`chatJid`, `state`), or a contact's availability
    /// (`type: "presence"`, `jid`, `unavailable`, `lastSeen`).
    PresenceUpdated [PresenceUpdated] {
        /// The chat, for chat presence.
        chat_jid: Option<String>,
        /// Who is typing or recording.
        sender_jid: Option<String>,
        /// `composing` or `paused`.
        state: Option<String>,
        /// `text` or `audio`.
        media: Option<String>,
        /// `presence` for the availability form.
        #[serde(rename = "type")]
        kind: Option<String>,
        /// The contact, for the availability form.
        jid: Option<String>,
        /// Whether the contact went offline.
        unavailable: Option<bool>,
        /// Last seen.
        last_seen: Option<Timestamp> => "wire::opt_time",
        /// When it happened.
        date_time: Option<Timestamp> => "wire::opt_time",
    }
}

record! {
    /// `history.sync`: a step of the history sync.
    HistorySync [HistorySync] {
        /// `history.sync`.
        #[serde(rename = "type")]
        kind: Option<String>,
        /// Sync details, such as `syncType`.
        data: Option<Extra>,
        /// When it happened.
        date_time: Option<Timestamp> => "wire::opt_time",
    }
}

record! {
    /// `identity.update`: a contact's identity key changed.
    IdentityUpdate [IdentityUpdate] {
        /// The contact.
        jid: Option<String>,
        /// Whether the change was implicit.
        implicit: Option<bool>,
        /// When it happened.
        date_time: Option<Timestamp> => "wire::opt_time",
    }
}

record! {
    /// `labels.association`: a label put on or taken off a chat or message.
    LabelsAssociation [LabelsAssociation] {
        /// `add` or `remove`.
        action: Option<String>,
        /// The label.
        label_id: Option<String>,
        /// The chat.
        chat_jid: Option<String>,
        /// `chat` or `message`.
        #[serde(rename = "type")]
        kind: Option<String>,
        /// When it happened.
        date_time: Option<Timestamp> => "wire::opt_time",
    }
}

record! {
    /// `labels.edit`: a label created, changed or deleted.
    LabelsEdit [LabelsEdit] {
        /// Label id.
        id: Option<String>,
        /// Label name.
        name: Option<String>,
        /// Colour index.
        color: Option<i64> => "wire::opt_int",
        /// Whether it was deleted.
        deleted: Option<bool>,
    }
}

record! {
    /// `media.retry`: the answer to a media re-upload request.
    MediaRetry [MediaRetry] {
        /// The chat.
        chat_jid: Option<String>,
        /// The sender.
        sender_jid: Option<String>,
        /// The message.
        message_id: Option<String>,
        /// Whether this instance sent it.
        key_from_me: Option<bool>,
        /// Error code, if the retry failed.
        error_code: Option<i64> => "wire::opt_int",
        /// Whether new ciphertext came back.
        has_ciphertext: Option<bool>,
        /// When it happened.
        date_time: Option<Timestamp> => "wire::opt_time",
    }
}

record! {
    /// `messages.delete`: a message deleted for this account.
    MessagesDelete [MessagesDelete] {
        /// Database id.
        id: Option<i64> => "wire::opt_int",
        /// WhatsApp message id.
        message_id: Option<String>,
        /// The chat.
        chat_jid: Option<String>,
        /// The sender.
        sender_jid: Option<String>,
        /// Whether this instance sent it.
        key_from_me: Option<bool>,
        /// Whether its media was deleted too.
        delete_media: Option<bool>,
        /// Whether this came from a full sync.
        from_full_sync: Option<bool>,
        /// When the message was sent.
        message_time: Option<Timestamp> => "wire::opt_time",
        /// When it was deleted.
        date_time: Option<Timestamp> => "wire::opt_time",
    }
}

record! {
    /// `messages.star`: a message starred or unstarred.
    MessagesStar [MessagesStar] {
        /// WhatsApp message id.
        message_id: Option<String>,
        /// The chat.
        chat_jid: Option<String>,
        /// The sender.
        sender_jid: Option<String>,
        /// Whether this instance sent it.
        key_from_me: Option<bool>,
        /// Starred or not.
        starred: Option<bool>,
        /// Whether this came from a full sync.
        from_full_sync: Option<bool>,
        /// When it happened.
        date_time: Option<Timestamp> => "wire::opt_time",
    }
}

record! {
    /// `messages.undecryptable`: a message that could not be decrypted.
    MessagesUndecryptable [MessagesUndecryptable] {
        /// WhatsApp message id.
        key_id: Option<String>,
        /// The chat.
        chat_jid: Option<String>,
        /// The sender.
        sender_jid: Option<String>,
        /// Whether this instance sent it.
        key_from_me: Option<bool>,
        /// Whether the message is unavailable (for example view-once).
        is_unavailable: Option<bool>,
        /// Why it is unavailable.
        unavailable_type: Option<String>,
        /// `show` or `hide`.
        decrypt_fail_mode: Option<String>,
        /// When it happened.
        date_time: Option<Timestamp> => "wire::opt_time",
    }
}

record! {
    /// `news.letter`: a newsletter setting changed.
    NewsLetter [NewsLetter] {
        /// The newsletter.
        newsletter_jid: Option<String>,
        /// What changed, for example `mute.change`.
        #[serde(rename = "type")]
        kind: Option<String>,
        /// Muted or not.
        muted: Option<bool>,
        /// When it happened.
        date_time: Option<Timestamp> => "wire::opt_time",
    }
}

record! {
    /// `profile.picture.update`: a profile or group picture changed.
    ProfilePictureUpdate [ProfilePictureUpdate] {
        /// The contact or group.
        jid: Option<String>,
        /// Who changed it.
        author: Option<String>,
        /// Whether `jid` is a group.
        is_group: Option<bool>,
        /// The new picture's id.
        picture_id: Option<String>,
        /// Whether the picture was removed.
        remove: Option<bool>,
        /// When it happened.
        date_time: Option<Timestamp> => "wire::opt_time",
    }
}

record! {
    /// `settings.update`: an account setting changed.
    SettingsUpdate [SettingsUpdate] {
        /// Which setting, for example `push.name`.
        #[serde(rename = "type")]
        kind: Option<String>,
        /// The new name, for `push.name`.
        name: Option<String>,
        /// Whether this came from a full sync.
        from_full_sync: Option<bool>,
        /// When it happened.
        date_time: Option<Timestamp> => "wire::opt_time",
    }
}

record! {
    /// `status.instance`: an instance lifecycle step, such as the end of the offline sync.
    StatusInstance [StatusInstance] {
        /// What happened, for example `offline.sync.completed`.
        #[serde(rename = "type")]
        kind: Option<String>,
        /// The step's status.
        status: Option<String>,
        /// Details.
        data: Option<Extra>,
    }
}

record! {
    /// `user.about.update`: a contact's about text changed.
    UserAboutUpdate [UserAboutUpdate] {
        /// The contact.
        jid: Option<String>,
        /// The new about text.
        status: Option<String>,
        /// When it happened.
        date_time: Option<Timestamp> => "wire::opt_time",
    }
}

/// The call a `call.*` event is about.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CallInfo {
    /// Call id.
    pub id: Option<String>,
    /// The provider's call id.
    pub provider_call_id: Option<String>,
    /// The other party.
    pub peer: Option<String>,
    /// `incoming` or `outgoing`.
    pub direction: Option<String>,
    /// `RINGING`, `ACTIVE`, `ENDING`, `ENDED`...
    pub status: Option<String>,
    /// Fields this version does not model (`answeredBy`, `endReason`, `audio`...).
    #[serde(flatten)]
    pub extra: Extra,
}

/// Any event of the `call.*` family except `call.upsert`: the call envelope the server nests
/// inside the frame's `data`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CallEvent {
    /// The event name, repeated.
    pub event: Option<EventName>,
    /// The instance name.
    pub instance: Option<String>,
    /// The instance id.
    #[serde(default, with = "wire::opt_int")]
    pub instance_id: Option<i64>,
    /// The call.
    pub call: Option<CallInfo>,
    /// Event-specific details.
    pub data: Option<Extra>,
    /// Position of this event within the call.
    #[serde(default, with = "wire::opt_int")]
    pub sequence: Option<i64>,
    /// When it happened.
    #[serde(default, with = "wire::opt_time")]
    pub timestamp: Option<Timestamp>,
    /// Fields this version does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

impl Payload for CallEvent {
    const CHANNEL: crate::name::Channel = crate::name::Channel::Instance;
    const EVENTS: &'static [EventKind] = &[
        EventKind::CallIncoming,
        EventKind::CallRinging,
        EventKind::CallReady,
        EventKind::CallActive,
        EventKind::CallHangupRequested,
        EventKind::CallEnding,
        EventKind::CallTerminateSent,
        EventKind::CallTerminateConfirmed,
        EventKind::CallTerminateRetry,
        EventKind::CallTerminateFailed,
        EventKind::CallEnded,
        EventKind::CallEndedUnconfirmed,
    ];

    /// Every `call.*` name, including the group families (`call.group.*`, `call.participant.*`...)
    /// this version does not list, except `call.upsert`, which has its own shape.
    fn accepts(name: &EventName) -> bool {
        name.as_str().starts_with("call.") && *name != EventKind::CallUpsert
    }
}

/// Message counts of a batch.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct BatchCounts {
    /// Items in the batch.
    #[serde(default, with = "wire::opt_int")]
    pub total: Option<i64>,
    /// Items done, whatever their result.
    #[serde(default, with = "wire::opt_int")]
    pub processed: Option<i64>,
    /// Items sent.
    #[serde(default, with = "wire::opt_int")]
    pub success: Option<i64>,
    /// Items failed.
    #[serde(default, with = "wire::opt_int")]
    pub failed: Option<i64>,
    /// Fields this version does not model (`pending`, `sending`, `skipped`, `unknown`...).
    #[serde(flatten)]
    pub extra: Extra,
}

/// A bulk-message batch.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Batch {
    /// Batch id.
    pub id: Option<String>,
    /// Batch name.
    pub name: Option<String>,
    /// `QUEUED`, `PROCESSING`, `PAUSED`, `COMPLETED`...
    pub status: Option<String>,
    /// Percent done.
    #[serde(default, with = "wire::opt_int")]
    pub progress: Option<i64>,
    /// Item counts.
    pub counts: Option<BatchCounts>,
    /// The user who owns it.
    pub owner_user_id: Option<String>,
    /// Creation time.
    #[serde(default, with = "wire::opt_time")]
    pub created_at: Option<Timestamp>,
    /// Last change.
    #[serde(default, with = "wire::opt_time")]
    pub updated_at: Option<Timestamp>,
    /// Fields this version does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A batch lifecycle event (`message.batch.created` ... `message.batch.completed-with-errors`).
/// The server sends either the whole batch or only its id.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchEvent {
    /// The batch, when sent whole.
    pub batch: Option<Batch>,
    /// The batch id, when only the id is sent.
    pub batch_id: Option<String>,
    /// Fields this version does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

impl BatchEvent {
    /// The batch id, from whichever form was sent.
    pub fn id(&self) -> Option<&str> {
        self.batch_id
            .as_deref()
            .or_else(|| self.batch.as_ref()?.id.as_deref())
    }
}

impl Payload for BatchEvent {
    const CHANNEL: crate::name::Channel = crate::name::Channel::Global;
    const EVENTS: &'static [EventKind] = &[
        EventKind::BatchCreated,
        EventKind::BatchScheduled,
        EventKind::BatchStarted,
        EventKind::BatchWindowStarted,
        EventKind::BatchWaitingWindow,
        EventKind::BatchRecovered,
        EventKind::BatchProgress,
        EventKind::BatchPauseRequested,
        EventKind::BatchPaused,
        EventKind::BatchWaitingInstance,
        EventKind::BatchResumed,
        EventKind::BatchStopRequested,
        EventKind::BatchStopped,
        EventKind::BatchInterrupted,
        EventKind::BatchCompleted,
        EventKind::BatchCompletedWithErrors,
    ];
}

/// The error of a failed batch item.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct BatchItemError {
    /// Error code, for example `SEND_MESSAGE_FAILED`.
    pub code: Option<String>,
    /// Human-readable message.
    pub message: Option<String>,
    /// Fields this version does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `message.batch.item.failed` and `message.batch.item.unknown`: one item's send failed, or
/// its result is unknown.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchItemEvent {
    /// The batch.
    pub batch_id: Option<String>,
    /// The item.
    pub item_id: Option<String>,
    /// The recipient's number.
    pub recipient: Option<String>,
    /// What went wrong.
    pub error: Option<BatchItemError>,
    /// The instance that tried to send (`{id, name}`).
    pub instance: Option<Extra>,
    /// Fields this version does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

impl Payload for BatchItemEvent {
    const CHANNEL: crate::name::Channel = crate::name::Channel::Global;
    const EVENTS: &'static [EventKind] = &[EventKind::BatchItemFailed, EventKind::BatchItemUnknown];
}
