//! Output that never blocks the runtime: lines go to a thread that writes them.
//!
//! A reader that stops reading (a paused pager) makes `write` block; on the runtime thread that
//! would stop the sockets, the timers and the signal handlers with it. Here the runtime only
//! queues lines (waiting, without blocking, when the queue is full, so a slow reader slows the
//! subscriptions as TCP would), and a thread of its own does the writing. When the reader is gone
//! (a closed pipe: `| head -n 1`), [`Output::gone`] resolves, even if nothing more is written.

use std::io::Write;
use std::sync::Arc;
use tokio::sync::{mpsc, Notify};

/// Lines for standard output, written by a thread of their own.
#[derive(Clone)]
pub(crate) struct Output {
    lines: mpsc::Sender<Vec<u8>>,
    gone: Arc<Gone>,
}

#[derive(Default)]
struct Gone {
    /// Lines queued so far.
    sent: std::sync::atomic::AtomicU64,
    /// Lines written so far.
    written: std::sync::atomic::AtomicU64,
    flag: std::sync::atomic::AtomicBool,
    notify: Notify,
}

impl Gone {
    fn set(&self) {
        self.flag.store(true, std::sync::atomic::Ordering::Release);
        self.notify.notify_waiters();
        self.notify.notify_one();
    }

    fn is_set(&self) -> bool {
        self.flag.load(std::sync::atomic::Ordering::Acquire)
    }
}

impl Output {
    /// Starts the writer thread for standard output, and a watcher that notices when its reader
    /// goes away.
    pub(crate) fn stdout() -> Output {
        let out = Output::spawn("eventsock-stdout", std::io::stdout());
        watch_reader(out.gone.clone());
        out
    }

