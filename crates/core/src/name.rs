//! Event names: every name the legacy and the newer CodeChat servers accept, typed.

use std::fmt;
use std::str::FromStr;

/// Which WebSocket endpoint serves an event, and so which wire shape its frames have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Channel {
    /// The legacy Node server: `/ws/events`, bare payload frames.
    Legacy,
    /// The newer server's per-instance events: `/ws/instance/events`, enveloped frames.
    Instance,
    /// The newer server's per-user batch events: `/ws/global/events`, enveloped frames.
    Global,
    /// Evolution API's Socket.IO server: `/socket.io/`, one session per instance namespace
    /// carrying every event, each in an envelope.
    Evolution,
}

impl Channel {
    /// The path of the WebSocket endpoint for this channel.
    pub const fn path(self) -> &'static str {
        match self {
            Channel::Legacy => "/ws/events",
            Channel::Instance => "/ws/instance/events",
            Channel::Global => "/ws/global/events",
            Channel::Evolution => "/socket.io/",
        }
    }

    /// The channel served at `path`, if any.
    pub fn from_path(path: &str) -> Option<Channel> {
        [
            Channel::Legacy,
            Channel::Instance,
            Channel::Global,
            Channel::Evolution,
        ]
        .into_iter()
        .find(|c| c.path() == path)
    }
}

