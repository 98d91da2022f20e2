//! Media downloads from the simulator over real HTTP: a 5 MiB image streamed with bounded
//! memory (the peak resident memory is measured, on Linux, and printed), bytes and hash equal; a bot run by the runtime downloads what it is sent through `Ctx::download_to`,
//! and answers a message without media with the error. The hostile answers are in
//! `tests/media_hostile.rs`.

mod common;

use common::*;
use eventsock::prelude::*;
use eventsock::rest::MediaError;
use tokio::io::AsyncWrite;

/// A field of `/proc/self/status` in KiB (`VmRSS`, `VmHWM`: the peak resident set).
fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Tests of this binary one at a time: the memory measure is the process's.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A writer that keeps nothing: it hashes and counts what it is given.
#[derive(Default)]
struct Hashing {
    hash: u64,
    len: u64,
}

impl AsyncWrite for Hashing {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let basis = if self.len == 0 {
            eventsock::core::FNV_BASIS
        } else {
            self.hash
        };
        self.hash = eventsock::core::fnv1a(basis, buf.iter().copied());
        self.len += buf.len() as u64;
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

/// `n` bytes that are not all alike (an image compresses poorly; so does this).
fn image(n: usize) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(7);
    (0..n).map(|_| rng.u8(..)).collect()
}

fn client(s: &TestServer) -> RestClient {
    RestClient::new(
        &s.endpoint(),
        "codechat",
        Token::new(s.sim.mint_token("codechat", None)),
    )
}

#[actix_rt::test]
async fn a_5_mib_image_streams_from_the_simulator_in_bounded_memory() {
    const SIZE: usize = 5 * 1024 * 1024;
    let _alone = ONE_AT_A_TIME.lock().await;
    let s = start_sim(eventsock::sim::SimConfig::default());
    let bytes = image(SIZE);
    let expected = eventsock::core::fnv1a(eventsock::core::FNV_BASIS, bytes.iter().copied());
    let message = s.sim.media_message(
        "5511988887777@s.whatsapp.net",
        "imageMessage",
        "image/jpeg",
        bytes.clone(),
        Some("look"),
        None,
    );
    let rest = client(&s);
    // The first call of a process sets up its HTTP client (about 4.4 MiB, kept for the next
    // calls): a small download first, so that the measure below is the download's own.
    let small = s.sim.media_message(
        "5511988887777@s.whatsapp.net",
        "stickerMessage",
        "image/webp",
        image(1024),
        None,
        None,
    );
    rest.download_media(&small, &mut Hashing::default())
        .await
        .unwrap();

    // Into a writer that keeps nothing: the peak resident memory (reset first: writing 5 to
    // clear_refs sets VmHWM to the current RSS) grows by what the download holds at once.
    let mut writer = Hashing::default();
    let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let before = status_kib("VmRSS");
    let got = rest.download_media(&message, &mut writer).await.unwrap();
    let peak = status_kib("VmHWM").saturating_sub(before) * 1024;
    println!(
        "a 5 MiB image from the simulator: {} bytes; peak resident memory {} above the start \
         (VmHWM after, less VmRSS before; the simulator serving it in this process included)",
        got.size,
        eventsock::core::human::bytes(peak),
    );
    assert_eq!((got.size, writer.len), (SIZE as u64, SIZE as u64));
    assert_eq!(writer.hash, expected, "the bytes' hash");
    assert_eq!(got.content_type.as_deref(), Some("image/jpeg"));
    // Named as the server names it: the message id and the type's extension.
    let key_id = message["keyId"].as_str().unwrap();
    let name = got.file_name.unwrap_or_default();
    assert!(name.starts_with(&format!("{key_id}.")), "{name}");
    if !reset || before == 0 {
        println!("the peak was not measured: /proc/self/clear_refs or /proc/self/status is not available here");
    } else {
        assert!(
            peak < 1024 * 1024,
            "a streamed 5 MiB download grew the resident memory by {peak} bytes at its peak"
        );
    }

    // Into a file: the same bytes.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("image.jpeg");
    let got = rest.download_media_to_file(&message, &path).await.unwrap();
    assert_eq!(got.size, SIZE as u64);
    assert!(
        std::fs::read(&path).unwrap() == bytes,
        "the file holds the image"
    );
}

#[actix_rt::test]
async fn a_bot_downloads_the_media_it_is_sent() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().to_owned();
    let router = Router::builder()
        .on(move |msg: Msg| {
            let folder = folder.clone();
            async move {
                if msg.is_from_me() {
                    return Ok(());
                }
                let cx = &msg.cx;
                let kind = cx.media().map(|m| m.kind.to_string());
                let path = folder.join(msg.key_id.clone().unwrap_or_default());
                match cx.download_to(&path).await {
                    Ok(got) => {
                        let kind = kind.unwrap_or_default();
                        cx.reply(&format!("got your {kind}: {} bytes", got.size))
                            .await?
                    }
                    Err(e @ MediaError::NoMedia(_)) => cx.reply(&e.to_string()).await?,
                    Err(e) => return Err(e.into()),
                };
                Ok(())
            }
        })
        .pacing(fast_pacing())
        .build();
    let (running, sim) = started(router, Settings::default()).await;
    let voice = image(300 * 1024);
    let message = sim.media_message(
        "5511988887777@s.whatsapp.net",
        "audioMessage",
        "audio/ogg; codecs=opus",
        voice.clone(),
        None,
        None,
    );
    assert!(sim.emit("codechat", "messages.upsert", &message));
    let mut text: serde_json::Value =
        serde_json::from_str(include_str!("fixtures/legacy/messages.upsert.json")).unwrap();
    text["keyId"] = "TEXT1".into();
    assert!(sim.emit("codechat", "messages.upsert", &text));
    until("both answers", || sim.sent().len() >= 2).await;
    let answers: Vec<String> = sim.sent().into_iter().map(|s| s.text).collect();
    assert!(
        answers.contains(&"got your audio: 307200 bytes".to_owned()),
        "{answers:?}"
    );
    assert!(
        answers.contains(
            &"this message carries no media (a message of type conversation): nothing to download"
                .to_owned()
        ),
        "{answers:?}"
    );
    let saved = dir.path().join(message["keyId"].as_str().unwrap());
    assert!(std::fs::read(saved).unwrap() == voice);
    running.stop().await;
}
