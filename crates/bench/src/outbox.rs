//! What the simulator sees of an outbox's sends: `N` messages to `C` chats at a global rate and
//! a per-chat interval, measured at the simulator (`Sim::sent`: arrival times in milliseconds):
//! the highest count in any one-second window, every chat's shortest interval, order within
//! each chat, and duplicates. Runs: a hand-written loop that sends with awc (the baseline: what
//! the server sees without an outbox), the outbox, the outbox through bursts of 429s and 500s
//! (some of them after the message went out), and the JetStream outbox drained by
//! `eventsock sender` processes, the first killed with SIGKILL mid-run.

use eventsock_core::{Source, Token};
use eventsock_nats::{JetStreamOutbox, OutboxConfig};
use eventsock_rest::{Outbox, Outgoing, Pacing, RestClient};
use eventsock_sim::{Embedded, SendFailure, Sent, SimConfig};
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The settings of `eventsock-bench outbox`.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub(crate) messages: usize,
    pub(crate) chats: usize,
    pub(crate) rate: f64,
    pub(crate) per_chat: Duration,
    /// Queue in JetStream here and send with `eventsock sender` processes.
    pub(crate) jetstream: Option<String>,
    /// Kill the first sender once this many messages arrived.
    pub(crate) kill_after: usize,
    /// The `eventsock` binary.
    pub(crate) eventsock: PathBuf,
}

/// What one run looked like at the simulator.
struct Seen {
    name: String,
    arrived: usize,
    unique: usize,
    missing: usize,
    seconds: f64,
    busiest_second: usize,
    shortest_per_chat_ms: u64,
    out_of_order: usize,
    note: String,
}

fn messages(plan: &Plan) -> Vec<Outgoing> {
    (0..plan.messages)
        .map(|i| {
            let chat = format!("5511{:09}@s.whatsapp.net", i % plan.chats);
            Outgoing::text(chat, format!("{:05} hello", i))
        })
        .collect()
}

fn seen(name: &str, sent: &[Sent], posted: &[Outgoing], seconds: f64, note: String) -> Seen {
    let ids: HashSet<&str> = sent.iter().map(|s| s.id.as_str()).collect();
    let wanted: HashSet<&str> = posted.iter().map(|m| m.id.as_str()).collect();
    let mut at: Vec<u64> = sent.iter().map(|s| s.at_ms).collect();
    at.sort_unstable();
    let mut busiest = 0;
    let mut j = 0;
    for i in 0..at.len() {
        while j < at.len() && at[j] < at[i] + 1000 {
            j += 1;
        }
        busiest = busiest.max(j - i);
    }
    let mut last: HashMap<&str, (u64, &str)> = HashMap::new();
    let (mut shortest, mut out_of_order) = (u64::MAX, 0);
    for s in sent {
        if let Some((t, text)) = last.get(s.chat.as_str()) {
            shortest = shortest.min(s.at_ms.saturating_sub(*t));
            if s.text.as_str() < *text {
                out_of_order += 1;
            }
        }
        last.insert(&s.chat, (s.at_ms, &s.text));
    }
    Seen {
        name: name.into(),
        arrived: sent.len(),
        unique: ids.len(),
        missing: wanted.difference(&ids).count(),
        seconds,
        busiest_second: busiest,
        shortest_per_chat_ms: shortest,
        out_of_order,
        note,
    }
}

fn pacing(plan: &Plan) -> Pacing {
    Pacing::default().rate(plan.rate).per_chat(plan.per_chat)
}

/// The baseline: a loop that sends each message with awc and waits for the answer, as a user
/// writes it by hand.
async fn by_hand(sim: &Embedded, posted: &[Outgoing]) -> anyhow::Result<f64> {
    let http = awc::Client::default();
    let token = sim.sim.mint_token("codechat", None);
    let url = format!("{}/message/sendText/codechat", sim.url());
    let started = Instant::now();
    for m in posted {
        let response = http
            .post(&url)
            .bearer_auth(&token)
            .send_json(&json!({"number": m.to, "textMessage": {"text": m.text},
                               "options": {"messageId": m.id}}))
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        anyhow::ensure!(response.status().is_success(), "{}", response.status());
    }
    Ok(started.elapsed().as_secs_f64())
}

