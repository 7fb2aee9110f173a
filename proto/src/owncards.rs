//! The signed announces of our own community's nodes, kept to hand them
//! to a federation peer when its link comes up, so the other community can
//! address our nodes within seconds instead of after an announce interval:
//! each node's full card, and its latest beacon naming that card (which the
//! other side floods into its mesh, beacon.rs).
//!
//! Bounded: at most `cap` nodes, the least recently heard dropped
//! first. It does not verify anything (the node verified each announce
//! before learning its card) and does not decide who gets them.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::identity::NodeId;

type Beacon = Vec<u8>;
/// When a node was last heard, its full card, its latest beacon.
type Kept = (u64, Arc<[u8]>, Option<Beacon>);

/// Announce envelopes by node, with a counter of when each was last heard.
#[derive(Debug, Default)]
pub struct OwnCards {
    cap: usize,
    tick: u64,
    /// When heard, the full card (shared with the card book), the latest
    /// beacon.
    by_node: BTreeMap<NodeId, Kept>,
    by_heard: BTreeSet<(u64, NodeId)>,
}

impl OwnCards {
    pub fn new(cap: usize) -> OwnCards {
        OwnCards { cap, ..OwnCards::default() }
    }

    pub fn len(&self) -> usize {
        self.by_node.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_node.is_empty()
    }

    /// Keeps `envelope` as `node`'s full card (its beacon is cleared: a
    /// beacon names one card).
    pub fn insert(&mut self, node: NodeId, envelope: impl Into<Arc<[u8]>>) {
        if self.cap == 0 {
            return;
        }
        self.tick += 1;
        if let Some((old, _, _)) = self.by_node.insert(node, (self.tick, envelope.into(), None)) {
            self.by_heard.remove(&(old, node));
        }
        self.by_heard.insert((self.tick, node));
        while self.by_node.len() > self.cap {
            let Some((t, n)) = self.by_heard.pop_first() else { break };
            self.by_node.remove(&n);
            debug_assert!(t <= self.tick);
        }
    }

    pub fn remove(&mut self, node: &NodeId) {
        if let Some((t, _, _)) = self.by_node.remove(node) {
            self.by_heard.remove(&(t, *node));
        }
    }

    /// Keeps `beacon` as the latest beacon of a node whose card is kept.
    pub fn set_beacon(&mut self, node: &NodeId, beacon: &[u8]) {
        if let Some(e) = self.by_node.get_mut(node) {
            e.2 = Some(beacon.to_vec());
        }
    }

    /// The full card, then the beacon if one was heard.
    pub fn get(&self, node: &NodeId) -> Option<Vec<Vec<u8>>> {
        self.by_node
            .get(node)
            .map(|(_, card, beacon)| std::iter::once(&card[..]).chain(beacon.as_deref()).map(<[u8]>::to_vec).collect())
    }

    /// Nodes, the most recently heard first.
    pub fn newest_first(&self) -> Vec<NodeId> {
        self.by_heard.iter().rev().map(|(_, n)| *n).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_and_newest_first() {
        let mut c = OwnCards::new(2);
        for i in 1..=3u8 {
            c.insert(NodeId([i; 16]), vec![i]);
        }
        c.insert(NodeId([2; 16]), vec![22]);
        assert_eq!(c.newest_first(), vec![NodeId([2; 16]), NodeId([3; 16])], "the oldest went");
        assert_eq!(c.get(&NodeId([2; 16])), Some(vec![vec![22]]));
        c.set_beacon(&NodeId([2; 16]), &[23]);
        assert_eq!(c.get(&NodeId([2; 16])), Some(vec![vec![22], vec![23]]));
        c.insert(NodeId([2; 16]), vec![24]);
        assert_eq!(c.get(&NodeId([2; 16])), Some(vec![vec![24]]), "a new card drops the beacon naming the old one");
        c.remove(&NodeId([3; 16]));
        assert_eq!(c.len(), 1);
        assert!(OwnCards::new(0).is_empty());
    }
}
