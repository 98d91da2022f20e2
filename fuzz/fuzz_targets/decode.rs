//! Any bytes as a frame of any event, on any endpoint: `Frame::parse`, the envelope accessors
//! and the payload types of the event must answer with a value or an error, never a panic.
//!
//! From the repository's root: `cargo fuzz run decode --fuzz-dir fuzz` (on a stable toolchain,
//! with `RUSTC_BOOTSTRAP=1`, since cargo fuzz passes `-Z` flags). Good seeds: the files of
//! `tests/fixtures`, each behind one byte that picks the event.

#![no_main]

use eventsock_core::{legacy, v2, EventKind, EventName, Frame};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let kind = EventKind::ALL[usize::from(pick) % EventKind::ALL.len()];
    let name = EventName::from(kind);
    let Ok(frame) = Frame::parse(&name, text) else {
        return;
    };
    let _ = (frame.instance(), frame.timestamp(), frame.event_name());
    let _ = frame.value(&name);
    macro_rules! each {
        ($($t:ty),* $(,)?) => {$(
            let _ = frame.decode::<$t>(&name).map_err(|e| e.to_string());
        )*};
    }
    each!(
        legacy::QrcodeUpdated,
        legacy::ConnectionUpdate,
        legacy::MessagesUpsert,
        legacy::MessagesUpdate,
        legacy::ContactsUpsert,
        legacy::PresenceUpdate,
        legacy::ChatsUpsert,
        legacy::ChatsUpdate,
        legacy::GroupsUpsert,
        legacy::GroupsUpdate,
        legacy::GroupParticipantsUpdate,
        legacy::CallUpsert,
        v2::MessagesUpsert,
        v2::MessagesUpdate,
        v2::ConnectionUpdate,
        v2::ChatsUpdated,
        v2::GroupsParticipantsUpdate,
        v2::PresenceUpdated,
        v2::HistorySync,
        v2::CallEvent,
        v2::BatchEvent,
        v2::BatchItemEvent,
    );
});
