//! The routing table: shortest paths over the mesh graph that beacons
//! describe (link state).
//!
//! Every beacon lists its origin's neighbours. A link between two nodes is
//! in the graph when both list each other (so a node that went away drops
//! out as soon as its neighbours sign beacons without it, whatever its own
//! last beacon said); our own links are taken as they are. A breadth-first
//! search from this node gives each reachable destination its next hop and
//! hop count. Because a route follows from the graph and not from when an
//! announce last passed, beacons need not be flooded every interval to keep
//! routes alive: they back off while nothing changes (announce.rs).
//!
//! It does not store beacons (the card book keeps each origin's newest
//! neighbour list) and does not decide when to recompute: the node marks
//! the table stale and computes it again when a route is next asked for.

use std::collections::{BTreeMap, VecDeque};

use crate::identity::NodeId;

/// One way to reach a destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub via: NodeId,
    /// Links to cross, 1 for a neighbour.
    pub hops: u8,
    /// Sequence number of the destination's newest beacon (0 if none).
    pub seq: u64,
    /// When the destination was last heard (caller's ms; 0 if never).
    pub updated: u64,
}

/// What the graph knows of one node: its newest beacon's neighbours.
#[derive(Debug, Clone, Copy)]
pub struct Advert<'a> {
    pub neighbours: &'a [NodeId],
    pub seq: u64,
    pub heard: u64,
}

/// Next hop and distance for every destination the graph reaches.
#[derive(Debug, Default)]
pub struct Table {
    routes: BTreeMap<NodeId, Route>,
}

impl Table {
    pub fn new() -> Table {
        Table::default()
    }

