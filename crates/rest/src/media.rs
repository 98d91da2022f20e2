//! Media downloads: the bytes of an image, a voice note, a document... that a message announces.
//!
//! CodeChat serves them at `POST /chat/mediaData/{instance}?binary=true`, given the message (it
//! downloads and decrypts the media from WhatsApp, asking the phone to upload an expired one
//! again), as a stream with its `Content-Type` and its file name in `Content-Disposition`.
//! [`RestClient::download_media`] streams that answer into a writer in the chunks it arrives
//! in, never holding it whole, and stops at the first of:
//!
//! - more bytes than [`MediaLimits::max_bytes`] (64 MiB), announced by `Content-Length` (then
//!   nothing is read) or counted while reading;
//! - no byte for [`MediaLimits::stall`] (30 s);
//! - [`MediaLimits::total`] (10 minutes) for the whole download.
//!
//! An answer that is a 5xx, a timeout or a lost connection before the first byte is asked again
//! ([`RestClient::retries`] times, with the REST client's backoff): asking twice changes
//! nothing on the server. Once bytes went to the writer, a failure ends the download (a writer
//! cannot take them back); [`RestClient::download_media_to_file`] then leaves no file.

use crate::client::{LoopbackCall, LoopbackReply, Method};
use crate::retries::{Retries, Retryable};
use crate::{RestClient, RestError};
use eventsock_core::file::AtomicFile;
use eventsock_core::human;
use futures_util::StreamExt;
use serde_json::Value;
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

/// The longest limit kept: a longer one (`Duration::MAX` for "no limit") is this, which an
/// `Instant` can always be moved by (30 years, as tokio's own far future).
const NO_LIMIT: Duration = Duration::from_secs(30 * 365 * 24 * 60 * 60);

/// How much and how long a media download may take. A value that no longer changes: each
/// setter returns a new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaLimits {
    max_bytes: u64,
    stall: Duration,
    total: Duration,
}

impl Default for MediaLimits {
    /// 64 MiB, 30 s without a byte, 10 minutes in all.
    fn default() -> Self {
        MediaLimits {
            max_bytes: 64 * 1024 * 1024,
            stall: Duration::from_secs(30),
            total: Duration::from_secs(600),
        }
    }
}

impl MediaLimits {
    /// The largest media taken, in bytes (64 MiB): a larger one fails with
    /// [`MediaError::TooLarge`], checked against the announced length and the bytes read.
    pub fn max_bytes(self, max_bytes: u64) -> Self {
        MediaLimits { max_bytes, ..self }
    }

    /// How long the server may send nothing before the download fails as stalled (30 s).
    pub fn stall(self, stall: Duration) -> Self {
        MediaLimits {
            stall: stall.min(NO_LIMIT),
            ..self
        }
    }

    /// How long a whole download may take, retries included (10 minutes).
    pub fn total(self, total: Duration) -> Self {
        MediaLimits {
            total: total.min(NO_LIMIT),
            ..self
        }
    }

    /// The largest media taken, in bytes.
    pub fn max(&self) -> u64 {
        self.max_bytes
    }
}

/// A media downloaded: what the server said it is, and how many bytes were written.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Downloaded {
    /// The server's `Content-Type` (`image/jpeg`...), when it sent a readable one.
    pub content_type: Option<String>,
    /// The file name from `Content-Disposition`, decoded: the sender's document name, or the
    /// message id with an extension. Chosen by whoever sent the message: never join it to a
    /// folder without checking it (see [`Downloaded::safe_file_name`]).
    pub file_name: Option<String>,
    /// Bytes written.
    pub size: u64,
}

impl Downloaded {
    /// The file name with every character other than letters, digits, `.`, `-` and `_`
    /// replaced by `_`, without leading dots, at most 100 characters: safe to join to a folder.
    /// `None` when the server gave none (or nothing of it is left).
    pub fn safe_file_name(&self) -> Option<String> {
        let name = self.file_name.as_deref()?;
        let safe: String = name
            .chars()
            .map(|c| match c {
                'a'..='z' | 'A'..='Z' | '0'..='9' | '.' | '-' | '_' => c,
                _ => '_',
            })
            .skip_while(|c| *c == '.')
            .take(100)
            .collect();
        (!safe.is_empty()).then_some(safe)
    }
}

