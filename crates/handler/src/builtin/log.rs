//! Logging every event.

use crate::route::{Flow, Route};
use crate::Received;
use eventsock_core::{human, Payload, RawEvent};

/// Logs every event at info level: name, instance, connection and sequence, and the payload
/// (as JSON, escaped, cut to 200 characters).
pub fn log<T: Payload>() -> Route<Received<T>> {
    Route::new(|e: Received<T>| {
        let json = match e.event.json_text() {
            Some(text) => text.to_owned(),
            None => serde_json::to_string(e.event.payload()).unwrap_or_default(),
        };
        tracing::info!(event = %human::escaped(e.meta.event.as_str()),
            instance = %human::escaped(e.meta.instance.as_deref().unwrap_or("?")),
            generation = e.meta.generation, seq = e.meta.seq,
            payload = %human::excerpt(&json, 200), "event");
        async { Ok(Flow::Taken) }
    })
}

/// Logs every raw event at info level, with its JSON cut to 200 characters.
pub fn log_raw() -> Route<RawEvent> {
    Route::new(|e: RawEvent| {
        let json = e.data.to_string();
        tracing::info!(event = %human::escaped(e.meta.event.as_str()),
            instance = %human::escaped(e.meta.instance.as_deref().unwrap_or("?")),
            seq = e.meta.seq, data = %human::excerpt(&json, 200), "event");
        async { Ok(Flow::Taken) }
    })
}
