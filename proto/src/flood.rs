//! The broadcast tree: which of its neighbours a node passes a flooded
//! envelope (a channel message) on to, so that a flood over the mesh costs
//! about one transmission per node instead of one per link.
//!
//! Every node holds the same link-state graph (routing.rs: a link counts
//! when both ends list it). From it each node computes the same
//! shortest-path tree rooted at the envelope's origin: a node's parent is,
//! of its neighbours one hop nearer the origin, the one whose pair rank
//! with it is lowest (peerbook.rs; the same from either end, and spread
//! over the neighbours rather than always the lowest id). A node sends the
//! envelope to the neighbours whose parent it is, and to any linked
//! neighbour the graph does not reach (nobody else would). Where views
//! differ for a moment (a beacon still on its way), a node may miss the
//! eager copy; the link sync offers every stored envelope's id to every
//! link, so it gets it in the next round.
//!
//! It does not decide what is flooded (node/forward.rs), keep the graph
//! (the card book) or cache trees (node/graph.rs).

use std::collections::{BTreeMap, VecDeque};

use crate::identity::NodeId;
use crate::peerbook::pair_rank;

/// The neighbours `me` passes a flood from `origin` on to, given its own
/// `links` and each other node's advertised neighbours (`neighbours`;
/// None for a node unknown or too long unheard). Work is linear in the
/// nodes and links the graph holds.
///
/// When the tree from `origin` does not reach `me` (the origin is beyond a
/// partition, gone, or not known yet), the flood follows one spanning tree
/// of our part of the graph instead, rooted at its lowest node id, over
/// every tree edge but the one it came in on: whichever node it enters at,
/// it reaches each node of the part once.
pub fn children<'a>(
    origin: NodeId,
    me: NodeId,
    links: &'a [NodeId],
    neighbours: impl Fn(&NodeId) -> Option<&'a [NodeId]>,
) -> Vec<NodeId> {
    let adj = |n: &NodeId| if *n == me { Some(links) } else { neighbours(n) };
    let dist = distances(origin, &adj);
    let (dist, shared) = match dist.contains_key(&me) {
        true => (dist, false),
        false => {
            let root = distances(me, &adj).keys().next().copied().unwrap_or(me);
            (distances(root, &adj), true)
        }
    };
    // Invariant: `me` is in both searches above (the second starts from
    // the lowest node of the part that holds `me`).
    let mine = dist.get(&me).copied().unwrap_or(0);
    let parent = |n: &NodeId, d: u32| {
        adj(n)?
            .iter()
            .filter(|m| d > 0 && dist.get(*m) == Some(&(d - 1)) && linked(&adj, n, m))
            .min_by_key(|m| (pair_rank(m, n), **m))
            .copied()
    };
    let my_parent = if shared { parent(&me, mine) } else { None };
    links
        .iter()
        .filter(|n| **n != origin)
        .filter(|n| match dist.get(*n) {
            None => true,
            Some(d) if *d == mine + 1 => parent(n, *d) == Some(me),
            Some(_) => my_parent == Some(**n),
        })
        .copied()
        .collect()
}

/// Whether the graph has the link `a`-`b`: `b` lists `a` (and the caller
/// found `b` in `a`'s list).
fn linked<'a>(adj: &impl Fn(&NodeId) -> Option<&'a [NodeId]>, a: &NodeId, b: &NodeId) -> bool {
    adj(b).is_some_and(|l| l.contains(a))
}

