//! [`Ctx`]: what a handler answers an event with, bound to the event's chat and instance.

use crate::dispatcher::Answerer;
use eventsock_core::{EventMeta, MediaInfo, MessageLike, SharedPayload};
use eventsock_rest::{
    Downloaded, MediaError, MessageKey, OutboxError, Outgoing, Postbox, Receipt, RestClient,
    RestError,
};
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
    /// The handler whose context it is: what the ids of its messages are made from (see
    /// [`Ctx::for_handler`]); `None`, every message gets a new random id.
    handler: Option<Arc<str>>,
    /// The handler's slot in [`EventCtx::sent`].
    slot: u32,
    /// Added to what the ids are made from (see [`Ctx::salted`]).
    salt: Option<Arc<str>>,
}

/// The part of a context every handler of one event shares: made once per event, it holds the
/// payload (one refcount) and reads the chat, the id and the quote from it when asked.
pub(crate) struct EventCtx {
    /// The REST client of the event's instance, and its outbox (made at its first send).
    answerer: Option<Arc<Answerer>>,
    /// Where every message goes instead of the answerer's outbox, when the run has one.
    postbox: Option<Arc<dyn Postbox>>,
    /// The run's phone-number ↔ LID pairs.
    identities: Arc<eventsock_core::Identities>,
    instance: Option<Arc<str>>,
    payload: Option<Arc<dyn SharedPayload>>,
    /// How many messages each handler of the event sent, by its slot: shared by the clones of
    /// its context.
    sent: Sent,
}

/// Counts of messages sent per handler slot: inline for the first few handlers of an event (no
/// allocation on the per-event path), on the heap for the rest.
struct Sent {
    first: [AtomicU32; 4],
    more: Box<[AtomicU32]>,
}

impl Sent {
    fn new(handlers: usize) -> Sent {
        Sent {
            first: Default::default(),
            more: (4..handlers).map(|_| AtomicU32::new(0)).collect(),
        }
    }

    fn len(&self) -> usize {
        4 + self.more.len()
    }

    fn slot(&self, slot: usize) -> &AtomicU32 {
        match slot.checked_sub(4) {
            None => &self.first[slot],
            Some(n) => &self.more[n],
        }
    }
}

impl std::fmt::Debug for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx")
            .field("instance", &self.event.instance)
            .field("chat", &self.chat())
            .field("message_id", &self.event.message_id())
            .field("rest", &self.event.answerer.is_some())
            .field("postbox", &self.event.postbox.is_some())
            .finish()
    }
}

