//! [`Router`]: which handlers get which events, built once on a [`RouterBuilder`] and then
//! frozen.
//!
//! A router holds "payload type → handlers": closures ([`RouterBuilder::on`]), [`Route`]s built
//! from pipelines ([`RouterBuilder::route`]) and actors ([`RouterBuilder::actor`]), each given
//! a [`Received`] (the event and its [`Ctx`](crate::Ctx)); and taps of whole frames
//! ([`RouterBuilder::raw`], [`RouterBuilder::raw_route`]). Once built it never changes: the per-event
//! path reads it without a lock, and any number of runs ([`Dispatcher`](crate::Dispatcher)s: the
//! live supervisor, [`Replay`](crate::builtin::Replay), the NATS worker) can run one router
//! without changing each other.

mod entry;

use crate::dispatcher::RunState;
use crate::route::{BoxError, Route};
use crate::{Commands, Received};
use actix::Recipient;
pub use entry::HandlerStats;
pub use entry::RawMessage;
pub(crate) use entry::{panic_message, Deliveries};
use entry::{Entries, Entry, FnHandler, Handler, Kind, Raw, Sink, To, Typed};
use eventsock_core::{
    Channel, DecodeError, EventMeta, EventName, Frame, FrameProblem, Payload, Protocol, Undelivered,
};
use eventsock_rest::Pacing;
use futures_util::future::join_all;
use std::future::Future;
use std::sync::Arc;

/// Which handlers get which events: built with [`Router::builder`], immutable once built.
/// Cheap to clone (clones share the same handlers and their counters).
///
/// ```
/// use eventsock_core::legacy::MessagesUpsert;
/// use eventsock_core::MessageLike;
/// use eventsock_handler::{Received, Router};
///
/// let router = Router::builder()
///     .on(|m: Received<MessagesUpsert>| async move {
///         if !m.is_from_me() && m.text() == Some("!ping") {
///             m.cx.reply("pong").await?;
///         }
///         Ok(())
///     })
///     .build();
/// # let _ = router;
/// ```
#[derive(Clone)]
pub struct Router {
    routes: Arc<Routes>,
}

/// What a router holds: fixed when it is built.
struct Routes {
    entries: Box<[Box<dyn Entry>]>,
    undelivered: Box<[Recipient<Undelivered>]>,
    pacing: Pacing,
    /// Whether runs follow the delivery receipts of what they send (`messages.update`).
    receipts: bool,
    /// Handlers registered, for the next one's name.
    registered: usize,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router")
            .field("handlers", &self.routes.registered)
            .finish_non_exhaustive()
    }
}

/// Registers the handlers of a [`Router`]: [`Router::builder`], then [`RouterBuilder::build`].
pub struct RouterBuilder {
    entries: Vec<Box<dyn Entry>>,
    undelivered: Vec<Recipient<Undelivered>>,
    pacing: Pacing,
    receipts: bool,
    registered: usize,
}

impl std::fmt::Debug for RouterBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouterBuilder")
            .field("handlers", &self.registered)
            .finish_non_exhaustive()
    }
}

/// The short name of type `T`, without the core crate's path.
fn type_name<T>() -> &'static str {
    let full = std::any::type_name::<T>();
    full.strip_prefix("eventsock_core::").unwrap_or(full)
}

impl RouterBuilder {
    fn name(&mut self, kind: &str) -> Arc<str> {
        let n = self.registered;
        self.registered += 1;
        format!("{kind}#{n}").into()
    }

    /// The entry of kind `K`, created if there is none yet.
    fn entry<K: Kind>(&mut self) -> &mut Entries<K> {
        let at = match self
            .entries
            .iter()
            .position(|e| e.as_any().is::<Entries<K>>())
        {
            Some(at) => at,
            None => {
                self.entries.push(Box::new(Entries::<K>::default()));
                self.entries.len() - 1
            }
        };
        self.entries[at]
            .as_any_mut()
            .downcast_mut::<Entries<K>>()
            .expect("the entry found is of this kind")
    }

