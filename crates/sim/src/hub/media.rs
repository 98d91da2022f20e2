//! Media: the messages with a file that [`Sim::media_message`] makes, the files the simulator
//! keeps for `POST /chat/mediaData` to serve, and the faults that route plays on request.

use super::Sim;
use actix_web::web::Bytes;
use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// How many media files the simulator keeps (the oldest are forgotten, and `mediaData` then
/// answers for them as for a file WhatsApp no longer has).
const MEDIA_KEPT: usize = 10_000;

/// The message types the real server serves a file for, in its order (`TypeMediaMessage` in
/// CodeChat's whatsapp.service.ts).
pub(crate) const MEDIA_TYPES: [&str; 6] = [
    "imageMessage",
    "documentMessage",
    "audioMessage",
    "videoMessage",
    "stickerMessage",
    "ptvMessage",
];

/// A media file: its type and its bytes. `Bytes` is a shared, reference-counted buffer: every
/// answer that serves the file streams slices of this one buffer, and none copies it.
#[derive(Debug)]
pub(crate) struct Media {
    /// The MIME type it was made with.
    pub(crate) mimetype: String,
    /// The file.
    pub(crate) bytes: Bytes,
}

/// The files, by message id, with the order they came in (to forget the oldest).
#[derive(Default)]
pub(super) struct MediaStore {
    by_id: HashMap<String, Arc<Media>>,
    order: VecDeque<String>,
}

/// How `POST /chat/mediaData` misbehaves on request ([`Sim::media_faults`]), for the answers
/// that would otherwise serve a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaFault {
    /// Answers this status (400 to 599, else 500) with a JSON error body in the server's
    /// shape, and no file.
    Status(u16),
    /// Announces the file as usual, sends its first `after` bytes (all but the last byte at
    /// most, so that something is always missing), then nothing: the connection stays open.
    Stall {
        /// How many bytes of the answer's body go out before it stalls.
        after: u64,
    },
    /// Announces a `Content-Length` of `announced` (1 at least), sends fewer bytes (the whole
    /// body, or its first `announced - 1` bytes when it is as long), then ends the connection.
    LyingLength {
        /// The length announced.
        announced: u64,
    },
    /// Sends the body over and over, without end, chunked (no `Content-Length`).
    Endless,
}

impl Sim {
    /// A `messages.upsert` payload of a file someone sent from `jid` (a person's chat), as the
    /// legacy server emits a received media message (`keyFromMe: false`): `message_type` is
    /// the WhatsApp type (`imageMessage`, `audioMessage`, `videoMessage`, `documentMessage`,
    /// `stickerMessage` or `ptvMessage`), and `content` has the `url`, `mimetype`,
    /// `fileSha256` (the SHA-256 of `bytes`, in base64), `fileLength` (a decimal string:
    /// WhatsApp's `uint64`s are strings in JSON), `mediaKey`, `fileEncSha256`, `directPath`
    /// and `mediaKeyTimestamp` of a media message, with `caption` and `fileName` when given.
    /// The id is new (32 characters, so `device` is `android`); a `jid` that is a LID is the
    /// `keyLid` (the real server then gives no `keyRemoteJid`); `pushName` is the contact's
    /// name when the simulator's address book has the `jid`; `instanceId` is the default
    /// instance's. With [`Protocol::V2`](crate::Protocol::V2), the newer server's members.
    ///
    /// The simulator keeps `bytes` under the message's id (without copying them), and
    /// `POST /chat/mediaData` serves them for this message. Emit the payload with
    /// [`Sim::emit`] on `messages.upsert`. Any `message_type` is accepted; `mediaData` refuses
    /// one that is not a media type, as the real server does.
    pub fn media_message(
        &self,
        jid: &str,
        message_type: &str,
        mimetype: &str,
        bytes: Vec<u8>,
        caption: Option<&str>,
        file_name: Option<&str>,
    ) -> Value {
        let n = self.next_message_id();
        let key_id = format!("AC{n:030X}");
        let now = crate::auth::now_secs();
        let direct_path = format!(
            "/v/t62.7118-24/{}_{}_{}_n.enc?ccb=11-4&oh=01_Q5Aa{:016x}&oe={:08X}&_nc_sid=5e03e0",
            fastrand::u64(10_000_000..100_000_000),
            fastrand::u64(1_000_000_000_000_000..10_000_000_000_000_000),
            fastrand::u64(1_000_000_000_000_000..10_000_000_000_000_000),
            fastrand::u64(..),
            now + 14 * 24 * 3600,
        );
        let mut content = json!({
            "url": format!("https://mmg.whatsapp.net{direct_path}&mms3=true"),
            "mimetype": mimetype,
            "fileSha256": base64(&sha256(&bytes)),
            "fileLength": bytes.len().to_string(),
            "mediaKey": base64(&random_bytes(32)),
            "fileEncSha256": base64(&random_bytes(32)),
            "directPath": direct_path,
            "mediaKeyTimestamp": now.to_string(),
        });
        if let Some(caption) = caption {
            content["caption"] = caption.into();
        }
        if let Some(name) = file_name {
            content["fileName"] = name.into();
        }
        let path = media_path(message_type, &content);
        let mut message = json!({
            "keyId": key_id,
            "keyFromMe": false,
            "messageType": message_type,
            "content": content,
            "messageTimestamp": now,
            "device": "android",
            "isGroup": jid.ends_with("@g.us"),
        });
        let obj = message.as_object_mut().expect("a json! object");
        if jid.ends_with("@lid") {
            obj.insert("keyLid".into(), jid.into());
        } else {
            obj.insert("keyRemoteJid".into(), jid.into());
        }
        if let Some(name) = crate::generate::contact_name(jid) {
            obj.insert("pushName".into(), name.into());
        }
        match self.config().protocol {
            crate::Protocol::Legacy | crate::Protocol::Evolution => {
                obj.insert(
                    "instanceId".into(),
                    self.instance_id(self.default_instance()).into(),
                );
                obj.insert("info".into(), json!({"type": "notify"}));
                if MEDIA_TYPES.contains(&message_type) {
                    obj.insert("media".into(), json!({ "path": path }));
                }
            }
            crate::Protocol::V2 => {
                for k in [
                    "keyLid",
                    "keyRemoteJid",
                    "keyParticipant",
                    "keyParticipantLid",
                    "pushName",
                    "metadata",
                ] {
                    obj.entry(k).or_insert(Value::Null);
                }
            }
        }
        let media = Arc::new(Media {
            mimetype: mimetype.to_owned(),
            bytes: Bytes::from(bytes),
        });
        let mut store = self.inner.media.lock().unwrap_or_else(|p| p.into_inner());
        if store.order.len() == MEDIA_KEPT {
            if let Some(oldest) = store.order.pop_front() {
                store.by_id.remove(&oldest);
            }
        }
        store.order.push_back(key_id.clone());
        store.by_id.insert(key_id, media);
        message
    }

