#!/usr/bin/env python3
"""Measures `eventsock tail` against `eventsock sim` (release build), on this machine.

1. Throughput: the simulator bursts N `messages.upsert` frames (the fixture's shape) at one
   `eventsock tail`; the rate is N over the time from the burst request to the N-th line on
   tail's stdout, so it covers server writes, client reads, decoding, routing and printing.
2. Reconnect: the simulator generates steady traffic (2000 events/s), drops every socket without
   a close frame once the connection has been up 11 s (past `stable_after`, so the backoff is at
   its first step), and `tail` reports how long after the disconnect the first event on the new
   connection came (with `--backoff-min 100ms`).

Usage: python3 scripts/measure-tail.py [N]   (after `cargo build --release`)
       RECONNECT_ROUNDS=0 skips the reconnect part.
"""
import json, os, re, socket, subprocess, sys, time, urllib.request

BIN = os.path.join(os.path.dirname(__file__), "..", "target", "release", "eventsock")
FIXTURE = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "legacy", "messages.upsert.json")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def post(port, path, body):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(),
                                 headers={"content-type": "application/json"})
    return json.load(urllib.request.urlopen(req, timeout=120))


def sockets(port):
    return json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/control/sockets", timeout=10))


def start_sim(extra):
    port = free_port()
    sim = subprocess.Popen([BIN, "sim", "--port", str(port), *extra], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, text=True)
    token = None
    while token is None:
        line = sim.stdout.readline()
        m = re.match(r"\s+token:\s+(\S+)", line)
        token = m.group(1) if m else None
    return sim, port, token


def start_tail(port, token, out, err):
    return subprocess.Popen([BIN, "tail", "--url", f"http://127.0.0.1:{port}", "--token", token,
                             "--event", "messages.upsert", "--backoff-min", "100ms"],
                            stdout=out, stderr=err)


def wait_for(what, cond, timeout=120):
    end = time.time() + timeout
    while time.time() < end:
        if cond():
            return
        time.sleep(0.002)
    sys.exit(f"timed out waiting for {what}")


def throughput(n):
    sim, port, token = start_sim([])
    with open("/tmp/eventsock-tail.jsonl", "wb") as out:
        tail = start_tail(port, token, out, subprocess.DEVNULL)
        wait_for("the subscription", lambda: any(s["routed"] for s in sockets(port)))
        data = json.load(open(FIXTURE))
        t0 = time.perf_counter()
        sent = post(port, "/control/burst", {"event": "messages.upsert", "data": data, "count": n})["delivered"]
        def lines():
            with open("/tmp/eventsock-tail.jsonl", "rb") as f:
                return sum(1 for _ in f)
        wait_for("every line", lambda: lines() >= n)
        elapsed = time.perf_counter() - t0
        tail.terminate(); tail.wait(); sim.terminate(); sim.wait()
    size = len(json.dumps(data))
    print(f"throughput: {sent} frames of ~{size} bytes in {elapsed:.3f} s = {n / elapsed:,.0f} events/s")


def reconnect(rounds):
    sim, port, token = start_sim(["--generate", "2000"])
    with open("/tmp/eventsock-tail-reconnect.err", "w") as err:
        tail = start_tail(port, token, subprocess.DEVNULL, err)
        for i in range(rounds):
            wait_for("a routed socket", lambda: any(s["routed"] for s in sockets(port)))
            # Let the connection stay up past `stable_after` (10 s), so each drop is a first
            # failure after a stable period; drops in quick succession escalate the backoff.
            time.sleep(11)
            post(port, "/control/drop", {})
            wait_for("the report", lambda: open("/tmp/eventsock-tail-reconnect.err").read()
                     .count("first event on connection") > i)
        tail.terminate(); tail.wait(); sim.terminate(); sim.wait()
    found = re.findall(r"first event on connection (\d+) came ([\d.]+)(ms|µs|s) after", open("/tmp/eventsock-tail-reconnect.err").read())
    ms = [float(v) * {"ms": 1, "µs": 0.001, "s": 1000}[u] for _, v, u in found]
    print(f"reconnect (min backoff 100ms): drop -> first event on the new connection, "
          f"{len(ms)} rounds: min {min(ms):.1f} ms, median {sorted(ms)[len(ms)//2]:.1f} ms, max {max(ms):.1f} ms")


if __name__ == "__main__":
    throughput(int(sys.argv[1]) if len(sys.argv) > 1 else 200_000)
    rounds = int(os.environ.get("RECONNECT_ROUNDS", "5"))
    if rounds > 0:
        reconnect(rounds)
