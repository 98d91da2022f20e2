//! The `eventsock` binary, run as a user runs it, against the simulator.

mod common;

use common::hostile;
use common::*;
use eventsock::sim::SimConfig;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};

/// The lines `child` writes on its stdout, as they come.
fn stdout_lines(child: &mut std::process::Child) -> tokio::sync::mpsc::UnboundedReceiver<String> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let _ = tx.send(line.unwrap());
        }
    });
    rx
}

/// Sends `child` SIGTERM and waits for it: its exit status and output.
async fn terminated(child: std::process::Child) -> std::process::Output {
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap()
}

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
    let mut rx = stdout_lines(&mut child);
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
            // The simulator saves messages, and a saved message carries its row id.
            json!({"event": "messages.upsert", "instance": "codechat", "data": {"keyId": "1", "id": 1}}),
            json!({"event": "messages.upsert", "instance": "codechat", "data": {"keyId": "2", "id": 2}}),
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

    let status = terminated(child).await;
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

/// A token is read from `--token-file` (or `EVENTSOCK_TOKEN_FILE`), whose errors name the file
/// and never its contents; a token on the command line, which `ps` shows to every user, is
/// warned about.
#[test]
fn a_token_comes_from_a_file_and_one_on_the_command_line_is_warned_about() {
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let out = Command::new(env!("CARGO_BIN_EXE_eventsock"))
            .args(["tail", "--event", "messages.upsert"])
            .args(args)
            .env_remove("EVENTSOCK_URL")
            .env_remove("EVENTSOCK_TOKEN")
            .env_remove("EVENTSOCK_TOKEN_FILE")
            .envs(env.iter().copied())
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} was accepted");
        String::from_utf8(out.stderr).unwrap()
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    let path = file.to_str().unwrap();
    // Read from the file, by flag or variable: the URL is what fails, so the token was taken.
    std::fs::write(&file, "a.b.c\n").unwrap();
    let e = run(&["--url", "ftp://x", "--token-file", path], &[]);
    assert!(
        e.contains("unsupported scheme") && !e.contains("warning"),
        "{e}"
    );
    let e = run(&["--url", "ftp://x"], &[("EVENTSOCK_TOKEN_FILE", path)]);
    assert!(e.contains("unsupported scheme"), "{e}");
    // An empty file, a missing one: named, and nothing they hold is printed.
    std::fs::write(&file, "  \n").unwrap();
    let e = run(&["--url", "http://x", "--token-file", path], &[]);
    assert!(
        e.contains(&format!("the token file {path} is empty")),
        "{e}"
    );
    let missing = dir.path().join("missing");
    let missing = missing.to_str().unwrap();
    let e = run(&["--url", "http://x", "--token-file", missing], &[]);
    assert!(
        e.contains(&format!("cannot read the token file {missing}")),
        "{e}"
    );
    // On the command line: taken, and warned about (without the token).
    let e = run(&["--url", "ftp://x", "--token", "a.b.c"], &[]);
    assert!(
        e.contains("warning: a token given with --token can be read by every user")
            && !e.contains("a.b.c"),
        "{e}"
    );
    // From the environment: no warning.
    let e = run(&["--url", "ftp://x"], &[("EVENTSOCK_TOKEN", "a.b.c")]);
    assert!(
        e.contains("unsupported scheme") && !e.contains("warning"),
        "{e}"
    );
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

