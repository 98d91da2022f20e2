//! `eventsock demo`: the whole framework in one process, against the built-in simulator.

use actix::prelude::*;
use eventsock_client::{ClientConfig, GetStatus, Lifecycle, LifecycleKind, Shutdown, Supervisor};
use eventsock_core::Source;
use eventsock_core::{human, legacy, Backoff, Endpoint, MessageLike, Token};
use eventsock_handler::{Received, Router};
use eventsock_sim::{Sim, SimConfig};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

#[derive(Debug, clap::Args)]
pub(crate) struct DemoArgs {
    /// How long to run.
    #[arg(long, default_value = "6s", value_parser = super::duration)]
    duration: Duration,
    /// Events per second the simulated server sends.
    #[arg(long, default_value_t = 10.0)]
    rate: f64,
}

pub(crate) async fn run(args: DemoArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.rate.is_finite() && args.rate > 0.0,
        "--rate must be positive"
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let sim = Sim::new(SimConfig::default());
    let token = Token::new(sim.mint_token("codechat", None));
    let (stop_sim, sim_stopped) = tokio::sync::oneshot::channel::<()>();
    let server = actix_rt::spawn(eventsock_sim::run(listener, sim.clone(), async {
        let _ = sim_stopped.await;
    }));
    println!(
        "eventsock demo: a simulated CodeChat server on http://{addr}, {} events/s",
        args.rate
    );
    println!("handlers: chat (messages.upsert), receipts (messages.update), presence (presence.update)\n");

    let chat = Chat.start();
    let tally = Tally::default().start();
    let mut config = ClientConfig::default();
    config.backoff = Backoff::exponential(Duration::from_millis(100), Duration::from_secs(5));
    let supervisor = Supervisor::builder()
        .config(config)
        .source(Source::new(
            Endpoint::parse(&format!("http://{addr}"))?,
            token,
        )?)
        .router(
            Router::builder()
                .actor::<legacy::MessagesUpsert>(chat.clone().recipient())
                .actor::<legacy::MessagesUpdate>(tally.clone().recipient())
                .actor::<legacy::PresenceUpdate>(tally.clone().recipient())
                .build(),
        )
        .lifecycle(chat.clone().recipient())
        .start()?;
    let generator = actix_rt::spawn(eventsock_sim::generate(
        sim.clone(),
        "codechat".into(),
        args.rate,
    ));

    let started = Instant::now();
    tokio::select! {
        _ = tokio::time::sleep(args.duration / 2) => {
            println!("\n--- the server drops every socket, with no close frame ---\n");
            sim.drop_all();
            tokio::select! {
                _ = tokio::time::sleep(args.duration.saturating_sub(started.elapsed())) => {}
                _ = super::terminated() => {}
            }
        }
        _ = super::terminated() => {}
    }
    generator.abort();
    // Let the events already queued for the sockets arrive before closing (at most a second).
    let (_, queued) = sim.emitted();
    let settle = Instant::now();
    while settle.elapsed() < Duration::from_secs(1) {
        let read: u64 = supervisor
            .send(GetStatus)
            .await?
            .iter()
            .map(|s| s.frames)
            .sum();
        if read >= queued {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let status = supervisor.send(Shutdown).await?;
    let counts = tally.send(Counts).await?;
    let (emitted, taken) = sim.emitted();
    let _ = stop_sim.send(());
    let _ = server.await;

    println!("\nsummary after {}:", human::duration(started.elapsed()));
    println!("{}", super::tail::summary(&status));
    let received: u64 = status.iter().map(|s| s.events).sum();
    println!(
        "the server sent {emitted} events: {taken} were queued for a connected socket, and the client handled {received}."
    );
    if emitted > taken {
        println!(
            "{} were sent while no socket was connected and are gone from the stream: the server has\n\
             no replay, which is why every reconnect comes with a gap notice. Messages among them\n\
             can be recovered over REST: eventsock tail --backfill, or Backfill in code.",
            emitted - taken
        );
    }
    if taken > received {
        println!(
            "{} were still queued in the server when it dropped the sockets, and died with them,\n\
             as a crashed server's buffers do; they fall inside the gap notice's span.",
            taken - received
        );
    }
    let counts: Vec<String> = counts.iter().map(|(k, n)| format!("{k}: {n}")).collect();
    println!("receipts and presence seen: {}", counts.join(", "));
    Ok(())
}

/// Prints chat messages and lifecycle changes.
#[derive(Default)]
struct Chat;

impl Actor for Chat {
    type Context = Context<Self>;
}

impl Handler<Received<legacy::MessagesUpsert>> for Chat {
    type Result = ();

    fn handle(&mut self, msg: Received<legacy::MessagesUpsert>, _: &mut Context<Self>) {
        println!(
            "  [conn {} #{:<3}] {}: {}",
            msg.meta.generation,
            msg.meta.seq,
            msg.sender_name().unwrap_or("?"),
            msg.text().unwrap_or("(no text)")
        );
    }
}

impl Handler<Lifecycle> for Chat {
    type Result = ();

    fn handle(&mut self, msg: Lifecycle, _: &mut Context<Self>) {
        let what = match msg.kind {
            LifecycleKind::Connecting { .. } => return,
            LifecycleKind::Gap { from, to } => format!(
                "gap notice: events from {} ago to {} ago may be lost",
                human::duration(from.elapsed().unwrap_or_default()),
                human::duration(to.elapsed().unwrap_or_default())
            ),
            other => other.to_string(),
        };
        println!("  >> {} {}: {what}", msg.instance, msg.event);
    }
}

/// Counts receipts by status and presence by state.
#[derive(Default)]
struct Tally(BTreeMap<String, u64>);

impl Actor for Tally {
    type Context = Context<Self>;
}

impl Handler<Received<legacy::MessagesUpdate>> for Tally {
    type Result = ();

    fn handle(&mut self, msg: Received<legacy::MessagesUpdate>, _: &mut Context<Self>) {
        let key = format!("receipt {}", msg.status.as_deref().unwrap_or("(none)"));
        *self.0.entry(key).or_default() += 1;
    }
}

impl Handler<Received<legacy::PresenceUpdate>> for Tally {
    type Result = ();

    fn handle(&mut self, msg: Received<legacy::PresenceUpdate>, _: &mut Context<Self>) {
        for p in msg.presences.values() {
            let key = format!(
                "presence {}",
                p.last_known_presence.as_deref().unwrap_or("?")
            );
            *self.0.entry(key).or_default() += 1;
        }
    }
}

#[derive(Message)]
#[rtype(result = "BTreeMap<String, u64>")]
struct Counts;

impl Handler<Counts> for Tally {
    type Result = MessageResult<Counts>;

    fn handle(&mut self, _: Counts, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.0.clone())
    }
}
