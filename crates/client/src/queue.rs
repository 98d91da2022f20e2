//! A subscription's queue: frames read but not yet handled, bounded in frames and in bytes.

use crate::config::Overflow;
use bytestring::ByteString;
use futures_util::future::LocalBoxFuture;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::SystemTime;
use tokio::sync::{mpsc, Notify};

/// One frame read from a socket, waiting for the dispatcher.
#[derive(Debug)]
pub(crate) struct Inbound {
    pub(crate) body: Body,
    pub(crate) generation: u64,
    pub(crate) seq: u64,
    pub(crate) received_at: SystemTime,
    /// Its share of the queue's byte budget, given back when the dispatcher drops it.
    pub(crate) room: Option<Room>,
}

/// A frame's body: a text frame's text, or the size of a binary frame (the protocol sends
/// none).
#[derive(Debug)]
pub(crate) enum Body {
    Text(ByteString),
    Binary(usize),
}

/// The sending side, held by the subscription's connections. Each queued frame holds [`Room`]
/// (one frame, and its size in bytes) in the budget, given back when the dispatcher drops the
/// frame, once it is handled.
#[derive(Clone)]
pub(crate) struct Queue {
    /// Unbounded as a channel: the budget bounds it, without the lock a bounded tokio
    /// channel takes to give back each frame's permit.
    frames: mpsc::UnboundedSender<Inbound>,
    budget: Arc<Budget>,
}

/// Frames and bytes held by queued frames (and the one being handled). Cheaper than a
/// semaphore on the hot path: taking and giving back room are two atomic operations each;
/// only a connection that waits for room registers.
struct Budget {
    /// Frames held, at most `frames_limit`.
    held: AtomicUsize,
    frames_limit: usize,
    used: AtomicUsize,
    limit: usize,
    /// Set while a connection waits for room, so that giving back knows to wake it. One flag is
    /// enough: a subscription has one connection at a time, so at most one waiter.
    waiting: AtomicBool,
    freed: Notify,
}

impl Budget {
    /// Takes one frame and `n` bytes if they fit; a frame larger than the whole byte budget
    /// fits an empty queue.
    fn try_take(&self, n: usize) -> bool {
        if self
            .held
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |held| {
                (held < self.frames_limit).then_some(held + 1)
            })
            .is_err()
        {
            return false;
        }
        let bytes = self
            .used
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |used| {
                (used == 0 || used + n <= self.limit).then_some(used + n)
            })
            .is_ok();
        if !bytes {
            self.held.fetch_sub(1, Ordering::SeqCst);
        }
        bytes
    }

    fn give(&self, n: usize) {
        // SeqCst here and in `take`: either the waiter sees the room, or this sees the waiter.
        self.used.fetch_sub(n, Ordering::SeqCst);
        self.held.fetch_sub(1, Ordering::SeqCst);
        if self.waiting.load(Ordering::SeqCst) {
            self.freed.notify_waiters();
        }
    }

    async fn take(&self, n: usize) {
        /// Clears the flag however the wait ends: room found, or the wait dropped (a
        /// connection that stops while it waits); left set, every frame given back would wake
        /// nobody through `Notify`'s lock.
        struct Waiting<'a>(&'a AtomicBool);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.store(false, Ordering::SeqCst);
            }
        }
        let _waiting = Waiting(&self.waiting);
        loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            self.waiting.store(true, Ordering::SeqCst);
            if self.try_take(n) {
                return;
            }
            freed.await;
        }
    }
}

/// A queued frame's share of the budget (one frame, its bytes); given back when dropped.
pub(crate) struct Room {
    budget: Arc<Budget>,
    bytes: usize,
}

impl Drop for Room {
    fn drop(&mut self) {
        self.budget.give(self.bytes);
    }
}

impl std::fmt::Debug for Room {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Room({} bytes)", self.bytes)
    }
}

