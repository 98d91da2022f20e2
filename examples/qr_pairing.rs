//! Pairing a phone from the terminal: `qrcode.updated` drawn as a QR code, `connection.update`
//! telling when the phone is paired.
//!
//! ```sh
//! cargo run --example qr_pairing                                 # built-in simulator
//! cargo run --example qr_pairing -- --url http://HOST:8084 --token-file PATH
//! ```
//!
//! Against a real server, call `GET /instance/connect/{instance}` first so it starts pairing.

use eventsock::handler::builtin::qr_terminal;
use eventsock::prelude::*;

#[actix_rt::main]
async fn main() -> Result<(), BoxError> {
    let (paired_tx, mut paired) = tokio::sync::mpsc::unbounded_channel();
    let running = Router::builder()
        .route(qr_terminal::<legacy::QrcodeUpdated, _>(std::io::stdout()))
        .on(move |e: Received<legacy::ConnectionUpdate>| {
            println!("connection: {}", e.state.as_deref().unwrap_or("?"));
            if e.state.as_deref() == Some("open") {
                let _ = paired_tx.send(());
            }
            async { Ok(()) }
        })
        .build()
        .start(Settings::from_env()?)
        .await?;

    if let Some(sim) = running.sim() {
        // The simulator plays the server's pairing: a QR code, then the phone connecting.
        let subscribed = |event| sim.is_subscribed("codechat", event);
        while !(subscribed("qrcode.updated") && subscribed("connection.update")) {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let qr: serde_json::Value =
            serde_json::from_str(include_str!("../tests/fixtures/legacy/qrcode.updated.json"))?;
        sim.emit("codechat", "qrcode.updated", &qr);
        let open =
            serde_json::json!({"instance": "codechat", "state": "open", "statusReason": 200});
        sim.emit("codechat", "connection.update", &open);
    }
    tokio::select! {
        _ = paired.recv() => println!("paired."),
        _ = tokio::signal::ctrl_c() => {}
    }
    running.stop().await;
    Ok(())
}
