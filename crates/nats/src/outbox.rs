//! An outbox that holds across processes: workers queue messages in a JetStream work-queue
//! stream ([`JetStreamOutbox`], a [`Postbox`]), and one [`OutboxSender`] drains it through an
//! [`Outbox`], which paces every message of the instance. Nothing queued is lost when any of
//! them restarts.
//!
//! Exactly once: a message is acknowledged in the stream only once it was sent (or failed for
//! good, and then moved to the dead-letter subject). A sender that dies leaves its messages
//! unacknowledged; they come back to the next sender after `ack_wait`, and each is first looked
//! up on the server by its own WhatsApp id ([`Outbox::post_unsure`]): sent only if the server
//! does not have it. Per-chat order is the stream's order, which the sender keeps (one
//! consumer, and the outbox's per-chat queues).

use crate::{token, NatsError};
use async_nats::jetstream::consumer::{pull, AckPolicy};
use async_nats::jetstream::{self, AckKind};
use eventsock_rest::{Outbox, OutboxError, Outcome, Outgoing, Postbox, Receipt};
use futures_util::stream::{FuturesUnordered, StreamExt};
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// Where the JetStream outbox lives.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct OutboxConfig {
    /// The work-queue stream (`EVENTSOCK_OUTBOX`); failed messages go to `<stream>_DEAD`.
    pub stream: String,
    /// Subject prefix (`eventsock-outbox`): messages go to `<prefix>.<instance>`, failed ones
    /// to `<prefix>-dead.<instance>`.
    pub prefix: String,
    /// The sender's durable consumer: `<durable>-<instance>` (`eventsock-sender`), one per
    /// instance.
    pub durable: String,
    /// How long a message taken by a sender that stops answering stays with it before it is
    /// given to the next (30 s). A live sender keeps the messages it holds with progress
    /// acknowledgements.
    pub ack_wait: Duration,
    /// How many messages a sender holds at once, unacknowledged (256).
    pub window: i64,
    /// How long JetStream drops a message queued again with the same id (10 minutes).
    pub duplicate_window: Duration,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        OutboxConfig {
            stream: "EVENTSOCK_OUTBOX".into(),
            prefix: "eventsock-outbox".into(),
            durable: "eventsock-sender".into(),
            ack_wait: Duration::from_secs(30),
            window: 256,
            duplicate_window: Duration::from_secs(600),
        }
    }
}

impl OutboxConfig {
    /// With `ack_wait`.
    pub fn ack_wait(mut self, ack_wait: Duration) -> Self {
        self.ack_wait = ack_wait;
        self
    }
}

async fn ensure_outbox_streams(
    js: &jetstream::Context,
    cfg: &OutboxConfig,
) -> Result<(), NatsError> {
    use jetstream::stream;
    js.get_or_create_stream(stream::Config {
        name: cfg.stream.clone(),
        subjects: vec![format!("{}.>", cfg.prefix)],
        retention: stream::RetentionPolicy::WorkQueue,
        duplicate_window: cfg.duplicate_window,
        storage: stream::StorageType::File,
        ..Default::default()
    })
    .await
    .map_err(|e| NatsError::JetStream(e.to_string()))?;
    crate::dead_letters(js, &cfg.stream, &cfg.prefix).await?;
    js.get_or_create_stream(stream::Config {
        name: format!("{}_UNSENT", cfg.stream),
        subjects: vec![format!("{}-unsent.>", cfg.prefix)],
        max_age: Duration::from_secs(24 * 3600),
        storage: stream::StorageType::File,
        ..Default::default()
    })
    .await
    .map_err(|e| NatsError::JetStream(e.to_string()))?;
    Ok(())
}

/// Where a stopping sender marks a message it gives back provably unsent, so that the next
/// sender sends it without a lookup (which cannot tell on a server that keeps nothing).
fn unsent_subject(prefix: &str, instance: &str, id: &str) -> String {
    format!("{prefix}-unsent.{}.{}", token(instance), token(id))
}

