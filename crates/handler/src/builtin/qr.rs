//! Pairing a phone from the terminal: `qrcode.updated` drawn as a QR code.

use crate::route::Route;
use crate::Received;
use eventsock_core::{legacy, v2, Payload};
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

/// A `qrcode.updated` payload, from either server.
pub trait QrPayload: Payload {
    /// The text to draw.
    fn code(&self) -> Option<&str>;
    /// Which code of this pairing attempt.
    fn count(&self) -> Option<i64>;
    /// The code to type on the phone instead, when pairing by number.
    fn pairing_code(&self) -> Option<&str> {
        None
    }
}

impl QrPayload for legacy::QrcodeUpdated {
    fn code(&self) -> Option<&str> {
        self.code.as_deref()
    }
    fn count(&self) -> Option<i64> {
        self.count
    }
    fn pairing_code(&self) -> Option<&str> {
        self.pairing_code.as_deref()
    }
}

impl QrPayload for v2::QrcodeUpdated {
    fn code(&self) -> Option<&str> {
        self.code.as_deref()
    }
    fn count(&self) -> Option<i64> {
        self.count
    }
}

/// Prints each `qrcode.updated` (`legacy::QrcodeUpdated` or `v2::QrcodeUpdated`) to `out` as a
/// QR code, with the attempt number and the pairing code when there is one.
pub fn qr_terminal<T: QrPayload, W: Write + Send + 'static>(out: W) -> Route<Received<T>> {
    let out = Arc::new(Mutex::new(out));
    Route::from_fn(move |e: Received<T>| {
        let result = (|| -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
            let mut out = out.lock().unwrap_or_else(PoisonError::into_inner);
            let instance = e.meta.instance.as_deref().unwrap_or("?");
            writeln!(
                out,
                "Scan with WhatsApp on the phone of {instance} (code {}):",
                e.payload().count().unwrap_or(0)
            )?;
            match e.payload().code() {
                Some(code) => writeln!(out, "{}", render_qr(code)?)?,
                None => writeln!(out, "(this event carries no QR code)")?,
            }
            if let Some(pairing) = e.payload().pairing_code() {
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

    #[actix_rt::test]
    async fn prints_both_servers_payloads() {
        #[derive(Clone, Default)]
        struct Buf(Arc<Mutex<Vec<u8>>>);
        impl Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        fn event<T: Payload>(json: &str) -> Received<T> {
            let v: serde_json::Value = serde_json::from_str(json).unwrap();
            let data = v.get("data").cloned().unwrap_or(v);
            crate::Received::offline(eventsock_core::Event::new(
                eventsock_core::EventMeta::live(
                    eventsock_core::EventKind::QrcodeUpdated,
                    "codechat",
                ),
                serde_json::from_value(data).unwrap(),
            ))
        }
        let buf = Buf::default();
        let legacy_route = qr_terminal::<legacy::QrcodeUpdated, _>(buf.clone());
        let pairing = include_str!(
            "../../../../tests/fixtures/legacy/variants/qrcode.updated.pairing-code.json"
        );
        legacy_route.call(event(pairing)).await.unwrap();
        let v2_route = qr_terminal::<v2::QrcodeUpdated, _>(buf.clone());
        v2_route
            .call(event(include_str!(
                "../../../../tests/fixtures/v2/qrcode.updated.json"
            )))
            .await
            .unwrap();
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert_eq!(
            text.matches("Scan with WhatsApp on the phone of codechat (code 1)")
                .count(),
            2
        );
        assert!(text.contains("Or enter the pairing code: K7QD9WXM"));
        assert!(text.matches('▀').count() > 100, "two QR codes drawn");
    }

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
