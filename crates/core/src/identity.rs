//! One chat identity across a person's two ids: their phone-number JID
//! (`5511988887777@s.whatsapp.net`) and their LID (`123456789012345@lid`).
//!
//! Since 2025 WhatsApp moves chats from phone numbers to LIDs: the same person can reach a bot
//! under either, and the server names a message's chat by whichever it knows (`keyRemoteJid`,
//! the phone number, when it knows it; `keyLid` alongside it, or alone for a LID-only chat).
//! [`Identities`] learns the pairs from the messages that carry both, and answers one identity
//! for either id: **the phone-number JID once the pair is known, else the id the message gave**.
//! Conversation state, per-chat pacing and order, and NATS partitions are keyed by it.
//!
//! Before a pair is known, a LID-only message is its own identity (its LID): a chat that first
//! writes by LID only and later by phone number starts over under the phone number. A chat
//! that writes by phone number first (the usual way, and the way a chat moves to a LID) keeps
//! its identity: the messages that move it carry both ids, and from then on the LID alone
//! resolves to the number.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

/// How many pairs an [`Identities`] keeps: past this, the oldest is forgotten.
pub const PAIRS: usize = 1_000_000;

/// Whether `jid` is a person's phone-number JID: 5 to 20 digits `@s.whatsapp.net` (ids of
/// other shapes, which a server could make as long as it likes, are never paired).
pub fn is_phone(jid: &str) -> bool {
    jid.strip_suffix("@s.whatsapp.net")
        .is_some_and(|n| digits(n, 5..=20))
}

/// Whether `jid` is a LID: 1 to 20 digits `@lid`.
pub fn is_lid(jid: &str) -> bool {
    jid.strip_suffix("@lid").is_some_and(|n| digits(n, 1..=20))
}

fn digits(n: &str, len: std::ops::RangeInclusive<usize>) -> bool {
    len.contains(&n.len()) && n.bytes().all(|b| b.is_ascii_digit())
}

/// The (phone-number JID, LID) pair a message's chat fields carry, when they carry both:
/// `keyRemoteJid` a phone number and `keyLid` a LID.
pub fn pair<'a>(jid: Option<&'a str>, lid: Option<&'a str>) -> Option<(&'a str, &'a str)> {
    match (jid, lid) {
        (Some(j), Some(l)) if is_phone(j) && is_lid(l) => Some((j, l)),
        _ => None,
    }
}

/// The phone-number ↔ LID pairs learnt so far (see the [module](self)). Shared by a run's
/// dispatcher, its outboxes and its dialogues; cheap to read, locked briefly to learn. A pair
/// learnt already (every message of a chat after its first) is confirmed without the lock
/// while the book has not changed (see [`Identities::learn`]).
#[derive(Debug)]
pub struct Identities {
    book: RwLock<Book>,
    /// Which book this is, for the threads' memories of it.
    id: u64,
    /// Changes of the book so far, counted under its write lock.
    changes: AtomicU64,
}

impl Default for Identities {
    fn default() -> Identities {
        static BOOKS: AtomicU64 = AtomicU64::new(0);
        Identities {
            book: RwLock::default(),
            id: BOOKS.fetch_add(1, Ordering::Relaxed),
            changes: AtomicU64::new(0),
        }
    }
}

/// Pairs this thread found in one book, valid while that book has not changed since.
struct Confirmed {
    book: u64,
    changes: u64,
    /// LID → phone-number JID, at most [`CONFIRMED`] of them.
    pairs: HashMap<Box<str>, Box<str>>,
}

/// How many confirmed pairs a thread remembers (it forgets them all past this).
const CONFIRMED: usize = 256;

thread_local! {
    static CONFIRMED_PAIRS: RefCell<Confirmed> = RefCell::new(Confirmed {
        book: u64::MAX,
        changes: 0,
        pairs: HashMap::new(),
    });
}

