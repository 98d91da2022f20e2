//! An echo bot as an actix actor: it keeps its own state (how many pings it answered) and
//! answers `!ping` with `pong` through the message's context, like a closure would: the reply
//! goes through the instance's outbox (paced, in order per chat, never sent twice).
//!
//! ```sh
//! cargo run --example actor_bot -- --url http://HOST:8084 --token-file PATH   # a real server
//! cargo run --example actor_bot                                         # the built-in simulator
//! ```
//! Ctrl-C stops it.

use actix::prelude::*;
use eventsock::prelude::*;

/// The bot: an actor with a count of its own.
#[derive(Default)]
struct Echo {
    answered: u64,
}

impl Actor for Echo {
    type Context = Context<Self>;
}

impl Handler<Msg> for Echo {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, msg: Msg, _: &mut Context<Self>) -> Self::Result {
        if msg.is_from_me() || msg.text() != Some("!ping") {
            return Box::pin(async {});
        }
        self.answered += 1;
        let n = self.answered;
        Box::pin(async move {
            match msg.cx.reply(&format!("pong #{n}")).await {
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "the pong was not queued"),
            }
        })
    }
}

#[actix_rt::main]
async fn main() -> Result<(), BoxError> {
    let echo = Echo::default().start();
    let running = Router::builder()
        .actor(echo.recipient())
        .build()
        .start(Settings::from_env()?)
        .await?;
    eprintln!("eventsock: {}", running.describe());
    eventsock::terminated().await;
    running.stop().await;
    Ok(())
}
