//! [`Dialogue`]: handlers as a state machine over the state of each chat.

use super::{ChatKey, StateError, StateStore, States};
use crate::{BoxError, Flow, HandlerError, Received, Route, RouterBuilder};
use eventsock_core::{identity, LocalBoxFuture, Payload};
use serde::{de::DeserializeOwned, Serialize};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

type Guard<S> = Arc<dyn Fn(&S) -> bool + Send + Sync>;
type StateFn<T, S> =
    Arc<dyn Fn(Received<T>, S) -> LocalBoxFuture<'static, Result<S, BoxError>> + Send + Sync>;

/// Handlers as a state machine: each message of a chat goes to the first handler whose guard
/// holds for the chat's state, which returns the state after it. Register with
/// [`RouterBuilder::dialogue`] (or end a pipeline with it: [`Dialogue::into_route`]); events that are not messages with a chat, and the bot's own messages,
/// are not its business. Per-chat order is the subscription's: one event at a time.
pub struct Dialogue<S, T: Payload = eventsock_core::legacy::MessagesUpsert> {
    states: States<S>,
    branches: Vec<(Guard<S>, StateFn<T, S>)>,
    /// Phone numbers whose LID the server was asked for, when it is asked.
    asked: Option<std::sync::Mutex<eventsock_core::Recent<()>>>,
    /// The pairs this dialogue's store holds (LID → number), as far as this run knows.
    saved: std::sync::Mutex<eventsock_core::Recent<String>>,
}

impl<S, T: Payload> std::fmt::Debug for Dialogue<S, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dialogue")
            .field("branches", &self.branches.len())
            .finish()
    }
}

