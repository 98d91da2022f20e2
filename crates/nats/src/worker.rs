//! [`Worker`]: processes the stream with typed routes, acknowledging only what succeeded.

use crate::{ensure_streams, NatsError, StreamConfig};
use async_nats::jetstream::consumer::{pull, AckPolicy};
use async_nats::jetstream::AckKind;
use eventsock_core::{EventName, Recorded};
use eventsock_handler::{Dispatcher, Router};
use eventsock_rest::{Postbox, RestClient};
use futures_util::StreamExt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// What a worker did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkerStats {
    /// Messages handled and acknowledged.
    pub handled: u64,
    /// Of those, how many were redeliveries (handled before by a worker that failed or died).
    pub redelivered: u64,
    /// Messages whose handling failed and were given back for redelivery.
    pub failed: u64,
    /// Messages moved to the dead-letter subject after `max_deliver` deliveries.
    pub dead: u64,
    /// Messages no route takes (acknowledged, counted).
    pub unrouted: u64,
}

/// A worker on the shared durable consumer. Start as many as needed, on any machine.
pub struct Worker {
    url: String,
    cfg: StreamConfig,
    durable: String,
    events: Vec<EventName>,
    filter: Option<String>,
    partition: Option<u32>,
    ack_wait: Duration,
    max_deliver: i64,
    dispatcher: Dispatcher,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("durable", &self.durable)
            .field("events", &self.events)
            .field("dispatcher", &self.dispatcher)
            .finish_non_exhaustive()
    }
}

impl Worker {
    /// A worker of the NATS server at `url`, on the durable consumer `eventsock-workers`, for
    /// every event (see [`Worker::events`]). Redelivery after 30 s without an acknowledgement, at
    /// most 5 deliveries.
    pub fn new(url: impl Into<String>) -> Worker {
        Worker {
            url: url.into(),
            cfg: StreamConfig::default(),
            durable: "eventsock-workers".into(),
            events: Vec::new(),
            filter: None,
            partition: None,
            ack_wait: Duration::from_secs(30),
            max_deliver: 5,
            dispatcher: Dispatcher::new(Router::builder().build()),
        }
    }

    /// Where the events are.
    pub fn stream(mut self, cfg: StreamConfig) -> Self {
        self.cfg = cfg;
        self
    }

    /// The shared consumer's name: workers with the same name share the work.
    pub fn durable(mut self, name: impl Into<String>) -> Self {
        self.durable = name.into();
        self
    }

    /// Only these events (one consumer filter each is not possible on NATS 2.9, so one event
    /// per consumer: pass one, or none for all).
    pub fn events(mut self, events: impl IntoIterator<Item = EventName>) -> Self {
        self.events = events.into_iter().collect();
        self
    }

    /// Any subject filter for the consumer, for example `eventsock.codechat.>` for one instance:
    /// one consumer per instance, each with a single worker, keeps each instance (and so each
    /// chat) in order. Takes precedence over [`Worker::events`].
    pub fn filter(mut self, subject: impl Into<String>) -> Self {
        self.filter = Some(subject.into());
        self
    }

    /// Only partition `k` of a partitioned stream ([`StreamConfig::partitions`]), on a durable
    /// consumer of its own (the [`Worker::durable`] name with `-k` added). One worker per
    /// partition handles the stream in parallel with each chat's events in order: a chat's
    /// events are all in one partition, and a worker handles them one at a time.
    pub fn partition(mut self, k: u32) -> Self {
        self.partition = Some(k);
        self
    }

    /// Redeliver a message not acknowledged within this time (a dead or stuck worker).
    pub fn ack_wait(mut self, d: Duration) -> Self {
        self.ack_wait = d;
        self
    }

    /// Deliveries before a message is moved to the dead-letter subject.
    pub fn max_deliver(mut self, n: i64) -> Self {
        self.max_deliver = n.max(1);
        self
    }

    /// Handles the events through `router` (the same one a bot runs live with); a message is
    /// acknowledged only if every handler that takes it succeeds.
    pub fn router(mut self, router: Router) -> Self {
        self.dispatcher = self.dispatcher.with_router(router);
        self
    }

    /// The REST client the handlers' contexts answer through (one per instance; the one client,
    /// when there is only one, also answers events that name no instance).
    pub fn rest(mut self, client: RestClient) -> Self {
        self.dispatcher = self.dispatcher.rest(client);
        self
    }

    /// Sends every message the handlers send through `postbox` instead of this worker's own
    /// outboxes: a JetStream outbox, whose one sender paces for every worker.
    pub fn postbox(mut self, postbox: Arc<dyn Postbox>) -> Self {
        self.dispatcher = self.dispatcher.postbox(postbox);
        self
    }

