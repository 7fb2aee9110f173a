//! The card book: the public keys (cards) of the nodes this node has heard
//! of, bounded by a capacity. When it is full, a card heard only once (on
//! probation) goes first, the least recently heard of them; only when there
//! is none does the least recently heard of the cards that re-announced
//! themselves (protected) go; never one the caller says to keep (a linked
//! neighbour). Real nodes announce again every interval and are protected,
//! so a neighbour minting identities pushes out only its own and other
//! strangers, not the nodes that are really there and still announcing.
//! A minter that also re-announces every identity can reach the protected
//! set; the node's per-link budget for unknown origins slows it.
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
    /// Card, when last heard, and whether it re-announced (protected).
    cards: BTreeMap<NodeId, (Card, u64, bool)>,
    probation: BTreeSet<(u64, NodeId)>,
    protected: BTreeSet<(u64, NodeId)>,
}

impl CardBook {
    pub fn new(cap: usize) -> CardBook {
        CardBook { cap: cap.max(1), cards: BTreeMap::new(), probation: BTreeSet::new(), protected: BTreeSet::new() }
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
        self.cards.get(id).map(|(c, _, _)| c)
    }

    pub fn values(&self) -> impl Iterator<Item = &Card> {
        self.cards.values().map(|(c, _, _)| c)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&NodeId, &Card)> {
        self.cards.iter().map(|(id, (c, _, _))| (id, c))
    }

    /// Learns `card`, heard at `now`. When a new node does not fit, the
    /// least recently heard card not kept by `keep` is evicted and its
    /// node returned, so its file can go too.
    pub fn learn(&mut self, card: Card, now: u64, keep: impl Fn(&NodeId) -> bool) -> (Learned, Option<NodeId>) {
        let node = card.node_id();
        if let Some((old, heard, protected)) = self.cards.get(&node) {
            let (heard, protected, newer) = (*heard, *protected, card.seq > old.seq);
            let changed = old.x25519 != card.x25519
                || old.kem_ek != card.kem_ek
                || old.name != card.name
                || old.domain != card.domain;
            // A newer announce is a re-announcement: the card is protected.
            self.touch(node, heard, protected, now, protected || newer);
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
            let first = |set: &BTreeSet<(u64, NodeId)>| set.iter().find(|(_, n)| !keep(n)).copied();
            let Some((t, v)) = first(&self.probation).or_else(|| first(&self.protected)) else {
                return (Learned::Refused, None);
            };
            self.probation.remove(&(t, v));
            self.protected.remove(&(t, v));
            self.cards.remove(&v);
            evicted = Some(v);
        }
        self.cards.insert(node, (card, now, false));
        self.probation.insert((now, node));
        (Learned::New, evicted)
    }

    fn touch(&mut self, node: NodeId, was: u64, was_protected: bool, now: u64, protect: bool) {
        let now = now.max(was);
        let from = if was_protected { &mut self.protected } else { &mut self.probation };
        from.remove(&(was, node));
        let to = if protect { &mut self.protected } else { &mut self.probation };
        to.insert((now, node));
        if let Some(e) = self.cards.get_mut(&node) {
            e.1 = now;
            e.2 = protect;
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

    #[test]
    fn cards_heard_once_go_before_cards_that_re_announced() {
        let mut b = CardBook::new(3);
        let none = |_: &NodeId| false;
        b.learn(card(1, 1, "real"), 0, none);
        b.learn(card(1, 2, "real"), 10, none); // re-announced: protected
        b.learn(card(2, 1, "mint"), 20, none);
        b.learn(card(3, 1, "mint"), 30, none);
        // Full: a new one pushes out the oldest card heard only once, not
        // the real node although it was heard longest ago.
        let (_, gone) = b.learn(card(4, 1, "mint"), 40, none);
        assert_eq!(gone, Some(card(2, 1, "").node_id()));
        assert!(b.get(&card(1, 1, "").node_id()).is_some(), "the re-announced card stays");
    }
}
