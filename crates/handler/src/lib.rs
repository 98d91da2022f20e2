//! What bot authors write and compose: the [`Router`], typed pipelines, bot actors with
//! per-chat ordering, supervised handlers, and built-ins.
//!
//! # One handler model
//!
//! Every handler of a `T` event receives a [`Received<T>`]: the event together with its
//! [`Ctx`], which answers it (`reply`, `send`, `send_to`, `react`, `mark_read`) through the
//! outbox of the event's instance. The handler can be a closure ([`RouterBuilder::on`]), a
//! [`Route`] built from [`Pipeline`] steps ([`RouterBuilder::route`]), an actix actor that
//! handles `Received<T>` ([`RouterBuilder::actor`]; [`Bot`] runs a route as one, with per-chat
//! ordering), or a [`Dialogue`] over each chat's state. Handlers are registered on one
//! [`RouterBuilder`]; the [`Router`] it builds never changes. The live supervisor (crate
//! `eventsock-client`), [`builtin::Replay`] and the NATS worker each run a router in a
//! [`Dispatcher`] of their own, so a bot is written once.
//!
//! ```
//! use eventsock_core::{legacy, MessageLike};
//! use eventsock_handler::{Received, Router};
//!
//! let bot = Router::builder()
//!     .on(|m: Received<legacy::MessagesUpsert>| async move {
//!         if !m.is_from_me() && m.text() == Some("!ping") {
//!             m.cx.reply("pong").await?;
//!         }
//!         Ok(())
//!     })
//!     .build();
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
//! use eventsock_core::{legacy, MessageLike};
//! use eventsock_handler::{Bot, Received, Route, Router};
//!
//! # #[actix::main] async fn main() {
//! let hello = Route::from_fn(|m: Received<legacy::MessagesUpsert>| async move {
//!     let who = m.sender_name().unwrap_or("someone");
//!     println!("{who} wrote {}", m.text().unwrap_or_default());
//!     Ok::<_, std::convert::Infallible>(())
//! });
//! let bot = Bot::build(hello).start();
//! let router = Router::builder().actor(bot.recipient()).build();
//! # let _ = router; }
//! ```
//!
//! **2. Only commands, never our own messages, and an answer.** [`Pipeline`] steps read left
//! to right; the end gets the message with its context:
//!
//! ```
//! # use eventsock_core::legacy;
//! # use eventsock_handler::{Pipeline, Received, Route};
//! let ping: Route<Received<legacy::MessagesUpsert>> = Pipeline::new()
//!     .incoming()
//!     .command("!ping")
//!     .endpoint(|m: Received<legacy::MessagesUpsert>| async move {
//!         m.cx.reply("pong").await.map(drop)
//!     });
//! ```
//!
//! **3. Several commands.** [`branch`]: the first route that takes the event wins; what none takes
//! is a dead letter ([`BotBuilder::on_dead_letter`]):
//!
//! ```
//! # use eventsock_core::legacy;
//! # use eventsock_handler::{Bot, Pipeline, Received, Route};
//! type Msg = Received<legacy::MessagesUpsert>;
//! # #[actix::main] async fn main() {
//! let say = |word: &'static str| {
//!     Route::from_fn(move |m: Msg| async move { m.cx.reply(word).await.map(drop) })
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
//! **4. Reply.** `m.cx.reply(text)` answers in the message's chat, quoting it, through the
//! instance's outbox (paced, in order per chat, never sent twice). The server emits the reply
//! on `send.message` and `messages.upsert` (which is why step 2 keeps only `incoming()`
//! messages). `examples/echo_bot.rs` is this step; `eventsock::Run::run` runs it.
//!
//! **5. Many chats at once, each in order.** The chat is the key: one chat's messages stay in
//! order, different chats are handled concurrently, on at most 8 workers, with at most 64
//! messages waiting per chat:
//!
//! ```
//! # use eventsock_core::legacy;
//! # use eventsock_core::MessageLike;
//! # use eventsock_handler::{Bot, Received, Route};
//! # use std::time::Duration;
//! # #[actix::main] async fn main() {
//! let slow = Route::from_fn(|m: Received<legacy::MessagesUpsert>| async move {
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
mod command;
mod context;
mod dispatcher;
mod message;
mod pipeline;
mod received;
mod restart;
mod route;
mod router;
pub mod state;

pub use bot::{Bot, BotBuilder, BotStats, Failure, GetBotStats};
pub use command::{ArgSpec, CommandArgs, CommandError, CommandErrorKind, CommandSpec, Commands};
pub use context::Ctx;
pub use dispatcher::{Dispatch, Dispatcher, Gate, Tally};
/// `#[derive(Commands)]`: see the [`Commands`](trait@Commands) trait.
pub use eventsock_macros::Commands;
pub use message::Dedup;
pub use pipeline::{to_actor, Pipeline};
pub use received::Received;
pub use restart::restarting;
pub use route::{branch, fan_out, BoxError, Flow, HandlerError, Route};
pub use router::{HandlerStats, RawMessage, Router, RouterBuilder};
#[cfg(feature = "sqlite")]
pub use state::SqliteStore;
pub use state::{
    now_ms, ChatKey, Dialogue, Loaded, MemoryStore, StateError, StateStore, States, Stored,
};
