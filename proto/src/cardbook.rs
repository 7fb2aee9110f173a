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
//! Each card is kept with the signed full-card announce it came in, so the
//! node can hand it to a neighbour that asks for it by the id a beacon
//! names (beacon.rs), and with the newest sequence number heard for the
//! node, from a card or a beacon.
//!
//! It does not verify announces (the node verifies the envelope before it
//! learns the card) and keeps no files: the node tells its caller which
//! card files to save and which to delete, so disk follows memory.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::beacon::Beacon;
use crate::card::Card;
use crate::envelope::EnvelopeId;
use crate::identity::NodeId;
use crate::routing::Advert;

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

/// How a beacon relates to the card book.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BeaconMatch {
    /// It names the card we hold; `newer` when its sequence is the newest
    /// heard (it then counts as a re-announcement).
    Current { newer: bool },
    /// It names another card but is not newer than what we heard: a late
    /// copy of an old beacon.
    Stale,
    /// A node we hold no card for, or a newer card than ours: fetch it.
    NeedsCard,
}

/// One node's entry.
#[derive(Debug)]
struct Entry {
    /// The card as signed, except `neighbours`: those of the newest beacon
    /// (full cards are signed without them).
    card: Card,
    /// The signed full-card announce, as received (shared with the card's
    /// ML-KEM key and the federation copy, owncards.rs).
    envelope: Arc<[u8]>,
    card_id: EnvelopeId,
    /// The newest beacon naming this card, as received, with its id.
    beacon: Option<(EnvelopeId, Box<[u8]>)>,
    /// Newest sequence heard from the node (card or beacon).
    seq: u64,
    /// When last heard (caller's monotonic ms).
    heard: u64,
    /// Whether it re-announced itself.
    protected: bool,
}

/// Cards by node, with when each was last heard (caller's monotonic ms).
#[derive(Debug)]
pub struct CardBook {
    cap: usize,
    cards: BTreeMap<NodeId, Entry>,
    by_id: BTreeMap<EnvelopeId, NodeId>,
    /// Newest beacon ids, with the generation each was stored at.
    by_beacon: BTreeMap<EnvelopeId, (NodeId, u64)>,
    /// The same beacons by generation: a link's sync offers only those
    /// newer than what its peer is known to hold (sync.rs).
    beacon_log: BTreeMap<u64, EnvelopeId>,
    generation: u64,
    probation: BTreeSet<(u64, NodeId)>,
    protected: BTreeSet<(u64, NodeId)>,
}

impl CardBook {
    pub fn new(cap: usize) -> CardBook {
        CardBook {
            cap: cap.max(1),
            cards: BTreeMap::new(),
            by_id: BTreeMap::new(),
            by_beacon: BTreeMap::new(),
            beacon_log: BTreeMap::new(),
            generation: 0,
            probation: BTreeSet::new(),
            protected: BTreeSet::new(),
        }
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
        self.cards.get(id).map(|e| &e.card)
    }

    pub fn values(&self) -> impl Iterator<Item = &Card> {
        self.cards.values().map(|e| &e.card)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&NodeId, &Card)> {
        self.cards.iter().map(|(id, e)| (id, &e.card))
    }

    /// Every node's advert (see [`CardBook::advert`]), in id order.
    pub fn adverts(&self) -> impl Iterator<Item = (NodeId, Advert<'_>)> {
        self.cards.iter().map(|(n, e)| (*n, Advert { neighbours: &e.card.neighbours, seq: e.seq, heard: e.heard }))
    }

    /// The signed full-card announce with envelope id `card_id`, and its node.
    pub fn by_card_id(&self, card_id: &EnvelopeId) -> Option<(NodeId, &[u8])> {
        let node = self.by_id.get(card_id)?;
        self.cards.get(node).map(|e| (*node, &e.envelope[..]))
    }

