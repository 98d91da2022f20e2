//! `eventsock bridge` and `eventsock worker`: ingest once into NATS JetStream, process anywhere.

use eventsock_client::{Backfill, ClientError, Shutdown, Supervisor};
use eventsock_core::EventName;
use eventsock_handler::builtin::log_raw;
use eventsock_handler::Router;
use eventsock_nats::{
    FlushIngest, GetIngestStats, Ingest, KvCheckpoint, KvLease, StreamConfig, Worker,
};

#[derive(Debug, clap::Args)]
pub(crate) struct BridgeArgs {
    #[command(flatten)]
    server: super::ServerArgs,
    /// The NATS server.
    #[arg(long, env = "EVENTSOCK_NATS", default_value = "nats://127.0.0.1:4222")]
    nats: String,
    /// After every gap (and at start-up), recover the missed messages.upsert events over REST
    /// and ingest them too, keeping the checkpoint in the NATS KV bucket eventsock-checkpoints
    /// (one key per instance), so a bridge started again anywhere goes on from there.
    #[arg(long)]
    backfill: bool,
    /// Take the streams another eventsock process holds (on this host, or a bridge on any host
    /// of this NATS): it stands down, and takes them back when this one ends.
    #[arg(long)]
    take: bool,
    /// How long a bridge's lease in NATS lasts unless renewed (it is renewed every third of
    /// this): how long after a bridge dies another one may take its streams.
    #[arg(long, default_value = "15s", value_parser = super::duration)]
    lease_ttl: std::time::Duration,
    #[command(flatten)]
    stream: StreamArgs,
}

/// Where the events are in JetStream.
#[derive(Debug, clap::Args)]
pub(crate) struct StreamArgs {
    /// The JetStream stream.
    #[arg(long, default_value = "EVENTSOCK")]
    stream: String,
    /// Subject prefix: events go to PREFIX.<instance>.<event>.
    #[arg(long, default_value = "eventsock")]
    prefix: String,
    /// Partition the stream by chat into this many parts, one worker each (0: none). Needs
    /// nats-server 2.10 or later, and a stream of its own (--stream and --prefix) if an
    /// unpartitioned one exists.
    #[arg(long, default_value_t = 0)]
    partitions: u32,
}

impl StreamArgs {
    pub(crate) fn config(&self) -> StreamConfig {
        let mut cfg = StreamConfig::default();
        cfg.stream = self.stream.clone();
        cfg.prefix = self.prefix.clone();
        cfg.partitions = self.partitions;
        cfg
    }
}

#[derive(Debug, clap::Args)]
pub(crate) struct WorkerArgs {
    /// The NATS server.
    #[arg(long, env = "EVENTSOCK_NATS", default_value = "nats://127.0.0.1:4222")]
    nats: String,
    /// Only this event (default: every event).
    #[arg(long)]
    event: Option<String>,
    /// The shared consumer: workers with the same name share the work.
    #[arg(long, default_value = "eventsock-workers")]
    durable: String,
    #[command(flatten)]
    stream: StreamArgs,
    /// Only this partition of a partitioned stream (0 to --partitions - 1), on a consumer of
    /// its own: one worker per partition keeps each chat in order.
    #[arg(long)]
    partition: Option<u32>,
}

pub(crate) async fn bridge(args: BridgeArgs) -> anyhow::Result<()> {
    let (source, events) = args.server.source()?;
    eprintln!(
        "eventsock bridge: connecting to NATS at {}",
        shown(&args.nats)
    );
    // NATS may be down: the connection is retried (and said so) until it answers or Ctrl-C.
    let ingest = tokio::select! {
        ingest = Ingest::start(&args.nats, args.stream.config()) => ingest?,
        _ = super::terminated() => {
            eprintln!("eventsock bridge: stopped before NATS answered");
            return Ok(());
        }
    };
    // One bridge per stream across hosts: the lease in NATS decides, before anything connects.
    let endpoint = source.endpoint().to_string();
    let mut lease = tokio::select! {
        lease = KvLease::hold(&args.nats, &endpoint, source.instance(), args.lease_ttl, args.take) => {
            lease.map_err(|e| super::not_started(ClientError::Lease(e)))?
        }
        _ = super::terminated() => return Ok(()),
    };
    let mut builder = Supervisor::builder();
    if args.backfill {
        let store =
            KvCheckpoint::open(&args.nats, "eventsock-checkpoints", source.instance()).await?;
        builder = builder.backfill(Backfill::new().store(std::sync::Arc::new(store)));
    }
    let supervisor = builder
        .source(source)
        .leases(super::leases()?)
        .take(args.take)
        .router(
            Router::builder()
                .raw(
                    events,
                    ingest.clone().recipient::<eventsock_core::RawFrame>(),
                )
                .build(),
        )
        .start()
        .map_err(super::not_started)?;
    eprintln!(
        "eventsock bridge: ingesting into the {} stream{}; Ctrl-C stops",
        args.stream.stream,
        match args.stream.partitions {
            0 => String::new(),
            n => format!(", {n} partitions by chat"),
        }
    );
    tokio::select! {
        _ = super::terminated() => {}
        _ = lease.keep_for(&supervisor) => {}
    }
    let status = supervisor.send(Shutdown).await?;
    lease.release().await;
    // Every event read is published before the process exits.
    ingest.send(FlushIngest).await?;
    let stats = ingest.send(GetIngestStats).await?;
    eprint!("{}", super::tail::summary(&status));
    eprintln!(
        "published {} events ({} publish retries)",
        stats.published, stats.retries
    );
    Ok(())
}

/// The worker's handler: logs every event (see examples for real handlers).
pub(crate) async fn worker(args: WorkerArgs) -> anyhow::Result<()> {
    let mut worker = Worker::new(args.nats.as_str())
        .stream(args.stream.config())
        .durable(args.durable);
    if let Some(k) = args.partition {
        worker = worker.partition(k);
    }
    if let Some(e) = &args.event {
        worker = worker.events([EventName::parse(e)]);
    }
    eprintln!(
        "eventsock worker: connecting to NATS at {}; Ctrl-C stops",
        shown(&args.nats)
    );
    let stats = worker
        .router(Router::builder().raw_route(None, log_raw()).build())
        .run(super::terminated())
        .await?;
    eprintln!(
        "handled {} events ({} redelivered), {} failed, {} dead-lettered, {} with no route",
        stats.handled, stats.redelivered, stats.failed, stats.dead, stats.unrouted
    );
    Ok(())
}

/// A NATS URL without credentials.
pub(crate) fn shown(url: &str) -> &str {
    match url.rsplit_once('@') {
        Some((_, host)) => host,
        None => url,
    }
}
