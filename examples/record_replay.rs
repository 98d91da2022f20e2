//! Record a live stream to a JSON-lines file, then replay it offline through the same handler:
//! how to test a bot without a server, or reproduce a bug from the exact frames that caused it.
//!
//! ```sh
//! cargo run --example record_replay                              # built-in simulator, 2 s of traffic
//! cargo run --example record_replay -- --url http://HOST:8084 --token-file PATH   # Ctrl-C ends the recording
//! ```
//! The recording goes to `eventsock-recording.jsonl` (or the path in `RECORDING`).

use actix::Actor;
use eventsock::handler::builtin::{FlushRecorder, Recorder, Replay};
use eventsock::handler::RouterBuilder;
use eventsock::prelude::*;
use std::time::Duration;

/// The bot under test: the same handlers live and in the replay.
fn bot() -> RouterBuilder {
    Router::builder().on(|e: Msg| {
        println!(
            "  #{:<3} {}: {}",
            e.meta.seq,
            e.sender_name().unwrap_or("?"),
            e.text().unwrap_or("(media)")
        );
        async { Ok(()) }
    })
}

#[actix_rt::main]
async fn main() -> Result<(), BoxError> {
    let path = std::env::var("RECORDING").unwrap_or_else(|_| "eventsock-recording.jsonl".into());
    let _ = std::fs::remove_file(&path);
    let recorder = Recorder::create(&path)?.start();

    println!("live:");
    let running = bot()
        .raw(
            [EventKind::MessagesUpsert.into()],
            recorder.clone().recipient::<RawEvent>(),
        )
        .build()
        .start(Settings::from_env()?)
        .await?;
    running.traffic(10.0, Duration::from_secs(2)).await;
    running.stop().await;
    let written = recorder.send(FlushRecorder).await?;
    println!("recorded {written} events to {path}\n\nreplay:");

    let report = Replay::open(&path, bot().build()).run().await?;
    println!(
        "replayed {} records: {} delivered, {} did not fit, {} bad lines",
        report.records, report.delivered, report.decode_errors, report.bad_lines
    );
    Ok(())
}
