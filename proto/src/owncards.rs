//! The signed announces of our own community's nodes, kept to hand them
//! to a federation peer when its link comes up, so the other community can
//! address our nodes within seconds instead of after an announce interval.
//!
//! Bounded: at most `cap` announces, the least recently heard dropped
//! first. It does not verify anything (the node verified each announce
//! before learning its card) and does not decide who gets them.

use std::collections::{BTreeMap, BTreeSet};

use crate::identity::NodeId;

/// Announce envelopes by node, with a counter of when each was last heard.
#[derive(Debug, Default)]
pub struct OwnCards {
    cap: usize,
    tick: u64,
    by_node: BTreeMap<NodeId, (u64, Vec<u8>)>,
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

    /// Keeps `envelope` as `node`'s latest announce.
    pub fn insert(&mut self, node: NodeId, envelope: Vec<u8>) {
        if self.cap == 0 {
            return;
        }
        self.tick += 1;
        if let Some((old, _)) = self.by_node.insert(node, (self.tick, envelope)) {
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
        if let Some((t, _)) = self.by_node.remove(node) {
            self.by_heard.remove(&(t, *node));
        }
    }

    pub fn get(&self, node: &NodeId) -> Option<&Vec<u8>> {
        self.by_node.get(node).map(|(_, e)| e)
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
        assert_eq!(c.get(&NodeId([2; 16])), Some(&vec![22]));
        c.remove(&NodeId([3; 16]));
        assert_eq!(c.len(), 1);
        assert!(OwnCards::new(0).is_empty());
    }
}
