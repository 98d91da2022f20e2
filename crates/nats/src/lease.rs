//! [`KvLease`]: one owner per stream across hosts, for processes that run with NATS.
//!
//! The file leases of `eventsock_client::Leases` are seen only on one host. A bridge on another
//! host would take the stream from the server, and leave the first silent. So a bridge holds its
//! streams in the NATS key-value bucket `eventsock-leases` too: one key per (server, instance),
//! whose value says who holds it and when it last said so. The holder says so again every third
//! of the lease's time (a heartbeat), naming the revision it read, so that two processes never
//! both write it; a lease not renewed within its time is free (its process died). Another
//! process that asks for the streams writes its request beside the key; the holder sees it at its
//! next heartbeat, lets go, and takes the streams back once they are free again.

use crate::NatsError;
use actix::Addr;
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::stream::{LastRawMessageErrorKind, Stream};
use eventsock_client::{Holder, LeaseError, StandDown, Supervisor, TakeBack};
use eventsock_core::{fnv1a, FNV_BASIS};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The bucket of the leases.
const BUCKET: &str = "eventsock-leases";

/// A lease on the streams of one (server, instance), held in NATS while this process runs.
#[derive(Debug)]
pub struct KvLease {
    js: async_nats::jetstream::Context,
    stream: Stream,
    key: String,
    take: String,
    what: String,
    ttl: Duration,
    /// The revision of our last write: the next must name it.
    revision: u64,
    /// This process, as the holder.
    me: Holder,
}

/// The value of a lease's key: who holds it, and when it last said so (seconds).
#[derive(serde::Serialize, serde::Deserialize)]
struct Record {
    holder: Holder,
    renewed: u64,
}

