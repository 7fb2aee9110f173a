//! Which nodes the radio graph has kept joined over the end of a run.
//!
//! A message counts as missed only if its ends could reach each other for
//! the whole settling time ([`DELIVERABLE_MS`](super::DELIVERABLE_MS)):
//! churn can leave a few nodes cut off behind a neighbour that left, and
//! nothing may reach them then. The graph (nodes up, radio links) changes
//! only at churn, partition, heal and cut events, so it is enough to label
//! its components just before each change in the settling window and once
//! at the end; a pair was joined throughout if every labelling puts it in
//! one component. It does not look at meshpost links or routes: whether a
//! node found its way is what the count is for.

use std::collections::VecDeque;

use super::{DELIVERABLE_MS, Sim};

impl Sim {
    /// Call before the radio graph or the set of nodes up changes.
    pub(super) fn note_graph_change(&mut self) {
        if self.now + DELIVERABLE_MS >= self.p.minutes * 60_000 {
            let c = self.components();
            self.late_components.push(c);
        }
    }

    /// Component labels of the graph of nodes up (`u32::MAX`: down).
    pub(super) fn components(&self) -> Vec<u32> {
        let mut label = vec![u32::MAX; self.nodes.len()];
        let mut queue = VecDeque::new();
        for s in 0..self.nodes.len() {
            if !self.up[s] || label[s] != u32::MAX {
                continue;
            }
            label[s] = s as u32;
            queue.push_back(s as u32);
            while let Some(u) = queue.pop_front() {
                for &v in &self.adj[u as usize] {
                    if self.up[v as usize] && label[v as usize] == u32::MAX {
                        label[v as usize] = s as u32;
                        queue.push_back(v);
                    }
                }
            }
        }
        label
    }

    /// Whether `a` and `b` were in one component at every labelling of the
    /// settling window (the caller adds the end's labelling first).
    pub(super) fn joined_late(&self, a: u32, b: u32) -> bool {
        self.late_components.iter().all(|c| c[a as usize] != u32::MAX && c[a as usize] == c[b as usize])
    }

    /// Whether radio links between nodes that are up join `a` and `b`.
    pub(super) fn joined(&self, a: u32, b: u32) -> bool {
        let mut seen = vec![false; self.nodes.len()];
        let mut queue = VecDeque::from([a]);
        seen[a as usize] = true;
        while let Some(u) = queue.pop_front() {
            for v in &self.adj[u as usize] {
                if self.up[*v as usize] && !seen[*v as usize] {
                    seen[*v as usize] = true;
                    queue.push_back(*v);
                }
            }
        }
        seen[b as usize]
    }
}
