//! One chat across a person's phone number and LID: a conversation whose chat switches from
//! its phone number to its LID mid-dialogue keeps its state (also across a restart, through the
//! pair kept in the state store) and one pacing bucket; a chat the bot never saw both ids of
//! stays apart. Run through the test kit: the simulator's REST API, the router, the dialogue
//! and the outbox, on tokio's paused clock.
#![cfg(feature = "testkit")]

use eventsock::core::LocalBoxFuture;
use eventsock::handler::{ChatKey, Dialogue, MemoryStore, StateError, StateStore, Stored};
use eventsock::prelude::*;
use eventsock::testkit::TestKit;
use std::sync::Arc;
use std::time::Duration;

const PHONE: &str = "5511988887777";
const PHONE_JID: &str = "5511988887777@s.whatsapp.net";
const LID: &str = "123456789012345@lid";

/// A three-step conversation: each message moves it on and is answered with where it is.
fn counting(store: Arc<dyn StateStore>) -> Router {
    counting_with(Dialogue::<u32>::new(store))
}

fn counting_with(dialogue: Dialogue<u32>) -> Router {
    let dialogue = dialogue.when(
        |_| true,
        |msg: Msg, n| async move {
            msg.cx
                .reply(&format!(
                    "step {} for {}",
                    n + 1,
                    msg.cx.identity().unwrap_or_default()
                ))
                .await?;
            Ok(n + 1)
        },
    );
    Router::builder()
        .pacing(Pacing::default().per_chat(Duration::from_secs(2)))
        .dialogue(dialogue)
        .build()
}

#[actix_rt::test]
async fn a_chat_that_moves_from_its_number_to_its_lid_keeps_its_state_and_its_pace() {
    let store: Arc<dyn StateStore> = Arc::new(MemoryStore::default());
    let kit = TestKit::new(counting(store.clone()));
    let phone = kit.chat(PHONE);
    let both = kit.chat(PHONE).with_lid(LID);
    let lid = kit.chat(LID);

    phone.says("hi").await;
    assert_eq!(phone.replies().await, [format!("step 1 for {PHONE_JID}")]);
    // The message that moves the chat carries both ids: the pair is learnt.
    both.says("still me").await;
    assert_eq!(phone.replies().await, [format!("step 2 for {PHONE_JID}")]);
    assert_eq!(
        kit.dispatcher().identities().phone_of(LID).as_deref(),
        Some(PHONE_JID)
    );
    // From now on by LID only: the same conversation, answered where the message came from.
    lid.says("by lid").await;
    assert_eq!(lid.replies().await, [format!("step 3 for {PHONE_JID}")]);

    // One pacing bucket: the answers to the number and to the LID are 2 s apart, as one
    // chat's are (apart, the LID's first answer would have gone at once).
    let sent = kit.sent();
    assert_eq!(sent.len(), 3, "{sent:?}");
    for pair in sent.windows(2) {
        let gap = pair[1].at_ms - pair[0].at_ms;
        assert!(gap >= 2_000, "answers {gap} ms apart: {sent:?}");
    }
    // Answers at once to a new chat: pacing is per person, not global.
    let other = kit.chat("5511977776666");
    other.says("hello").await;
    let sent = kit.sent();
    let last = &sent[sent.len() - 1];
    assert!(last.at_ms - sent[sent.len() - 2].at_ms < 2_000);

    // A restart: a new run knows no pair, and finds the one the dialogue kept in its store.
    drop(kit);
    // The next kit pauses the clock again.
    tokio::time::resume();
    let kit = TestKit::new(counting(store));
    assert!(kit.dispatcher().identities().is_empty());
    let lid = kit.chat(LID);
    lid.says("after a restart").await;
    assert_eq!(lid.replies().await, [format!("step 4 for {PHONE_JID}")]);
}

/// Before a pair is known, a LID-only chat is its own conversation: what the docs say.
#[actix_rt::test]
async fn a_lid_never_seen_with_a_number_is_its_own_chat() {
    let kit = TestKit::new(counting(Arc::new(MemoryStore::default())));
    kit.chat(PHONE).says("hi").await;
    let lid = kit.chat(LID);
    lid.says("who am I").await;
    assert_eq!(lid.replies().await, [format!("step 1 for {LID}")]);
}

