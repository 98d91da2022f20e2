//! The WebSocket codec, with the frame size checked on the header.
//!
//! actix-http's parser compares a frame's length with its limit only once the whole frame is
//! buffered, so a header declaring 2^62 bytes followed by a fast stream grows the read buffer
//! without bound. [`LimitedCodec`] reads the length from the header first and fails the
//! connection as soon as it exceeds the limit: the read buffer never holds more than a header
//! and what one read brought.

use actix_codec::{Decoder, Encoder};
use actix_http::ws::{Codec, Frame, Message, ProtocolError};
use bytes::BytesMut;

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReadError {
    /// The header declared a payload larger than the limit.
    #[error("the server announced a frame of {} bytes, over the {limit}-byte limit (ClientConfig::max_frame_size)", .declared)]
    TooLarge {
        /// The length in the header.
        declared: u64,
        /// `max_frame_size`.
        limit: usize,
    },
    /// Anything else actix-http's parser refused.
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
}

impl From<std::io::Error> for ReadError {
    fn from(e: std::io::Error) -> Self {
        ReadError::Protocol(ProtocolError::Io(e))
    }
}

/// actix-http's client codec, with the length checked before the payload is buffered.
pub(crate) struct LimitedCodec {
    inner: Codec,
    limit: usize,
}

impl LimitedCodec {
    pub(crate) fn new(inner: Codec, limit: usize) -> Self {
        LimitedCodec { inner, limit }
    }
}

/// The payload length a frame header declares, once enough of the header is in.
fn declared_len(src: &[u8]) -> Option<u64> {
    let len = *src.get(1)? & 0x7f;
    match len {
        126 => Some(u64::from(u16::from_be_bytes([*src.get(2)?, *src.get(3)?]))),
        127 => {
            let bytes: [u8; 8] = src.get(2..10)?.try_into().ok()?;
            Some(u64::from_be_bytes(bytes))
        }
        n => Some(u64::from(n)),
    }
}

impl Decoder for LimitedCodec {
    type Item = Frame;
    type Error = ReadError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, ReadError> {
        if let Some(declared) = declared_len(src) {
            if declared > self.limit as u64 {
                return Err(ReadError::TooLarge {
                    declared,
                    limit: self.limit,
                });
            }
        }
        Ok(self.inner.decode(src)?)
    }
}

impl Encoder<Message> for LimitedCodec {
    type Error = ProtocolError;

    fn encode(&mut self, item: Message, dst: &mut BytesMut) -> Result<(), ProtocolError> {
        self.inner.encode(item, dst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codec(limit: usize) -> LimitedCodec {
        LimitedCodec::new(Codec::new().client_mode().max_size(limit), limit)
    }

    #[test]
    fn refuses_on_the_header_alone() {
        // A text frame announcing 2^62 bytes, and none of its payload yet.
        let mut src = BytesMut::from(&[0x81u8, 127, 0x40, 0, 0, 0, 0, 0, 0, 0][..]);
        match codec(1024).decode(&mut src) {
            Err(ReadError::TooLarge { declared, limit }) => {
                assert_eq!((declared, limit), (1 << 62, 1024));
            }
            other => panic!("expected TooLarge, got {other:?}"),
        }
        // 16-bit length over the limit.
        let mut src = BytesMut::from(&[0x81u8, 126, 0x10, 0x00][..]);
        assert!(matches!(
            codec(1024).decode(&mut src),
            Err(ReadError::TooLarge { declared: 4096, .. })
        ));
    }

    #[test]
    fn frames_within_the_limit_decode() {
        let mut src = BytesMut::from(&[0x81u8, 2, b'{', b'}'][..]);
        match codec(1024).decode(&mut src) {
            Ok(Some(Frame::Text(b))) => assert_eq!(&b[..], b"{}"),
            other => panic!("expected a text frame, got {other:?}"),
        }
        // A partial header waits for more.
        let mut src = BytesMut::from(&[0x81u8][..]);
        assert!(matches!(codec(1024).decode(&mut src), Ok(None)));
    }
}