#[derive(Debug, Default)]
struct Book {
    /// LID → phone-number JID.
    phone_of: HashMap<Arc<str>, Arc<str>>,
    /// Phone-number JID → LID.
    lid_of: HashMap<Arc<str>, Arc<str>>,
    /// LIDs, oldest first, to forget past [`PAIRS`].
    order: VecDeque<Arc<str>>,
}

impl Identities {
    /// An empty book.
    pub fn new() -> Identities {
        Identities::default()
    }

    /// Learns that `phone` (a phone-number JID) and `lid` are one person. Returns whether it
    /// was new. A pair replaces the earlier pairs of either id (a number given to someone
    /// else, a LID paired anew). Ids of the wrong shape are ignored.
    ///
    /// A pair this thread found in the book before, with no change to the book since, is
    /// confirmed without taking the book's lock (the common case: every message of a chat after
    /// its first carries the same pair).
    pub fn learn(&self, phone: &str, lid: &str) -> bool {
        if !is_phone(phone) || !is_lid(lid) {
            return false;
        }
        let changes = self.changes.load(Ordering::Acquire);
        if self.confirmed(phone, lid, changes) {
            return false;
        }
        // Known already: one read, nothing copied; remembered for the next time.
        if self
            .book
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .phone_of
            .get(lid)
            .is_some_and(|known| **known == *phone)
        {
            self.remember(phone, lid, changes);
            return false;
        }
        let mut book = self.book.write().unwrap_or_else(|e| e.into_inner());
        self.changes.fetch_add(1, Ordering::AcqRel);
        let (phone, lid): (Arc<str>, Arc<str>) = (phone.into(), lid.into());
        match book.phone_of.insert(lid.clone(), phone.clone()) {
            // The LID had another number: that number's LID is no longer this one.
            Some(old) => {
                if book.lid_of.get(&old) == Some(&lid) {
                    book.lid_of.remove(&old);
                }
            }
            None => book.order.push_back(lid.clone()),
        }
        // The number had another LID: that LID is no longer this number's.
        if let Some(old) = book.lid_of.insert(phone, lid.clone()) {
            if old != lid {
                book.phone_of.remove(&old);
            }
        }
        while book.order.len() > PAIRS {
            let Some(oldest) = book.order.pop_front() else {
                break;
            };
            if let Some(phone) = book.phone_of.remove(&oldest) {
                if book.lid_of.get(&phone) == Some(&oldest) {
                    book.lid_of.remove(&phone);
                }
            }
        }
        true
    }

    /// Whether this thread found `phone` and `lid` paired in this book with `changes` changes,
    /// and the book still has as many.
    fn confirmed(&self, phone: &str, lid: &str, changes: u64) -> bool {
        // (A thread's memory is gone while it ends: then the book is read, under its lock.)
        CONFIRMED_PAIRS
            .try_with(|c| {
                let c = c.borrow();
                c.book == self.id
                    && c.changes == changes
                    && c.pairs.get(lid).is_some_and(|p| **p == *phone)
            })
            .unwrap_or(false)
    }

    /// Remembers that this thread found `phone` and `lid` paired in this book with `changes`
    /// changes (read before the book was).
    fn remember(&self, phone: &str, lid: &str, changes: u64) {
        let _ = CONFIRMED_PAIRS.try_with(|c| {
            let mut c = c.borrow_mut();
            if c.book != self.id || c.changes != changes || c.pairs.len() >= CONFIRMED {
                c.book = self.id;
                c.changes = changes;
                c.pairs.clear();
            }
            c.pairs.insert(lid.into(), phone.into());
        });
    }

    /// The phone-number JID paired with `lid`, if known.
    pub fn phone_of(&self, lid: &str) -> Option<Arc<str>> {
        let book = self.book.read().unwrap_or_else(|e| e.into_inner());
        book.phone_of.get(lid).cloned()
    }

    /// The LID paired with `phone`, if known.
    pub fn lid_of(&self, phone: &str) -> Option<Arc<str>> {
        let book = self.book.read().unwrap_or_else(|e| e.into_inner());
        book.lid_of.get(phone).cloned()
    }

