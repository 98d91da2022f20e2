//! `all`: every benchmark, in one run, written to docs/benchmarks.md.

use crate::clients::{self, Run};
use crate::{percentile, probes, repo_root, ServerProc};
use actix::prelude::*;
use eventsock_client::{ClientConfig, Delivery, Shutdown, Supervisor};
use eventsock_core::Source;
use eventsock_core::{legacy, Backoff, Endpoint, Token};
use std::fmt::Write as _;
use std::process::Command;
use std::time::{Duration, Instant};

/// Sections of docs/benchmarks.md written by hand from commands of their own; `all` keeps them.
const OWN_COMMAND_SECTIONS: [&str; 2] = ["## Recovering a gap over REST", "## Pacing sends"];

fn sh(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|_| "(unavailable)".into())
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines().next().map(|l| {
                l.split_whitespace()
                    .nth(1)
                    .unwrap_or("0")
                    .parse::<u64>()
                    .unwrap_or(0)
            })
        })
        .unwrap_or(0);
    format!(
        "{} cores ({cpu}), {:.0} GiB; {}; node {}",
        sh("nproc", &[]),
        mem as f64 / 1048576.0,
        sh("rustc", &["--version"]),
        sh("node", &["--version"])
    )
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Watches the first event of each connection, for the reconnect time.
struct Generations {
    last: u64,
    tx: tokio::sync::mpsc::UnboundedSender<(u64, Instant)>,
}

impl Actor for Generations {
    type Context = Context<Self>;
}

impl Handler<eventsock_handler::Received<legacy::MessagesUpsert>> for Generations {
    type Result = ();

    fn handle(
        &mut self,
        e: eventsock_handler::Received<legacy::MessagesUpsert>,
        _: &mut Context<Self>,
    ) {
        if e.meta.generation > self.last {
            self.last = e.meta.generation;
            let _ = self.tx.send((e.meta.generation, Instant::now()));
        }
    }
}

async fn next(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<(u64, Instant)>,
) -> Option<(u64, Instant)> {
    tokio::time::timeout(Duration::from_secs(30), rx.recv())
        .await
        .ok()
        .flatten()
}

async fn reconnect(rounds: u64, min_backoff: Duration) -> anyhow::Result<Vec<f64>> {
    let sim = eventsock_sim::Embedded::start(eventsock_sim::SimConfig::default())?;
    let token = Token::new(sim.sim.mint_token("codechat", None));
    let mut config = ClientConfig::default();
    config.backoff = Backoff::exponential(min_backoff, Duration::from_secs(5));
    config.stable_after = Duration::from_secs(1);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let sup = Supervisor::builder()
        .config(config)
        .source(Source::new(Endpoint::parse(&sim.url())?, token)?)
        .router(
            eventsock_handler::Router::builder()
                .actor::<legacy::MessagesUpsert>(Generations { last: 0, tx }.start().recipient())
                .build(),
        )
        .start()?;
    let traffic = actix_rt::spawn(eventsock_sim::generate(
        sim.sim.clone(),
        "codechat".into(),
        5000.0,
    ));
    let mut times = Vec::new();
    let (mut generation, _) = next(&mut rx)
        .await
        .ok_or_else(|| anyhow::anyhow!("no first event"))?;
    for _ in 0..rounds {
        // Up longer than `stable_after`, so each drop meets the first backoff step.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let dropped = Instant::now();
        sim.sim.drop_all();
        let (g, at) = next(&mut rx)
            .await
            .ok_or_else(|| anyhow::anyhow!("no event after a drop"))?;
        anyhow::ensure!(
            g == generation + 1,
            "expected connection {}, got {g}",
            generation + 1
        );
        generation = g;
        times.push(at.duration_since(dropped).as_secs_f64() * 1000.0);
    }
    traffic.abort();
    let _ = sup.send(Shutdown).await;
    Ok(times)
}

