//! Routes from the graph beacons describe: the table is marked stale when
//! a beacon, a card or a link changes it, and computed again when a route
//! is next asked for, so a burst of beacons costs one computation; in a
//! large domain, at most once per hold (`route_hold_ms`).
//!
//! It does not decide what a route is (routing.rs) nor learn beacons
//! (announce.rs).

use super::*;
use crate::routing::Route;

/// Broadcast trees kept at once (one per recent flood origin).
const MAX_FLOOD_TREES: usize = 256;

/// After a change elsewhere in the graph, the broadcast trees are computed
/// again at most once per this long for each `FLOOD_HOLD_NODES` nodes in
/// the graph (1 s up to 100 nodes, 10 s at 1000). Their distance tables
/// cost a search of the whole graph from each of the 20 to 30 nodes near
/// this one; under churn in a domain of a thousand nodes beacons change
/// the graph every second or so, at every node, so without a hold that
/// grows with the graph the work per node and second would grow with it.
/// A tree some seconds old misses at worst a neighbour whose parent
/// changed meanwhile: the next sync round offers it the message.
const FLOOD_HOLD_MS: u64 = 1_000;
const FLOOD_HOLD_NODES: usize = 100;

/// The routes are held the same way, but only from `FLOOD_HOLD_NODES`
/// nodes on (none below 100, 1 s from 100, 10 s at 1000): one search of
/// the whole graph per change per node is what a thousand nodes under
/// churn spent a quarter of their time on. A change of this node's own
/// links is not held. A route a few seconds old at worst sends an envelope
/// towards a node that lost its onward link; that node holds it and
/// forwards it on its own, fresher routes.
fn route_hold_ms(nodes: usize) -> u64 {
    FLOOD_HOLD_MS * (nodes / FLOOD_HOLD_NODES) as u64
}

impl Node {
    /// Marks the routes stale as beacons age out of the graph (once a
    /// minute), with the links beacons list unchanged: broadcast trees
    /// stay. (A node that went away leaves them when its neighbours'
    /// beacons stop listing it, a second after their links to it drop.)
    pub(super) fn routes_refreshed(&self) {
        self.routes_stale.set(true);
    }

    /// Marks the routes stale after a change of the graph's links beyond
    /// this node's own; they are computed again when next asked for, the
    /// broadcast trees after a hold (`FLOOD_HOLD_MS`).
    pub(super) fn routes_changed(&self) {
        self.routes_stale.set(true);
        self.flood_stale.set(true);
    }

    /// As `routes_changed`, for a link of this node that came up or went
    /// down: the trees are computed again when next asked for.
    pub(super) fn links_changed(&self) {
        self.routes_changed();
        self.routes_urgent.set(true);
        if let Ok(mut n) = self.flood_near.try_borrow_mut() {
            *n = None;
        }
    }

    /// Whether a flood from `origin` goes on to mesh link `to`: `to` is a
    /// child of ours on the broadcast tree (flood.rs). The distances the
    /// trees come from are computed after a change of the graph (at once
    /// for a change of our links, after a hold that grows with the graph
    /// for others), each origin's children once after that; at most
    /// `MAX_FLOOD_TREES` origins are kept.
    pub(super) fn on_flood_tree(&self, origin: NodeId, to: NodeId) -> bool {
        let (Ok(mut near), Ok(mut trees)) = (self.flood_near.try_borrow_mut(), self.flood_trees.try_borrow_mut())
        else {
            return true; // not reached: nothing else borrows them meanwhile
        };
        let hold = FLOOD_HOLD_MS * near.as_ref().map_or(1, |n| n.nodes().div_ceil(FLOOD_HOLD_NODES).max(1)) as u64;
        let due = self.flood_stale.get() && self.clock >= self.flood_at.get().saturating_add(hold);
        if due || near.is_none() {
            *near = None;
            trees.clear();
            self.flood_stale.set(false);
            self.flood_at.set(self.clock);
        }
        if let Some(children) = trees.get(&origin) {
            return children.contains(&to);
        }
        let near = near.get_or_insert_with(|| {
            let links: Vec<NodeId> = self.links.iter().filter(|(_, l)| l.fed.is_none()).map(|(n, _)| *n).collect();
            let (now, timeout) = (self.clock, self.cfg.route_timeout_ms);
            let fresh: Vec<(NodeId, &[NodeId])> = self
                .cards
                .adverts()
                .filter(|(_, a)| a.heard.saturating_add(timeout) > now)
                .map(|(n, a)| (n, a.neighbours))
                .collect();
            crate::flood::Near::compute(self.me, &links, &fresh)
        });
        let children = near.children(&origin);
        let on = children.contains(&to);
        if trees.len() >= MAX_FLOOD_TREES {
            trees.clear();
        }
        trees.insert(origin, children);
        on
    }

