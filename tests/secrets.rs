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

/// Everything, from every crate, at the most verbose level, captured on this thread (where the
/// supervisor and its connections run) until the guard is dropped.
fn captured() -> (Captured, tracing::subscriber::DefaultGuard) {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    (logs, tracing::subscriber::set_default(subscriber))
}

#[actix_rt::test]
async fn tokens_never_reach_logs_errors_or_debug_output() {
    let (logs, _guard) = captured();

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

#[actix_rt::test]
async fn the_api_key_is_absent_from_a_trace_log_of_a_whole_session() {
    let (logs, _guard) = captured();

    // A server that puts the key in every envelope, as Evolution does when it exposes it.
    let s = start_sim(SimConfig {
        protocol: eventsock::core::Protocol::Evolution,
        ..SimConfig::default()
    });
    s.sim.expose_api_key(true);
    let key = s.sim.api_key("codechat").unwrap();
    let router = Router::builder()
        .on(|msg: eventsock::Msg| async move {
            use eventsock::core::MessageLike;
            if !msg.is_from_me() && msg.text() == Some("!ping") {
                msg.cx.reply("pong").await?;
            }
            Ok(())
        })
        .build();
    let settings = eventsock::Settings {
        url: Some(s.url()),
        token: Some(eventsock::core::Token::new(key.as_str())),
        instance: Some("codechat".into()),
        protocol: Some(eventsock::core::Protocol::Evolution),
        ..eventsock::Settings::default()
    };
    let running = eventsock::Run::start(router, settings).await.unwrap();
    until("the namespace joined", || s.sim.joined("codechat") == 1).await;
    s.sim.emit(
        "codechat",
        "messages.upsert",
        &evolution_message("K1", "5511988887777", "!ping"),
    );
    until("the pong", || {
        sent_texts(&s.sim, "5511988887777").len() == 1
    })
    .await;
    // A refused key, and a frame that is not a packet: errors are logged too.
    let wrong = eventsock::core::Source::evolution(
        eventsock::core::Endpoint::parse(&s.url()).unwrap(),
        "another",
        eventsock::core::Token::new(format!("{key}-wrong")),
    );
    let (sup, rec) = supervise_with(wrong, fast_config());
    rec.wait_lifecycle("the refusal", |k| {
        matches!(k, eventsock::client::LifecycleKind::Reconnecting { .. })
    })
    .await;
    let _ = sup.send(eventsock::client::Shutdown).await;
    // A packet that does not parse, logged with its start (which holds the key), and an
    // envelope holding the key whose data does not fit.
    s.sim
        .emit_text("codechat", "messages.upsert", format!("42/codechat,{key}"));
    let misfit = json!(["messages.upsert", {"event": "messages.upsert", "instance": "codechat",
        "data": {"key": "not a key"}, "apikey": key}]);
    s.sim.emit_text(
        "codechat",
        "messages.upsert",
        format!("42/codechat,{misfit}"),
    );
    s.sim.emit(
        "codechat",
        "messages.upsert",
        &evolution_message("K2", "5511988887777", "!ping"),
    );
    until("the second pong", || {
        sent_texts(&s.sim, "5511988887777").len() == 2
    })
    .await;
    running.stop().await;

    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        text.contains("connected"),
        "the log has the session: {text}"
    );
    assert!(
        text.contains("not a Socket.IO packet"),
        "the bad packet is logged: {text}"
    );
    assert!(!text.contains(&key), "the API key is in the log");
}
