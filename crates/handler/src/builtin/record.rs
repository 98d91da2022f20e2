//! Record a live stream to a JSON-lines file; replay it through the same handlers.
//!
//! Each line is one event: `{"event", "instance", "receivedAt", "generation", "seq", "data"}`.
//! Replaying decodes `data` as the live client would, so a bot can be tested offline and a bug
//! reproduced from the exact frames that caused it.

use actix::prelude::*;
use eventsock_core::{Event, EventMeta, EventName, Frame, Payload, RawEvent};
use futures_util::future::LocalBoxFuture;
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// One recorded event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Recorded {
    /// The event name.
    pub event: EventName,
    /// The instance.
    pub instance: Option<String>,
    /// When it was received, RFC 3339.
    pub received_at: String,
    /// Its connection.
    pub generation: u64,
    /// Its position in that connection.
    pub seq: u64,
    /// The payload.
    pub data: serde_json::Value,
}

impl Recorded {
    /// The metadata a handler sees when this record is delivered again (replayed, or taken from
    /// a queue): the recorded event, instance, generation and sequence; received now.
    pub fn meta(&self) -> EventMeta {
        EventMeta {
            event: self.event.clone(),
            instance: self.instance.as_deref().map(Arc::from),
            instance_info: None,
            server_time: None,
            received_at: SystemTime::now(),
            seq: self.seq,
            generation: self.generation,
        }
    }
}

/// Records every [`RawEvent`] it is sent to a JSON-lines file. Writes are buffered and
/// flushed within 200 ms, and when the recorder stops.
pub struct Recorder {
    path: PathBuf,
    out: BufWriter<File>,
    written: u64,
    flush_scheduled: bool,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("path", &self.path)
            .field("written", &self.written)
            .finish()
    }
}

impl Recorder {
    /// A recorder appending to `path` (created if missing).
    pub fn create(path: impl AsRef<Path>) -> std::io::Result<Recorder> {
        let path = path.as_ref().to_owned();
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)?;
        Ok(Recorder {
            path,
            out: BufWriter::new(file),
            written: 0,
            flush_scheduled: false,
        })
    }

    fn flush(&mut self) {
        if let Err(e) = self.out.flush() {
            tracing::error!(path = %self.path.display(), error = %e, "cannot write the recording");
        }
    }
}

impl Actor for Recorder {
    type Context = Context<Self>;

    fn stopping(&mut self, _: &mut Context<Self>) -> Running {
        self.flush();
        Running::Stop
    }
}

impl Handler<RawEvent> for Recorder {
    type Result = ();

    fn handle(&mut self, e: RawEvent, ctx: &mut Context<Self>) {
        let line = Recorded {
            event: e.meta.event.clone(),
            instance: e.meta.instance.as_deref().map(str::to_owned),
            received_at: humantime_rfc3339(e.meta.received_at),
            generation: e.meta.generation,
            seq: e.meta.seq,
            data: (*e.data).clone(),
        };
        let written = serde_json::to_writer(&mut self.out, &line)
            .map_err(std::io::Error::from)
            .and_then(|()| self.out.write_all(b"\n"));
        if let Err(e) = written {
            tracing::error!(path = %self.path.display(), error = %e, "cannot write the recording");
            return;
        }
        self.written += 1;
        if !self.flush_scheduled {
            self.flush_scheduled = true;
            ctx.run_later(Duration::from_millis(200), |act, _| {
                act.flush_scheduled = false;
                act.flush();
            });
        }
    }
}

/// Asks a recorder to flush and say how many events it wrote.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "u64")]
pub struct FlushRecorder;

impl Handler<FlushRecorder> for Recorder {
    type Result = u64;

    fn handle(&mut self, _: FlushRecorder, _: &mut Context<Self>) -> u64 {
        self.flush();
        self.written
    }
}