/// Hops from `root` to every node the graph reaches from it.
fn distances<'a>(root: NodeId, adj: &impl Fn(&NodeId) -> Option<&'a [NodeId]>) -> BTreeMap<NodeId, u32> {
    let mut dist: BTreeMap<NodeId, u32> = BTreeMap::new();
    let mut queue = VecDeque::new();
    dist.insert(root, 0);
    queue.push_back(root);
    while let Some(u) = queue.pop_front() {
        let (Some(list), Some(d)) = (adj(&u), dist.get(&u).copied()) else { continue };
        for v in list {
            if !dist.contains_key(v) && linked(adj, &u, v) {
                dist.insert(*v, d + 1);
                queue.push_back(*v);
            }
        }
    }
    dist
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(i: u8) -> NodeId {
        NodeId([i; 16])
    }

    fn graph(edges: &[(u8, u8)]) -> BTreeMap<NodeId, Vec<NodeId>> {
        let mut m: BTreeMap<NodeId, Vec<NodeId>> = BTreeMap::new();
        for &(a, b) in edges {
            m.entry(n(a)).or_default().push(n(b));
            m.entry(n(b)).or_default().push(n(a));
        }
        m
    }

    fn kids(g: &BTreeMap<NodeId, Vec<NodeId>>, origin: u8, me: u8) -> Vec<NodeId> {
        let links = g.get(&n(me)).cloned().unwrap_or_default();
        children(n(origin), n(me), &links, |x| g.get(x).map(Vec::as_slice))
    }

    /// Spreads a flood from `origin` that enters the graph at `entry`:
    /// each node passes it on, once, to its children but the sender.
    /// Returns how many copies each node received.
    fn spread(g: &BTreeMap<NodeId, Vec<NodeId>>, origin: u8, entry: u8) -> BTreeMap<u8, u32> {
        let mut got: BTreeMap<u8, u32> = BTreeMap::new();
        let mut queue = VecDeque::from([(entry, entry)]);
        while let Some((me, from)) = queue.pop_front() {
            let count = got.entry(me).or_default();
            *count += u32::from(me != entry);
            if *count > 1 {
                continue;
            }
            for c in kids(g, origin, me).into_iter().filter(|c| c.0[0] != from) {
                queue.push_back((c.0[0], me));
            }
        }
        got
    }

    fn ring_with_chords(base: u8) -> Vec<(u8, u8)> {
        let mut edges: Vec<(u8, u8)> = (0..12).map(|i| (base + i, base + (i + 1) % 12)).collect();
        edges.extend([(0, 6), (2, 9), (3, 7), (4, 11), (1, 5)].map(|(a, b)| (base + a, base + b)));
        edges
    }

    #[test]
    fn every_node_receives_a_flood_exactly_once() {
        // A ring of 12 with chords: many equal-length paths.
        let g = graph(&ring_with_chords(0));
        for origin in 0..12 {
            let got = spread(&g, origin, origin);
            assert_eq!(got.len(), 12, "origin {origin}: reached {got:?}");
            for (node, copies) in got {
                assert_eq!(copies, u32::from(node != origin), "origin {origin}: node {node} got {copies} copies");
            }
        }
    }

    #[test]
    fn beyond_the_origins_part_of_the_graph_a_flood_still_reaches_each_node_once() {
        // The origin (0) is in another part: whichever node of this part
        // the flood enters at (a healed partition, a late sync), one copy
        // each.
        let mut edges = ring_with_chords(20);
        edges.push((0, 1));
        let g = graph(&edges);
        for entry in 20..32 {
            let got = spread(&g, 0, entry);
            assert_eq!(got.len(), 12, "entry {entry}: reached {got:?}");
            for (node, copies) in got {
                assert_eq!(copies, u32::from(node != entry), "entry {entry}: node {node} got {copies} copies");
            }
        }
    }

    #[test]
    fn neighbours_the_graph_does_not_know_get_it_and_the_origin_sends_to_all() {
        // 3 is linked to 2 but sent no beacon yet: 2 sends to it.
        let mut g = graph(&[(0, 1), (1, 2)]);
        g.entry(n(2)).or_default().push(n(3));
        assert_eq!(kids(&g, 0, 2), vec![n(3)]);
        let g = graph(&[(0, 1), (0, 2), (1, 2)]);
        assert_eq!(kids(&g, 0, 0), vec![n(1), n(2)]);
        assert_eq!(kids(&g, 0, 1), Vec::<NodeId>::new());
    }
}
