//! The recorded-event format: one JSON line per event, shared by record/replay and the NATS
//! bridge (`{"event", "instance", "receivedAt", "generation", "seq", "data"}`).

use crate::{EventMeta, EventName, Origin, RawEvent, RawFrame};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::SystemTime;

/// One recorded event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Recorded {
    /// The event name.
    pub event: EventName,
    /// The instance.
    pub instance: Option<String>,
    /// When it was received, RFC 3339.
    pub received_at: String,
    /// Its connection.
    pub generation: u64,
    /// Its position in that connection.
    pub seq: u64,
    /// The payload.
    pub data: serde_json::Value,
    /// Whether it was recovered over REST after a gap (written only when true).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub backfilled: bool,
}

impl Recorded {
    /// The metadata a handler sees when this record is delivered again (replayed, or taken from
    /// a queue): the recorded event, instance, generation and sequence; received now.
    pub fn meta(&self) -> EventMeta {
        EventMeta {
            event: self.event.clone(),
            instance: self.instance.as_deref().map(Arc::from),
            instance_info: None,
            server_time: None,
            received_at: SystemTime::now(),
            seq: self.seq,
            generation: self.generation,
            origin: if self.backfilled {
                Origin::Recovered
            } else {
                Origin::Live
            },
        }
    }
}

impl Recorded {
    /// The record of a delivered event.
    pub fn of(e: &RawEvent) -> Recorded {
        let r = RecordedRef::new(&e.meta, &*e.data);
        Recorded {
            event: r.event.clone(),
            instance: r.instance.map(str::to_owned),
            received_at: r.received_at,
            generation: r.generation,
            seq: r.seq,
            data: r.data.clone(),
            backfilled: r.backfilled,
        }
    }

    /// Writes the record of a delivered event as JSON, the same as serialising
    /// [`Recorded::of`], without copying the payload.
    pub fn write(e: &RawEvent, out: impl std::io::Write) -> serde_json::Result<()> {
        serde_json::to_writer(out, &RecordedRef::new(&e.meta, &*e.data))
    }

    /// Writes the record of a frame as JSON: the record [`Recorded::write`] writes for the same
    /// event, with the payload's text as the server wrote it (its keys in its order), not
    /// parsed into a value.
    pub fn write_frame(f: &RawFrame, out: impl std::io::Write) -> serde_json::Result<()> {
        serde_json::to_writer(out, &RecordedRef::new(&f.meta, &*f.data))
    }
}

/// [`Recorded`], borrowing the event: the same fields, in the same order.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RecordedRef<'a, D: Serialize + ?Sized> {
    event: &'a EventName,
    instance: Option<&'a str>,
    received_at: String,
    generation: u64,
    seq: u64,
    data: &'a D,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    backfilled: bool,
}

impl<'a, D: Serialize + ?Sized> RecordedRef<'a, D> {
    fn new(meta: &'a EventMeta, data: &'a D) -> RecordedRef<'a, D> {
        RecordedRef {
            event: &meta.event,
            instance: meta.instance.as_deref(),
            received_at: chrono::DateTime::<chrono::Utc>::from(meta.received_at)
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            generation: meta.generation,
            seq: meta.seq,
            data,
            backfilled: meta.origin == Origin::Recovered,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writing_a_record_gives_the_json_of_the_record() {
        for origin in [Origin::Live, Origin::Recovered] {
            let e = RawEvent {
                meta: EventMeta {
                    event: EventName::from(crate::EventKind::MessagesUpsert),
                    instance: Some(Arc::from("codechat")),
                    instance_info: None,
                    server_time: None,
                    received_at: SystemTime::UNIX_EPOCH,
                    seq: 7,
                    generation: 2,
                    origin,
                },
                data: Arc::new(serde_json::json!({"keyId": "A1", "n": [1, 2]})),
            };
            let mut written = Vec::new();
            Recorded::write(&e, &mut written).unwrap();
            assert_eq!(written, serde_json::to_vec(&Recorded::of(&e)).unwrap());
            let text = r#"{"keyId":"A1","n":[1,2]}"#;
            let frame = RawFrame {
                meta: e.meta.clone(),
                data: serde_json::value::RawValue::from_string(text.into())
                    .unwrap()
                    .into(),
            };
            let mut from_frame = Vec::new();
            Recorded::write_frame(&frame, &mut from_frame).unwrap();
            assert_eq!(from_frame, written);
            let back: Recorded = serde_json::from_slice(&written).unwrap();
            assert_eq!(back.meta().origin, origin);
            assert_eq!(back.data["n"][1], 2);
        }
    }
}