/// Why a media download failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MediaError {
    /// The message carries no media: nothing was asked of the server.
    #[error("this message carries no media ({0}): nothing to download")]
    NoMedia(String),
    /// The media is larger than [`MediaLimits::max_bytes`].
    #[error("the media is larger than the cap of {}{}: raise MediaLimits::max_bytes to take it", human::bytes(*.limit), .announced.map(|n| format!(" (the server announced {})", human::bytes(n))).unwrap_or_default())]
    TooLarge {
        /// The cap.
        limit: u64,
        /// The length the server announced, when it did.
        announced: Option<u64>,
    },
    /// The server sent nothing for [`MediaLimits::stall`].
    #[error("the download stalled: nothing arrived for {} (after {} received)", human::duration(*.after), human::bytes(*.received))]
    Stalled {
        /// How long nothing came.
        after: Duration,
        /// Bytes received before.
        received: u64,
    },
    /// The download took longer than [`MediaLimits::total`].
    #[error("the download took longer than {} (after {} received)", human::duration(*.limit), human::bytes(*.received))]
    Timeout {
        /// The limit.
        limit: Duration,
        /// Bytes received before.
        received: u64,
    },
    /// The answer ended before the length it announced.
    #[error("the media was cut short: {} of the {} announced arrived", human::bytes(*.received), human::bytes(*.announced))]
    Truncated {
        /// The length announced.
        announced: u64,
        /// Bytes received.
        received: u64,
    },
    /// The answer broke off, or was not HTTP the client could read.
    #[error("the server's answer broke off after {}: {}", human::bytes(*.received), human::escaped(.reason))]
    Broken {
        /// Bytes received before.
        received: u64,
        /// What the HTTP client said.
        reason: String,
    },
    /// The server refused or failed the request (a 4xx, or a 5xx after the retries; a 400
    /// when WhatsApp no longer has the media), or could not be reached.
    #[error("the server did not give the media: {0}")]
    Rest(#[from] RestError),
    /// The writer failed.
    #[error("writing the media failed after {}: {source}", human::bytes(*.written))]
    Write {
        /// Bytes written before.
        written: u64,
        /// The writer's error.
        source: std::io::Error,
    },
}

impl Retryable for MediaError {
    fn token_refused(&self) -> bool {
        matches!(self, MediaError::Rest(e) if e.token_refused())
    }

    /// Worth asking again, when nothing was written yet.
    fn transient(&self) -> bool {
        match self {
            MediaError::Rest(e) => e.transient(),
            MediaError::Broken { received: 0, .. } | MediaError::Stalled { received: 0, .. } => {
                true
            }
            _ => false,
        }
    }
}

/// What a download reads from the answer's headers.
struct Head {
    content_type: Option<String>,
    file_name: Option<String>,
    length: Option<u64>,
}

impl Head {
    fn read(headers: &awc::http::header::HeaderMap) -> Head {
        let text = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|v| !v.is_empty() && v.len() <= 1024)
        };
        Head {
            content_type: text("content-type").map(str::to_owned),
            file_name: text("content-disposition").and_then(file_name_of),
            length: text("content-length").and_then(|v| v.parse().ok()),
        }
    }
}

/// The `filename="..."` of a `Content-Disposition`, percent-decoded (the server writes it
/// with `encodeURIComponent`).
fn file_name_of(disposition: &str) -> Option<String> {
    let start = disposition.find("filename=")? + "filename=".len();
    let rest = &disposition[start..];
    let name = match rest.strip_prefix('"') {
        Some(quoted) => &quoted[..quoted.find('"')?],
        None => rest.split(';').next()?.trim(),
    };
    let decoded = percent_encoding::percent_decode_str(name).decode_utf8_lossy();
    (!decoded.is_empty()).then(|| decoded.into_owned())
}

