//! Scale out across machines: one process ingests the event stream into NATS JetStream, any
//! number of workers process it with the same typed handlers.
//!
//! The server keeps one socket per (instance, event), so only one process can hold a stream. The
//! [`Ingest`] actor, registered as a raw handler on that process's supervisor, publishes every
//! event to a JetStream stream on `eventsock.<instance>.<event>`, with a message id JetStream uses
//! to drop re-publishes, keeping a window of publishes awaiting their acknowledgements. [`Worker`]s share one
//! durable pull consumer: each message goes through a [`Router`](eventsock_handler::Router),
//! the same one a bot runs live with, as the same [`Event<T>`](eventsock_core::Event), and is
//! acknowledged only after every handler that takes it succeeds; a failure (or a worker that dies) gets it redelivered, and after
//! `max_deliver` deliveries it is moved to `eventsock-dead.<instance>.<event>`.
//!
//! Sending scales out the other way: workers queue their messages in a JetStream outbox
//! ([`JetStreamOutbox`]), and one [`OutboxSender`] sends them at the instance's pace.
//!
//! Guarantees and ordering are in `docs/scaling.md`.

mod checkpoint;
mod follow;
mod ingest;
mod lease;
mod outbox;
mod state;
mod worker;

pub use checkpoint::KvCheckpoint;
pub use follow::follow;
pub use ingest::{FlushIngest, GetIngestStats, Ingest, IngestStats, WINDOW};
pub use lease::KvLease;
pub use outbox::{JetStreamOutbox, OutboxConfig, OutboxSender, SenderStats};
pub use state::KvStateStore;
pub use worker::{Worker, WorkerStats};

use std::time::Duration;

/// Where events go in NATS.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct StreamConfig {
    /// The JetStream stream (`EVENTSOCK`).
    pub stream: String,
    /// Subject prefix (`eventsock`): events go to `<prefix>.<instance>.<event>`.
    pub prefix: String,
    /// Oldest event kept (7 days).
    pub max_age: Duration,
    /// Most bytes kept (-1: no limit).
    pub max_bytes: i64,
    /// How long JetStream remembers message ids to drop re-publishes (2 minutes).
    pub duplicate_window: Duration,
    /// Partitions by chat (0, the default: none). With N, the ingest publishes each event on
    /// `<prefix>.<instance>.<chat>.<event>` and the stream stores it, through NATS's
    /// `{{partition(N,...)}}` subject transform, on `<prefix>.<k>.<instance>.<chat>.<event>`,
    /// `k` in `0..N` by the hash of instance and chat. One worker per partition
    /// ([`Worker::partition`]) then handles N parts of the stream in parallel, each chat in
    /// order. Events that are not messages of a chat go to the partition of chat `_`. Needs
    /// nats-server 2.10 or later, and a stream of its own: a stream's transform is set when it
    /// is created.
    pub partitions: u32,
}

impl Default for StreamConfig {
    fn default() -> Self {
        StreamConfig {
            stream: "EVENTSOCK".into(),
            prefix: "eventsock".into(),
            max_age: Duration::from_secs(7 * 24 * 3600),
            max_bytes: -1,
            duplicate_window: Duration::from_secs(120),
            partitions: 0,
        }
    }
}

/// A NATS or JetStream failure. The token of the CodeChat server is never involved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NatsError {
    /// Cannot connect.
    #[error("cannot connect to NATS: {0}")]
    Connect(String),
    /// A JetStream call failed.
    #[error("JetStream: {0}")]
    JetStream(String),
    /// The settings cannot work, for example a partition the stream does not have.
    #[error("{0}")]
    Setting(String),
}

/// A subject token: NATS splits subjects on `.` and treats `*`, `>` and spaces specially.
fn token(s: &str) -> String {
    s.chars()
        .map(|c| {
            if matches!(c, '.' | '*' | '>') || c.is_whitespace() {
                '_'
            } else {
                c
            }
        })
        .collect()
}

/// Creates the event stream and the dead-letter stream when missing.
async fn ensure_streams(
    js: &async_nats::jetstream::Context,
    cfg: &StreamConfig,
) -> Result<(), NatsError> {
    use async_nats::jetstream::stream;
    let transform = (cfg.partitions > 0).then(|| stream::SubjectTransform {
        source: format!("{}.*.*.>", cfg.prefix),
        destination: format!(
            "{}.{{{{partition({},1,2)}}}}.{{{{wildcard(1)}}}}.{{{{wildcard(2)}}}}.>",
            cfg.prefix, cfg.partitions
        ),
    });
    let mut created = js
        .get_or_create_stream(stream::Config {
            name: cfg.stream.clone(),
            subjects: vec![format!("{}.>", cfg.prefix)],
            max_age: cfg.max_age,
            max_bytes: cfg.max_bytes,
            duplicate_window: cfg.duplicate_window,
            storage: stream::StorageType::File,
            subject_transform: transform.clone(),
            ..Default::default()
        })
        .await
        .map_err(|e| NatsError::JetStream(e.to_string()))?;
    let info = created
        .info()
        .await
        .map_err(|e| NatsError::JetStream(e.to_string()))?;
    let has = info
        .config
        .subject_transform
        .as_ref()
        .map(|t| &t.destination);
    if has != transform.as_ref().map(|t| &t.destination) {
        return Err(NatsError::JetStream(if has.is_none() {
            // A server before 2.10 drops the field it does not know.
            format!(
                "the stream {} has no partitions: it was made without them (give \
                 StreamConfig::stream a new name), or this NATS server is older than 2.10 and \
                 cannot partition",
                cfg.stream
            )
        } else {
            format!(
                "the stream {} is partitioned otherwise than the {} partitions asked for: give \
                 StreamConfig::stream a new name",
                cfg.stream, cfg.partitions
            )
        }));
    }
    dead_letters(js, &cfg.stream, &cfg.prefix).await
}

