//! An echo bot: answers `!ping` with `pong`, quoting the ping.
//!
//! ```sh
//! cargo run --example echo_bot -- --url http://HOST:8084 --token-file PATH   # a real server
//! cargo run --example echo_bot                                         # the built-in simulator
//! ```
//!
//! With no URL it runs against the built-in simulator and prints its address; send it a ping
//! with `curl -X POST http://ADDRESS/control/emit -H 'content-type: application/json' -d
//! '{"instance": "codechat", "event": "messages.upsert", "data": {"keyId": "A1",
//! "keyRemoteJid": "5511988887777@s.whatsapp.net", "messageType": "conversation",
//! "content": {"text": "!ping"}}}'`, and see what the bot sent with `curl
//! http://ADDRESS/control/requests`.
//! Ctrl-C stops it.

use eventsock::prelude::*;

fn main() {
    router().run()
}

/// The bot: `!ping` is answered `pong`, quoting it.
fn router() -> Router {
    Router::builder()
        .on(|msg: Msg| async move {
            if !msg.is_from_me() && msg.text() == Some("!ping") {
                msg.cx.reply("pong").await?;
            }
            Ok(())
        })
        .build()
}

/// `cargo test --example echo_bot --features testkit`
#[cfg(test)]
mod tests {
    use super::router;
    use eventsock::testkit::TestKit;

    #[actix_rt::test]
    async fn a_ping_is_answered_pong_quoting_it() {
        let kit = TestKit::new(router());
        let chat = kit.chat("5511988887777");
        let tally = chat.says("!ping").await;
        assert_eq!(tally.handled, 1);
        assert_eq!(chat.replies().await, ["pong"]);
        let sent = kit.sent();
        let ping = &kit.sim().stored(kit.instance())[0];
        assert_eq!(sent[0].quoted.as_deref(), ping["keyId"].as_str());
    }

    #[actix_rt::test]
    async fn anything_else_is_not_answered() {
        let kit = TestKit::new(router());
        let chat = kit.chat("5511988887777");
        for text in ["ping", "!pong", "hello", "!ping please"] {
            chat.says(text).await;
        }
        assert_eq!(chat.replies().await, Vec::<String>::new());
    }

    #[actix_rt::test]
    async fn each_chat_gets_its_own_answer() {
        let kit = TestKit::new(router());
        let (ana, bruno) = (kit.chat("5511911110000"), kit.chat("5511922220000"));
        ana.says("!ping").await;
        bruno.says("!ping").await;
        ana.says("!ping").await;
        assert_eq!(ana.replies().await, ["pong", "pong"]);
        assert_eq!(bruno.replies().await, ["pong"]);
    }
}
