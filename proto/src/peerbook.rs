//! The peer book: peers configured statically (federation peers among
//! them) and peers found by discovery, with when to dial each and the
//! backoff between attempts.
//!
//! It decides *when* to dial and whom; it does not dial (the node starts
//! handshakes) and does not decide whether a completed handshake is
//! accepted (the node's link policy does). Discovered peers are bounded
//! and forgotten when silent.
//!
//! On a shared segment (batman-adv) every node discovers every other, so
//! a node dials only its `link_target` preferred ones: those whose pair
//! rank (a hash of the two ids, the same seen from either end) is lowest.
//! Each node links to its own few and accepts the links of those that
//! prefer it, which joins the segment into one overlay of bounded degree
//! with high probability (a random k-out graph); a node the routes do not
//! reach can be added by the node as a bridge (node/peers.rs). When full,
//! the worst-ranked discovered peer makes room for a better one.
//! Discovered peers never linked so far (anyone can announce any id over
//! mDNS) share a small dial budget, so a neighbour announcing hundreds of
//! made-up ids costs a few handshakes a second, not hundreds.

use core::net::SocketAddr;
use std::collections::{BTreeMap, BTreeSet};

use blake2::{Blake2s256, Digest};

use crate::identity::NodeId;
use crate::node::PeerSpec;
use crate::store::Bucket;

/// Dials per second (and burst) shared by all discovered peers that have
/// never been linked.
pub const UNVERIFIED_DIAL_RATE: u32 = 2;
pub const UNVERIFIED_DIAL_BURST: u32 = 4;

/// Most static and federation peers a node keeps.
pub const MAX_STATIC_PEERS: usize = 256;

/// Retry and size limits (from the node's configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub retry_min_ms: u64,
    pub retry_max_ms: u64,
    pub max_discovered: usize,
    pub discovery_timeout_ms: u64,
    /// Discovered peers dialled: the best-ranked this many (0: all).
    pub link_target: usize,
}

/// A statically configured peer and its dial state.
#[derive(Debug, Clone)]
pub struct StaticPeer {
    pub spec: PeerSpec,
    pub linked: Option<NodeId>,
    pub next_attempt: u64,
    backoff: u64,
    linked_at: u64,
}

/// A peer found by discovery, not necessarily linked.
#[derive(Debug, Clone)]
pub struct Found {
    pub addr: SocketAddr,
    pub fp: [u8; 8],
    pub last_seen: u64,
    /// The pair rank with this node (lower is preferred).
    pub rank: u64,
    next_attempt: u64,
    backoff: u64,
    linked_at: Option<u64>,
    /// It has been linked since it was discovered: its identity is proven.
    verified: bool,
}

/// A link that stays up this long counts as healthy: losing it afterwards
/// dials again at the minimum backoff. A link lost sooner (refused by
/// policy, another domain, a flapping peer) keeps the backoff growing.
pub const STABLE_LINK_MS: u64 = 60_000;

/// A dial the node should make now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dial {
    pub addr: SocketAddr,
    /// The key the peer must prove (a pin).
    pub pin: Option<[u8; 32]>,
    /// The node id and key fingerprint it announced over discovery.
    pub announced: Option<(NodeId, [u8; 8])>,
    /// One of the first dials (backoff at most twice `retry_min_ms`): an
    /// unanswered first message goes again (node/resend.rs). Later dials
    /// are to a peer that did not answer several: one message each.
    pub eager: bool,
}

/// Static and discovered peers.
#[derive(Debug)]
pub struct PeerBook {
    limits: Limits,
    statics: Vec<StaticPeer>,
    found: BTreeMap<NodeId, Found>,
    /// The discovered peers by pair rank.
    by_rank: BTreeSet<(u64, NodeId)>,
    /// A discovered peer dialled beyond the preferred ones (a bridge).
    bridge: Option<NodeId>,
    /// The dial budget of discovered peers never linked.
    unverified: Bucket,
    /// When the first discovered peer can have gone silent.
    silent_at: u64,
}

impl PeerBook {
    pub fn new(limits: Limits) -> PeerBook {
        PeerBook {
            limits,
            statics: Vec::new(),
            found: BTreeMap::new(),
            by_rank: BTreeSet::new(),
            bridge: None,
            unverified: Bucket::full(UNVERIFIED_DIAL_BURST, 0),
            silent_at: 0,
        }
    }

    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    pub fn statics(&self) -> &[StaticPeer] {
        &self.statics
    }

    pub fn found(&self) -> impl Iterator<Item = (&NodeId, &Found)> {
        self.found.iter()
    }

