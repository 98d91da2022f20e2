//! A subscription's feed: one task per subscription that takes its frames off the queue, in
//! order, hands each to the supervisor's [`Dispatcher`] (which reads, decodes and delivers it,
//! and logs what went wrong) and counts the outcome.
//!
//! Each subscription has one feed, fed by its connections (one after another, across
//! reconnects) through a bounded queue. It waits until every handler has handled an event before
//! it takes the next one (with `Delivery::Pipelined`, actors confirm only the last frame queued):
//! that is what keeps order within a subscription, and what makes a slow handler push back on
//! the socket.

use crate::queue::{Body, Inbound};
use crate::status::Counters;
use eventsock_core::{Channel, EventMeta, EventName, Frame, FrameProblem, Origin};
use eventsock_handler::Dispatcher;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::sync::{mpsc, watch};

/// What a feed needs to deliver one subscription's frames.
pub(crate) struct Feed {
    pub(crate) event: EventName,
    /// The endpoint: legacy frames are bare by protocol, so they are read only by their decodes.
    pub(crate) channel: Channel,
    /// [`Delivery::Pipelined`](crate::Delivery): wait for handlers only on the last frame queued.
    pub(crate) pipelined: bool,
    pub(crate) instance: Arc<str>,
    /// The supervisor's dispatcher; it changes only when handlers are added while running.
    pub(crate) dispatcher: watch::Receiver<Dispatcher>,
    pub(crate) counters: Arc<Counters>,
}

impl Feed {
    /// Delivers every frame from `queue`, in order, until every sender is gone and the queue is
    /// empty: frames already read are always handled, also at shutdown.
    pub(crate) async fn run(mut self, mut queue: mpsc::UnboundedReceiver<Inbound>) {
        let mut dispatcher = self.dispatcher.borrow_and_update().clone();
        while let Some(item) = queue.recv().await {
            // One atomic load per frame; a new router is taken between two frames.
            if self.dispatcher.has_changed().unwrap_or(false) {
                dispatcher = self.dispatcher.borrow_and_update().clone();
            }
            // Pipelined: wait for the handlers only when this is the last frame there is;
            // under load, frames go straight into the handlers' mailboxes.
            let wait = !self.pipelined || queue.is_empty();
            self.deliver(&dispatcher, item, wait).await;
        }
    }

    fn meta(&self, frame: Option<&Frame<'_>>, item: &Inbound) -> EventMeta {
        let info = frame.and_then(Frame::instance).map(Arc::new);
        let instance = info
            .as_ref()
            .and_then(|i| i.name.as_deref())
            .map(Arc::from)
            .unwrap_or_else(|| self.instance.clone());
        EventMeta {
            event: frame
                .and_then(Frame::event_name)
                .unwrap_or_else(|| self.event.clone()),
            instance: Some(instance),
            instance_info: info,
            server_time: frame.and_then(Frame::timestamp),
            received_at: item.received_at,
            seq: item.seq,
            generation: item.generation,
            origin: Origin::Live,
        }
    }

    async fn deliver(&self, dispatcher: &Dispatcher, item: Inbound, wait: bool) {
        let text = match &item.body {
            Body::Text(t) => t.clone(),
            Body::Binary(len) => {
                Counters::bump(&self.counters.decode_errors);
                let meta = self.meta(None, &item);
                return dispatcher
                    .report(&meta, &FrameProblem::Binary { len: *len })
                    .await;
            }
        };
        let tally = dispatcher
            .handle(
                &self.event,
                Some(self.channel),
                &text,
                &|frame| self.meta(frame, &item),
                wait,
            )
            .await;
        if !tally.problems.is_empty() {
            Counters::bump(&self.counters.decode_errors);
        }
        if tally.unrouted() {
            Counters::bump(&self.counters.unhandled);
            tracing::debug!(seq = item.seq, "no live handler took the event");
        }
        if tally.handled > 0 {
            Counters::bump(&self.counters.events);
        }
        let failed = tally.failed + tally.gone;
        if failed > 0 {
            self.counters
                .handler_failures
                .fetch_add(failed as u64, Ordering::Relaxed);
        }
    }
}
