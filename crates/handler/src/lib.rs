//! What bot authors write and compose: the [`Router`], typed pipelines, bot actors with
//! per-chat ordering, supervised handlers, and built-ins.
//!
//! # One router
//!
//! A [`Router`] holds "payload type → handlers", and is the one place where a frame is decoded
//! (once per registered type) and delivered. Handlers come in three kinds, all registered on
//! it: async closures given the event and a [`Ctx`] to answer with ([`Router::on`]), [`Route`]s
//! built from typed steps ([`Pipeline`], [`Router::route`]), and actix actors that handle
//! [`Event<T>`](eventsock_core::Event) ([`Router::actor`]; [`Bot`] runs a route as one, with
//! per-chat ordering). The live supervisor (crate `eventsock-client`), [`builtin::Replay`] and
//! the NATS worker all deliver through a router, so a bot is written once.
//!
//! ```
//! use eventsock_core::{legacy, Event, MessageLike};
//! use eventsock_handler::{Ctx, Router};
//!
//! let bot = Router::new().on(|msg: Event<legacy::MessagesUpsert>, cx: Ctx| async move {
//!     if !msg.is_from_me() && msg.text() == Some("!ping") {
//!         cx.reply("pong").await?;
//!     }
//!     Ok(())
//! });
//! # let _ = bot;
//! ```
//!
//! # Tutorial: an echo bot, step by step
//!
//! `examples/echo_bot.rs` is the finished bot; here is how it grows.
//!
//! **1. React to one event type.** A [`Route`] from a closure; [`Bot`] runs it:
//!
//! ```
//! use eventsock_core::{legacy, Event};
//! use eventsock_handler::{Bot, Route};
//!
//! # #[actix::main] async fn main() {
//! let hello = Route::from_fn(|e: Event<legacy::MessagesUpsert>| async move {
//!     let who = e.push_name.as_deref().unwrap_or("someone");
//!     println!("{who} wrote {}", e.text().unwrap_or_default());
//!     Ok::<_, std::convert::Infallible>(())
//! });
//! let bot = Bot::build(hello).start();
//! let router = eventsock_handler::Router::new().actor(bot.recipient());
//! # let _ = router; }
//! ```
//!
//! **2. Only commands, never our own messages.** [`Pipeline`] steps read left to right:
//!
//! ```
//! # use eventsock_core::{legacy, Event};
//! # use eventsock_handler::{Pipeline, Route};
//! let ping: Route<Event<legacy::MessagesUpsert>> = Pipeline::new()
//!     .incoming()
//!     .command("!ping")
//!     .endpoint(|e: Event<legacy::MessagesUpsert>| async move {
//!         println!("ping from {}", e.key_remote_jid.as_deref().unwrap_or("?"));
//!         Ok::<_, std::convert::Infallible>(())
//!     });
//! ```
//!
//! **3. Several commands.** [`branch`]: the first route that takes the event wins; what none takes
//! is a dead letter ([`BotBuilder::on_dead_letter`]):
//!
//! ```
//! # use eventsock_core::{legacy, Event};
//! # use eventsock_handler::{Bot, Pipeline, Route};
//! # use std::convert::Infallible;
//! type Msg = Event<legacy::MessagesUpsert>;
//! # #[actix::main] async fn main() {
//! let say = |word: &'static str| {
//!     Route::from_fn(move |_: Msg| async move {
//!         println!("{word}");
//!         Ok::<_, Infallible>(())
//!     })
//! };
//! let commands = Pipeline::<Msg>::new().incoming().branch([
//!     Pipeline::new().command("!ping").to_route(say("pong")),
//!     Pipeline::new().command("!help").to_route(say("try !ping")),
//! ]);
//! let bot = Bot::build(commands)
//!     .on_dead_letter(|m: Msg| println!("nobody took {}", m.text().unwrap_or_default()))
//!     .start();
//! # let _ = bot; }
//! ```
//!
//! **4. Reply.** A closure registered with [`Router::on`] is given a [`Ctx`]: `cx.reply(text)`
//! answers in the message's chat, quoting it. The server emits the reply on `send.message` and
//! `messages.upsert` (which is why step 2 keeps only `incoming()` messages).
//! `examples/echo_bot.rs` is this step; `eventsock::Run::run` runs it.
//!
//! **5. Many chats at once, each in order.** The chat is the key: one chat's messages stay in
//! order, different chats are handled concurrently, on at most 8 workers, with at most 64
//! messages waiting per chat:
//!
//! ```
//! # use eventsock_core::{legacy, Event};
//! # use eventsock_core::MessageLike;
//! # use eventsock_handler::{Bot, Route};
//! # use std::time::Duration;
//! # #[actix::main] async fn main() {
//! let slow = Route::from_fn(|m: Event<legacy::MessagesUpsert>| async move {
//!     tokio::time::sleep(Duration::from_millis(100)).await; // a database, an LLM...
//!     Ok::<_, std::convert::Infallible>(())
//! });
//! let bot = Bot::build(slow.timeout(Duration::from_secs(30)))
//!     .ordered_by(|m| m.chat().unwrap_or_default().to_owned(), 8, 64)
//!     .start();
//! # let _ = bot; }
//! ```
//!
//! **6. Failures.** A panic or an error in a handler is caught, sent to
//! [`BotBuilder::on_error`], and the bot goes on with the next event. Your own actors can be
//! started again after a panic with [`restarting`]; every event after the failure reaches the
//! new one.
//!
//! **7. Messages sent through the API arrive twice** (on `send.message` and `messages.upsert`).
//! Share one [`Dedup`] between the two pipelines (`.dedup_messages(&dedup)`) and each message is
//! handled once.
//!
//! # Built-ins
//! [`builtin::log`], [`builtin::Recorder`] and [`builtin::Replay`] (record a live stream, replay
//! it offline through the same handlers), `builtin::qr_terminal` (feature `qr`: pair a phone from the
//! terminal).

mod bot;
pub mod builtin;
mod context;
mod message;
mod pipeline;
mod restart;
mod route;
mod router;
pub mod state;

pub use bot::{Bot, BotBuilder, BotStats, Failure, GetBotStats};
pub use context::Ctx;
pub use message::Dedup;
pub use pipeline::{to_actor, Pipeline};
pub use restart::restarting;
pub use route::{branch, fan_out, BoxError, Flow, HandlerError, Route};
pub use router::{Dispatch, Gate, HandlerStats, Outcome, Router, Tally};
#[cfg(feature = "sqlite")]
pub use state::SqliteStore;
pub use state::{
    now_ms, ChatKey, Dialogue, Loaded, MemoryStore, StateError, StateStore, States, Stored,
};