    /// Every node with the id of the card held for it.
    pub fn card_ids(&self) -> impl Iterator<Item = (NodeId, EnvelopeId)> + '_ {
        self.cards.iter().map(|(n, e)| (*n, e.card_id))
    }

    /// The newest beacon with envelope id `id`, as received, and its node.
    pub fn by_beacon_id(&self, id: &EnvelopeId) -> Option<(NodeId, &[u8])> {
        let (node, _) = self.by_beacon.get(id)?;
        self.cards.get(node).and_then(|e| e.beacon.as_ref()).map(|(_, b)| (*node, &b[..]))
    }

    /// Every node with the id of the newest beacon held for it.
    pub fn beacon_ids(&self) -> impl Iterator<Item = (NodeId, EnvelopeId)> + '_ {
        self.beacons_since(0).map(|(_, n, id)| (n, id))
    }

    /// The newest beacons stored at generation `from` or later, oldest
    /// first, as (generation, node, id).
    pub fn beacons_since(&self, from: u64) -> impl Iterator<Item = (u64, NodeId, EnvelopeId)> + '_ {
        self.beacon_log.range(from..).filter_map(|(g, id)| self.by_beacon.get(id).map(|(n, _)| (*g, *n, *id)))
    }

    /// What the routing graph knows of `node`: its newest beacon's
    /// neighbours, sequence and when it was last heard.
    pub fn advert(&self, node: &NodeId) -> Option<Advert<'_>> {
        self.cards.get(node).map(|e| Advert { neighbours: &e.card.neighbours, seq: e.seq, heard: e.heard })
    }

    /// The newest sequence number heard from `node`.
    pub fn seq(&self, node: &NodeId) -> Option<u64> {
        self.cards.get(node).map(|e| e.seq)
    }

    /// Checks a beacon `b` of `node`, signed as `signed`, heard at `now`; a
    /// current one counts as hearing the node, and the newest one is kept
    /// with its neighbours.
    pub fn beacon(&mut self, node: NodeId, b: &Beacon, signed: (EnvelopeId, &[u8]), now: u64) -> BeaconMatch {
        let Some(e) = self.cards.get_mut(&node) else { return BeaconMatch::NeedsCard };
        if e.card_id != b.card_id {
            return if b.seq > e.seq { BeaconMatch::NeedsCard } else { BeaconMatch::Stale };
        }
        let newer = b.seq > e.seq;
        if newer {
            e.seq = b.seq;
            e.card.neighbours.clone_from(&b.neighbours);
            let old = e.beacon.replace((signed.0, signed.1.into()));
            if let Some((old, _)) = old {
                forget_beacon(&mut self.by_beacon, &mut self.beacon_log, &old);
            }
            self.generation += 1;
            self.by_beacon.insert(signed.0, (node, self.generation));
            self.beacon_log.insert(self.generation, signed.0);
        }
        let (heard, protected) = (e.heard, e.protected);
        self.touch(node, heard, protected, now, protected || newer);
        BeaconMatch::Current { newer }
    }

    /// Learns `card`, heard at `now`. When a new node does not fit, the
    /// least recently heard card not kept by `keep` is evicted and its
    /// node returned, so its file can go too.
    pub fn learn(
        &mut self,
        card: Card,
        signed: (EnvelopeId, impl Into<Arc<[u8]>>),
        now: u64,
        keep: impl Fn(&NodeId) -> bool,
    ) -> (Learned, Option<NodeId>) {
        let node = card.node_id();
        let (card_id, envelope) = signed;
        if let Some(old) = self.cards.get(&node) {
            let (heard, protected, newer) = (old.heard, old.protected, card.seq > old.card.seq);
            let changed = old.card.x25519 != card.x25519
                || old.card.kem_ek != card.kem_ek
                || old.card.name != card.name
                || old.card.domain != card.domain;
            // A newer announce is a re-announcement: the card is protected.
            self.touch(node, heard, protected, now, protected || newer);
            if !newer {
                return (Learned::Known, None);
            }
            if let Some(e) = self.cards.get_mut(&node) {
                self.by_id.remove(&e.card_id);
                // The beacon named the old card.
                let old = e.beacon.take();
                if let Some((old, _)) = old {
                    forget_beacon(&mut self.by_beacon, &mut self.beacon_log, &old);
                }
                e.seq = e.seq.max(card.seq);
                // Neighbours come from beacons; a card signed without them
                // keeps those heard.
                let heard = std::mem::take(&mut e.card.neighbours);
                e.card = card;
                if e.card.neighbours.is_empty() {
                    e.card.neighbours = heard;
                }
                e.card_id = card_id;
                e.envelope = envelope.into();
                self.by_id.insert(card_id, node);
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
            if let Some(e) = self.cards.remove(&v) {
                self.by_id.remove(&e.card_id);
                if let Some((old, _)) = e.beacon {
                    forget_beacon(&mut self.by_beacon, &mut self.beacon_log, &old);
                }
            }
            evicted = Some(v);
        }
        let seq = card.seq;
        self.cards.insert(
            node,
            Entry { card, envelope: envelope.into(), card_id, beacon: None, seq, heard: now, protected: false },
        );
        self.by_id.insert(card_id, node);
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
            e.heard = now;
            e.protected = protect;
        }
    }
}

