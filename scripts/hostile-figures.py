#!/usr/bin/env python3
"""The figures of docs/hostile.md: `eventsock tail` against misbehaving servers.

Usage: python3 scripts/hostile-figures.py [path/to/eventsock ...]
(default: target/release/eventsock). Give two binaries to compare them in one run, for example
an older build and the current one.

Each scenario starts a small hostile server on 127.0.0.1 (raw TCP, handcrafted frames), runs
`eventsock tail` against it as a user would, and measures from outside: resident memory read
from /proc, seconds from a signal to the exit, connection attempts counted by the server. Every
scenario has a time cap; a binary that does not exit within it is killed and reported so.
Linux only (/proc). Sends traffic to 127.0.0.1 only.
"""

import base64
import hashlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
# A legacy instance token for `codechat`, HS256 with the simulator's default secret (the hostile
# servers check nothing). No `exp`: older simulators checked `exp == iat` as an expiry.
TOKEN = None


def token():
    global TOKEN
    if TOKEN is None:
        import hmac
        import json

        def b64(b):
            return base64.urlsafe_b64encode(b).rstrip(b"=")

        now = int(time.time())
        head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        body = b64(json.dumps({"instanceName": "codechat", "apiName": "whatsapp-api",
                               "tokenId": "01JFIGURES", "iat": now,
                               "sub": "g-t"}).encode())
        sig = b64(hmac.new(b"eventsock-sim-secret", head + b"." + body, hashlib.sha256).digest())
        TOKEN = (head + b"." + body + b"." + sig).decode()
    return TOKEN


def frame(opcode, payload):
    n = len(payload)
    if n < 126:
        head = bytes([0x80 | opcode, n])
    elif n < 65536:
        head = bytes([0x80 | opcode, 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([0x80 | opcode, 127]) + n.to_bytes(8, "big")
    return head + payload


class Server:
    """Accepts connections and runs `behaviour(sock, request_head)` on a thread for each."""

    def __init__(self, behaviour):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.stop = False
        self.behaviour = behaviour
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while not self.stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self.serve, args=(conn,), daemon=True).start()

    def serve(self, conn):
        head = b""
        try:
            while b"\r\n\r\n" not in head and len(head) < 16384:
                chunk = conn.recv(1024)
                if not chunk:
                    return
                head += chunk
            self.behaviour(self, conn, head)
        except OSError:
            pass
        finally:
            try:
                conn.close()
            except OSError:
                pass

    def close(self):
        self.stop = True
        self.sock.close()


def upgrade(conn, head):
    key = b""
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"sec-websocket-key:"):
            key = line.split(b":", 1)[1].strip()
    accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
    conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                 b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n")


def hold(server):
    while not server.stop:
        time.sleep(0.05)


def tail(binary, port, stdout=subprocess.DEVNULL, extra=()):
    return subprocess.Popen(
        [binary, "tail", "--url", f"http://127.0.0.1:{port}", "--token", token(),
         "--event", "messages.upsert", *extra],
        stdout=stdout, stderr=subprocess.PIPE, env={**os.environ, "RUST_LOG": "off"})


def rss_kib(pid, field="VmRSS"):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def exit_within(proc, cap):
    """Seconds until `proc` exits, or None (then it is killed) past `cap`."""
    start = time.monotonic()
    try:
        proc.wait(timeout=cap)
        return time.monotonic() - start
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return None


def secs(value, cap):
    return f"{value:.2f} s" if value is not None else f"no exit within {cap} s (killed)"


def oversized(binary):
    """Peak resident memory while a server announces a 2^62-byte frame and streams it."""
    def idle(server, conn, head):
        upgrade(conn, head)
        hold(server)

    def attack(server, conn, head):
        upgrade(conn, head)
        conn.sendall(bytes([0x81, 127]) + (1 << 62).to_bytes(8, "big"))
        chunk = b" " * (1 << 20)
        while not server.stop:
            conn.sendall(chunk)

    peaks = []
    for behaviour, seconds in ((idle, 3), (attack, 25)):
        server = Server(behaviour)
        proc = tail(binary, server.port)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
        peaks.append(rss_kib(proc.pid, "VmHWM") or 0)
        proc.kill()
        proc.wait()
        server.close()
    return f"peak RSS idle {peaks[0] / 1024:.1f} MiB; under the attack for 25 s {peaks[1] / 1024:.1f} MiB"


def wedge_pings(binary, cap=30):
    """Seconds from SIGINT to exit while the server pings without end and never reads."""
    def flood(server, conn, head):
        upgrade(conn, head)
        ping = frame(9, b"\x07" * 125)
        while not server.stop:
            conn.sendall(ping * 64)

    server = Server(flood)
    proc = tail(binary, server.port)
    time.sleep(3)  # let our pongs fill every buffer between the two
    proc.send_signal(signal.SIGINT)
    took = exit_within(proc, cap)
    server.close()
    return secs(took, cap)


