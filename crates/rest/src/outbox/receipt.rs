//! What comes out of an outbox: [`Outcome`], [`OutboxError`], [`Receipt`] and the counters.

use super::delivery::{Delivery, DeliveryError};
use crate::RestError;
use serde_json::Value;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use tokio::sync::{oneshot, watch};

/// How a message left.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Outcome {
    /// The server took it.
    Sent {
        /// Its WhatsApp id.
        id: String,
        /// The server's answer: the sent message.
        answer: Value,
        /// Sends made (1 unless an earlier one was refused or provably lost).
        attempts: u32,
    },
    /// An answer was lost, and the message was then found on the server: sent, once.
    Found {
        /// Its WhatsApp id.
        id: String,
        /// Sends made.
        attempts: u32,
    },
    /// Queued durably, for another process to send (a JetStream outbox).
    Queued {
        /// Its WhatsApp id.
        id: String,
    },
}

impl Outcome {
    /// The message's WhatsApp id.
    pub fn id(&self) -> &str {
        match self {
            Outcome::Sent { id, .. } | Outcome::Found { id, .. } | Outcome::Queued { id } => id,
        }
    }
}

/// Why a message was not sent (or may not have been).
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum OutboxError {
    /// The outbox holds its capacity and its policy is [`WhenFull::Fail`](super::WhenFull::Fail): nothing was queued.
    #[error("the outbox is full ({capacity} messages waiting): nothing was queued; send slower, or raise the capacity")]
    Full {
        /// The capacity.
        capacity: usize,
    },
    /// The message could not be queued (a durable queue refused it): it was not sent.
    #[error("could not queue the message, so it was not sent: {0}")]
    Unqueued(String),
    /// The outbox stopped before the message was sent: it was not sent.
    #[error("the outbox stopped before the message was sent: it was not sent")]
    Stopped,
    /// The outbox stopped while the message was in doubt (an attempt may have reached the
    /// server, and it had not been looked up yet): it may or may not have been sent.
    #[error("the outbox stopped while the message was in doubt: it may or may not have been sent; look it up before sending it again")]
    StoppedInDoubt,
    /// The id was already used by a different message: nothing was queued.
    #[error("the id {0} is already used by another message: nothing was queued")]
    IdTaken(String),
    /// The server refused the message (a 4xx other than 429): it was not sent, and sending it
    /// again would be refused again.
    #[error("refused: {0}")]
    Refused(RestError),
    /// Every attempt failed in a way that proves nothing was sent, and the retries ran out.
    #[error("not sent after {attempts} attempts; the last error: {last}")]
    GaveUp {
        /// Attempts made (sends and lookups).
        attempts: u32,
        /// The last failure.
        last: RestError,
    },
    /// An attempt may have reached the server, and the outbox could not find out whether it
    /// did (the server keeps no sent messages, or the lookups failed): it was not tried again,
    /// so that it is never sent twice. Check the chat.
    #[error("may or may not have been sent ({last}), and the server could not say: not tried again, so that it is never sent twice")]
    InDoubt {
        /// The failure that left it in doubt.
        last: RestError,
    },
}

/// An [`Outbox`](super::Outbox)'s counters, from [`Outbox::stats`](super::Outbox::stats).
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct OutboxStats {
    /// Messages waiting or in flight now.
    pub queued: u64,
    /// Messages sent (found on the server after a lost answer included).
    pub sent: u64,
    /// Of those, messages found on the server after an answer was lost.
    pub found: u64,
    /// Attempts after the first: sends again and lookups.
    pub retried: u64,
    /// Messages that failed ([`OutboxError`]), in doubt included.
    pub failed: u64,
    /// Messages that failed in doubt ([`OutboxError::InDoubt`]).
    pub in_doubt: u64,
    /// Sends that may or may not have arrived (a 5xx, a timeout, a lost connection), each
    /// then looked up.
    pub doubts: u64,
    /// How long each message sent took, from posted to sent (pacing included).
    pub send_latency: eventsock_core::HistogramSnapshot,
    /// What the delivery receipts of its messages said.
    pub delivery: super::DeliveryStats,
}

#[derive(Debug)]
pub(super) struct Counters {
    pub(super) queued: AtomicU64,
    pub(super) sent: AtomicU64,
    pub(super) found: AtomicU64,
    pub(super) retried: AtomicU64,
    pub(super) failed: AtomicU64,
    pub(super) in_doubt: AtomicU64,
    pub(super) doubts: AtomicU64,
    pub(super) send_latency: eventsock_core::Histogram,
    pub(super) deliveries: super::delivery::Deliveries,
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            queued: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            found: AtomicU64::new(0),
            retried: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            in_doubt: AtomicU64::new(0),
            doubts: AtomicU64::new(0),
            send_latency: eventsock_core::Histogram::new(eventsock_core::histogram::SHORT),
            deliveries: Default::default(),
        }
    }
}

