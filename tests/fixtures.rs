//! Every fixture under `tests/fixtures/{legacy,v2}` decodes into its typed payload and encodes
//! back to the same JSON, and every event that carries data has exactly one payload type.
//!
//! "The same JSON" is compared as JSON values after dropping members whose value is `null`: on
//! this wire a missing field and a `null` one mean the same (the legacy server omits undefined
//! fields, Prisma sends nulls), and the model reads both as `None`.

use eventsock::core::{legacy, v2, Channel, EventKind, EventName, Frame, Payload};
use serde_json::Value;
use std::path::{Path, PathBuf};

type Attempt = (&'static str, Result<Value, String>);

fn attempt<T: Payload>(
    channel: Channel,
    name: &EventName,
    frame: &Frame<'_>,
    out: &mut Vec<Attempt>,
) {
    if T::CHANNEL == channel && T::accepts(name) {
        let decoded = frame
            .decode::<T>(name)
            .map(|p| serde_json::to_value(&p).expect("a decoded payload encodes"))
            .map_err(|e| e.to_string());
        out.push((std::any::type_name::<T>(), decoded));
    }
}

/// Decodes `frame` with every payload type that claims (channel, name).
fn decode_all(channel: Channel, name: &EventName, frame: &Frame<'_>) -> Vec<Attempt> {
    let mut out = Vec::new();
    macro_rules! each {
        ($($t:ty),* $(,)?) => { $( attempt::<$t>(channel, name, frame, &mut out); )* };
    }
    each!(
        legacy::QrcodeUpdated,
        legacy::ConnectionUpdate,
        legacy::MessagesUpsert,
        legacy::SendMessage,
        legacy::MessagesUpdate,
        legacy::ContactsUpsert,
        legacy::PresenceUpdate,
        legacy::ChatsUpsert,
        legacy::ChatsUpdate,
        legacy::GroupsUpsert,
        legacy::GroupsUpdate,
        legacy::GroupParticipantsUpdate,
        legacy::CallUpsert,
        legacy::MessagesSet,
        legacy::ChatsSet,
        legacy::ChatsDelete,
        legacy::LabelsAssociation,
        legacy::LabelsEdit,
        legacy::StatusInstance,
        legacy::RefreshToken,
        v2::MessagesUpsert,
        v2::SendMessage,
        v2::CallUpsert,
        v2::MessagesUpdate,
        v2::ConnectionUpdate,
        v2::QrcodeUpdated,
        v2::ContactsUpsert,
        v2::ContactsUpdate,
        v2::ChatsUpdated,
        v2::ChatsDelete,
        v2::GroupsUpsert,
        v2::GroupsUpdate,
        v2::GroupsParticipantsUpdate,
        v2::PresenceUpdated,
        v2::HistorySync,
        v2::IdentityUpdate,
        v2::LabelsAssociation,
        v2::LabelsEdit,
        v2::MediaRetry,
        v2::MessagesDelete,
        v2::MessagesStar,
        v2::MessagesUndecryptable,
        v2::NewsLetter,
        v2::ProfilePictureUpdate,
        v2::SettingsUpdate,
        v2::StatusInstance,
        v2::UserAboutUpdate,
        v2::CallEvent,
        v2::BatchEvent,
        v2::BatchItemEvent,
    );
    out
}

fn without_nulls(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, without_nulls(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(without_nulls).collect()),
        other => other,
    }
}

fn json_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(json_files(&path));
        } else if path.extension().is_some_and(|e| e == "json") {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// The event a fixture is for: the longest dotted prefix of its file name that is a known event
/// (`messages.upsert.group-image.json` is `messages.upsert`).
fn event_of(path: &Path) -> EventKind {
    let stem = path.file_stem().unwrap().to_str().unwrap();
    let parts: Vec<&str> = stem.split('.').collect();
    (1..=parts.len())
        .rev()
        .find_map(|n| parts[..n].join(".").parse::<EventKind>().ok())
        .unwrap_or_else(|| panic!("{} names no known event", path.display()))
}

fn fixtures_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

#[test]
fn every_fixture_decodes_and_re_encodes_without_loss() {
    let mut checked = 0;
    for (dir, protocol) in [("legacy", Channel::Legacy), ("v2", Channel::Instance)] {
        for path in json_files(&fixtures_root().join(dir)) {
            let kind = event_of(&path);
            let channel = if kind.is_global() {
                Channel::Global
            } else {
                protocol
            };
            let name = EventName::from(kind);
            let text = std::fs::read_to_string(&path).unwrap();
            let frame =
                Frame::parse(&name, &text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            // Legacy socket frames are bare; webhook bodies and every v2 frame are enveloped.
            let webhook = path.components().any(|c| c.as_os_str() == "webhook-only");
            let refresh = kind == EventKind::RefreshToken; // `{event:"new.jwt",auth}`, no data
            assert_eq!(
                frame.is_enveloped(),
                protocol != Channel::Legacy || (webhook && !refresh),
                "{}",
                path.display()
            );
            if frame.is_enveloped() && !webhook {
                assert_eq!(frame.event_name(), Some(name.clone()), "{}", path.display());
            }
            let attempts = decode_all(channel, &name, &frame);
            assert_eq!(
                attempts.len(),
                1,
                "{}: claimed by {attempts:?}",
                path.display()
            );
            let (ty, decoded) = attempts.into_iter().next().unwrap();
            let encoded = decoded.unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let original: Value = serde_json::from_str(frame.data()).unwrap();
            assert_eq!(
                without_nulls(encoded),
                without_nulls(original),
                "{} did not survive a round trip through {ty}",
                path.display()
            );
            println!(
                "ok {:<60} {ty}",
                path.strip_prefix(fixtures_root()).unwrap().display()
            );
            checked += 1;
        }
    }
    // 13 legacy frames + 13 variants + 11 webhook bodies; 48 v2 frames + 6 variants.
    assert_eq!(checked, 91, "fixture count changed");
}

#[test]
fn every_event_that_carries_data_has_exactly_one_payload_type() {
    // An empty object is enough to ask which types claim a name.
    let frame = Frame::parse(&EventKind::MessagesUpsert.into(), "{}").unwrap();
    for kind in EventKind::ALL {
        for channel in [Channel::Legacy, Channel::Instance, Channel::Global] {
            if !kind.served_on(channel) {
                continue;
            }
            let claimed = decode_all(channel, &EventName::from(*kind), &frame).len();
            // `contacts.set` and `contacts.update` never carry data on the legacy server.
            let silent = channel == Channel::Legacy
                && matches!(kind, EventKind::ContactsSet | EventKind::ContactsUpdate);
            assert_eq!(claimed, usize::from(!silent), "{kind} on {channel:?}");
        }
    }
    // `call.*` names this version does not know still reach the call type.
    let unknown_call = EventName::parse("call.participant.joined");
    assert_eq!(
        decode_all(Channel::Instance, &unknown_call, &frame).len(),
        1
    );
}
