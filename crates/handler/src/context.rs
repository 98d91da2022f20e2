//! [`Ctx`]: what a handler answers an event with, bound to the event's chat and instance.

use eventsock_core::{EventMeta, MessageLike};
use eventsock_rest::{MessageKey, OutboxError, Outgoing, Postbox, Receipt, RestClient, RestError};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

/// Given to every handler with its event ([`Received::cx`](crate::Received)): replies, sends,
/// reactions and read receipts go to the event's chat, through the event's instance. Cheap to
/// clone.
///
/// All of them ([`reply`](Ctx::reply), [`send`](Ctx::send), [`send_to`](Ctx::send_to),
/// [`react`](Ctx::react), [`mark_read`](Ctx::mark_read)) go through the instance's
/// [`Outbox`](eventsock_rest::Outbox), which paces them, keeps each chat's in order and retries
/// without sending twice (see [`RouterBuilder::pacing`](crate::RouterBuilder::pacing)). They
/// return once queued, so a handler never holds up the stream while the outbox waits for its
/// turn; await the [`Receipt`] to learn how it went. One that fails is logged and counted in
/// the outbox's stats either way. [`rest`](Ctx::rest) gives the REST client for other calls.
///
/// On an event that is not a message (a connection update, say) there is no chat: the calls
/// that need one fail with [`RestError::NoRecipient`] and send nothing. With no REST client for
/// the event's instance (a replay or a NATS worker given none, see
/// [`Dispatcher::rest`](crate::Dispatcher::rest)) every call fails with [`RestError::Unavailable`].
#[derive(Clone)]
pub struct Ctx {
    event: Arc<EventCtx>,
    /// What the ids of this context's messages are made from (see [`Ctx::for_handler`]).
    ids: Option<Ids>,
}

/// What a context reads the event's message from: its payload, shared with the event.
pub(crate) trait MessageOf: Send + Sync {
    fn message(&self) -> Option<&dyn MessageLike>;
}

impl<T: eventsock_core::Payload> MessageOf for T {
    fn message(&self) -> Option<&dyn MessageLike> {
        self.as_message()
    }
}

/// The part of a context every handler of one event shares: made once per event, it holds the
/// payload (one refcount) and reads the chat, the id and the quote from it when asked.
pub(crate) struct EventCtx {
    rest: Option<RestClient>,
    postbox: Option<Arc<dyn Postbox>>,
    instance: Option<Arc<str>>,
    payload: Option<Arc<dyn MessageOf>>,
    /// How many messages each handler of the event sent, by its slot: shared by the clones of
    /// its context.
    sent: Box<[AtomicU32]>,
}

/// A handler's part of a context: its name, its slot in [`EventCtx::sent`], and a salt.
#[derive(Clone)]
struct Ids {
    handler: Arc<str>,
    slot: usize,
    salt: Option<Arc<str>>,
}

impl std::fmt::Debug for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx")
            .field("instance", &self.event.instance)
            .field("chat", &self.chat())
            .field("message_id", &self.event.message_id())
            .field("rest", &self.event.rest.is_some())
            .field("outbox", &self.event.postbox.is_some())
            .finish()
    }
}

impl EventCtx {
    /// What the `handlers` handlers of an event with `meta` and `payload` share.
    pub(crate) fn new(
        rest: Option<RestClient>,
        postbox: Option<Arc<dyn Postbox>>,
        meta: &EventMeta,
        payload: Option<Arc<dyn MessageOf>>,
        handlers: usize,
    ) -> Arc<EventCtx> {
        Arc::new(EventCtx {
            rest,
            postbox,
            instance: meta.instance.clone(),
            payload,
            sent: (0..handlers.max(1)).map(|_| AtomicU32::new(0)).collect(),
        })
    }

    fn message(&self) -> Option<&dyn MessageLike> {
        self.payload.as_deref()?.message()
    }

    fn chat(&self) -> Option<&str> {
        self.message()?.chat()
    }