    /// Adds a static peer, or updates its pin (dialing again at once).
    /// False if [`MAX_STATIC_PEERS`] are configured already.
    pub fn add(&mut self, spec: PeerSpec, now: u64) -> bool {
        if let Some(p) = self.statics.iter_mut().find(|p| p.spec.addr == spec.addr) {
            if p.spec.pin != spec.pin {
                p.spec.pin = spec.pin;
                p.next_attempt = now;
            }
            p.spec.federation = spec.federation;
            return true;
        }
        if self.statics.len() >= MAX_STATIC_PEERS {
            return false;
        }
        self.statics.push(StaticPeer {
            spec,
            linked: None,
            next_attempt: now,
            backoff: self.limits.retry_min_ms,
            linked_at: 0,
        });
        true
    }

    /// Removes the static peer at `addr`; returns it if there was one.
    pub fn remove(&mut self, addr: SocketAddr) -> Option<StaticPeer> {
        let pos = self.statics.iter().position(|p| p.spec.addr == addr)?;
        Some(self.statics.remove(pos))
    }

    /// The pin configured for `addr`, if any.
    pub fn pin_for(&self, addr: SocketAddr) -> Option<[u8; 32]> {
        self.statics.iter().find(|s| s.spec.addr == addr).and_then(|s| s.spec.pin)
    }

    /// Whether a peer at `addr` with key `key` is configured.
    pub fn is_configured(&self, addr: SocketAddr, key: &[u8; 32]) -> bool {
        self.statics.iter().any(|p| p.spec.addr == addr || p.spec.pin.as_ref() == Some(key))
    }

    /// The spec of the static peer pinned to `node`'s key.
    pub fn pinned(&self, node: &NodeId) -> Option<&PeerSpec> {
        self.statics.iter().map(|p| &p.spec).find(|s| s.pin.map(|k| NodeId::from_public_key(&k)) == Some(*node))
    }

    /// Records a node announced over discovery (call on every sighting).
    /// `me` is this node: it is never recorded, so we never dial ourselves.
    pub fn discovered(&mut self, addr: SocketAddr, node: NodeId, fp: [u8; 8], now: u64, me: NodeId) {
        if node == me {
            return;
        }
        let min = self.limits.retry_min_ms;
        if let Some(d) = self.found.get_mut(&node) {
            d.last_seen = now;
            // A node seen over IPv6 and IPv4 keeps its IPv6 address, so the
            // address does not flap between the two.
            let downgrade = d.addr.is_ipv6() && addr.is_ipv4();
            if (d.addr != addr && !downgrade) || d.fp != fp {
                d.addr = addr;
                d.fp = fp;
                d.next_attempt = d.next_attempt.min(now + min);
            }
            return;
        }
        let rank = pair_rank(&me, &node);
        if self.found.len() >= self.limits.max_discovered {
            // Full: the worst-ranked goes if this one ranks better.
            match self.by_rank.last().copied() {
                Some((worst, k)) if worst > rank => self.forget(&k),
                _ => return,
            }
        }
        // Of two nodes that find each other, the lower id dials at once and
        // the other a little later, so that they rarely both dial.
        let wait = if me < node { 0 } else { 2 * min };
        let entry = Found {
            addr,
            fp,
            last_seen: now,
            rank,
            next_attempt: now + wait,
            backoff: min,
            linked_at: None,
            verified: false,
        };
        self.found.insert(node, entry);
        self.by_rank.insert((rank, node));
    }

    fn forget(&mut self, node: &NodeId) {
        if let Some(d) = self.found.remove(node) {
            self.by_rank.remove(&(d.rank, *node));
        }
    }

    /// The discovered peers to dial: the `link_target` best-ranked and the
    /// bridge, or all when `link_target` is 0.
    fn preferred(&self) -> Option<BTreeSet<NodeId>> {
        let k = self.limits.link_target;
        (k > 0).then(|| self.by_rank.iter().take(k).map(|(_, n)| *n).chain(self.bridge).collect())
    }

    /// Discovered peers, best-ranked first.
    pub fn ranked(&self) -> impl Iterator<Item = &NodeId> {
        self.by_rank.iter().map(|(_, n)| n)
    }

    /// Dials `node` (a discovered peer) too, beyond the preferred ones;
    /// None stops that.
    pub fn set_bridge(&mut self, node: Option<NodeId>) {
        self.bridge = node;
    }