def wedge_stdout(binary, cap=30):
    """Seconds from SIGINT to exit while stdout is a pipe nobody reads (a paused pager)."""
    def events(server, conn, head):
        upgrade(conn, head)
        event = frame(1, b'{"keyId":"k","content":{"text":"' + b"x" * 1000 + b'"}}')
        while not server.stop:
            conn.sendall(event * 16)

    server = Server(events)
    read_end, write_end = os.pipe()
    proc = tail(binary, server.port, stdout=write_end)
    os.close(write_end)
    time.sleep(3)  # the pipe (64 KiB) fills at once
    proc.send_signal(signal.SIGINT)
    took = exit_within(proc, cap)
    os.close(read_end)
    server.close()
    return secs(took, cap)


def head_n_1(binary, cap=30):
    """`eventsock tail | head -n 1` with one event and no more: seconds from the reader
    closing the pipe to the exit, and the exit code."""
    def one(server, conn, head):
        upgrade(conn, head)
        conn.sendall(frame(1, b'{"keyId":"1"}'))
        hold(server)

    server = Server(one)
    proc = tail(binary, server.port, stdout=subprocess.PIPE)
    proc.stdout.readline()
    proc.stdout.close()
    took = exit_within(proc, cap)
    server.close()
    code = proc.returncode if took is not None else "-"
    return f"{secs(took, cap)}, exit code {code}"


def too_many_requests(binary, seconds=15):
    """Handshakes sent in 15 s to a server answering 429 with Retry-After: 120."""
    def refuse(server, conn, head):
        conn.sendall(b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 120\r\n"
                     b"Content-Length: 0\r\n\r\n")

    server = Server(refuse)
    proc = tail(binary, server.port)
    time.sleep(seconds)
    proc.send_signal(signal.SIGTERM)
    exit_within(proc, 30)
    server.close()
    return f"{server.connections} handshake(s) in {seconds} s"


def close_reason(binary):
    """Whether a close reason with ANSI/OSC sequences reaches stderr raw."""
    def hostile_close(server, conn, head):
        upgrade(conn, head)
        reason = b"bye\n2026 eventsock: connected\x1b]0;pwned\x07"
        conn.sendall(frame(8, (4000).to_bytes(2, "big") + reason))
        hold(server)

    server = Server(hostile_close)
    proc = tail(binary, server.port)
    time.sleep(2)
    proc.send_signal(signal.SIGTERM)
    exit_within(proc, 30)
    err = proc.stderr.read()
    server.close()
    raw = b"\x1b" in err
    return "raw escape sequences on stderr" if raw else "escaped (no ESC byte on stderr)"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def outage(binary, seconds=3.0):
    """Three subscriptions, the server (`eventsock sim`) down for 3 s then back on the same
    port: how long from its return until the first and the last subscription are back."""
    port = free_port()
    sim_cmd = [binary, "sim", "--port", str(port)]

    def start_sim():
        proc = subprocess.Popen(sim_cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        for line in proc.stdout:
            if b"Ctrl-C" in line:
                return proc
        raise RuntimeError("the simulator did not start")

    sim = start_sim()
    proc = subprocess.Popen(
        [binary, "tail", "--url", f"http://127.0.0.1:{port}", "--token", token(),
         "--event", "messages.upsert", "--event", "messages.update", "--event", "presence.update"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ, "RUST_LOG": "off"})
    seen = []

    def read():
        for line in proc.stderr:
            seen.append((time.monotonic(), line.decode(errors="replace")))

    threading.Thread(target=read, daemon=True).start()

    def connected(generation):
        return [t for t, l in seen if f"connected (connection {generation})" in l]

    deadline = time.monotonic() + 20
    while len(connected(1)) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    sim.send_signal(signal.SIGINT)
    sim.wait()
    time.sleep(seconds)
    sim = start_sim()
    back = time.monotonic()
    deadline = back + 60
    while len(connected(2)) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    times = sorted(connected(2))
    proc.send_signal(signal.SIGTERM)
    exit_within(proc, 30)
    sim.send_signal(signal.SIGINT)
    sim.wait()
    if len(times) < 3:
        return f"only {len(times)} of 3 back within 60 s"
    return (f"first back after {times[0] - back:.2f} s, last after {times[-1] - back:.2f} s "
            f"(spread {times[-1] - times[0]:.2f} s)")


SCENARIOS = [
    ("2^62-byte frame announced, then streamed", oversized),
    ("SIGINT, server pings and never reads", wedge_pings),
    ("SIGINT, stdout reader paused", wedge_stdout),
    ("reader gone (head -n 1), one event then silence", head_n_1),
    ("429 with Retry-After: 120", too_many_requests),
    ("close reason with ANSI/OSC", close_reason),
    ("server down 3 s, three subscriptions", outage),
]


def main():
    binaries = sys.argv[1:] or ["target/release/eventsock"]
    for b in binaries:
        if not os.access(b, os.X_OK):
            sys.exit(f"{b} is not an executable: build it with cargo build --release")
    print("| scenario | " + " | ".join(binaries) + " |")
    print("| --- |" + " --- |" * len(binaries))
    for name, run in SCENARIOS:
        results = []
        for b in binaries:
            print(f"running {name} with {b}...", file=sys.stderr)
            results.append(run(b))
        print(f"| {name} | " + " | ".join(results) + " |", flush=True)


if __name__ == "__main__":
    main()
