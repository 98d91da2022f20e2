//! Ready-made handlers: log events, record a live stream and replay it, draw pairing QR codes.

mod log;
#[cfg(feature = "qr")]
mod qr;
mod record;

pub use log::{log, log_raw};
#[cfg(feature = "qr")]
pub use qr::{qr_terminal, render_qr, QrError, QrPayload};
pub use record::{FlushRecorder, Recorder, Replay, ReplayError, ReplayReport};
