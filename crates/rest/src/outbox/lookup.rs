//! Whether a message whose answer was lost is on the server: one `findMessages` by its id; on
//! Evolution API, which takes no id of the sender's, by its chat, its text and its time.

use super::Outgoing;
use crate::{RestClient, RestError};
use eventsock_core::Protocol;
use serde_json::{json, Value};
use std::time::{Duration, SystemTime};

/// How far around the first send an Evolution lookup looks: the server stamps a message when
/// WhatsApp takes it, a little after the call began, and clocks differ.
const WINDOW: Duration = Duration::from_secs(120);

/// What looking a message up found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Looked {
    /// It is on the server: it was sent.
    Found,
    /// It is not, on a server that keeps what it sends: it was not sent.
    Absent,
    /// It is not, on a server that keeps nothing: whether it was sent cannot be told.
    Unknowable,
}

/// Whether message `id` is on the server, which tells only on a server that keeps what it sends
/// (`known`: whether it does, when already learnt; otherwise it is asked whether it has any
/// message this instance sent).
pub(super) async fn look_up(
    rest: &RestClient,
    message: &Outgoing,
    since: Option<SystemTime>,
    known: Option<bool>,
) -> Result<Looked, RestError> {
    let evolution = rest.server_protocol() == Protocol::Evolution;
    let found = match evolution {
        false => {
            let id = message.id.as_str();
            let found = rest.find_messages_page(json!({"keyId": id}), 10, 1).await?;
            found
                .records
                .iter()
                .any(|r| r.get("keyId").and_then(Value::as_str) == Some(id))
        }
        true => sent_alike(rest, message, since).await?,
    };
    if found {
        return Ok(Looked::Found);
    }
    let keeps = match known {
        Some(keeps) => keeps,
        None => {
            let mine = match evolution {
                true => json!({"key": {"fromMe": true}}),
                false => json!({"keyFromMe": true}),
            };
            !rest
                .find_messages_page(mine, 1, 1)
                .await?
                .records
                .is_empty()
        }
    };
    Ok(if keeps {
        Looked::Absent
    } else {
        Looked::Unknowable
    })
}

/// Evolution API: whether this instance sent a message of the same text to the same chat
/// within [`WINDOW`] of the first send. Its own earlier message of the same text there counts
/// too: then the message is taken as sent and not sent again (at most once, never twice).
async fn sent_alike(
    rest: &RestClient,
    message: &Outgoing,
    since: Option<SystemTime>,
) -> Result<bool, RestError> {
    let since = since.unwrap_or_else(eventsock_core::clock::now);
    let iso = |t: SystemTime| eventsock_core::wire::Timestamp::from(t).to_rfc3339();
    let filter = json!({
        "key": {"fromMe": true},
        "messageTimestamp": {
            "gte": iso(since.checked_sub(WINDOW).unwrap_or(since)),
            "lte": iso(eventsock_core::clock::now() + WINDOW),
        },
    });
    let found = rest.find_messages_page(filter, 50, 1).await?;
    Ok(found.records.iter().any(|r| {
        let text = r["message"]["conversation"]
            .as_str()
            .or(r["message"]["extendedTextMessage"]["text"].as_str());
        let chat = r["key"]["remoteJid"].as_str().unwrap_or_default();
        text == Some(message.text.as_str()) && same_chat(&message.to, chat)
    }))
}

/// Whether `to` (a JID or a phone number, as a bot gives it) names the chat `jid`: the same
/// user, or a Brazilian mobile number written with the ninth digit the server drops.
fn same_chat(to: &str, jid: &str) -> bool {
    let user = |s: &str| s.split('@').next().unwrap_or_default().to_owned();
    let (to, jid) = (user(to), user(jid));
    if to == jid {
        return true;
    }
    to.len() == 13
        && to.starts_with("55")
        && jid.len() == 12
        && jid == format!("{}{}", &to[..4], &to[5..])
}

#[cfg(test)]
mod tests {
    use super::same_chat;

    #[test]
    fn a_number_names_its_chat() {
        assert!(same_chat("5511988887777", "5511988887777@s.whatsapp.net"));
        assert!(same_chat("5531988887777", "553188887777@s.whatsapp.net"));
        assert!(same_chat("120363@g.us", "120363@g.us"));
        assert!(!same_chat("5511988887777", "5511988887778@s.whatsapp.net"));
    }
}