/// The queueing side: messages go into the stream, for the sender to send. A [`Postbox`], so
/// a worker's handlers send through it (`Worker::postbox`). Cheap to clone.
#[derive(Clone)]
pub struct JetStreamOutbox {
    js: jetstream::Context,
    prefix: String,
}

impl std::fmt::Debug for JetStreamOutbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JetStreamOutbox")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl JetStreamOutbox {
    /// Connects to NATS at `url` (retrying while it is down) and creates the streams when
    /// missing.
    pub async fn connect(url: &str, cfg: OutboxConfig) -> Result<JetStreamOutbox, NatsError> {
        let js = jetstream::new(crate::connect(url).await?);
        ensure_outbox_streams(&js, &cfg).await?;
        Ok(JetStreamOutbox {
            js,
            prefix: cfg.prefix,
        })
    }

    /// Queues `message`, to be sent from `instance`'s number; returns once JetStream has
    /// stored it (its sequence in the stream). The same id queued again within the duplicate
    /// window is stored once.
    pub async fn enqueue(&self, instance: &str, message: &Outgoing) -> Result<u64, NatsError> {
        let subject = format!("{}.{}", self.prefix, token(instance));
        let payload =
            serde_json::to_vec(message).map_err(|e| NatsError::JetStream(e.to_string()))?;
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(async_nats::header::NATS_MESSAGE_ID, message.id.as_str());
        let ack = self
            .js
            .publish_with_headers(subject, headers, payload.into())
            .await
            .map_err(|e| NatsError::JetStream(e.to_string()))?
            .await
            .map_err(|e| NatsError::JetStream(e.to_string()))?;
        Ok(ack.sequence)
    }
}

impl Postbox for JetStreamOutbox {
    fn post<'a>(
        &'a self,
        instance: &'a str,
        message: Outgoing,
    ) -> Pin<Box<dyn Future<Output = Result<Receipt, OutboxError>> + 'a>> {
        Box::pin(async move {
            if message.to.trim().is_empty() {
                return Err(OutboxError::Refused(eventsock_rest::RestError::NoRecipient));
            }
            match self.enqueue(instance, &message).await {
                Ok(_) => Ok(Receipt::settled(
                    message.id.clone(),
                    Ok(Outcome::Queued { id: message.id }),
                )),
                Err(e) => Err(OutboxError::Unqueued(e.to_string())),
            }
        })
    }
}

/// What an [`OutboxSender`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SenderStats {
    /// Messages sent.
    pub sent: u64,
    /// Messages found on the server already (sent by a sender that stopped before
    /// acknowledging them, or whose answer was lost): not sent again.
    pub found: u64,
    /// Messages given to this sender again after another held them.
    pub redelivered: u64,
    /// Messages moved to the dead-letter subject: refused, in doubt, or not a message.
    pub dead: u64,
    /// Messages left in the stream at shutdown, for the next sender.
    pub left: u64,
}

/// The one process that sends what the workers queued: drains the stream through an
/// [`Outbox`], which paces. Run one per instance (a second would pace on its own).
#[derive(Debug)]
pub struct OutboxSender {
    url: String,
    cfg: OutboxConfig,
    outbox: Outbox,
    /// The events' subject prefix, when the sender follows the delivery receipts there.
    receipts: Option<String>,
}

type Settling = Pin<Box<dyn Future<Output = (u64, Result<Outcome, OutboxError>)>>>;

impl OutboxSender {
    /// A sender draining the messages of `outbox`'s instance from NATS at `url`.
    pub fn new(url: impl Into<String>, outbox: Outbox, cfg: OutboxConfig) -> OutboxSender {
        OutboxSender {
            url: url.into(),
            cfg,
            outbox,
            receipts: None,
        }
    }