    /// The file kept for the message with id `id`, if any.
    pub(crate) fn media(&self, id: &str) -> Option<Arc<Media>> {
        let store = self.inner.media.lock().unwrap_or_else(|p| p.into_inner());
        store.by_id.get(id).cloned()
    }

    /// The next `count` answers of `POST /chat/mediaData` that would serve a file misbehave as
    /// `fault` says (a request refused anyway, by the guards or for want of a file, uses none
    /// up); then it serves files again. A `count` of 0 ends the faults at once.
    pub fn media_faults(&self, fault: MediaFault, count: u64) {
        *self
            .inner
            .media_faults
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = (count > 0).then_some((fault, count));
    }

    /// The fault to play on this media answer, if one is due.
    pub(crate) fn take_media_fault(&self) -> Option<MediaFault> {
        let mut faults = self
            .inner
            .media_faults
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let (fault, left) = (*faults)?;
        *faults = (left > 1).then_some((fault, left - 1));
        Some(fault)
    }
}

/// The `media.path` the real server adds to a media message (whatsapp.service.ts, with
/// `encodeProps` of src/utils/encode.props.ts): its public download route, with the file's
/// `{mediaKey, directPath, url, mimetype}` as URI-encoded base64 JSON, in that order.
fn media_path(message_type: &str, content: &Value) -> String {
    let props = format!(
        "{{\"mediaKey\":{},\"directPath\":{},\"url\":{},\"mimetype\":{}}}",
        content["mediaKey"], content["directPath"], content["url"], content["mimetype"]
    );
    format!(
        "/chat/public/{}/download?q={}",
        message_type.replacen("Message", "", 1),
        encode_uri_component(&base64(props.as_bytes()))
    )
}