/// `eventsock` run as a child, its stderr collected line by line for the test to wait on.
struct Running {
    child: std::process::Child,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Running {
    fn start(args: &[&str], stdout: Stdio) -> Running {
        Running::start_with(args, stdout, &[])
    }

    /// [`Running::start`] with these environment variables.
    fn start_with(args: &[&str], stdout: Stdio, env: &[(&str, &str)]) -> Running {
        let mut child = Command::new(env!("CARGO_BIN_EXE_eventsock"))
            .args(args)
            .env_remove("EVENTSOCK_URL")
            .env_remove("EVENTSOCK_TOKEN")
            .envs(env.iter().copied())
            .stdout(stdout)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let (pipe, sink) = (child.stderr.take().unwrap(), stderr.clone());
        std::thread::spawn(move || {
            let mut pipe = pipe;
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Running { child, stderr }
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Reads the first line of stdout, then lets stdout go (its reader is gone).
    async fn first_line(&mut self) -> String {
        let stdout = self.child.stdout.take().unwrap();
        tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            BufReader::new(stdout).read_line(&mut line).unwrap();
            line
        })
        .await
        .unwrap()
    }

    /// Waits for the exit, says how long it took after `what`, and checks it was a success.
    async fn exits_cleanly_after(&mut self, what: &str) {
        let (status, took) = self.exit().await;
        println!("eventsock exited {} ms after {what}", took.as_millis());
        assert!(status.success(), "{status}: {}", self.stderr());
    }

    async fn wait_stderr(&self, what: &str) {
        until(&format!("{what:?} on stderr"), || {
            self.stderr().contains(what)
        })
        .await;
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill")
            .args([signal, &pid])
            .status()
            .unwrap()
            .success());
    }

    /// Waits for the exit (or fails after the deadline); the exit status and how long it took.
    async fn exit(&mut self) -> (std::process::ExitStatus, std::time::Duration) {
        let started = std::time::Instant::now();
        let status = tokio::time::timeout(DEADLINE, async {
            loop {
                if let Some(status) = self.child.try_wait().unwrap() {
                    return status;
                }
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        })
        .await
        .unwrap_or_else(|_| {
            let _ = self.child.kill();
            panic!("eventsock did not exit; stderr:\n{}", self.stderr())
        });
        // Let the stderr thread take the last bytes.
        until("stderr to close", || {
            std::sync::Arc::strong_count(&self.stderr) == 1
        })
        .await;
        (status, started.elapsed())
    }
}

fn tail_args<'a>(url: &'a str, token: &'a str) -> Vec<&'a str> {
    vec![
        "tail",
        "--url",
        url,
        "--token",
        token,
        "--event",
        "messages.upsert",
        "--backoff-min",
        "10ms",
        "--backoff-max",
        "200ms",
    ]
}

/// A simulator and `eventsock tail` subscribed to its `messages.upsert`, stdout piped.
async fn tail_of_a_sim() -> (TestServer, Running) {
    let s = start_sim(SimConfig::default());
    let token = s.sim.mint_token("codechat", None);
    let url = s.url();
    let tail = Running::start(&tail_args(&url, &token), Stdio::piped());
    subscribed(&s, "messages.upsert").await;
    (s, tail)
}

#[actix_rt::test]
async fn tail_exits_0_at_once_when_its_reader_goes_away() {
    // `eventsock tail | head -n 1`: after the first line the reader is gone; no more events come.
    let (s, mut tail) = tail_of_a_sim().await;
    s.sim
        .emit("codechat", "messages.upsert", &json!({"keyId": "1"}));
    let line = tail.first_line().await;
    assert!(line.contains(r#""keyId":"1""#), "{line}");
    // The reader (and with it the pipe) is gone now.
    tail.exits_cleanly_after("its reader went away").await;
}

#[actix_rt::test]
async fn tail_obeys_sigint_while_its_reader_does_not_read() {
    // A paused pager: stdout is a pipe nobody reads. The events fill it, then tail's queue.
    let (s, mut tail) = tail_of_a_sim().await;
    let text = "x".repeat(1000);
    s.sim.burst(
        "codechat",
        "messages.upsert",
        &json!({"keyId": "k", "content": {"text": text}}),
        20_000,
    );
    let stdout = tail.child.stdout.take().unwrap();
    // A pipe holds 64 KiB; whole lines of 1 KiB stop fitting a little before.
    until("the pipe to fill", || {
        rustix::io::ioctl_fionread(&stdout).unwrap_or(0) >= 48 * 1024
    })
    .await;
    tail.signal("-INT");
    tail.exits_cleanly_after("SIGINT with its reader stalled")
        .await;
    assert!(
        tail.stderr().contains("subscription"),
        "the summary: {}",
        tail.stderr()
    );
    drop(stdout);
}

#[actix_rt::test]
async fn tail_obeys_sigint_against_a_server_that_never_reads() {
    let server = hostile::serve(|mut s, r, stats| {
        if !hostile::upgrade(&mut s, &r) {
            return;
        }
        hostile::flood(&mut s, &hostile::frame(9, &[7; 125]), stats);
    });
    let token = eventsock::sim::Sim::new(SimConfig::default()).mint_token("codechat", None);
    let url = server.url();
    let mut tail = Running::start(&tail_args(&url, &token), Stdio::null());
    // 16 MiB of pings: our pongs have filled every buffer between us.
    until("16 MiB of pings", || server.written() > 16 * 1024 * 1024).await;
    tail.signal("-INT");
    tail.exits_cleanly_after("SIGINT with a server that never reads")
        .await;
}

#[actix_rt::test]
async fn tail_exits_1_with_a_summary_when_every_subscription_gave_up() {
    // Upgrades, then drops the connection at once, forever.
    let server = hostile::serve(|mut s, r, _| {
        hostile::upgrade(&mut s, &r);
    });
    let token = eventsock::sim::Sim::new(SimConfig::default()).mint_token("codechat", None);
    let url = server.url();
    let mut args = tail_args(&url, &token);
    args.extend(["--max-restarts", "2", "--restart-window", "1m"]);
    let mut tail = Running::start(&args, Stdio::null());
    let (status, _) = tail.exit().await;
    let stderr = tail.stderr();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("gave up: 3 connections dropped within 1m"),
        "{stderr}"
    );
    assert!(stderr.contains("given up"), "the summary's state: {stderr}");
    assert!(stderr.contains("every subscription gave up"), "{stderr}");
}

#[actix_rt::test]
async fn tail_escapes_what_the_server_says_and_prints_no_colour_off_a_terminal() {
    let server = hostile::serve(|mut s, r, stats| {
        if hostile::upgrade(&mut s, &r) {
            let reason = "bye\n2026 eventsock: connected\x1b]0;pwned\x07\x1b[2J";
            hostile::send(&mut s, &hostile::close_frame(4000, reason), stats);
            hostile::hold(stats);
        }
    });
    let token = eventsock::sim::Sim::new(SimConfig::default()).mint_token("codechat", None);
    let url = server.url();
    let mut tail = Running::start(&tail_args(&url, &token), Stdio::null());
    tail.wait_stderr("closed by the server with 4000").await;
    tail.signal("-TERM");
    tail.exit().await;
    let stderr = tail.stderr();
    assert!(
        stderr.contains(r"closed by the server with 4000: bye\n2026 eventsock: connected\u{1b}]0;pwned\u{7}\u{1b}[2J"),
        "{stderr}"
    );
    assert!(
        !stderr.contains('\x1b'),
        "no escape sequence at all: {stderr:?}"
    );
    assert!(!stderr.contains('\x07'));
}

#[actix_rt::test]
async fn tail_takes_the_url_as_codechat_writes_it_and_says_what_is_wrong_with_others() {
    let s = start_sim(SimConfig::default());
    let token = s.sim.mint_token("codechat", None);
    // CodeChat's README gives the socket's URL.
    let url = format!("{}/ws/events", s.url().replace("http://", "ws://"));
    let mut tail = Running::start(&tail_args(&url, &token), Stdio::piped());
    subscribed(&s, "messages.upsert").await;
    s.sim
        .emit("codechat", "messages.upsert", &json!({"keyId": "1"}));
    let line = tail.first_line().await;
    assert!(line.contains(r#""keyId":"1""#), "{line}");
    tail.signal("-TERM");
    tail.exit().await;

    let refused = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_eventsock"))
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?} was accepted");
        String::from_utf8(out.stderr).unwrap()
    };
    let e = refused(&tail_args("localhost:8084", &token));
    assert!(
        e.contains("has no scheme: write http://localhost:8084"),
        "{e}"
    );
    let with_token = format!("ws://127.0.0.1:1/ws/events?event=messages.upsert&token={token}");
    let e = refused(&tail_args(&with_token, &token));
    assert!(e.contains("the URL carries a token in its query"), "{e}");
    assert!(!e.contains(&token), "the token is never echoed: {e}");
    let e = refused(&[
        "tail",
        "--url",
        &s.url(),
        "--token",
        &token,
        "--event",
        "message.upsert",
    ]);
    assert!(
        e.contains("does not serve `message.upsert`; did you mean `messages.upsert`?"),
        "{e}"
    );
    let e = refused(&[
        "tail",
        "--url",
        &url,
        "--protocol",
        "v2",
        "--token",
        &token,
        "--event",
        "messages.upsert",
    ]);
    assert!(e.contains("but --protocol is v2"), "{e}");
}

#[actix_rt::test]
async fn bridge_says_where_nats_is_unreachable_and_that_it_retries() {
    let s = start_sim(SimConfig::default());
    let token = s.sim.mint_token("codechat", None);
    // A port with nothing behind it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let nats = format!("nats://127.0.0.1:{port}");
    let url = s.url();
    let mut bridge = Running::start(
        &[
            "bridge",
            "--url",
            &url,
            "--token",
            &token,
            "--event",
            "messages.upsert",
            "--nats",
            &nats,
        ],
        Stdio::null(),
    );
    bridge
        .wait_stderr(&format!("NATS at {nats} is unreachable"))
        .await;
    bridge.wait_stderr("retrying every").await;
    bridge.signal("-TERM");
    bridge.exits_cleanly_after("SIGTERM").await;
    // tail waiting for NATS to hold its lease in: the same, and Ctrl-C ends the wait.
    let mut args = tail_args(&url, &token);
    args.extend(["--lease-nats", &nats]);
    let mut tail = Running::start(&args, Stdio::null());
    tail.wait_stderr(&format!("NATS at {nats} is unreachable"))
        .await;
    tail.signal("-INT");
    tail.exits_cleanly_after("SIGINT").await;
    assert!(
        tail.stderr().contains("stopped before NATS answered"),
        "{}",
        tail.stderr()
    );
    assert_eq!(s.sim.accepted(), 0, "nothing connected");
}

/// Every stdout line of `child`, parsed, as it comes.
fn json_lines(child: &mut std::process::Child) -> tokio::sync::mpsc::UnboundedReceiver<Value> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(serde_json::from_str::<Value>(&line).unwrap());
        }
    });
    rx
}

