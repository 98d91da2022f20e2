//! `eventsock-bench`: end-to-end benchmarks against baselines measured in the same run.
//!
//! ```sh
//! cargo run --release -p eventsock-bench -- all          # everything; writes docs/benchmarks.md
//! cargo run --release -p eventsock-bench -- soak         # 10 million events, resident memory sampled
//! cargo run --release -p eventsock-bench -- fuzz --cases 1000000
//! cargo run --release -p eventsock-bench -- backfill --messages 10000
//! ```

mod backfill;
mod clients;
mod outbox;
mod probes;
mod scaleout;
mod server;
mod state;

use clap::{Parser, Subcommand};
use eventsock_client::Delivery;
use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

#[derive(Parser)]
#[command(about = "eventsock benchmarks")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run every benchmark and write docs/benchmarks.md.
    All {
        /// Events per throughput run.
        #[arg(long, default_value_t = 300_000)]
        events: u64,
        /// Mutated inputs for the fuzz run.
        #[arg(long, default_value_t = 300_000)]
        fuzz_cases: u64,
        /// Skip the criterion decoding benchmarks (they take about a minute).
        #[arg(long)]
        skip_decode: bool,
    },
    /// The load generator (started by the other commands).
    Serve {
        #[arg(long, default_value_t = 0)]
        port: u16,
    },
    /// Idle subscriptions' memory, in a fresh process (started by `all`).
    MemoryProbe {
        #[arg(long)]
        client: String,
        #[arg(long)]
        k: usize,
        #[arg(long)]
        base: String,
    },
    /// One throughput run of one client (for profiling).
    Throughput {
        /// router (a `RouterBuilder::on` closure, the default), evolution (the same on an
        /// Evolution API source: Socket.IO), lean-evolution (Socket.IO by hand into a lean
        /// struct), eventsock (a handler actor), pipelined, lean (raw into a lean struct), raw
        /// (into eventsock's type) or node.
        #[arg(long, default_value = "router")]
        client: String,
        #[arg(long, default_value_t = 1_000_000)]
        events: u64,
        /// Handlers of the stream (router and eventsock clients).
        #[arg(long, default_value_t = 1)]
        handlers: usize,
    },
    /// Mutated frames through parsing and decoding; reports panics.
    Fuzz {
        #[arg(long, default_value_t = 1_000_000)]
        cases: u64,
    },
    /// Recovering a gap over REST: stored messages recovered and delivered, against paging by hand.
    Backfill {
        #[arg(long, default_value_t = 10_000)]
        messages: u64,
        #[arg(long, default_value_t = 100)]
        page: u32,
        #[arg(long, default_value_t = 5)]
        runs: u32,
    },
    /// Paced sends as the simulator sees them: by hand, through the outbox, through faults, and
    /// (with --jetstream) through the JetStream outbox with a sender killed mid-run.
    Outbox {
        #[arg(long, default_value_t = 1000)]
        messages: usize,
        #[arg(long, default_value_t = 50)]
        chats: usize,
        /// Messages per second over all chats.
        #[arg(long, default_value_t = 5.0)]
        rate: f64,
        /// Milliseconds between two messages to one chat.
        #[arg(long, default_value_t = 2000)]
        per_chat_ms: u64,
        /// A NATS server with JetStream: also run the JetStream outbox, with `eventsock sender`.
        #[arg(long)]
        jetstream: Option<String>,
        /// Kill the first sender (SIGKILL) once this many messages arrived.
        #[arg(long, default_value_t = 300)]
        kill_after: usize,
        /// The eventsock binary, built with `--features cli`.
        #[arg(long, default_value = "target/release/eventsock")]
        eventsock: PathBuf,
    },
    /// Ingest into NATS JetStream (a local nats-server) and process on 1 and 3 workers.
    Scaleout {
        #[arg(long, default_value_t = 300_000)]
        events: u64,
    },
    /// The cost of per-chat state per handled event, with each store.
    State {
        #[arg(long, default_value_t = 20_000)]
        events: u64,
        /// A NATS server with JetStream: also measure the NATS KV store.
        #[arg(long)]
        nats: Option<String>,
    },
    /// Many events through the whole stack, resident memory sampled every second.
    Soak {
        #[arg(long, default_value_t = 10_000_000)]
        events: u64,
    },
}

