//! The `eventsock` binary, run as a user runs it, against the simulator.

mod common;

use common::*;
use eventsock::sim::SimConfig;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};

#[actix_rt::test]
async fn tail_prints_json_lines_in_arrival_order_and_exits_cleanly_on_sigterm() {
    let s = start_sim(SimConfig::default());
    let token = s.sim.mint_token("codechat", None);
    let mut child = Command::new(env!("CARGO_BIN_EXE_eventsock"))
        .args([
            "tail",
            "--event",
            "messages.upsert",
            "--event",
            "send.message",
        ])
        .args([
            "--ping-interval",
            "500ms",
            "--backoff-min",
            "10ms",
            "--backoff-max",
            "1s",
        ])
        .env("EVENTSOCK_URL", s.url())
        .env("EVENTSOCK_TOKEN", &token)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let _ = tx.send(line.unwrap());
        }
    });
    until("both subscriptions", || {
        s.sim.is_subscribed("codechat", "messages.upsert")
            && s.sim.is_subscribed("codechat", "send.message")
    })
    .await;
    s.sim
        .emit("codechat", "messages.upsert", &json!({"keyId": "1"}));
    s.sim.emit_text("codechat", "messages.upsert", "{broken");
    s.sim
        .emit("codechat", "messages.upsert", &json!({"keyId": "2"}));
    let mut lines = Vec::new();
    while lines.len() < 2 {
        let line = tokio::time::timeout(DEADLINE, rx.recv())
            .await
            .expect("a line")
            .expect("stdout open");
        lines.push(serde_json::from_str::<Value>(&line).unwrap());
    }
    assert_eq!(
        lines,
        vec![
            json!({"event": "messages.upsert", "instance": "codechat", "data": {"keyId": "1"}}),
            json!({"event": "messages.upsert", "instance": "codechat", "data": {"keyId": "2"}}),
        ]
    );
    // A forced drop: tail reconnects and goes on.
    s.sim.drop_all();
    until("the reconnect", || {
        s.sim.accepted() >= 4 && s.sim.is_subscribed("codechat", "send.message")
    })
    .await;
    s.sim
        .emit("codechat", "send.message", &json!({"keyId": "3"}));
    let line = tokio::time::timeout(DEADLINE, rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&line).unwrap()["data"]["keyId"],
        "3"
    );

    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(status.status.success(), "exit status {:?}", status.status);
    let stderr = String::from_utf8(status.stderr).unwrap();
    assert!(stderr.contains("connected (connection 2)"), "{stderr}");
    assert!(stderr.contains("may be lost"), "the gap notice: {stderr}");
    assert!(
        stderr.contains("frame 2 skipped"),
        "the broken frame is reported: {stderr}"
    );
    assert!(
        stderr.contains("codechat messages.upsert"),
        "the summary: {stderr}"
    );
    assert!(!stderr.contains(&token), "the token is never printed");
    until("both close frames", || s.sim.client_closes().len() == 2).await;
    assert_eq!(s.sim.client_closes(), vec![Some(1000), Some(1000)]);
}

#[test]
fn tail_refuses_bad_arguments_with_clear_errors() {
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_eventsock"))
            .args(args)
            .env_remove("EVENTSOCK_URL")
            .env_remove("EVENTSOCK_TOKEN")
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} was accepted");
        String::from_utf8(out.stderr).unwrap()
    };
    let e = run(&[
        "tail",
        "--url",
        "ftp://x",
        "--token",
        "a.b.c",
        "--event",
        "messages.upsert",
    ]);
    assert!(e.contains("unsupported scheme"), "{e}");
    let e = run(&[
        "tail",
        "--url",
        "http://x",
        "--token",
        "secret-not-a-jwt",
        "--event",
        "messages.upsert",
    ]);
    assert!(
        e.contains("not a JWT") && !e.contains("secret-not-a-jwt"),
        "{e}"
    );
    let e = run(&[
        "tail",
        "--url",
        "http://x",
        "--token",
        "a.b.c",
        "--event",
        "x",
        "--ping-interval",
        "soon",
    ]);
    assert!(e.contains("not a duration"), "{e}");
    let e = run(&["tail", "--token", "a.b.c", "--event", "x"]);
    assert!(e.contains("--url"), "{e}");
}

#[test]
fn sim_prints_a_ready_url_and_token_and_demo_runs_to_its_summary() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_eventsock"))
        .args(["sim", "--port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut head = String::new();
    for _ in 0..4 {
        out.read_line(&mut head).unwrap();
    }
    child.kill().unwrap();
    let _ = child.wait();
    assert!(head.contains("on http://127.0.0.1:"), "{head}");
    let token = head
        .lines()
        .find_map(|l| l.trim().strip_prefix("token:"))
        .unwrap()
        .trim();
    let claims = eventsock::core::Token::new(token).claims().unwrap();
    assert_eq!(claims.instance_name.as_deref(), Some("codechat"));

    let mut demo = Command::new(env!("CARGO_BIN_EXE_eventsock"))
        .args(["demo", "--duration", "2s", "--rate", "50"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut text = String::new();
    demo.stdout
        .take()
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    assert!(demo.wait().unwrap().success());
    assert!(
        text.contains("connected (connection 2)"),
        "the demo reconnects:\n{text}"
    );
    assert!(text.contains("gap notice"), "{text}");
    assert!(text.contains("summary after"), "{text}");
}