/// What the key says.
enum Seen {
    /// Nobody holds it (never held, let go, or not renewed in time).
    Free { revision: u64 },
    /// Someone does.
    Held { holder: Holder },
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl KvLease {
    /// Holds the streams of `instance` on `endpoint` for this process, in the NATS at `url`,
    /// renewed every third of `ttl`. Another process holds them: [`LeaseError::Held`], unless
    /// `take`, which asks it to let go and waits up to twice `ttl`.
    pub async fn hold(
        url: &str,
        endpoint: &str,
        instance: &str,
        ttl: Duration,
        take: bool,
    ) -> Result<KvLease, LeaseError> {
        let folder = |e: &dyn std::fmt::Display| LeaseError::Folder {
            path: format!("NATS {} bucket {BUCKET}", crate::shown(url)).into(),
            source: std::sync::Arc::new(std::io::Error::other(e.to_string())),
        };
        let client = crate::connect(url).await.map_err(|e| folder(&e))?;
        let js = async_nats::jetstream::new(client);
        let (stream, bucket) = crate::kv_bucket(&js, BUCKET)
            .await
            .map_err(|e| folder(&e))?;
        let held = format!("{endpoint}\u{0}{instance}");
        let name = format!("{:016x}", fnv1a(FNV_BASIS, held.bytes()));
        let mut lease = KvLease {
            js,
            stream,
            key: format!("$KV.{bucket}.{name}"),
            take: format!("$KV.{bucket}.{name}-take"),
            what: format!("{instance} (every event, at {endpoint})"),
            ttl: ttl.max(Duration::from_secs(1)),
            revision: 0,
            me: Holder::current(),
        };
        let deadline = tokio::time::Instant::now() + lease.ttl * 2;
        let mut asked = false;
        loop {
            match lease.seen().await.map_err(|e| folder(&e))? {
                Seen::Free { revision } => {
                    if lease.claim(revision).await.map_err(|e| folder(&e))? {
                        if asked {
                            lease.forget_request().await;
                        }
                        return Ok(lease);
                    }
                }
                Seen::Held { holder, .. } if !take => {
                    return Err(LeaseError::Held {
                        stream: lease.what.clone(),
                        holder,
                    })
                }
                Seen::Held { holder, .. } => {
                    if tokio::time::Instant::now() >= deadline {
                        lease.forget_request().await;
                        return Err(LeaseError::NotReleased {
                            stream: lease.what.clone(),
                            holder,
                            waited: lease.ttl * 2,
                        });
                    }
                    if !asked {
                        lease.request().await.map_err(|e| folder(&e))?;
                        asked = true;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// What the lease covers, for messages.
    pub fn streams(&self) -> &str {
        &self.what
    }

    /// Renews the lease every third of its time until another process asks for the streams (or
    /// takes them, its lease having lapsed): returns who.
    pub async fn until_asked(&mut self) -> Holder {
        loop {
            tokio::time::sleep(self.ttl / 3).await;
            if let Some(by) = self.asked().await {
                return by;
            }
            match self.write(self.revision, &self.record()).await {
                Ok(Some(revision)) => self.revision = revision,
                Ok(None) => {
                    // Written by another process meanwhile: it has the streams now.
                    let by = match self.seen().await {
                        Ok(Seen::Held { holder, .. }) => holder,
                        _ => unknown(),
                    };
                    return by;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "renewing the lease in NATS failed; trying again")
                }
            }
        }
    }

    /// Lets go of the streams, then waits until they are free again (the process that asked
    /// let go of them, or died) and holds them again.
    pub async fn hand_over(&mut self) {
        // Let go: an empty value, written over our own revision only.
        let _ = self.write(self.revision, &[]).await;
        loop {
            tokio::time::sleep(self.ttl / 3).await;
            // The one that asked goes first.
            if self.asked().await.is_some() {
                continue;
            }
            if let Ok(Seen::Free { revision }) = self.seen().await {
                if matches!(self.claim(revision).await, Ok(true)) {
                    return;
                }
            }
        }
    }

    /// Keeps the lease for `supervisor`'s streams for as long as this runs (it never ends by
    /// itself): when another process asks for them, tells the supervisor to stand down
    /// ([`StandDown`]), waits until they are free again, holds them again and tells it to take
    /// them back ([`TakeBack`]), recovering what was sent meanwhile.
    pub async fn keep_for(&mut self, supervisor: &Addr<Supervisor>) {
        loop {
            let by = self.until_asked().await;
            supervisor.do_send(StandDown { by: by.to_string() });
            self.hand_over().await;
            tracing::info!(streams = %self.what, "the streams are free again: taking them back");
            supervisor.do_send(TakeBack);
        }
    }

    /// Lets go of the streams (at a clean exit; a crash lets the lease lapse).
    pub async fn release(self) {
        let _ = self.write(self.revision, &[]).await;
    }

    async fn seen(&self) -> Result<Seen, NatsError> {
        match self.stream.get_last_raw_message_by_subject(&self.key).await {
            Ok(m) => {
                let record = serde_json::from_slice::<Record>(&m.payload).ok();
                let fresh = |r: &Record| now_secs().saturating_sub(r.renewed) <= self.ttl.as_secs();
                Ok(match record {
                    Some(record) if fresh(&record) => Seen::Held {
                        holder: record.holder,
                    },
                    _ => Seen::Free {
                        revision: m.sequence,
                    },
                })
            }
            Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => {
                Ok(Seen::Free { revision: 0 })
            }
            Err(e) => Err(NatsError::JetStream(e.to_string())),
        }
    }

    /// Writes this process as the holder over `revision`: whether it won.
    async fn claim(&mut self, revision: u64) -> Result<bool, NatsError> {
        self.me = Holder::current();
        match self.write(revision, &self.record()).await? {
            Some(written) => {
                self.revision = written;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Writes `value` at the key if its last revision is `expected`: the new revision, or
    /// `None` when another write came first.
    async fn write(&self, expected: u64, value: &[u8]) -> Result<Option<u64>, NatsError> {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(
            async_nats::header::NATS_EXPECTED_LAST_SUBJECT_SEQUENCE,
            expected.to_string().as_str(),
        );
        let ack = self
            .js
            .publish_with_headers(self.key.clone(), headers, value.to_vec().into())
            .await
            .map_err(|e| NatsError::JetStream(e.to_string()))?
            .await;
        match ack {
            Ok(ack) => Ok(Some(ack.sequence)),
            Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => Ok(None),
            Err(e) => Err(NatsError::JetStream(e.to_string())),
        }
    }

    /// Who asks for the streams, if a process does now.
    async fn asked(&self) -> Option<Holder> {
        let m = self
            .stream
            .get_last_raw_message_by_subject(&self.take)
            .await
            .ok()?;
        let holder = serde_json::from_slice::<Holder>(&m.payload).ok()?;
        (now_secs().saturating_sub(holder.since) <= 60 && holder != self.me).then_some(holder)
    }

    async fn request(&self) -> Result<(), NatsError> {
        let me = serde_json::to_vec(&self.me).unwrap_or_default();
        let ack = self
            .js
            .publish(self.take.clone(), me.into())
            .await
            .map_err(|e| NatsError::JetStream(e.to_string()))?;
        ack.await
            .map(drop)
            .map_err(|e| NatsError::JetStream(e.to_string()))
    }

    async fn forget_request(&self) {
        if let Ok(ack) = self.js.publish(self.take.clone(), Vec::new().into()).await {
            let _ = ack.await;
        }
    }
}

impl KvLease {
    /// What a write of the lease says: this process holds it, now.
    fn record(&self) -> Vec<u8> {
        let record = Record {
            holder: self.me.clone(),
            renewed: now_secs(),
        };
        serde_json::to_vec(&record).unwrap_or_default()
    }
}

fn unknown() -> Holder {
    Holder {
        pid: 0,
        host: "an unknown host".into(),
        since: now_secs(),
    }
}