fn humantime_rfc3339(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A recording that cannot be replayed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayError {
    /// The file cannot be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// What a replay did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplayReport {
    /// Lines read.
    pub records: u64,
    /// Deliveries made (one per handler per event).
    pub delivered: u64,
    /// Events that did not fit a registered type.
    pub decode_errors: u64,
    /// Lines that are not a recorded event (reported, skipped).
    pub bad_lines: u64,
    /// Events no registered handler takes.
    pub unrouted: u64,
}

type Deliver =
    dyn Fn(&EventMeta, &Frame<'_>, &mut ReplayReport) -> Option<LocalBoxFuture<'static, bool>>;

/// Feeds a recording through handlers, in order, as the live client would: each event is
/// decoded for every registered type and each handler has handled it before the next.
pub struct Replay {
    path: PathBuf,
    routes: Vec<Box<Deliver>>,
}

impl std::fmt::Debug for Replay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replay")
            .field("path", &self.path)
            .field("handlers", &self.routes.len())
            .finish()
    }
}

impl Replay {
    /// A replay of the recording at `path`.
    pub fn open(path: impl AsRef<Path>) -> Replay {
        Replay {
            path: path.as_ref().to_owned(),
            routes: Vec::new(),
        }
    }

    /// Delivers the recorded events that fit `T` to `handler`.
    pub fn handler<T: Payload>(mut self, handler: Recipient<Event<T>>) -> Self {
        self.routes.push(Box::new(move |meta, frame, report| {
            if !T::accepts(&meta.event) {
                return None;
            }
            match frame.decode::<T>(&meta.event) {
                Ok(payload) => {
                    let sent = handler.send(Event {
                        meta: meta.clone(),
                        payload: Arc::new(payload),
                    });
                    Some(Box::pin(async move { sent.await.is_ok() }))
                }
                Err(e) => {
                    report.decode_errors += 1;
                    tracing::warn!(error = %e, "recorded event not delivered");
                    None
                }
            }
        }));
        self
    }

    /// Delivers every recorded event, as JSON, to `handler`.
    pub fn raw(mut self, handler: Recipient<RawEvent>) -> Self {
        self.routes.push(Box::new(move |meta, frame, report| {
            let data = match frame.value(&meta.event) {
                Ok(v) => Arc::new(v),
                Err(e) => {
                    report.decode_errors += 1;
                    tracing::warn!(error = %e, "recorded event not delivered");
                    return None;
                }
            };
            let sent = handler.send(RawEvent {
                meta: meta.clone(),
                data,
            });
            Some(Box::pin(async move { sent.await.is_ok() }))
        }));
        self
    }

    /// Replays the whole file.
    pub async fn run(self) -> Result<ReplayReport, ReplayError> {
        let io = |source| ReplayError::Io {
            path: self.path.clone(),
            source,
        };
        let file = File::open(&self.path).map_err(io)?;
        let mut report = ReplayReport::default();
        for (n, line) in BufReader::new(file).lines().enumerate() {
            let line = line.map_err(io)?;
            if line.trim().is_empty() {
                continue;
            }
            report.records += 1;
            let record: Recorded = match serde_json::from_str(&line) {
                Ok(r) => r,
                Err(e) => {
                    report.bad_lines += 1;
                    tracing::warn!(line = n + 1, error = %e, "not a recorded event; skipped");
                    continue;
                }
            };
            let text = record.data.to_string();
            // Recorded data is the payload itself: parse it as a bare frame.
            let Ok(frame) = Frame::parse(&record.event, &text) else {
                report.bad_lines += 1;
                continue;
            };
            let meta = record.meta();
            let sends: Vec<_> = self
                .routes
                .iter()
                .filter_map(|r| r(&meta, &frame, &mut report))
                .collect();
            if sends.is_empty() {
                report.unrouted += 1;
            }
            for ok in futures_util::future::join_all(sends).await {
                report.delivered += u64::from(ok);
            }
        }
        Ok(report)
    }
}
