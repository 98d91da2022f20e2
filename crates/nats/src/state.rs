//! [`KvStateStore`]: per-chat conversation states in a JetStream key-value bucket, shared by
//! every worker, written only at the revision they were read at.

use crate::NatsError;
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::stream::{self, LastRawMessageErrorKind};
use async_nats::jetstream::{self as js};
use eventsock_core::LocalBoxFuture;
use eventsock_handler::{now_ms, ChatKey, StateError, StateStore, Stored};

/// Conversation states (`eventsock_handler::Dialogue`) in a JetStream key-value bucket, laid
/// out as NATS lays out its buckets (a stream `KV_<bucket>` on `$KV.<bucket>.<key>`, the last
/// value per key kept), written with plain JetStream calls (see [`crate::KvCheckpoint`]).
///
/// The revision of a state is the stream sequence of its last write. A save is published with
/// `Nats-Expected-Last-Subject-Sequence`: when another worker wrote the chat's state meanwhile,
/// JetStream refuses it, and the save fails with [`StateError::Conflict`] (the event is then
/// handled again, on the new state). A value is the time of the write (8 bytes, big-endian
/// milliseconds since the Unix epoch) then the state's JSON; a removal writes an empty value.
#[derive(Clone)]
pub struct KvStateStore {
    js: js::Context,
    stream: stream::Stream,
    bucket: String,
}

impl std::fmt::Debug for KvStateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KvStateStore")
            .field("bucket", &self.bucket)
            .finish_non_exhaustive()
    }
}

fn storage(e: impl std::fmt::Display) -> StateError {
    StateError::Storage(format!("NATS: {e}"))
}

/// A key token: the bytes in hex, so that no JID or instance name can clash or escape.
fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

impl KvStateStore {
    /// Opens (or creates) the bucket `bucket` on the NATS server at `url`. Waits for NATS as
    /// long as it takes.
    pub async fn open(url: &str, bucket: &str) -> Result<KvStateStore, NatsError> {
        let js = js::new(crate::connect(url).await?);
        let (stream, bucket) = crate::kv_bucket(&js, bucket).await?;
        Ok(KvStateStore { js, stream, bucket })
    }

    fn subject(&self, key: &ChatKey) -> String {
        format!(
            "$KV.{}.{}.{}",
            self.bucket,
            hex(&key.instance),
            hex(&key.chat)
        )
    }

    async fn write(&self, key: &ChatKey, bytes: Vec<u8>, expected: u64) -> Result<u64, StateError> {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(
            async_nats::header::NATS_EXPECTED_LAST_SUBJECT_SEQUENCE,
            expected.to_string().as_str(),
        );
        if bytes.is_empty() {
            headers.insert("KV-Operation", "DEL");
        }
        let ack = self
            .js
            .publish_with_headers(self.subject(key), headers, bytes.into())
            .await
            .map_err(storage)?
            .await;
        match ack {
            Ok(ack) => Ok(ack.sequence),
            Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => Err(StateError::Conflict),
            Err(e) => Err(storage(e)),
        }
    }
}

impl StateStore for KvStateStore {
    fn load<'a>(
        &'a self,
        key: &'a ChatKey,
    ) -> LocalBoxFuture<'a, Result<Option<Stored>, StateError>> {
        Box::pin(async move {
            match self
                .stream
                .get_last_raw_message_by_subject(&self.subject(key))
                .await
            {
                // A removed state is an empty value, whose revision the next save must match.
                Ok(m) if m.payload.is_empty() => Ok(Some(Stored {
                    bytes: Vec::new(),
                    revision: m.sequence,
                    updated_ms: 0,
                })),
                Ok(m) => {
                    let Some((ms, state)) = m.payload.split_first_chunk::<8>() else {
                        // Too short to be one of ours (written by hand?): given as it is, so
                        // that it fails to read as the state type and is reset.
                        return Ok(Some(Stored {
                            bytes: m.payload.to_vec(),
                            revision: m.sequence,
                            updated_ms: now_ms(),
                        }));
                    };
                    Ok(Some(Stored {
                        bytes: state.to_vec(),
                        revision: m.sequence,
                        updated_ms: u64::from_be_bytes(*ms),
                    }))
                }
                Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(None),
                Err(e) => Err(storage(e)),
            }
        })
    }

    fn save<'a>(
        &'a self,
        key: &'a ChatKey,
        bytes: Vec<u8>,
        expected: Option<u64>,
    ) -> LocalBoxFuture<'a, Result<u64, StateError>> {
        Box::pin(async move {
            if bytes.is_empty() {
                return Err(StateError::Storage("an empty state cannot be saved".into()));
            }
            // The value: when it was written (8 bytes, big-endian milliseconds), then the state.
            let mut value = now_ms().to_be_bytes().to_vec();
            value.extend_from_slice(&bytes);
            self.write(key, value, expected.unwrap_or(0)).await
        })
    }

    fn remove<'a>(
        &'a self,
        key: &'a ChatKey,
        expected: u64,
    ) -> LocalBoxFuture<'a, Result<(), StateError>> {
        Box::pin(async move { self.write(key, Vec::new(), expected).await.map(|_| ()) })
    }
}
