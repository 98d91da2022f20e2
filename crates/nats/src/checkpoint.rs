//! [`KvCheckpoint`]: the recovery checkpoint in a JetStream key-value bucket, for processes
//! that run with the NATS bridge.
//!
//! The bucket is laid out as NATS lays out its key-value buckets (a stream `KV_<bucket>` on the
//! subjects `$KV.<bucket>.<key>`, one message kept per key), so `nats kv get` reads it. It is
//! written with plain JetStream calls: async-nats 0.51's key-value API failed here against
//! nats-server 2.9.10 (Debian's) with a response it could not parse.

use crate::NatsError;
use async_nats::jetstream::stream::{self, LastRawMessageErrorKind};
use eventsock_core::CheckpointStore;
use tokio::sync::watch;

/// The checkpoint of the recovery of missed messages (`eventsock_client::Backfill::store`),
/// kept under one key of a JetStream key-value bucket: a bridge restarted on another machine
/// recovers from where the last one stopped.
///
/// Saves are written in the background, the newest first: a save that is overtaken by a newer
/// one before it is written is skipped.
#[derive(Debug)]
pub struct KvCheckpoint {
    bucket: String,
    key: String,
    loaded: Option<Vec<u8>>,
    latest: watch::Sender<Option<Vec<u8>>>,
}

impl KvCheckpoint {
    /// Opens (or creates) the bucket `bucket` on the NATS server at `url` and reads `key`.
    /// Waits for NATS as long as it takes (see [`crate::Ingest::start`]).
    pub async fn open(url: &str, bucket: &str, key: &str) -> Result<KvCheckpoint, NatsError> {
        let js = async_nats::jetstream::new(crate::connect(url).await?);
        let jserr = |e: &dyn std::fmt::Display| NatsError::JetStream(e.to_string());
        let bucket = crate::token(bucket);
        let stream = js
            .get_or_create_stream(stream::Config {
                name: format!("KV_{bucket}"),
                subjects: vec![format!("$KV.{bucket}.>")],
                max_messages_per_subject: 1,
                allow_rollup: true,
                deny_delete: true,
                storage: stream::StorageType::File,
                ..Default::default()
            })
            .await
            .map_err(|e| jserr(&e))?;
        let key = crate::token(key);
        let subject = format!("$KV.{bucket}.{key}");
        let loaded = match stream.get_last_raw_message_by_subject(&subject).await {
            Ok(m) => Some(m.payload.to_vec()),
            Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => None,
            Err(e) => return Err(jserr(&e)),
        };
        let (latest, mut saves) = watch::channel(None::<Vec<u8>>);
        let task_subject = subject.clone();
        actix_rt::spawn(async move {
            while saves.changed().await.is_ok() {
                let Some(bytes) = saves.borrow_and_update().clone() else {
                    continue;
                };
                let written = match js.publish(task_subject.clone(), bytes.into()).await {
                    Ok(ack) => ack.await.map(drop).map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                };
                if let Err(e) = written {
                    tracing::error!(subject = %task_subject, "cannot save the checkpoint: {e}");
                }
            }
        });
        Ok(KvCheckpoint {
            bucket,
            key,
            loaded,
            latest,
        })
    }
}

impl CheckpointStore for KvCheckpoint {
    fn load(&self) -> Result<Option<Vec<u8>>, String> {
        Ok(self.loaded.clone())
    }

    fn save(&self, checkpoint: Vec<u8>) -> Result<(), String> {
        self.latest.send_replace(Some(checkpoint));
        Ok(())
    }
}

impl KvCheckpoint {
    /// The bucket and key it saves under.
    pub fn location(&self) -> (&str, &str) {
        (&self.bucket, &self.key)
    }
}