    fn typed<T: Payload>(mut self, sink: Sink<Received<T>>) -> Self {
        let handler = Handler {
            name: self.name(type_name::<T>()),
            sink,
            counters: Arc::default(),
        };
        self.entry::<Typed<T>>().items.push(handler);
        self
    }

    fn raw_sink<M: RawMessage>(mut self, events: Option<Vec<EventName>>, sink: Sink<M>) -> Self {
        let handler = Handler {
            name: self.name(type_name::<M>()),
            sink,
            counters: Arc::default(),
        };
        self.entry::<Raw<M>>().items.push((events, handler));
        self
    }

    /// Handles every `T` event with `f`, given the event and its context ([`Received`]). An
    /// error or a panic fails this event only (it is counted, logged, and on the NATS worker
    /// the event is redelivered). Events of one subscription are handled one after another
    /// (messages recovered over REST after a gap come from a task of their own, beside them).
    pub fn on<T, F, Fut>(self, f: F) -> Self
    where
        T: Payload,
        F: Fn(Received<T>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), BoxError>> + 'static,
    {
        let f: Arc<FnHandler<Received<T>>> = Arc::new(move |m| Box::pin(f(m)));
        self.typed(Sink::Fn(f))
    }

    /// Handles the commands of `C` in the text of every `T` message with `f` (a [`Commands`]
    /// type, usually an enum with `#[derive(Commands)]`), given the message and the command
    /// parsed. Messages from the bot's own number, messages without text and messages that
    /// are none of `C`'s commands (no prefix, or an unknown name) are skipped. A command with
    /// wrong arguments is answered with what is wrong and the command's usage
    /// ([`CommandError`](crate::CommandError)'s text, through [`Ctx::reply`](crate::Ctx::reply)),
    /// and `f` is not called. Errors and panics are as with [`on`](RouterBuilder::on).
    ///
    /// ```
    /// use eventsock_core::legacy::MessagesUpsert;
    /// use eventsock_handler::{Commands, Received, Router};
    ///
    /// #[derive(Commands)]
    /// enum Cmd {
    ///     /// Check the bot is alive
    ///     Ping,
    ///     /// Order something
    ///     Order { qty: u32, item: String },
    ///     Help,
    /// }
    ///
    /// let router = Router::builder()
    ///     .commands(|m: Received<MessagesUpsert>, cmd: Cmd| async move {
    ///         let answer = match cmd {
    ///             Cmd::Ping => "pong".to_owned(),
    ///             Cmd::Order { qty, item } => format!("{qty} × {item}, coming up"),
    ///             Cmd::Help => Cmd::help(),
    ///         };
    ///         m.cx.reply(&answer).await?;
    ///         Ok(())
    ///     })
    ///     .build();
    /// # let _ = router;
    /// ```
    pub fn commands<T, C, F, Fut>(self, f: F) -> Self
    where
        T: Payload,
        C: Commands,
        F: Fn(Received<T>, C) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), BoxError>> + 'static,
    {
        /// What to do with a message, decided before the handler's future starts.
        enum Next<T, Fut> {
            Skip,
            Run(Fut),
            Reply(Received<T>, String),
        }
        self.on(move |m: Received<T>| {
            let parsed = match m.event.as_message() {
                Some(message) if !message.is_from_me() => message.text().map(C::parse),
                _ => None,
            };
            let next = match parsed {
                None | Some(Ok(None)) => Next::Skip,
                Some(Ok(Some(command))) => Next::Run(f(m, command)),
                Some(Err(e)) => Next::Reply(m, e.to_string()),
            };
            async move {
                match next {
                    Next::Skip => Ok(()),
                    Next::Run(run) => run.await,
                    Next::Reply(m, usage) => m.cx.reply(&usage).await.map(drop).map_err(Into::into),
                }
            }
        })
    }

    /// Handles every `T` event with a [`Route`] (a [`Pipeline`](crate::Pipeline)'s end, or a
    /// branch of them).
    pub fn route<T: Payload>(self, route: Route<Received<T>>) -> Self {
        self.typed(Sink::Route(route))
    }

    /// Sends every `T` event to an actor (a [`Bot`](crate::Bot), or your own).
    pub fn actor<T: Payload>(self, actor: Recipient<Received<T>>) -> Self {
        self.typed(Sink::Actor(actor))
    }

    /// Taps every frame of `events` with an actor (and subscribes them), whatever its shape:
    /// as JSON with a `Recipient<RawEvent>` (a recorder, a printer), or as the text the server
    /// sent with a `Recipient<RawFrame>` (checked to be JSON, not parsed: for handlers that pass
    /// events on, such as the NATS ingest). A tap gets no context: it answers nobody.
    pub fn raw<M: RawMessage>(
        self,
        events: impl IntoIterator<Item = EventName>,
        actor: Recipient<M>,
    ) -> Self {
        self.raw_sink(Some(events.into_iter().collect()), Sink::Actor(actor))
    }

    /// Taps every frame of `events` with a route (`None`: every event the other handlers
    /// subscribe, without subscribing anything itself).
    pub fn raw_route<M: RawMessage>(self, events: Option<Vec<EventName>>, route: Route<M>) -> Self {
        self.raw_sink(events, Sink::Route(route))
    }

    /// Sends every frame that could not be delivered as its type to `actor` (with its data,
    /// when it was valid JSON).
    pub fn undelivered(mut self, actor: Recipient<Undelivered>) -> Self {
        self.undelivered.push(actor);
        self
    }

    /// How this bot's messages are paced: every [`Ctx::reply`](crate::Ctx::reply),
    /// [`Ctx::send`](crate::Ctx::send), [`Ctx::react`](crate::Ctx::react)... goes through the
    /// outbox of its instance, which each run of the router makes at its first send (see
    /// [`Pacing`] for the cautious defaults).
    pub fn pacing(mut self, pacing: Pacing) -> Self {
        self.pacing = pacing;
        self
    }

    /// Whether the router follows the delivery receipts of what its handlers send (on by
    /// default): when it has a typed handler (which can send; raw handlers cannot), it then also
    /// subscribes to the legacy server's `messages.update`, whose
    /// statuses move each sent message's [`Receipt`](eventsock_rest::Receipt) on (awaitable as
    /// delivered or read) and feed the outbox's stats. The server keeps one socket per
    /// (instance, event): another program listening to `messages.update` for the same
    /// instance would take that stream from this one (or this one from it); turn this off
    /// then. The newer server's receipts name messages by row id, not by the id the outbox
    /// gave: they are not followed.
    pub fn receipts(mut self, on: bool) -> Self {
        self.receipts = on;
        self
    }

    /// Adds the handlers of `router` after those registered so far (named after them, so
    /// their names stay unique); the undelivered handlers too.
    pub fn include(mut self, router: &Router) -> Self {
        let mut registered = self.registered;
        let mut name = |old: &str| -> Arc<str> {
            let kind = old.rsplit_once('#').map_or(old, |(kind, _)| kind);
            let n = registered;
            registered += 1;
            format!("{kind}#{n}").into()
        };
        for other in router.routes.entries.iter() {
            match self
                .entries
                .iter_mut()
                .find(|e| e.as_any().type_id() == other.as_any().type_id())
            {
                Some(mine) => mine.extend(&**other, &mut name),
                None => {
                    let mut mine = other.empty();
                    mine.extend(&**other, &mut name);
                    self.entries.push(mine);
                }
            }
        }
        self.registered = registered;
        self.undelivered
            .extend(router.routes.undelivered.iter().cloned());
        self
    }

    /// The router, which no longer changes.
    pub fn build(self) -> Router {
        Router {
            routes: Arc::new(Routes {
                entries: self.entries.into(),
                undelivered: self.undelivered.into(),
                pacing: self.pacing,
                receipts: self.receipts,
                registered: self.registered,
            }),
        }
    }
}

