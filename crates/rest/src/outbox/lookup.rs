//! Whether a message whose answer was lost is on the server: one `findMessages` by its id; on
//! Evolution API, which takes no id of the sender's, by its chat, its text and its time.

use super::Outgoing;
use crate::{FoundPage, RestClient, RestError};
use eventsock_core::Protocol;
use serde_json::json;
use std::time::{Duration, SystemTime};

/// How far around the first send an Evolution lookup looks: the server stamps a message when
/// WhatsApp takes it, a little after the call began, and clocks differ.
const WINDOW: Duration = Duration::from_secs(120);

/// What looking a message up found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Looked {
    /// It is on the server: it was sent (with the id the server gave it, when not the
    /// outbox's own).
    Found(Option<String>),
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
            let found = rest.find_message(id).await?;
            let on_server = found
                .records
                .iter()
                .any(|r| FoundPage::message_id(r) == Some(id));
            on_server.then_some(None)
        }
        true => match sent_alike(rest, message, since).await? {
            Alike::Found(id) => Some(id),
            Alike::Absent => None,
            // More of its own messages in the window than one read holds: whether this one
            // is among the rest cannot be told, and sending it again could send it twice.
            Alike::TooMany => return Ok(Looked::Unknowable),
        },
    };
    if let Some(id) = found {
        return Ok(Looked::Found(id));
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

/// How many records of the window an Evolution lookup reads, in one request (one sort on the
/// server: pages read apart could each order the messages of one second otherwise, and one
/// fall between them).
const MOST: u32 = 1_000;

/// What an Evolution lookup found.
enum Alike {
    /// A message of the same text to the same chat, with the id the server gave it.
    Found(Option<String>),
    /// None, among every message this instance sent in the window.
    Absent,
    /// None among the [`MOST`] read, and there were more.
    TooMany,
}

/// Evolution API: a message this instance sent to the same chat with the same text within
/// [`WINDOW`] of the first send, if there is one. Its own earlier message of the same text
/// there counts too: then the message is taken as sent and not sent again (at most once, never
/// twice).
async fn sent_alike(
    rest: &RestClient,
    message: &Outgoing,
    since: Option<SystemTime>,
) -> Result<Alike, RestError> {
    let since = since.unwrap_or_else(eventsock_core::clock::now);
    let iso = |t: SystemTime| eventsock_core::wire::Timestamp::from(t).to_rfc3339();
    let filter = json!({
        "key": {"fromMe": true},
        "messageTimestamp": {
            "gte": iso(since.checked_sub(WINDOW).unwrap_or(since)),
            "lte": iso(eventsock_core::clock::now() + WINDOW),
        },
    });
    let found = rest.find_messages_page(filter, MOST, 1).await?;
    let alike = found.records.iter().find(|r| {
        let text = r["message"]["conversation"]
            .as_str()
            .or(r["message"]["extendedTextMessage"]["text"].as_str());
        let key = &r["key"];
        let chats = [key["remoteJid"].as_str(), key["remoteJidAlt"].as_str()];
        text == Some(message.text.as_str())
            && chats.into_iter().flatten().any(|chat| {
                same_chat(&message.to, chat)
                    || message
                        .person
                        .as_deref()
                        .is_some_and(|p| same_chat(p, chat))
            })
    });
    Ok(match alike {
        Some(record) => Alike::Found(
            FoundPage::message_id(record)
                .filter(|id| !id.is_empty())
                .map(str::to_owned),
        ),
        None if found.records.len() >= MOST as usize => Alike::TooMany,
        None => Alike::Absent,
    })
}

/// Whether `to` (a JID or a phone number, as a bot gives it) names the chat `jid`: the same
/// user once a number is written as the server writes it (digits only: no `+`, spaces,
/// brackets or dashes), or a Brazilian mobile number with or without the ninth digit the server
/// adds or drops.
fn same_chat(to: &str, jid: &str) -> bool {
    let user = |s: &str| s.split('@').next().unwrap_or_default().to_owned();
    let jid = user(jid);
    let to = match to.contains('@') {
        true => user(to),
        false => to.chars().filter(char::is_ascii_digit).collect(),
    };
    if to == jid {
        return true;
    }
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    // Country 55, two digits of area, then 9 and eight digits, or the eight alone.
    let without_nine = |long: &str| format!("{}{}", &long[..4], &long[5..]);
    let brazilian = |long: &str, short: &str| {
        long.len() == 13
            && short.len() == 12
            && digits(long)
            && digits(short)
            && long.starts_with("55")
            && long.as_bytes()[4] == b'9'
            && short == without_nine(long)
    };
    brazilian(&to, &jid) || brazilian(&jid, &to)
}

#[cfg(test)]
mod tests {
    use super::same_chat;

    #[test]
    fn a_number_names_its_chat() {
        assert!(same_chat("5511988887777", "5511988887777@s.whatsapp.net"));
        assert!(same_chat(
            "+55 (11) 98888-7777",
            "5511988887777@s.whatsapp.net"
        ));
        assert!(same_chat("5531988887777", "553188887777@s.whatsapp.net"));
        assert!(same_chat("553188887777", "5531988887777@s.whatsapp.net"));
        assert!(same_chat("120363@g.us", "120363@g.us"));
        assert!(!same_chat("5511988887777", "5511988887778@s.whatsapp.net"));
        // Not a ninth digit: 8 where the 9 would be.
        assert!(!same_chat("5531888887777", "553188887777@s.whatsapp.net"));
        // Multibyte text where digits would be: no panic, no match.
        assert!(!same_chat("55é88887777@x", "553188887777@s.whatsapp.net"));
        assert!(!same_chat(
            "55\u{e9}\u{e9}8887777",
            "553188887777@s.whatsapp.net"
        ));
    }
}