    /// A writer thread for `stream`.
    fn spawn(name: &str, stream: impl Write + Send + 'static) -> Output {
        let (lines, mut rx) = mpsc::channel::<Vec<u8>>(1024);
        let gone = Arc::new(Gone::default());
        let writer_gone = gone.clone();
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                let mut out = std::io::BufWriter::with_capacity(64 * 1024, stream);
                while let Some(line) = rx.blocking_recv() {
                    if out.write_all(&line).is_err() {
                        break;
                    }
                    // Flush once the queue is empty: batches under load, prompt when idle.
                    if rx.is_empty() && out.flush().is_err() {
                        break;
                    }
                    // Counted once written, and flushed if it was the last one waiting.
                    writer_gone
                        .written
                        .fetch_add(1, std::sync::atomic::Ordering::Release);
                }
                let _ = out.flush();
                writer_gone.set();
            })
            .expect("spawning an output thread");
        Output { lines, gone }
    }

    /// Queues a line if there is room, without waiting: for diagnostics, which must never hold
    /// up the runtime. Returns `false` when it was dropped (a reader that stopped reading).
    pub(crate) fn try_line(&self, line: Vec<u8>) -> bool {
        if self.gone.is_set() || self.lines.try_send(line).is_err() {
            return false;
        }
        self.gone
            .sent
            .fetch_add(1, std::sync::atomic::Ordering::Release);
        true
    }

    /// Blocks the calling thread (never the runtime's) until every queued line is written, the
    /// reader is gone, or `limit` has passed.
    pub(crate) fn flush_within(&self, limit: std::time::Duration) {
        let until = std::time::Instant::now() + limit;
        while self.pending() > 0 && !self.gone.is_set() && std::time::Instant::now() < until {
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    }

    /// Queues a line (with its newline); waits while the queue is full. Returns `false` once
    /// the reader is gone.
    pub(crate) async fn line(&self, line: Vec<u8>) -> bool {
        if self.gone.is_set() || self.lines.send(line).await.is_err() {
            return false;
        }
        self.gone
            .sent
            .fetch_add(1, std::sync::atomic::Ordering::Release);
        true
    }

    /// Lines queued and not yet written.
    pub(crate) fn pending(&self) -> u64 {
        let written = self.gone.written.load(std::sync::atomic::Ordering::Acquire);
        self.gone
            .sent
            .load(std::sync::atomic::Ordering::Acquire)
            .saturating_sub(written)
    }

    /// Resolves once standard output's reader is gone (a closed pipe).
    pub(crate) async fn gone(&self) {
        loop {
            let notified = self.gone.notify.notified();
            if self.gone.is_set() {
                return;
            }
            notified.await;
        }
    }

    /// Resolves once lines wait and none has been written for `patience`: the reader is not
    /// reading (a paused pager).
    pub(crate) async fn stalled(&self, patience: std::time::Duration) {
        let mut last = self.gone.written.load(std::sync::atomic::Ordering::Acquire);
        loop {
            tokio::time::sleep(patience).await;
            let now = self.gone.written.load(std::sync::atomic::Ordering::Acquire);
            if now == last && self.pending() > 0 {
                return;
            }
            last = now;
        }
    }

    /// Waits until every queued line is written and flushed, or the reader is gone.
    pub(crate) async fn drained(&self) {
        while self.pending() > 0 && !self.gone.is_set() {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }
}

/// On Unix, a thread blocked in `poll` on standard output with no events asked for: it wakes
/// only for an error or a hang-up, which is what a pipe reports once its reader has closed it.
///
/// Only pipes and sockets are watched: a terminal or a file has no reader to lose, and some
/// systems answer `poll` on a terminal with `POLLNVAL`.
#[cfg(unix)]
fn watch_reader(gone: Arc<Gone>) {
    use rustix::event::{poll, PollFd, PollFlags};
    use rustix::fs::FileType;
    let watched = rustix::fs::fstat(std::io::stdout()).is_ok_and(|st| {
        matches!(
            FileType::from_raw_mode(st.st_mode),
            FileType::Fifo | FileType::Socket
        )
    });
    if !watched {
        return;
    }
    let _ = std::thread::Builder::new()
        .name("eventsock-stdout-watch".into())
        .spawn(move || {
            let stdout = std::io::stdout();
            loop {
                let mut fds = [PollFd::new(&stdout, PollFlags::empty())];
                match poll(&mut fds, None) {
                    Ok(_) => {
                        let events = fds[0].revents();
                        if events.intersects(PollFlags::ERR | PollFlags::HUP | PollFlags::NVAL) {
                            gone.set();
                            return;
                        }
                    }
                    Err(rustix::io::Errno::INTR) => {}
                    Err(_) => return,
                }
            }
        });
}

#[cfg(not(unix))]
fn watch_reader(_: Arc<Gone>) {}

/// Standard error, written by a thread of its own: the CLI's own lines and its logs. A reader
/// that stops reading (`2>&1 | less`, paused) loses lines rather than stopping the runtime.
pub(crate) fn stderr() -> &'static Output {
    static STDERR: std::sync::OnceLock<Output> = std::sync::OnceLock::new();
    STDERR.get_or_init(|| Output::spawn("eventsock-stderr", std::io::stderr()))
}

/// Prints a line on standard error without ever blocking (see [`stderr`]).
pub(crate) fn say_line(line: std::fmt::Arguments<'_>) {
    stderr().try_line(format!("{line}\n").into_bytes());
}

/// `eprintln!` that never blocks the runtime: see [`stderr`].
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::cli::output::say_line(format_args!($($arg)*))
    };
}
pub(crate) use say;

/// The log writer: each formatted event goes to [`stderr`] as one line.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Logs;

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Logs {
    type Writer = LogLine;

    fn make_writer(&'a self) -> LogLine {
        LogLine(Vec::new())
    }
}

/// One log event, sent when the formatter is done with it.
pub(crate) struct LogLine(Vec<u8>);

impl Write for LogLine {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LogLine {
    fn drop(&mut self) {
        if !self.0.is_empty() {
            stderr().try_line(std::mem::take(&mut self.0));
        }
    }
}
