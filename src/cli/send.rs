//! `eventsock send` (JSON lines from stdin through the outbox, or into the JetStream outbox) and
//! `eventsock sender` (the one process that sends what the JetStream outbox holds).

use super::output::Output;
use eventsock_core::{human, Source};
use eventsock_nats::{JetStreamOutbox, OutboxConfig, OutboxSender};
use eventsock_rest::{
    Outbox, OutboxError, Outcome, Outgoing, Pacing, Quote, Receipt, RestClient, Typing,
};
use futures_util::stream::{FuturesUnordered, StreamExt};
use serde_json::{json, Value};
use std::time::Duration;

/// How the outbox paces: shared by `send` and `sender`.
#[derive(Debug, clap::Args)]
pub(crate) struct PacingArgs {
    /// Messages per second over all chats.
    #[arg(long, default_value = "1", value_parser = rate)]
    rate: f64,
    /// The shortest time between the answer to one message of a chat and the next message to
    /// that chat.
    #[arg(long, default_value = "2s", value_parser = super::duration)]
    per_chat_interval: Duration,
    /// The largest random share (0 to 1) added to every interval.
    #[arg(long, default_value = "0.25", value_parser = share)]
    jitter: f64,
    /// Show "typing…" before each message, for 30 ms per character (0.5 s to 5 s).
    #[arg(long)]
    typing: bool,
    /// At most this many messages in any 24 hours (for a new number warming up); the rest wait.
    #[arg(long)]
    daily_cap: Option<u32>,
    /// How many times a message is tried again (after a 429, or a send that provably did not
    /// arrive) before it fails.
    #[arg(long, default_value_t = 8)]
    retries: u32,
    /// The first wait after a failed attempt, doubled after each further failure.
    #[arg(long, default_value = "2s", value_parser = super::duration)]
    backoff: Duration,
}

impl PacingArgs {
    fn pacing(&self) -> Pacing {
        Pacing::default()
            .rate(self.rate)
            .per_chat(self.per_chat_interval)
            .jitter(self.jitter)
            .typing(self.typing.then(Typing::default))
            .daily_cap(self.daily_cap)
            .retries(self.retries)
            .backoff(self.backoff)
    }
}

fn rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if (1.0 / 86400.0..=1000.0).contains(&r) => Ok(r),
        _ => Err(format!(
            "\"{s}\" is not a rate: give messages per second, from 0.0000116 (one a day) to 1000"
        )),
    }
}

fn share(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(j) if (0.0..=1.0).contains(&j) => Ok(j),
        _ => Err(format!("\"{s}\" is not a share from 0 to 1")),
    }
}

/// The server to send through.
#[derive(Debug, clap::Args)]
pub(crate) struct RestArgs {
    /// The server, for example http://localhost:8084.
    #[arg(long, env = "EVENTSOCK_URL")]
    url: Option<String>,
    #[command(flatten)]
    token: super::TokenArgs,
    /// The instance: needed on Evolution API, whose key names none (on CodeChat, the one the
    /// token names); with --nats, the instance that sends.
    #[arg(long, env = "EVENTSOCK_INSTANCE")]
    instance: Option<String>,
    /// The server's protocol: legacy or v2 (CodeChat), or evolution (Evolution API). By
    /// default legacy.
    #[arg(long, env = "EVENTSOCK_PROTOCOL")]
    protocol: Option<eventsock_core::Protocol>,
}

impl RestArgs {
    fn source(&self) -> anyhow::Result<Source> {
        let (Some(url), Some(token)) = (&self.url, self.token.token()?) else {
            anyhow::bail!(
                "no server given: pass --url URL and --token-file PATH, or set EVENTSOCK_URL and EVENTSOCK_TOKEN"
            );
        };
        Source::for_instance(url, token, self.protocol, self.instance.as_deref())
            .map_err(|e| anyhow::anyhow!(eventsock::RunError::Source(e)))
    }
}

#[derive(Debug, clap::Args)]
pub(crate) struct SendArgs {
    #[command(flatten)]
    server: RestArgs,
    /// Queue the messages in the JetStream outbox of this NATS server instead of sending them:
    /// `eventsock sender` sends them, at its pace.
    #[arg(long, value_name = "NATS_URL")]
    nats: Option<String>,
    #[command(flatten)]
    pacing: PacingArgs,
}

#[derive(Debug, clap::Args)]
pub(crate) struct SenderArgs {
    #[command(flatten)]
    server: RestArgs,
    /// The NATS server whose JetStream outbox to drain.
    #[arg(long, env = "EVENTSOCK_NATS", default_value = "nats://127.0.0.1:4222")]
    nats: String,
    /// How long the messages a sender held stay with it after it died, before the next sender
    /// takes them.
    #[arg(long, default_value = "30s", value_parser = super::duration)]
    ack_wait: Duration,
    /// The subject prefix a bridge publishes the events under (its --prefix): the sender
    /// follows the delivery receipts of what it sends there (a bridge that takes
    /// --event messages.update).
    #[arg(long, default_value = "eventsock")]
    events_prefix: String,
    #[command(flatten)]
    pacing: PacingArgs,
}