fn memory_probe(client: &str, k: usize, base: &str) -> anyhow::Result<f64> {
    let out = Command::new(std::env::current_exe()?)
        .args([
            "memory-probe",
            "--client",
            client,
            "--k",
            &k.to_string(),
            "--base",
            base,
        ])
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "memory probe failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let (before, after) = (
        v["before"].as_f64().unwrap_or(0.0),
        v["after"].as_f64().unwrap_or(0.0),
    );
    Ok((after - before) / k as f64 / 1024.0)
}

fn decode_table(out: &mut String) -> anyhow::Result<()> {
    let status = Command::new("cargo")
        .args([
            "bench",
            "-p",
            "eventsock-core",
            "--bench",
            "decode",
            "--",
            "--warm-up-time",
            "1",
            "--measurement-time",
            "2",
            "--noplot",
        ])
        .current_dir(repo_root())
        .stdout(std::process::Stdio::null())
        .status()?;
    anyhow::ensure!(status.success(), "cargo bench failed");
    let dir = repo_root().join("target/criterion/decode");
    let read = |kind: &str, name: &str| -> Option<(f64, f64)> {
        let base = dir.join(kind).join(name).join("new");
        let est: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(base.join("estimates.json")).ok()?)
                .ok()?;
        let bench: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(base.join("benchmark.json")).ok()?)
                .ok()?;
        let ns = est["mean"]["point_estimate"].as_f64()?;
        let bytes = bench["throughput"]["Bytes"].as_f64()?;
        Some((ns, bytes))
    };
    let mut names: Vec<String> = std::fs::read_dir(dir.join("typed"))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n != "report")
        .collect();
    names.sort();
    writeln!(out, "| frame | bytes | typed decode (µs) | typed MB/s | `serde_json::Value` (µs) | Value MB/s | typed / Value time |")?;
    writeln!(out, "| --- | ---: | ---: | ---: | ---: | ---: | ---: |")?;
    for n in names {
        if let (Some((t, b)), Some((v, _))) = (read("typed", &n), read("value", &n)) {
            writeln!(
                out,
                "| {} | {b:.0} | {:.2} | {:.0} | {:.2} | {:.0} | {:.2}x |",
                n.replace('_', "."),
                t / 1000.0,
                b / t * 1000.0,
                v / 1000.0,
                b / v * 1000.0,
                t / v
            )?;
        }
    }
    Ok(())
}

/// The `message` group of the decode benchmark, from criterion's files.
fn message_table(out: &mut String) -> anyhow::Result<()> {
    let dir = repo_root().join("target/criterion/message");
    writeln!(out, "| pass | µs | vs decode |")?;
    writeln!(out, "| --- | ---: | ---: |")?;
    let read = |name: &str| -> Option<f64> {
        let path = dir.join(name).join("new/estimates.json");
        let est: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
        est["mean"]["point_estimate"].as_f64()
    };
    let Some(decode) = read("decode") else {
        writeln!(out, "| (not measured: no criterion results) | | |")?;
        return Ok(());
    };
    for name in ["decode", "head", "lean", "ignored"] {
        if let Some(ns) = read(name) {
            writeln!(out, "| {name} | {:.2} | {:.2}x |", ns / 1000.0, ns / decode)?;
        }
    }
    Ok(())
}