impl Router {
    /// A builder with no handlers and the default [`Pacing`].
    pub fn builder() -> RouterBuilder {
        RouterBuilder {
            entries: Vec::new(),
            undelivered: Vec::new(),
            pacing: Pacing::default(),
            receipts: true,
            registered: 0,
        }
    }

    /// A builder holding this router's handlers (the same ones: their names and counters go
    /// on), to build a router with more.
    pub fn to_builder(&self) -> RouterBuilder {
        RouterBuilder {
            entries: self.routes.entries.iter().map(|e| e.copy()).collect(),
            undelivered: self.routes.undelivered.to_vec(),
            pacing: self.routes.pacing.clone(),
            receipts: self.routes.receipts,
            registered: self.routes.registered,
        }
    }

    /// How the outboxes of this router's runs pace (see [`RouterBuilder::pacing`]).
    pub fn pacing(&self) -> &Pacing {
        &self.routes.pacing
    }

    /// The (channel, event) pairs a server of `protocol` must send for these handlers (and
    /// for the delivery receipts, see [`RouterBuilder::receipts`]). `Err` names an event given
    /// to [`RouterBuilder::raw`] that such a server never serves.
    pub fn subscriptions(
        &self,
        protocol: Protocol,
    ) -> Result<Vec<(Channel, EventName)>, EventName> {
        let mut subs = Vec::new();
        for entry in self.routes.entries.iter() {
            for sub in entry.subscriptions(protocol)? {
                if !subs.contains(&sub) {
                    subs.push(sub);
                }
            }
        }
        let receipts = (
            Channel::Legacy,
            EventName::from(eventsock_core::EventKind::MessagesUpdate),
        );
        let answers = self.routes.entries.iter().any(|e| e.answers());
        let follows = self.follows_receipts() && protocol == Protocol::Legacy && answers;
        if follows && !subs.contains(&receipts) {
            subs.push(receipts);
        }
        Ok(subs)
    }

