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
    Router::builder()
        .on(|msg: Msg| async move {
            if !msg.is_from_me() && msg.text() == Some("!ping") {
                msg.cx.reply("pong").await?;
            }
            Ok(())
        })
        .build()
        .run()
}
