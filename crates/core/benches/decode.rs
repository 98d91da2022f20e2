//! Decoding one frame per event type as the dispatcher does (legacy: `Frame::bare` + `decode::<T>`;
//! newer server: `Frame::parse` + `decode::<T>`)
//! against a plain `serde_json::Value` parse of the same bytes.
//!
//! `cargo bench -p eventsock-core --bench decode`

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use eventsock_core::{legacy, v2, Channel, EventName, Frame, Payload};
use std::hint::black_box;

/// What the dispatcher does: legacy frames are bare by protocol (`Frame::bare`, the decode is the
/// only pass); newer-server frames get `Frame::parse` to find the envelope.
fn typed<T: Payload>(name: &EventName, text: &str) -> usize {
    let frame = if T::CHANNEL == Channel::Legacy {
        Frame::bare(text)
    } else {
        Frame::parse(name, text).expect("fixture frames are JSON")
    };
    let payload: T = frame.decode(name).expect("fixture frames fit their type");
    std::mem::size_of_val(&payload)
}

macro_rules! cases {
    ($($label:literal => $ty:ty, $event:literal, $file:literal;)*) => {
        vec![$(
            ($label, $event, include_str!(concat!("../../../tests/fixtures/", $file)), typed::<$ty> as fn(&EventName, &str) -> usize),
        )*]
    };
}

fn decode(c: &mut Criterion) {
    let cases = cases! {
        "legacy_messages_upsert" => legacy::MessagesUpsert, "messages.upsert", "legacy/messages.upsert.json";
        "legacy_messages_upsert_image" => legacy::MessagesUpsert, "messages.upsert", "legacy/variants/messages.upsert.group-image.json";
        "legacy_messages_update" => legacy::MessagesUpdate, "messages.update", "legacy/messages.update.json";
        "legacy_presence_update" => legacy::PresenceUpdate, "presence.update", "legacy/presence.update.json";
        "legacy_contacts_upsert" => legacy::ContactsUpsert, "contacts.upsert", "legacy/contacts.upsert.json";
        "legacy_groups_upsert" => legacy::GroupsUpsert, "groups.upsert", "legacy/groups.upsert.json";
        "legacy_call_upsert" => legacy::CallUpsert, "call.upsert", "legacy/call.upsert.json";
        "v2_messages_upsert" => v2::MessagesUpsert, "messages.upsert", "v2/messages.upsert.json";
        "v2_batch_progress" => v2::BatchEvent, "message.batch.progress", "v2/message.batch.progress.json";
        "v2_call_ready" => v2::CallEvent, "call.ready", "v2/call.ready.json";
    };
    let mut group = c.benchmark_group("decode");
    for (label, event, text, f) in cases {
        // Frames arrive compact on the wire.
        let compact = serde_json::from_str::<serde_json::Value>(text)
            .unwrap()
            .to_string();
        let name = EventName::parse(event);
        group.throughput(Throughput::Bytes(compact.len() as u64));
        group.bench_with_input(BenchmarkId::new("typed", label), &compact, |b, t| {
            b.iter(|| f(&name, black_box(t)))
        });
        group.bench_with_input(BenchmarkId::new("value", label), &compact, |b, t| {
            b.iter(|| serde_json::from_str::<serde_json::Value>(black_box(t)).unwrap())
        });
    }
    group.finish();
}

/// What a bot reads of a message, by hand: the lean struct of the throughput benchmark.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
struct Lean {
    key_id: Option<String>,
    key_remote_jid: Option<String>,
    #[serde(default)]
    key_from_me: bool,
    #[serde(default)]
    content: LeanContent,
}

#[derive(serde::Deserialize, Default)]
#[allow(dead_code)]
struct LeanContent {
    text: Option<String>,
}

/// A legacy message four ways: built whole (`decode`), its head read and the whole text checked
/// (`head`, what the dispatcher does now), the lean struct a user writes by hand, and serde's
/// cheapest pass (`IgnoredAny`: syntax only).
fn message(c: &mut Criterion) {
    let text = include_str!("../../../tests/fixtures/legacy/messages.upsert.json");
    let compact = serde_json::from_str::<serde_json::Value>(text)
        .unwrap()
        .to_string();
    let mut group = c.benchmark_group("message");
    group.throughput(Throughput::Bytes(compact.len() as u64));
    group.bench_function("decode", |b| {
        b.iter(|| serde_json::from_str::<legacy::MessagesUpsert>(black_box(&compact)).unwrap())
    });
    group.bench_function("head", |b| {
        b.iter(|| eventsock_core::MessageHead::read(black_box(&compact)).unwrap())
    });
    group.bench_function("lean", |b| {
        b.iter(|| serde_json::from_str::<Lean>(black_box(&compact)).unwrap())
    });
    group.bench_function("ignored", |b| {
        b.iter(|| serde_json::from_str::<serde::de::IgnoredAny>(black_box(&compact)).unwrap())
    });
    group.finish();
}

criterion_group!(benches, decode, message);
criterion_main!(benches);
