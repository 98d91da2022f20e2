//! A subscriber in this process: what a socket would receive, without a socket.

use crate::hub::{Out, Sim, SocketQueues};
use bytestring::ByteString;
use std::sync::atomic::Ordering;

/// Receives what a socket subscribed to one (instance, event) would: the test kit reads the
/// simulator's events through one. Taking the subscription replaces the socket that held it, as
/// a newer socket does on the real server; dropping it ends the subscription.
pub struct Listener {
    sim: Sim,
    queues: SocketQueues,
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener")
            .field("id", &self.queues.id)
            .finish_non_exhaustive()
    }
}

impl Sim {
    /// Subscribes to `event` of the instance (or scope) `scope` in this process.
    pub fn listen(&self, scope: &str, event: &str) -> Listener {
        Listener {
            sim: self.clone(),
            queues: self.register((scope.to_owned(), event.to_owned())),
        }
    }
}

impl Listener {
    /// The next frame the simulator sent, if one waits.
    pub fn try_next(&mut self) -> Option<ByteString> {
        let frame = self.queues.frames.try_recv().ok()?;
        self.queues.queued.fetch_sub(1, Ordering::Relaxed);
        match frame {
            Out::Text(text) | Out::Packet(text, _) => Some(text),
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.sim.unregister(self.queues.id);
    }
}
