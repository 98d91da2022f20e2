//! An echo bot: answers `!ping` with `pong` through the REST API, quoting the ping.
//!
//! ```sh
//! cargo run --example echo_bot                                   # built-in simulator
//! cargo run --example echo_bot -- --url http://HOST:8084 --token JWT
//! ```
//!
//! With the simulator, the example plays the user too: it sends one `!ping`, prints the reply as
//! it comes back on `send.message`, and exits. Against a real server it runs until Ctrl-C.

use eventsock::client::{Shutdown, Supervisor};
use eventsock::core::MessageLike;
use eventsock::core::Source;
use eventsock::core::{legacy, Event};
use eventsock::handler::{Bot, Pipeline, Route};
use eventsock::rest::RestClient;
use eventsock::sim::SimConfig;
use eventsock::Target;
use std::time::Duration;

#[actix_rt::main]
async fn main() -> anyhow::Result<()> {
    let target = Target::from_args(SimConfig::default())?;
    let source = Source::new(target.endpoint.clone(), target.token.clone())?;
    let rest = RestClient::new(&target.endpoint, source.instance(), target.token.clone());

    // !ping from someone else -> pong, quoting it.
    let echo = Pipeline::<Event<legacy::MessagesUpsert>>::new()
        .incoming()
        .command("!ping")
        .endpoint(move |e| {
            let rest = rest.clone();
            async move {
                // Old-style group ids reach bots with no chat id at all: nothing to answer to.
                let Some(chat) = e.chat() else {
                    println!("<- !ping in a chat the server did not name; not answered");
                    return Ok(());
                };
                println!(
                    "<- {} in {chat}: {}",
                    e.push_name.as_deref().unwrap_or("someone"),
                    e.text().unwrap_or_default()
                );
                rest.reply(chat, "pong", e.message_id().unwrap_or_default())
                    .await?;
                Ok::<_, eventsock::rest::RestError>(())
            }
        });
    // What we sent comes back on send.message.
    let (seen, replied) = tokio::sync::mpsc::unbounded_channel();
    let sent = Route::from_fn(move |e: Event<legacy::SendMessage>| {
        println!(
            "-> sent to {}: {}",
            e.chat().unwrap_or("an unnamed chat"),
            e.text().unwrap_or_default()
        );
        let _ = seen.send(());
        async { Ok::<_, std::convert::Infallible>(()) }
    });
    let supervisor = Supervisor::builder()
        .source(source)
        .handler::<legacy::MessagesUpsert>(Bot::build(echo).start().recipient())
        .handler::<legacy::SendMessage>(Bot::build(sent).start().recipient())
        .start()?;

    match &target.sim {
        Some(sim) => {
            let mut replied = replied;
            let sim = &sim.sim;
            while !(sim.is_subscribed("codechat", "messages.upsert")
                && sim.is_subscribed("codechat", "send.message"))
            {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            sim.emit("codechat", "messages.upsert", &serde_json::json!({
                "keyId": "3A5F1C2B9D8E7F6A5B4C", "keyFromMe": false, "pushName": "Maria Silva",
                "keyRemoteJid": "5511988887777@s.whatsapp.net", "messageType": "conversation",
                "content": {"text": "!ping"}, "messageTimestamp": 1747310400, "device": "ios", "isGroup": false,
            }));
            tokio::time::timeout(Duration::from_secs(10), replied.recv())
                .await
                .map_err(|_| anyhow::anyhow!("no reply within 10 s"))?;
        }
        None => tokio::signal::ctrl_c().await?,
    }
    supervisor.send(Shutdown).await?;
    Ok(())
}
