//! The connection's writes: the control frames it owes the server (our close, the latest pong,
//! a ping; on Socket.IO, its namespace connect and the heartbeat's answers), written by a task
//! of their own, each write bounded by a deadline.

use awc::ws::{CloseReason, Message as WsMessage};
use bytes::Bytes;
use futures_util::SinkExt;
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;
use tokio::sync::Notify;

/// The control frames the connection wants written, coalesced: our close, the latest pong, a
/// ping (the socket's own writes; messages to chats go through `eventsock_rest::Outbox`).
#[derive(Default)]
pub(super) struct Controls {
    pending: RefCell<Pending>,
    wake: Notify,
}

#[derive(Default)]
struct Pending {
    close: Option<Option<CloseReason>>,
    closed: bool,
    pong: Option<Bytes>,
    ping: bool,
    /// Socket.IO packets owed to the server (its namespace connect, the heartbeat's answer),
    /// each at most once at a time: a peer that pings and never reads costs one of each.
    packets: std::collections::VecDeque<&'static str>,
    /// The namespace connect, written once.
    connect: Option<String>,
}

impl Controls {
    pub(super) fn close(&self, reason: Option<CloseReason>) {
        self.pending.borrow_mut().close = Some(reason);
        self.wake.notify_one();
    }

    pub(super) fn has_close(&self) -> bool {
        self.pending.borrow().close.is_some()
    }

    pub(super) fn pong(&self, payload: Bytes) {
        self.pending.borrow_mut().pong = Some(payload);
        self.wake.notify_one();
    }

    pub(super) fn ping(&self) {
        self.pending.borrow_mut().ping = true;
        self.wake.notify_one();
    }

    /// A Socket.IO packet of a fixed text (the heartbeat's answer); one already waiting is not
    /// queued again.
    pub(super) fn packet(&self, text: &'static str) {
        let mut p = self.pending.borrow_mut();
        if !p.packets.contains(&text) {
            p.packets.push_back(text);
        }
        drop(p);
        self.wake.notify_one();
    }

    /// The Socket.IO namespace connect.
    pub(super) fn connect(&self, text: String) {
        self.pending.borrow_mut().connect = Some(text);
        self.wake.notify_one();
    }

    /// The next message to write; nothing after a close.
    fn next(&self) -> Option<WsMessage> {
        let mut p = self.pending.borrow_mut();
        if p.closed {
            return None;
        }
        if let Some(reason) = p.close.take() {
            p.closed = true;
            return Some(WsMessage::Close(reason));
        }
        if let Some(payload) = p.pong.take() {
            return Some(WsMessage::Pong(payload));
        }
        if let Some(text) = p.connect.take() {
            return Some(WsMessage::Text(text.into()));
        }
        if let Some(text) = p.packets.pop_front() {
            return Some(WsMessage::Text(text.into()));
        }
        std::mem::take(&mut p.ping).then(|| WsMessage::Ping(Bytes::new()))
    }
}

/// Aborts a task when dropped.
pub(super) struct AbortOnDrop(pub(super) tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

pub(super) enum WriteFail {
    /// A write waited longer than `write_timeout`.
    Stalled,
    /// The socket refused the write.
    Failed(String),
}

/// Writes what the controls holds, each write bounded by `limit`. Ends once a close frame is out,
/// or with the first failure.
pub(super) async fn write_all<S>(
    mut sink: S,
    controls: Rc<Controls>,
    limit: Duration,
) -> Result<(), WriteFail>
where
    S: futures_util::Sink<WsMessage> + Unpin,
    S::Error: std::fmt::Display,
{
    loop {
        let message = loop {
            if let Some(m) = controls.next() {
                break m;
            }
            controls.wake.notified().await;
        };
        let closing = matches!(message, WsMessage::Close(_));
        match tokio::time::timeout(limit, sink.send(message)).await {
            Ok(Ok(())) if closing => return Ok(()),
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(WriteFail::Failed(e.to_string())),
            Err(_) => return Err(WriteFail::Stalled),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::pin::Pin;
    use std::task::{Context as TaskContext, Poll};

    /// A socket whose peer never reads: never ready for a write.
    struct Full;

    impl futures_util::Sink<WsMessage> for Full {
        type Error = std::io::Error;
        fn poll_ready(
            self: Pin<&mut Self>,
            _: &mut TaskContext<'_>,
        ) -> Poll<Result<(), Self::Error>> {
            Poll::Pending
        }
        fn start_send(self: Pin<&mut Self>, _: WsMessage) -> Result<(), Self::Error> {
            Ok(())
        }
        fn poll_flush(
            self: Pin<&mut Self>,
            _: &mut TaskContext<'_>,
        ) -> Poll<Result<(), Self::Error>> {
            Poll::Pending
        }
        fn poll_close(
            self: Pin<&mut Self>,
            _: &mut TaskContext<'_>,
        ) -> Poll<Result<(), Self::Error>> {
            Poll::Pending
        }
    }

    /// A socket that takes everything, and remembers it.
    struct Recording(Rc<RefCell<Vec<WsMessage>>>);

    impl futures_util::Sink<WsMessage> for Recording {
        type Error = std::io::Error;
        fn poll_ready(
            self: Pin<&mut Self>,
            _: &mut TaskContext<'_>,
        ) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }
        fn start_send(self: Pin<&mut Self>, m: WsMessage) -> Result<(), Self::Error> {
            self.0.borrow_mut().push(m);
            Ok(())
        }
        fn poll_flush(
            self: Pin<&mut Self>,
            _: &mut TaskContext<'_>,
        ) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }
        fn poll_close(
            self: Pin<&mut Self>,
            _: &mut TaskContext<'_>,
        ) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn a_write_the_peer_never_takes_ends_in_stalled() {
        let controls = Rc::new(Controls::default());
        controls.pong(Bytes::from_static(b"1"));
        let ended = write_all(Full, controls, Duration::from_millis(50)).await;
        assert!(matches!(ended, Err(WriteFail::Stalled)));
    }

    #[tokio::test]
    async fn pongs_are_coalesced_and_a_close_ends_the_writer() {
        let controls = Rc::new(Controls::default());
        for n in [b"1", b"2", b"3"] {
            controls.pong(Bytes::from_static(n));
        }
        controls.ping();
        controls.close(None);
        let sent = Rc::new(RefCell::new(Vec::new()));
        let ended = write_all(
            Recording(sent.clone()),
            controls.clone(),
            Duration::from_secs(5),
        )
        .await;
        assert!(ended.is_ok());
        let sent = std::mem::take(&mut *sent.borrow_mut());
        // The close goes first and nothing follows it.
        assert_eq!(sent, vec![WsMessage::Close(None)]);

        let controls = Rc::new(Controls::default());
        for n in [b"1", b"2", b"3"] {
            controls.pong(Bytes::from_static(n));
        }
        assert_eq!(
            controls.next(),
            Some(WsMessage::Pong(Bytes::from_static(b"3")))
        );
        assert_eq!(controls.next(), None, "one pong for three pings");
    }
}