/// JavaScript's `encodeURIComponent`: every byte of the UTF-8 but `A-Z a-z 0-9 - _ . ! ~ * ' ( )`
/// as `%XX`.
pub(crate) fn encode_uri_component(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn random_bytes(n: usize) -> Vec<u8> {
    std::iter::repeat_with(|| fastrand::u8(..))
        .take(n)
        .collect()
}

/// Standard base64, padded (protobuf's JSON for `bytes`, and Node's `toString('base64')`).
pub(crate) fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// SHA-256 (FIPS 180-4), for `fileSha256`: the workspace has no hashing crate the simulator
/// could use without a new dependency, and this is all it needs.
pub(crate) fn sha256(data: &[u8]) -> [u8; 32] {
    const K: [u32; 64] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
        0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
        0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
        0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
        0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
        0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
        0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
        0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
        0xc67178f2,
    ];
    let mut h: [u32; 8] = [
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
        0x5be0cd19,
    ];
    let bits = (data.len() as u64).wrapping_mul(8);
    let mut tail = data[data.len() - data.len() % 64..].to_vec();
    tail.push(0x80);
    while tail.len() % 64 != 56 {
        tail.push(0);
    }
    tail.extend_from_slice(&bits.to_be_bytes());
    let whole = &data[..data.len() - data.len() % 64];
    for block in whole.chunks_exact(64).chain(tail.chunks_exact(64)) {
        let mut w = [0u32; 64];
        for (i, word) in block.chunks_exact(4).enumerate() {
            w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for i in 16..64 {
            let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
            let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16]
                .wrapping_add(s0)
                .wrapping_add(w[i - 7])
                .wrapping_add(s1);
        }
        let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut hh] = h;
        for i in 0..64 {
            let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
            let ch = (e & f) ^ (!e & g);
            let t1 = hh
                .wrapping_add(s1)
                .wrapping_add(ch)
                .wrapping_add(K[i])
                .wrapping_add(w[i]);
            let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
            let maj = (a & b) ^ (a & c) ^ (b & c);
            let t2 = s0.wrapping_add(maj);
            hh = g;
            g = f;
            f = e;
            e = d.wrapping_add(t1);
            d = c;
            c = b;
            b = a;
            a = t1.wrapping_add(t2);
        }
        for (x, v) in h.iter_mut().zip([a, b, c, d, e, f, g, hh]) {
            *x = x.wrapping_add(v);
        }
    }
    let mut out = [0u8; 32];
    for (i, word) in h.iter().enumerate() {
        out[i * 4..i * 4 + 4].copy_from_slice(&word.to_be_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_and_base64_match_known_values() {
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        assert_eq!(
            hex(&sha256(b"")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            hex(&sha256(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        // 56 bytes: the padding needs a second block.
        assert_eq!(
            hex(&sha256(
                b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"
            )),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
        );
        assert_eq!(
            hex(&sha256(&vec![b'a'; 1_000_000])),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"
        );
        for (raw, encoded) in [
            (&b""[..], ""),
            (b"f", "Zg=="),
            (b"fo", "Zm8="),
            (b"foo", "Zm9v"),
            (b"foob", "Zm9vYg=="),
            (b"\xff\xfe\xfd", "//79"),
        ] {
            assert_eq!(base64(raw), encoded);
        }
        assert_eq!(
            encode_uri_component("nota fiscal/2025 (1)é\"x\".pdf"),
            "nota%20fiscal%2F2025%20(1)%C3%A9%22x%22.pdf"
        );
    }

    /// The path of the fixture `tests/fixtures/legacy/variants/messages.upsert.image.json` is
    /// the real server's encoding of its content (its provenance says so); the simulator's
    /// encoding of that content gives the same path.
    #[test]
    fn media_path_is_the_real_servers_encoding() {
        let path = "/v/t62.7118-24/29384756_1122334455667788_1234567890123456789_n/image1.enc?ccb=11-4&oh=01_Q5Aa1wHb5e7d988cfdb&oe=68500000&_nc_sid=5e03e0";
        let content = json!({
            "mediaKey": "sJd+l+vIJUesJLXhjGl84fUMFqxh7PfIHIoysjeE5DI=",
            "directPath": path,
            "url": format!("https://mmg.whatsapp.net{path}&mms3=true"),
            "mimetype": "image/jpeg",
        });
        assert_eq!(
            media_path("imageMessage", &content),
            "/chat/public/image/download?q=eyJtZWRpYUtleSI6InNKZCtsK3ZJSlVlc0pMWGhqR2w4NGZVTUZxeGg3UGZJSElveXNqZUU1REk9IiwiZGlyZWN0UGF0aCI6Ii92L3Q2Mi43MTE4LTI0LzI5Mzg0NzU2XzExMjIzMzQ0NTU2Njc3ODhfMTIzNDU2Nzg5MDEyMzQ1Njc4OV9uL2ltYWdlMS5lbmM%2FY2NiPTExLTQmb2g9MDFfUTVBYTF3SGI1ZTdkOTg4Y2ZkYiZvZT02ODUwMDAwMCZfbmNfc2lkPTVlMDNlMCIsInVybCI6Imh0dHBzOi8vbW1nLndoYXRzYXBwLm5ldC92L3Q2Mi43MTE4LTI0LzI5Mzg0NzU2XzExMjIzMzQ0NTU2Njc3ODhfMTIzNDU2Nzg5MDEyMzQ1Njc4OV9uL2ltYWdlMS5lbmM%2FY2NiPTExLTQmb2g9MDFfUTVBYTF3SGI1ZTdkOTg4Y2ZkYiZvZT02ODUwMDAwMCZfbmNfc2lkPTVlMDNlMCZtbXMzPXRydWUiLCJtaW1ldHlwZSI6ImltYWdlL2pwZWcifQ%3D%3D"
        );
    }
}
