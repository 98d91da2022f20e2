//! A token never appears in a log line, an error or a `Debug` output.

mod common;

use actix::prelude::*;
use common::*;
use eventsock::client::{GetStatus, LifecycleKind, Supervisor};
use eventsock::core::{legacy, Token};
use eventsock::core::{FnTokenProvider, Source, TokenProviderError};
use eventsock::sim::SimConfig;
use serde_json::json;
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[actix_rt::test]
async fn tokens_never_reach_logs_errors_or_debug_output() {
    let logs = Captured::default();
    let writer = logs.clone();
    // Everything, from every crate, at the most verbose level, on this thread (where the
    // supervisor and its connections run).
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let s = start_sim(SimConfig::default());
    let good = s.sim.mint_token("codechat", None);
    let refused = eventsock::sim::Sim::new(SimConfig {
        secret: "other".into(),
        ..Default::default()
    })
    .mint_token("codechat", None);
    let calls = Arc::new(AtomicUsize::new(0));
    let provider = {
        let (good, refused, calls) = (
            Token::new(good.as_str()),
            Token::new(refused.as_str()),
            calls.clone(),
        );
        FnTokenProvider(move || {
            let t = if calls.fetch_add(1, Ordering::SeqCst) < 2 {
                refused.clone()
            } else {
                good.clone()
            };
            async move { Ok::<_, TokenProviderError>(t) }
        })
    };
    let rec = Recorder::default();
    let addr = rec.clone().start();
    let source = Source::with_provider(s.endpoint(), "codechat", provider);
    let sup = Supervisor::builder()
        .config(fast_config())
        .source(source.clone())
        .router(
            Router::builder()
                .actor::<legacy::MessagesUpsert>(addr.clone().recipient())
                .undelivered(addr.clone().recipient())
                .build(),
        )
        .lifecycle(addr.recipient())
        .start()
        .unwrap();
    rec.wait_lifecycle("a connection", |k| {
        matches!(k, LifecycleKind::Connected { generation: 1 })
    })
    .await;
    until("the socket", || {
        s.sim.is_subscribed("codechat", "messages.upsert")
    })
    .await;
    s.sim
        .emit_text("codechat", "messages.upsert", "{\"oops\": ");
    s.sim
        .emit("codechat", "messages.upsert", &json!({"keyId": "A"}));
    rec.wait_events(1).await;
    s.sim.drop_all();
    rec.wait_lifecycle("the reconnect", |k| {
        matches!(k, LifecycleKind::Connected { generation: 2 })
    })
    .await;

    let status = sup.send(GetStatus).await.unwrap();
    let shown = [
        String::from_utf8(logs.0.lock().unwrap().clone()).unwrap(),
        format!("{status:?}"),
        format!("{:?}", rec.records()),
        format!("{source:?}"),
        format!("{:?}", fast_config()),
    ];
    assert!(
        shown[0].contains("messages.upsert"),
        "the logs were captured"
    );
    assert!(shown[0].contains("refused"), "the refusals were logged");
    assert!(shown[0].lines().count() > 20, "verbose logs were captured");
    for text in &shown {
        for (name, token) in [("the good token", &good), ("the refused token", &refused)] {
            // Also no telling part of it: the signature is the secret's fingerprint.
            let signature = token.rsplit('.').next().unwrap();
            assert!(!text.contains(signature), "{name} leaked into:\n{text}");
        }
    }
}
