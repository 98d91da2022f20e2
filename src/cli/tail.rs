//! `eventsock tail`: every event as one JSON line on stdout; lifecycle and errors on stderr.

use super::output::{say, Output};
use actix::prelude::*;
use eventsock_client::{
    Backfill, ClientConfig, GetStatus, Lifecycle, LifecycleKind, Shutdown, SubscriptionStatus,
    Supervisor,
};
use eventsock_core::{human, Backoff, Intensity, Origin, RawEvent, Undelivered};
use eventsock_handler::Router;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;

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
    /// Give a subscription up after this many connections that came up and dropped at once...
    #[arg(long, default_value_t = 10)]
    max_restarts: u32,
    /// ...within this window. Attempts that never connect (server down) never count.
    #[arg(long, default_value = "5m", value_parser = super::duration)]
    restart_window: Duration,
    /// After every gap (and at start-up, from --checkpoint), recover the missed messages.upsert
    /// events over REST (POST /chat/findMessages; the server must save messages,
    /// DATABASE_SAVE_DATA_NEW_MESSAGE=true) and print them like live ones, oldest first, with
    /// "backfilled": true.
    #[arg(long)]
    backfill: bool,
    /// Keep the last delivered message and the recent message ids in FILE (written atomically),
    /// so that tail started again recovers what arrived while it was down. Needs --backfill.
    #[arg(long, value_name = "FILE", requires = "backfill")]
    checkpoint: Option<std::path::PathBuf>,
    /// Take the streams another eventsock process holds: it stands down, and takes them back
    /// (recovering what it missed) when this one ends.
    #[arg(long, conflicts_with = "nats")]
    take: bool,
    /// Also hold the streams in this NATS server (as `eventsock bridge` does), so that an
    /// eventsock process on another host of that NATS does not take them either.
    #[arg(long, value_name = "URL", conflicts_with = "nats")]
    lease_nats: Option<String>,
    /// Print the events `eventsock bridge` ingests into this NATS server's JetStream, from now
    /// on, instead of connecting to the CodeChat server (which would take the bridge's stream):
    /// no --url or --token needed.
    #[arg(long, value_name = "URL")]
    nats: Option<String>,
    #[command(flatten)]
    stream: super::nats::StreamArgs,
}

/// Tails until Ctrl-C, SIGTERM, a reader gone, or nothing left; the exit status.
pub(crate) async fn run(args: TailArgs) -> anyhow::Result<i32> {
    anyhow::ensure!(
        args.backoff_min <= args.backoff_max,
        "--backoff-min ({}) is larger than --backoff-max ({})",
        human::duration(args.backoff_min),
        human::duration(args.backoff_max)
    );
    if let Some(nats) = &args.nats {
        return follow(nats, &args).await;
    }
    let (source, events) = args.server.source()?;
    let mut config = ClientConfig::default();
    config.ping_interval = args.ping_interval;
    config.pong_timeout = args.pong_timeout;
    config.backoff = Backoff::exponential(args.backoff_min, args.backoff_max);
    config.intensity = Intensity {
        max_restarts: args.max_restarts,
        within: args.restart_window,
    };

    // Held across hosts when asked: refused (or taken) before anything connects.
    let mut lease = match &args.lease_nats {
        Some(url) => {
            let endpoint = source.endpoint().to_string();
            let ttl = Duration::from_secs(15);
            let held =
                eventsock_nats::KvLease::hold(url, &endpoint, source.instance(), ttl, args.take);
            // NATS may be down: its connection is retried until it answers, or Ctrl-C.
            tokio::select! {
                held = held => Some(held.map_err(|e| super::not_started(e.into()))?),
                _ = super::terminated() => {
                    say!("eventsock: stopped before NATS answered for --lease-nats");
                    return Ok(0);
                }
            }
        }
        None => None,
    };
    let output = Output::stdout();
    let nothing_left = Arc::new(Notify::new());
    let printer = Printer::new(output.clone(), events.len(), nothing_left.clone()).start();
    let mut builder = Supervisor::builder();
    if args.backfill {
        let mut backfill = Backfill::new();
        if let Some(path) = args.checkpoint {
            backfill = backfill.checkpoint(path);
        }
        builder = builder.backfill(backfill);
    }
    let supervisor = builder
        .config(config)
        .source(source)
        .leases(super::leases()?)
        .take(args.take)
        .router(
            Router::builder()
                .raw(events, printer.clone().recipient::<RawEvent>())
                .undelivered(printer.clone().recipient())
                .build(),
        )
        .lifecycle(printer.clone().recipient())
        .start()
        .map_err(super::not_started)?;
    let keep = async {
        match lease.as_mut() {
            Some(lease) => lease.keep_for(&supervisor).await,
            None => std::future::pending().await,
        }
    };
    let stop = tokio::select! {
        _ = super::terminated() => Stop::Signal,
        _ = output.gone() => Stop::ReaderGone,
        _ = nothing_left.notified() => Stop::NothingLeft,
        _ = keep => Stop::Signal,
    };
    // Everything read is handled and printed before the summary, within bounds: a reader that
    // stopped reading must not hold the exit, and a second Ctrl-C ends at once.
    let drained = async {
        let status = supervisor.send(Shutdown).await;
        output.drained().await;
        status
    };
    let status = tokio::select! {
        status = tokio::time::timeout(SHUTDOWN_GRACE, drained) => match status {
            Ok(Ok(status)) => Some(status),
            Ok(Err(_)) => None,
            Err(_) => {
                say!(
                    "eventsock: not everything was handled within {}",
                    human::duration(SHUTDOWN_GRACE)
                );
                supervisor.send(GetStatus).await.ok()
            }
        },
        _ = output.stalled(Duration::from_secs(1)) => {
            say!(
                "eventsock: {} lines not printed: standard output's reader is not reading",
                output.pending()
            );
            supervisor.send(GetStatus).await.ok()
        }
        _ = super::terminated() => {
            say!("eventsock: stopped at once");
            None
        }
    };
    if let Some(status) = &status {
        say!("{}", summary(status).trim_end());
    }
    if let Some(lease) = lease {
        lease.release().await;
    }
    Ok(match stop {
        Stop::Signal | Stop::ReaderGone => 0,
        Stop::NothingLeft => {
            say!("eventsock: every subscription gave up; nothing is left to tail");
            1
        }
    })
}

