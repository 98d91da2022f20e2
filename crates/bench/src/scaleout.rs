//! Ingest into NATS JetStream and process on workers, against the in-process figure.

use crate::ServerProc;
use eventsock_client::{Shutdown, Supervisor};
use eventsock_core::Source;
use eventsock_core::{legacy, Endpoint, EventKind, Token};
use eventsock_handler::{HandlerError, Received, Route, Router};
use eventsock_nats::{GetIngestStats, Ingest, StreamConfig, Worker};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Events per second on each path.
pub(crate) struct Rates {
    /// What a user would write by hand: tokio-tungstenite reading the generator, async-nats
    /// publishing each frame, [`eventsock_nats::WINDOW`] acknowledgements outstanding.
    pub(crate) by_hand: f64,
    pub(crate) ingest: f64,
    /// The bench process's CPU time per event while it ingested, in microseconds.
    pub(crate) ingest_cpu_us: f64,
    /// The same, publishing by hand.
    pub(crate) by_hand_cpu_us: f64,
    /// (workers, events/s): workers on the shared durable consumer, each on a thread of its
    /// own, decoding every event as `legacy::MessagesUpsert`.
    pub(crate) shared: Vec<(usize, f64)>,
    /// Partitioned by chat, one worker (on a thread of its own) per partition:
    /// (workers, ingest events/s, workers' events/s, events out of their chat's order).
    pub(crate) partitioned: Vec<(u32, f64, f64, u64)>,
}

/// What `nats-server --version` prints.
pub(crate) fn nats_version() -> String {
    std::process::Command::new("nats-server")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|_| "unknown version".into())
}

/// Each path's rate, or why it was skipped.
pub(crate) async fn measure(server: &ServerProc, n: u64) -> anyhow::Result<Rates> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let store = std::env::temp_dir().join(format!("eventsock-bench-nats-{port}"));
    let mut nats = std::process::Command::new("nats-server")
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(&store)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let url = format!("nats://127.0.0.1:{port}");
    let result = async {
        let per_event = |from: u64| cpu_us().saturating_sub(from) as f64 / n as f64;
        let cpu = cpu_us();
        let by_hand = by_hand(server, &url, n).await?;
        let by_hand_cpu_us = per_event(cpu);
        let cpu = cpu_us();
        let ingest_rate = ingested(server, &url, StreamConfig::default(), n, 0).await?;
        let ingest_cpu_us = per_event(cpu);
        let mut shared = Vec::new();
        for workers in [1usize, 2] {
            shared.push((workers, on_workers(&url, n, workers).await?));
        }
        let mut partitioned = Vec::new();
        for workers in [1u32, 2, 4] {
            partitioned.push(partitions(server, &url, n, workers).await?);
        }
        Ok(Rates {
            by_hand,
            ingest: ingest_rate,
            ingest_cpu_us,
            by_hand_cpu_us,
            shared,
            partitioned,
        })
    }
    .await;
    let _ = nats.kill();
    let _ = nats.wait();
    let _ = std::fs::remove_dir_all(&store);
    result
}