/// Creates, when missing, the dead-letter stream `<stream>_DEAD` on `<prefix>-dead.>`.
async fn dead_letters(
    js: &async_nats::jetstream::Context,
    stream: &str,
    prefix: &str,
) -> Result<(), NatsError> {
    use async_nats::jetstream::stream;
    js.get_or_create_stream(stream::Config {
        name: format!("{stream}_DEAD"),
        subjects: vec![format!("{prefix}-dead.>")],
        storage: stream::StorageType::File,
        ..Default::default()
    })
    .await
    .map_err(|e| NatsError::JetStream(e.to_string()))?;
    Ok(())
}

/// Moves `message` to the dead-letter `subject`, saying why in its `Eventsock-Error` header,
/// then ends its deliveries; when the move fails, leaves it for a redelivery rather than lose
/// it. Returns how the acknowledgement went.
async fn move_to_dead_letters(
    js: &async_nats::jetstream::Context,
    message: &async_nats::jetstream::Message,
    subject: String,
    error: &str,
) -> Result<(), async_nats::Error> {
    use async_nats::jetstream::AckKind;
    let mut headers = async_nats::HeaderMap::new();
    let reason = error.replace(['\r', '\n'], " ");
    headers.insert("Eventsock-Error", reason.as_str());
    let moved = match js
        .publish_with_headers(subject.clone(), headers, message.payload.clone())
        .await
    {
        Ok(ack) => ack.await.map(drop).map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    match moved {
        Ok(()) => {
            tracing::error!(%error, "given up: moved to the dead-letter subject {subject}");
            message.ack_with(AckKind::Term).await
        }
        Err(e) => {
            tracing::error!(%error, publish_error = %e, "given up, but it could not be moved to the dead-letter subject {subject}: left for a redelivery");
            message.ack_with(AckKind::Nak(None)).await
        }
    }
}

/// The stream of the key-value bucket `bucket` (its name made a subject token), laid out as
/// NATS lays out its buckets: `KV_<bucket>` on `$KV.<bucket>.>`, the last value per key kept.
/// Created when missing. Returns it with the token.
async fn kv_bucket(
    js: &async_nats::jetstream::Context,
    bucket: &str,
) -> Result<(async_nats::jetstream::stream::Stream, String), NatsError> {
    use async_nats::jetstream::stream;
    let bucket = token(bucket);
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
        .map_err(|e| NatsError::JetStream(e.to_string()))?;
    Ok((stream, bucket))
}

/// `url` without any user or password in it, for messages.
fn shown(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.rsplit_once('@') {
            Some((_, host)) => format!("{scheme}://{host}"),
            None => url.to_owned(),
        },
        None => match url.rsplit_once('@') {
            Some((_, host)) => host.to_owned(),
            None => url.to_owned(),
        },
    }
}

/// Connects, retrying while the server is down and saying so: where NATS was looked for, why it
/// failed, and when the next try is. Later losses of the connection are logged as they happen
/// (async-nats reconnects by itself).
async fn connect(url: &str) -> Result<async_nats::Client, NatsError> {
    let at = shown(url);
    let backoff = eventsock_core::Backoff::exponential(
        std::time::Duration::from_millis(250),
        std::time::Duration::from_secs(5),
    )
    .jitter(0.0);
    let mut failures = 0u32;
    loop {
        let events_at = at.clone();
        let options = async_nats::ConnectOptions::new().event_callback(move |event| {
            let at = events_at.clone();
            async move {
                match event {
                    async_nats::Event::Disconnected => {
                        tracing::warn!("lost the connection to NATS at {at}; reconnecting")
                    }
                    async_nats::Event::Connected => tracing::info!("connected to NATS at {at}"),
                    other => tracing::debug!("NATS at {at}: {other}"),
                }
            }
        });
        match options.connect(url).await {
            Ok(client) => {
                if failures > 0 {
                    tracing::warn!("connected to NATS at {at} after {failures} failed attempts");
                }
                return Ok(client);
            }
            Err(e) => {
                failures += 1;
                let wait = backoff.delay(failures);
                let next = eventsock_core::human::duration(wait);
                // Said on the first failure and then every tenth, so a long outage stays visible
                // without flooding the log.
                if failures == 1 || failures.is_multiple_of(10) {
                    tracing::warn!(
                        "NATS at {at} is unreachable ({e}); retrying every {next} until it answers"
                    );
                } else {
                    tracing::debug!("NATS at {at} is unreachable ({e}); next try in {next}");
                }
                tokio::time::sleep(wait).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn credentials_never_shown() {
        assert_eq!(
            super::shown("nats://u:p@127.0.0.1:4222"),
            "nats://127.0.0.1:4222"
        );
        assert_eq!(super::shown("127.0.0.1:4222"), "127.0.0.1:4222");
        assert_eq!(super::shown("tok@host:1"), "host:1");
    }

    #[test]
    fn subject_tokens_are_safe() {
        assert_eq!(super::token("my.inst *>x"), "my_inst___x");
        assert_eq!(super::token("codechat"), "codechat");
    }
}
