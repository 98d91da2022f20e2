//! The recorded-event format: one JSON line per event, shared by record/replay and the NATS
//! bridge (`{"event", "instance", "receivedAt", "generation", "seq", "data"}`).

use crate::{EventMeta, EventName, Origin, RawEvent};
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
        Recorded {
            event: e.meta.event.clone(),
            instance: e.meta.instance.as_deref().map(str::to_owned),
            received_at: chrono::DateTime::<chrono::Utc>::from(e.meta.received_at)
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            generation: e.meta.generation,
            seq: e.meta.seq,
            data: (*e.data).clone(),
            backfilled: e.meta.origin == Origin::Recovered,
        }
    }
}
