//! A composed pipeline: skip our own messages, drop duplicates, count, then route by command,
//! by message type and by chat, answering through each message's context (the outbox paces
//! the answers); what no branch takes is a dead letter.
//!
//! ```sh
//! cargo run --example pipeline                                   # built-in simulator, 3 s of traffic
//! cargo run --example pipeline -- --url http://HOST:8084 --token-file PATH
//! ```

use eventsock::handler::GetBotStats;
use eventsock::prelude::*;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Prints the message under `label`.
fn say(label: &'static str) -> Route<Msg> {
    Route::from_fn(move |m: Msg| {
        println!(
            "[{label:>8}] {:<14} {}",
            m.sender_name().unwrap_or("?"),
            m.text().unwrap_or("(media)")
        );
        async { Ok::<_, Infallible>(()) }
    })
}

/// Prints the message under `label` and answers it with `answer`, quoting it.
fn answer(label: &'static str, answer: &'static str) -> Route<Msg> {
    let say = say(label);
    Route::from_fn(move |m: Msg| {
        let said = say.call(m.clone());
        async move {
            said.await?;
            m.cx.reply(answer).await?;
            Ok::<_, BoxError>(())
        }
    })
}

#[actix_rt::main]
async fn main() -> Result<(), BoxError> {
    let seen = Arc::new(AtomicU64::new(0));
    let counter = seen.clone();
    let dedup = Dedup::new(Duration::from_secs(60));

    let route = Pipeline::<Msg>::new()
        .incoming()
        .dedup_messages(&dedup)
        .inspect(move |_| {
            counter.fetch_add(1, Ordering::Relaxed);
        })
        .branch([
            Pipeline::new()
                .command("!ping")
                .to_route(answer("command", "pong")),
            Pipeline::new()
                .message_type("imageMessage")
                .to_route(answer("image", "nice picture")),
            // At most 5 a second from Maria; the rest wait their turn.
            Pipeline::new()
                .chat("5511988887777@s.whatsapp.net")
                .to_route(say("maria").throttle(5, Duration::from_secs(1))),
        ]);
    // A Bot actor runs the route and keeps the dead letters' count.
    let bot = Bot::build(route).start();
    let running = Router::builder()
        .actor(bot.clone().recipient())
        .build()
        .start(Settings::from_env()?)
        .await?;

    running.traffic(40.0, Duration::from_secs(3)).await;
    let answered = running.sim().map(|sim| sim.sent().len());
    running.stop().await;
    let stats = bot.send(GetBotStats).await?;
    println!(
        "\n{} messages passed the filters; {} handled by a branch, {} taken by none (dead letters)",
        seen.load(Ordering::Relaxed),
        stats.handled,
        stats.dead_letters
    );
    if let Some(answered) = answered {
        println!("{answered} answers reached the simulator (paced by the outbox)");
    }
    Ok(())
}