    /// Whether runs follow delivery receipts (see [`RouterBuilder::receipts`]).
    pub(crate) fn follows_receipts(&self) -> bool {
        self.routes.receipts
    }

    /// How each handler has done so far, in registration order.
    pub fn handlers(&self) -> Vec<HandlerStats> {
        let mut out = Vec::new();
        for entry in self.routes.entries.iter() {
            entry.stats(&mut out);
        }
        out.sort_by_key(|s| {
            s.name
                .rsplit_once('#')
                .and_then(|(_, n)| n.parse::<usize>().ok())
        });
        out
    }

    /// How many handlers still take events: all but the actors that have stopped, which no
    /// event reaches once one found them gone.
    pub fn alive(&self) -> usize {
        self.routes.entries.iter().map(|e| e.alive()).sum()
    }

    /// Decodes `frame` once per payload type that takes it and starts a delivery to each of
    /// that type's handlers; the errors are the types whose decode failed.
    pub(crate) fn deliver(
        &self,
        frame: &Frame<'_>,
        meta: &EventMeta,
        channel: Option<Channel>,
        run: &RunState,
        wait: bool,
        out: &mut Deliveries,
    ) -> Vec<DecodeError> {
        let to = To {
            meta,
            channel,
            run,
            wait,
        };
        let mut errors = Vec::new();
        for entry in self.routes.entries.iter() {
            if let Err(e) = entry.dispatch(frame, &to, out) {
                errors.push(e);
            }
        }
        errors
    }

