//! `eventsock tail`: every event as one JSON line on stdout; lifecycle and errors on stderr.

use actix::prelude::*;
use anyhow::Context as _;
use eventsock_client::{
    ClientConfig, Lifecycle, LifecycleKind, Shutdown, SubscriptionStatus, Supervisor,
};
use eventsock_core::{Backoff, RawEvent, Undelivered};
use std::io::Write;
use std::time::{Duration, Instant};

#[derive(Debug, clap::Args)]
pub(crate) struct TailArgs {
    #[command(flatten)]
    server: super::ServerArgs,
    /// How often to ping the server.
    #[arg(long, default_value = "15s", value_parser = super::duration)]
    ping_interval: Duration,
    /// How long without an answer before the link counts as dead.
    #[arg(long, default_value = "10s", value_parser = super::duration)]
    pong_timeout: Duration,
    /// First reconnect delay.
    #[arg(long, default_value = "500ms", value_parser = super::duration)]
    backoff_min: Duration,
    /// Largest reconnect delay (also the pace of retries after a refused token).
    #[arg(long, default_value = "30s", value_parser = super::duration)]
    backoff_max: Duration,
}

pub(crate) async fn run(args: TailArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.backoff_min <= args.backoff_max,
        "--backoff-min ({:?}) is larger than --backoff-max ({:?})",
        args.backoff_min,
        args.backoff_max
    );
    let (source, events) = args.server.source()?;
    for e in &events {
        if e.kind().is_none() {
            eprintln!("warning: {e:?} is not an event any CodeChat server is known to send; subscribing anyway");
        }
    }
    let mut config = ClientConfig::default();
    config.ping_interval = args.ping_interval;
    config.pong_timeout = args.pong_timeout;
    config.backoff = Backoff::exponential(args.backoff_min, args.backoff_max);

    let printer = Printer::new().start();
    let supervisor = Supervisor::builder()
        .config(config)
        .source(source)
        .raw_handler(events, printer.clone().recipient())
        .lifecycle(printer.clone().recipient())
        .undelivered(printer.clone().recipient())
        .start()?;
    super::terminated().await;
    let status = supervisor.send(Shutdown).await.context("shutting down")?;
    // Everything handled has been printed; flush it before the summary.
    let _ = printer.send(Flush).await;
    eprint!("{}", summary(&status));
    Ok(())
}

/// A table of the subscriptions' final counts.
pub(crate) fn summary(status: &[SubscriptionStatus]) -> String {
    let mut out = format!(
        "{:<28} {:>10} {:>10} {:>10} {:>10}\n",
        "subscription", "frames", "events", "bad", "restarts"
    );
    for s in status {
        out += &format!(
            "{:<28} {:>10} {:>10} {:>10} {:>10}\n",
            format!("{} {}", s.instance, s.event),
            s.frames,
            s.events,
            s.decode_errors,
            s.restarts
        );
    }
    out
}

/// Writes events to stdout in arrival order, buffered and flushed within 20 ms; reports
/// lifecycle and bad frames on stderr.
struct Printer {
    out: std::io::BufWriter<std::io::Stdout>,
    flush_scheduled: bool,
    /// When the last connection ended, to report how long until the next event.
    disconnected_at: Option<Instant>,
    generation: u64,
}

impl Printer {
    fn new() -> Self {
        Printer {
            out: std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout()),
            flush_scheduled: false,
            disconnected_at: None,
            generation: 0,
        }
    }
}

impl Actor for Printer {
    type Context = Context<Self>;
}

impl Handler<RawEvent> for Printer {
    type Result = ();

    fn handle(&mut self, msg: RawEvent, ctx: &mut Context<Self>) {
        let line = serde_json::json!({
            "event": msg.meta.event,
            "instance": msg.meta.instance.as_deref(),
            "data": &*msg.data,
        });
        if serde_json::to_writer(&mut self.out, &line).is_err()
            || self.out.write_all(b"\n").is_err()
        {
            // stdout is gone (a closed pipe): nothing more can be printed.
            System::current().stop();
            return;
        }
        if msg.meta.generation > self.generation {
            self.generation = msg.meta.generation;
            if let Some(at) = self.disconnected_at.take() {
                eprintln!(
                    "eventsock: first event on connection {} came {:?} after the disconnect",
                    msg.meta.generation,
                    at.elapsed()
                );
            }
        }
        if !self.flush_scheduled {
            self.flush_scheduled = true;
            ctx.run_later(Duration::from_millis(20), |act, _| {
                act.flush_scheduled = false;
                let _ = act.out.flush();
            });
        }
    }
}

impl Handler<Lifecycle> for Printer {
    type Result = ();

    fn handle(&mut self, msg: Lifecycle, _: &mut Context<Self>) {
        let what = match &msg.kind {
            LifecycleKind::Connecting { attempt } => format!("connecting (attempt {attempt})"),
            LifecycleKind::Connected { generation } => {
                format!("connected (connection {generation})")
            }
            LifecycleKind::Disconnected { reason, .. } => {
                self.disconnected_at.get_or_insert_with(Instant::now);
                format!("disconnected: {reason}")
            }
            LifecycleKind::Reconnecting { attempt, delay } => {
                format!("reconnecting in {delay:?} (attempt {attempt})")
            }
            LifecycleKind::Gap { from, to } => format!(
                "events between {} and {} may be lost (no replay): resync over REST",
                humantime::format_rfc3339_millis(*from),
                humantime::format_rfc3339_millis(*to)
            ),
            LifecycleKind::GaveUp { reason } => format!("gave up: {reason}"),
            other => format!("{other:?}"),
        };
        eprintln!("eventsock: {} {}: {what}", msg.instance, msg.event);
    }
}

impl Handler<Undelivered> for Printer {
    type Result = ();

    fn handle(&mut self, msg: Undelivered, _: &mut Context<Self>) {
        eprintln!(
            "eventsock: {} frame {} skipped: {}",
            msg.meta.event, msg.meta.seq, msg.error
        );
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct Flush;

impl Handler<Flush> for Printer {
    type Result = ();

    fn handle(&mut self, _: Flush, _: &mut Context<Self>) {
        let _ = self.out.flush();
    }
}