    /// Computes every route again from this node `me`, its `links`, and
    /// `adverts`: the nodes the graph knows, sorted by id (a node unknown
    /// or too long unheard is left out). Work is linear in the nodes and
    /// links of the graph, with one search of the sorted adverts per link
    /// looked at (a search of a contiguous array: two look-ups in B-trees
    /// per link were a tenth of a simulated mesh of 1000's time); the
    /// table holds at most one route per advert, plus links. Breadth
    /// first, links in the order given: a destination's next hop is the
    /// one whose search reached it first.
    pub fn compute(&mut self, me: NodeId, links: impl Iterator<Item = NodeId>, adverts: &[(NodeId, Advert<'_>)]) {
        debug_assert!(adverts.is_sorted_by_key(|(n, _)| *n), "adverts sorted by id");
        let find = |id: &NodeId| adverts.binary_search_by(|(n, _)| n.cmp(id)).ok();
        let mut reached = vec![false; adverts.len()];
        // Links the graph holds no advert of: reached as neighbours only.
        let mut bare: Vec<NodeId> = Vec::new();
        let mut found: Vec<(NodeId, Route)> = Vec::new();
        let mut queue: VecDeque<(NodeId, Route)> = VecDeque::new();
        for l in links {
            if l == me {
                continue;
            }
            let route = match find(&l) {
                Some(i) if reached[i] => continue,
                Some(i) => {
                    reached[i] = true;
                    let a = adverts[i].1;
                    Route { via: l, hops: 1, seq: a.seq, updated: a.heard }
                }
                None if bare.contains(&l) => continue,
                None => {
                    bare.push(l);
                    Route { via: l, hops: 1, seq: 0, updated: 0 }
                }
            };
            found.push((l, route));
            queue.push_back((l, route));
        }
        while let Some((u, from)) = queue.pop_front() {
            let Some(a) = find(&u).map(|i| adverts[i].1) else { continue };
            for v in a.neighbours {
                if *v == me {
                    continue;
                }
                // Not known (no advert), or reached already.
                let Some(i) = find(v).filter(|i| !reached[*i]) else { continue };
                // Both ends must list the link.
                let b = adverts[i].1;
                if !b.neighbours.contains(&u) {
                    continue;
                }
                reached[i] = true;
                let route = Route { via: from.via, hops: from.hops.saturating_add(1), seq: b.seq, updated: b.heard };
                found.push((*v, route));
                queue.push_back((*v, route));
            }
        }
        found.sort_unstable_by_key(|(n, _)| *n);
        self.routes = found.into_iter().collect();
    }

    /// The route to `dest`, if the graph reaches it.
    pub fn best(&self, dest: &NodeId) -> Option<Route> {
        self.routes.get(dest).copied()
    }

    /// Every destination with its route.
    pub fn iter(&self) -> impl Iterator<Item = (&NodeId, &Route)> {
        self.routes.iter()
    }

    pub fn len(&self) -> usize {
        self.routes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(i: u8) -> NodeId {
        NodeId([i; 16])
    }

    /// A graph of undirected edges as every node would advertise it.
    fn adverts(edges: &[(u8, u8)]) -> BTreeMap<NodeId, Vec<NodeId>> {
        let mut m: BTreeMap<NodeId, Vec<NodeId>> = BTreeMap::new();
        for &(a, b) in edges {
            m.entry(n(a)).or_default().push(n(b));
            m.entry(n(b)).or_default().push(n(a));
        }
        m
    }

    fn sorted(g: &BTreeMap<NodeId, Vec<NodeId>>) -> Vec<(NodeId, Advert<'_>)> {
        g.iter().map(|(k, v)| (*k, Advert { neighbours: v, seq: 7, heard: 1 })).collect()
    }

    fn table(me: u8, g: &BTreeMap<NodeId, Vec<NodeId>>) -> Table {
        let mut t = Table::new();
        let links = g.get(&n(me)).cloned().unwrap_or_default();
        t.compute(n(me), links.into_iter(), &sorted(g));
        t
    }

    /// The search as it was first written, with look-ups in maps: what
    /// the one over sorted adverts must give, route for route.
    fn reference(me: NodeId, links: &[NodeId], g: &BTreeMap<NodeId, Vec<NodeId>>) -> BTreeMap<NodeId, Route> {
        let mut routes: BTreeMap<NodeId, Route> = BTreeMap::new();
        let mut queue = VecDeque::new();
        let advert = |x: &NodeId| g.get(x).map(|v| Advert { neighbours: v, seq: 7, heard: 1 });
        for l in links {
            if *l == me || routes.contains_key(l) {
                continue;
            }
            let (seq, updated) = advert(l).map_or((0, 0), |a| (a.seq, a.heard));
            routes.insert(*l, Route { via: *l, hops: 1, seq, updated });
            queue.push_back(*l);
        }
        while let Some(u) = queue.pop_front() {
            let (Some(a), Some(from)) = (advert(&u), routes.get(&u).copied()) else { continue };
            for v in a.neighbours {
                if *v == me || routes.contains_key(v) {
                    continue;
                }
                let Some(b) = advert(v).filter(|b| b.neighbours.contains(&u)) else { continue };
                routes.insert(*v, Route { via: from.via, hops: from.hops + 1, seq: b.seq, updated: b.heard });
                queue.push_back(*v);
            }
        }
        routes
    }

    #[test]
    fn the_search_over_sorted_adverts_gives_the_routes_of_the_map_search() {
        // Random graphs of 60 nodes: one-sided listings (a node that went
        // away), links without adverts, repeated links, ourselves listed.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = |m: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % m
        };
        for _ in 0..200 {
            let mut g: BTreeMap<NodeId, Vec<NodeId>> = BTreeMap::new();
            for _ in 0..150 {
                let (a, b) = (n(next(60) as u8), n(next(60) as u8));
                if a != b {
                    g.entry(a).or_default().push(b);
                    if next(10) > 0 {
                        g.entry(b).or_default().push(a);
                    }
                }
            }
            for _ in 0..5 {
                g.remove(&n(next(60) as u8));
            }
            let me = n(next(60) as u8);
            let mut links: Vec<NodeId> = g.get(&me).cloned().unwrap_or_default();
            links.extend([n(200), n(next(60) as u8), me]);
            let mut t = Table::new();
            t.compute(me, links.iter().copied(), &sorted(&g));
            assert_eq!(t.routes, reference(me, &links, &g));
        }
    }

    #[test]
    fn shortest_paths_over_the_advertised_graph() {
        // 0 - 1 - 2 - 3, and a shortcut 0 - 4 - 3.
        let g = adverts(&[(0, 1), (1, 2), (2, 3), (0, 4), (4, 3)]);
        let t = table(0, &g);
        assert_eq!(t.best(&n(1)).map(|r| (r.via, r.hops)), Some((n(1), 1)));
        assert_eq!(t.best(&n(2)).map(|r| (r.via, r.hops)), Some((n(1), 2)));
        assert_eq!(t.best(&n(3)).map(|r| (r.via, r.hops)), Some((n(4), 2)));
        assert_eq!(t.best(&n(3)).map(|r| r.seq), Some(7));
        assert!(t.best(&n(0)).is_none(), "no route to ourselves");
        assert_eq!(t.len(), 4);
    }

    #[test]
    fn a_link_only_one_end_lists_is_not_used() {
        // 2 went away: 1 signed a beacon without it, 2's last one still
        // lists 1 and 3.
        let mut g = adverts(&[(0, 1), (1, 2), (2, 3)]);
        g.insert(n(1), vec![n(0)]);
        let t = table(0, &g);
        assert!(t.best(&n(2)).is_none());
        assert!(t.best(&n(3)).is_none(), "nothing beyond the lost node");
    }

    #[test]
    fn losing_a_link_takes_the_other_path_at_once() {
        let mut g = adverts(&[(0, 1), (1, 3), (0, 2), (2, 4), (4, 3)]);
        assert_eq!(table(0, &g).best(&n(3)).map(|r| r.via), Some(n(1)));
        // Our link to 1 went down (we no longer list it).
        g.insert(n(0), vec![n(2)]);
        let t = table(0, &g);
        assert_eq!(t.best(&n(3)).map(|r| (r.via, r.hops)), Some((n(2), 3)));
        // A node we have no beacon from is reached only as a neighbour.
        let mut t = Table::new();
        t.compute(n(0), [n(9)].into_iter(), &[]);
        assert_eq!(t.best(&n(9)).map(|r| (r.via, r.hops, r.seq)), Some((n(9), 1, 0)));
    }
}