    /// `node` said goodbye over discovery (mDNS records with TTL 0): it is
    /// forgotten and no longer dialled. A link to it is left to the link's
    /// own dead-peer detection. Returns whether it was known.
    pub fn goodbye(&mut self, node: &NodeId) -> bool {
        let known = self.found.contains_key(node);
        self.forget(node);
        known
    }

    /// A link to `node` at `addr` came up at `now`: its dials stop. The
    /// backoff is kept until the link proves stable (see [`unlinked`]).
    ///
    /// [`unlinked`]: PeerBook::unlinked
    pub fn linked(&mut self, node: NodeId, addr: SocketAddr, now: u64) {
        for p in &mut self.statics {
            if p.spec.addr == addr || p.spec.pin.map(|k| NodeId::from_public_key(&k)) == Some(node) {
                p.linked = Some(node);
                p.linked_at = now;
            }
        }
        if let Some(d) = self.found.get_mut(&node) {
            d.linked_at = Some(now);
            d.verified = true;
        }
    }

    /// The link to `node` went down at `now`. After a stable link the next
    /// dial waits the minimum; after a short one (refused, flapping) it
    /// waits the grown backoff, which doubles again.
    pub fn unlinked(&mut self, node: &NodeId, now: u64) {
        let (min, max) = (self.limits.retry_min_ms, self.limits.retry_max_ms);
        let next = |backoff: &mut u64, since: u64| {
            if now.saturating_sub(since) >= STABLE_LINK_MS {
                *backoff = min;
            }
            let at = now + *backoff;
            *backoff = (*backoff * 2).min(max);
            at
        };
        for p in &mut self.statics {
            if p.linked == Some(*node) {
                p.linked = None;
                p.next_attempt = next(&mut p.backoff, p.linked_at);
            }
        }
        if let Some(d) = self.found.get_mut(node)
            && let Some(since) = d.linked_at.take()
        {
            d.next_attempt = next(&mut d.backoff, since);
        }
    }

    /// When the next dial is due, for peers `is_linked` says have no link
    /// (a linked peer's old deadline would be in the past).
    pub fn next_dial(&self, is_linked: impl Fn(&NodeId) -> bool) -> Option<u64> {
        let statics = self.statics.iter().filter(|p| p.linked.is_none()).map(|p| p.next_attempt);
        // Called before every sleep: walks the few preferred, allocates nothing.
        let k = self.limits.link_target;
        let found: Box<dyn Iterator<Item = (&NodeId, &Found)>> = if k == 0 {
            Box::new(self.found.iter())
        } else {
            let preferred = self.by_rank.iter().take(k).map(|(_, n)| n).chain(self.bridge.as_ref());
            Box::new(preferred.filter_map(|n| self.found.get_key_value(n)))
        };
        let found = found.filter(|(n, _)| !is_linked(n)).map(|(_, d)| d.next_attempt);
        statics.chain(found).min()
    }

    /// The dials due at `now`; each pushes its next attempt back (doubling
    /// up to `retry_max_ms`, plus `jitter(backoff)` so that many nodes do
    /// not dial in step). Forgets discovered peers not seen for the
    /// discovery timeout.
    pub fn due(
        &mut self,
        now: u64,
        is_linked: impl Fn(&NodeId) -> bool,
        mut jitter: impl FnMut(u64) -> u64,
    ) -> Vec<Dial> {
        let (timeout, max) = (self.limits.discovery_timeout_ms, self.limits.retry_max_ms);
        // Looked for only when the first of them can be silent: on one
        // segment a node finds every other, and this runs at every wake-up.
        if now >= self.silent_at {
            let silent: Vec<NodeId> =
                self.found.iter().filter(|(_, d)| d.last_seen + timeout <= now).map(|(n, _)| *n).collect();
            for n in &silent {
                self.forget(n);
            }
            // Sightings only move `last_seen` later, and a new peer's is now.
            self.silent_at = self.found.values().map(|d| d.last_seen + timeout).min().unwrap_or(now + timeout);
        }
        // The preferred few when there are some, not every peer found.
        let dialable: Vec<NodeId> = match self.preferred() {
            Some(p) => p.into_iter().collect(),
            None => self.found.keys().copied().collect(),
        };
        let mut out = Vec::new();
        for node in &dialable {
            let Some(d) = self.found.get_mut(node) else { continue };
            if is_linked(node) || now < d.next_attempt {
                continue;
            }
            if !d.verified && !self.unverified.take(UNVERIFIED_DIAL_RATE, UNVERIFIED_DIAL_BURST, now) {
                // Out of budget: look again in a second, without growing
                // this peer's backoff.
                d.next_attempt = now + 1_000;
                continue;
            }
            let eager = d.backoff <= 2 * self.limits.retry_min_ms;
            d.next_attempt = now + d.backoff + jitter(d.backoff);
            d.backoff = (d.backoff * 2).min(max);
            out.push(Dial { addr: d.addr, pin: None, announced: Some((*node, d.fp)), eager });
        }
        for p in &mut self.statics {
            if p.linked.is_some() || now < p.next_attempt {
                continue;
            }
            let eager = p.backoff <= 2 * self.limits.retry_min_ms;
            p.next_attempt = now + p.backoff + jitter(p.backoff);
            p.backoff = (p.backoff * 2).min(max);
            out.push(Dial { addr: p.spec.addr, pin: p.spec.pin, announced: None, eager });
        }
        out
    }
}

