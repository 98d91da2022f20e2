//! Pairing a phone from the terminal: `qrcode.updated` drawn as a QR code.

use crate::route::Route;
use eventsock_core::{legacy, Event};
use qrcode::render::unicode::Dense1x2;
use qrcode::QrCode;
use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};

/// A pairing code that cannot be drawn.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the pairing code cannot be drawn as a QR code: {0}")]
pub struct QrError(String);

/// Draws `code` as a QR code in Unicode half blocks (two rows per line), light on dark, with a
/// quiet zone: scan it from a terminal with the phone's WhatsApp.
pub fn render_qr(code: &str) -> Result<String, QrError> {
    let qr = QrCode::new(code.as_bytes()).map_err(|e| QrError(e.to_string()))?;
    Ok(qr
        .render::<Dense1x2>()
        .dark_color(Dense1x2::Light)
        .light_color(Dense1x2::Dark)
        .quiet_zone(true)
        .build())
}

/// Prints each `qrcode.updated` (legacy server) to `out` as a QR code, with the attempt number
/// and the pairing code when there is one.
pub fn qr_terminal<W: Write + Send + 'static>(out: W) -> Route<Event<legacy::QrcodeUpdated>> {
    let out = Arc::new(Mutex::new(out));
    Route::from_fn(move |e: Event<legacy::QrcodeUpdated>| {
        let result = (|| -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
            let mut out = out.lock().unwrap_or_else(PoisonError::into_inner);
            let instance = e.meta.instance.as_deref().unwrap_or("?");
            writeln!(
                out,
                "Scan with WhatsApp on the phone of {instance} (code {}):",
                e.count.unwrap_or(0)
            )?;
            match &e.code {
                Some(code) => writeln!(out, "{}", render_qr(code)?)?,
                None => writeln!(out, "(this event carries no QR code)")?,
            }
            if let Some(pairing) = &e.pairing_code {
                writeln!(out, "Or enter the pairing code: {pairing}")?;
            }
            out.flush()?;
            Ok(())
        })();
        async move { result }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_the_fixture_code() {
        let fixture: legacy::QrcodeUpdated = serde_json::from_str(include_str!(
            "../../../../tests/fixtures/legacy/qrcode.updated.json"
        ))
        .unwrap();
        let drawn = render_qr(fixture.code.as_deref().unwrap()).unwrap();
        let lines: Vec<&str> = drawn.lines().collect();
        // A square: as many columns as twice the rows (two modules per line), quiet zone included.
        let width = lines[0].chars().count();
        assert!(width >= 25, "{width}");
        assert!(lines.iter().all(|l| l.chars().count() == width));
        assert!(
            lines.len() * 2 >= width && lines.len() * 2 <= width + 2,
            "{} rows for {width}",
            lines.len()
        );
        assert!(drawn.contains('█') && drawn.contains('▀'));
    }
}
