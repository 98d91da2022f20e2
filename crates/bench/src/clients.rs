//! The clients under test, each counting `messages.upsert` events until it has them all.

use crate::server::now_us;
use actix::prelude::*;
use eventsock_client::{ClientConfig, Delivery, Shutdown, Supervisor};
use eventsock_core::Source;
use eventsock_core::{legacy, Endpoint, Event, MessageLike, Token};
use eventsock_handler::{Received, Router};
use futures_util::{SinkExt, StreamExt};
use std::time::Duration;
use tokio::sync::oneshot;

/// One run: how many events, from the first frame's send to the last receipt.
#[derive(Debug, Clone)]
pub(crate) struct Run {
    pub(crate) count: u64,
    pub(crate) elapsed_us: u64,
    /// Send-to-receipt latency of every event, when asked for.
    pub(crate) latencies_us: Vec<u64>,
}

impl Run {
    pub(crate) fn per_second(&self) -> f64 {
        self.count as f64 / (self.elapsed_us.max(1) as f64 / 1e6)
    }
}

/// Counts events in a handler actor; reports when it has `total`.
struct Counter {
    total: u64,
    count: u64,
    first_sent: Option<u64>,
    latencies: Option<Vec<u64>>,
    done: Option<oneshot::Sender<Run>>,
}

impl Actor for Counter {
    type Context = Context<Self>;
}

impl Handler<Received<legacy::MessagesUpsert>> for Counter {
    type Result = ();

    fn handle(&mut self, e: Received<legacy::MessagesUpsert>, _: &mut Context<Self>) {
        self.count(&e.event);
    }
}

/// The generator's send time (`sentAtUs`, which it writes first in every frame), read from
/// the frame's text while the event keeps it: the harness's own field, not one a bot reads, so
/// reading it does not build the payload.
fn sent_at(e: &Event<legacy::MessagesUpsert>) -> Option<u64> {
    let Some(text) = e.json_text() else {
        return e.extra.get("sentAtUs").and_then(|v| v.as_u64());
    };
    // `{"seq":N,"sentAtUs":T,...`: read in place, without a searcher.
    let rest = text.strip_prefix("{\"seq\":")?;
    let rest = rest.trim_start_matches(|c: char| c.is_ascii_digit());
    let rest = rest.strip_prefix(",\"sentAtUs\":")?;
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    rest[..digits].parse().ok()
}

impl Counter {
    /// A counter of `total` events, and where its run is reported.
    fn new(total: u64, latency: bool) -> (Counter, oneshot::Receiver<Run>) {
        let (tx, rx) = oneshot::channel();
        let counter = Counter {
            total,
            count: 0,
            first_sent: None,
            latencies: latency.then(|| Vec::with_capacity(total as usize)),
            done: Some(tx),
        };
        (counter, rx)
    }

    /// Counts `e`, reading what the lean client reads (a bot's fields, through
    /// `MessageLike`) and the generator's send time.
    fn count(&mut self, e: &Event<legacy::MessagesUpsert>) {
        std::hint::black_box((e.message_id(), e.chat(), e.is_from_me(), e.text()));
        self.count += 1;
        // The clock and the send time are read only when they are used (as the raw clients
        // do): the first event, the last, and every one when latencies are kept.
        let last = self.count == self.total;
        if self.first_sent.is_none() || self.latencies.is_some() {
            let now = now_us();
            let sent = sent_at(e).unwrap_or(now);
            self.first_sent.get_or_insert(sent);
            if let Some(l) = self.latencies.as_mut() {
                l.push(now.saturating_sub(sent));
            }
        }
        if last {
            let now = now_us();
            if let Some(done) = self.done.take() {
                let _ = done.send(Run {
                    count: self.count,
                    elapsed_us: now.saturating_sub(self.first_sent.unwrap_or(now)),
                    latencies_us: self.latencies.take().unwrap_or_default(),
                });
            }
        }
    }
}

/// eventsock end to end: a supervisor, a connection actor, the dispatcher, `handlers` typed
/// handler actors. Returns the slowest handler's run.
pub(crate) async fn eventsock(
    base: &str,
    total: u64,
    handlers: usize,
    latency: bool,
    delivery: Delivery,
) -> anyhow::Result<Run> {
    let endpoint = Endpoint::parse(base)?;
    let mut config = ClientConfig::default();
    config.delivery = delivery;
    let mut builder = Supervisor::builder()
        .config(config)
        .source(Source::with_provider(
            endpoint,
            "bench",
            Token::new("bench"),
        ));
    let mut waits = Vec::new();
    let mut router = Router::builder();
    for _ in 0..handlers.max(1) {
        let (counter, rx) = Counter::new(total, latency);
        router = router.actor::<legacy::MessagesUpsert>(counter.start().recipient());
        waits.push(rx);
    }
    builder = builder.router(router.build());
    slowest(builder.start()?, waits).await
}