/// The rank of the pair `a`, `b`: the same from either end, spread
/// evenly, and not something either node chooses alone.
pub fn pair_rank(a: &NodeId, b: &NodeId) -> u64 {
    let (lo, hi) = if a < b { (a, b) } else { (b, a) };
    let h = Blake2s256::new().chain_update(lo.0).chain_update(hi.0).finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&h[..8]);
    u64::from_be_bytes(first)
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    const LIMITS: Limits = Limits {
        retry_min_ms: 1_000,
        retry_max_ms: 8_000,
        max_discovered: 2,
        discovery_timeout_ms: 60_000,
        link_target: 0,
    };

    fn v4(port: u16) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)
    }

    #[test]
    fn static_dials_back_off_and_stop_while_linked() {
        let mut b = PeerBook::new(LIMITS);
        assert!(b.add(PeerSpec { addr: v4(1), pin: None, federation: None }, 0));
        let no = |_: &NodeId| false;
        let times: Vec<u64> = (0..40_000u64).step_by(500).filter(|t| !b.due(*t, no, |_| 0).is_empty()).collect();
        assert_eq!(times[..6], [0, 1_000, 3_000, 7_000, 15_000, 23_000], "1, 2, 4, 8 s, then capped at 8 s");
        let node = NodeId([5; 16]);
        b.linked(node, v4(1), 40_000);
        assert_eq!(b.next_dial(no), None, "a linked peer has no dial pending");
        assert!(b.due(1_000_000, no, |_| 0).is_empty());
        // Refused a second after it came up: the grown backoff (8 s) holds.
        b.unlinked(&node, 41_000);
        assert_eq!(b.next_dial(no), Some(49_000));
        // A link that lasted: lost, it is dialed again after the minimum.
        b.linked(node, v4(1), 50_000);
        b.unlinked(&node, 50_000 + STABLE_LINK_MS);
        assert_eq!(b.next_dial(no), Some(51_000 + STABLE_LINK_MS));
        assert_eq!(b.due(51_000 + STABLE_LINK_MS, no, |b| b / 4).len(), 1, "dialed again after the link went down");
    }

    #[test]
    fn discovered_peers_are_bounded_never_ourselves_and_forgotten_when_silent() {
        let mut b = PeerBook::new(LIMITS);
        let me = NodeId([0; 16]);
        b.discovered(v4(1), me, [0; 8], 0, me);
        assert_eq!(b.found().count(), 0, "never ourselves");
        for (i, t) in [(1u8, 0u64), (2, 10), (3, 20)] {
            b.discovered(v4(u16::from(i)), NodeId([i; 16]), [i; 8], t, me);
        }
        let ids: Vec<NodeId> = b.found().map(|(n, _)| *n).collect();
        // Full at two: the worst-ranked of the three was left out.
        let mut ranked: Vec<NodeId> = (1..=3u8).map(|i| NodeId([i; 16])).collect();
        ranked.sort_by_key(|n| pair_rank(&me, n));
        ranked.truncate(2);
        ranked.sort();
        assert_eq!(ids, ranked, "the worst-ranked is not kept");
        assert_eq!(ids, vec![NodeId([2; 16]), NodeId([3; 16])]);
        // The lower id dials at once; a linked one is not due nor pending.
        let linked = |n: &NodeId| *n == NodeId([2; 16]);
        let due = b.due(20, linked, |_| 0);
        assert_eq!(due, vec![Dial { addr: v4(3), pin: None, announced: Some((NodeId([3; 16]), [3; 8])), eager: true }]);
        assert!(b.next_dial(|_| true).is_none());
        b.due(100_000, |_| false, |_| 0);
        assert_eq!(b.found().count(), 0, "silent past the discovery timeout");
    }

    #[test]
    fn on_a_segment_only_the_preferred_few_and_the_bridge_are_dialled() {
        let limits = Limits { max_discovered: 64, link_target: 3, ..LIMITS };
        let mut b = PeerBook::new(limits);
        let me = NodeId([0; 16]);
        let ids: Vec<NodeId> = (1..=40u8).map(|i| NodeId([i; 16])).collect();
        for (i, n) in ids.iter().enumerate() {
            b.discovered(v4(i as u16), *n, [0; 8], 0, me);
        }
        let mut by_rank = ids.clone();
        by_rank.sort_by_key(|n| pair_rank(&me, n));
        assert_eq!(b.ranked().copied().collect::<Vec<_>>(), by_rank);
        // The rank is the pair's: the same from the other end.
        assert_eq!(pair_rank(&me, &ids[5]), pair_rank(&ids[5], &me));
        let dialled = |b: &mut PeerBook, t: u64| -> Vec<NodeId> {
            let mut v: Vec<NodeId> =
                b.due(t, |_| false, |_| 0).into_iter().filter_map(|d| d.announced.map(|a| a.0)).collect();
            v.sort_by_key(|n| pair_rank(&me, n));
            v
        };
        assert_eq!(dialled(&mut b, 10_000), by_rank[..3].to_vec(), "the three best-ranked");
        // A bridge to a peer routes do not reach is dialled as well.
        b.set_bridge(Some(by_rank[30]));
        let mut want = by_rank[..3].to_vec();
        want.push(by_rank[30]);
        assert_eq!(dialled(&mut b, 20_000), want);
        // Others are never due: no wake-ups for them.
        b.set_bridge(None);
        let next = b.next_dial(|n| by_rank[..3].contains(n));
        assert!(next.is_none(), "{next:?}");
    }

    #[test]
    fn hundreds_of_made_up_ids_share_a_small_dial_budget_and_a_proven_peer_does_not() {
        let limits = Limits { max_discovered: 512, ..LIMITS };
        let mut b = PeerBook::new(limits);
        let me = NodeId([0; 16]);
        for i in 0..300u16 {
            let mut id = [0u8; 16];
            id[..2].copy_from_slice(&(i + 1).to_be_bytes());
            b.discovered(v4(i), NodeId(id), [0; 8], 0, me);
        }
        let real = NodeId([0xee; 16]);
        b.discovered(v4(999), real, [1; 8], 0, me);
        b.linked(real, v4(999), 0);
        b.unlinked(&real, 100);
        let mut dials = 0;
        let mut real_dials = 0;
        for t in (0..60_000u64).step_by(100) {
            for d in b.due(t, |_| false, |_| 0) {
                if d.addr == v4(999) {
                    real_dials += 1;
                } else {
                    dials += 1;
                }
                for n in 0..300u16 {
                    let mut id = [0u8; 16];
                    id[..2].copy_from_slice(&(n + 1).to_be_bytes());
                    b.discovered(v4(n), NodeId(id), [0; 8], t, me);
                }
            }
        }
        let budget = (UNVERIFIED_DIAL_BURST + 60 * UNVERIFIED_DIAL_RATE) as usize;
        assert!(dials <= budget, "{dials} dials of made-up ids in 60 s (budget {budget})");
        assert!(real_dials >= 5, "the proven peer is dialled on its own backoff: {real_dials}");
    }

    #[test]
    fn a_goodbye_stops_the_dials_until_announced_again() {
        let mut b = PeerBook::new(LIMITS);
        let (me, peer) = (NodeId([0; 16]), NodeId([9; 16]));
        b.discovered(v4(9), peer, [9; 8], 0, me);
        assert!(b.goodbye(&peer));
        assert!(b.due(10_000, |_| false, |_| 0).is_empty(), "not dialled after its goodbye");
        assert!(!b.goodbye(&peer));
        b.discovered(v4(9), peer, [9; 8], 20_000, me);
        assert_eq!(b.due(20_000, |_| false, |_| 0).len(), 1, "announced again: dialled");
    }

    #[test]
    fn a_node_seen_over_both_families_keeps_its_ipv6_address() {
        let mut b = PeerBook::new(LIMITS);
        let v6 = SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 9);
        let n = NodeId([4; 16]);
        b.discovered(v6, n, [1; 8], 0, NodeId([0; 16]));
        b.discovered(v4(9), n, [1; 8], 5, NodeId([0; 16]));
        assert_eq!(b.found().next().unwrap().1.addr, v6);
    }
}
