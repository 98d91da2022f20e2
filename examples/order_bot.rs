//! An order-taking conversation whose state survives restarts: what, which size, where to, then
//! the order. Each chat's state is kept in a SQLite file (`ORDER_BOT_DB`, by default
//! `order-bot.db`), so a bot killed mid-conversation goes on where the chat was when it is
//! started again.
//!
//! ```sh
//! cargo run --example order_bot -- --url http://HOST:8084 --token-file PATH   # a real server
//! cargo run --example order_bot                 # the built-in simulator
//! ```
//!
//! With no URL it runs against the built-in simulator and prints its address; write to the bot
//! as a customer would with `curl -X POST http://ADDRESS/control/emit -H 'content-type:
//! application/json' -d '{"instance": "codechat", "event": "messages.upsert", "data": {"keyId":
//! "A1", "keyRemoteJid": "5511988887777@s.whatsapp.net", "content": {"text": "hi"}}}'` (a new
//! `keyId` for every message). The simulator logs the bot's answers (`sent: ...`).
//! `scripts/order-bot-restart.sh` does this, killing the bot with SIGKILL in the middle of an
//! order and starting it again.

use eventsock::handler::{Dialogue, SqliteStore, StateStore};
use eventsock::prelude::*;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// Where a chat is in its order.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
enum Order {
    #[default]
    Start,
    Item,
    Size {
        item: String,
    },
    Address {
        item: String,
        size: String,
    },
}

fn main() {
    let path = std::env::var("ORDER_BOT_DB").unwrap_or_else(|_| "order-bot.db".into());
    let store = match SqliteStore::open(&path) {
        Ok(store) => Arc::new(store),
        Err(e) => {
            eprintln!("order_bot: {e}");
            std::process::exit(1);
        }
    };
    router(store).run()
}

/// The bot, keeping each chat's state in `store`.
fn router(store: Arc<dyn StateStore>) -> Router {
    let dialogue = Dialogue::<Order>::new(store)
        // A conversation left for an hour starts over.
        .idle_timeout(Duration::from_secs(3600))
        .when(
            |s| matches!(s, Order::Start),
            |msg: Msg, _| async move {
                let cx = &msg.cx;
                cx.reply("Hello! What would you like: pizza or salad?")
                    .await?;
                Ok(Order::Item)
            },
        )
        .when(
            |s| matches!(s, Order::Item),
            |msg: Msg, s| async move {
                let cx = &msg.cx;
                let item = msg.text().unwrap_or_default().trim().to_lowercase();
                if item != "pizza" && item != "salad" {
                    cx.reply("Pizza or salad?").await?;
                    return Ok(s);
                }
                cx.reply(&format!("One {item}. Which size: small or large?"))
                    .await?;
                Ok(Order::Size { item })
            },
        )
        .when(
            |s| matches!(s, Order::Size { .. }),
            |msg: Msg, s| async move {
                let cx = &msg.cx;
                let Order::Size { item } = s else {
                    return Ok(s);
                };
                let size = msg.text().unwrap_or_default().trim().to_lowercase();
                if size != "small" && size != "large" {
                    cx.reply("Small or large?").await?;
                    return Ok(Order::Size { item });
                }
                cx.reply("Where shall we bring it?").await?;
                Ok(Order::Address { item, size })
            },
        )
        .when(
            |s| matches!(s, Order::Address { .. }),
            |msg: Msg, s| async move {
                let cx = &msg.cx;
                let Order::Address { item, size } = s else {
                    return Ok(s);
                };
                let address = msg.text().unwrap_or_default().trim().to_owned();
                cx.reply(&format!(
                    "Ordered: one {size} {item}, to {address}. Thank you!"
                ))
                .await?;
                Ok(Order::Start)
            },
        );
    Router::builder()
        // Answers at a human pace, one per chat every second.
        .pacing(Pacing::default().rate(2.0).per_chat(Duration::from_secs(1)))
        .dialogue(dialogue)
        .build()
}

/// `cargo test --example order_bot --features testkit`
#[cfg(test)]
mod tests {
    use super::router;
    use eventsock::handler::MemoryStore;
    use eventsock::testkit::TestKit;
    use std::sync::Arc;
    use std::time::Duration;

    fn kit() -> TestKit {
        TestKit::new(router(Arc::new(MemoryStore::default())))
    }

    #[actix_rt::test]
    async fn an_order_from_greeting_to_confirmation() {
        let kit = kit();
        let chat = kit.chat("5511988887777");
        for text in ["hi", "Pizza", "huge", "large", "Rua Augusta 100"] {
            chat.says(text).await;
        }
        assert_eq!(
            chat.replies().await,
            [
                "Hello! What would you like: pizza or salad?",
                "One pizza. Which size: small or large?",
                "Small or large?",
                "Where shall we bring it?",
                "Ordered: one large pizza, to Rua Augusta 100. Thank you!",
            ]
        );
        // One chat, paced at one answer a second: a second of the virtual clock between two
        // answers, and no real time.
        let sent = kit.sent();
        for pair in sent.windows(2) {
            assert!(
                pair[1].at_ms - pair[0].at_ms >= 1000,
                "paced: {} ms",
                pair[1].at_ms - pair[0].at_ms
            );
        }
    }

    #[actix_rt::test]
    async fn two_chats_order_at_once_without_mixing_their_states() {
        let kit = kit();
        let (ana, bruno) = (kit.chat("5511911110000"), kit.chat("5511922220000"));
        ana.says("hi").await;
        bruno.says("hi").await;
        ana.says("salad").await;
        bruno.says("pizza").await;
        ana.says("small").await;
        assert_eq!(
            ana.replies().await.last().map(String::as_str),
            Some("Where shall we bring it?")
        );
        assert_eq!(
            bruno.replies().await.last().map(String::as_str),
            Some("One pizza. Which size: small or large?")
        );
    }

    #[actix_rt::test]
    async fn a_conversation_left_for_an_hour_starts_over() {
        let kit = kit();
        let chat = kit.chat("5511988887777");
        chat.says("hi").await;
        chat.says("pizza").await;
        chat.replies().await;
        kit.advance(Duration::from_secs(3601)).await;
        chat.says("large").await;
        assert_eq!(
            chat.replies().await,
            ["Hello! What would you like: pizza or salad?"]
        );
    }

    #[actix_rt::test]
    async fn within_the_hour_it_goes_on() {
        let kit = kit();
        let chat = kit.chat("5511988887777");
        chat.says("hi").await;
        chat.says("pizza").await;
        chat.replies().await;
        kit.advance(Duration::from_secs(3500)).await;
        chat.says("large").await;
        assert_eq!(chat.replies().await, ["Where shall we bring it?"]);
    }
}