    fn message_id(&self) -> Option<&str> {
        self.message()?.message_id()
    }
}

impl Ctx {
    /// The context of the handler in `slot` for an event: the router makes the event's part
    /// once and gives each handler its own ids.
    pub(crate) fn of_handler(event: Arc<EventCtx>, handler: Arc<str>, slot: usize) -> Ctx {
        Ctx { event, ids: None }.named(handler, slot)
    }

    /// The same context for `handler` (a name that stays the same from one run of the program
    /// to the next, such as the router's `legacy::MessagesUpsert#0`): the ids of the messages it
    /// sends in answer to a message are derived from the instance, the message's id, the
    /// handler and their order, so that a handler run again on the same message (a NATS
    /// redelivery after a failure) makes the same ids, and the outbox or JetStream does not
    /// send them twice. Without a handler, or for an event that is not a message, every
    /// message gets a new random id.
    pub fn for_handler(self, handler: &str) -> Ctx {
        self.named(Arc::from(handler), 0)
    }

    fn named(mut self, handler: Arc<str>, slot: usize) -> Ctx {
        let slot = slot.min(self.event.sent.len() - 1);
        self.ids =
            (self.event.instance.is_some() && self.event.message_id().is_some()).then_some(Ids {
                handler,
                slot,
                salt: None,
            });
        self
    }

    /// The same context with `salt` added to what its message ids are made from: a dialogue
    /// adds the revision of the state it handles, so that a handler run again on a changed
    /// state makes new ids (and on the same state, the same ones).
    pub(crate) fn salted(mut self, salt: &str) -> Ctx {
        if let Some(ids) = &mut self.ids {
            ids.salt = Some(match &ids.salt {
                Some(before) => format!("{before}\u{0}{salt}").into(),
                None => salt.into(),
            });
        }
        self
    }

    /// A message to `to`, with the next id of this context.
    fn outgoing(&self, to: &str, text: &str) -> Outgoing {
        self.with_next_id(Outgoing::text(to, text))
    }

    /// `message` with the next id of this context, when its ids are derived (see
    /// [`Ctx::for_handler`]).
    fn with_next_id(&self, message: Outgoing) -> Outgoing {
        let (Some(ids), Some(instance), Some(id)) =
            (&self.ids, &self.event.instance, self.event.message_id())
        else {
            return message;
        };
        let mut seed = format!("{instance}\u{0}{id}\u{0}{}", ids.handler);
        if let Some(salt) = &ids.salt {
            seed.push('\u{0}');
            seed.push_str(salt);
        }
        let n = self.event.sent[ids.slot].fetch_add(1, Ordering::Relaxed);
        message.with_id(eventsock_rest::outbox::derived_message_id(&seed, n))
    }

    /// The instance the event came from.
    pub fn instance(&self) -> Option<&str> {
        self.event.instance.as_deref()
    }

    /// The chat the event belongs to (see [`MessageLike::chat`]).
    pub fn chat(&self) -> Option<&str> {
        self.event.chat()
    }

    /// The REST client of the event's instance, for calls the context does not wrap.
    pub fn rest(&self) -> Result<&RestClient, RestError> {
        self.event.rest.as_ref().ok_or_else(|| {
            RestError::Unavailable(
                "no REST client answers this event's instance: the run was given none for it (Replay::rest, Worker::rest)".into(),
            )
        })
    }

    /// The message's key; `lid` names a person's chat by its LID when the message gives one.
    fn key(&self, lid: bool) -> Result<MessageKey, OutboxError> {
        let refused = |e| Err(OutboxError::Refused(e));
        let Some(message) = self.event.message() else {
            return refused(RestError::NoRecipient);
        };
        let Some(chat) = message.chat() else {
            return refused(RestError::NoRecipient);
        };
        let chat = match message.lid() {
            Some(l) if lid && !chat.ends_with("@g.us") => l,
            _ => chat,
        };
        let Some(id) = message.message_id() else {
            return refused(RestError::Unavailable(
                "the message has no id: nothing to react to or mark".into(),
            ));
        };
        Ok(MessageKey {
            remote_jid: chat.to_owned(),
            from_me: message.is_from_me(),
            id: id.to_owned(),
        })
    }

