//! How long recovering a gap takes: `N` messages saved by the simulator while nobody listened,
//! recovered over REST at start-up from a checkpoint and delivered through a router, against a
//! hand-written baseline that only pages `findMessages` with awc and parses the JSON.

use eventsock_client::{Backfill, Shutdown, Supervisor};
use eventsock_core::{legacy, Source, Token};
use eventsock_handler::{Received, Router};
use eventsock_sim::{Embedded, SimConfig};
use serde_json::json;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// One run: (eventsock's seconds, the baseline's seconds).
async fn run(messages: u64, page: u32) -> anyhow::Result<(f64, f64)> {
    let sim = Embedded::start(SimConfig::default())?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() as i64;
    for i in 0..messages {
        let m = json!({"keyId": format!("B{i:07}"), "keyFromMe": false, "pushName": "Maria",
                       "keyRemoteJid": "5511988887777@s.whatsapp.net", "messageType": "conversation",
                       "content": {"text": "Olá, tudo bem?"}, "messageTimestamp": now - messages as i64 + i as i64,
                       "device": "ios"});
        sim.sim.emit("codechat", "messages.upsert", &m);
    }
    let token = sim.sim.mint_token("codechat", None);

    // The baseline: what a user writes by hand to fetch the same messages.
    let started = Instant::now();
    let http = awc::Client::default();
    let url = format!("{}/chat/findMessages/codechat", sim.url());
    let mut fetched = 0u64;
    for n in 1.. {
        let mut response = http
            .post(&url)
            .bearer_auth(&token)
            .send_json(&json!({"where": {}, "offset": page, "page": n}))
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let body = response.body().limit(64 << 20).await?;
        let page_of: serde_json::Value = serde_json::from_slice(&body)?;
        let records = page_of["messages"]["records"]
            .as_array()
            .map_or(0, Vec::len);
        fetched += records as u64;
        if records < page as usize {
            break;
        }
    }
    anyhow::ensure!(fetched == messages, "the baseline fetched {fetched}");
    let baseline = started.elapsed().as_secs_f64();

    // eventsock: a checkpoint older than every message; recovery at start-up.
    let dir = std::env::temp_dir().join(format!("eventsock-bench-backfill-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let checkpoint = dir.join("checkpoint.json");
    let mark = json!({"instances": {"codechat": {"timestamp": now - messages as i64 - 1, "id": "START"}}, "recent": []});
    std::fs::write(&checkpoint, mark.to_string())?;
    let delivered = Arc::new(AtomicU64::new(0));
    let counter = delivered.clone();
    let router = Router::builder()
        .on(move |_: Received<legacy::MessagesUpsert>| {
            counter.fetch_add(1, Ordering::Relaxed);
            async { Ok(()) }
        })
        .build();
    let started = Instant::now();
    let supervisor = Supervisor::builder()
        .source(Source::new(
            eventsock_core::Endpoint::parse(&sim.url())?,
            Token::new(token),
        )?)
        .router(router)
        .backfill(Backfill::new().pages(page, 1_000).checkpoint(&checkpoint))
        .start()?;
    while delivered.load(Ordering::Relaxed) < messages {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(120),
            "not recovered within 2 minutes"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let eventsock = started.elapsed().as_secs_f64();
    supervisor.send(Shutdown).await?;
    std::fs::remove_dir_all(&dir)?;
    Ok((eventsock, baseline))
}

/// `runs` runs of `messages` messages in pages of `page`; prints the medians.
pub(crate) async fn backfill(messages: u64, page: u32, runs: u32) -> anyhow::Result<()> {
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    for _ in 0..runs.max(1) {
        let (e, b) = run(messages, page).await?;
        println!("run: eventsock {e:.3} s, hand-written paging {b:.3} s");
        ours.push(e);
        theirs.push(b);
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (e, b) = (median(ours), median(theirs));
    println!(
        "backfill of {messages} stored messages, pages of {page}, median of {runs} runs: eventsock {e:.3} s ({:.0} messages/s, from start-up to the last one handled); hand-written paging with awc + serde_json, nothing delivered: {b:.3} s",
        messages as f64 / e
    );
    Ok(())
}
