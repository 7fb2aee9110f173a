//! The routing table: for each destination, the next hops that announces
//! have shown, with hop counts and ages.
//!
//! Every announce that arrives over link L with `hops` travelled offers L as
//! a next hop towards its origin. Up to [`MAX_CANDIDATES`] next hops are
//! kept per destination, so when a link goes down the next best one is used
//! at once instead of waiting for the next announce. Candidates expire when
//! no announce has refreshed them within the route timeout. It does not
//! know about links; callers remove candidates through a lost link.

use std::collections::BTreeMap;

use crate::identity::NodeId;

/// Next hops kept per destination.
pub const MAX_CANDIDATES: usize = 4;

/// One way to reach a destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub via: NodeId,
    /// Links to cross, 1 for a neighbour.
    pub hops: u8,
    /// Sequence number of the announce that taught it.
    pub seq: u64,
    /// When it was last refreshed (ms).
    pub updated: u64,
}

/// Bounded table of routes.
#[derive(Debug)]
pub struct Table {
    routes: BTreeMap<NodeId, Vec<Route>>,
    max_destinations: usize,
}

impl Table {
    pub fn new(max_destinations: usize) -> Table {
        Table { routes: BTreeMap::new(), max_destinations }
    }

    /// Learns that `dest` is `hops` links away through `via`. Returns true
    /// if the best route to `dest` changed.
    pub fn learn(&mut self, dest: NodeId, via: NodeId, hops: u8, seq: u64, now: u64) -> bool {
        if !self.routes.contains_key(&dest) && self.routes.len() >= self.max_destinations {
            // Full: forget the destination heard of longest ago.
            let oldest =
                self.routes.iter().min_by_key(|(_, c)| c.iter().map(|r| r.updated).max().unwrap_or(0)).map(|(k, _)| *k);
            if let Some(k) = oldest {
                self.routes.remove(&k);
            }
        }
        let key = |r: Option<Route>| r.map(|r| (r.via, r.hops));
        let before = key(self.best(&dest));
        let c = self.routes.entry(dest).or_default();
        match c.iter_mut().find(|r| r.via == via) {
            Some(r) => {
                if seq > r.seq || (seq == r.seq && hops < r.hops) {
                    *r = Route { via, hops, seq, updated: now };
                } else if seq == r.seq {
                    r.updated = r.updated.max(now);
                }
            }
            None => c.push(Route { via, hops, seq, updated: now }),
        }
        // Newer announces outrank older ones; among equals, fewer hops win.
        let newest = c.iter().map(|r| r.seq).max().unwrap_or(0);
        c.sort_by_key(|r| (r.seq < newest, r.hops, u64::MAX - r.updated));
        c.truncate(MAX_CANDIDATES);
        key(self.best(&dest)) != before
    }

    /// The preferred route to `dest`, if any.
    pub fn best(&self, dest: &NodeId) -> Option<Route> {
        self.routes.get(dest).and_then(|c| c.first().copied())
    }

    /// Removes every route through `via` (the link to it went down).
    pub fn withdraw_via(&mut self, via: &NodeId) {
        for c in self.routes.values_mut() {
            c.retain(|r| &r.via != via);
        }
        self.routes.retain(|_, c| !c.is_empty());
    }

    /// Drops routes not refreshed since `now - timeout`.
    pub fn expire(&mut self, now: u64, timeout: u64) {
        for c in self.routes.values_mut() {
            c.retain(|r| r.updated + timeout > now);
        }
        self.routes.retain(|_, c| !c.is_empty());
    }

    /// Every destination with its best route.
    pub fn iter(&self) -> impl Iterator<Item = (&NodeId, &Route)> {
        self.routes.iter().filter_map(|(d, c)| c.first().map(|r| (d, r)))
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

    #[test]
    fn fewer_hops_win_and_newer_announces_outrank_older() {
        let mut t = Table::new(10);
        assert!(t.learn(n(9), n(1), 3, 100, 0));
        assert!(t.learn(n(9), n(2), 2, 100, 0));
        assert_eq!(t.best(&n(9)).unwrap().via, n(2));
        // A newer announce through 1 outranks the old one through 2.
        assert!(t.learn(n(9), n(1), 4, 200, 10));
        assert_eq!(t.best(&n(9)).unwrap().via, n(1));
        // The same announce arriving later by a longer path changes nothing.
        assert!(!t.learn(n(9), n(1), 6, 200, 20));
        assert_eq!(t.best(&n(9)).unwrap().hops, 4);
    }

    #[test]
    fn withdrawing_a_link_falls_back_to_the_next_candidate() {
        let mut t = Table::new(10);
        t.learn(n(9), n(1), 2, 100, 0);
        t.learn(n(9), n(2), 3, 100, 0);
        t.withdraw_via(&n(1));
        assert_eq!(t.best(&n(9)).unwrap().via, n(2));
        t.withdraw_via(&n(2));
        assert!(t.best(&n(9)).is_none());
        assert!(t.is_empty());
    }

    #[test]
    fn routes_expire_and_the_table_is_bounded() {
        let mut t = Table::new(3);
        for i in 0..5 {
            t.learn(n(i), n(100), 1, 1, u64::from(i));
        }
        assert_eq!(t.len(), 3);
        assert!(t.best(&n(0)).is_none(), "oldest destination forgotten");
        t.expire(1000, 990);
        assert_eq!(t.len(), 0);
        let mut t = Table::new(10);
        for via in 0..10 {
            t.learn(n(50), n(via), via + 1, 1, 0);
        }
        assert_eq!(t.routes[&n(50)].len(), MAX_CANDIDATES);
        assert_eq!(t.best(&n(50)).unwrap().hops, 1);
    }
}