async fn through_outbox(
    sim: &Embedded,
    plan: &Plan,
    posted: &[Outgoing],
    faults: bool,
) -> anyhow::Result<(f64, String)> {
    let source = Source::new(
        eventsock_core::Endpoint::parse(&sim.url())?,
        Token::new(sim.sim.mint_token("codechat", None)),
    )?;
    let outbox = Outbox::new(RestClient::for_source(&source), pacing(plan));
    // Faults: at every tenth of the run, the next sends meet 3 × 429 (Retry-After 2 s),
    // 3 × 500 that sent nothing, or 2 × 502 after the message went out, in turn.
    let injected = std::rc::Rc::new(std::cell::Cell::new(0usize));
    let injector = faults.then(|| {
        let (sim, n, injected) = (sim.sim.clone(), posted.len(), injected.clone());
        actix_rt::spawn(async move {
            let mut next = 1;
            while next < 10 {
                if sim.sent().len() >= n * next / 10 {
                    match next % 3 {
                        1 => sim.fail_sends(429, Some(2), 3),
                        2 => sim.fail_sends(500, None, 3),
                        _ => sim.fail_next_sends(
                            SendFailure {
                                status: 502,
                                retry_after: None,
                                delivered: true,
                            },
                            2,
                        ),
                    }
                    injected.set(injected.get() + [2, 3, 3][next % 3]);
                    next += 1;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    });
    let started = Instant::now();
    let mut receipts = Vec::new();
    for m in posted {
        receipts.push(outbox.post(m.clone()).await?);
    }
    let mut failed = 0;
    for r in receipts {
        failed += usize::from(r.await.is_err());
    }
    let seconds = started.elapsed().as_secs_f64();
    if let Some(i) = injector {
        i.abort();
    }
    let s = outbox.stats();
    let note = format!(
        "{} failures injected; retried {}, found after a lost answer {}, failed {failed}",
        injected.get(),
        s.retried,
        s.found
    );
    Ok((seconds, note))
}

fn sender(plan: &Plan, sim: &Embedded, nats: &str, n: usize) -> anyhow::Result<Child> {
    let log = std::env::temp_dir().join(format!("eventsock-bench-sender-{n}.log"));
    let out = std::env::temp_dir().join(format!("eventsock-bench-sender-{n}.jsonl"));
    Command::new(&plan.eventsock)
        .args(["sender", "--nats", nats, "--url", &sim.url()])
        .args(["--token", &sim.sim.mint_token("codechat", None)])
        .args(["--rate", &plan.rate.to_string()])
        .args([
            "--per-chat-interval",
            &format!("{}ms", plan.per_chat.as_millis()),
        ])
        .args(["--ack-wait", "5s"])
        .stdout(Stdio::from(std::fs::File::create(out)?))
        .stderr(Stdio::from(std::fs::File::create(log)?))
        .spawn()
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot run {}: {e} (build it with cargo build --release --features cli)",
                plan.eventsock.display()
            )
        })
}

async fn wait_for(sim: &Embedded, n: usize, limit: Duration) -> bool {
    let until = Instant::now() + limit;
    while Instant::now() < until {
        let unique: HashSet<String> = sim.sim.sent().into_iter().map(|s| s.id).collect();
        if unique.len() >= n {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

async fn through_jetstream(
    sim: &Embedded,
    plan: &Plan,
    nats: &str,
    posted: &[Outgoing],
) -> anyhow::Result<(f64, String)> {
    let queue = JetStreamOutbox::connect(nats, OutboxConfig::default()).await?;
    for m in posted {
        queue.enqueue("codechat", m).await?;
    }
    let started = Instant::now();
    let mut first = sender(plan, sim, nats, 1)?;
    let expected = Duration::from_secs_f64(plan.messages as f64 / plan.rate * 2.0 + 120.0);
    anyhow::ensure!(
        wait_for(sim, plan.kill_after, expected).await,
        "the first sender never got {} out",
        plan.kill_after
    );
    first.kill()?;
    first.wait()?;
    let at_kill = sim.sim.sent().len();
    let mut second = sender(plan, sim, nats, 2)?;
    let done = wait_for(sim, plan.messages, expected).await;
    let _ = Command::new("kill")
        .args(["-TERM", &second.id().to_string()])
        .status();
    second.wait()?;
    anyhow::ensure!(
        done,
        "the second sender did not finish in {}",
        eventsock_core::human::duration(expected)
    );
    let seconds = started.elapsed().as_secs_f64();
    let second_log =
        std::fs::read_to_string(std::env::temp_dir().join("eventsock-bench-sender-2.log"))
            .unwrap_or_default();
    let summary = second_log
        .lines()
        .rfind(|l| l.contains("sent,"))
        .unwrap_or("no summary")
        .trim();
    Ok((
        seconds,
        format!(
            "first sender killed (SIGKILL) after {at_kill} arrived; the second said: {summary}"
        ),
    ))
}

pub(crate) async fn outbox(plan: Plan) -> anyhow::Result<()> {
    println!(
        "# {} messages to {} chats, rate {}/s, one per chat every {}, measured at the simulator",
        plan.messages,
        plan.chats,
        plan.rate,
        eventsock_core::human::duration(plan.per_chat)
    );
    let mut rows = Vec::new();
    let posted = messages(&plan);
    {
        let sim = Embedded::start(SimConfig::default())?;
        let seconds = by_hand(&sim, &posted).await?;
        rows.push(seen(
            "by hand (awc loop, no outbox)",
            &sim.sim.sent(),
            &posted,
            seconds,
            String::new(),
        ));
        print_row(rows.last().expect("pushed"));
    }
    for (name, faults) in [("outbox", false), ("outbox, 429s and 500s injected", true)] {
        let sim = Embedded::start(SimConfig::default())?;
        let posted = messages(&plan);
        let (seconds, note) = through_outbox(&sim, &plan, &posted, faults).await?;
        rows.push(seen(name, &sim.sim.sent(), &posted, seconds, note));
        print_row(rows.last().expect("pushed"));
    }
    if let Some(nats) = &plan.jetstream {
        let sim = Embedded::start(SimConfig::default())?;
        let posted = messages(&plan);
        let (seconds, note) = through_jetstream(&sim, &plan, nats, &posted).await?;
        rows.push(seen(
            "JetStream outbox, sender killed and restarted",
            &sim.sim.sent(),
            &posted,
            seconds,
            note,
        ));
        print_row(rows.last().expect("pushed"));
    }
    println!();
    println!("| run | arrived | distinct | missing | seconds | most in any 1 s | shortest per-chat interval | out of order |");
    println!("|---|---|---|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {} | {} | {} | {:.1} | {} | {} ms | {} |",
            r.name,
            r.arrived,
            r.unique,
            r.missing,
            r.seconds,
            r.busiest_second,
            r.shortest_per_chat_ms,
            r.out_of_order
        );
    }
    for r in &rows {
        if !r.note.is_empty() {
            println!("- {}: {}", r.name, r.note);
        }
    }
    Ok(())
}

fn print_row(r: &Seen) {
    eprintln!(
        "{}: {} arrived ({} distinct, {} missing) in {:.1} s; most in 1 s: {}; shortest per-chat interval: {} ms; out of order: {}",
        r.name, r.arrived, r.unique, r.missing, r.seconds, r.busiest_second, r.shortest_per_chat_ms, r.out_of_order
    );
}