    /// Processes messages until `shutdown` completes, then gives the worker's outboxes 10 s to
    /// send the replies they hold ([`Dispatcher::drain`](eventsock_handler::Dispatcher::drain)).
    /// Messages fetched but not yet acknowledged when it returns are redelivered to other
    /// workers after `ack_wait`.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<WorkerStats, NatsError> {
        tokio::pin!(shutdown);
        // Setting up waits for NATS, as long as it takes: shutdown must still work meanwhile.
        let setup = async {
            let js = async_nats::jetstream::new(crate::connect(&self.url).await?);
            ensure_streams(&js, &self.cfg).await?;
            let jserr = |e: &dyn std::fmt::Display| NatsError::JetStream(e.to_string());
            let stream = js
                .get_stream(&self.cfg.stream)
                .await
                .map_err(|e| jserr(&e))?;
            let prefix = &self.cfg.prefix;
            let partitioned = self.cfg.partitions > 0;
            let filter_subject = match (&self.filter, self.partition, self.events.as_slice()) {
                (Some(f), _, _) => f.clone(),
                (None, Some(k), [one]) => format!("{prefix}.{k}.*.*.{one}"),
                (None, Some(k), _) => format!("{prefix}.{k}.>"),
                (None, None, [one]) if partitioned => format!("{prefix}.*.*.*.{one}"),
                (None, None, [one]) => format!("{prefix}.*.{one}"),
                _ => String::new(),
            };
            let durable = match self.partition {
                Some(k) if k >= self.cfg.partitions => {
                    return Err(NatsError::Setting(format!(
                        "partition {k} asked for, but the stream has {} (StreamConfig::partitions)",
                        self.cfg.partitions
                    )))
                }
                Some(k) => format!("{}-{k}", self.durable),
                None => self.durable.clone(),
            };
            let consumer = stream
                .get_or_create_consumer(
                    &durable,
                    pull::Config {
                        durable_name: Some(durable.clone()),
                        ack_policy: AckPolicy::Explicit,
                        ack_wait: self.ack_wait,
                        max_deliver: self.max_deliver,
                        filter_subject,
                        ..Default::default()
                    },
                )
                .await
                .map_err(|e| jserr(&e))?;
            let messages = consumer.messages().await.map_err(|e| jserr(&e))?;
            tracing::info!(%durable, "consuming from NATS at {}", crate::shown(&self.url));
            Ok::<_, NatsError>((js, messages))
        };
        let (js, mut messages) = tokio::select! {
            messages = setup => messages?,
            _ = &mut shutdown => return Ok(WorkerStats::default()),
        };
        let mut stats = WorkerStats::default();
        loop {
            let message = tokio::select! {
                _ = &mut shutdown => break,
                m = messages.next() => m,
            };
            let message = match message {
                None => break,
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "fetching failed; going on");
                    continue;
                }
                Some(Ok(m)) => m,
            };
            let delivered = message.info().map(|i| i.delivered).unwrap_or(1);
            let outcome = self.handle(&message.payload).await;
            let ack = match outcome {
                Ok(taken) => {
                    stats.handled += 1;
                    stats.unrouted += u64::from(!taken);
                    stats.redelivered += u64::from(delivered > 1);
                    message.ack().await
                }
                Err(error) if delivered >= self.max_deliver => {
                    stats.dead += 1;
                    let subject = message.subject.as_str().replacen(
                        &format!("{}.", self.cfg.prefix),
                        &format!("{}-dead.", self.cfg.prefix),
                        1,
                    );
                    let error = format!("handling failed {delivered} times; the last: {error}");
                    crate::move_to_dead_letters(&js, &message, subject, &error).await
                }
                Err(error) => {
                    stats.failed += 1;
                    tracing::warn!(%error, delivered, "handling failed; the message will be redelivered");
                    message.ack_with(AckKind::Nak(None)).await
                }
            };
            if let Err(e) = ack {
                tracing::warn!(error = %e, "acknowledgement not sent; the message may be redelivered");
            }
        }
        // Replies still queued in this process's outboxes: sent, or said not to be.
        self.dispatcher.drain(Duration::from_secs(10)).await;
        Ok(stats)
    }

    /// Runs the router on one message: `Ok(taken)`, or the first error.
    async fn handle(&self, payload: &[u8]) -> Result<bool, String> {
        let record: Recorded =
            serde_json::from_slice(payload).map_err(|e| format!("not an eventsock record: {e}"))?;
        let text = record.data.to_string();
        let meta = record.meta();
        let tally = self
            .dispatcher
            .handle(&record.event, None, &text, &|_| meta.clone(), true)
            .await;
        if let Some(problem) = tally.problems.into_iter().next() {
            return Err(problem);
        }
        if let Some(error) = tally.errors.into_iter().next() {
            return Err(error);
        }
        if tally.gone > 0 {
            return Err("a handler actor has stopped".into());
        }
        Ok(tally.handled > 0)
    }
}
