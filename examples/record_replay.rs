//! Record a live stream to a JSON-lines file, then replay it offline through the same handler:
//! how to test a bot without a server, or reproduce a bug from the exact frames that caused it.
//!
//! ```sh
//! cargo run --example record_replay                              # built-in simulator, 2 s of traffic
//! cargo run --example record_replay -- --url http://HOST:8084 --token JWT   # Ctrl-C ends the recording
//! ```
//! The recording goes to `eventsock-recording.jsonl` (or the path in `RECORDING`).

use actix::prelude::*;
use eventsock::client::{Shutdown, Supervisor};
use eventsock::core::Source;
use eventsock::core::{legacy, Event, EventKind};
use eventsock::handler::builtin::{FlushRecorder, Recorder, Replay};
use eventsock::handler::{Bot, Route};
use eventsock::sim::SimConfig;
use eventsock::Target;
use std::time::Duration;

/// The handler under test: the same one live and in the replay.
fn handler() -> Route<Event<legacy::MessagesUpsert>> {
    Route::from_fn(|e: Event<legacy::MessagesUpsert>| {
        println!(
            "  #{:<3} {}: {}",
            e.meta.seq,
            e.push_name.as_deref().unwrap_or("?"),
            e.text().unwrap_or("(media)")
        );
        async { Ok::<_, std::convert::Infallible>(()) }
    })
}

#[actix_rt::main]
async fn main() -> anyhow::Result<()> {
    let target = Target::from_args(SimConfig::default())?;
    let path = std::env::var("RECORDING").unwrap_or_else(|_| "eventsock-recording.jsonl".into());
    let _ = std::fs::remove_file(&path);
    let recorder = Recorder::create(&path)?.start();

    println!("live:");
    let supervisor = Supervisor::builder()
        .source(Source::new(target.endpoint.clone(), target.token.clone())?)
        .raw_handler(
            [EventKind::MessagesUpsert.into()],
            recorder.clone().recipient(),
        )
        .handler::<legacy::MessagesUpsert>(Bot::build(handler()).start().recipient())
        .start()?;
    target.run_traffic(10.0, Duration::from_secs(2)).await?;
    supervisor.send(Shutdown).await?;
    let written = recorder.send(FlushRecorder).await?;
    println!("recorded {written} events to {path}\n\nreplay:");

    let report = Replay::open(&path)
        .handler::<legacy::MessagesUpsert>(Bot::build(handler()).start().recipient())
        .run()
        .await?;
    println!(
        "replayed {} records: {} delivered, {} did not fit, {} bad lines",
        report.records, report.delivered, report.decode_errors, report.bad_lines
    );
    Ok(())
}
