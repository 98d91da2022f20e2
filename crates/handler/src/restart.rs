//! Handler actors that are started again when they stop or panic.

use crate::route::{Flow, HandlerError, Route};
use actix::{Actor, Addr, Handler, MailboxError, Message};
use std::sync::{Arc, Mutex, PoisonError};

/// A route to a handler actor made by `factory`, started again by `factory` whenever it has
/// stopped or panicked. The message it failed on is reported as [`HandlerError::Stopped`] (to the
/// bot's error handler); every message after it reaches the new actor.
///
/// `factory` runs on the bot's arbiter. To keep a panic away from the connections' thread, make
/// it start the actor elsewhere (`A::start_in_arbiter(&arbiter, ...)`).
pub fn restarting<A, M, F>(factory: F) -> Route<M>
where
    A: Actor + Handler<M>,
    A::Context: actix::dev::ToEnvelope<A, M>,
    M: Message<Result = ()> + Send + 'static,
    F: Fn() -> Addr<A> + Send + Sync + 'static,
{
    let current: Arc<Mutex<Option<Addr<A>>>> = Arc::new(Mutex::new(None));
    let factory = Arc::new(factory);
    Route::new(move |m: M| {
        let addr = {
            let mut current = current.lock().unwrap_or_else(PoisonError::into_inner);
            match current.as_ref().filter(|a| a.connected()) {
                Some(a) => a.clone(),
                None => {
                    if current.is_some() {
                        tracing::warn!("handler actor stopped; starting a new one");
                    }
                    let a = factory();
                    *current = Some(a.clone());
                    a
                }
            }
        };
        let (current, factory) = (current.clone(), factory.clone());
        async move {
            match addr.send(m).await {
                Ok(()) => Ok(Flow::Taken),
                Err(MailboxError::Closed) => {
                    // Start the new actor now, so it is there for the next message.
                    let fresh = factory();
                    *current.lock().unwrap_or_else(PoisonError::into_inner) = Some(fresh);
                    tracing::warn!("handler actor stopped while handling a message; restarted");
                    Err(HandlerError::Stopped)
                }
                Err(MailboxError::Timeout) => Err(HandlerError::Stopped),
            }
        }
    })
}
