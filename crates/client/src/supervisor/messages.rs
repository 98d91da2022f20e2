//! The messages a running supervisor answers: [`GetStatus`], [`Subscribe`], [`GetDispatcher`]
//! and [`Shutdown`].

use super::*;

/// Asks for every subscription's status.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Vec<SubscriptionStatus>")]
pub struct GetStatus;

impl Handler<GetStatus> for Supervisor {
    type Result = MessageResult<GetStatus>;

    fn handle(&mut self, _: GetStatus, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.status())
    }
}

impl Supervisor {
    fn status(&self) -> Vec<SubscriptionStatus> {
        self.subs
            .iter()
            .map(|s| SubscriptionStatus {
                endpoint: s.source.endpoint().to_string(),
                instance: Arc::from(s.source.instance()),
                event: s.event.clone(),
                state: s.state,
                attempts: s.tries.attempts,
                generation: s.generation,
                restarts: s.tries.restarts,
                last_error: s.last_error.clone(),
                frames: Counters::get(&s.counters.frames),
                events: Counters::get(&s.counters.events),
                decode_errors: Counters::get(&s.counters.decode_errors),
                dropped: Counters::get(&s.counters.dropped),
                unhandled: Counters::get(&s.counters.unhandled),
                handler_failures: Counters::get(&s.counters.handler_failures),
                queued_bytes: s.queue.as_ref().map_or(0, Queue::bytes_held),
                displacements: Counters::get(&s.counters.displacements),
            })
            .collect()
    }
}

/// Adds the handlers of a router while running (after the supervisor's own, which keep their
/// names); opens the subscriptions they need that are not open yet, and shares those that are.
/// A router whose handlers cannot be served is refused, and changes nothing.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), ClientError>")]
pub struct Subscribe(pub Router);

impl Handler<Subscribe> for Supervisor {
    type Result = Result<(), ClientError>;

    fn handle(&mut self, msg: Subscribe, ctx: &mut Context<Self>) -> Self::Result {
        if self.shutting_down {
            return Err(ClientError::Stopped);
        }
        let plan = self.plan(&msg.0)?;
        self.dispatcher.send_modify(|d| {
            let router = d.router().to_builder().include(&msg.0).build();
            *d = d.with_router(router);
        });
        for i in self.commit(plan) {
            self.open(i, ctx);
        }
        Ok(())
    }
}

/// How long [`Shutdown`] waits for the outboxes to send what the handlers queued, in all.
pub const DRAIN: Duration = Duration::from_secs(10);

/// The router at work and what this supervisor runs it with: its handlers' counters and the
/// outboxes made so far (for metrics).
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Dispatcher")]
pub struct GetDispatcher;

impl Handler<GetDispatcher> for Supervisor {
    type Result = MessageResult<GetDispatcher>;

    fn handle(&mut self, _: GetDispatcher, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.dispatcher.borrow().clone())
    }
}

/// Closes every connection with 1000, lets handlers finish the frames already read, gives the
/// outboxes up to [`DRAIN`] to send what the handlers queued (what is left then is not sent,
/// and a warning says how many), then stops the supervisor. The reply, every subscription's final status, comes when all of that is done.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Vec<SubscriptionStatus>")]
pub struct Shutdown;

impl Handler<Shutdown> for Supervisor {
    type Result = ResponseActFuture<Self, Vec<SubscriptionStatus>>;

    fn handle(&mut self, _: Shutdown, _: &mut Context<Self>) -> Self::Result {
        tracing::info!("shutting down");
        let drained = self.begin_shutdown();
        let recovery = self.recovery.clone();
        let dispatcher = self.dispatcher.borrow().clone();
        Box::pin(
            async move {
                futures_util::future::join_all(drained).await;
                // Everything read is handled: the checkpoint says so, and is stored.
                if let Some(r) = recovery {
                    r.save();
                    if let Some(store) = &r.settings.store {
                        store.flush().await;
                    }
                }
                // What the handlers queued is sent, within a bound.
                dispatcher.drain(DRAIN).await;
            }
            .into_actor(self)
            .map(|_, act, ctx| {
                ctx.stop();
                act.status()
            }),
        )
    }
}