/// One input line, `{"to": JID, "text": "...", "id"?: "...", "quote"?: ROW_ID | MESSAGE}`, as a
/// message.
fn parse_line(text: &str) -> Result<Outgoing, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let object = value.as_object().ok_or("not a JSON object")?;
    if let Some(unknown) = object
        .keys()
        .find(|k| !matches!(k.as_str(), "to" | "text" | "id" | "quote"))
    {
        return Err(format!("unknown field {}", Value::from(unknown.as_str())));
    }
    let field = |name: &str| -> Result<Option<String>, String> {
        match object.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(format!("\"{name}\" must be a string")),
        }
    };
    let to = field("to")?.ok_or("\"to\" is missing")?;
    let text = field("text")?.ok_or("\"text\" is missing")?;
    let mut message = Outgoing::text(to, text);
    if let Some(id) = field("id")? {
        message = message.with_id(id);
    }
    match object.get("quote") {
        None | Some(Value::Null) => {}
        Some(quote) => {
            let quote: Quote = serde_json::from_value(quote.clone()).map_err(|_| {
                "\"quote\" takes the quoted message's row id (an integer, on a server that saves messages) \
                 or the message itself ({\"keyId\", \"keyFromMe\", \"keyRemoteJid\", \"messageType\", \"content\"}, \
                 as a messages.upsert gives them): the server cannot quote a key id alone"
                    .to_owned()
            })?;
            message = message.quoting(quote);
        }
    }
    Ok(message)
}

/// The outcome of a message as one JSON line.
fn outcome_line(
    line: Option<u64>,
    message: &Outgoing,
    outcome: &Result<Outcome, OutboxError>,
) -> Value {
    // The id the server gave it when it was sent (Evolution API makes its own), else the
    // message's.
    let id = outcome.as_ref().map_or(message.id.as_str(), Outcome::id);
    let mut out = json!({"id": id, "to": message.to});
    if let Some(n) = line {
        out["line"] = n.into();
    }
    match outcome {
        Ok(Outcome::Sent { attempts, .. }) => {
            out["status"] = "sent".into();
            out["attempts"] = (*attempts).into();
        }
        Ok(Outcome::Found { attempts, .. }) => {
            out["status"] = "sent".into();
            out["attempts"] = (*attempts).into();
            out["note"] = "found on the server after its answer was lost; not sent again".into();
        }
        Ok(Outcome::Queued { .. }) => out["status"] = "queued".into(),
        Ok(_) => out["status"] = "sent".into(),
        Err(e) => {
            out["status"] = match e {
                OutboxError::InDoubt { .. } | OutboxError::StoppedInDoubt => "in-doubt",
                _ => "failed",
            }
            .into();
            out["error"] = e.to_string().into();
        }
    }
    out
}

async fn print(out: &Output, line: Value) {
    let mut bytes = line.to_string().into_bytes();
    bytes.push(b'\n');
    out.line(bytes).await;
}

/// Reads standard input on a thread of its own (a read blocks), a line at a time.
fn stdin_lines() -> tokio::sync::mpsc::Receiver<std::io::Result<String>> {
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    std::thread::Builder::new()
        .name("eventsock-stdin".into())
        .spawn(move || {
            use std::io::BufRead;
            for line in std::io::stdin().lock().lines() {
                if tx.blocking_send(line).is_err() {
                    return;
                }
            }
        })
        .expect("spawning the stdin thread");
    rx
}