    /// The identity of chat `chat`: the phone-number JID paired with it when it is a LID whose
    /// pair is known, else `chat` itself (a phone number, a group, a LID not paired yet).
    pub fn identity<'a>(&self, chat: &'a str) -> Cow<'a, str> {
        if is_lid(chat) {
            if let Some(phone) = self.phone_of(chat) {
                return Cow::Owned(phone.to_string());
            }
        }
        Cow::Borrowed(chat)
    }

    /// Pairs known.
    pub fn len(&self) -> usize {
        let book = self.book.read().unwrap_or_else(|e| e.into_inner());
        book.phone_of.len()
    }

    /// Whether no pair is known.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PHONE: &str = "5511988887777@s.whatsapp.net";
    const LID: &str = "123456789012345@lid";

    /// A LID resolves to its number once the pair is learnt; a number, a group and an unpaired
    /// LID are their own identity; a LID paired anew moves to the new number.
    #[test]
    fn a_lid_resolves_to_its_number_once_paired() {
        let ids = Identities::new();
        assert_eq!(ids.identity(LID), LID);
        assert!(ids.learn(PHONE, LID));
        assert!(!ids.learn(PHONE, LID), "known already");
        assert_eq!(ids.identity(LID), PHONE);
        assert_eq!(ids.identity(PHONE), PHONE);
        assert_eq!(ids.identity("120363@g.us"), "120363@g.us");
        assert_eq!(ids.lid_of(PHONE).as_deref(), Some(LID));
        assert!(!ids.learn(LID, PHONE), "ids of the wrong kind");
        assert!(ids.learn("5511977776666@s.whatsapp.net", LID));
        assert_eq!(ids.identity(LID), "5511977776666@s.whatsapp.net");
        assert_eq!(ids.lid_of(PHONE), None);
        assert_eq!(ids.len(), 1);
        // The number given to someone else, with their LID: the old LID is no longer it.
        assert!(ids.learn("5511977776666@s.whatsapp.net", "999@lid"));
        assert_eq!(ids.identity(LID), LID);
        assert_eq!(ids.identity("999@lid"), "5511977776666@s.whatsapp.net");
        assert_eq!(ids.len(), 1);
        assert_eq!(pair(Some(PHONE), Some(LID)), Some((PHONE, LID)));
        assert_eq!(pair(Some(LID), None), None);
        assert_eq!(pair(Some("1@g.us"), Some(LID)), None);
    }

    /// A pair confirmed from this thread's memory is never one the book no longer holds: a
    /// change of the book (another pair for the LID) makes the thread look again.
    #[test]
    fn a_pair_confirmed_without_the_lock_follows_the_book() {
        let ids = Identities::new();
        let other = "5511977776666@s.whatsapp.net";
        assert!(ids.learn(PHONE, LID));
        assert!(!ids.learn(PHONE, LID), "found in the book, remembered");
        assert!(!ids.learn(PHONE, LID), "confirmed from memory");
        assert!(ids.learn(other, LID), "paired anew");
        assert!(
            ids.learn(PHONE, LID),
            "the old pair is new again, not remembered"
        );
        assert_eq!(ids.identity(LID), PHONE);
        // Another book on the same thread does not borrow this one's memory.
        let second = Identities::new();
        assert!(second.learn(PHONE, LID));
        assert!(!ids.learn(PHONE, LID));
        assert!(!second.learn(PHONE, LID));
    }

    /// Ids a server could make as long as it likes are never paired.
    #[test]
    fn only_ids_of_their_shape_are_paired() {
        let ids = Identities::new();
        let long = format!("{}@lid", "1".repeat(10_000));
        assert!(!ids.learn(PHONE, &long));
        assert!(!ids.learn("abc@s.whatsapp.net", LID));
        assert!(
            !ids.learn("1234@s.whatsapp.net", LID),
            "too short for a number"
        );
        assert!(ids.is_empty());
        assert!(is_phone(PHONE) && is_lid(LID) && !is_lid("@lid"));
    }
}
