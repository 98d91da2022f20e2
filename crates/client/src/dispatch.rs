//! The dispatcher: one task per subscription that takes its frames off the queue, in order,
//! hands each to the [`Router`] (which reads, decodes and delivers it) and counts the outcome.
//!
//! Each subscription has one dispatcher task, fed by its connections (one after another, across
//! reconnects) through a bounded queue. It waits until every handler has handled an event before
//! it takes the next one (with `Delivery::Pipelined`, actors confirm only the last frame queued):
//! that is what keeps order within a subscription, and what makes a slow handler push back on
//! the socket.

use crate::queue::{Body, Inbound};
use crate::status::Counters;
use eventsock_core::{Channel, EventMeta, EventName, Frame, FrameProblem, Origin};
use eventsock_handler::Router;
use std::sync::Arc;
use tokio::sync::mpsc;

/// What a dispatcher needs to deliver one subscription's frames.
pub(crate) struct Dispatcher {
    pub(crate) event: EventName,
    /// The endpoint: legacy frames are bare by protocol, so they are read only by their decodes.
    pub(crate) channel: Channel,
    /// [`Delivery::Pipelined`](crate::Delivery): wait for handlers only on the last frame queued.
    pub(crate) pipelined: bool,
    pub(crate) instance: Arc<str>,
    pub(crate) router: Router,
    pub(crate) counters: Arc<Counters>,
}

impl Dispatcher {
    /// Delivers every frame from `queue`, in order, until every sender is gone and the queue is
    /// empty: frames already read are always handled, also at shutdown.
    pub(crate) async fn run(self, mut queue: mpsc::Receiver<Inbound>) {
        while let Some(item) = queue.recv().await {
            // Pipelined: wait for the handlers only when this is the last frame there is (see
            // `Handlers::send`); under load, frames go straight into the handlers' mailboxes.
            let wait = !self.pipelined || queue.is_empty();
            self.deliver(item, wait).await;
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

    async fn deliver(&self, item: Inbound, wait: bool) {
        let text = match &item.body {
            Body::Text(t) => t.clone(),
            Body::Binary(len) => {
                let meta = self.meta(None, &item);
                return self.report(meta, FrameProblem::Binary { len: *len }).await;
            }
        };
        let dispatch = self.router.dispatch(
            &self.event,
            Some(self.channel),
            &text,
            &|frame| self.meta(frame, &item),
            wait,
        );
        if dispatch.duplicate {
            tracing::debug!(
                seq = dispatch.meta.seq,
                "a message already delivered (recovered over REST); skipped"
            );
            return;
        }
        if !dispatch.problems.is_empty() {
            Counters::bump(&self.counters.decode_errors);
        }
        for problem in &dispatch.problems {
            tracing::warn!(seq = dispatch.meta.seq, generation = dispatch.meta.generation, error = %problem, "frame not delivered");
        }
        let seq = dispatch.meta.seq;
        let tally = dispatch.settle(&self.router).await;
        if !tally.delivered() {
            if tally.problems == 0 {
                Counters::bump(&self.counters.unhandled);
                tracing::debug!(seq, "no live handler took the event");
            }
            return;
        }
        if tally.handled > 0 {
            Counters::bump(&self.counters.events);
        }
        let failed = tally.failed + tally.gone;
        if failed > 0 {
            self.counters
                .handler_failures
                .fetch_add(failed as u64, std::sync::atomic::Ordering::Relaxed);
        }
        for error in &tally.errors {
            tracing::warn!(seq, %error, "a handler failed on this event");
        }
        if tally.gone > 0 {
            let left = self.router.prune();
            tracing::warn!(
                failed = tally.gone,
                handlers_left = left,
                "a handler actor stopped or panicked; the event did not reach it, and it was removed"
            );
        }
    }

    async fn report(&self, meta: EventMeta, problem: FrameProblem) {
        Counters::bump(&self.counters.decode_errors);
        tracing::warn!(seq = meta.seq, generation = meta.generation, error = %problem, "frame not delivered");
        self.router.report(&meta, &problem).await;
    }
}
