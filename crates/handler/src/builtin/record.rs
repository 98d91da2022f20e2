//! Record a live stream to a JSON-lines file; replay it through the same handlers.
//!
//! Each line is one event: `{"event", "instance", "receivedAt", "generation", "seq", "data"}`.
//! Replaying decodes `data` as the live client would, so a bot can be tested offline and a bug
//! reproduced from the exact frames that caused it.

use crate::{Dispatcher, Router};
use actix::prelude::*;
use eventsock_core::{RawEvent, Recorded};
use eventsock_rest::RestClient;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

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
        let written = Recorded::write(&e, &mut self.out)
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
    /// Deliveries whose handler failed (an error, a panic, a stopped actor).
    pub failed: u64,
}

/// Feeds a recording through a [`Router`], in order, as the live client would: each event is
/// decoded for every registered type and each handler has handled it before the next.
pub struct Replay {
    path: PathBuf,
    dispatcher: Dispatcher,
}

impl std::fmt::Debug for Replay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replay")
            .field("path", &self.path)
            .field("dispatcher", &self.dispatcher)
            .finish()
    }
}

impl Replay {
    /// A replay of the recording at `path` through `router` (the same one a bot runs live
    /// with).
    pub fn open(path: impl AsRef<Path>, router: Router) -> Replay {
        Replay {
            path: path.as_ref().to_owned(),
            dispatcher: Dispatcher::new(router),
        }
    }

    /// The REST client the handlers' contexts answer through (without one, every send fails
    /// with `RestError::Unavailable`): the replayed messages are answered for real.
    pub fn rest(mut self, client: RestClient) -> Self {
        self.dispatcher = self.dispatcher.rest(client);
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
            // Recorded data is the payload itself, checked as a whole.
            let text = record.data.to_string();
            let meta = record.meta();
            let tally = self
                .dispatcher
                .handle(&record.event, None, &text, &|_| meta.clone(), true)
                .await;
            report.unrouted += u64::from(tally.unrouted());
            report.decode_errors += tally.problems.len() as u64;
            report.delivered += tally.handled as u64;
            report.failed += tally.failed as u64;
        }
        self.dispatcher.drain(Duration::from_secs(10)).await;
        Ok(report)
    }
}