pub(crate) fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The load generator in its own process, and the send reports it prints.
struct ServerProc {
    child: Child,
    port: u16,
    reports: mpsc::Receiver<Report>,
}

/// What the generator says of one connection it fed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Report {
    /// Frames sent.
    pub(crate) sent: u64,
    /// From the first frame to the last, in microseconds.
    pub(crate) us: u64,
    /// When it sent the first frame: microseconds since the Unix epoch (this machine's clock,
    /// which the client shares).
    pub(crate) start_us: u64,
}

impl ServerProc {
    fn start() -> anyhow::Result<ServerProc> {
        let mut child = Command::new(std::env::current_exe()?)
            .args(["serve", "--port", "0"])
            .stdout(Stdio::piped())
            .spawn()?;
        let mut lines = std::io::BufReader::new(child.stdout.take().expect("piped")).lines();
        let first = lines
            .next()
            .ok_or_else(|| anyhow::anyhow!("the server printed nothing"))??;
        let port = first.rsplit(':').next().unwrap_or_default().parse()?;
        let (tx, reports) = mpsc::channel();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                    let _ = tx.send(Report {
                        sent: v["sent"].as_u64().unwrap_or(0),
                        us: v["us"].as_u64().unwrap_or(0),
                        start_us: v["start_us"].as_u64().unwrap_or(0),
                    });
                }
            }
        });
        Ok(ServerProc {
            child,
            port,
            reports,
        })
    }

    fn base(&self, plan: &str) -> String {
        format!("http://127.0.0.1:{}/{plan}", self.port)
    }

    fn ws_url(&self, plan: &str) -> String {
        format!(
            "ws://127.0.0.1:{}/{plan}/ws/events?event=messages.upsert&token=bench",
            self.port
        )
    }

    /// The generator's rate for the last connection, in events per second.
    fn sent_rate(&self) -> f64 {
        match self.report() {
            Some(r) => r.sent as f64 / (r.us.max(1) as f64 / 1e6),
            None => f64::NAN,
        }
    }

    /// The generator's report of the last connection it fed (waiting for it up to 30 s).
    fn report(&self) -> Option<Report> {
        self.reports.recv_timeout(Duration::from_secs(30)).ok()
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Cmd::Serve { port } => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(server::serve(port)),
        Cmd::MemoryProbe { client, k, base } => {
            actix_rt::System::new().block_on(probes::memory(&client, k, &base))
        }
        Cmd::Fuzz { cases } => {
            let r = probes::fuzz(cases)?;
            println!(
                "{} inputs: {} not JSON, {} typed decodes, {} typed decode errors, {} panics; \
                 {} passed a legacy message's check on arrival, and the check and the decode \
                 disagreed on {}",
                r.cases,
                r.not_json,
                r.decoded,
                r.wrong_shape,
                r.panics,
                r.head_checked,
                r.head_disagreements
            );
            anyhow::ensure!(r.panics == 0, "{} inputs panicked", r.panics);
            anyhow::ensure!(
                r.head_disagreements == 0,
                "the check on arrival and the decode disagreed on {} inputs",
                r.head_disagreements
            );
            Ok(())
        }
        Cmd::Soak { events } => actix_rt::System::new().block_on(soak(events)),
        Cmd::Backfill {
            messages,
            page,
            runs,
        } => actix_rt::System::new().block_on(backfill::backfill(messages, page, runs)),
        Cmd::Scaleout { events } => actix_rt::System::new().block_on(async move {
            let server = ServerProc::start()?;
            let r = scaleout::measure(&server, events).await?;
            println!(
                "{events} events: by hand {:.0}/s ({:.2} µs of CPU an event), ingest {:.0}/s ({:.2} µs of CPU an event: {:.0}/s a core)",
                r.by_hand,
                r.by_hand_cpu_us,
                r.ingest,
                r.ingest_cpu_us,
                1e6 / r.ingest_cpu_us
            );
            for (workers, rate) in &r.shared {
                println!("{workers} workers on one durable consumer ({workers} threads): {rate:.0}/s");
            }
            for (workers, ingest, rate, disorder) in r.partitioned {
                println!("{workers} partitions: ingest {ingest:.0}/s, {workers} workers {rate:.0}/s, {disorder} out of their chat's order");
            }
            Ok(())
        }),
        Cmd::State { events, nats } => {
            actix_rt::System::new().block_on(state::state(events.max(1), nats))
        }
        Cmd::Outbox {
            messages,
            chats,
            rate,
            per_chat_ms,
            jetstream,
            kill_after,
            eventsock,
        } => actix_rt::System::new().block_on(outbox::outbox(outbox::Plan {
            messages,
            chats: chats.max(1),
            rate,
            per_chat: Duration::from_millis(per_chat_ms),
            jetstream,
            kill_after,
            eventsock,
        })),
        Cmd::Throughput {
            client,
            events,
            handlers,
        } => actix_rt::System::new().block_on(async move {
            let server = ServerProc::start()?;
            let plan = format!("n={events}/r=0");
            let run = match client.as_str() {
                "eventsock" => {
                    clients::eventsock(&server.base(&plan), events, 1, false, Delivery::Confirmed)
                        .await?
                }
                "pipelined" => {
                    clients::eventsock(&server.base(&plan), events, 1, false, Delivery::Pipelined)
                        .await?
                }
                "router" => clients::router(&server.base(&plan), events, handlers, false).await?,
                "evolution" => clients::evolution(&server.base(&plan), events).await?,
                "lean-evolution" => clients::lean_evolution(&server.base(&plan), events).await?,
                "lean" => clients::lean(&server.ws_url(&plan), events, false).await?,
                "raw" => clients::raw(&server.ws_url(&plan), events, false).await?,
                "node" => clients::node(&server.ws_url(&plan), events).await?,
                other => anyhow::bail!("unknown client {other}"),
            };
            println!(
                "{client}: {} events in {:.3} s = {:.0}/s; generator {:.0}/s",
                run.count,
                run.elapsed_us as f64 / 1e6,
                run.per_second(),
                server.sent_rate()
            );
            Ok(())
        }),
        Cmd::All {
            events,
            fuzz_cases,
            skip_decode,
        } => actix_rt::System::new().block_on(report::all(events, fuzz_cases, skip_decode)),
    }
}

