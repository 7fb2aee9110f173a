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
//! neighbour the graph does not reach (nobody else would). The link sync
//! offers follow the same tree, so where views differ for a moment (a
//! beacon still on its way) and a node misses the eager copy, its parent
//! offers it again in the next round once they agree.
//!
//! It does not decide what is flooded (node/forward.rs), keep the graph
//! (the card book) or cache (node/graph.rs).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::identity::NodeId;
use crate::peerbook::pair_rank;

const FAR: u32 = u32::MAX;

/// Hop counts from the nodes near this one (itself, its links and their
/// neighbours) to every node of its part of the graph: enough to place
/// this node and its links on the tree of any origin. Computed after a
/// change of the graph, after a hold that grows with it (node/graph.rs):
/// a search from each of the 20-odd nodes near, over an indexed copy of
/// the graph, not one per origin, so a store of floods from a thousand
/// origins costs the same as one.
#[derive(Debug)]
pub struct Near {
    ids: Vec<NodeId>,
    index: BTreeMap<NodeId, u32>,
    /// Links both ends list, by index.
    graph: Vec<Vec<u32>>,
    /// This node's links, as given.
    links: Vec<NodeId>,
    /// Distances from each node near to every indexed node.
    dist: BTreeMap<u32, Vec<u32>>,
}

