//! A small hostile server: raw TCP on 127.0.0.1:0, writing handcrafted HTTP answers and
//! WebSocket frames, one thread per connection, so a test can misbehave exactly as it needs.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

/// What the client asked for.
#[derive(Debug, Clone)]
pub struct Request {
    /// The request line, for example `GET /ws/events?event=...&token=... HTTP/1.1`.
    pub line: String,
    /// `Sec-WebSocket-Key`, if any.
    pub key: Option<String>,
}

impl Request {
    /// The path, without the query.
    pub fn path(&self) -> &str {
        let target = self.line.split(' ').nth(1).unwrap_or_default();
        target.split('?').next().unwrap_or_default()
    }

    /// Whether it asks for a WebSocket.
    pub fn is_upgrade(&self) -> bool {
        self.key.is_some()
    }
}

/// Shared by the server and the test.
#[derive(Default)]
pub struct Stats {
    /// Connections accepted.
    pub connections: AtomicUsize,
    /// Socket.IO sessions opened ([`socket_io_open`]): connections less REST calls.
    pub sessions: AtomicUsize,
    /// Bytes written after the handshake, over all connections.
    pub written: AtomicU64,
    /// Set by a behaviour when its peer stopped taking what it writes.
    pub stalled: AtomicBool,
    /// Set by a behaviour when its peer closed or reset the connection.
    pub peer_gone: AtomicBool,
    /// Set when the test is over: behaviours stop.
    pub stop: AtomicBool,
}

/// A running hostile server. Dropping it tells its behaviours to stop.
pub struct Hostile {
    pub addr: SocketAddr,
    pub stats: Arc<Stats>,
}

impl Drop for Hostile {
    fn drop(&mut self) {
        self.stats.stop.store(true, Ordering::Release);
    }
}

impl Hostile {
    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn connections(&self) -> usize {
        self.stats.connections.load(Ordering::Acquire)
    }

    pub fn sessions(&self) -> usize {
        self.stats.sessions.load(Ordering::Acquire)
    }

    pub fn written(&self) -> u64 {
        self.stats.written.load(Ordering::Acquire)
    }
}

/// Serves every connection with `behaviour`, on a thread of its own.
pub fn serve<F>(behaviour: F) -> Hostile
where
    F: Fn(TcpStream, Request, &Stats) + Send + Sync + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let stats = Arc::new(Stats::default());
    let behaviour = Arc::new(behaviour);
    let shared = stats.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            if shared.stop.load(Ordering::Acquire) {
                return;
            }
            shared.connections.fetch_add(1, Ordering::AcqRel);
            let (behaviour, stats) = (behaviour.clone(), shared.clone());
            std::thread::spawn(move || {
                if let Some(request) = read_request(&mut stream) {
                    behaviour(stream, request, &stats);
                }
            });
        }
    });
    Hostile { addr, stats }
}

/// Reads the request head (at most 16 KiB).
fn read_request(stream: &mut TcpStream) -> Option<Request> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 16 * 1024 || stream.read(&mut byte).ok()? == 0 {
            return None;
        }
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head);
    let line = text.lines().next().unwrap_or_default().to_owned();
    let key = text.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.eq_ignore_ascii_case("sec-websocket-key")
            .then(|| value.trim().to_owned())
    });
    Some(Request { line, key })
}

/// The `101 Switching Protocols` answer to `request`, over `version` (`HTTP/1.1`).
pub fn switching(request: &Request, version: &str) -> String {
    let key = request.key.as_deref().unwrap_or_default();
    let accept = actix_http::ws::hash_key(key.as_bytes());
    format!(
        "{version} 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
        std::str::from_utf8(&accept).unwrap()
    )
}

/// Accepts the upgrade over HTTP/1.1.
pub fn upgrade(stream: &mut TcpStream, request: &Request) -> bool {
    stream
        .write_all(switching(request, "HTTP/1.1").as_bytes())
        .is_ok()
}

/// A server-to-client frame (never masked): `opcode` 1 text, 8 close, 9 ping.
pub fn frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0x80 | opcode];
    header_len(&mut out, payload.len() as u64);
    out.extend_from_slice(payload);
    out
}