    /// Tells the [`RouterBuilder::undelivered`] handlers about a frame that could not be
    /// delivered.
    pub async fn report(&self, meta: &EventMeta, problem: &FrameProblem) {
        let sends = self.routes.undelivered.iter().map(|h| {
            h.send(Undelivered {
                meta: meta.clone(),
                error: problem.clone(),
            })
        });
        join_all(sends).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Ctx, Dispatcher, Tally};
    use eventsock_core::{legacy, EventKind, RawEvent, RawFrame};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Mutex, PoisonError};

    fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
        m.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn meta(event: &EventName) -> impl Fn(Option<&Frame<'_>>) -> EventMeta + '_ {
        move |_| EventMeta::live(event.clone(), "codechat")
    }

    fn settle(router: &Router, event: EventKind, text: &str) -> (Vec<String>, Tally) {
        let event = EventName::from(event);
        let dispatcher = Dispatcher::new(router.clone());
        let dispatch =
            dispatcher.dispatch(&event, Some(Channel::Legacy), text, &meta(&event), true);
        let problems = dispatch.problems.iter().map(ToString::to_string).collect();
        let tally = actix_rt::System::new().block_on(dispatch.settle(router));
        (problems, tally)
    }

    type Msg = Received<legacy::MessagesUpsert>;

    #[test]
    fn each_handler_of_a_type_gets_the_event_and_others_do_not() {
        let seen = Arc::new(AtomicUsize::new(0));
        let (a, b) = (seen.clone(), seen.clone());
        let router = Router::builder()
            .on(move |m: Msg| {
                let cx: &Ctx = &m.cx;
                assert_eq!(
                    (m.text(), cx.chat()),
                    (Some("hi"), Some("1@s.whatsapp.net"))
                );
                a.fetch_add(1, Ordering::Relaxed);
                async { Ok(()) }
            })
            .on(move |_: Msg| {
                b.fetch_add(10, Ordering::Relaxed);
                async { Ok(()) }
            })
            .on(|_: Received<legacy::SendMessage>| async { Err("not this one".into()) })
            .build();
        let text = r#"{"keyId":"A","keyRemoteJid":"1@s.whatsapp.net","content":{"text":"hi"}}"#;
        let (problems, tally) = settle(&router, EventKind::MessagesUpsert, text);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!((tally.handled, tally.failed), (2, 0));
        assert_eq!(seen.load(Ordering::Relaxed), 11);
        let names: Vec<_> = router
            .handlers()
            .into_iter()
            .map(|h| (h.name, h.handled))
            .collect();
        assert_eq!(
            names,
            [
                ("legacy::MessagesUpsert#0".to_owned(), 1),
                ("legacy::MessagesUpsert#1".to_owned(), 1),
                ("legacy::SendMessage#2".to_owned(), 0)
            ]
        );
    }

    /// A message is built at the first read of a field the head does not answer, once, for
    /// every handler of the event; one that does not fit is refused before any handler.
    #[test]
    fn a_message_is_built_once_at_its_first_read() {
        use eventsock_core::MessageLike;
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (a, b, c) = (seen.clone(), seen.clone(), seen.clone());
        let router = Router::builder()
            .on(move |m: Msg| {
                let read = (m.text(), m.chat(), m.sender_name(), m.media().is_some());
                lock(&a).push(format!("{read:?} built: {}", m.event.is_decoded()));
                async { Ok(()) }
            })
            .on(move |m: Msg| {
                let name = m.push_name.clone();
                lock(&b).push(format!("{name:?} built: {}", m.event.is_decoded()));
                async { Ok(()) }
            })
            .on(move |m: Msg| {
                lock(&c).push(format!("built before: {}", m.event.is_decoded()));
                async { Ok(()) }
            })
            .build();
        let text = r#"{"keyId":"A","keyRemoteJid":"1@s.whatsapp.net","pushName":"Ana","messageType":"conversation","content":{"text":"hi"}}"#;
        let (problems, tally) = settle(&router, EventKind::MessagesUpsert, text);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(tally.handled, 3);
        assert_eq!(
            *lock(&seen),
            [
                r#"(Some("hi"), Some("1@s.whatsapp.net"), Some("Ana"), false) built: false"#,
                r#"Some("Ana") built: true"#,
                "built before: true",
            ]
        );
        // A field of the wrong shape that no handler would read is still refused up front.
        lock(&seen).clear();
        let (problems, tally) = settle(
            &router,
            EventKind::MessagesUpsert,
            r#"{"keyId":"A","content":{"text":"hi"},"isGroup":"yes"}"#,
        );
        assert_eq!(tally.handled, 0);
        assert!(lock(&seen).is_empty());
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("isGroup"), "{}", problems[0]);
    }

    #[test]
    fn a_panicking_or_failing_handler_fails_its_delivery_only() {
        let router = Router::builder()
            .on(|_: Msg| -> std::future::Ready<Result<(), BoxError>> {
                panic!("before the future")
            })
            .on(|_: Msg| async { panic!("inside the future") })
            .on(|_: Msg| async { Err("refused".into()) })
            .on(|_: Msg| async { Ok(()) })
            .build();
        let (problems, tally) = settle(&router, EventKind::MessagesUpsert, r#"{"keyId":"A"}"#);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!((tally.handled, tally.failed, tally.gone), (1, 3, 0));
        assert_eq!(
            tally.errors,
            [
                "the handler panicked: before the future",
                "the handler panicked: inside the future",
                "the handler failed: refused"
            ]
        );
        let failed: Vec<u64> = router.handlers().iter().map(|h| h.failed).collect();
        assert_eq!(failed, [1, 1, 1, 0]);
    }

    #[test]
    fn a_frame_of_the_wrong_shape_is_a_problem_and_still_reaches_raw_handlers() {
        let raw = Arc::new(AtomicUsize::new(0));
        let r = raw.clone();
        let router = Router::builder()
            .on(|_: Msg| async { Ok(()) })
            .raw_route(
                None,
                Route::from_fn(move |_: RawEvent| {
                    r.fetch_add(1, Ordering::Relaxed);
                    async { Ok::<_, BoxError>(()) }
                }),
            )
            .build();
        let (problems, tally) =
            settle(&router, EventKind::MessagesUpsert, r#"{"keyFromMe":"yes"}"#);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("keyFromMe"), "{problems:?}");
        assert_eq!((tally.handled, tally.problems.len()), (1, 1));
        assert_eq!(raw.load(Ordering::Relaxed), 1);
        let (problems, tally) = settle(&router, EventKind::MessagesUpsert, "{not json");
        assert_eq!((problems.len(), tally.delivered()), (1, false));
    }

    /// A frame handler gets each frame's text, trimmed, and never a frame that is not JSON:
    /// that one is a problem, reported, and the stream goes on.
    #[test]
    fn a_frame_handler_gets_the_text_of_json_frames_only() {
        struct Texts(Arc<Mutex<Vec<String>>>);
        impl actix::Actor for Texts {
            type Context = actix::Context<Self>;
        }
        impl actix::Handler<RawFrame> for Texts {
            type Result = ();
            fn handle(&mut self, f: RawFrame, _: &mut actix::Context<Self>) {
                lock(&self.0).push(f.data.get().to_owned());
            }
        }
        actix_rt::System::new().block_on(async {
            let texts = Arc::<Mutex<Vec<String>>>::default();
            let router = Router::builder()
                .raw(
                    [EventKind::MessagesUpsert.into()],
                    actix::Actor::start(Texts(texts.clone())).recipient(),
                )
                .build();
            let dispatcher = Dispatcher::new(router.clone());
            let event = EventName::from(EventKind::MessagesUpsert);
            let mut outcomes = Vec::new();
            for text in [
                " {\"keyId\": \"A1\"} ",
                "{not json",
                "\u{0}\u{7f}garbage",
                "{\"keyId\":\"A2\"} trailing",
                "{\"keyId\":\"A3\"}",
            ] {
                let d =
                    dispatcher.dispatch(&event, Some(Channel::Legacy), text, &meta(&event), true);
                let problems = d.problems.len();
                let tally = d.settle(&router).await;
                outcomes.push((problems, tally.handled));
            }
            assert_eq!(outcomes, [(0, 1), (1, 0), (1, 0), (1, 0), (0, 1)]);
            assert_eq!(*lock(&texts), ["{\"keyId\": \"A1\"}", "{\"keyId\":\"A3\"}"]);
        });
    }

    #[test]
    fn subscriptions_follow_the_protocol() {
        let router = Router::builder().on(|_: Msg| async { Ok(()) }).build();
        let legacy = router.subscriptions(Protocol::Legacy).unwrap();
        let upsert = (Channel::Legacy, EventName::from(EventKind::MessagesUpsert));
        // The receipts of what its handler sends come on messages.update.
        let receipts = (Channel::Legacy, EventName::from(EventKind::MessagesUpdate));
        assert_eq!(legacy, [upsert.clone(), receipts]);
        assert_eq!(router.subscriptions(Protocol::V2).unwrap(), []);
        let without = Router::builder()
            .on(|_: Msg| async { Ok(()) })
            .receipts(false)
            .build();
        assert_eq!(
            without.subscriptions(Protocol::Legacy).unwrap(),
            std::slice::from_ref(&upsert)
        );
        // Raw handlers send nothing: no receipts to follow.
        let raw = Router::builder()
            .raw_route(
                Some(vec![EventKind::MessagesUpsert.into()]),
                Route::from_fn(|_: RawEvent| async { Ok::<_, BoxError>(()) }),
            )
            .build();
        assert_eq!(raw.subscriptions(Protocol::Legacy).unwrap(), [upsert]);
        let unserved = Router::builder()
            .raw_route(
                Some(vec![EventName::parse("message.upsert")]),
                Route::from_fn(|_: RawEvent| async { Ok::<_, BoxError>(()) }),
            )
            .build();
        assert_eq!(
            unserved
                .subscriptions(Protocol::Legacy)
                .unwrap_err()
                .as_str(),
            "message.upsert"
        );
    }

    /// A router is a value: two runs of it (two dispatchers) have their own REST clients, and
    /// a router built from it with more handlers leaves it as it was.
    #[test]
    fn runs_of_one_router_share_only_its_handlers() {
        let router = Router::builder().on(|_: Msg| async { Ok(()) }).build();
        let endpoint = eventsock_core::Endpoint::parse("http://127.0.0.1:9").unwrap();
        let token = eventsock_core::Token::new("t");
        let one = Dispatcher::new(router.clone()).rest(eventsock_rest::RestClient::new(
            &endpoint,
            "one",
            token.clone(),
        ));
        let two = Dispatcher::new(router.clone())
            .rest(eventsock_rest::RestClient::new(&endpoint, "two", token));
        assert!(one.has_rest("one") && !one.has_rest("two"));
        assert!(two.has_rest("two") && !two.has_rest("one"));
        let more = router
            .to_builder()
            .include(&Router::builder().on(|_: Msg| async { Ok(()) }).build())
            .build();
        let names =
            |r: &Router| -> Vec<String> { r.handlers().into_iter().map(|h| h.name).collect() };
        assert_eq!(names(&router), ["legacy::MessagesUpsert#0"]);
        assert_eq!(
            names(&more),
            ["legacy::MessagesUpsert#0", "legacy::MessagesUpsert#1"]
        );
        // The handler they share counts for both.
        let (_, tally) = settle(&more, EventKind::MessagesUpsert, r#"{"keyId":"A"}"#);
        assert_eq!(tally.handled, 2);
        assert_eq!(router.handlers()[0].handled, 1);
    }

    /// An actor that has stopped fails the event it was offered, and is offered no other.
    #[test]
    fn a_stopped_actor_is_offered_no_more_events() {
        struct Quits;
        impl actix::Actor for Quits {
            type Context = actix::Context<Self>;
        }
        impl actix::Handler<Msg> for Quits {
            type Result = ();
            fn handle(&mut self, _: Msg, cx: &mut actix::Context<Self>) {
                actix::ActorContext::stop(cx);
            }
        }
        actix_rt::System::new().block_on(async {
            let router = Router::builder()
                .actor(actix::Actor::start(Quits).recipient())
                .build();
            let dispatcher = Dispatcher::new(router.clone());
            let event = EventName::from(EventKind::MessagesUpsert);
            let mut gone = Vec::new();
            for _ in 0..3 {
                let tally = dispatcher
                    .handle(
                        &event,
                        Some(Channel::Legacy),
                        r#"{"keyId":"A"}"#,
                        &meta(&event),
                        true,
                    )
                    .await;
                gone.push((tally.handled, tally.gone));
            }
            // Handled, then found gone, then not offered at all.
            assert_eq!(gone, [(1, 0), (0, 1), (0, 0)]);
            assert_eq!(router.alive(), 0);
        });
    }
}
