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
        let (lines, mut rx) = mpsc::channel::<Vec<u8>>(1024);
        let gone = Arc::new(Gone::default());
        let writer_gone = gone.clone();
        std::thread::Builder::new()
            .name("eventsock-stdout".into())
            .spawn(move || {
                let mut out = std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout());
                while let Some(line) = rx.blocking_recv() {
                    if out.write_all(&line).is_err() {
                        break;
                    }
                    writer_gone
                        .written
                        .fetch_add(1, std::sync::atomic::Ordering::Release);
                    // Flush once the queue is empty: batches under load, prompt when idle.
                    if rx.is_empty() && out.flush().is_err() {
                        break;
                    }
                }
                let _ = out.flush();
                writer_gone.set();
            })
            .expect("spawning the output thread");
        watch_reader(gone.clone());
        Output { lines, gone }
    }

    /// Queues a line (with its newline); waits while the queue is full. Returns `false` once
    /// the reader is gone.
    pub(crate) async fn line(&self, line: Vec<u8>) -> bool {
        !self.gone.is_set() && self.lines.send(line).await.is_ok()
    }

    /// Lines queued and not yet written.
    pub(crate) fn pending(&self) -> usize {
        self.lines.max_capacity() - self.lines.capacity()
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

    /// Waits until every queued line is written, or the reader is gone.
    pub(crate) async fn drained(&self) {
        while self.pending() > 0 && !self.gone.is_set() {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }
}

/// On Unix, a thread blocked in `poll` on standard output with no events asked for: it wakes
/// only for an error or a hang-up, which is what a pipe reports once its reader has closed it.
#[cfg(unix)]
fn watch_reader(gone: Arc<Gone>) {
    use rustix::event::{poll, PollFd, PollFlags};
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
