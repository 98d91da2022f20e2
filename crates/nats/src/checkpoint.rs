//! [`KvCheckpoint`]: the recovery checkpoint in a JetStream key-value bucket, for processes
//! that run with the NATS bridge.
//!
//! The bucket is laid out as NATS lays out its key-value buckets (a stream `KV_<bucket>` on the
//! subjects `$KV.<bucket>.<key>`, one message kept per key), so `nats kv get` reads it. It is
//! written with plain JetStream calls: async-nats 0.51's key-value API failed here against
//! nats-server 2.9.10 (Debian's) with a response it could not parse.

use crate::NatsError;
use async_nats::jetstream::stream::LastRawMessageErrorKind;
use eventsock_core::CheckpointStore;
use tokio::sync::watch;

/// The checkpoint of the recovery of missed messages (`eventsock_client::Backfill::store`),
/// kept under one key of a JetStream key-value bucket: a bridge restarted on another machine
/// recovers from where the last one stopped.
///
/// Saves are written in the background, the newest first: a save that is overtaken by a newer
/// one before it is written is skipped. At shutdown the supervisor waits (at most 5 s) until the
/// last one is stored.
#[derive(Debug)]
pub struct KvCheckpoint {
    bucket: String,
    key: String,
    loaded: Option<Vec<u8>>,
    /// The newest checkpoint saved, and its version.
    latest: watch::Sender<Option<(u64, Vec<u8>)>>,
    /// The version of the newest checkpoint stored in the bucket.
    stored: watch::Sender<u64>,
    versions: std::sync::atomic::AtomicU64,
}

impl KvCheckpoint {
    /// Opens (or creates) the bucket `bucket` on the NATS server at `url` and reads `key`.
    /// Waits for NATS as long as it takes (see [`crate::Ingest::start`]).
    pub async fn open(url: &str, bucket: &str, key: &str) -> Result<KvCheckpoint, NatsError> {
        let js = async_nats::jetstream::new(crate::connect(url).await?);
        let jserr = |e: &dyn std::fmt::Display| NatsError::JetStream(e.to_string());
        let (stream, bucket) = crate::kv_bucket(&js, bucket).await?;
        let key = crate::token(key);
        let subject = format!("$KV.{bucket}.{key}");
        let loaded = match stream.get_last_raw_message_by_subject(&subject).await {
            Ok(m) => Some(m.payload.to_vec()),
            Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => None,
            Err(e) => return Err(jserr(&e)),
        };
        let (latest, mut saves) = watch::channel(None::<(u64, Vec<u8>)>);
        let (stored, _) = watch::channel(0u64);
        let (task_subject, task_stored) = (subject.clone(), stored.clone());
        actix_rt::spawn(async move {
            while saves.changed().await.is_ok() {
                let Some((version, bytes)) = saves.borrow_and_update().clone() else {
                    continue;
                };
                let written = match js.publish(task_subject.clone(), bytes.into()).await {
                    Ok(ack) => ack.await.map(drop).map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                };
                match written {
                    Ok(()) => {
                        task_stored.send_replace(version);
                    }
                    Err(e) => {
                        tracing::error!(subject = %task_subject, "cannot save the checkpoint: {e}")
                    }
                }
            }
        });
        Ok(KvCheckpoint {
            bucket,
            key,
            loaded,
            latest,
            stored,
            versions: std::sync::atomic::AtomicU64::new(0),
        })
    }
}

impl CheckpointStore for KvCheckpoint {
    fn load(&self) -> Result<Option<Vec<u8>>, String> {
        Ok(self.loaded.clone())
    }

    fn save(&self, checkpoint: Vec<u8>) -> Result<(), String> {
        let version = self
            .versions
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        self.latest.send_replace(Some((version, checkpoint)));
        Ok(())
    }

    /// Waits until the newest checkpoint saved is in the bucket, for at most 5 s (NATS may be
    /// down at shutdown: the last 200 ms of deliveries are then delivered again after a restart).
    fn flush(&self) -> eventsock_core::LocalBoxFuture<'static, ()> {
        let target = self.versions.load(std::sync::atomic::Ordering::Relaxed);
        let mut stored = self.stored.subscribe();
        let (bucket, key) = (self.bucket.clone(), self.key.clone());
        Box::pin(async move {
            let wait = stored.wait_for(|v| *v >= target);
            if tokio::time::timeout(std::time::Duration::from_secs(5), wait)
                .await
                .is_err()
            {
                tracing::warn!(%bucket, %key, "the last checkpoint was not stored within 5s");
            }
        })
    }
}

impl KvCheckpoint {
    /// The bucket and key it saves under.
    pub fn location(&self) -> (&str, &str) {
        (&self.bucket, &self.key)
    }
}