impl RestClient {
    /// Downloads the media of `message` (the message as the server sent it: a `messages.upsert`
    /// payload) into `to`, within this client's [`MediaLimits`] (see the
    /// [module](crate::media)). Returns what the server said the media is and its size.
    pub async fn download_media<W: AsyncWrite + Unpin>(
        &self,
        message: &Value,
        to: &mut W,
    ) -> Result<Downloaded, MediaError> {
        let limits = self.media_limits;
        let deadline = Instant::now() + limits.total;
        let mut retries = Retries::new(self, "chat/mediaData", true, Some(deadline));
        loop {
            let token = retries.token().await?;
            let mut url = self.url("chat/mediaData")?;
            url.set_query(Some("binary=true"));
            let tried = match &self.loopback {
                Some(server) => {
                    let call = LoopbackCall {
                        method: Method::Post,
                        url,
                        token: Some(token.clone()),
                        body: message.clone(),
                    };
                    match tokio::time::timeout_at(deadline, server.answer(call)).await {
                        Ok(reply) => copy_reply(reply, &limits, to).await,
                        Err(_) => Err(MediaError::Timeout {
                            limit: limits.total,
                            received: 0,
                        }),
                    }
                }
                None => {
                    let request = self
                        .http()
                        .post(url.as_str())
                        // awc's own limit, past ours: the deadline below answers first.
                        .timeout(limits.total + Duration::from_secs(1))
                        .bearer_auth(token.expose());
                    let head_by = (Instant::now() + limits.stall).min(deadline);
                    let sent = tokio::time::timeout_at(head_by, request.send_json(message));
                    match sent.await {
                        Err(_) if head_by < deadline => Err(MediaError::Stalled {
                            after: limits.stall,
                            received: 0,
                        }),
                        Err(_) => Err(MediaError::Timeout {
                            limit: limits.total,
                            received: 0,
                        }),
                        Ok(Err(awc::error::SendRequestError::Response(e))) => {
                            Err(MediaError::Broken {
                                received: 0,
                                reason: format!("not an HTTP answer: {e}"),
                            })
                        }
                        Ok(Err(e)) => Err(MediaError::Rest(match e {
                            awc::error::SendRequestError::Timeout => {
                                RestError::Timeout(limits.total)
                            }
                            other => RestError::Connect(
                                other.to_string().replace(token.expose(), "<redacted>"),
                            ),
                        })),
                        Ok(Ok(response)) => copy_stream(response, &limits, deadline, to).await,
                    }
                }
            };
            match tried {
                Err(e) if retries.again(&e, &token).await => {}
                other => return other,
            }
        }
    }

    /// Downloads the media of `message` into the file `path`, written whole or not at all: the
    /// bytes go to a temporary file beside it, renamed over `path` once complete (see
    /// [`eventsock_core::file::AtomicFile`]). A failed download leaves no file.
    pub async fn download_media_to_file(
        &self,
        message: &Value,
        path: &Path,
    ) -> Result<Downloaded, MediaError> {
        let write = |written| move |source| MediaError::Write { written, source };
        // Opening, syncing and renaming block: on the blocking pool, not the event loop (the
        // writes go there too, through tokio's file).
        let path = path.to_owned();
        let file = blocking(move || AtomicFile::create(&path, false))
            .await
            .map_err(write(0))?;
        let mut out = tokio::fs::File::from_std(file.file().try_clone().map_err(write(0))?);
        let downloaded = self.download_media(message, &mut out).await;
        drop(out);
        match downloaded {
            Ok(downloaded) => {
                let size = downloaded.size;
                blocking(move || file.commit()).await.map_err(write(size))?;
                Ok(downloaded)
            }
            Err(e) => {
                // Dropped uncommitted: the temporary file is removed.
                let _ = blocking(move || {
                    drop(file);
                    Ok(())
                })
                .await;
                Err(e)
            }
        }
    }
}

/// Runs `f` on the blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)))
}

/// Copies a streamed HTTP answer into `to`, chunk by chunk, within `limits`.
async fn copy_stream<S, W>(
    mut response: awc::ClientResponse<S>,
    limits: &MediaLimits,
    deadline: Instant,
    to: &mut W,
) -> Result<Downloaded, MediaError>
where
    S: futures_util::Stream<Item = Result<bytes::Bytes, awc::error::PayloadError>> + Unpin,
    W: AsyncWrite + Unpin,
{
    let status = response.status().as_u16();
    if !(200..300).contains(&status) {
        // An error's body is JSON; 64 KiB of it says all there is.
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let body_by = (Instant::now() + limits.stall).min(deadline);
        let body = tokio::time::timeout_at(body_by, response.body().limit(64 * 1024))
            .await
            .ok()
            .and_then(Result::ok)
            .map(|b| b.to_vec())
            .unwrap_or_default();
        let reply = LoopbackReply {
            status,
            retry_after,
            headers: Vec::new(),
            body,
        };
        return Err(MediaError::Rest(
            reply
                .into_result()
                .err()
                .unwrap_or(RestError::Decode(format!("status {status}"))),
        ));
    }
    let head = Head::read(response.headers());
    check_length(head.length, limits)?;
    let mut received = 0u64;
    loop {
        let wait = (Instant::now() + limits.stall).min(deadline);
        let next = match tokio::time::timeout_at(wait, response.next()).await {
            Ok(next) => next,
            Err(_) if wait == deadline => {
                return Err(MediaError::Timeout {
                    limit: limits.total,
                    received,
                })
            }
            Err(_) => {
                return Err(MediaError::Stalled {
                    after: limits.stall,
                    received,
                })
            }
        };
        match next {
            None => break,
            Some(Err(e)) => {
                let reason = match e {
                    awc::error::PayloadError::Incomplete(Some(io)) => io.to_string(),
                    other => other.to_string(),
                };
                return Err(MediaError::Broken { received, reason });
            }
            Some(Ok(chunk)) => received = write_chunk(to, &chunk, received, &head, limits).await?,
        }
    }
    finish(head, received, to).await
}

