//! The card book: the public keys (cards) of the nodes this node has heard
//! of, bounded by a capacity. When it is full, the card heard from least
//! recently goes first, never one the caller says to keep (a linked
//! neighbour), so a neighbour minting identities pushes out only other
//! strangers, not the nodes that are really there and still announcing.
//!
//! It does not verify announces (the node verifies the envelope before it
//! learns the card) and keeps no files: the node tells its caller which
//! card files to save and which to delete, so disk follows memory.

use std::collections::{BTreeMap, BTreeSet};

use crate::card::Card;
use crate::identity::NodeId;

/// What learning a card did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Learned {
    /// Full of cards that must be kept: not learned.
    Refused,
    /// This or a newer sequence was known already (still counts as heard).
    Known,
    /// A newer card; `changed` when keys, name or domain differ.
    Updated { changed: bool },
    /// A node not known before.
    New,
}

/// Cards by node, with when each was last heard (caller's monotonic ms).
#[derive(Debug)]
pub struct CardBook {
    cap: usize,
    cards: BTreeMap<NodeId, (Card, u64)>,
    by_heard: BTreeSet<(u64, NodeId)>,
}

impl CardBook {
    pub fn new(cap: usize) -> CardBook {
        CardBook { cap: cap.max(1), cards: BTreeMap::new(), by_heard: BTreeSet::new() }
    }

    pub fn set_capacity(&mut self, cap: usize) {
        self.cap = cap.max(1);
    }

    pub fn len(&self) -> usize {
        self.cards.len()
    }

    pub fn is_empty(&self) -> bool {
        self.cards.is_empty()
    }

    pub fn get(&self, id: &NodeId) -> Option<&Card> {
        self.cards.get(id).map(|(c, _)| c)
    }

    pub fn values(&self) -> impl Iterator<Item = &Card> {
        self.cards.values().map(|(c, _)| c)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&NodeId, &Card)> {
        self.cards.iter().map(|(id, (c, _))| (id, c))
    }

    /// Learns `card`, heard at `now`. When a new node does not fit, the
    /// least recently heard card not kept by `keep` is evicted and its
    /// node returned, so its file can go too.
    pub fn learn(&mut self, card: Card, now: u64, keep: impl Fn(&NodeId) -> bool) -> (Learned, Option<NodeId>) {
        let node = card.node_id();
        if let Some((old, heard)) = self.cards.get(&node) {
            let (heard, newer) = (*heard, card.seq > old.seq);
            let changed = old.x25519 != card.x25519
                || old.kem_ek != card.kem_ek
                || old.name != card.name
                || old.domain != card.domain;
            self.touch(node, heard, now);
            if !newer {
                return (Learned::Known, None);
            }
            if let Some(entry) = self.cards.get_mut(&node) {
                entry.0 = card;
            }
            return (Learned::Updated { changed }, None);
        }
        let mut evicted = None;
        if self.cards.len() >= self.cap {
            let victim = self.by_heard.iter().find(|(_, n)| !keep(n)).copied();
            let Some((t, v)) = victim else { return (Learned::Refused, None) };
            self.by_heard.remove(&(t, v));
            self.cards.remove(&v);
            evicted = Some(v);
        }
        self.cards.insert(node, (card, now));
        self.by_heard.insert((now, node));
        (Learned::New, evicted)
    }

    fn touch(&mut self, node: NodeId, was: u64, now: u64) {
        if now > was {
            self.by_heard.remove(&(was, node));
            self.by_heard.insert((now, node));
            if let Some(e) = self.cards.get_mut(&node) {
                e.1 = now;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Identity;

    fn card(i: u8, seq: u64, name: &str) -> Card {
        let id = Identity::from_seed(&[i; 32]);
        Card {
            ed_pk: id.public_key(),
            x25519: id.e2e_public(),
            kem_ek: None,
            name: name.into(),
            domain: String::new(),
            seq,
            neighbours: Vec::new(),
            gateway_for: Vec::new(),
        }
    }

    #[test]
    fn newer_sequences_update_and_changes_are_told_apart() {
        let mut b = CardBook::new(4);
        assert_eq!(b.learn(card(1, 5, "a"), 0, |_| false), (Learned::New, None));
        assert_eq!(b.learn(card(1, 5, "a"), 1, |_| false).0, Learned::Known);
        assert_eq!(b.learn(card(1, 4, "old"), 2, |_| false).0, Learned::Known);
        assert_eq!(b.learn(card(1, 6, "a"), 3, |_| false).0, Learned::Updated { changed: false });
        assert_eq!(b.learn(card(1, 7, "renamed"), 4, |_| false).0, Learned::Updated { changed: true });
        assert_eq!(b.get(&card(1, 0, "").node_id()).unwrap().name, "renamed");
    }

    #[test]
    fn full_evicts_the_least_recently_heard_and_never_a_kept_one() {
        let mut b = CardBook::new(3);
        let ids: Vec<NodeId> = (1..=5).map(|i| card(i, 1, "").node_id()).collect();
        for i in 1..=3u8 {
            b.learn(card(i, 1, ""), u64::from(i), |_| false);
        }
        // Node 1 is heard again: node 2 is now the least recently heard.
        b.learn(card(1, 1, ""), 10, |_| false);
        assert_eq!(b.learn(card(4, 1, ""), 11, |_| false), (Learned::New, Some(ids[1])));
        // Node 3 is a linked neighbour: kept even though it is the oldest.
        let keep3 = |n: &NodeId| *n == ids[2];
        assert_eq!(b.learn(card(5, 1, ""), 12, keep3), (Learned::New, Some(ids[0])));
        assert!(b.get(&ids[2]).is_some());
        assert_eq!(b.len(), 3);
        let all = |_: &NodeId| true;
        assert_eq!(b.learn(card(6, 1, ""), 13, all), (Learned::Refused, None), "full of kept cards");
    }
}
