//! A subscription's queue: frames read but not yet handled, bounded in frames and in bytes.

use crate::config::Overflow;
use crate::route::Inbound;
use futures_util::future::LocalBoxFuture;
use std::sync::Arc;
use tokio::sync::{mpsc, Semaphore, TryAcquireError};

/// The sending side, held by the subscription's connections. Each queued frame holds permits
/// for its size from the byte budget; the dispatcher releases them when it drops the frame.
#[derive(Clone)]
pub(crate) struct Queue {
    frames: mpsc::Sender<Inbound>,
    bytes: Arc<Semaphore>,
    limit: u32,
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
    /// A queue of at most `capacity` frames and `bytes` bytes, and its receiving side.
    pub(crate) fn new(capacity: usize, bytes: usize) -> (Queue, mpsc::Receiver<Inbound>) {
        let (frames, rx) = mpsc::channel(capacity.max(1));
        let limit = u32::try_from(bytes).unwrap_or(u32::MAX).max(1);
        let queue = Queue {
            frames,
            bytes: Arc::new(Semaphore::new(limit as usize)),
            limit,
        };
        (queue, rx)
    }

    /// Bytes held by frames in the queue (and in the dispatcher's hands).
    pub(crate) fn bytes_held(&self) -> u64 {
        u64::from(self.limit) - self.bytes.available_permits() as u64
    }

    /// Queues `item`, of `size` bytes, if there is room; otherwise drops it or gives a future
    /// that waits for room, by `overflow`. A frame larger than the whole byte budget needs the
    /// whole budget: it passes alone.
    pub(crate) fn offer(&self, mut item: Inbound, size: usize, overflow: Overflow) -> Offer {
        let need = u32::try_from(size).unwrap_or(u32::MAX).min(self.limit);
        match self.bytes.clone().try_acquire_many_owned(need) {
            Ok(room) => item.room = Some(room),
            Err(TryAcquireError::Closed) => return Offer::Closed,
            Err(TryAcquireError::NoPermits) => return self.no_room(item, need, overflow),
        }
        match self.frames.try_send(item) {
            Ok(()) => Offer::Queued,
            Err(mpsc::error::TrySendError::Closed(_)) => Offer::Closed,
            Err(mpsc::error::TrySendError::Full(item)) => self.no_room(item, need, overflow),
        }
    }

    fn no_room(&self, mut item: Inbound, need: u32, overflow: Overflow) -> Offer {
        if overflow == Overflow::DropNewest {
            return Offer::Dropped(item.seq);
        }
        let (frames, bytes) = (self.frames.clone(), self.bytes.clone());
        Offer::Wait(Box::pin(async move {
            if item.room.is_none() {
                match bytes.acquire_many_owned(need).await {
                    Ok(room) => item.room = Some(room),
                    Err(_) => return false,
                }
            }
            frames.send(item).await.is_ok()
        }))
    }
}