/// What a user would write by hand to put the stream into JetStream: tokio-tungstenite
/// reading the generator's frames, async-nats publishing each (a message id each, to a stream
/// of its own, file storage) with [`eventsock_nats::WINDOW`] acknowledgements outstanding, as
/// the ingest has. The clock runs from the generator's first frame to the last
/// acknowledgement, as the ingest's does; the stream exists before, as the ingest's does.
async fn by_hand(server: &ServerProc, url: &str, n: u64) -> anyhow::Result<f64> {
    // The server was just started: wait for it to listen.
    let started = Instant::now();
    let client = loop {
        match async_nats::connect(url).await {
            Ok(c) => break c,
            Err(e) if started.elapsed() > Duration::from_secs(10) => anyhow::bail!("{e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    };
    let js = async_nats::jetstream::new(client);
    js.get_or_create_stream(async_nats::jetstream::stream::Config {
        name: "BYHAND".into(),
        subjects: vec!["byhand.>".into()],
        duplicate_window: Duration::from_secs(120),
        ..Default::default()
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let (mut ws, _) =
        tokio_tungstenite::connect_async(server.ws_url(&format!("n={n}/r=0"))).await?;
    let mut window = std::collections::VecDeque::new();
    let mut i = 0u64;
    while i < n {
        let Some(frame) = futures_util::StreamExt::next(&mut ws).await else {
            anyhow::bail!("the generator's stream ended after {i} frames");
        };
        let frame = frame?;
        if !frame.is_text() {
            continue;
        }
        if window.len() >= eventsock_nats::WINDOW {
            if let Some(ack) = window.pop_front() {
                let ack: async_nats::jetstream::context::PublishAckFuture = ack;
                ack.await.map_err(|e| anyhow::anyhow!("{e}"))?;
            }
        }
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(async_nats::header::NATS_MESSAGE_ID, i.to_string().as_str());
        let ack = js
            .publish_with_headers(
                "byhand.codechat.messages.upsert",
                headers,
                frame.into_data(),
            )
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        window.push_back(ack);
        i += 1;
    }
    for ack in window {
        ack.await.map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    let done = crate::server::now_us();
    from_first_frame(server, n, done)
}

/// `n` events over the time from the generator's first frame to `done` (microseconds since
/// the epoch, this machine's clock).
fn from_first_frame(server: &ServerProc, n: u64, done: u64) -> anyhow::Result<f64> {
    let report = server
        .report()
        .ok_or_else(|| anyhow::anyhow!("the generator did not report"))?;
    anyhow::ensure!(
        report.sent == n,
        "the generator sent {} of {n}",
        report.sent
    );
    Ok(n as f64 / (done.saturating_sub(report.start_us).max(1) as f64 / 1e6))
}

/// This process's CPU time so far (user and system), in microseconds (Linux; 0 elsewhere).
fn cpu_us() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command name (which is in parentheses): utime is the 14th field of
    // the line, stime the 15th, in clock ticks (100 a second on Linux).
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (ticks(11) + ticks(12)) * 10_000
}

/// `n` events of the default stream handled by `workers` workers on its shared durable
/// consumer, each on an arbiter (a thread) of its own, decoding every event as
/// `legacy::MessagesUpsert` as the in-process figure does. Events per second.
async fn on_workers(url: &str, n: u64, workers: usize) -> anyhow::Result<f64> {
    let count = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut arbiters = Vec::new();
    for _ in 0..workers {
        let (url, count) = (url.to_owned(), count.clone());
        let arbiter = actix::Arbiter::new();
        arbiter.spawn_fn(move || {
            let route = Route::from_fn(move |e: Received<legacy::MessagesUpsert>| {
                std::hint::black_box(&e.key_id);
                count.fetch_add(1, Ordering::Relaxed);
                async { Ok::<_, HandlerError>(()) }
            });
            let worker = Worker::new(url)
                .durable(format!("bench-{workers}"))
                .router(Router::builder().route(route).build());
            actix_rt::spawn(async move {
                if let Err(e) = worker.run(std::future::pending()).await {
                    eprintln!("worker: {e}");
                }
            });
        });
        arbiters.push(arbiter);
    }
    while count.load(Ordering::Relaxed) < n {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(600),
            "workers too slow"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let rate = n as f64 / started.elapsed().as_secs_f64();
    for a in arbiters {
        a.stop();
    }
    Ok(rate)
}

/// Chats the partitioned runs spread their events over.
const CHATS: u64 = 64;

/// `n` events of [`CHATS`] chats ingested into a stream of `workers` partitions, then one
/// worker per partition, each on an arbiter (a thread) of its own, decoding every event as
/// `legacy::MessagesUpsert`. Returns (workers, ingest events/s, workers' events/s, events
/// handled after a later one of their chat).
async fn partitions(
    server: &ServerProc,
    url: &str,
    n: u64,
    workers: u32,
) -> anyhow::Result<(u32, f64, f64, u64)> {
    let mut cfg = StreamConfig::default();
    cfg.stream = format!("EVENTSOCK_P{workers}");
    cfg.prefix = format!("eventsock-p{workers}");
    cfg.partitions = workers;
    let ingest_rate = ingested(server, url, cfg.clone(), n, CHATS).await?;

    let count = Arc::new(AtomicU64::new(0));
    let disorder = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut arbiters = Vec::new();
    for k in 0..workers {
        let (url, cfg) = (url.to_owned(), cfg.clone());
        let (count, disorder) = (count.clone(), disorder.clone());
        let arbiter = actix::Arbiter::new();
        arbiter.spawn_fn(move || {
            // The last seq seen of each chat, in this partition.
            let last = std::sync::Mutex::new(std::collections::HashMap::<String, u64>::new());
            let route = Route::from_fn(move |e: Received<legacy::MessagesUpsert>| {
                let seq = e.extra.get("seq").and_then(|v| v.as_u64()).unwrap_or(0);
                let chat = e.key_remote_jid.clone().unwrap_or_default();
                let before = last
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .insert(chat, seq);
                if let Some(before) = before {
                    if before > seq {
                        disorder.fetch_add(1, Ordering::Relaxed);
                    }
                }
                count.fetch_add(1, Ordering::Relaxed);
                async { Ok::<_, HandlerError>(()) }
            });
            let worker = Worker::new(url)
                .stream(cfg)
                .durable("bench")
                .partition(k)
                .router(Router::builder().route(route).build());
            actix_rt::spawn(async move {
                if let Err(e) = worker.run(std::future::pending()).await {
                    eprintln!("partition worker {k}: {e}");
                }
            });
        });
        arbiters.push(arbiter);
    }
    while count.load(Ordering::Relaxed) < n {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(600),
            "partition workers too slow"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let rate = n as f64 / started.elapsed().as_secs_f64();
    for a in arbiters {
        a.stop();
    }
    Ok((workers, ingest_rate, rate, disorder.load(Ordering::Relaxed)))
}

/// Ingests `n` generated events (over `chats` chats, 0: one) into the stream `cfg` describes,
/// and returns the rate, from the generator's first frame to the last acknowledgement.
async fn ingested(
    server: &ServerProc,
    url: &str,
    cfg: StreamConfig,
    n: u64,
    chats: u64,
) -> anyhow::Result<f64> {
    let ingest = Ingest::start(url, cfg).await?;
    let started = Instant::now();
    let sup = Supervisor::builder()
        .source(Source::with_provider(
            Endpoint::parse(&server.base(&format!("n={n}/r=0/c={chats}")))?,
            "bench",
            Token::new("bench"),
        ))
        .router(
            Router::builder()
                .raw(
                    [EventKind::MessagesUpsert.into()],
                    ingest.clone().recipient::<eventsock_core::RawFrame>(),
                )
                .build(),
        )
        .start()?;
    while ingest.send(GetIngestStats).await?.published < n {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(600),
            "ingest too slow"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let done = crate::server::now_us();
    let _ = sup.send(Shutdown).await;
    from_first_frame(server, n, done)
}
