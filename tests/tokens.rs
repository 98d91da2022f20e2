//! Tokens that expire: a [`RefreshingToken`] keeps sockets and REST calls going across
//! expiries, against the simulator with expiry on, and survives a restart through its file.

mod common;

use actix::prelude::*;
use common::*;
use eventsock::client::{GetStatus, LifecycleKind, Supervisor};
use eventsock::core::Protocol;
use eventsock::core::Source;
use eventsock::core::{legacy, v2, Backoff, Token};
use eventsock::rest::{RefreshingToken, RestClient};
use eventsock::sim::SimConfig;
use std::time::Duration;

const INSTANCE: &str = "codechat";

fn expiring(protocol: Protocol, ttl: u64) -> SimConfig {
    SimConfig {
        protocol,
        jwt_expires_in: Some(Duration::from_secs(ttl)),
        ..SimConfig::default()
    }
}

fn exp_of(token: &Token) -> i64 {
    token.claims().unwrap().exp.unwrap()
}

#[actix_rt::test]
async fn a_refreshing_token_outlives_three_expiries_and_a_restart() {
    let s = start_sim(expiring(Protocol::Legacy, 3));
    let first = Token::new(s.sim.mint_token(INSTANCE, None));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    let tokens = RefreshingToken::new(&s.endpoint(), first.clone())
        .unwrap()
        .persist(&file)
        .unwrap()
        .ahead(Duration::from_secs(1));
    let source = Source::with_provider(s.endpoint(), INSTANCE, tokens.clone());
    let rest = RestClient::for_source(&source);
    let rec = Recorder::default();
    let addr = rec.clone().start();
    let sup = Supervisor::builder()
        .config(fast_config())
        .source(source)
        .router(
            Router::builder()
                .actor::<legacy::SendMessage>(addr.clone().recipient())
                .build(),
        )
        .lifecycle(addr.recipient())
        .start()
        .unwrap();
    subscribed(&s, "send.message").await;

    // Send every 200 ms and drop the socket every second, until three tokens have expired.
    let mut sent = 0usize;
    let mut expiries = Vec::new();
    let started = tokio::time::Instant::now();
    while s.sim.refreshes() < 3 {
        assert!(started.elapsed() < DEADLINE, "three refreshes never came");
        let current = tokens.current();
        if expiries.last() != Some(&exp_of(&current)) {
            expiries.push(exp_of(&current));
        }
        rest.send_text("5511988887777", &format!("tick {sent}"))
            .await
            .unwrap_or_else(|e| panic!("send {sent} failed: {e}"));
        sent += 1;
        if sent.is_multiple_of(5) {
            s.sim.drop_all();
            subscribed(&s, "send.message").await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(expiries.len() >= 3, "{expiries:?}");
    // Every reconnect was let in: no handshake was refused.
    let refused = rec.count_lifecycle(
        |k| matches!(k, LifecycleKind::Reconnecting { cause, .. } if cause.contains("refused")),
    );
    assert_eq!(refused, 0, "{:#?}", rec.lifecycle());
    let status = &sup.send(GetStatus).await.unwrap()[0];
    println!(
        "{sent} sends and {} connections across {} tokens ({} refreshes); expiries: {expiries:?}",
        status.generation,
        expiries.len(),
        s.sim.refreshes()
    );
    // The newest token is on disk, and a restart with the first token picks it up.
    let on_disk = std::fs::read_to_string(&file).unwrap();
    assert_eq!(on_disk.trim(), tokens.current().expose());
    let restarted = RefreshingToken::new(&s.endpoint(), first)
        .unwrap()
        .persist(&file)
        .unwrap();
    assert_eq!(restarted.current(), tokens.current());
}

#[actix_rt::test]
async fn a_v2_socket_closed_with_4001_comes_back_at_once_with_a_new_token() {
    let s = start_sim(expiring(Protocol::V2, 2));
    let token = Token::new(s.sim.mint_token(INSTANCE, None));
    let tokens = RefreshingToken::new(&s.endpoint(), token).unwrap();
    let mut config = fast_config();
    // A refused token the provider could not renew would wait a minute: renewal must not.
    config.backoff = Backoff::exponential(Duration::from_millis(10), Duration::from_secs(60));
    let rec = Recorder::default();
    let addr = rec.clone().start();
    let _sup = Supervisor::builder()
        .config(config)
        .source(Source::with_provider(s.endpoint(), INSTANCE, tokens).v2())
        .router(
            Router::builder()
                .actor::<v2::MessagesUpsert>(addr.clone().recipient())
                .build(),
        )
        .lifecycle(addr.recipient())
        .start()
        .unwrap();
    rec.wait_lifecycle("a fourth connection, after three expiries", |k| {
        connected(k, 4)
    })
    .await;
    let closes = rec.count_lifecycle(|k| {
        matches!(
            k,
            LifecycleKind::Disconnected {
                code: Some(4001),
                ..
            }
        )
    });
    assert_eq!(closes, 3);
    let slow = rec.count_lifecycle(|k| {
        matches!(k, LifecycleKind::Reconnecting { delay, .. } if *delay >= Duration::from_secs(60))
    });
    assert_eq!(slow, 0, "{:#?}", rec.lifecycle());
    assert_eq!(s.sim.refreshes(), 3);
}

#[actix_rt::test]
async fn the_refresh_route_follows_the_real_servers_rules() {
    let s = start_sim(expiring(Protocol::Legacy, 3600));
    let old = Token::new(s.sim.mint_token(INSTANCE, None));
    let tokens = RefreshingToken::new(&s.endpoint(), old.clone()).unwrap();
    let new = tokens.refresh().await.unwrap();
    assert_ne!(new, old);
    assert_eq!(
        new.claims().unwrap().instance_name.as_deref(),
        Some(INSTANCE)
    );
    // The old token cannot be refreshed again: the stored token moved on.
    let stale = RefreshingToken::new(&s.endpoint(), old).unwrap();
    let err = stale.refresh().await.unwrap_err().to_string();
    assert!(err.contains("400") && err.contains("Invalid"), "{err}");
    // With expiry off (CodeChat's default), exp == iat and nothing is ever refreshed.
    let off = start_sim(SimConfig::default());
    let forever = Token::new(off.sim.mint_token(INSTANCE, None));
    let claims = forever.claims().unwrap();
    assert_eq!(claims.exp, claims.iat);
    let tokens = RefreshingToken::new(&off.endpoint(), forever.clone()).unwrap();
    let rest = RestClient::with_provider(&off.endpoint(), INSTANCE, tokens.clone());
    rest.connection_state().await.unwrap();
    assert_eq!(tokens.current(), forever);
    assert_eq!(off.sim.refreshes(), 0);
}
