//! Ingest into NATS JetStream and process on workers, against the in-process figure.

use crate::ServerProc;
use eventsock_client::{Shutdown, Supervisor};
use eventsock_core::Source;
use eventsock_core::{legacy, Endpoint, EventKind, RawEvent, Token};
use eventsock_handler::{HandlerError, Received, Route, Router};
use eventsock_nats::{GetIngestStats, Ingest, StreamConfig, Worker};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Events per second on each path.
pub(crate) struct Rates {
    /// Publishing by hand with async-nats: the ceiling.
    pub(crate) by_hand: f64,
    pub(crate) ingest: f64,
    pub(crate) one: f64,
    pub(crate) three: f64,
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
        let by_hand = by_hand(&url, n).await?;
        let ingest_rate = ingested(server, &url, StreamConfig::default(), n, 0).await?;
        let mut rates = Vec::new();
        for (workers, durable) in [(1usize, "bench-1"), (3, "bench-3")] {
            let count = Arc::new(AtomicU64::new(0));
            let started = Instant::now();
            let mut stops = Vec::new();
            for _ in 0..workers {
                let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
                let c = count.clone();
                let route = Route::from_fn(move |_: RawEvent| {
                    c.fetch_add(1, Ordering::Relaxed);
                    async { Ok::<_, HandlerError>(()) }
                });
                let w = Worker::new(url.as_str())
                    .durable(durable)
                    .router(Router::builder().raw_route(None, route).build());
                actix_rt::spawn(async move {
                    let _ = w
                        .run(async {
                            let _ = stopped.await;
                        })
                        .await;
                });
                stops.push(stop);
            }
            while count.load(Ordering::Relaxed) < n {
                anyhow::ensure!(
                    started.elapsed() < Duration::from_secs(600),
                    "workers too slow"
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            rates.push(n as f64 / started.elapsed().as_secs_f64());
            for s in stops {
                let _ = s.send(());
            }
        }
        let mut partitioned = Vec::new();
        for workers in [1u32, 2, 4] {
            partitioned.push(partitions(server, &url, n, workers).await?);
        }
        Ok(Rates {
            by_hand,
            ingest: ingest_rate,
            one: rates[0],
            three: rates[1],
            partitioned,
        })
    }
    .await;
    let _ = nats.kill();
    let _ = nats.wait();
    let _ = std::fs::remove_dir_all(&store);
    result
}

/// The most a JetStream publisher of this machine reaches, written by hand: the fixture
/// frame published `n` times to a stream of its own (file storage, a message id each) with
/// async-nats, up to [`BY_HAND_WINDOW`] acknowledgements outstanding. No socket, no decode.
async fn by_hand(url: &str, n: u64) -> anyhow::Result<f64> {
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
    let payload = bytes::Bytes::from(crate::server::Template::new().frame(0));
    let started = Instant::now();
    let mut window = std::collections::VecDeque::new();
    for i in 0..n {
        if window.len() >= BY_HAND_WINDOW {
            if let Some(ack) = window.pop_front() {
                let ack: async_nats::jetstream::context::PublishAckFuture = ack;
                ack.await.map_err(|e| anyhow::anyhow!("{e}"))?;
            }
        }
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(async_nats::header::NATS_MESSAGE_ID, i.to_string().as_str());
        let ack = js
            .publish_with_headers("byhand.codechat.messages.upsert", headers, payload.clone())
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        window.push_back(ack);
    }
    for ack in window {
        ack.await.map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

/// How many acknowledgements the hand-written publisher leaves outstanding.
pub(crate) const BY_HAND_WINDOW: usize = 4096;

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
/// and returns the rate, from the supervisor's start to the last acknowledgement.
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
    let rate = n as f64 / started.elapsed().as_secs_f64();
    let _ = server.sent_rate();
    let _ = sup.send(Shutdown).await;
    Ok(rate)
}
