//! A map from envelope ids to values that expire at a unix second, with an
//! index by expiry: the shape of the relay seen set and of the delivered-id
//! set. It does not bound itself or decide what happens when full; its
//! users do (the seen set forgets the soonest-expiring id, the delivered
//! set refuses new entries).

use std::collections::{BTreeMap, BTreeSet};

use crate::envelope::EnvelopeId;

#[derive(Debug)]
pub struct ExpiringMap<V> {
    ids: BTreeMap<EnvelopeId, (u64, V)>,
    by_expiry: BTreeSet<(u64, EnvelopeId)>,
}

impl<V> Default for ExpiringMap<V> {
    fn default() -> Self {
        ExpiringMap { ids: BTreeMap::new(), by_expiry: BTreeSet::new() }
    }
}

impl<V> ExpiringMap<V> {
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    pub fn contains(&self, id: &EnvelopeId) -> bool {
        self.ids.contains_key(id)
    }

    pub fn get(&self, id: &EnvelopeId) -> Option<&V> {
        self.ids.get(id).map(|(_, v)| v)
    }

    pub fn get_mut(&mut self, id: &EnvelopeId) -> Option<&mut V> {
        self.ids.get_mut(id).map(|(_, v)| v)
    }

    /// Inserts or replaces the entry for `id`, expiring at `expires`.
    pub fn insert(&mut self, id: EnvelopeId, expires: u64, v: V) {
        if let Some((old, _)) = self.ids.insert(id, (expires, v)) {
            self.by_expiry.remove(&(old, id));
        }
        self.by_expiry.insert((expires, id));
    }

    pub fn remove(&mut self, id: &EnvelopeId) -> Option<V> {
        let (t, v) = self.ids.remove(id)?;
        self.by_expiry.remove(&(t, *id));
        Some(v)
    }

    /// Removes the entry that expires soonest.
    pub fn pop_soonest(&mut self) -> Option<(EnvelopeId, V)> {
        let (_, id) = self.by_expiry.pop_first()?;
        self.ids.remove(&id).map(|(_, v)| (id, v))
    }

    /// Removes every entry that expired at or before `now`.
    pub fn expire(&mut self, now: u64) {
        while let Some(&(t, _)) = self.by_expiry.first() {
            if t > now {
                break;
            }
            self.pop_soonest();
        }
    }

    /// The soonest expiry, for timers.
    pub fn next_expiry(&self) -> Option<u64> {
        self.by_expiry.first().map(|(t, _)| *t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_index_follows_inserts_replacements_and_removals() {
        let mut m = ExpiringMap::default();
        let id = |i: u8| EnvelopeId([i; 16]);
        m.insert(id(1), 30, "a");
        m.insert(id(2), 10, "b");
        m.insert(id(1), 5, "a2");
        assert_eq!(m.next_expiry(), Some(5), "a replacement moves the entry in the index");
        assert_eq!(m.pop_soonest(), Some((id(1), "a2")));
        m.insert(id(3), 20, "c");
        assert_eq!(m.remove(&id(3)), Some("c"));
        m.expire(10);
        assert!(m.is_empty() && m.next_expiry().is_none());
    }
}
