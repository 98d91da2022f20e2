//! Where a recovery checkpoint is kept: [`CheckpointStore`].

/// Keeps the checkpoint of the recovery of missed messages (the client's `Backfill`): the last
/// message delivered per instance and the ids delivered most recently, as opaque bytes. A file
/// (`Backfill::checkpoint`) or a NATS KV bucket (`eventsock_nats::KvCheckpoint`), or your own.
pub trait CheckpointStore: Send + Sync + std::fmt::Debug + 'static {
    /// The checkpoint saved last, if there is one. Called once, when the supervisor starts.
    fn load(&self) -> Result<Option<Vec<u8>>, String>;

    /// Replaces the checkpoint. Called at most every 200 ms while messages are delivered, and
    /// at shutdown; it may complete later, and the newest saved must win.
    fn save(&self, checkpoint: Vec<u8>) -> Result<(), String>;

    /// Resolves once every checkpoint saved so far is stored (or it gave up trying): awaited
    /// at shutdown. By default at once, for stores whose `save` stores before it returns.
    fn flush(&self) -> crate::LocalBoxFuture<'static, ()> {
        Box::pin(std::future::ready(()))
    }
}
