//! The `eventsock` command: run a simulated server, tail a live event stream, or watch the whole
//! framework work in one process.

mod cli;

use clap::{Parser, Subcommand};
use std::io::IsTerminal;

/// Programs that live on the event stream of a CodeChat WhatsApp API server.
#[derive(Debug, Parser)]
#[command(name = "eventsock", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a simulated CodeChat server: event sockets, REST sendText and a control API.
    Sim(cli::sim::SimArgs),
    /// Print events from a server as JSON lines, reconnecting as needed.
    Tail(cli::tail::TailArgs),
    /// A simulator, a supervisor and a few handlers in one process: events flowing, a forced
    /// disconnect and the reconnect, then a summary.
    Demo(cli::demo::DemoArgs),
    /// Ingest events from a CodeChat server into NATS JetStream, once, for workers anywhere.
    Bridge(cli::nats::BridgeArgs),
    /// Process events from NATS JetStream, sharing the work with other workers (logs each).
    Worker(cli::nats::WorkerArgs),
    /// Send JSON lines {"to": JID, "text": "..."} from standard input through the outbox
    /// (paced, in order per chat, never sent twice), printing one JSON line per outcome; or,
    /// with --nats, queue them in the JetStream outbox for `eventsock sender`.
    Send(cli::send::SendArgs),
    /// Send what workers queued in the JetStream outbox, at the instance's pace, printing one
    /// JSON line per outcome. Run one per instance.
    Sender(cli::send::SenderArgs),
}

fn main() {
    let cli = Cli::parse();
    // `tail` and `demo` print lifecycle changes themselves; their logs only add what is wrong.
    let default_filter = match cli.command {
        Command::Sim(_) => "info",
        Command::Tail(_) => "warn",
        Command::Demo(_) => "error",
        Command::Bridge(_) => "warn",
        Command::Worker(_) => "info",
        Command::Send(_) | Command::Sender(_) => "warn",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| default_filter.into()),
        )
        .with_ansi(colour(&std::io::stderr()))
        .with_writer(cli::output::Logs)
        .init();
    let system = actix_rt::System::new();
    let done = |r: anyhow::Result<()>| r.map(|()| 0);
    let result = match cli.command {
        Command::Sim(args) => done(system.block_on(cli::sim::run(args))),
        Command::Tail(args) => system.block_on(cli::tail::run(args)),
        Command::Demo(args) => done(system.block_on(cli::demo::run(args))),
        Command::Bridge(args) => done(system.block_on(cli::nats::bridge(args))),
        Command::Worker(args) => done(system.block_on(cli::nats::worker(args))),
        Command::Send(args) => system.block_on(cli::send::send(args)),
        Command::Sender(args) => done(system.block_on(cli::send::sender(args))),
    };
    let code = result.unwrap_or_else(|e| {
        cli::output::say_line(format_args!("eventsock: {e:#}"));
        1
    });
    cli::output::stderr().flush_within(std::time::Duration::from_secs(1));
    // Exit now: dropping the runtime would wait for whatever still blocks (a DNS lookup that
    // hangs, a write to a reader that stopped), with Ctrl-C no longer handled. Standard output
    // is not flushed here: Rust's is line-buffered, and `tail` writes its own (and may be
    // stopped by a reader that does not read).
    std::process::exit(code)
}

/// Colours only on a terminal, and never with `NO_COLOR` set (https://no-color.org).
fn colour(stream: &impl IsTerminal) -> bool {
    stream.is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}