impl EventCtx {
    /// What the `handlers` handlers of an event with `meta` and `payload` share.
    pub(crate) fn new(
        answerer: Option<Arc<Answerer>>,
        postbox: Option<Arc<dyn Postbox>>,
        identities: Arc<eventsock_core::Identities>,
        meta: &EventMeta,
        payload: Option<Arc<dyn SharedPayload>>,
        handlers: usize,
    ) -> Arc<EventCtx> {
        Arc::new(EventCtx {
            answerer,
            postbox,
            identities,
            instance: meta.instance.clone(),
            payload,
            sent: Sent::new(handlers),
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
        Ctx {
            event,
            handler: None,
            slot: 0,
            salt: None,
        }
        .named(handler, slot)
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
        self.handler = Some(handler);
        self.slot = u32::try_from(slot.min(self.event.sent.len() - 1)).unwrap_or(0);
        self.salt = None;
        self
    }

    /// The same context with `salt` added to what its message ids are made from: a dialogue
    /// adds the revision of the state it handles, so that a handler run again on a changed
    /// state makes new ids (and on the same state, the same ones).
    pub(crate) fn salted(mut self, salt: &str) -> Ctx {
        self.salt = Some(match &self.salt {
            Some(before) => format!("{before}\u{0}{salt}").into(),
            None => salt.into(),
        });
        self
    }

    /// A message to `to`, with the next id of this context, for the person `to` is.
    fn outgoing(&self, to: &str, text: &str) -> Outgoing {
        self.with_next_id(self.for_person(Outgoing::text(to, text)))
    }

    /// `message` for the person its chat is (see [`Outgoing::person`]), when that is another
    /// of their ids than the one it goes to.
    fn for_person(&self, message: Outgoing) -> Outgoing {
        match self.event.identities.identity(&message.to) {
            std::borrow::Cow::Owned(person) => message.for_person(person),
            std::borrow::Cow::Borrowed(_) => message,
        }
    }

    /// `message` with the next id of this context, when its ids are derived (see
    /// [`Ctx::for_handler`]).
    fn with_next_id(&self, message: Outgoing) -> Outgoing {
        let (Some(handler), Some(instance), Some(id)) =
            (&self.handler, &self.event.instance, self.event.message_id())
        else {
            return message;
        };
        let mut seed = format!("{instance}\u{0}{id}\u{0}{handler}");
        if let Some(salt) = &self.salt {
            seed.push('\u{0}');
            seed.push_str(salt);
        }
        let n = self
            .event
            .sent
            .slot(self.slot as usize)
            .fetch_add(1, Ordering::Relaxed);
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

    /// Who the event's chat is, whichever of their ids the message came by: the phone-number
    /// JID when the chat is a LID whose number is known (learnt from a message that carried
    /// both), else the chat itself (see [`eventsock_core::identity`] for what happens before a
    /// pair is known). Conversation state, pacing and NATS partitions are keyed by it;
    /// [`Ctx::chat`] stays what the message says, and replies go there.
    pub fn identity(&self) -> Option<std::borrow::Cow<'_, str>> {
        let chat = self.event.chat()?;
        Some(self.event.identities.identity(chat))
    }

    /// The LID of the event's chat, when the message gives one (`keyLid`).
    pub(crate) fn lid(&self) -> Option<&str> {
        self.event.message()?.lid()
    }

    /// The run's phone-number ↔ LID pairs.
    pub(crate) fn identities(&self) -> &Arc<eventsock_core::Identities> {
        &self.event.identities
    }

    /// The REST client of the event's instance, for calls the context does not wrap.
    pub fn rest(&self) -> Result<&RestClient, RestError> {
        self.event.answerer.as_deref().map(Answerer::rest).ok_or_else(|| {
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

    async fn post(&self, message: Outgoing) -> Result<Receipt, OutboxError> {
        let unavailable = || {
            OutboxError::Refused(RestError::Unavailable(
                "nothing sends for this event's instance: the run was given no REST client for it (Replay::rest, Worker::rest)"
                    .into(),
            ))
        };
        let answerer = self.event.answerer.as_deref();
        let instance = match (self.event.instance.as_deref(), answerer) {
            (Some(i), _) => i,
            (None, Some(a)) => a.rest().instance(),
            (None, None) => return Err(unavailable()),
        };
        match (&self.event.postbox, answerer) {
            (Some(postbox), _) => postbox.post(instance, message).await,
            (None, Some(a)) => Postbox::post(a.outbox(), instance, message).await,
            (None, None) => Err(unavailable()),
        }
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
        let reaction = self.for_person(Outgoing::reaction(self.key(false)?, emoji));
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
        let read = self.for_person(read);
        self.post(self.with_next_id(read)).await
    }
}

/// Media.
impl Ctx {
    /// The media the event's message carries (see [`MessageLike::media`]); `None` for an
    /// event that is not a message, or a message without media.
    pub fn media(&self) -> Option<MediaInfo<'_>> {
        self.event.message()?.media()
    }

    /// Downloads the media of the event's message into `to`, streamed: never held whole in
    /// memory, within the REST client's [`MediaLimits`](eventsock_rest::MediaLimits) (64 MiB,
    /// 30 s without a byte, 10 minutes; see [`RestClient::media_limits`]), asked again after a
    /// 5xx before the first byte. Returns its content type, file name and size.
    /// [`MediaError::NoMedia`] for a message without media (nothing is asked of the server).
    pub async fn download<W>(&self, to: &mut W) -> Result<Downloaded, MediaError>
    where
        W: tokio::io::AsyncWrite + Unpin,
    {
        let message = self.media_message()?;
        self.rest()?.download_media(&message, to).await
    }

    /// Downloads the media of the event's message into the file `path`, written whole or not
    /// at all (a failed download leaves no file); see [`Ctx::download`].
    pub async fn download_to(
        &self,
        path: impl AsRef<std::path::Path>,
    ) -> Result<Downloaded, MediaError> {
        let message = self.media_message()?;
        self.rest()?
            .download_media_to_file(&message, path.as_ref())
            .await
    }

    /// The message to ask the server for the media of.
    fn media_message(&self) -> Result<serde_json::Value, MediaError> {
        let Some(message) = self.event.message() else {
            return Err(MediaError::NoMedia("the event is not a message".into()));
        };
        if message.media().is_none() {
            return Err(MediaError::NoMedia(match message.message_type() {
                Some(t) => format!("a message of type {}", eventsock_core::human::escaped(t)),
                None => "a message without a type".into(),
            }));
        }
        self.event
            .payload
            .as_deref()
            .and_then(SharedPayload::json)
            .ok_or_else(|| MediaError::NoMedia("the message could not be written back".into()))
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