/// What became of a frame offered to the queue.
pub(crate) enum Offer {
    /// In the queue.
    Queued,
    /// The dispatcher is gone.
    Closed,
    /// No room, and the policy is to drop: the frame (this sequence number) is gone.
    Dropped(u64),
    /// No room, and the policy is to wait: resolves once queued (`false`: the dispatcher is gone).
    Wait(LocalBoxFuture<'static, bool>),
}

impl Queue {
    /// A queue of at most `capacity` frames and `bytes` bytes (counting those being handled),
    /// and its receiving side.
    pub(crate) fn new(capacity: usize, bytes: usize) -> (Queue, mpsc::UnboundedReceiver<Inbound>) {
        let (frames, rx) = mpsc::unbounded_channel();
        let budget = Arc::new(Budget {
            held: AtomicUsize::new(0),
            frames_limit: capacity.max(1),
            used: AtomicUsize::new(0),
            limit: bytes.max(1),
            waiting: AtomicBool::new(false),
            freed: Notify::new(),
        });
        (Queue { frames, budget }, rx)
    }

    /// Bytes held by frames in the queue (and in the dispatcher's hands).
    pub(crate) fn bytes_held(&self) -> u64 {
        self.budget.used.load(Ordering::Acquire) as u64
    }

    /// Queues `item`, of `size` bytes, if there is room; otherwise drops it or gives a future
    /// that waits for room, by `overflow`. A frame larger than the whole byte budget passes
    /// alone, when the queue holds nothing else.
    pub(crate) fn offer(&self, mut item: Inbound, size: usize, overflow: Overflow) -> Offer {
        if !self.budget.try_take(size) {
            return self.no_room(item, size, overflow);
        }
        item.room = Some(Room {
            budget: self.budget.clone(),
            bytes: size,
        });
        match self.frames.send(item) {
            Ok(()) => Offer::Queued,
            // The frame's room is given back as it is dropped with the error.
            Err(_) => Offer::Closed,
        }
    }

    fn no_room(&self, item: Inbound, size: usize, overflow: Overflow) -> Offer {
        if overflow == Overflow::DropNewest {
            return Offer::Dropped(item.seq);
        }
        let (frames, budget) = (self.frames.clone(), self.budget.clone());
        Offer::Wait(Box::pin(async move {
            let mut item = item;
            if frames.is_closed() {
                return false;
            }
            budget.take(size).await;
            item.room = Some(Room {
                budget: budget.clone(),
                bytes: size,
            });
            frames.send(item).is_ok()
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_holds_and_gives_back() {
        let b = Budget {
            held: AtomicUsize::new(0),
            frames_limit: 1000,
            used: AtomicUsize::new(0),
            limit: 10,
            waiting: AtomicBool::new(false),
            freed: Notify::new(),
        };
        assert!(b.try_take(25), "alone, a frame over the budget passes");
        assert!(!b.try_take(1));
        b.give(25);
        assert!(b.try_take(6));
        assert!(b.try_take(4));
        assert!(!b.try_take(1));
        b.give(4);
        assert!(b.try_take(3));
        assert_eq!(b.used.load(Ordering::Acquire), 9);
    }

    #[test]
    fn budget_holds_frames_until_they_are_handled() {
        let b = Budget {
            held: AtomicUsize::new(0),
            frames_limit: 2,
            used: AtomicUsize::new(0),
            limit: 100,
            waiting: AtomicBool::new(false),
            freed: Notify::new(),
        };
        assert!(b.try_take(1));
        assert!(b.try_take(1));
        assert!(!b.try_take(1), "two frames held: no third");
        assert_eq!(
            b.used.load(Ordering::Acquire),
            2,
            "a refused frame takes no bytes"
        );
        b.give(1);
        assert!(b.try_take(50));
        // Bytes refused: the frame slot taken for it is given back.
        b.give(1);
        assert!(!b.try_take(60));
        assert_eq!(b.held.load(Ordering::Acquire), 1);
        assert!(b.try_take(40));
    }
}
