//! [`Recent`]: the one bounded memory of keys seen lately (message ids sent, delivered, handled).

use std::collections::{HashMap, VecDeque};

/// Keys remembered in the order they were first seen, each with a value, at most `capacity` of
/// them: past that the oldest are forgotten, so memory stays bounded under any rate.
#[derive(Debug, Clone)]
pub struct Recent<V = ()> {
    values: HashMap<String, V>,
    order: VecDeque<String>,
    capacity: usize,
}

impl<V> Recent<V> {
    /// Remembers at most `capacity` keys (at least one).
    pub fn new(capacity: usize) -> Recent<V> {
        Recent {
            values: HashMap::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    /// Remembers `key` with `value`: true when it was not remembered yet. A key remembered
    /// already gets the new value and keeps its place; a new one may make the oldest forgotten.
    pub fn insert(&mut self, key: String, value: V) -> bool {
        if let Some(old) = self.values.get_mut(&key) {
            *old = value;
            return false;
        }
        while self.order.len() >= self.capacity {
            self.forget_oldest();
        }
        self.order.push_back(key.clone());
        self.values.insert(key, value);
        true
    }

    /// The value remembered with `key`.
    pub fn get(&self, key: &str) -> Option<&V> {
        self.values.get(key)
    }

    /// Whether `key` is remembered.
    pub fn contains(&self, key: &str) -> bool {
        self.values.contains_key(key)
    }

    /// The oldest key and its value.
    pub fn oldest(&self) -> Option<(&str, &V)> {
        let key = self.order.front()?;
        Some((key, self.values.get(key)?))
    }

    /// Forgets the oldest key; returns it with its value.
    pub fn forget_oldest(&mut self) -> Option<(String, V)> {
        let key = self.order.pop_front()?;
        let value = self.values.remove(&key)?;
        Some((key, value))
    }

    /// The keys and values, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &V)> {
        self.order
            .iter()
            .filter_map(|k| Some((k.as_str(), self.values.get(k)?)))
    }

    /// How many keys are remembered.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
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
}
