//! Logging every event.

use crate::route::{Flow, Route};
use eventsock_core::{Event, Payload, RawEvent};

/// Logs every event at info level: name, instance, connection and sequence, and the payload
/// (`Debug`, cut to 200 characters).
pub fn log<T: Payload>() -> Route<Event<T>> {
    Route::new(|e: Event<T>| {
        let mut shown = format!("{:?}", e.payload);
        if let Some((at, _)) = shown.char_indices().nth(200) {
            shown.truncate(at);
            shown.push('…');
        }
        tracing::info!(event = %e.meta.event, instance = ?e.meta.instance, generation = e.meta.generation,
            seq = e.meta.seq, payload = %shown, "event");
        async { Ok(Flow::Taken) }
    })
}

/// Logs every raw event at info level, with its JSON cut to 200 characters.
pub fn log_raw() -> Route<RawEvent> {
    Route::new(|e: RawEvent| {
        let mut shown = e.data.to_string();
        if let Some((at, _)) = shown.char_indices().nth(200) {
            shown.truncate(at);
            shown.push('…');
        }
        tracing::info!(event = %e.meta.event, instance = ?e.meta.instance, seq = e.meta.seq, data = %shown, "event");
        async { Ok(Flow::Taken) }
    })
}