fn forget_beacon(
    by_beacon: &mut BTreeMap<EnvelopeId, (NodeId, u64)>,
    log: &mut BTreeMap<u64, EnvelopeId>,
    id: &EnvelopeId,
) {
    if let Some((_, g)) = by_beacon.remove(id) {
        log.remove(&g);
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

    /// A stand-in for the signed announce: an id from node and sequence.
    fn id_of(c: &Card) -> EnvelopeId {
        let mut id = c.node_id().0;
        id[..8].copy_from_slice(&c.seq.to_be_bytes());
        EnvelopeId(id)
    }

    fn learn(b: &mut CardBook, c: Card, now: u64, keep: impl Fn(&NodeId) -> bool) -> (Learned, Option<NodeId>) {
        let id = id_of(&c);
        let bytes = c.encode();
        b.learn(c, (id, &bytes[..]), now, keep)
    }

    #[test]
    fn beacons_are_matched_to_the_card_they_name() {
        let mut b = CardBook::new(4);
        let c = card(1, 5, "a");
        let (node, id) = (c.node_id(), id_of(&c));
        let bc = |card_id: EnvelopeId, seq: u64| Beacon { card_id, seq, neighbours: vec![NodeId([seq as u8; 16])] };
        let signed = |i: u8| (EnvelopeId([i; 16]), vec![i; 3]);
        let (s6, s7) = (signed(6), signed(7));
        let (s6, s7) = ((s6.0, &s6.1[..]), (s7.0, &s7.1[..]));
        assert_eq!(b.beacon(node, &bc(id, 6), s6, 0), BeaconMatch::NeedsCard, "unknown node");
        learn(&mut b, c.clone(), 0, |_| false);
        assert_eq!(b.by_card_id(&id), Some((node, &c.encode()[..])));
        assert_eq!(b.beacon(node, &bc(id, 6), s6, 1), BeaconMatch::Current { newer: true });
        assert_eq!(b.beacon(node, &bc(id, 6), s6, 2), BeaconMatch::Current { newer: false });
        assert_eq!(b.by_beacon_id(&s6.0), Some((node, &[6u8, 6, 6][..])), "the newest beacon is kept");
        assert_eq!(b.beacon_ids().collect::<Vec<_>>(), vec![(node, s6.0)]);
        assert_eq!(b.seq(&node), Some(6));
        assert_eq!(b.get(&node).unwrap().neighbours, vec![NodeId([6; 16])], "the newest beacon's neighbours");
        // Another card id: a late copy when not newer, a new card otherwise.
        let other = EnvelopeId([9; 16]);
        assert_eq!(b.beacon(node, &bc(other, 6), s6, 3), BeaconMatch::Stale);
        assert_eq!(b.beacon(node, &bc(other, 7), s7, 3), BeaconMatch::NeedsCard);
        // The newer card replaces the old one under its own id.
        let newer = card(1, 8, "a");
        learn(&mut b, newer.clone(), 4, |_| false);
        assert_eq!(b.by_card_id(&id), None);
        assert_eq!(b.by_card_id(&id_of(&newer)).map(|(n, _)| n), Some(node));
        assert_eq!(b.seq(&node), Some(8));
        assert_eq!(b.by_beacon_id(&s6.0), None, "the beacon named the old card");
    }

    #[test]
    fn newer_sequences_update_and_changes_are_told_apart() {
        let mut b = CardBook::new(4);
        assert_eq!(learn(&mut b, card(1, 5, "a"), 0, |_| false), (Learned::New, None));
        assert_eq!(learn(&mut b, card(1, 5, "a"), 1, |_| false).0, Learned::Known);
        assert_eq!(learn(&mut b, card(1, 4, "old"), 2, |_| false).0, Learned::Known);
        assert_eq!(learn(&mut b, card(1, 6, "a"), 3, |_| false).0, Learned::Updated { changed: false });
        assert_eq!(learn(&mut b, card(1, 7, "renamed"), 4, |_| false).0, Learned::Updated { changed: true });
        assert_eq!(b.get(&card(1, 0, "").node_id()).unwrap().name, "renamed");
    }

    #[test]
    fn full_evicts_the_least_recently_heard_and_never_a_kept_one() {
        let mut b = CardBook::new(3);
        let ids: Vec<NodeId> = (1..=5).map(|i| card(i, 1, "").node_id()).collect();
        for i in 1..=3u8 {
            learn(&mut b, card(i, 1, ""), u64::from(i), |_| false);
        }
        // Node 1 is heard again: node 2 is now the least recently heard.
        learn(&mut b, card(1, 1, ""), 10, |_| false);
        assert_eq!(learn(&mut b, card(4, 1, ""), 11, |_| false), (Learned::New, Some(ids[1])));
        // Node 3 is a linked neighbour: kept even though it is the oldest.
        let keep3 = |n: &NodeId| *n == ids[2];
        assert_eq!(learn(&mut b, card(5, 1, ""), 12, keep3), (Learned::New, Some(ids[0])));
        assert!(b.get(&ids[2]).is_some());
        assert_eq!(b.len(), 3);
        let all = |_: &NodeId| true;
        assert_eq!(learn(&mut b, card(6, 1, ""), 13, all), (Learned::Refused, None), "full of kept cards");
    }

    #[test]
    fn cards_heard_once_go_before_cards_that_re_announced() {
        let mut b = CardBook::new(3);
        let none = |_: &NodeId| false;
        learn(&mut b, card(1, 1, "real"), 0, none);
        learn(&mut b, card(1, 2, "real"), 10, none); // re-announced: protected
        learn(&mut b, card(2, 1, "mint"), 20, none);
        learn(&mut b, card(3, 1, "mint"), 30, none);
        // Full: a new one pushes out the oldest card heard only once, not
        // the real node although it was heard longest ago.
        let (_, gone) = learn(&mut b, card(4, 1, "mint"), 40, none);
        assert_eq!(gone, Some(card(2, 1, "").node_id()));
        assert!(b.get(&card(1, 1, "").node_id()).is_some(), "the re-announced card stays");
    }
}
