//! Every fixture under `tests/fixtures/{legacy,v2}` decodes into its typed payload and encodes
//! back to the same JSON, and every event that carries data has exactly one payload type.
//!
//! "The same JSON" is compared as JSON values after dropping members whose value is `null`: on
//! this wire a missing field and a `null` one mean the same (the legacy server omits undefined
//! fields, Prisma sends nulls), and the model reads both as `None`.

use eventsock::core::{evolution, legacy, v2, Channel, EventKind, EventName, Frame, Payload};
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
        evolution::MessagesUpsert,
        evolution::SendMessage,
        evolution::MessagesUpdate,
        evolution::MessagesDelete,
        evolution::Edit,
        evolution::ConnectionUpdate,
        evolution::QrcodeUpdated,
        evolution::PresenceUpdate,
        evolution::Call,
        evolution::GroupParticipantsUpdate,
        evolution::LabelsAssociation,
        evolution::LabelsEdit,
        evolution::StatusInstance,
        evolution::InstanceEvent,
        evolution::ContactsUpsert,
        evolution::ContactsUpdate,
        evolution::ChatsUpsert,
        evolution::ChatsDelete,
        evolution::GroupsUpsert,
        evolution::InstanceGone,
        evolution::Unmodelled,
    );
    out
}

fn longs_as_numbers(v: Value) -> Value {
    match v {
        Value::Object(m) if m.contains_key("low") && m.contains_key("high") && m.len() <= 3 => {
            let low = m["low"].as_i64().unwrap_or_default() & 0xffff_ffff;
            let high = m["high"].as_i64().unwrap_or_default() & 0xffff_ffff;
            Value::from((high << 32) | low)
        }
        Value::Object(m) => Value::Object(
            m.into_iter()
                .map(|(k, v)| (k, longs_as_numbers(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(longs_as_numbers).collect()),
        other => other,
    }
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

/// Every fixture: its file, the endpoint of its folder (legacy or the newer instance one), its
/// event, and the endpoint that serves that event.
fn each_fixture() -> Vec<(PathBuf, Channel, EventKind, Channel)> {
    let mut out = Vec::new();
    for (dir, protocol) in [
        ("legacy", Channel::Legacy),
        ("v2", Channel::Instance),
        ("evolution", Channel::Evolution),
    ] {
        for path in json_files(&fixtures_root().join(dir)) {
            let kind = event_of(&path);
            let channel = if kind.is_global() && protocol != Channel::Evolution {
                Channel::Global
            } else {
                protocol
            };
            out.push((path, protocol, kind, channel));
        }
    }
    out
}

#[test]
fn every_fixture_decodes_and_re_encodes_without_loss() {
    let mut checked = 0;
    for (path, protocol, kind, channel) in each_fixture() {
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
        // Evolution's 64-bit values may come as protobuf's `{low, high, unsigned}`: a modelled
        // one is written back as a number.
        let (encoded, original) = match protocol {
            Channel::Evolution => (longs_as_numbers(encoded), longs_as_numbers(original)),
            _ => (encoded, original),
        };
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
    // 13 legacy frames + 23 variants + 11 webhook bodies; 48 v2 frames + 6 variants; 38
    // Evolution events.
    assert_eq!(checked, 139, "fixture count changed");
}

#[test]
fn every_event_that_carries_data_has_exactly_one_payload_type() {
    // An empty object is enough to ask which types claim a name.
    let frame = Frame::parse(&EventKind::MessagesUpsert.into(), "{}").unwrap();
    for kind in EventKind::ALL {
        for channel in [
            Channel::Legacy,
            Channel::Instance,
            Channel::Global,
            Channel::Evolution,
        ] {
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

/// Values that break naive codecs: integer extremes (the `abs` of `i64::MIN` overflowed once),
/// huge and odd numbers, wrong types, odd text.
const EXTREMES: &[&str] = &[
    "-9223372036854775808",
    "9223372036854775807",
    "18446744073709551615",
    "18446744073709551616",
    "-1",
    "0",
    "1e308",
    "-1e308",
    "-0.0",
    "0.5",
    "\"-9223372036854775808\"",
    "\"99999999999999999999999\"",
    "\"\"",
    "\"2025-13-45T99:99:99Z\"",
    "\"+275760-09-13T00:00:00.000Z\"",
    "\"\\u0000\\u001b[2J\"",
    "\"\u{1F600}\"",
    "null",
    "true",
    "[]",
    "{}",
    "[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]",
];

/// Replaces one value somewhere in `v` (chosen by `rng`) with an extreme.
fn replace_one(v: &mut Value, rng: &mut fastrand::Rng) {
    let extreme = |rng: &mut fastrand::Rng| -> Value {
        serde_json::from_str(EXTREMES[rng.usize(..EXTREMES.len())]).unwrap_or(Value::Null)
    };
    match v {
        Value::Object(m) if !m.is_empty() => {
            let key = m.keys().nth(rng.usize(..m.len())).cloned().unwrap();
            let child = m.get_mut(&key).unwrap();
            if rng.u8(..3) == 0 {
                *child = extreme(rng);
            } else {
                replace_one(child, rng);
            }
        }
        Value::Array(a) if !a.is_empty() => {
            let i = rng.usize(..a.len());
            replace_one(&mut a[i], rng);
        }
        other => *other = extreme(rng),
    }
}

/// Byte-level damage: a flipped byte, a cut, a splice of an extreme, a truncation.
fn damage(text: &str, rng: &mut fastrand::Rng) -> String {
    let mut b = text.as_bytes().to_vec();
    for _ in 0..rng.usize(1..=3) {
        if b.is_empty() {
            b.extend_from_slice(b"{}");
        }
        let at = rng.usize(..b.len());
        match rng.u8(..4) {
            0 => b[at] = rng.u8(..),
            1 => {
                let end = (at + rng.usize(..16)).min(b.len());
                b.drain(at..end);
            }
            2 => {
                let t = EXTREMES[rng.usize(..EXTREMES.len())].as_bytes();
                b.splice(at..at, t.iter().copied());
            }
            _ => b.truncate(at),
        }
    }
    String::from_utf8_lossy(&b).into_owned()
}

/// Every fixture, mutated many ways (extreme values in typed fields, byte damage, envelopes with
/// odd timestamps), through `Frame::parse`, the envelope accessors and every payload type that
/// claims the event: each case decodes or is refused with an error, and none panics. Runs with
/// the test profile's overflow checks on, so an arithmetic overflow is a failure here.
#[test]
fn mutated_fixtures_decode_or_are_refused_and_never_panic() {
    const CASES: usize = 20_000;
    let overflow_checked = std::panic::catch_unwind(|| std::hint::black_box(i64::MAX) + 1).is_err();
    assert!(
        overflow_checked,
        "run with overflow checks on ([profile.test])"
    );
    let seeds: Vec<_> = each_fixture()
        .into_iter()
        .map(|(path, _, kind, channel)| {
            let text = std::fs::read_to_string(&path).unwrap();
            (channel, EventName::from(kind), text)
        })
        .collect();
    let mut rng = fastrand::Rng::with_seed(0x5eed_2026);
    let (mut decoded, mut refused) = (0usize, 0usize);
    for case in 0..CASES {
        let (channel, name, text) = &seeds[rng.usize(..seeds.len())];
        let input = match rng.u8(..3) {
            0 => damage(text, &mut rng),
            _ => {
                let mut v: Value = serde_json::from_str(text).unwrap();
                for _ in 0..rng.usize(1..=3) {
                    replace_one(&mut v, &mut rng);
                }
                v.to_string()
            }
        };
        let outcome = std::panic::catch_unwind(|| {
            let Ok(frame) = Frame::parse(name, &input) else {
                return (0, 1);
            };
            let _ = (frame.instance(), frame.timestamp(), frame.event_name());
            let _ = frame.value(name).map_err(|e| e.to_string());
            decode_all(*channel, name, &frame)
                .into_iter()
                .fold((0, 0), |(ok, bad), (_, r)| match r {
                    Ok(_) => (ok + 1, bad),
                    Err(_) => (ok, bad + 1),
                })
        });
        match outcome {
            Ok((ok, bad)) => {
                decoded += ok;
                refused += bad;
            }
            Err(_) => panic!("case {case} ({name} on {channel:?}) panicked on: {input}"),
        }
    }
    println!("{CASES} mutated frames: {decoded} decodes, {refused} refusals, 0 panics");
    assert!(
        decoded > 0 && refused > 0,
        "the mutations exercise both outcomes"
    );
}

/// Every Evolution message fixture reads as the legacy message bots are written against
/// (`eventsock::Msg`), answering the same as Evolution's own type.
#[test]
fn every_evolution_message_reads_as_the_legacy_message_alike() {
    use eventsock::core::{EventMeta, MessageLike};
    let mut checked = 0;
    for path in json_files(&fixtures_root().join("evolution")) {
        let kind = event_of(&path);
        if !matches!(kind, EventKind::MessagesUpsert | EventKind::SendMessage) {
            continue;
        }
        let name = EventName::from(kind);
        let text = std::fs::read_to_string(&path).unwrap();
        let frame = Frame::parse(&name, &text).unwrap();
        let meta = EventMeta::live(name.clone(), "bot");
        let own: evolution::Message = serde_json::from_str(frame.data()).unwrap();
        let legacy = frame
            .translate::<legacy::MessagesUpsert>(Channel::Evolution, meta)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let legacy = legacy.payload();
        let answers = |m: &dyn MessageLike| {
            (
                m.text().map(str::to_owned),
                m.chat().map(str::to_owned),
                m.message_id().map(str::to_owned),
                m.is_from_me(),
                m.message_type().map(str::to_owned),
                m.timestamp(),
                m.sender_name().map(str::to_owned),
                m.media().map(|i| (i.kind, i.mimetype.map(str::to_owned))),
            )
        };
        assert_eq!(answers(legacy), answers(&own), "{}", path.display());
        assert!(own.text().is_some(), "{}: a text", path.display());
        checked += 1;
    }
    assert_eq!(checked, 4, "messages.upsert (3) and send.message (1)");
}