/// Waits for every counter's run, stops the supervisor, and gives the slowest run.
async fn slowest(
    supervisor: Addr<Supervisor>,
    waits: Vec<oneshot::Receiver<Run>>,
) -> anyhow::Result<Run> {
    let mut runs = Vec::new();
    for rx in waits {
        runs.push(tokio::time::timeout(Duration::from_secs(600), rx).await??);
    }
    let _ = supervisor.send(Shutdown).await;
    runs.into_iter()
        .max_by_key(|r| r.elapsed_us)
        .ok_or_else(|| anyhow::anyhow!("no handler"))
}

/// What a bot author writes: a [`Router`] with `handlers` closures counting
/// `messages.upsert` (`RouterBuilder::on`), run by the supervisor with the default configuration, as
/// `Run::run` does. Returns the slowest handler's run.
pub(crate) async fn router(
    base: &str,
    total: u64,
    handlers: usize,
    latency: bool,
) -> anyhow::Result<Run> {
    let endpoint = Endpoint::parse(base)?;
    let mut router = Router::builder();
    let mut waits = Vec::new();
    for _ in 0..handlers.max(1) {
        let (counter, rx) = Counter::new(total, latency);
        let counter = std::sync::Mutex::new(counter);
        router = router.on(move |e: Received<legacy::MessagesUpsert>| {
            counter
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .count(&e.event);
            std::future::ready(Ok(()))
        });
        waits.push(rx);
    }
    let supervisor = Supervisor::builder()
        .source(Source::with_provider(
            endpoint,
            "bench",
            Token::new("bench"),
        ))
        .router(router.build())
        .start()?;
    slowest(supervisor, waits).await
}

/// The default bot path of [`router`] (one closure taking `legacy::MessagesUpsert`, what
/// `eventsock::Msg` is), on an Evolution API source: Socket.IO, binary events with three
/// attachments each, Evolution's shape read and given in the legacy one.
pub(crate) async fn evolution(base: &str, total: u64) -> anyhow::Result<Run> {
    let endpoint = Endpoint::parse(base)?;
    let (counter, rx) = Counter::new(total, false);
    let counter = std::sync::Mutex::new(counter);
    let router = Router::builder().on(move |e: Received<legacy::MessagesUpsert>| {
        counter
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .count(&e.event);
        std::future::ready(Ok(()))
    });
    let supervisor = Supervisor::builder()
        .source(Source::evolution(endpoint, "bot", Token::new("bench")))
        .router(router.build())
        .start()?;
    slowest(supervisor, vec![rx]).await
}

/// What a user writing a client by hand would decode: only the fields a bot reads.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Lean {
    sent_at_us: Option<u64>,
    key_id: Option<String>,
    key_remote_jid: Option<String>,
    #[serde(default)]
    key_from_me: bool,
    #[serde(default)]
    content: LeanContent,
}

#[derive(serde::Deserialize, Default)]
struct LeanContent {
    text: Option<String>,
}

/// The baseline a user would write by hand: tokio-tungstenite and serde_json into a lean
/// struct of the fields a bot reads (the rest skipped), no actors, no queue.
pub(crate) async fn lean(url: &str, total: u64, latency: bool) -> anyhow::Result<Run> {
    let (ws, _) = tokio_tungstenite::connect_async(url).await?;
    raw_client(ws, total, latency, |text| {
        let m: Lean = serde_json::from_str(text)?;
        std::hint::black_box((&m.key_id, &m.key_remote_jid, m.key_from_me, &m.content.text));
        Ok(Some(m.sent_at_us))
    })
    .await
}

/// What a user would decode of Evolution's message by hand: the same four fields.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct LeanEvolution {
    sent_at_us: Option<u64>,
    key: LeanKey,
    #[serde(default)]
    message: LeanBody,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct LeanKey {
    id: Option<String>,
    remote_jid: Option<String>,
    #[serde(default)]
    from_me: bool,
}

#[derive(serde::Deserialize, Default)]
struct LeanBody {
    conversation: Option<String>,
}