impl<S, T> Dialogue<S, T>
where
    S: Serialize + DeserializeOwned + Default + Clone + Send + 'static,
    T: Payload,
{
    /// A dialogue whose states are kept in `store`.
    pub fn new(store: Arc<dyn StateStore>) -> Dialogue<S, T> {
        Dialogue {
            states: States::new(store),
            branches: Vec::new(),
            asked: None,
            saved: std::sync::Mutex::new(eventsock_core::Recent::new(ASKED)),
        }
    }

    /// Asks the server for the LID of each new chat that writes by phone number without one
    /// (`POST /chat/whatsappNumbers`, once per number and run, before its first message is
    /// handled), and keeps the pair: when the chat moves to its LID, its first LID-only message
    /// already finds its conversation. Off by default: each ask is a query the server makes to
    /// WhatsApp. Without it, the pair is learnt from the first message that carries both ids.
    pub fn look_up_lids(mut self, on: bool) -> Self {
        self.asked = on.then(|| std::sync::Mutex::new(eventsock_core::Recent::new(ASKED)));
        self
    }

    /// A conversation idle (no message) this long starts again from the default state.
    pub fn idle_timeout(mut self, idle: Duration) -> Self {
        self.states = self.states.idle_timeout(idle);
        self
    }

    /// The states, to read or change them outside a handler.
    pub fn states(&self) -> States<S> {
        self.states.clone()
    }

    /// Handles the messages of chats whose state satisfies `guard` with `f`, given the message
    /// (with its context) and the state, which returns the state after the message (the same
    /// one to stay, `S::default()` to start over).
    pub fn when<F, Fut>(mut self, guard: impl Fn(&S) -> bool + Send + Sync + 'static, f: F) -> Self
    where
        F: Fn(Received<T>, S) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<S, BoxError>> + 'static,
    {
        self.branches
            .push((Arc::new(guard), Arc::new(move |m, s| Box::pin(f(m, s)))));
        self
    }

    /// The dialogue as a route, to end a [`Pipeline`](crate::Pipeline) or run in a
    /// [`Bot`](crate::Bot): what [`RouterBuilder::dialogue`] registers.
    pub fn into_route(self) -> Route<Received<T>> {
        let dialogue = Arc::new(self);
        Route::new(move |m: Received<T>| {
            let dialogue = dialogue.clone();
            async move {
                dialogue.handle(m).await.map_err(HandlerError::failed)?;
                Ok(Flow::Taken)
            }
        })
    }

    /// Handles one event: load, route, save on success.
    async fn handle(&self, m: Received<T>) -> Result<(), BoxError> {
        let Received { event, cx } = m;
        let (Some(instance), Some(chat)) = (cx.instance(), cx.chat()) else {
            return Ok(());
        };
        // The bot's own messages (its replies come back as messages) move no conversation.
        if event.as_message().is_some_and(|m| m.is_from_me()) {
            return Ok(());
        }
        let chat = self.identity(&cx, instance, chat).await?;
        let key = ChatKey::new(instance, chat);
        let loaded = self.states.load(&key).await?;
        let Some((_, f)) = self.branches.iter().find(|(guard, _)| guard(&loaded.state)) else {
            return Ok(());
        };
        // Run again on the same state (a redelivery), the handler's messages get the same ids
        // and are not sent twice; on a changed state (after a conflict), new ones.
        let cx = cx.salted(&loaded.revision.unwrap_or(0).to_string());
        let next = f(Received { event, cx }, loaded.state).await?;
        // Saved after every message handled, changed or not: the write checks the revision the
        // state was read at, so a handler that acted on a state another worker had changed
        // meanwhile fails (and its event is handled again), and the idle timeout counts from
        // the last message.
        self.states.save(&key, &next, loaded.revision).await?;
        Ok(())
    }
}

/// How many phone numbers a dialogue remembers asking the server about, and how many pairs it
/// remembers its store holds.
const ASKED: usize = 100_000;

/// Where a phone-number ↔ LID pair is kept in a dialogue's store: under the instance, as the
/// "chat" `lid:<LID>`, the phone-number JID as its bytes.
fn pair_key(instance: &str, lid: &str) -> ChatKey {
    ChatKey::new(instance, format!("lid:{lid}"))
}

impl<S, T> Dialogue<S, T>
where
    S: Serialize + DeserializeOwned + Default + Clone + Send + 'static,
    T: Payload,
{
    /// Whose conversation `chat` is: its identity (see [`Ctx::identity`](crate::Ctx::identity)).
    /// A pair learnt from this message is kept in the store, so that it survives restarts; a
    /// LID the run has no number for is looked up there (learnt before a restart).
    async fn identity(
        &self,
        cx: &crate::Ctx,
        instance: &str,
        chat: &str,
    ) -> Result<String, BoxError> {
        let ids = cx.identities();
        let store = self.states.store();
        let lid = cx.lid();
        if lid.is_none() && identity::is_phone(chat) && ids.lid_of(chat).is_none() {
            self.look_up_lid(cx, chat).await;
        }
        let lid = lid.or(ids.lid_of(chat).as_deref()).map(str::to_owned);
        let paired = lid
            .as_deref()
            .and_then(|l| Some((l, ids.phone_of(l)?)))
            .filter(|(l, phone)| self.saved_as(l).as_deref() != Some(&**phone));
        if let Some((lid, phone)) = paired {
            let key = pair_key(instance, lid);
            let revision = store.load(&key).await?.map(|s| s.revision);
            match store.save(&key, phone.as_bytes().to_vec(), revision).await {
                // Another worker kept it meanwhile.
                Ok(_) | Err(StateError::Conflict) => self.mark_saved(lid, &phone),
                // Not marked: the next message of the chat tries again.
                Err(e) => return Err(e.into()),
            }
        }
        if identity::is_lid(chat) && ids.phone_of(chat).is_none() {
            if let Some(stored) = store.load(&pair_key(instance, chat)).await? {
                if let Ok(phone) = std::str::from_utf8(&stored.bytes) {
                    if ids.learn(phone, chat) {
                        self.mark_saved(chat, phone);
                    }
                }
            }
        }
        Ok(ids.identity(chat).into_owned())
    }

    /// The number this dialogue's store holds for `lid`, as far as this run knows.
    fn saved_as(&self, lid: &str) -> Option<String> {
        let saved = self.saved.lock().unwrap_or_else(|e| e.into_inner());
        saved.get(lid).cloned()
    }

    fn mark_saved(&self, lid: &str, phone: &str) {
        let mut saved = self.saved.lock().unwrap_or_else(|e| e.into_inner());
        saved.insert(lid.to_owned(), phone.to_owned());
    }

    /// Asks the server for the LID of `phone`, once per run, when [`Dialogue::look_up_lids`]
    /// is on; a failure is logged, and the chat goes on under its number.
    async fn look_up_lid(&self, cx: &crate::Ctx, phone: &str) {
        let Some(asked) = &self.asked else {
            return;
        };
        {
            let mut asked = asked.lock().unwrap_or_else(|e| e.into_inner());
            if asked.get(phone).is_some() {
                return;
            }
            asked.insert(phone.to_owned(), ());
        }
        let Ok(rest) = cx.rest() else {
            return;
        };
        match rest.lid_of(phone).await {
            Ok(Some(lid)) => {
                cx.identities().learn(phone, &lid);
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(
                chat = %eventsock_core::human::escaped(phone),
                error = %e,
                "could not ask the server for this chat's LID; it is learnt from its messages instead"
            ),
        }
    }
}

impl RouterBuilder {
    /// Runs `dialogue`: every `T` message of a chat goes, with the chat's state, to the
    /// handler of that state, and the state it returns is saved (see [`Dialogue`]).
    pub fn dialogue<S, T>(self, dialogue: Dialogue<S, T>) -> Self
    where
        S: Serialize + DeserializeOwned + Default + Clone + Send + 'static,
        T: Payload,
    {
        self.route(dialogue.into_route())
    }
}
