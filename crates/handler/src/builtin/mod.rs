//! Ready-made handlers: log events, record a live stream and replay it, draw pairing QR codes.

mod log;
mod qr;
mod record;

pub use log::{log, log_raw};
pub use qr::{qr_terminal, render_qr, QrError, QrPayload};
pub use record::{FlushRecorder, Recorded, Recorder, Replay, ReplayError, ReplayReport};
