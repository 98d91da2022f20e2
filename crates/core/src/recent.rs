//! [`Recent`]: the one bounded memory of keys seen lately (message ids sent, delivered, handled).

use std::collections::{HashMap, VecDeque};

/// Keys remembered in the order they were first seen, each with a value, at most `capacity` of
/// them: past that the oldest are forgotten, so memory stays bounded under any rate. A key
/// removed ([`Recent::remove`]) keeps its place in the order until it comes up, so that
/// removing costs no search: the memory holds the last `capacity` keys inserted, at most.
#[derive(Debug, Clone)]
pub struct Recent<V = ()> {
    /// Each key's value, with the insertion it came from.
    values: HashMap<String, (u64, V)>,
    /// Keys in the order they were inserted, each with its insertion: a key removed and
    /// inserted again has two places, and only the one of its insertion is live.
    order: VecDeque<(String, u64)>,
    capacity: usize,
    insertions: u64,
}

impl<V> Recent<V> {
    /// Remembers at most `capacity` keys (at least one).
    pub fn new(capacity: usize) -> Recent<V> {
        Recent {
            values: HashMap::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
            insertions: 0,
        }
    }

    /// Remembers `key` with `value`: true when it was not remembered yet. A key remembered
    /// already gets the new value and keeps its place; a new one may make the oldest forgotten.
    pub fn insert(&mut self, key: String, value: V) -> bool {
        if let Some((_, old)) = self.values.get_mut(&key) {
            *old = value;
            return false;
        }
        // The oldest place goes, a removed key's or a live one's.
        while self.order.len() >= self.capacity {
            self.pop_place();
        }
        self.insertions += 1;
        self.order.push_back((key.clone(), self.insertions));
        self.values.insert(key, (self.insertions, value));
        true
    }

    /// The value remembered with `key`.
    pub fn get(&self, key: &str) -> Option<&V> {
        self.values.get(key).map(|(_, v)| v)
    }

    /// The value remembered with `key`, to change it.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut V> {
        self.values.get_mut(key).map(|(_, v)| v)
    }

    /// Whether `key` is remembered.
    pub fn contains(&self, key: &str) -> bool {
        self.values.contains_key(key)
    }

    /// Forgets `key` now; returns its value.
    pub fn remove(&mut self, key: &str) -> Option<V> {
        self.values.remove(key).map(|(_, v)| v)
    }

    /// The oldest key and its value.
    pub fn oldest(&self) -> Option<(&str, &V)> {
        self.iter().next()
    }

    /// Forgets the oldest key; returns it with its value.
    pub fn forget_oldest(&mut self) -> Option<(String, V)> {
        while !self.order.is_empty() {
            if let Some(forgotten) = self.pop_place() {
                return Some(forgotten);
            }
        }
        None
    }

    /// Drops the oldest place in the order, with its key when it is that key's live place.
    fn pop_place(&mut self) -> Option<(String, V)> {
        let (key, insertion) = self.order.pop_front()?;
        if self.values.get(&key).is_none_or(|(i, _)| *i != insertion) {
            return None;
        }
        let (_, value) = self.values.remove(&key)?;
        Some((key, value))
    }

    /// The keys and values, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &V)> {
        self.order.iter().filter_map(|(k, insertion)| {
            let (i, v) = self.values.get(k)?;
            (i == insertion).then_some((k.as_str(), v))
        })
    }

    /// How many keys are remembered.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// How many keys it remembers at most.
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_in_order_and_forgets_the_oldest_past_capacity() {
        let mut r = Recent::new(3);
        assert!(r.insert("a".into(), 1));
        assert!(!r.insert("a".into(), 2), "seen already");
        assert_eq!(r.get("a"), Some(&2), "the new value, the same place");
        for k in ["b", "c", "d"] {
            assert!(r.insert(k.into(), 0));
        }
        assert!(!r.contains("a"), "forgotten to make room");
        assert_eq!(
            r.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            ["b", "c", "d"]
        );
        assert_eq!(r.forget_oldest(), Some(("b".to_owned(), 0)));
        assert_eq!((r.len(), r.oldest()), (2, Some(("c", &0))));
        assert_eq!(Recent::<()>::new(0).capacity(), 1);
    }

    /// A key removed is gone at once; inserted again, it is remembered from its new place,
    /// which its old place, coming up, does not forget.
    #[test]
    fn a_key_removed_and_inserted_again_lives_from_its_new_place() {
        let mut r = Recent::new(3);
        r.insert("a".into(), 1);
        assert_eq!(r.remove("a"), Some(1));
        assert!(!r.contains("a"));
        assert!(r.insert("a".into(), 2), "new again");
        r.insert("b".into(), 0);
        // The order holds a (removed), a, b: one more insertion drops the stale place only.
        r.insert("c".into(), 0);
        assert_eq!(r.get("a"), Some(&2));
        assert_eq!(
            r.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            ["a", "b", "c"]
        );
        *r.get_mut("b").unwrap() = 7;
        assert_eq!(r.forget_oldest(), Some(("a".to_owned(), 2)));
        assert_eq!((r.len(), r.oldest()), (2, Some(("b", &7))));
    }
}
