//! [`Ingest`]: publishes every event to JetStream, once, and waits for the acknowledgement.

use crate::{ensure_streams, token, NatsError, StreamConfig};
use actix::prelude::*;
use eventsock_core::RawEvent;
use eventsock_core::Recorded;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What an ingest did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IngestStats {
    /// Events published and acknowledged.
    pub published: u64,
    /// Publish attempts that failed and were retried.
    pub retries: u64,
}

#[derive(Default)]
struct Counters {
    published: AtomicU64,
    retries: AtomicU64,
}

/// Publishes every [`RawEvent`] it is sent to `<prefix>.<instance>.<event>`, with a message id
/// (`Nats-Msg-Id`) made of this process's start, the connection generation and the sequence
/// number, so JetStream drops a re-publish of the same event within its duplicate window.
///
/// # Lifecycle
/// Each event is handled only once JetStream has acknowledged it: while NATS is unreachable the
/// publish is retried (50 ms, doubling to 2 s), the supervisor's dispatcher waits, its queue
/// fills, and the socket stops being read. Events are held, never dropped.
pub struct Ingest {
    js: async_nats::jetstream::Context,
    prefix: String,
    nonce: u128,
    counters: Arc<Counters>,
}

impl std::fmt::Debug for Ingest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ingest")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl Ingest {
    /// Connects to NATS at `url` (retrying while it is down), creates the streams when missing,
    /// and starts the actor on the current arbiter.
    pub async fn start(url: &str, cfg: StreamConfig) -> Result<Addr<Ingest>, NatsError> {
        let client = crate::connect(url).await?;
        let js = async_nats::jetstream::new(client);
        ensure_streams(&js, &cfg).await?;
        let nonce = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        Ok(Ingest {
            js,
            prefix: cfg.prefix,
            nonce,
            counters: Arc::default(),
        }
        .start())
    }
}

impl Actor for Ingest {
    type Context = Context<Self>;
}

impl Handler<RawEvent> for Ingest {
    // Atomic: one event at a time, in order, each acknowledged before the next.
    type Result = AtomicResponse<Self, ()>;

    fn handle(&mut self, e: RawEvent, _: &mut Context<Self>) -> Self::Result {
        let instance = e.meta.instance.as_deref().unwrap_or("unknown").to_owned();
        let subject = format!("{}.{}.{}", self.prefix, token(&instance), e.meta.event);
        let id = format!(
            "{:x}-{}-{}-{}-{}",
            self.nonce, instance, e.meta.event, e.meta.generation, e.meta.seq
        );
        let record = Recorded::of(&e);
        let payload = serde_json::to_vec(&record).unwrap_or_default();
        let (js, counters) = (self.js.clone(), self.counters.clone());
        let publish = async move {
            let mut wait = Duration::from_millis(50);
            loop {
                let mut headers = async_nats::HeaderMap::new();
                headers.insert(async_nats::header::NATS_MESSAGE_ID, id.as_str());
                let result = match js
                    .publish_with_headers(subject.clone(), headers, payload.clone().into())
                    .await
                {
                    Ok(ack) => ack.await.map(|_| ()).map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                };
                match result {
                    Ok(()) => {
                        counters.published.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                    Err(error) => {
                        counters.retries.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(%subject, %error, wait = %eventsock_core::human::duration(wait), "publish failed; holding the event and retrying");
                        tokio::time::sleep(wait).await;
                        wait = (wait * 2).min(Duration::from_secs(2));
                    }
                }
            }
        };
        AtomicResponse::new(Box::pin(publish.into_actor(self)))
    }
}

/// Asks an ingest for its counts.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "IngestStats")]
pub struct GetIngestStats;

impl Handler<GetIngestStats> for Ingest {
    type Result = MessageResult<GetIngestStats>;

    fn handle(&mut self, _: GetIngestStats, _: &mut Context<Self>) -> Self::Result {
        MessageResult(IngestStats {
            published: self.counters.published.load(Ordering::Relaxed),
            retries: self.counters.retries.load(Ordering::Relaxed),
        })
    }
}