/// `eventsock send`: 0 when every message was sent (or queued), 1 otherwise.
pub(crate) async fn send(args: SendArgs) -> anyhow::Result<i32> {
    enum Via {
        Outbox(Outbox),
        Queue(Box<JetStreamOutbox>, String),
    }
    let via = match &args.nats {
        Some(url) => {
            let instance = match (&args.server.instance, args.server.source()) {
                (Some(i), _) => i.clone(),
                (None, Ok(source)) => source.instance().to_owned(),
                (None, Err(_)) => anyhow::bail!(
                    "--nats needs the instance that sends: pass --instance NAME, or --url and --token"
                ),
            };
            let queue = tokio::select! {
                q = JetStreamOutbox::connect(url, OutboxConfig::default()) => q?,
                _ = super::terminated() => anyhow::bail!("stopped before NATS answered"),
            };
            Via::Queue(Box::new(queue), instance)
        }
        None => {
            let source = args.server.source()?;
            Via::Outbox(Outbox::new(
                RestClient::for_source(&source),
                args.pacing.pacing(),
            ))
        }
    };
    let out = Output::stdout();
    let mut lines = stdin_lines();
    let mut pending: FuturesUnordered<_> = FuturesUnordered::new();
    let (mut ok, mut failed) = (0u64, 0u64);
    let mut n = 0u64;
    let stop = super::terminated();
    tokio::pin!(stop);
    let mut stopping = false;
    let mut reading = true;
    while reading || !pending.is_empty() {
        tokio::select! {
            _ = &mut stop, if !stopping => {
                stopping = true;
                reading = false;
                if let Via::Outbox(outbox) = &via {
                    let dropped = outbox.stop().await;
                    eprintln!("eventsock send: stopping; {dropped} queued messages will not be sent");
                }
            }
            Some((line, message, outcome)) = pending.next(), if !pending.is_empty() => {
                match &outcome {
                    Ok(_) => ok += 1,
                    Err(_) => failed += 1,
                }
                print(&out, outcome_line(Some(line), &message, &outcome)).await;
            }
            next = lines.recv(), if reading => {
                let Some(next) = next else { reading = false; continue };
                n += 1;
                let text = match next {
                    Ok(t) => t,
                    Err(e) => {
                        failed += 1;
                        print(&out, json!({"line": n, "status": "failed", "error": format!("cannot read standard input: {e}")})).await;
                        reading = false;
                        continue;
                    }
                };
                if text.trim().is_empty() {
                    continue;
                }
                let message = match parse_line(&text) {
                    Ok(m) => m,
                    Err(e) => {
                        failed += 1;
                        print(&out, json!({"line": n, "status": "failed", "error": format!("not a message ({e}); expected {{\"to\": JID, \"text\": \"...\"}}")})).await;
                        continue;
                    }
                };
                let post = async {
                    match &via {
                        Via::Outbox(outbox) => outbox.post(message.clone()).await,
                        Via::Queue(queue, instance) => {
                            eventsock_rest::Postbox::post(queue.as_ref(), instance, message.clone()).await
                        }
                    }
                };
                // Waiting for room in a full outbox: Ctrl-C still stops.
                let receipt: Result<Receipt, OutboxError> = tokio::select! {
                    r = post => r,
                    _ = &mut stop => {
                        stopping = true;
                        reading = false;
                        if let Via::Outbox(outbox) = &via {
                            let dropped = outbox.stop().await;
                            eprintln!("eventsock send: stopping; {dropped} queued messages will not be sent");
                        }
                        Err(OutboxError::Stopped)
                    }
                };
                let line = n;
                pending.push(async move {
                    let outcome = match receipt {
                        Ok(r) => r.await,
                        Err(e) => Err(e),
                    };
                    (line, message, outcome)
                });
            }
        }
    }
    // Lines read but never queued (stopped first): said, not lost.
    if stopping {
        while let Ok(next) = lines.try_recv() {
            n += 1;
            if next.as_deref().is_ok_and(|t| t.trim().is_empty()) {
                continue;
            }
            failed += 1;
            print(&out, json!({"line": n, "status": "failed", "error": "stopped before it was queued: not sent"})).await;
        }
    }
    eprintln!(
        "eventsock send: {ok} {}, {failed} failed",
        if matches!(via, Via::Queue(..)) {
            "queued"
        } else {
            "sent"
        }
    );
    drained(&out).await;
    Ok(i32::from(failed > 0))
}

/// `eventsock sender`: sends what the JetStream outbox holds until Ctrl-C.
pub(crate) async fn sender(args: SenderArgs) -> anyhow::Result<()> {
    let source = args.server.source()?;
    let outbox = Outbox::new(RestClient::for_source(&source), args.pacing.pacing());
    let out = Output::stdout();
    eprintln!(
        "eventsock sender: draining the JetStream outbox of {} at {} for {}; Ctrl-C stops",
        human::escaped(source.instance()),
        super::nats::shown(&args.nats),
        human::escaped(source.instance())
    );
    let sender = OutboxSender::new(
        args.nats.as_str(),
        outbox,
        OutboxConfig::default().ack_wait(args.ack_wait),
    )
    // The receipts an `eventsock bridge` publishes.
    .receipts_from(args.events_prefix.clone());
    // Outcome lines wait for a slow reader here rather than hold up the sender.
    let (lines, mut queued) = tokio::sync::mpsc::unbounded_channel::<Value>();
    let printer = {
        let out = out.clone();
        actix_rt::spawn(async move {
            while let Some(line) = queued.recv().await {
                print(&out, line).await;
            }
        })
    };
    let stats = sender
        .run(super::terminated(), |message, outcome| {
            let _ = lines.send(outcome_line(None, message, outcome));
        })
        .await?;
    drop(lines);
    let _ = printer.await;
    eprintln!(
        "eventsock sender: {} sent, {} found already sent, {} failed (moved to the dead-letter stream), {} redelivered, {} left in the stream",
        stats.sent, stats.found, stats.dead, stats.redelivered, stats.left
    );
    drained(&out).await;
    Ok(())
}

async fn drained(out: &Output) {
    let _ = tokio::time::timeout(Duration::from_secs(5), out.drained()).await;
}