async fn next_line(rx: &mut tokio::sync::mpsc::UnboundedReceiver<Value>) -> Value {
    tokio::time::timeout(DEADLINE, rx.recv())
        .await
        .expect("a line within the deadline")
        .expect("stdout open")
}

#[actix_rt::test]
async fn tail_killed_and_started_again_with_its_checkpoint_prints_what_it_missed_once() {
    let s = start_sim(SimConfig::default());
    let token = s.sim.mint_token("codechat", None);
    let url = s.url();
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = dir.path().join("checkpoint.json");
    let mut args = tail_args(&url, &token);
    args.extend(["--backfill", "--checkpoint", checkpoint.to_str().unwrap()]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let message = |id: &str| json!({"keyId": id, "keyRemoteJid": "5511988887777@s.whatsapp.net", "messageTimestamp": now});

    let mut first = Running::start(&args, Stdio::piped());
    let mut lines = json_lines(&mut first.child);
    subscribed(&s, "messages.upsert").await;
    for i in 0..5 {
        s.sim
            .emit("codechat", "messages.upsert", &message(&format!("L{i}")));
    }
    for i in 0..5 {
        let line = next_line(&mut lines).await;
        assert_eq!(line["data"]["keyId"], format!("L{i}"));
        assert!(line.get("backfilled").is_none(), "{line}");
    }
    until("the checkpoint to hold L4", || {
        std::fs::read_to_string(&checkpoint).is_ok_and(|c| c.contains("\"L4\""))
    })
    .await;
    first.signal("-KILL");
    let (status, _) = first.exit().await;
    assert!(!status.success(), "killed: {status}");
    until("the socket to close", || {
        !s.sim.is_subscribed("codechat", "messages.upsert")
    })
    .await;

    // While nobody listens: 50 messages, lost to the socket, kept by the server.
    for i in 0..50 {
        assert!(!s
            .sim
            .emit("codechat", "messages.upsert", &message(&format!("M{i:02}"))));
    }
    let mut second = Running::start(&args, Stdio::piped());
    let mut lines = json_lines(&mut second.child);
    for i in 0..50 {
        let line = next_line(&mut lines).await;
        assert_eq!(
            line["data"]["keyId"],
            format!("M{i:02}"),
            "oldest first, each once: {line}"
        );
        assert_eq!(line["backfilled"], true);
    }
    second.wait_stderr("recovered 50 missed messages").await;
    // Nothing else came before a live message: L0..L4 were not printed again.
    subscribed(&s, "messages.upsert").await;
    s.sim.emit("codechat", "messages.upsert", &message("LIVE"));
    let line = next_line(&mut lines).await;
    assert_eq!(line["data"]["keyId"], "LIVE");
    assert!(line.get("backfilled").is_none(), "{line}");
    second.signal("-TERM");
    second.exits_cleanly_after("SIGTERM").await;
}

/// One eventsock process per stream: a second `tail` of a held stream exits non-zero before it
/// connects, naming the holder; with `--take` it gets the stream, the holder stands down without
/// reconnecting, and when the taker is killed (SIGKILL) the holder takes the stream back and
/// recovers what was sent meanwhile.
#[actix_rt::test]
async fn a_held_stream_is_refused_to_a_second_tail_and_taken_with_take() {
    let s = start_sim(SimConfig::default());
    let token = s.sim.mint_token("codechat", None);
    let url = s.url();
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    };
    let message = |id: &str| json!({"keyId": id, "keyRemoteJid": "5511988887777@s.whatsapp.net", "messageTimestamp": now()});
    let mut args = tail_args(&url, &token);
    args.push("--backfill");
    let mut holder = Running::start(&args, Stdio::piped());
    let mut held = json_lines(&mut holder.child);
    subscribed(&s, "messages.upsert").await;
    let accepted = s.sim.accepted();

    // A second tail: refused before it connects, the holder unaffected.
    let mut second = Running::start(&args, Stdio::null());
    let (status, _) = second.exit().await;
    assert_eq!(status.code(), Some(1), "{}", second.stderr());
    let said = second.stderr();
    assert!(
        said.contains(&format!(
            "another eventsock process holds the codechat messages.upsert stream (process {} on ",
            holder.child.id()
        )) && said.contains("--take"),
        "{said}"
    );
    assert_eq!(
        s.sim.accepted(),
        accepted,
        "the second tail never connected"
    );
    s.sim.emit("codechat", "messages.upsert", &message("H1"));
    assert_eq!(next_line(&mut held).await["data"]["keyId"], "H1");

    // --take: the holder stands down and does not reconnect while the taker holds the stream.
    let mut take_args = args.clone();
    take_args.push("--take");
    let mut taker = Running::start(&take_args, Stdio::piped());
    let mut taken = json_lines(&mut taker.child);
    holder
        .wait_stderr("another eventsock process takes this stream")
        .await;
    until("the taker's socket", || s.sim.accepted() == accepted + 1).await;
    subscribed(&s, "messages.upsert").await;
    for i in 0..5 {
        s.sim
            .emit("codechat", "messages.upsert", &message(&format!("T{i}")));
        assert_eq!(
            next_line(&mut taken).await["data"]["keyId"],
            format!("T{i}")
        );
    }
    assert_eq!(
        s.sim.accepted(),
        accepted + 1,
        "the holder stood down, no reconnect"
    );

    // The taker dies: the holder takes the stream back and recovers T0..T4, each once.
    taker.signal("-KILL");
    let _ = taker.exit().await;
    for i in 0..5 {
        let line = next_line(&mut held).await;
        assert_eq!(line["data"]["keyId"], format!("T{i}"), "{line}");
        assert_eq!(line["backfilled"], true);
    }
    assert_eq!(
        s.sim.accepted(),
        accepted + 2,
        "one reconnect, when the stream was free"
    );
    s.sim.emit("codechat", "messages.upsert", &message("BACK"));
    assert_eq!(next_line(&mut held).await["data"]["keyId"], "BACK");

    // Taken again, and let go with a clean exit this time: the same.
    let mut taker = Running::start(&take_args, Stdio::piped());
    let mut taken = json_lines(&mut taker.child);
    until("the second taker's socket", || {
        s.sim.accepted() == accepted + 3
    })
    .await;
    subscribed(&s, "messages.upsert").await;
    s.sim.emit("codechat", "messages.upsert", &message("U0"));
    assert_eq!(next_line(&mut taken).await["data"]["keyId"], "U0");
    taker.signal("-TERM");
    taker.exits_cleanly_after("SIGTERM").await;
    let line = next_line(&mut held).await;
    assert_eq!(
        (&line["data"]["keyId"], &line["backfilled"]),
        (&json!("U0"), &json!(true))
    );
    holder.signal("-TERM");
    holder.exits_cleanly_after("SIGTERM").await;
}