/// A chat that writes by phone number only, whose LID the server knows: with
/// `look_up_lids`, the dialogue asks the server once, and the chat's first LID-only message
/// finds its conversation.
#[actix_rt::test]
async fn the_server_is_asked_for_a_lid_once_when_the_dialogue_looks_them_up() {
    let dialogue = Dialogue::<u32>::new(Arc::new(MemoryStore::default())).look_up_lids(true);
    let kit = TestKit::new(counting_with(dialogue));
    kit.sim().pair_lid(PHONE_JID, LID);
    let phone = kit.chat(PHONE);
    phone.says("hi").await;
    phone.says("again").await;
    assert_eq!(
        phone.replies().await,
        [
            format!("step 1 for {PHONE_JID}"),
            format!("step 2 for {PHONE_JID}")
        ]
    );
    let lid = kit.chat(LID);
    lid.says("by lid").await;
    assert_eq!(lid.replies().await, [format!("step 3 for {PHONE_JID}")]);
    let asked = kit
        .sim()
        .requests()
        .into_iter()
        .filter(|r| r.path.contains("whatsappNumbers"))
        .count();
    assert_eq!(asked, 1, "asked once for the number");
}

/// A chat answered by LID before its number was known, then by number once the pair is
/// learnt: the number's answer waits for the LID's pacing (one bucket for the person), though
/// the conversation starts over under the number (as the docs say).
#[actix_rt::test]
async fn a_pair_learnt_while_the_lid_is_pacing_keeps_one_pace() {
    let kit = TestKit::new(counting(Arc::new(MemoryStore::default())));
    let lid = kit.chat(LID);
    lid.says("first by lid").await;
    assert_eq!(lid.replies().await, [format!("step 1 for {LID}")]);
    let both = kit.chat(PHONE).with_lid(LID);
    both.says("now with the number").await;
    assert_eq!(both.replies().await, [format!("step 1 for {PHONE_JID}")]);
    let sent = kit.sent();
    assert_eq!(sent.len(), 2, "{sent:?}");
    let gap = sent[1].at_ms - sent[0].at_ms;
    assert!(gap >= 2_000, "answers {gap} ms apart: {sent:?}");
}

/// A store whose first save of a pair fails (storage down), then works.
struct FlakyPairs {
    inner: MemoryStore,
    failed: std::sync::atomic::AtomicBool,
}

impl StateStore for FlakyPairs {
    fn load<'a>(
        &'a self,
        key: &'a ChatKey,
    ) -> LocalBoxFuture<'a, Result<Option<Stored>, StateError>> {
        self.inner.load(key)
    }

    fn save<'a>(
        &'a self,
        key: &'a ChatKey,
        bytes: Vec<u8>,
        expected: Option<u64>,
    ) -> LocalBoxFuture<'a, Result<u64, StateError>> {
        let pair = key.chat.starts_with("lid:");
        if pair && !self.failed.swap(true, std::sync::atomic::Ordering::Relaxed) {
            return Box::pin(async { Err(StateError::Storage("down for a moment".into())) });
        }
        self.inner.save(key, bytes, expected)
    }

    fn remove<'a>(
        &'a self,
        key: &'a ChatKey,
        expected: u64,
    ) -> LocalBoxFuture<'a, Result<(), StateError>> {
        self.inner.remove(key, expected)
    }
}

/// A pair whose save failed is saved with the chat's next message (it is marked saved only
/// once the store holds it), and so found after a restart.
#[actix_rt::test]
async fn a_pair_the_store_failed_to_keep_is_kept_with_the_next_message() {
    let store = Arc::new(FlakyPairs {
        inner: MemoryStore::default(),
        failed: std::sync::atomic::AtomicBool::new(false),
    });
    let kit = TestKit::new(counting(store.clone()));
    let both = kit.chat(PHONE).with_lid(LID);
    let failed = both.says("hi").await;
    assert_eq!(failed.failed, 1, "the storage error fails the handler");
    both.says("hi again").await;
    assert_eq!(both.replies().await, [format!("step 1 for {PHONE_JID}")]);
    drop(kit);
    tokio::time::resume();
    let kit = TestKit::new(counting(store));
    let lid = kit.chat(LID);
    lid.says("after a restart").await;
    assert_eq!(lid.replies().await, [format!("step 2 for {PHONE_JID}")]);
}