async fn soak(events: u64) -> anyhow::Result<()> {
    let server = ServerProc::start()?;
    let base = server.base(&format!("n={events}/r=0"));
    let sampler = std::thread::spawn(move || {
        let mut samples = Vec::new();
        let start = std::time::Instant::now();
        // Sample until the run is surely over; the main thread prints what it needs.
        while start.elapsed() < Duration::from_secs(3600) {
            samples.push((start.elapsed().as_secs(), probes::rss()));

            std::thread::sleep(Duration::from_secs(1));
            if SOAK_DONE.load(std::sync::atomic::Ordering::Relaxed) {
                break;
            }
        }
        samples
    });
    let run = clients::router(&base, events, 1, false).await?;
    SOAK_DONE.store(true, std::sync::atomic::Ordering::Relaxed);
    let samples = sampler.join().unwrap_or_default();
    let trace: Vec<String> = samples
        .iter()
        .map(|(t, b)| format!("{t}s {:.1}", *b as f64 / 1048576.0))
        .collect();
    let text = format!(
        "soak: {} events in {:.1} s ({:.0}/s); resident memory min {:.1} MiB, max {:.1} MiB over {} samples\nsamples (seconds, MiB): {}",
        run.count,
        run.elapsed_us as f64 / 1e6,
        run.per_second(),
        samples.iter().map(|s| s.1).min().unwrap_or(0) as f64 / 1048576.0,
        samples.iter().map(|s| s.1).max().unwrap_or(0) as f64 / 1048576.0,
        samples.len(),
        trace.join(", ")
    );
    println!("{text}");
    std::fs::write(
        repo_root().join("docs/soak.txt"),
        format!("$ cargo run --release -p eventsock-bench -- soak --events {events}\n{text}\n"),
    )?;
    Ok(())
}

static SOAK_DONE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

mod report;

pub(crate) fn sh_date() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}