/// A lease folder that cannot be written is a clear error at start, before any connection.
#[actix_rt::test]
async fn an_unusable_lease_folder_is_a_clear_error_at_start() {
    let s = start_sim(SimConfig::default());
    let token = s.sim.mint_token("codechat", None);
    let out = Command::new(env!("CARGO_BIN_EXE_eventsock"))
        .args(tail_args(&s.url(), &token))
        .env("EVENTSOCK_LEASES", "/proc/eventsock-leases")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("the lease folder /proc/eventsock-leases cannot be used"),
        "{said}"
    );
    assert_eq!(s.sim.accepted(), 0);
}

/// Runs `eventsock ARGS` with `input` on its standard input (closed after it), off the
/// runtime's thread, until it exits.
async fn with_input(args: &[&str], input: &str) -> std::process::Output {
    use std::io::Write;
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    let input = input.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut child = Command::new(env!("CARGO_BIN_EXE_eventsock"))
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap()
}

/// `eventsock send`: JSON lines in, one outcome line per message out (in the order they settle),
/// paced, each chat in order; a bad line fails alone, and the exit status says that one failed.
#[actix_rt::test]
async fn send_reads_json_lines_and_prints_one_outcome_per_message() {
    let s = start_sim(SimConfig::default());
    s.sim.fail_sends(429, Some(1), 1);
    let token = s.sim.mint_token("codechat", None);
    let input = concat!(
        "{\"to\": \"5511900000001\", \"text\": \"one\"}\n",
        "{\"to\": \"5511900000002\", \"text\": \"two\", \"id\": \"3EB0OWNID\"}\n",
        "\n",
        "{\"to\": 5511900000003, \"text\": \"bad\"}\n",
        "{\"to\": \"5511900000001\", \"text\": \"three\"}\n",
    );
    let url = s.url();
    let args = [
        "send",
        "--url",
        &url,
        "--token",
        &token,
        "--rate",
        "20",
        "--per-chat-interval",
        "100ms",
        "--backoff",
        "50ms",
    ];
    let out = with_input(&args, input).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("3 sent, 1 failed"), "{stderr}");
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4, "{lines:?}");
    let by_line = |n: u64| lines.iter().find(|l| l["line"] == n).unwrap();
    assert_eq!(by_line(1)["status"], "sent");
    let retried: Vec<&Value> = lines.iter().filter(|l| l["attempts"] == 2).collect();
    assert_eq!(retried.len(), 1, "one refused once with a 429: {lines:?}");
    assert_eq!(by_line(2)["id"], "3EB0OWNID");
    assert_eq!(by_line(4)["status"], "failed");
    assert!(
        by_line(4)["error"]
            .as_str()
            .unwrap()
            .contains("\"to\" must be a string"),
        "{lines:?}"
    );
    let sent: Vec<(String, String)> = s
        .sim
        .sent()
        .into_iter()
        .map(|m| (m.chat, m.text))
        .filter(|(chat, _)| chat.starts_with("5511900000001"))
        .collect();
    let texts: Vec<&str> = sent.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(texts, ["one", "three"], "one chat, in order");
    assert_eq!(s.sim.sent().len(), 3);
}