pub(super) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

pub(super) type Answer = oneshot::Sender<Result<Outcome, OutboxError>>;

/// A message given to [`Outbox::post`](super::Outbox::post): await it for the [`Outcome`] of
/// the send, or follow it further to delivered and read ([`Receipt::delivered`],
/// [`Receipt::read`]), or drop it (the message is sent all the same).
///
/// ```no_run
/// # async fn f(outbox: eventsock_rest::Outbox, m: eventsock_rest::Outgoing) -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// let mut receipt = outbox.post(m).await?;
/// receipt.sent().await?;
/// receipt.read(Duration::from_secs(3600)).await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Receipt {
    pub(super) id: String,
    pub(super) answer: Option<oneshot::Receiver<Result<Outcome, OutboxError>>>,
    /// The outcome, once [`Receipt::sent`] has it.
    pub(super) outcome: Option<Result<Outcome, OutboxError>>,
    /// The message's delivery status, when this process follows it.
    pub(super) status: Option<watch::Receiver<Option<Delivery>>>,
}

impl Receipt {
    /// The message's WhatsApp id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// A receipt that is already settled, and not followed further.
    pub fn settled(id: String, outcome: Result<Outcome, OutboxError>) -> Receipt {
        Receipt {
            id,
            answer: None,
            outcome: Some(outcome),
            status: None,
        }
    }

    /// Waits until the message is sent (or has failed): the same as awaiting the receipt,
    /// without using it up.
    pub async fn sent(&mut self) -> Result<Outcome, OutboxError> {
        (&mut *self).await
    }

    /// What the last delivery receipt said, if one came (and this process follows the
    /// message).
    pub fn status(&self) -> Option<Delivery> {
        *self.status.as_ref()?.borrow()
    }

    /// Waits until the message is sent, then until WhatsApp reports it got to `wanted` (or
    /// further), for at most `timeout` after it was sent. Fails at once when WhatsApp reports
    /// it could not deliver it ([`DeliveryError::Failed`]). The receipts come on the
    /// instance's `messages.update`, which the router subscribes to for them. Waiting in a
    /// handler holds up the events after it: follow a receipt in a task of its own
    /// (`actix_rt::spawn`).
    pub async fn delivery(
        &mut self,
        wanted: Delivery,
        timeout: std::time::Duration,
    ) -> Result<Delivery, DeliveryError> {
        self.sent().await?;
        let Some(status) = self.status.as_mut() else {
            return Err(DeliveryError::Unfollowed);
        };
        super::delivery::wait_for(status, wanted, timeout).await
    }

    /// Waits until the message is on the recipient's phone (`DELIVERY_ACK` or later).
    pub async fn delivered(
        &mut self,
        timeout: std::time::Duration,
    ) -> Result<Delivery, DeliveryError> {
        self.delivery(Delivery::Delivered, timeout).await
    }

    /// Waits until the recipient read the message (`READ` or `PLAYED`): it comes only from
    /// people who share read receipts.
    pub async fn read(&mut self, timeout: std::time::Duration) -> Result<Delivery, DeliveryError> {
        self.delivery(Delivery::Read, timeout).await
    }
}

impl Future for Receipt {
    type Output = Result<Outcome, OutboxError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Some(outcome) = &self.outcome {
            return Poll::Ready(outcome.clone());
        }
        let Some(answer) = self.answer.as_mut() else {
            return Poll::Ready(Err(OutboxError::Stopped));
        };
        match Pin::new(answer).poll(cx) {
            Poll::Ready(outcome) => {
                // Kept, for `sent` and the waits for delivery after an `(&mut receipt).await`.
                let outcome = outcome.unwrap_or(Err(OutboxError::Stopped));
                self.answer = None;
                self.outcome = Some(outcome.clone());
                Poll::Ready(outcome)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Awaited by reference, then asked again: the outcome is kept, for `sent` and for the
    /// waits for delivery, which do not see a stopped outbox.
    #[tokio::test]
    async fn the_outcome_is_kept_once_known() {
        let (tx, rx) = oneshot::channel();
        let mut receipt = Receipt {
            id: "A".into(),
            answer: Some(rx),
            outcome: None,
            status: None,
        };
        let queued = Outcome::Queued { id: "A".into() };
        tx.send(Ok(queued.clone())).unwrap();
        assert_eq!((&mut receipt).await.unwrap(), queued);
        assert_eq!(receipt.sent().await.unwrap(), queued);
        let delivery = receipt.delivered(std::time::Duration::from_millis(1)).await;
        assert!(
            matches!(delivery, Err(DeliveryError::Unfollowed)),
            "{delivery:?}"
        );
        assert_eq!(receipt.await.unwrap(), queued);
    }
}
