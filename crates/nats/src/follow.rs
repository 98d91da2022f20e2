//! [`follow`]: watching a bridged stream without taking it, as `eventsock tail --nats` does.

use crate::{NatsError, StreamConfig};
use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy};
use eventsock_core::{EventName, Recorded};
use futures_util::StreamExt;
use std::future::Future;
use std::time::Duration;

/// Hands every event the bridge ingests from now on (those of `events`, or all when empty) to
/// `on`, until `shutdown` completes; returns how many. An ephemeral consumer of the bridge's
/// JetStream stream reads them: nothing connects to the CodeChat server, so the bridge keeps
/// its stream, and nothing is acknowledged, so the workers are not affected. A message that is
/// not a record is skipped, and said so.
pub async fn follow(
    url: &str,
    cfg: &StreamConfig,
    events: &[EventName],
    mut on: impl FnMut(Recorded),
    shutdown: impl Future<Output = ()>,
) -> Result<u64, NatsError> {
    tokio::pin!(shutdown);
    let jserr = |e: &dyn std::fmt::Display| NatsError::JetStream(e.to_string());
    let setup = async {
        let js = async_nats::jetstream::new(crate::connect(url).await?);
        let stream = js.get_stream(&cfg.stream).await.map_err(|e| {
            NatsError::Setting(format!(
                "NATS at {} has no stream {} ({e}): is `eventsock bridge` running there, with this --stream?",
                crate::shown(url),
                cfg.stream
            ))
        })?;
        let prefix = &cfg.prefix;
        let filter_subjects = events
            .iter()
            .map(|e| match cfg.partitions {
                0 => format!("{prefix}.*.{e}"),
                _ => format!("{prefix}.*.*.*.{e}"),
            })
            .collect();
        let consumer = stream
            .create_consumer(pull::Config {
                deliver_policy: DeliverPolicy::New,
                ack_policy: AckPolicy::None,
                filter_subjects,
                inactive_threshold: Duration::from_secs(60),
                ..Default::default()
            })
            .await
            .map_err(|e| jserr(&e))?;
        consumer.messages().await.map_err(|e| jserr(&e))
    };
    let mut messages = tokio::select! {
        messages = setup => messages?,
        _ = &mut shutdown => return Ok(0),
    };
    let mut followed = 0;
    loop {
        let message = tokio::select! {
            _ = &mut shutdown => break,
            message = messages.next() => message,
        };
        match message {
            None => return Err(NatsError::JetStream("the consumer ended".into())),
            Some(Err(e)) => tracing::warn!(error = %e, "reading the stream failed; going on"),
            Some(Ok(m)) => match serde_json::from_slice::<Recorded>(&m.payload) {
                Ok(record) => {
                    followed += 1;
                    on(record);
                }
                Err(e) => tracing::warn!(
                    subject = %eventsock_core::human::escaped(m.subject.as_str()),
                    "a message of the stream is not an event record ({e}): skipped"
                ),
            },
        }
    }
    Ok(followed)
}
