//! [`Received`]: what every handler gets, an event together with its [`Ctx`].

use crate::Ctx;
use eventsock_core::{Event, Payload};
use std::ops::Deref;

/// An event and the context to answer it with: what every handler of `T` receives, whichever
/// kind it is (a closure given to [`RouterBuilder::on`](crate::RouterBuilder::on), a
/// [`Route`](crate::Route) or [`Pipeline`](crate::Pipeline), an actor, a [`Bot`](crate::Bot), a
/// [`Dialogue`](crate::Dialogue)), live, replayed or on a NATS worker.
///
/// It derefs to the [`Event`], which derefs to the payload: `m.text()`, `m.meta.seq` and
/// `m.key_remote_jid` read the event; `m.cx.reply("pong")` answers it through the instance's
/// outbox. It is an actix message, so an actor handles it as any other:
///
/// ```
/// use actix::prelude::*;
/// use eventsock_core::legacy::MessagesUpsert;
/// use eventsock_core::MessageLike;
/// use eventsock_handler::Received;
///
/// struct Echo;
/// impl Actor for Echo {
///     type Context = Context<Self>;
/// }
/// impl Handler<Received<MessagesUpsert>> for Echo {
///     type Result = ResponseFuture<()>;
///     fn handle(&mut self, m: Received<MessagesUpsert>, _: &mut Context<Self>) -> Self::Result {
///         Box::pin(async move {
///             if !m.is_from_me() && m.text() == Some("!ping") {
///                 if let Err(e) = m.cx.reply("pong").await {
///                     tracing::warn!(error = %e, "no pong");
///                 }
///             }
///         })
///     }
/// }
/// ```
#[derive(Debug, Clone)]
pub struct Received<T> {
    /// The event: where and when it was received, and its payload.
    pub event: Event<T>,
    /// What to answer it with: replies, sends, reactions and read receipts go through the
    /// outbox of the event's instance.
    pub cx: Ctx,
}

impl<T: Payload> Received<T> {
    /// `event` with a context that has nothing to send with: every call that sends fails with
    /// [`RestError::Unavailable`](eventsock_rest::RestError::Unavailable). For calling a
    /// handler by hand, such as in a unit test.
    pub fn offline(event: Event<T>) -> Received<T> {
        let payload = event.shared();
        let shared = crate::context::EventCtx::new(
            None,
            None,
            std::sync::Arc::default(),
            &event.meta,
            Some(payload),
            1,
        );
        Received {
            event,
            cx: Ctx::of_handler(shared, "offline".into(), 0),
        }
    }
}

impl<T> Deref for Received<T> {
    type Target = Event<T>;

    fn deref(&self) -> &Event<T> {
        &self.event
    }
}

impl<T: Payload> actix::Message for Received<T> {
    type Result = ();
}
