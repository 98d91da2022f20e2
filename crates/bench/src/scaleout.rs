//! Ingest into NATS JetStream and process on workers, against the in-process figure.

use crate::ServerProc;
use eventsock_client::{Shutdown, Supervisor};
use eventsock_core::Source;
use eventsock_core::{Endpoint, EventKind, RawEvent, Token};
use eventsock_handler::{HandlerError, Route};
use eventsock_nats::{GetIngestStats, Ingest, StreamConfig, Worker};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// (ingest events/s, 1-worker events/s, 3-worker events/s), or why it was skipped.
pub(crate) async fn measure(server: &ServerProc, n: u64) -> anyhow::Result<(f64, f64, f64)> {
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
        let ingest = Ingest::start(&url, StreamConfig::default()).await?;
        let started = Instant::now();
        let sup = Supervisor::builder()
            .source(Source::with_provider(
                Endpoint::parse(&server.base(&format!("n={n}/r=0")))?,
                "bench",
                Token::new("bench"),
            ))
            .raw_handler(
                [EventKind::MessagesUpsert.into()],
                ingest.clone().recipient(),
            )
            .start()?;
        while ingest.send(GetIngestStats).await?.published < n {
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(600),
                "ingest too slow"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let ingest_rate = n as f64 / started.elapsed().as_secs_f64();
        let _ = server.sent_rate();
        let _ = sup.send(Shutdown).await;
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
                let w = Worker::new(url.as_str()).durable(durable);
                actix_rt::spawn(async move {
                    let _ = w
                        .run_raw(route, async {
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
        Ok((ingest_rate, rates[0], rates[1]))
    }
    .await;
    let _ = nats.kill();
    let _ = nats.wait();
    let _ = std::fs::remove_dir_all(&store);
    result
}