    /// Follows the delivery receipts of what it sends: the instance's `messages.update` events
    /// that an [`Ingest`](crate::Ingest) publishes under `events_prefix` (its
    /// [`StreamConfig::prefix`](crate::StreamConfig), `eventsock`; partitioned or not), read as
    /// they are published (no consumer, nothing acknowledged). They move the outbox's
    /// [`Delivery`](eventsock_rest::Delivery) of each message on: its stats, its metrics, and
    /// the log line of a message WhatsApp failed to deliver. The bridge must subscribe to
    /// `messages.update` for them (`eventsock bridge --event messages.update`, with the
    /// events the workers take).
    pub fn receipts_from(mut self, events_prefix: impl Into<String>) -> Self {
        self.receipts = Some(events_prefix.into());
        self
    }

    /// Sends until `shutdown` completes; then stops taking messages, lets the sends in flight
    /// finish (for at most 10 s), and leaves every message not sent in the stream for the
    /// next sender. `on_outcome` is told how each message went.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()>,
        mut on_outcome: impl FnMut(&Outgoing, &Result<Outcome, OutboxError>),
    ) -> Result<SenderStats, NatsError> {
        tokio::pin!(shutdown);
        let jserr = |e: &dyn std::fmt::Display| NatsError::JetStream(e.to_string());
        let instance = self.outbox.instance().to_owned();
        let durable = format!("{}-{}", self.cfg.durable, token(&instance));
        let setup = async {
            let js = jetstream::new(crate::connect(&self.url).await?);
            ensure_outbox_streams(&js, &self.cfg).await?;
            let stream = js
                .get_stream(&self.cfg.stream)
                .await
                .map_err(|e| jserr(&e))?;
            let config = pull::Config {
                durable_name: Some(durable.clone()),
                ack_policy: AckPolicy::Explicit,
                ack_wait: self.cfg.ack_wait,
                max_ack_pending: self.cfg.window,
                filter_subject: format!("{}.{}", self.cfg.prefix, token(&instance)),
                ..Default::default()
            };
            // Created, or brought to these settings (an existing consumer is otherwise taken
            // as it is).
            let mut consumer: jetstream::consumer::PullConsumer = stream
                .get_or_create_consumer(&durable, config.clone())
                .await
                .map_err(|e| jserr(&e))?;
            let current = consumer.cached_info().config.clone();
            if current.ack_wait != config.ack_wait
                || current.max_ack_pending != config.max_ack_pending
            {
                consumer = stream
                    .create_consumer(config)
                    .await
                    .map_err(|e| jserr(&e))?;
            }
            let held = consumer
                .info()
                .await
                .map(|i| i.num_ack_pending)
                .unwrap_or(0);
            Ok::<_, NatsError>((js, consumer, held))
        };
        let (js, consumer, held_elsewhere) = tokio::select! {
            ready = setup => ready?,
            _ = &mut shutdown => return Ok(SenderStats::default()),
        };
        let mut receipts = match &self.receipts {
            Some(prefix) => receipt_subscriptions(&js, prefix, &instance).await?,
            None => futures_util::stream::SelectAll::new(),
        };
        // This sender does not know when the last one sent to each chat: it waits one per-chat
        // interval first. And a sender that stopped without a word may still hold messages:
        // they come back after `ack_wait`, before any newer message, so each chat keeps its
        // order (the dead sender acknowledged their progress in stream order, so they expire,
        // and come back, in it).
        let mut wait = self.outbox.pacing().per_chat_interval();
        if held_elsewhere > 0 {
            wait = wait.max(self.cfg.ack_wait);
            tracing::info!(
                "{held_elsewhere} messages are held by a sender that stopped: waiting {} for them, to keep each chat in order",
                eventsock_core::human::duration(wait)
            );
        }
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = &mut shutdown => return Ok(SenderStats::default()),
        }
        let unsent_stream = js
            .get_stream(format!("{}_UNSENT", self.cfg.stream))
            .await
            .map_err(|e| jserr(&e))?;
        let mut messages = tokio::select! {
            m = consumer.messages() => m.map_err(|e| jserr(&e))?,
            _ = &mut shutdown => return Ok(SenderStats::default()),
        };
        tracing::info!(
            instance = %eventsock_core::human::escaped(&instance),
            "sending the queued messages from NATS at {}",
            crate::shown(&self.url)
        );
        let mut stats = SenderStats::default();
        // Messages taken and not yet acknowledged, by stream sequence.
        // Kept in stream order, and their progress acks sent in it: the server redelivers what a
        // sender that died held in the order their acknowledgements expire, so acks in stream
        // order keep each chat's order for the next sender.
        let mut held: BTreeMap<u64, (jetstream::Message, Outgoing)> = BTreeMap::new();
        let mut settling: FuturesUnordered<Settling> = FuturesUnordered::new();
        let mut progress =
            tokio::time::interval((self.cfg.ack_wait / 3).max(Duration::from_millis(100)));
        let dead_subject = format!("{}-dead.{}", self.cfg.prefix, token(&instance));
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                _ = progress.tick() => {
                    for (message, _) in held.values() {
                        if let Err(e) = message.ack_with(AckKind::Progress).await {
                            tracing::debug!(error = %e, "progress acknowledgement not sent");
                        }
                    }
                }
                Some(update) = receipts.next(), if !receipts.is_empty() => {
                    follow_receipt(&self.outbox, &update.payload);
                }
                Some((seq, outcome)) = settling.next(), if !settling.is_empty() => {
                    if let Some((message, outgoing)) = held.remove(&seq) {
                        if matches!(outcome, Err(OutboxError::Stopped | OutboxError::StoppedInDoubt)) && !self.outbox.is_running() {
                            // The outbox is gone (its runtime stopped): nothing more can be sent.
                            let _ = message.ack_with(AckKind::Nak(None)).await;
                            return Err(NatsError::JetStream("the outbox stopped while the sender ran; the messages it held stay in the stream".into()));
                        }
                        on_outcome(&outgoing, &outcome);
                        settle(&js, &dead_subject, message, &outcome, &mut stats).await;
                    }
                }
                next = messages.next() => {
                    let message = match next {
                        None => break,
                        Some(Err(e)) => {
                            tracing::warn!(error = %e, "fetching from the outbox stream failed; going on");
                            continue;
                        }
                        Some(Ok(m)) => m,
                    };
                    let (seq, delivered) = message
                        .info()
                        .map(|i| (i.stream_sequence, i.delivered))
                        .unwrap_or((0, 1));
                    let outgoing: Outgoing = match serde_json::from_slice(&message.payload) {
                        Ok(o) => o,
                        Err(e) => {
                            let outcome = Err(OutboxError::Unqueued(format!("not an outbox message: {e}")));
                            settle(&js, &dead_subject, message, &outcome, &mut stats).await;
                            continue;
                        }
                    };
                    if held.contains_key(&seq) {
                        // Given again while still here (the sender was too slow to say it
                        // holds it): the outbox already has it.
                        continue;
                    }
                    let receipt = if delivered > 1 {
                        stats.redelivered += 1;
                        // Given back unsent by a sender that stopped cleanly: the mark is taken
                        // away first (a crash after this must not find it again).
                        let mark = unsent_subject(&self.cfg.prefix, &instance, &outgoing.id);
                        let marked = unsent_stream.get_last_raw_message_by_subject(&mark).await.is_ok()
                            && unsent_stream.purge().filter(mark.as_str()).await.is_ok();
                        if marked {
                            self.outbox.post(outgoing.clone()).await
                        } else {
                            self.outbox.post_unsure(outgoing.clone()).await
                        }
                    } else {
                        self.outbox.post(outgoing.clone()).await
                    };
                    held.insert(seq, (message, outgoing));
                    settling.push(Box::pin(async move {
                        match receipt {
                            Ok(r) => (seq, r.await),
                            Err(e) => (seq, Err(e)),
                        }
                    }));
                }
            }
        }
        // Stop: what is queued here stays in the stream; the sends in flight finish.
        self.outbox.stop().await;
        let drained = async {
            while let Some((seq, outcome)) = settling.next().await {
                if let Some((message, outgoing)) = held.remove(&seq) {
                    if matches!(outcome, Err(OutboxError::Stopped)) {
                        // Provably unsent: marked so, for the next sender.
                        let mark = unsent_subject(&self.cfg.prefix, &instance, &outgoing.id);
                        if let Ok(ack) = js.publish(mark, outgoing.id.clone().into()).await {
                            let _ = ack.await;
                        }
                    }
                    if matches!(
                        outcome,
                        Err(OutboxError::Stopped | OutboxError::StoppedInDoubt)
                    ) {
                        // Left for the next sender (which looks it up first unless it is
                        // marked unsent).
                        stats.left += 1;
                        let _ = message.ack_with(AckKind::Nak(None)).await;
                        continue;
                    }
                    on_outcome(&outgoing, &outcome);
                    settle(&js, &dead_subject, message, &outcome, &mut stats).await;
                }
            }
        };
        if tokio::time::timeout(Duration::from_secs(10), drained)
            .await
            .is_err()
        {
            tracing::warn!("sends still in flight after 10 s: left for the next sender, which looks them up before sending");
        }
        stats.left += held.len() as u64;
        Ok(stats)
    }
}

