//! Delivery receipts: a message the bot sent is followed through the simulator's
//! `messages.update` (which, as the server, acknowledges every send it accepts: `SERVER_ACK`,
//! then `DELIVERY_ACK`) to `READ`; a failed one (`ERROR`) fails its receipt; the outbox's stats
//! count each status and the time from sent to delivered. Through the test kit: the router
//! subscribes to `messages.update` for its receipts, the dispatcher hands them to the outbox.
#![cfg(feature = "testkit")]

use eventsock::prelude::*;
use eventsock::rest::{Delivery, DeliveryError};
use eventsock::testkit::TestKit;
use std::sync::{Arc, Mutex};
use std::time::Duration;

type Receipts = Arc<Mutex<Vec<Receipt>>>;

/// A bot that answers every message and hands the receipt to the test.
fn answering(receipts: Receipts) -> Router {
    Router::builder()
        .on(move |msg: Msg| {
            let receipts = receipts.clone();
            async move {
                if msg.is_from_me() {
                    return Ok(());
                }
                let receipt = msg.cx.reply("noted").await?;
                receipts.lock().unwrap().push(receipt);
                Ok(())
            }
        })
        .build()
}

fn last(receipts: &Receipts) -> Receipt {
    receipts.lock().unwrap().pop().expect("the bot's receipt")
}

#[actix_rt::test]
async fn a_sent_message_is_followed_to_read() {
    let receipts = Receipts::default();
    let kit = TestKit::new(answering(receipts.clone()));
    assert!(kit
        .dispatcher()
        .router()
        .subscriptions(eventsock::core::Protocol::Legacy)
        .unwrap()
        .iter()
        .any(|(_, e)| e.as_str() == "messages.update"));
    let chat = kit.chat("5511988887777");
    chat.says("hello").await;
    assert_eq!(chat.replies().await, ["noted"]);
    let mut receipt = last(&receipts);
    receipt.sent().await.expect("sent");
    // The simulator acknowledged the send as the server does: sent, then delivered.
    assert_eq!(
        receipt.delivered(Duration::from_secs(5)).await.unwrap(),
        Delivery::Delivered
    );
    // Not read yet: waiting for it times out on the virtual clock, and says what came last.
    let early = receipt.read(Duration::from_secs(60)).await;
    assert!(
        matches!(
            early,
            Err(DeliveryError::Timeout {
                last: Some(Delivery::Delivered),
                ..
            })
        ),
        "{early:?}"
    );
    // The recipient reads it.
    assert!(kit.sim().receipt(kit.instance(), receipt.id(), "READ"));
    kit.settle().await;
    assert_eq!(
        receipt.read(Duration::from_secs(5)).await.unwrap(),
        Delivery::Read
    );
    assert_eq!(receipt.status(), Some(Delivery::Read));

    let stats = kit.dispatcher().outboxes()[0].stats().delivery;
    assert_eq!(
        Delivery::ALL.map(|s| stats.count(s)),
        [0, 0, 1, 1, 1, 0],
        "one SERVER_ACK, one DELIVERY_ACK, one READ"
    );
    assert_eq!(stats.to_delivered.count, 1);
}

#[actix_rt::test]
async fn a_message_whatsapp_could_not_deliver_fails_its_receipt() {
    let receipts = Receipts::default();
    let kit = TestKit::new(answering(receipts.clone()));
    kit.chat("5511988887777").says("hello").await;
    let mut receipt = last(&receipts);
    assert!(kit.sim().receipt(kit.instance(), receipt.id(), "ERROR"));
    kit.settle().await;
    let failed = receipt.read(Duration::from_secs(5)).await;
    assert!(matches!(failed, Err(DeliveryError::Failed)), "{failed:?}");
    let stats = kit.dispatcher().outboxes()[0].stats().delivery;
    assert_eq!(stats.count(Delivery::Error), 1);
}