impl Near {
    /// From this node `me`, its `links` and each other node's advertised
    /// neighbours (`adverts`, sorted by id; a node unknown or too long
    /// unheard is left out). Work: one search of this node's part of the
    /// graph with binary searches of `adverts` by id, then about
    /// 1 + L + L x degree searches over indices.
    pub fn compute<'a>(me: NodeId, links: &'a [NodeId], adverts: &[(NodeId, &'a [NodeId])]) -> Near {
        debug_assert!(adverts.is_sorted_by_key(|(n, _)| *n), "adverts sorted by id");
        let find = |id: &NodeId| adverts.binary_search_by(|(n, _)| n.cmp(id)).ok();
        // Each advert's index in the order found (u32::MAX: not yet).
        let mut at_pos = vec![u32::MAX; adverts.len()];
        // Every node a listing leads to, indexed in the order found, with
        // the nodes it lists: one look-up of each node's neighbours (they
        // lie all over the card book; looking them up again for every link
        // that names the node was most of a simulation's time).
        // A listed node with no neighbours of its own (unknown, unheard)
        // cannot be linked both ways: it is left out, so ids a card merely
        // names (64 a card, real or not) cost a look-up, never an entry.
        let mut seen = vec![me];
        let mut lists: Vec<&[NodeId]> = vec![links];
        let mut listed: Vec<Vec<u32>> = Vec::new();
        while listed.len() < seen.len() {
            let mut out = Vec::new();
            for v in lists[listed.len()] {
                let vi = if *v == me {
                    0
                } else {
                    let Some(p) = find(v) else { continue };
                    if at_pos[p] == u32::MAX {
                        seen.push(*v);
                        lists.push(adverts[p].1);
                        at_pos[p] = (seen.len() - 1) as u32;
                    }
                    at_pos[p]
                };
                out.push(vi);
            }
            listed.push(out);
        }
        // This node's part of the graph: what links both ends list join to
        // it, indexed in the order found.
        let mut ids = vec![me];
        let mut index = BTreeMap::from([(me, 0u32)]);
        let mut renumber = vec![u32::MAX; seen.len()];
        renumber[0] = 0;
        let mut graph: Vec<Vec<u32>> = vec![Vec::new()];
        let mut order = vec![0u32];
        let mut next = 0;
        while next < order.len() {
            let u = order[next] as usize;
            for &v in &listed[u] {
                if !listed[v as usize].contains(&(u as u32)) {
                    continue;
                }
                if renumber[v as usize] == u32::MAX {
                    renumber[v as usize] = ids.len() as u32;
                    index.insert(seen[v as usize], ids.len() as u32);
                    ids.push(seen[v as usize]);
                    graph.push(Vec::new());
                    order.push(v);
                }
                graph[next].push(renumber[v as usize]);
            }
            next += 1;
        }
        let mut ball: BTreeSet<u32> = BTreeSet::from([0]);
        for l in links.iter().filter_map(|l| index.get(l)) {
            ball.insert(*l);
            ball.extend(graph[*l as usize].iter().copied());
        }
        let dist = ball.into_iter().map(|x| (x, hops_from(x, &graph))).collect();
        Near { ids, index, graph, links: links.to_vec(), dist }
    }

    /// How many nodes this node's part of the graph holds.
    pub fn nodes(&self) -> usize {
        self.ids.len()
    }

    /// Whether `origin` is in this node's part of the graph (else a flood
    /// from it goes to every link).
    pub fn reaches(&self, origin: &NodeId) -> bool {
        self.index.contains_key(origin)
    }

    /// The neighbours this node passes a flood from `origin` on to: the
    /// links whose parent it is on the origin's shortest-path tree, and any
    /// link the graph does not reach. When `origin` is not in this node's
    /// part of the graph (beyond a partition, gone, or not known yet): every
    /// link. (A tree of the part would cost one copy per node there too,
    /// but its paths are long: copies that crossed it with their hop limit
    /// spent were stored where they could go no further, and the nodes
    /// behind them, whose tree parent held only such a copy, never got the
    /// message. Flooded, each copy arrives by a shortest path.)
    pub fn children(&self, origin: &NodeId) -> Vec<NodeId> {
        let Some(target) = self.index.get(origin).copied() else { return self.links.clone() };
        let d = |x: u32| self.dist.get(&x).map_or(FAR, |v| v[target as usize]);
        let mine = d(0);
        // Of `x`'s graph neighbours one hop nearer the target, the one with
        // the lowest pair rank with `x`.
        let parent = |x: u32| {
            let dx = d(x);
            self.graph[x as usize]
                .iter()
                .filter(|m| dx != FAR && dx > 0 && d(**m) == dx - 1)
                .min_by_key(|m| (pair_rank(&self.ids[**m as usize], &self.ids[x as usize]), self.ids[**m as usize]))
                .copied()
        };
        self.links
            .iter()
            .filter(|n| *n != origin)
            .filter(|n| match self.index.get(*n) {
                None => true,
                Some(ni) if d(*ni) == FAR => true,
                Some(ni) if d(*ni) == mine.saturating_add(1) => parent(*ni) == Some(0),
                Some(_) => false,
            })
            .copied()
            .collect()
    }
}

/// Hops from `start` to every node of `graph` (FAR where it does not reach).
fn hops_from(start: u32, graph: &[Vec<u32>]) -> Vec<u32> {
    let mut dist = vec![FAR; graph.len()];
    let mut queue = VecDeque::from([start]);
    dist[start as usize] = 0;
    while let Some(u) = queue.pop_front() {
        for v in &graph[u as usize] {
            if dist[*v as usize] == FAR {
                dist[*v as usize] = dist[u as usize] + 1;
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
        let adverts: Vec<(NodeId, &[NodeId])> = g.iter().map(|(k, v)| (*k, v.as_slice())).collect();
        Near::compute(n(me), &links, &adverts).children(&n(origin))
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
    fn beyond_the_origins_part_of_the_graph_a_flood_goes_to_every_link() {
        // The origin (0) is in another part (a partition, or its beacons
        // have not come): each node of this part passes it to every link,
        // so each copy arrives by a shortest path with hops to spare.
        let mut edges = ring_with_chords(20);
        edges.push((0, 1));
        let g = graph(&edges);
        for me in 20..32 {
            assert_eq!(kids(&g, 0, me), g[&n(me)], "node {me}");
        }
        let got = spread(&g, 0, 20);
        assert_eq!(got.len(), 12, "reached {got:?}");
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