/// Subscriptions to the `messages.update` events of `instance` under `prefix`, wherever an
/// ingest publishes them: `<prefix>.<instance>.messages.update`, and with partitions
/// `<prefix>.<instance>.<chat>.messages.update` (or, mapped, `<prefix>.<k>.<instance>...`).
async fn receipt_subscriptions(
    js: &jetstream::Context,
    prefix: &str,
    instance: &str,
) -> Result<futures_util::stream::SelectAll<async_nats::Subscriber>, NatsError> {
    let client = js.client();
    let (p, i) = (prefix, token(instance));
    let mut all = futures_util::stream::SelectAll::new();
    for subject in [
        format!("{p}.{i}.messages.update"),
        format!("{p}.{i}.*.messages.update"),
        format!("{p}.*.{i}.*.messages.update"),
    ] {
        let sub = client
            .subscribe(subject)
            .await
            .map_err(|e| NatsError::JetStream(e.to_string()))?;
        all.push(sub);
    }
    Ok(all)
}

/// Hands a recorded `messages.update` (an ingest's record) to `outbox` as a delivery receipt.
fn follow_receipt(outbox: &Outbox, record: &[u8]) {
    #[derive(serde::Deserialize)]
    struct Record<'a> {
        #[serde(borrow)]
        data: &'a serde_json::value::RawValue,
    }
    let Ok(record) = serde_json::from_slice::<Record<'_>>(record) else {
        return;
    };
    if let Some((id, status)) = eventsock_rest::Delivery::of_update(record.data.get()) {
        outbox.delivery_update(&id, status);
    }
}

/// Acknowledges a message whose outcome is known: sent or found, done; failed for good, moved
/// to the dead-letter subject (or, when that fails, left for a redelivery, which looks it up
/// before sending).
async fn settle(
    js: &jetstream::Context,
    dead_subject: &str,
    message: jetstream::Message,
    outcome: &Result<Outcome, OutboxError>,
    stats: &mut SenderStats,
) {
    let acked = match outcome {
        Ok(Outcome::Found { .. }) => {
            stats.found += 1;
            message.ack().await
        }
        Ok(_) => {
            stats.sent += 1;
            message.ack().await
        }
        Err(OutboxError::Stopped | OutboxError::StoppedInDoubt) => {
            message.ack_with(AckKind::Nak(None)).await
        }
        Err(error) => {
            stats.dead += 1;
            let error = format!("a queued message failed: {error}");
            crate::move_to_dead_letters(js, &message, dead_subject.to_owned(), &error).await
        }
    };
    if let Err(e) = acked {
        tracing::warn!(error = %e, "acknowledgement not sent: the message will come back, and be looked up before any send");
    }
}