#[derive(serde::Deserialize)]
struct LeanEnvelope<'a> {
    #[serde(borrow)]
    event: std::borrow::Cow<'a, str>,
    data: LeanEvolution,
}

/// The Evolution baseline a user would write by hand: tokio-tungstenite, the Engine.IO open and
/// the namespace connect written out, then serde_json of each event packet's `[name, envelope]`
/// into a lean struct; the attachments are not needed for those fields, and skipped.
pub(crate) async fn lean_evolution(base: &str, total: u64) -> anyhow::Result<Run> {
    let url = format!(
        "{}/socket.io/?EIO=4&transport=websocket",
        base.replacen("http://", "ws://", 1)
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await?;
    let _open = ws.next().await;
    ws.send(tokio_tungstenite::tungstenite::Message::text("40/bot,"))
        .await?;
    raw_client(ws, total, false, |text| {
        // `42/bot,[...]` or `45<n>-/bot,[...]`: the JSON after the namespace's comma.
        if !(text.starts_with("42") || text.starts_with("45")) {
            return Ok(None);
        }
        let Some((_, json)) = text.split_once(',') else {
            return Ok(None);
        };
        let (_, e): (&str, LeanEnvelope<'_>) = serde_json::from_str(json)?;
        if e.event != "messages.upsert" {
            return Ok(None);
        }
        let m = e.data;
        std::hint::black_box((
            &m.key.id,
            &m.key.remote_jid,
            m.key.from_me,
            &m.message.conversation,
        ));
        Ok(Some(m.sent_at_us))
    })
    .await
}

/// tokio-tungstenite and serde_json into eventsock's own lossless payload type, no actors.
pub(crate) async fn raw(url: &str, total: u64, latency: bool) -> anyhow::Result<Run> {
    let (ws, _) = tokio_tungstenite::connect_async(url).await?;
    raw_client(ws, total, latency, |text| {
        let m: legacy::MessagesUpsert = serde_json::from_str(text)?;
        Ok(Some(m.extra.get("sentAtUs").and_then(|v| v.as_u64())))
    })
    .await
}

/// A hand-written client: reads frames with tokio-tungstenite and decodes each with `decode`,
/// which returns the frame's send time when it is an event to count (`None` when it is not).
async fn raw_client<S>(
    mut ws: tokio_tungstenite::WebSocketStream<S>,
    total: u64,
    latency: bool,
    decode: impl Fn(&str) -> anyhow::Result<Option<Option<u64>>>,
) -> anyhow::Result<Run>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut count = 0u64;
    let mut first = None;
    let mut latencies = if latency {
        Vec::with_capacity(total as usize)
    } else {
        Vec::new()
    };
    while let Some(msg) = ws.next().await {
        let msg = msg?;
        let Ok(text) = msg.to_text() else { continue };
        if text.is_empty() {
            continue;
        }
        let Some(sent) = decode(text)? else {
            continue;
        };
        count += 1;
        // The clock is read only when it is used: the first event, the last, and every one
        // when latencies are kept.
        if first.is_none() || latency {
            let now = now_us();
            let sent = sent.unwrap_or(now);
            first.get_or_insert(sent);
            if latency {
                latencies.push(now.saturating_sub(sent));
            }
        }
        if count == total {
            let now = now_us();
            return Ok(Run {
                count,
                elapsed_us: now.saturating_sub(first.unwrap_or(now)),
                latencies_us: latencies,
            });
        }
    }
    anyhow::bail!("the raw client's stream ended after {count} events")
}

/// The protocol's own sample client's way: Node `ws` with `JSON.parse`.
pub(crate) async fn node(url: &str, total: u64) -> anyhow::Result<Run> {
    let root = crate::repo_root();
    let benches = root.join("benches");
    if !benches.join("node_modules/ws").exists() {
        let status = tokio::process::Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--silent"])
            .current_dir(&benches)
            .status()
            .await?;
        anyhow::ensure!(status.success(), "npm install in benches/ failed");
    }
    let out = tokio::process::Command::new("node")
        .arg(benches.join("node-client.js"))
        .arg(url)
        .arg(total.to_string())
        .output()
        .await?;
    anyhow::ensure!(
        out.status.success(),
        "node client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    Ok(Run {
        count: v["count"].as_u64().unwrap_or(0),
        elapsed_us: v["elapsedUs"].as_u64().unwrap_or(0),
        latencies_us: Vec::new(),
    })
}