// One table drives the enum, its wire names and the channels that accept each name, so a name
// can never be added to one list and forgotten in another.
macro_rules! event_kinds {
    ($( $(#[$doc:meta])* $variant:ident = $wire:literal [$($flag:ident),*] ),* $(,)?) => {
        /// Every event name a CodeChat server is known to accept.
        ///
        /// Names the server may add later are carried by [`EventName::Other`].
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum EventKind {
            $( $(#[$doc])* $variant, )*
        }

        impl EventKind {
            /// Every known kind, in declaration order.
            pub const ALL: &'static [EventKind] = &[$(EventKind::$variant),*];

            /// The name as it is written on the wire, for example `messages.upsert`.
            pub const fn as_str(self) -> &'static str {
                match self { $(EventKind::$variant => $wire,)* }
            }

            const fn flags(self) -> u8 {
                match self { $(EventKind::$variant => 0 $(| $flag)*,)* }
            }
        }
    };
}

const L: u8 = 1; // accepted by the legacy server's allow-list
const E: u8 = 2; // emitted on the legacy server's socket (the other legacy names stay silent)
const I: u8 = 4; // a newer-server instance event
const C: u8 = 8; // a newer-server `call.*` event
const G: u8 = 16; // a newer-server global (batch) event
const V: u8 = 32; // an Evolution API event (Socket.IO)

event_kinds! {
    /// `qrcode.updated`: a new pairing QR code.
    QrcodeUpdated = "qrcode.updated" [L, E, I, V],
    /// `messages.set`: history sync (legacy: webhook only).
    MessagesSet = "messages.set" [L, V],
    /// `messages.upsert`: a message received or sent.
    MessagesUpsert = "messages.upsert" [L, E, I, V],
    /// `messages.update`: a receipt or an edit.
    MessagesUpdate = "messages.update" [L, E, I, V],
    /// `send.message`: a message sent through the API.
    SendMessage = "send.message" [L, E, I, V],
    /// `contacts.set` (legacy: never emitted).
    ContactsSet = "contacts.set" [L, V],
    /// `contacts.upsert`: contacts added or refreshed.
    ContactsUpsert = "contacts.upsert" [L, E, I, V],
    /// `contacts.update`: contacts changed (legacy: delivered on `contacts.upsert`).
    ContactsUpdate = "contacts.update" [L, I, V],
    /// `chats.set` (legacy: webhook only).
    ChatsSet = "chats.set" [L, V],
    /// `chats.upsert`: chats created.
    ChatsUpsert = "chats.upsert" [L, E, V],
    /// `chats.update`: chats changed (legacy name).
    ChatsUpdate = "chats.update" [L, E, V],
    /// `chats.delete`: chats removed.
    ChatsDelete = "chats.delete" [L, I, V],
    /// `presence.update`: typing, recording, online (legacy name).
    PresenceUpdate = "presence.update" [L, E, V],
    /// `groups.upsert`: groups joined or created.
    GroupsUpsert = "groups.upsert" [L, E, I, V],
    /// `groups.update`: group settings changed.
    GroupsUpdate = "groups.update" [L, E, I, V],
    /// `group-participants.update`: members added, removed, promoted (legacy name).
    GroupParticipantsUpdate = "group-participants.update" [L, E, V],
    /// `connection.update`: the WhatsApp session's state.
    ConnectionUpdate = "connection.update" [L, E, I, V],
    /// `status.instance`: instance lifecycle (legacy: webhook only).
    StatusInstance = "status.instance" [L, I, V],
    /// `refresh.token` (legacy: webhook only).
    RefreshToken = "refresh.token" [L],
    /// `call.upsert`: an incoming call offer or its end.
    CallUpsert = "call.upsert" [L, E, I],
    /// `labels.association`: a label put on or taken off a chat.
    LabelsAssociation = "labels.association" [L, I, V],
    /// `labels.edit`: a label created or changed.
    LabelsEdit = "labels.edit" [L, I, V],
    /// `chats.updated`: chats changed (newer name of `chats.update`).
    ChatsUpdated = "chats.updated" [I],
    /// `groups.participants.update`: newer name of `group-participants.update`.
    GroupsParticipantsUpdate = "groups.participants.update" [I],
    /// `history.sync`: a history sync step.
    HistorySync = "history.sync" [I],
    /// `identity.update`: a contact's identity key changed.
    IdentityUpdate = "identity.update" [I],
    /// `media.retry`: a media re-upload answer.
    MediaRetry = "media.retry" [I],
    /// `messages.delete`: a message deleted for me.
    MessagesDelete = "messages.delete" [I, V],
    /// `messages.star`: a message starred or unstarred.
    MessagesStar = "messages.star" [I],
    /// `messages.undecryptable`: a message that could not be decrypted.
    MessagesUndecryptable = "messages.undecryptable" [I],
    /// `news.letter`: a newsletter setting changed.
    NewsLetter = "news.letter" [I],
    /// `presence.updated`: newer name of `presence.update`.
    PresenceUpdated = "presence.updated" [I],
    /// `profile.picture.update`: a profile or group picture changed.
    ProfilePictureUpdate = "profile.picture.update" [I],
    /// `settings.update`: an account setting changed.
    SettingsUpdate = "settings.update" [I],
    /// `user.about.update`: a contact's about text changed.
    UserAboutUpdate = "user.about.update" [I],
    /// `call.incoming`: an incoming call.
    CallIncoming = "call.incoming" [C],
    /// `call.ringing`: an outgoing call is ringing.
    CallRinging = "call.ringing" [C],
    /// `call.ready`: the call's media session is confirmed.
    CallReady = "call.ready" [C],
    /// `call.active`: the call is active.
    CallActive = "call.active" [C],
    /// `call.hangup.requested`: a hang-up was asked for.
    CallHangupRequested = "call.hangup.requested" [C],
    /// `call.ending`: the call is ending.
    CallEnding = "call.ending" [C],
    /// `call.terminate.sent`: a terminate was sent.
    CallTerminateSent = "call.terminate.sent" [C],
    /// `call.terminate.confirmed`: the peer confirmed the terminate.
    CallTerminateConfirmed = "call.terminate.confirmed" [C],
    /// `call.terminate.retry`: the terminate is being retried.
    CallTerminateRetry = "call.terminate.retry" [C],
    /// `call.terminate.failed`: the terminate failed.
    CallTerminateFailed = "call.terminate.failed" [C],
    /// `call.ended`: the call ended.
    CallEnded = "call.ended" [C],
    /// `call.ended_unconfirmed`: ended locally without the peer's confirmation.
    CallEndedUnconfirmed = "call.ended_unconfirmed" [C],
    /// `call`: Evolution API's call offers and ends.
    Call = "call" [V],
    /// `messages.edited`: Evolution API's edited messages.
    MessagesEdited = "messages.edited" [V],
    /// `send.message.update`: Evolution API's edit of a message, made through its REST API.
    SendMessageUpdate = "send.message.update" [V],
    /// `application.startup`: Evolution API started.
    ApplicationStartup = "application.startup" [V],
    /// `instance.create`: an Evolution API instance was created.
    InstanceCreate = "instance.create" [V],
    /// `instance.delete`: an Evolution API instance was deleted.
    InstanceDelete = "instance.delete" [V],
    /// `remove.instance`: an Evolution API instance was removed.
    RemoveInstance = "remove.instance" [V],
    /// `logout.instance`: an Evolution API instance logged out of WhatsApp.
    LogoutInstance = "logout.instance" [V],
    /// `typebot.start`: an Evolution API Typebot session started.
    TypebotStart = "typebot.start" [V],
    /// `typebot.change-status`: an Evolution API Typebot session changed status.
    TypebotChangeStatus = "typebot.change-status" [V],
    /// `creds.update`: Evolution API's WhatsApp credentials changed.
    CredsUpdate = "creds.update" [V],
    /// `messaging-history.set`: Evolution API's history sync.
    MessagingHistorySet = "messaging-history.set" [V],
    /// `message.batch.created`.
    BatchCreated = "message.batch.created" [G],
    /// `message.batch.scheduled`.
    BatchScheduled = "message.batch.scheduled" [G],
    /// `message.batch.started`.
    BatchStarted = "message.batch.started" [G],
    /// `message.batch.window-started`.
    BatchWindowStarted = "message.batch.window-started" [G],
    /// `message.batch.waiting-window`.
    BatchWaitingWindow = "message.batch.waiting-window" [G],
    /// `message.batch.recovered`.
    BatchRecovered = "message.batch.recovered" [G],
    /// `message.batch.progress`.
    BatchProgress = "message.batch.progress" [G],
    /// `message.batch.pause-requested`.
    BatchPauseRequested = "message.batch.pause-requested" [G],
    /// `message.batch.paused`.
    BatchPaused = "message.batch.paused" [G],
    /// `message.batch.waiting-instance`.
    BatchWaitingInstance = "message.batch.waiting-instance" [G],
    /// `message.batch.resumed`.
    BatchResumed = "message.batch.resumed" [G],
    /// `message.batch.stop-requested`.
    BatchStopRequested = "message.batch.stop-requested" [G],
    /// `message.batch.stopped`.
    BatchStopped = "message.batch.stopped" [G],
    /// `message.batch.interrupted`.
    BatchInterrupted = "message.batch.interrupted" [G],
    /// `message.batch.completed`.
    BatchCompleted = "message.batch.completed" [G],
    /// `message.batch.completed-with-errors`.
    BatchCompletedWithErrors = "message.batch.completed-with-errors" [G],
    /// `message.batch.item.failed`.
    BatchItemFailed = "message.batch.item.failed" [G],
    /// `message.batch.item.unknown`.
    BatchItemUnknown = "message.batch.item.unknown" [G],
}

impl EventKind {
    /// In the legacy server's allow-list (22 names): a socket for it opens.
    pub const fn is_legacy(self) -> bool {
        self.flags() & L != 0
    }

    /// The legacy server actually sends frames for it (13 names); the other legacy names are
    /// accepted at the handshake but their sockets stay silent forever.
    pub const fn is_emitted_by_legacy(self) -> bool {
        self.flags() & E != 0
    }

    /// One of the newer server's 27 instance events.
    pub const fn is_instance(self) -> bool {
        self.flags() & I != 0
    }

    /// One of the newer server's `call.*` events (also served on `/ws/instance/events`).
    pub const fn is_call(self) -> bool {
        self.flags() & C != 0
    }

    /// One of the newer server's 18 global `message.batch.*` events.
    pub const fn is_global(self) -> bool {
        self.flags() & G != 0
    }

    /// One of Evolution API's 33 events.
    pub const fn is_evolution(self) -> bool {
        self.flags() & V != 0
    }

    /// Whether the endpoint `channel` accepts this name at the handshake.
    pub const fn served_on(self, channel: Channel) -> bool {
        match channel {
            Channel::Legacy => self.is_legacy(),
            Channel::Instance => self.is_instance() || self.is_call(),
            Channel::Global => self.is_global(),
            Channel::Evolution => self.is_evolution(),
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not an event any CodeChat server is known to accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown event name {0:?}")]
pub struct UnknownEvent(pub String);

impl FromStr for EventKind {
    type Err = UnknownEvent;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EventKind::ALL
            .iter()
            .copied()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownEvent(s.to_owned()))
    }
}

/// An event name as a subscription or a frame carries it: a known [`EventKind`], or a name this
/// version does not know yet, kept as it was written so it can still be subscribed to and routed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventName {
    /// A name this version knows.
    Known(EventKind),
    /// A name this version does not know.
    Other(Box<str>),
}

impl EventName {
    /// The name as written on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            EventName::Known(k) => k.as_str(),
            EventName::Other(s) => s,
        }
    }

    /// The known kind, if this is one.
    pub fn kind(&self) -> Option<EventKind> {
        match self {
            EventName::Known(k) => Some(*k),
            EventName::Other(_) => None,
        }
    }

    /// Parses a wire name; never fails, unknown names become [`EventName::Other`].
    pub fn parse(s: &str) -> EventName {
        s.parse::<EventKind>()
            .map(EventName::Known)
            .unwrap_or_else(|_| EventName::Other(s.into()))
    }
}

impl EventName {
    /// Whether the endpoint `channel` accepts this name at the handshake. An unknown name is
    /// accepted only where the server takes an open family: `call.*` on `/ws/instance/events`.
    pub fn served_on(&self, channel: Channel) -> bool {
        match self {
            EventName::Known(k) => k.served_on(channel),
            EventName::Other(s) => channel == Channel::Instance && s.starts_with("call."),
        }
    }

    /// The name Evolution API's websocket settings give this event: `.` and `-` as `_`, upper
    /// case (`messages.upsert` → `MESSAGES_UPSERT`).
    pub fn evolution_setting(&self) -> String {
        self.as_str().replace(['.', '-'], "_").to_ascii_uppercase()
    }

    /// Up to three known names served on one of `channels` that look like this one (a typo, or
    /// the other server generation's spelling), closest first: for "did you mean".
    pub fn suggestions(&self, channels: &[Channel]) -> Vec<&'static str> {
        let name = self.as_str();
        let mut close: Vec<(usize, &'static str)> = EventKind::ALL
            .iter()
            .filter(|k| channels.iter().any(|c| k.served_on(*c)))
            .map(|k| (edit_distance(name, k.as_str()), k.as_str()))
            .filter(|(d, known)| *d > 0 && *d <= (known.len() / 4).max(2))
            .collect();
        close.sort();
        close.into_iter().take(3).map(|(_, k)| k).collect()
    }
}

/// Levenshtein distance in characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (diagonal + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(above + 1);
            diagonal = above;
        }
    }
    row[b.len()]
}