/// `tail --nats`: the bridged stream, printed as a socket's would be, until Ctrl-C, SIGTERM or
/// the reader is gone.
async fn follow(nats: &str, args: &TailArgs) -> anyhow::Result<i32> {
    let events = args.server.events();
    let output = Output::stdout();
    let printer = Printer::new(output.clone(), events.len(), Arc::new(Notify::new())).start();
    say!(
        "eventsock: following the {} stream at NATS {}; Ctrl-C stops",
        args.stream.config().stream,
        super::nats::shown(nats)
    );
    let print = |record: eventsock_core::Recorded| {
        let mut meta = record.meta();
        if record.backfilled {
            meta.origin = Origin::Recovered;
        }
        printer.do_send(RawEvent {
            meta,
            data: Arc::new(record.data),
        });
    };
    let stop = async {
        tokio::select! {
            _ = super::terminated() => {}
            _ = output.gone() => {}
        }
    };
    let followed =
        eventsock_nats::follow(nats, &args.stream.config(), &events, print, stop).await?;
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, output.drained()).await;
    say!("eventsock: {followed} events followed");
    Ok(0)
}

/// How long the shutdown may take to close the sockets and print what was read.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Why `tail` stops.
enum Stop {
    /// Ctrl-C or SIGTERM.
    Signal,
    /// Standard output's reader is gone.
    ReaderGone,
    /// Every subscription gave up.
    NothingLeft,
}

/// A table of the subscriptions' final counts.
pub(crate) fn summary(status: &[SubscriptionStatus]) -> String {
    let mut out = format!(
        "{:<28} {:>10} {:>10} {:>10} {:>10}  {}\n",
        "subscription", "frames", "events", "bad", "restarts", "state"
    );
    for s in status {
        out += &format!(
            "{:<28} {:>10} {:>10} {:>10} {:>10}  {}\n",
            format!("{} {}", human::escaped(&s.instance), s.event),
            s.frames,
            s.events,
            s.decode_errors,
            s.restarts,
            s.state
        );
    }
    out
}

/// Writes events to stdout in arrival order, through [`Output`]; reports lifecycle and bad
/// frames on stderr, with whatever the server sent escaped.
struct Printer {
    out: Output,
    /// When the last connection ended, to report how long until the next event.
    disconnected_at: Option<Instant>,
    generation: u64,
    subscriptions: usize,
    gave_up: HashSet<String>,
    nothing_left: Arc<Notify>,
}

impl Printer {
    fn new(out: Output, subscriptions: usize, nothing_left: Arc<Notify>) -> Self {
        Printer {
            out,
            disconnected_at: None,
            generation: 0,
            subscriptions,
            gave_up: HashSet::new(),
            nothing_left,
        }
    }
}

impl Actor for Printer {
    type Context = Context<Self>;
}

impl Handler<RawEvent> for Printer {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, msg: RawEvent, _: &mut Context<Self>) -> Self::Result {
        if msg.meta.generation > self.generation {
            self.generation = msg.meta.generation;
            if let Some(at) = self.disconnected_at.take() {
                say!(
                    "eventsock: first event on connection {} came {} after the disconnect",
                    msg.meta.generation,
                    human::duration(at.elapsed())
                );
            }
        }
        let mut line = serde_json::json!({
            "event": msg.meta.event,
            "instance": msg.meta.instance.as_deref(),
            "data": &*msg.data,
        });
        if msg.meta.origin == Origin::Recovered {
            line["backfilled"] = true.into();
        }
        // The server's text stays the same JSON value, with what a terminal would obey escaped.
        let json = serde_json::to_string(&line).unwrap_or_default();
        let mut bytes = human::json_safe(&json).into_owned().into_bytes();
        bytes.push(b'\n');
        let out = self.out.clone();
        // Waits (without blocking the runtime) while the output queue is full.
        Box::pin(async move {
            out.line(bytes).await;
        })
    }
}

impl Handler<Lifecycle> for Printer {
    type Result = ();

    fn handle(&mut self, msg: Lifecycle, _: &mut Context<Self>) {
        match &msg.kind {
            LifecycleKind::Disconnected { .. } => {
                self.disconnected_at.get_or_insert_with(Instant::now);
            }
            LifecycleKind::GaveUp { .. } => {
                self.gave_up
                    .insert(format!("{} {}", msg.instance, msg.event));
                if self.gave_up.len() >= self.subscriptions {
                    self.nothing_left.notify_one();
                }
            }
            _ => {}
        }
        say!(
            "eventsock: {} {}: {}",
            human::escaped(&msg.instance),
            msg.event,
            msg.kind
        );
    }
}

impl Handler<Undelivered> for Printer {
    type Result = ();

    fn handle(&mut self, msg: Undelivered, _: &mut Context<Self>) {
        say!(
            "eventsock: {} frame {} skipped: {}",
            human::escaped(msg.meta.event.as_str()),
            msg.meta.seq,
            msg.error
        );
    }
}
