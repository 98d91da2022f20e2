//! Pairing a phone from the terminal: `qrcode.updated` drawn as a QR code, `connection.update`
//! telling when the phone is paired.
//!
//! ```sh
//! cargo run --example qr_pairing                                 # built-in simulator
//! cargo run --example qr_pairing -- --url http://HOST:8084 --token JWT
//! ```
//!
//! Against a real server, call `GET /instance/connect/{instance}` first so it starts pairing.

use eventsock::client::{Shutdown, Supervisor};
use eventsock::core::Source;
use eventsock::core::{legacy, Event};
use eventsock::handler::{builtin::qr_terminal, Bot, Route};
use eventsock::sim::SimConfig;
use eventsock::Target;
use std::time::Duration;

#[actix_rt::main]
async fn main() -> anyhow::Result<()> {
    let target = Target::from_args(SimConfig::default())?;
    let (paired_tx, mut paired) = tokio::sync::mpsc::unbounded_channel();
    let state = Route::from_fn(move |e: Event<legacy::ConnectionUpdate>| {
        println!("connection: {}", e.state.as_deref().unwrap_or("?"));
        if e.state.as_deref() == Some("open") {
            let _ = paired_tx.send(());
        }
        async { Ok::<_, std::convert::Infallible>(()) }
    });
    let supervisor = Supervisor::builder()
        .source(Source::new(target.endpoint.clone(), target.token.clone())?)
        .handler::<legacy::QrcodeUpdated>(
            Bot::build(qr_terminal::<legacy::QrcodeUpdated, _>(std::io::stdout()))
                .start()
                .recipient(),
        )
        .handler::<legacy::ConnectionUpdate>(Bot::build(state).start().recipient())
        .start()?;

    if let Some(sim) = &target.sim {
        // The simulator plays the server's pairing: a QR code, then the phone connecting.
        let sim = &sim.sim;
        while !(sim.is_subscribed("codechat", "qrcode.updated")
            && sim.is_subscribed("codechat", "connection.update"))
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let qr: serde_json::Value =
            serde_json::from_str(include_str!("../tests/fixtures/legacy/qrcode.updated.json"))?;
        sim.emit("codechat", "qrcode.updated", &qr);
        sim.emit(
            "codechat",
            "connection.update",
            &serde_json::json!({"instance": "codechat", "state": "open", "statusReason": 200}),
        );
    }
    tokio::select! {
        _ = paired.recv() => println!("paired."),
        _ = tokio::signal::ctrl_c() => {}
    }
    supervisor.send(Shutdown).await?;
    Ok(())
}