/// Copies a loopback answer (whole, from a server in this process) into `to`, within `limits`.
async fn copy_reply<W: AsyncWrite + Unpin>(
    reply: LoopbackReply,
    limits: &MediaLimits,
    to: &mut W,
) -> Result<Downloaded, MediaError> {
    if !(200..300).contains(&reply.status) {
        let status = reply.status;
        return Err(MediaError::Rest(
            reply
                .into_result()
                .err()
                .unwrap_or(RestError::Decode(format!("status {status}"))),
        ));
    }
    let mut headers = awc::http::header::HeaderMap::new();
    for (name, value) in &reply.headers {
        if let (Ok(name), Ok(value)) = (
            awc::http::header::HeaderName::try_from(name.as_str()),
            awc::http::header::HeaderValue::try_from(value.as_str()),
        ) {
            headers.append(name, value);
        }
    }
    let mut head = Head::read(&headers);
    head.length = Some(reply.body.len() as u64);
    check_length(head.length, limits)?;
    let mut received = 0;
    for chunk in reply.body.chunks(64 * 1024) {
        received = write_chunk(to, chunk, received, &head, limits).await?;
    }
    finish(head, received, to).await
}

fn check_length(announced: Option<u64>, limits: &MediaLimits) -> Result<(), MediaError> {
    match announced {
        Some(n) if n > limits.max_bytes => Err(MediaError::TooLarge {
            limit: limits.max_bytes,
            announced,
        }),
        _ => Ok(()),
    }
}

/// Writes one chunk after `received` bytes; returns the bytes received with it.
async fn write_chunk<W: AsyncWrite + Unpin>(
    to: &mut W,
    chunk: &[u8],
    received: u64,
    head: &Head,
    limits: &MediaLimits,
) -> Result<u64, MediaError> {
    let total = received + chunk.len() as u64;
    if total > limits.max_bytes {
        return Err(MediaError::TooLarge {
            limit: limits.max_bytes,
            announced: head.length,
        });
    }
    to.write_all(chunk)
        .await
        .map_err(|source| MediaError::Write {
            written: received,
            source,
        })?;
    Ok(total)
}

async fn finish<W: AsyncWrite + Unpin>(
    head: Head,
    received: u64,
    to: &mut W,
) -> Result<Downloaded, MediaError> {
    if let Some(announced) = head.length.filter(|n| received < *n) {
        return Err(MediaError::Truncated {
            announced,
            received,
        });
    }
    to.flush().await.map_err(|source| MediaError::Write {
        written: received,
        source,
    })?;
    Ok(Downloaded {
        content_type: head.content_type,
        file_name: head.file_name,
        size: received,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The file name comes out of every way a server writes it, decoded; a hostile one is made
    /// safe to join to a folder.
    #[test]
    fn file_names() {
        let cases = [
            (r#"inline; filename="3A5F.jpeg""#, Some("3A5F.jpeg")),
            (
                r#"inline; filename="Relat%C3%B3rio%20final.pdf""#,
                Some("Relatório final.pdf"),
            ),
            ("attachment; filename=plain.ogg; size=3", Some("plain.ogg")),
            (r#"inline; filename="""#, None),
            (r#"inline; filename="unclosed"#, None),
            ("inline", None),
        ];
        for (header, name) in cases {
            assert_eq!(file_name_of(header).as_deref(), name, "{header}");
        }
        let hostile = Downloaded {
            content_type: None,
            file_name: Some("../../etc/pass wd".into()),
            size: 0,
        };
        assert_eq!(hostile.safe_file_name().as_deref(), Some("_.._etc_pass_wd"));
        let dots = Downloaded {
            file_name: Some("..".into()),
            ..hostile
        };
        assert_eq!(dots.safe_file_name(), None);
    }
}
