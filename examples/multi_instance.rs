//! One supervisor over several instances: a connection per (instance, event), restarted on its
//! own, with lifecycle changes and a status table.
//!
//! ```sh
//! cargo run --example multi_instance                              # built-in simulator, 2 instances
//! cargo run --example multi_instance -- --url http://HOST:8084 --token JWT1 --token JWT2
//! ```

use actix::{Actor, Context, Handler};
use eventsock::prelude::*;
use eventsock::sim::{Embedded, SimConfig};
use std::time::Duration;

struct Watcher;

impl Actor for Watcher {
    type Context = Context<Self>;
}

impl Handler<Lifecycle> for Watcher {
    type Result = ();

    fn handle(&mut self, l: Lifecycle, _: &mut Context<Self>) {
        let what = match l.kind {
            LifecycleKind::Connecting { .. } => return,
            LifecycleKind::Gap { from, to } => format!(
                "gap: {} during which events may be lost (resync over REST)",
                eventsock::core::human::duration(to.duration_since(from).unwrap_or_default())
            ),
            other => other.to_string(),
        };
        println!("  >> {:<9} {:<16} {what}", l.instance, l.event.as_str());
    }
}

#[actix_rt::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let tokens: Vec<Token> = args
        .windows(2)
        .filter(|w| w[0] == "--token")
        .map(|w| Token::new(w[1].as_str()))
        .collect();
    let url = args
        .windows(2)
        .find(|w| w[0] == "--url")
        .map(|w| w[1].clone());
    let (endpoint, tokens, sim) = match url {
        Some(url) if !tokens.is_empty() => (Endpoint::parse(&url)?, tokens, None),
        Some(_) => anyhow::bail!("give one --token per instance"),
        None => {
            let sim = Embedded::start(SimConfig {
                instances: vec!["codechat".into(), "sales".into()],
                ..SimConfig::default()
            })?;
            let tokens = ["codechat", "sales"].map(|i| Token::new(sim.sim.mint_token(i, None)));
            (Endpoint::parse(&sim.url())?, tokens.to_vec(), Some(sim))
        }
    };

    let print = Route::from_fn(|e: Msg| {
        println!(
            "[{:<8}] {}: {}",
            e.meta.instance.as_deref().unwrap_or("?"),
            e.sender_name().unwrap_or("?"),
            e.text().unwrap_or("(media)")
        );
        async { Ok::<_, std::convert::Infallible>(()) }
    });
    let mut builder = eventsock::client::Supervisor::builder()
        .router(
            Router::builder()
                .actor::<legacy::MessagesUpsert>(Bot::build(print).start().recipient())
                .build(),
        )
        .lifecycle(Watcher.start().recipient());
    for token in tokens {
        builder = builder.source(Source::new(endpoint.clone(), token)?);
    }
    let supervisor = builder.start()?;

    match &sim {
        Some(sim) => {
            let a = actix_rt::spawn(eventsock::sim::generate(
                sim.sim.clone(),
                "codechat".into(),
                4.0,
            ));
            let b = actix_rt::spawn(eventsock::sim::generate(
                sim.sim.clone(),
                "sales".into(),
                4.0,
            ));
            tokio::time::sleep(Duration::from_secs(2)).await;
            println!("\n--- the server drops every socket ---\n");
            sim.sim.drop_all();
            tokio::time::sleep(Duration::from_secs(2)).await;
            a.abort();
            b.abort();
        }
        None => tokio::signal::ctrl_c().await?,
    }
    println!(
        "\n{:<10} {:<18} {:>10} {:>8} {:>9}",
        "instance", "event", "state", "events", "restarts"
    );
    for s in supervisor.send(GetStatus).await? {
        println!(
            "{:<10} {:<18} {:>10} {:>8} {:>9}",
            s.instance,
            s.event.as_str(),
            s.state.to_string(),
            s.events,
            s.restarts
        );
    }
    supervisor.send(Shutdown).await?;
    Ok(())
}