    /// Whether the broadcast trees cannot place `origin`: it is beyond a
    /// partition, gone, or not known yet, and its floods go to every link.
    pub(super) fn beyond_trees(&self, origin: NodeId) -> bool {
        let _ = self.on_flood_tree(origin, self.me); // computes them if due
        self.flood_near.try_borrow().ok().is_some_and(|n| n.as_ref().is_some_and(|n| !n.reaches(&origin)))
    }

    /// The route to `dest`, from a table no older than the last change.
    pub(super) fn best_route(&self, dest: &NodeId) -> Option<Route> {
        self.fresh_routes();
        self.routes.try_borrow().ok().and_then(|t| t.best(dest)).map(|r| self.heard_now(dest, r))
    }

    /// `r` with its destination's newest sequence number and time heard:
    /// a newer beacon with the same neighbours changes those, not the
    /// table, so it does not make the whole graph be searched again.
    fn heard_now(&self, dest: &NodeId, r: Route) -> Route {
        match self.cards.advert(dest) {
            Some(a) => Route { seq: a.seq, updated: a.heard, ..r },
            None => r,
        }
    }

    /// The hop limit for an envelope to `dest`: `default_hops`, or more
    /// when the graph knows a longer route (two spare hops, at most
    /// `MAX_HOPS`), so a large mesh is not cut at the default. With no
    /// route now (the destination is away) the path it will take is not
    /// known: it gets `announce_hops`, as far as beacons reach.
    pub(super) fn hops_to(&self, dest: &NodeId) -> u8 {
        let route = self.best_route(dest).map_or(self.cfg.announce_hops, |r| r.hops.saturating_add(2));
        self.cfg.default_hops.max(route.min(crate::envelope::MAX_HOPS))
    }

    /// How many times the whole graph was searched for routes.
    pub fn route_searches(&self) -> u64 {
        self.route_searches.get()
    }

    /// Every destination with its route.
    pub(super) fn all_routes(&self) -> Vec<(NodeId, Route)> {
        self.fresh_routes();
        let table = self.routes.try_borrow().map(|t| t.iter().map(|(d, r)| (*d, *r)).collect::<Vec<_>>());
        table.unwrap_or_default().into_iter().map(|(d, r)| (d, self.heard_now(&d, r))).collect()
    }

    fn fresh_routes(&self) {
        if !self.routes_stale.get() {
            return;
        }
        // Borrows of the table never outlive the calls above, so this one
        // succeeds; if it did not, the old table stays and stays stale.
        let Ok(mut t) = self.routes.try_borrow_mut() else { return };
        let held = self.clock < self.routes_at.get().saturating_add(route_hold_ms(t.len()));
        if held && !self.routes_urgent.get() {
            return;
        }
        self.routes_stale.set(false);
        self.routes_urgent.set(false);
        self.routes_at.set(self.clock);
        self.route_searches.set(self.route_searches.get() + 1);
        let (me, now, timeout) = (self.me, self.clock, self.cfg.route_timeout_ms);
        let fresh: Vec<_> = self.cards.adverts().filter(|(_, a)| a.heard.saturating_add(timeout) > now).collect();
        t.compute(me, self.links.keys().copied(), &fresh);
    }
}