impl FromStr for EventName {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(EventName::parse(s))
    }
}

impl From<EventKind> for EventName {
    fn from(k: EventKind) -> Self {
        EventName::Known(k)
    }
}

impl PartialEq<EventKind> for EventName {
    fn eq(&self, other: &EventKind) -> bool {
        self.kind() == Some(*other)
    }
}

impl fmt::Display for EventName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for EventName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for EventName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Ok(EventName::parse(&s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_match_the_protocol() {
        let count = |f: fn(EventKind) -> bool| EventKind::ALL.iter().filter(|k| f(**k)).count();
        assert_eq!(count(EventKind::is_legacy), 22);
        assert_eq!(count(EventKind::is_emitted_by_legacy), 13);
        assert_eq!(count(EventKind::is_instance), 27);
        assert_eq!(count(EventKind::is_global), 18);
        assert_eq!(count(EventKind::is_call), 12);
    }

    #[test]
    fn names_round_trip_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for k in EventKind::ALL {
            assert!(seen.insert(k.as_str()), "duplicate name {k}");
            assert_eq!(k.as_str().parse::<EventKind>(), Ok(*k));
            assert_eq!(EventName::parse(k.as_str()), EventName::Known(*k));
        }
    }

    #[test]
    fn unknown_names_stay_usable() {
        let n = EventName::parse("call.screen_share.started");
        assert_eq!(n, EventName::Other("call.screen_share.started".into()));
        assert_eq!(n.to_string(), "call.screen_share.started");
        assert!(
            "Messages.Upsert".parse::<EventKind>().is_err(),
            "names are case-sensitive"
        );
    }

    #[test]
    fn channels_by_path() {
        for c in [Channel::Legacy, Channel::Instance, Channel::Global] {
            assert_eq!(Channel::from_path(c.path()), Some(c));
        }
        assert_eq!(Channel::from_path("/ws/event"), None);
        assert!(EventKind::ChatsUpdate.served_on(Channel::Legacy));
        assert!(!EventKind::ChatsUpdate.served_on(Channel::Instance));
        assert!(EventKind::CallReady.served_on(Channel::Instance));
        assert!(EventName::parse("call.screen_share.started").served_on(Channel::Instance));
        assert!(!EventName::parse("call.screen_share.started").served_on(Channel::Legacy));
        assert!(!EventName::parse("message.upsert").served_on(Channel::Legacy));
    }

    #[test]
    fn suggestions_for_typos_and_the_other_generation() {
        let legacy = [Channel::Legacy];
        let v2 = [Channel::Instance, Channel::Global];
        assert_eq!(
            EventName::parse("message.upsert").suggestions(&legacy),
            ["messages.upsert"]
        );
        assert_eq!(
            EventName::parse("chats.update").suggestions(&v2)[0],
            "chats.updated"
        );
        assert_eq!(
            EventName::parse("group-participants.update").suggestions(&v2)[0],
            "groups.participants.update"
        );
        assert!(EventName::parse("zzz").suggestions(&legacy).is_empty());
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