/// The length part of a frame header.
pub fn header_len(out: &mut Vec<u8>, len: u64) {
    match len {
        0..=125 => out.push(len as u8),
        126..=0xffff => {
            out.push(126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            out.push(127);
            out.extend_from_slice(&len.to_be_bytes());
        }
    }
}

/// A close frame with `code` and `reason`.
pub fn close_frame(code: u16, reason: &str) -> Vec<u8> {
    let mut payload = code.to_be_bytes().to_vec();
    payload.extend_from_slice(reason.as_bytes());
    frame(8, &payload)
}

/// Writes `bytes`, counting them; `false` once the peer is gone.
pub fn send(stream: &mut TcpStream, bytes: &[u8], stats: &Stats) -> bool {
    match stream.write_all(bytes) {
        Ok(()) => {
            stats
                .written
                .fetch_add(bytes.len() as u64, Ordering::AcqRel);
            true
        }
        Err(_) => {
            stats.peer_gone.store(true, Ordering::Release);
            false
        }
    }
}

/// Writes `bytes` again and again, whole, until the peer goes or the test ends. A peer that
/// stops reading makes the write block: see [`until_stalled`].
pub fn flood(stream: &mut TcpStream, bytes: &[u8], stats: &Stats) {
    while !stats.stop.load(Ordering::Acquire) {
        if !send(stream, bytes, stats) {
            return;
        }
    }
}

/// Waits until the server's writes make no progress for 300 ms (its peer stopped reading and
/// every buffer between them is full), or fails after the deadline.
pub async fn until_stalled(stats: &Stats) -> u64 {
    let window = std::time::Duration::from_millis(300);
    tokio::time::timeout(super::DEADLINE, async {
        let mut last = stats.written.load(Ordering::Acquire);
        loop {
            tokio::time::sleep(window).await;
            let now = stats.written.load(Ordering::Acquire);
            if now == last && now > 0 {
                return now;
            }
            last = now;
        }
    })
    .await
    .expect("the server's writes never stalled: the client kept reading")
}

/// Holds the connection open, reading nothing, until the test ends.
pub fn hold(stats: &Stats) {
    while !stats.stop.load(Ordering::Acquire) {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Reads one client frame (masked, as clients send them): its opcode and payload, `None` once
/// the peer is gone or sends more than 1 MiB. Blocks up to `timeout`.
pub fn read_client_frame(
    stream: &mut TcpStream,
    timeout: std::time::Duration,
) -> Option<(u8, Vec<u8>)> {
    stream.set_read_timeout(Some(timeout)).ok()?;
    let mut head = [0u8; 2];
    stream.read_exact(&mut head).ok()?;
    let opcode = head[0] & 0x0f;
    let len = match head[1] & 0x7f {
        126 => {
            let mut b = [0u8; 2];
            stream.read_exact(&mut b).ok()?;
            u64::from(u16::from_be_bytes(b))
        }
        127 => {
            let mut b = [0u8; 8];
            stream.read_exact(&mut b).ok()?;
            u64::from_be_bytes(b)
        }
        n => u64::from(n),
    };
    if len > 1 << 20 {
        return None;
    }
    let mut mask = [0u8; 4];
    if head[1] & 0x80 != 0 {
        stream.read_exact(&mut mask).ok()?;
    }
    let mut payload = vec![0u8; len as usize];
    stream.read_exact(&mut payload).ok()?;
    for (i, b) in payload.iter_mut().enumerate() {
        *b ^= mask[i % 4];
    }
    Some((opcode, payload))
}

/// A Socket.IO server's first steps, by hand: the upgrade, the open packet with `ping_ms` and
/// `timeout_ms`, then the client's namespace connect, read and returned (`None` when it did
/// not come).
pub fn socket_io_open(
    stream: &mut TcpStream,
    request: &Request,
    stats: &Stats,
    ping_ms: u64,
    timeout_ms: u64,
) -> Option<String> {
    if !request.is_upgrade() {
        // A REST call (the client asking about the instance's settings): no such route here.
        let _ = stream
            .write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        return None;
    }
    if !upgrade(stream, request) {
        return None;
    }
    stats.sessions.fetch_add(1, Ordering::AcqRel);
    let open = format!(
        r#"0{{"sid":"hostile00000000000000","upgrades":[],"pingInterval":{ping_ms},"pingTimeout":{timeout_ms},"maxPayload":1000000}}"#
    );
    if !send(stream, &frame(1, open.as_bytes()), stats) {
        return None;
    }
    loop {
        let (opcode, payload) = read_client_frame(stream, std::time::Duration::from_secs(10))?;
        if opcode == 1 {
            return String::from_utf8(payload).ok();
        }
    }
}