    fn postbox(&self) -> Result<(&dyn Postbox, &str), OutboxError> {
        let unavailable = || {
            OutboxError::Refused(RestError::Unavailable(
                "nothing sends for this event's instance: the run was given no REST client for it (Replay::rest, Worker::rest)"
                    .into(),
            ))
        };
        let postbox = self.event.postbox.as_deref().ok_or_else(unavailable)?;
        let instance = match (self.event.instance.as_deref(), self.event.rest.as_ref()) {
            (Some(i), _) => i,
            (None, Some(rest)) => rest.instance(),
            (None, None) => return Err(unavailable()),
        };
        Ok((postbox, instance))
    }

    async fn post(&self, message: Outgoing) -> Result<Receipt, OutboxError> {
        let (postbox, instance) = self.postbox()?;
        postbox.post(instance, message).await
    }

    fn chat_or_refuse(&self) -> Result<&str, OutboxError> {
        self.event
            .chat()
            .ok_or(OutboxError::Refused(RestError::NoRecipient))
    }

    /// Answers in the event's chat, quoting the message: the quote is the message itself
    /// (the server's `options.quotedMessage`, see [`MessageLike::quote`]), which every server
    /// takes whether or not it keeps messages. A message that cannot be quoted (it lacks an id
    /// or a type) is answered unquoted, and the log says so once. Returns once the message is
    /// queued in the outbox (waiting for room when it is full).
    pub async fn reply(&self, text: &str) -> Result<Receipt, OutboxError> {
        let mut message = self.outgoing(self.chat_or_refuse()?, text);
        match self.event.message().and_then(MessageLike::quote) {
            Some(quote) => message = message.quoting(quote),
            None => said_once_unquoted(),
        }
        self.post(message).await
    }

    /// Sends a message to the event's chat, without quoting, through the outbox.
    pub async fn send(&self, text: &str) -> Result<Receipt, OutboxError> {
        self.post(self.outgoing(self.chat_or_refuse()?, text)).await
    }

    /// Sends a message to another chat (a phone number or a JID) of the same instance,
    /// through the outbox.
    pub async fn send_to(&self, chat: &str, text: &str) -> Result<Receipt, OutboxError> {
        self.post(self.outgoing(chat, text)).await
    }

    /// Reacts to the message with an emoji (empty removes the reaction), through the outbox:
    /// paced like a message, in the chat's order. Returns once it is queued.
    pub async fn react(&self, emoji: &str) -> Result<Receipt, OutboxError> {
        let reaction = Outgoing::reaction(self.key(false)?, emoji);
        self.post(self.with_next_id(reaction)).await
    }

    /// Marks the message as read, through the outbox: in the chat's order (after what the
    /// handler queued before it), without waiting for the pace. Returns once it is queued.
    ///
    /// The legacy server passes on only the keys of groups and LIDs, and answers success for
    /// the others without marking them: a person's chat is therefore named by its LID when the
    /// message carries one (`keyLid`, which messages from phones mostly do); without one, the
    /// server says it marked the message and does not (see `docs/conformance.md`).
    pub async fn mark_read(&self) -> Result<Receipt, OutboxError> {
        let mut read = Outgoing::read(self.key(true)?);
        // Queued with the chat's other messages, whichever name (a LID) its key gives.
        read.to = self.chat_or_refuse()?.to_owned();
        self.post(self.with_next_id(read)).await
    }
}

/// Says once per process that a reply went unquoted because its message cannot be quoted.
fn said_once_unquoted() {
    static SAID: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if !SAID.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            "a reply is sent unquoted: the message it answers has no id, chat or type to quote (said once)"
        );
    }
}