pub(crate) async fn all(events: u64, fuzz_cases: u64, skip_decode: bool) -> anyhow::Result<()> {
    let server = ServerProc::start()?;
    let mut md = String::new();
    let date = super::sh_date();
    writeln!(md, "# Benchmarks\n")?;
    writeln!(
        md,
        "Produced by `cargo run --release -p eventsock-bench -- all` on {date}.\n"
    )?;
    writeln!(
        md,
        "Machine: {}. The load generator runs in its own process on the same machine, so it",
        machine()
    )?;
    writeln!(md, "shares the cores with the client: figures are comparable within this run only. How the hot path")?;
    writeln!(md, "was profiled and what was changed, with before and after figures: [performance.md](performance.md).\n")?;

    // Throughput: three rounds, clients interleaved, medians reported.
    eprintln!("throughput...");
    let plan = format!("n={events}/r=0");
    let names = ["router", "actor", "pipelined", "lean", "raw", "node"];
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
    let mut generator: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
    for _ in 0..3 {
        for (i, name) in names.iter().enumerate() {
            let run = match *name {
                "router" => clients::router(&server.base(&plan), events, 1, false).await,
                "actor" => {
                    clients::eventsock(&server.base(&plan), events, 1, false, Delivery::Confirmed)
                        .await
                }
                "pipelined" => {
                    clients::eventsock(&server.base(&plan), events, 1, false, Delivery::Pipelined)
                        .await
                }
                "lean" => clients::lean(&server.ws_url(&plan), events, false).await,
                "raw" => clients::raw(&server.ws_url(&plan), events, false).await,
                _ => match clients::node(&server.ws_url(&plan), events).await {
                    Ok(r) => Ok(r),
                    Err(e) => {
                        eprintln!("node baseline unavailable: {e}");
                        let _ = server.sent_rate();
                        continue;
                    }
                },
            }?;
            rates[i].push(run.per_second());
            generator[i].push(server.sent_rate());
        }
    }
    let m: Vec<f64> = rates.iter().map(|v| median(v.clone())).collect();
    let (o, lean, n) = (m[0], m[3], m[5]);
    writeln!(md, "## Throughput\n")?;
    writeln!(md, "{events} `messages.upsert` frames (the legacy fixture, ~420 bytes) written as fast as the generator can, from the")?;
    writeln!(md, "first frame's send to the last receipt by a handler; median of 3 rounds, clients interleaved. The baseline")?;
    writeln!(md, "(1.00x) is what a user would write by hand: tokio-tungstenite and serde_json into a lean struct of the")?;
    writeln!(md, "fields a bot reads (`keyId`, `keyRemoteJid`, `keyFromMe`, `content.text`), the rest skipped. eventsock's")?;
    writeln!(md, "handlers read the same four fields (`MessageLike`: `message_id`, `chat`, `is_from_me`, `text`); every client")?;
    writeln!(
        md,
        "reads the clock and the generator's send time at the first and the last event only.\n"
    )?;
    writeln!(
        md,
        "| client | events/s (median) | rounds | vs lean raw | vs Node | generator frames/s (median) |"
    )?;
    writeln!(md, "| --- | ---: | --- | ---: | ---: | ---: |")?;
    let rounds = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{x:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let labels = [
        "eventsock, default (what `Run::run` starts): supervisor, connection, dispatcher, one `RouterBuilder::on` closure",
        "eventsock, a typed handler actor (`Delivery::Confirmed`, the default)",
        "eventsock, a typed handler actor, `Delivery::Pipelined`",
        "lean raw: tokio-tungstenite + serde_json into a lean struct",
        "raw: tokio-tungstenite + serde_json into eventsock's lossless type",
        "Node `ws` + `JSON.parse`",
    ];
    for (i, label) in labels.iter().enumerate() {
        writeln!(
            md,
            "| {label} | {:.0} | {} | {:.2}x | {:.2}x | {:.0} |",
            m[i],
            rounds(&rates[i]),
            m[i] / lean,
            m[i] / n,
            median(generator[i].clone())
        )?;
    }
    writeln!(md, "\nThe generator writes as fast as the client reads (TCP pushes back), so its rate follows each client's.")?;
    let actor = m[1];
    let met = |ok: bool| if ok { "met" } else { "missed" };
    writeln!(md, "Goals: the bot path (`RouterBuilder::on`, default settings) at least 1.0x lean raw ({}: {:.2}x); the actor path at",
        met(o >= lean), o / lean)?;
    writeln!(md, "least 0.9x ({}: {:.2}x); both at least 4x Node ({}: {:.2}x and {:.2}x; lean raw itself reaches {:.2}x).\n",
        met(actor >= 0.9 * lean), actor / lean, met(o >= 4.0 * n && actor >= 4.0 * n), o / n, actor / n, lean / n)?;

    // Evolution API.
    eprintln!("evolution...");
    writeln!(
        md,
        "## Evolution API (Socket.IO) against the CodeChat path\n"
    )?;
    writeln!(md, "The same bot (one `RouterBuilder::on` closure taking `legacy::MessagesUpsert`, what `eventsock::Msg` is) on a")?;
    writeln!(md, "CodeChat source and on an Evolution API source; {events} `messages.upsert` each, median of 3 rounds, interleaved.")?;
    writeln!(md, "Evolution's frames are its wire since 2.3.6: a Socket.IO binary event of ~1.4 KB (the fixture")?;
    writeln!(md, "`tests/fixtures/evolution/messages.upsert.json`, its members in the server's order) and its 3 attachments")?;
    writeln!(md, "(4 WebSocket frames an event). eventsock reads the packet, puts the attachments in (base64), reads Evolution's")?;
    writeln!(md, "message whole and gives it in the legacy shape. The baseline is what a user would write by hand for")?;
    writeln!(md, "Evolution: tokio-tungstenite, the Engine.IO open and namespace connect written out, serde_json of each")?;
    writeln!(
        md,
        "event packet into a lean struct of the four fields, the attachments skipped.\n"
    )?;
    writeln!(
        md,
        "| client | events/s (median) | rounds | vs the CodeChat path | vs Evolution by hand |"
    )?;
    writeln!(md, "| --- | ---: | --- | ---: | ---: |")?;
    let evo_names = ["codechat", "evolution", "lean-evolution"];
    let mut evo: Vec<Vec<f64>> = vec![Vec::new(); evo_names.len()];
    for _ in 0..3 {
        for (i, name) in evo_names.iter().enumerate() {
            let run = match *name {
                "codechat" => clients::router(&server.base(&plan), events, 1, false).await?,
                "evolution" => clients::evolution(&server.base(&plan), events).await?,
                _ => clients::lean_evolution(&server.base(&plan), events).await?,
            };
            evo[i].push(run.per_second());
            let _ = server.sent_rate();
        }
    }
    let em: Vec<f64> = evo.iter().map(|v| median(v.clone())).collect();
    let evo_labels = [
        "eventsock on CodeChat (the legacy socket, ~420-byte frames)",
        "eventsock on Evolution API (Socket.IO binary events)",
        "Evolution by hand: tokio-tungstenite + serde_json into a lean struct",
    ];
    for (i, label) in evo_labels.iter().enumerate() {
        writeln!(
            md,
            "| {label} | {:.0} | {} | {:.2}x | {:.2}x |",
            em[i],
            rounds(&evo[i]),
            em[i] / em[0],
            em[i] / em[2]
        )?;
    }
    writeln!(md)?;

    // Fan-out.
    eprintln!("fan-out...");
    writeln!(md, "## Fan-out\n")?;
    writeln!(md, "The same stream delivered to 1, 4 and 16 handlers of one type (the frame is checked once and shared; these handlers read only what its check read, so the payload is never built):")?;
    writeln!(
        md,
        "`RouterBuilder::on` closures, and typed handler actors (`Delivery::Confirmed`).\n"
    )?;
    writeln!(
        md,
        "| handlers | closures events/s | µs per event | vs 1 | actors events/s | µs per event | vs 1 |"
    )?;
    writeln!(md, "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")?;
    let (mut one_closure, mut one_actor, mut sixteen) = (f64::NAN, f64::NAN, f64::NAN);
    for h in [1usize, 4, 16] {
        let c = clients::router(&server.base(&plan), events, h, false)
            .await?
            .per_second();
        let _ = server.sent_rate();
        let a = clients::eventsock(&server.base(&plan), events, h, false, Delivery::Confirmed)
            .await?
            .per_second();
        let _ = server.sent_rate();
        if h == 1 {
            (one_closure, one_actor) = (c, a);
        }
        if h == 16 {
            sixteen = c;
        }
        writeln!(
            md,
            "| {h} | {c:.0} | {:.2} | {:.2}x | {a:.0} | {:.2} | {:.2}x |",
            1e6 / c,
            c / one_closure,
            1e6 / a,
            a / one_actor
        )?;
    }
    writeln!(
        md,
        "\nGoal: 16 closures at least 0.6x one closure ({}: {:.2}x).\n",
        if sixteen >= 0.6 * one_closure {
            "met"
        } else {
            "missed"
        },
        sixteen / one_closure
    )?;

    // Latency.
    eprintln!("latency...");
    writeln!(md, "\n## Latency\n")?;
    writeln!(md, "Send (the generator's clock, in the frame) to handler receipt, at fixed rates for 3 s each; eventsock")?;
    writeln!(
        md,
        "with one `RouterBuilder::on` closure, against the lean raw client.\n"
    )?;
    writeln!(
        md,
        "| rate/s | client | p50 µs | p99 µs | p99.9 µs | max µs | generator frames/s |"
    )?;
    writeln!(md, "| ---: | --- | ---: | ---: | ---: | ---: | ---: |")?;
    let mut p99_at_10k = None;
    for rate in [1_000u64, 10_000, 50_000] {
        let plan = format!("n={}/r={rate}", rate * 3);
        for client in ["eventsock", "lean raw"] {
            let run: Run = if client == "eventsock" {
                clients::router(&server.base(&plan), rate * 3, 1, true).await?
            } else {
                clients::lean(&server.ws_url(&plan), rate * 3, true).await?
            };
            let g = server.sent_rate();
            let mut l = run.latencies_us;
            l.sort_unstable();
            if client == "eventsock" && rate == 10_000 {
                p99_at_10k = Some(percentile(&l, 0.99));
            }
            writeln!(
                md,
                "| {rate} | {client} | {} | {} | {} | {} | {g:.0} |",
                percentile(&l, 0.5),
                percentile(&l, 0.99),
                percentile(&l, 0.999),
                l.last().copied().unwrap_or(0)
            )?;
        }
    }
    if let Some(p) = p99_at_10k {
        writeln!(
            md,
            "\nGoal: p99 under 1 ms at 10k/s ({}: {p} µs).",
            if p < 1000 { "met" } else { "missed" }
        )?;
    }

    // Memory.
    eprintln!("memory...");
    writeln!(md, "\n## Memory per idle subscription\n")?;
    writeln!(md, "Resident memory of a fresh client process before and after opening K idle subscriptions (one connection each),")?;
    writeln!(md, "divided by K. The raw baseline holds K idle tokio-tungstenite connections, each with a reading task. A bot whose")?;
    writeln!(md, "router follows delivery receipts (the default) holds two per instance: `messages.upsert` and `messages.update`.\n")?;
    writeln!(
        md,
        "| K | eventsock KiB/subscription | raw KiB/connection |"
    )?;
    writeln!(md, "| ---: | ---: | ---: |")?;
    let mut worst: f64 = 0.0;
    for k in [1000usize, 5000] {
        let ours = memory_probe("eventsock", k, &server.base("idle"))?;
        let raw = memory_probe("raw", k, &server.base("idle"))?;
        worst = worst.max(ours);
        writeln!(md, "| {k} | {ours:.1} | {raw:.1} |")?;
    }
    writeln!(
        md,
        "\nGoal: at most 64 KiB each ({}).",
        if worst <= 64.0 { "met" } else { "missed" }
    )?;

    // Reconnect.
    eprintln!("reconnect...");
    let min_backoff = Duration::from_millis(100);
    let times = reconnect(10, min_backoff).await?;
    let mut sorted = times.clone();
    sorted.sort_by(|a, b| a.total_cmp(b));
    writeln!(md, "\n## Reconnect\n")?;
    writeln!(md, "The simulator drops every socket without a close frame while it sends 5,000 events/s; time from the drop to")?;
    writeln!(md, "the first event on the new connection, minimum backoff 100 ms, 10 rounds (each after the connection was up")?;
    writeln!(md, "past `stable_after`).\n")?;
    writeln!(md, "| min ms | median ms | max ms |")?;
    writeln!(md, "| ---: | ---: | ---: |")?;
    writeln!(
        md,
        "| {:.1} | {:.1} | {:.1} |",
        sorted[0],
        sorted[sorted.len() / 2],
        sorted[sorted.len() - 1]
    )?;
    writeln!(
        md,
        "\nGoal: within the backoff plus 50 ms, 150 ms ({}).",
        if sorted[sorted.len() - 1] <= 150.0 {
            "met"
        } else {
            "missed"
        }
    )?;

    // Scale-out through NATS JetStream.
    eprintln!("scale-out (NATS)...");
    writeln!(md, "\n## Scale-out through NATS JetStream\n")?;
    match crate::scaleout::measure(&server, events / 3).await {
        Ok(r) => {
            writeln!(md, "{} events: the ingest (supervisor + `eventsock_nats::Ingest` as a frame handler, a window of {} publishes awaiting their", events / 3, eventsock_nats::WINDOW)?;
            writeln!(md, "acknowledgements) into a local nats-server ({}) with JetStream (file storage). \"By hand\" is what a user", crate::scaleout::nats_version())?;
            writeln!(md, "would write instead: tokio-tungstenite reading the same generator, async-nats publishing each frame with a message id,")?;
            writeln!(md, "the same window of {} acknowledgements. Both clocks run from the generator's first frame to the last acknowledgement;", eventsock_nats::WINDOW)?;
            writeln!(md, "both streams exist before. Then workers on the stream's shared durable consumer (each message acknowledged after its")?;
            writeln!(md, "handler), each on a thread of its own, decoding every event as `legacy::MessagesUpsert` as the in-process figure")?;
            writeln!(md, "(from the throughput table above) does.\n")?;
            writeln!(md, "| path | events/s | vs in-process |")?;
            writeln!(md, "| --- | ---: | ---: |")?;
            writeln!(md, "| in-process (default) | {o:.0} | 1.00x |")?;
            writeln!(
                md,
                "| by hand into JetStream (tokio-tungstenite + async-nats) | {:.0} | {:.3}x |",
                r.by_hand,
                r.by_hand / o
            )?;
            writeln!(
                md,
                "| ingest into JetStream | {:.0} | {:.3}x |",
                r.ingest,
                r.ingest / o
            )?;
            for (workers, rate) in &r.shared {
                writeln!(
                    md,
                    "| JetStream to {workers} worker{} ({workers} thread{}, one process) | {rate:.0} | {:.3}x |",
                    if *workers == 1 { "" } else { "s" },
                    if *workers == 1 { "" } else { "s" },
                    rate / o
                )?;
            }
            writeln!(
                md,
                "\nGoal: the ingest at least 0.9x by hand ({}: {:.2}x).",
                if r.ingest >= 0.9 * r.by_hand {
                    "met"
                } else {
                    "missed"
                },
                r.ingest / r.by_hand
            )?;
            writeln!(
                md,
                "\nWhere one ingest saturates, on paper: this process spent {:.2} µs of CPU an event while it ingested ({:.2} µs by hand; user and system,",
                r.ingest_cpu_us,
                r.by_hand_cpu_us
            )?;
            writeln!(
                md,
                "`/proc/self/stat`; nats-server's own CPU is apart), so one core ingests about {:.0} events/s when nothing else",
                1e6 / r.ingest_cpu_us
            )?;
            writeln!(
                md,
                "holds it up; here the two cores are shared with the generator and nats-server."
            )?;
            writeln!(md, "\n### Partitioned by chat\n")?;
            writeln!(md, "The same number of events, spread over 64 chats, ingested into a stream partitioned by chat (`StreamConfig::partitions`,")?;
            writeln!(md, "NATS's `{{{{partition(N,...)}}}}` subject transform), then one worker per partition (`Worker::partition`), each on a thread")?;
            writeln!(md, "of its own, decoding every event as `legacy::MessagesUpsert`. \"Out of order\" counts events handled after a later")?;
            writeln!(md, "event of their chat.\n")?;
            writeln!(md, "| partitions and workers | ingest events/s | workers events/s | vs 1 | out of order |")?;
            writeln!(md, "| ---: | ---: | ---: | ---: | ---: |")?;
            let one = r.partitioned.first().map(|p| p.2).unwrap_or(f64::NAN);
            for (workers, ingest, rate, disorder) in &r.partitioned {
                writeln!(
                    md,
                    "| {workers} | {ingest:.0} | {rate:.0} | {:.2}x | {disorder} |",
                    rate / one
                )?;
            }
        }
        Err(e) => writeln!(md, "Skipped: {e} (needs the `nats-server` binary).")?,
    }

    // Decoding.
    if !skip_decode {
        eprintln!("decoding (criterion)...");
        writeln!(md, "\n## Decoding\n")?;
        writeln!(md, "criterion, `cargo bench -p eventsock-core --bench decode`: building each payload as the dispatcher builds every")?;
        writeln!(md, "payload but a legacy message's (legacy: `Frame::bare` + `decode::<T>`, one pass; newer server: `Frame::parse` +")?;
        writeln!(md, "`decode::<T>`) against a plain `serde_json::from_str::<Value>` of the same frame. A legacy message is checked on")?;
        writeln!(
            md,
            "arrival and built at its first access: the second table.\n"
        )?;
        decode_table(&mut md)?;
        writeln!(md, "\nA legacy message four ways (the same fixture, compact): built whole (`decode`, what the dispatcher did")?;
        writeln!(md, "before issue 25), its head read with the whole text checked (`head`, what it does now; the payload is built")?;
        writeln!(md, "at its first access), the lean struct of the throughput baseline, and serde's cheapest pass (`IgnoredAny`,")?;
        writeln!(md, "syntax only).\n")?;
        message_table(&mut md)?;
    }

    // Fuzzing.
    eprintln!("fuzzing...");
    let f = probes::fuzz(fuzz_cases)?;
    writeln!(md, "\n## Hostile input\n")?;
    writeln!(md, "`cargo run --release -p eventsock-bench -- fuzz --cases N`: every fixture, mutated (bytes flipped, ranges cut or")?;
    writeln!(md, "repeated, JSON tokens such as `1e999`, lone surrogates, huge integers and serde_json's raw-value marker spliced in),")?;
    writeln!(md, "through `Frame::parse` and")?;
    writeln!(md, "14 payload decoders, panics caught and counted. In this run: {} inputs, {} not JSON, {} typed decodes,", f.cases, f.not_json, f.decoded)?;
    writeln!(
        md,
        "{} typed decode errors, **{} panics**. Every input was also read as a legacy message both ways, the check",
        f.wrong_shape, f.panics
    )?;
    writeln!(
        md,
        "a message gets on arrival (`MessageHead::read`, through `Frame::event`) and the decode: {} passed the check (to",
        f.head_checked
    )?;
    writeln!(
        md,
        "be built later), **{} disagreements** (an event made where the decode refused, or none where it succeeded, a",
        f.head_disagreements
    )?;
    writeln!(
        md,
        "field answered differently, a payload built later unequal to the decode's, or a panic)."
    )?;

    let path = repo_root().join("docs/benchmarks.md");
    let soak = std::fs::read_to_string(repo_root().join("docs/soak.txt")).unwrap_or_default();
    if !soak.is_empty() {
        writeln!(md, "\n## Soak\n\nLast `cargo run --release -p eventsock-bench -- soak` (kept in docs/soak.txt):\n\n```text\n{}\n```", soak.trim())?;
    }
    // Sections measured by commands of their own (`backfill`, `outbox`) are kept as they were.
    let before = std::fs::read_to_string(&path).unwrap_or_default();
    if let Some(at) = OWN_COMMAND_SECTIONS
        .iter()
        .filter_map(|h| before.find(&format!("\n{h}\n")))
        .min()
    {
        md.push_str(&before[at..]);
    }
    std::fs::write(&path, &md)?;
    println!("{md}");
    eprintln!("written to {}", path.display());
    anyhow::ensure!(f.panics == 0, "fuzzing found panics");
    anyhow::ensure!(
        f.head_disagreements == 0,
        "the check on arrival and the decode disagreed"
    );
    Ok(())
}