/// `eventsock send --nats` queues; `eventsock sender` sends; killed with SIGKILL mid-run and
/// started again, every message arrives exactly once, each chat in order.
#[actix_rt::test]
async fn a_sender_killed_mid_run_and_started_again_sends_every_queued_message_once() {
    use common::nats_server::NatsServer;
    use std::collections::HashSet;
    let Some(nats) = NatsServer::started().await else {
        return;
    };
    let s = start_sim(SimConfig::default());
    let token = s.sim.mint_token("codechat", None);
    let input: String = (0..40)
        .map(|i| {
            format!(
                "{{\"to\": \"55119000000{:02}\", \"text\": \"m{i:02}\"}}\n",
                i % 4
            )
        })
        .collect();
    let nats_url = nats.url();
    let queued = with_input(
        &["send", "--nats", &nats_url, "--instance", "codechat"],
        &input,
    )
    .await;
    let said = String::from_utf8_lossy(&queued.stderr);
    assert_eq!(queued.status.code(), Some(0), "{said}");
    assert!(said.contains("40 queued, 0 failed"), "{said}");
    let sender = || {
        Command::new(env!("CARGO_BIN_EXE_eventsock"))
            .args([
                "sender",
                "--nats",
                &nats.url(),
                "--url",
                &s.url(),
                "--token",
                &token,
            ])
            .args([
                "--rate",
                "20",
                "--per-chat-interval",
                "50ms",
                "--ack-wait",
                "1s",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut first = sender();
    until("10 sends", || s.sim.sent().len() >= 10).await;
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();
    let by_first = s.sim.sent().len();
    let second = sender();
    let distinct = || {
        s.sim
            .sent()
            .into_iter()
            .map(|m| m.id)
            .collect::<HashSet<_>>()
            .len()
    };
    until("every message", || distinct() == 40).await;
    assert!(Command::new("kill")
        .args(["-TERM", &second.id().to_string()])
        .status()
        .unwrap()
        .success());
    let out = second.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    // (A second sender stopped in its first wait, when the first had sent everything, says
    // nothing more.)
    assert!(
        by_first == 40 || said.contains("0 left in the stream"),
        "{said}"
    );
    let sent = s.sim.sent();
    assert_eq!(sent.len(), 40, "a message was sent twice");
    for c in 0..4 {
        let texts: Vec<&str> = sent
            .iter()
            .filter(|m| m.chat == format!("55119000000{c:02}@s.whatsapp.net"))
            .map(|m| m.text.as_str())
            .collect();
        let mut sorted = texts.clone();
        sorted.sort();
        assert_eq!(texts, sorted, "chat {c} out of order");
    }
}

/// `tail --nats` prints the stream `eventsock bridge` ingests, as the socket's lines, without
/// connecting to the server: the bridge keeps its stream.
#[actix_rt::test]
async fn tail_nats_follows_the_bridged_stream_without_taking_it() {
    use common::nats_server::NatsServer;
    let Some(nats) = NatsServer::started().await else {
        return;
    };
    let s = start_sim(SimConfig::default());
    let token = s.sim.mint_token("codechat", None);
    let (url, nats_url) = (s.url(), nats.url());
    let bridge = Running::start(
        &[
            "bridge",
            "--nats",
            &nats_url,
            "--url",
            &url,
            "--token",
            &token,
            "--event",
            "messages.upsert",
        ],
        Stdio::null(),
    );
    subscribed(&s, "messages.upsert").await;
    bridge.wait_stderr("ingesting").await;
    let accepted = s.sim.accepted();
    let (mut tail, mut lines, first) = follow(&s, &nats_url).await;
    assert_eq!(first["event"], "messages.upsert");
    assert_eq!(first["instance"], "codechat");
    for i in 0..5 {
        s.sim.emit(
            "codechat",
            "messages.upsert",
            &json!({"keyId": format!("N{i}")}),
        );
    }
    let mut got = Vec::new();
    while got.len() < 5 {
        let line = next_line(&mut lines).await;
        let id = line["data"]["keyId"].as_str().unwrap().to_owned();
        if !id.starts_with("PING") {
            got.push(id);
        }
    }
    assert_eq!(got, ["N0", "N1", "N2", "N3", "N4"]);
    assert_eq!(s.sim.accepted(), accepted, "tail --nats opened no socket");
    assert!(s.sim.is_subscribed("codechat", "messages.upsert"));
    tail.signal("-TERM");
    tail.exits_cleanly_after("SIGTERM").await;
    bridge.signal("-TERM");
}

/// Two bridges on two hosts (each its own lease folder) share one NATS: the second refuses
/// before it connects, naming the first; with --take the first stands down; when the taker is
/// killed, its lease lapses and the first takes the stream back, recovering what was sent
/// meanwhile into the stream.
#[actix_rt::test]
async fn bridges_on_two_hosts_hold_a_stream_one_at_a_time_through_nats() {
    use common::nats_server::NatsServer;
    let Some(nats) = NatsServer::started().await else {
        return;
    };
    let s = start_sim(SimConfig::default());
    let token = s.sim.mint_token("codechat", None);
    let (url, nats_url) = (s.url(), nats.url());
    let (host_a, host_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    };
    let message = |id: &str| json!({"keyId": id, "keyRemoteJid": "5511988887777@s.whatsapp.net", "messageTimestamp": now()});
    let bridge = |host: &tempfile::TempDir, extra: &[&str]| {
        let mut args = vec![
            "bridge",
            "--nats",
            &nats_url,
            "--url",
            &url,
            "--token",
            &token,
            "--event",
            "messages.upsert",
            "--lease-ttl",
            "2s",
            "--backfill",
        ];
        args.extend_from_slice(extra);
        let dir = host.path().to_str().unwrap().to_owned();
        Running::start_with(&args, Stdio::null(), &[("EVENTSOCK_LEASES", &dir)])
    };
    let first = bridge(&host_a, &[]);
    first.wait_stderr("ingesting").await;
    subscribed(&s, "messages.upsert").await;
    let accepted = s.sim.accepted();
    let (follower, mut lines, first_line) = follow(&s, &nats_url).await;
    assert!(first_line["data"]["keyId"]
        .as_str()
        .unwrap()
        .starts_with("PING"));

    // Another host, no --take: refused before it connects.
    let mut second = bridge(&host_b, &[]);
    let (status, _) = second.exit().await;
    assert_eq!(status.code(), Some(1), "{}", second.stderr());
    assert!(
        second
            .stderr()
            .contains("another eventsock process holds the codechat (every event, at "),
        "{}",
        second.stderr()
    );
    assert_eq!(s.sim.accepted(), accepted);

    // With --take: the first stands down; the taker ingests.
    let taker = bridge(&host_b, &["--take"]);
    first.wait_stderr("standing down until it lets go").await;
    taker.wait_stderr("ingesting").await;
    until("the taker's socket", || s.sim.accepted() == accepted + 1).await;
    subscribed(&s, "messages.upsert").await;
    // The taker is killed: nobody ingests until its lease lapses and the first takes back.
    taker.signal("-KILL");
    until("the taker's socket to close", || {
        !s.sim.is_subscribed("codechat", "messages.upsert")
    })
    .await;
    for i in 0..3 {
        s.sim
            .emit("codechat", "messages.upsert", &message(&format!("K{i}")));
    }
    // Taken back once the taker's lease lapses (2 s): what was sent meanwhile is recovered.
    let mut recovered = Vec::new();
    while recovered.len() < 3 {
        let line = next_line(&mut lines).await;
        let id = line["data"]["keyId"].as_str().unwrap().to_owned();
        if id.starts_with('K') {
            assert_eq!(line["backfilled"], true, "{line}");
            recovered.push(id);
        }
    }
    assert_eq!(recovered, ["K0", "K1", "K2"]);
    assert_eq!(s.sim.accepted(), accepted + 2, "one socket each time");
    follower.signal("-TERM");
    first.signal("-TERM");
}

/// `eventsock tail --nats` of the stream at `nats_url`, once it prints what the bridge ingests:
/// the process, its lines, and the first line.
async fn follow(
    s: &TestServer,
    nats_url: &str,
) -> (Running, tokio::sync::mpsc::UnboundedReceiver<Value>, Value) {
    let mut tail = Running::start(
        &["tail", "--nats", nats_url, "--event", "messages.upsert"],
        Stdio::piped(),
    );
    let mut lines = json_lines(&mut tail.child);
    tail.wait_stderr("following the EVENTSOCK stream").await;
    // Its consumer starts from now: ping until the first event comes through (each ping its
    // own id: JetStream drops a message id it has seen).
    let first = first_through(s, &mut lines).await;
    (tail, lines, first)
}

/// Emits pings (`PING0`, `PING1`...) until the first comes through `lines`, within the deadline:
/// for a follower whose consumer starts from now.
async fn first_through(
    s: &TestServer,
    lines: &mut tokio::sync::mpsc::UnboundedReceiver<Value>,
) -> Value {
    tokio::time::timeout(DEADLINE, async {
        for n in 0.. {
            let ping = json!({"keyId": format!("PING{n}"), "messageTimestamp": 1});
            s.sim.emit("codechat", "messages.upsert", &ping);
            if let Ok(Some(line)) =
                tokio::time::timeout(std::time::Duration::from_millis(200), lines.recv()).await
            {
                return line;
            }
        }
        unreachable!("the loop ends by returning")
    })
    .await
    .expect("an event through the follower within the deadline")
}

/// Asked to (`--lease-nats`), `tail` holds its streams in NATS too: a tail on another host (its
/// own lease folder) of that NATS is refused before it connects.
#[actix_rt::test]
async fn tails_on_two_hosts_with_lease_nats_hold_a_stream_one_at_a_time() {
    use common::nats_server::NatsServer;
    let Some(nats) = NatsServer::started().await else {
        return;
    };
    let s = start_sim(SimConfig::default());
    let token = s.sim.mint_token("codechat", None);
    let (url, nats_url) = (s.url(), nats.url());
    let (host_a, host_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut args = tail_args(&url, &token);
    args.extend(["--lease-nats", &nats_url]);
    let dir_a = host_a.path().to_str().unwrap().to_owned();
    let dir_b = host_b.path().to_str().unwrap().to_owned();
    let first = Running::start_with(&args, Stdio::null(), &[("EVENTSOCK_LEASES", &dir_a)]);
    subscribed(&s, "messages.upsert").await;
    let accepted = s.sim.accepted();
    let mut second = Running::start_with(&args, Stdio::null(), &[("EVENTSOCK_LEASES", &dir_b)]);
    let (status, _) = second.exit().await;
    assert_eq!(status.code(), Some(1), "{}", second.stderr());
    assert!(
        second.stderr().contains(&format!(
            "another eventsock process holds the codechat (every event, at ws://{}/) stream (process {} on ",
            s.addr,
            first.child.id()
        )),
        "{}",
        second.stderr()
    );
    assert_eq!(s.sim.accepted(), accepted, "the second never connected");
    first.signal("-TERM");
}

#[actix_rt::test]
async fn tail_follows_evolution_api_and_never_prints_its_key() {
    let s = start_sim(SimConfig {
        protocol: eventsock::core::Protocol::Evolution,
        ..SimConfig::default()
    });
    // A server that puts the key in every event's envelope.
    s.sim.expose_api_key(true);
    let key = s.sim.api_key("codechat").unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_eventsock"))
        .args([
            "tail",
            "--event",
            "messages.upsert",
            "--protocol",
            "evolution",
        ])
        .args(["--instance", "codechat"])
        .env("EVENTSOCK_URL", s.url())
        .env("EVENTSOCK_TOKEN", &key)
        .env("RUST_LOG", "trace")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut rx = stdout_lines(&mut child);
    until("joined", || s.sim.joined("codechat") == 1).await;
    let message = json!({"keyId": "E1", "keyRemoteJid": "5511988887777@s.whatsapp.net",
        "messageType": "conversation", "content": {"text": "hi"}});
    s.sim.emit("codechat", "messages.upsert", &message);
    let line = tokio::time::timeout(DEADLINE, rx.recv())
        .await
        .expect("a line")
        .expect("stdout open");
    let line: Value = serde_json::from_str(&line).unwrap();
    // Evolution's own shape, as it came (its byte field put in as base64).
    assert_eq!(line["event"], "messages.upsert");
    assert_eq!(line["instance"], "codechat");
    assert_eq!(line["data"]["key"]["id"], "E1");
    assert_eq!(line["data"]["message"]["conversation"], "hi");
    assert!(line["data"]["message"]["messageContextInfo"]["messageSecret"].is_string());
    let out = terminated(child).await;
    assert!(out.status.success(), "exit status {:?}", out.status);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("connected"), "{stderr}");
    assert!(!stderr.contains(&key), "the key is in tail's log");
    assert!(!line.to_string().contains(&key));
}

/// `eventsock send` on Evolution API: its route and body, the key in its header, the id the
/// server made in each outcome.
#[actix_rt::test]
async fn send_on_evolution_api_prints_the_ids_the_server_made() {
    let s = start_sim(SimConfig {
        protocol: eventsock::core::Protocol::Evolution,
        ..SimConfig::default()
    });
    let key = s.sim.api_key("codechat").unwrap();
    let input = concat!(
        "{\"to\": \"5511900000001\", \"text\": \"one\"}\n",
        "{\"to\": \"5511900000002\", \"text\": \"two\"}\n",
    );
    let url = s.url();
    let args = [
        "send",
        "--protocol",
        "evolution",
        "--instance",
        "codechat",
        "--url",
        &url,
        "--token",
        &key,
    ];
    let out = with_input(&args, input).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains(&key), "the key is in send's output");
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    let sent = s.sim.sent();
    for line in &lines {
        assert_eq!(line["status"], "sent", "{line}");
        let n = line["line"].as_u64().unwrap() as usize;
        assert_eq!(
            line["id"],
            sent[n - 1].id.as_str(),
            "the server's id: {line}"
        );
    }
    let calls: Vec<_> = s
        .sim
        .requests()
        .into_iter()
        .filter(|r| r.path == "/message/sendText/codechat")
        .collect();
    assert_eq!(calls.len(), 2);
    assert!(calls
        .iter()
        .all(|c| c.status == 201 && c.body["text"].is_string()));
}
