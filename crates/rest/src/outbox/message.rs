//! What goes into an outbox: [`Outgoing`] and its [`Action`], and the ids messages carry.

use crate::{MessageKey, Quote};

/// A message for an [`Outbox`](super::Outbox): a text to a chat with its own WhatsApp id, or a reaction or a
/// read receipt for a message of the chat ([`Action`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Outgoing {
    /// The chat: a JID or a phone number.
    pub to: String,
    /// The text (for a reaction, its emoji; empty removes it).
    pub text: String,
    /// What it asks the server for: a text message unless said otherwise.
    #[serde(default, skip_serializing_if = "Action::is_text")]
    pub action: Action,
    /// The message to quote.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quote: Option<Quote>,
    /// The message's WhatsApp id, sent as the server's `options.messageId`: the same on every
    /// attempt, so that the message can be looked up after an answer was lost. (A reaction or a
    /// read receipt is not given an id by the server's API: the outbox knows it by this one.)
    pub id: String,
    /// Who the chat is, when `to` is another of their ids (a LID whose number is known, see
    /// [`eventsock_core::identity`]): the outbox queues and paces the message with the
    /// person's others. A handler's context sets it; it travels with the message through a
    /// JetStream outbox, whose sender sees no events to learn it from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub person: Option<String>,
}

/// What an [`Outgoing`] asks the server for. A text is sent with its own id and looked up when
/// its answer is lost, so that it is never sent twice; a reaction or a read receipt, which the
/// server takes without an id, is tried again instead (setting the same reaction twice, or
/// marking a message read twice, changes nothing).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Action {
    /// A text message (`POST /message/sendText`): paced, with typing when asked.
    #[default]
    Text,
    /// A reaction to the message `key` with the emoji in [`Outgoing::text`]
    /// (`POST /message/sendReaction`): paced like a text, with no typing.
    Reaction {
        /// The message reacted to.
        key: MessageKey,
    },
    /// A read receipt for the message `key` (`PUT /chat/markMessageAsRead`): in the chat's
    /// order, but neither paced nor counted against the daily cap (it sends nothing to anyone).
    Read {
        /// The message marked read.
        key: MessageKey,
    },
}

impl Action {
    /// Whether it is a text message.
    pub fn is_text(&self) -> bool {
        matches!(self, Action::Text)
    }

    /// Whether it is paced: takes a turn of the rate, waits its chat's interval after it, and
    /// counts against the daily cap.
    pub(super) fn is_paced(&self) -> bool {
        !matches!(self, Action::Read { .. })
    }
}

impl Outgoing {
    /// A text to `to`, with a new id.
    pub fn text(to: impl Into<String>, text: impl Into<String>) -> Outgoing {
        Outgoing {
            to: to.into(),
            text: text.into(),
            action: Action::Text,
            quote: None,
            id: new_message_id(),
            person: None,
        }
    }

    /// A reaction with `emoji` (empty removes it) to the message `key`, in its chat.
    pub fn reaction(key: MessageKey, emoji: impl Into<String>) -> Outgoing {
        Outgoing {
            to: key.remote_jid.clone(),
            text: emoji.into(),
            action: Action::Reaction { key },
            quote: None,
            id: new_message_id(),
            person: None,
        }
    }

    /// A read receipt for the message `key`, in its chat.
    pub fn read(key: MessageKey) -> Outgoing {
        Outgoing {
            to: key.remote_jid.clone(),
            text: String::new(),
            action: Action::Read { key },
            quote: None,
            id: new_message_id(),
            person: None,
        }
    }

    /// The same message, quoting `quote` (a received message's
    /// [`quote`](eventsock_core::MessageLike::quote), or a saved message's row id). A quote the
    /// server refuses (a row it cannot find, or a server that keeps no rows) is dropped, and
    /// the message sent unquoted.
    pub fn quoting(mut self, quote: impl Into<Quote>) -> Outgoing {
        self.quote = Some(quote.into());
        self
    }

    /// The same message for `person` (see [`Outgoing::person`]); `to` itself sets none.
    pub fn for_person(mut self, person: impl Into<String>) -> Outgoing {
        let person = person.into();
        self.person = (person != self.to).then_some(person);
        self
    }

    /// The same message with the id `id` (which must be unique: a message whose id was sent
    /// before counts as sent).
    pub fn with_id(mut self, id: impl Into<String>) -> Outgoing {
        self.id = id.into();
        self
    }
}

/// A new WhatsApp message id, in the form WhatsApp Web uses: `3EB0` and 20 hex digits.
pub fn new_message_id() -> String {
    format!("3EB0{:016X}{:04X}", fastrand::u64(..), fastrand::u16(..))
}

/// A message id derived from `seed` and `n`, in the same form as [`new_message_id`]: the same
/// inputs give the same id, in any process (FNV-1a, not the standard library's hasher, whose
/// output may change between Rust versions).
pub fn derived_message_id(seed: &str, n: u32) -> String {
    let (a, b) = (
        fnv(seed, n, eventsock_core::FNV_BASIS),
        fnv(seed, n, 0x8422_2325_cbf2_9ce4),
    );
    format!("3EB0{a:016X}{:04X}", b & 0xffff)
}

/// FNV-1a over `seed` and `n`, from `basis`: the same in every process and Rust version.
pub(super) fn fnv(seed: &str, n: u32, basis: u64) -> u64 {
    eventsock_core::fnv1a(basis, seed.bytes().chain(n.to_le_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_ids_are_stable_and_differ_by_seed_and_order() {
        let a = derived_message_id("codechat\u{0}M1\u{0}h#0", 0);
        assert_eq!(a, derived_message_id("codechat\u{0}M1\u{0}h#0", 0));
        assert_ne!(a, derived_message_id("codechat\u{0}M1\u{0}h#0", 1));
        assert_ne!(a, derived_message_id("codechat\u{0}M1\u{0}h#1", 0));
        assert_eq!(a.len(), 24);
        assert!(a.starts_with("3EB0") && a.chars().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn message_ids_look_like_whatsapp_web_ids_and_differ() {
        let a = new_message_id();
        assert_eq!(a.len(), 24);
        assert!(a.starts_with("3EB0"));
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, new_message_id());
    }
}
