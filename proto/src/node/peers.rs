//! The peer book: statically configured peers (federation peers among
//! them) and peers found by discovery, with dial backoff. It decides when
//! to dial, not whether a completed handshake is accepted (links.rs).

use super::*;

pub(super) struct StaticPeer {
    pub(super) spec: PeerSpec,
    pub(super) linked: Option<NodeId>,
    pub(super) next_attempt: u64,
    pub(super) backoff: u64,
}

/// A peer found by discovery, not necessarily linked.
pub(super) struct Discovered {
    pub(super) addr: SocketAddr,
    pub(super) fp: [u8; 8],
    pub(super) last_seen: u64,
    pub(super) next_attempt: u64,
    pub(super) backoff: u64,
}
/// Most static and federation peers a node keeps.
pub const MAX_STATIC_PEERS: usize = 256;
impl Node {
    /// When the peer book next wants to dial (monotonic ms): static peers
    /// and discovered nodes that have no link.
    pub(super) fn next_dial(&self) -> Option<u64> {
        let statics = self.peers.iter().filter(|p| p.linked.is_none()).map(|p| p.next_attempt);
        // A linked discovery keeps its old `next_attempt`, which would be
        // a deadline in the past: only unlinked ones count.
        let found = self.discovered.iter().filter(|(n, _)| !self.links.contains_key(*n)).map(|(_, d)| d.next_attempt);
        statics.chain(found).min()
    }

    /// Dials every static or discovered peer that is due.
    pub(super) fn peer_timers(&mut self, now_ms: u64) {
        self.discovery_timers(now_ms);
        for i in 0..self.peers.len() {
            let p = &self.peers[i];
            if p.linked.is_some() || now_ms < p.next_attempt {
                continue;
            }
            let (addr, pin) = (p.spec.addr, p.spec.pin);
            let backoff = p.backoff;
            self.peers[i].next_attempt = now_ms + backoff;
            self.peers[i].backoff = (backoff * 2).min(self.cfg.retry_max_ms);
            // A retry replaces an unanswered attempt to the same address.
            self.initiators.retain(|_, x| x.addr != addr || x.expect != pin);
            self.initiate(addr, pin, None, now_ms);
        }
    }

    /// Adds (or updates the pin of) a static peer.
    /// Returns false if [`MAX_STATIC_PEERS`] are configured already.
    pub fn add_peer(&mut self, spec: PeerSpec, now: Timestamp) -> bool {
        let now_ms = self.tick(now);
        if let Some(p) = self.peers.iter_mut().find(|p| p.spec.addr == spec.addr) {
            if p.spec.pin != spec.pin {
                p.spec.pin = spec.pin;
                p.next_attempt = now_ms;
            }
            return true;
        }
        if self.peers.len() >= MAX_STATIC_PEERS {
            return false;
        }
        self.peers.push(StaticPeer { spec, linked: None, next_attempt: now_ms, backoff: self.cfg.retry_min_ms });
        true
    }

    /// Removes a static peer and closes its link.
    pub fn remove_peer(&mut self, addr: SocketAddr) -> bool {
        let Some(pos) = self.peers.iter().position(|p| p.spec.addr == addr) else {
            return false;
        };
        let p = self.peers.remove(pos);
        if let Some(id) = p.linked {
            self.drop_link(id, "peer removed from configuration");
        }
        true
    }

    /// Makes the static peer list equal to `specs` (reload), keeping links
    /// to peers that are still configured with the same pin.
    pub fn set_peers(&mut self, specs: &[PeerSpec], now: Timestamp) {
        self.tick(now);
        let gone: Vec<SocketAddr> =
            self.peers.iter().filter(|p| !specs.iter().any(|s| s == &p.spec)).map(|p| p.spec.addr).collect();
        for addr in gone {
            self.remove_peer(addr);
        }
        for s in specs {
            if !self.add_peer(s.clone(), now) {
                self.emit(Event::PeerRefused {
                    addr: s.addr,
                    node: None,
                    reason: format!("more than {MAX_STATIC_PEERS} peers configured"),
                });
            }
        }
    }

    /// Records a peer that discovery (mDNS) found at `addr`, announcing node
    /// id `node` and key fingerprint `fp`; the node links to it unless it is
    /// linked already. Call again whenever it is seen, to keep it fresh.
    pub fn discovered(&mut self, addr: SocketAddr, node: NodeId, fp: [u8; 8], now: Timestamp) {
        let now_ms = self.tick(now);
        if node == self.me {
            return;
        }
        if let Some(d) = self.discovered.get_mut(&node) {
            d.last_seen = now_ms;
            // A node seen over IPv6 and IPv4 keeps its IPv6 address, so the
            // address does not flap between the two.
            let downgrade = d.addr.is_ipv6() && addr.is_ipv4();
            if (d.addr != addr && !downgrade) || d.fp != fp {
                d.addr = addr;
                d.fp = fp;
                d.next_attempt = d.next_attempt.min(now_ms + self.cfg.retry_min_ms);
            }
            return;
        }
        if self.discovered.len() >= self.cfg.max_discovered {
            let oldest = self.discovered.iter().min_by_key(|(_, d)| d.last_seen).map(|(k, _)| *k);
            if let Some(k) = oldest {
                self.discovered.remove(&k);
            }
        }
        // Of two nodes that find each other, the lower id dials at once and
        // the other a little later, so that they rarely both dial.
        let wait = if self.me < node { 0 } else { 2 * self.cfg.retry_min_ms };
        self.discovered.insert(
            node,
            Discovered { addr, fp, last_seen: now_ms, next_attempt: now_ms + wait, backoff: self.cfg.retry_min_ms },
        );
    }

    /// Peers found by discovery, for status output.
    pub fn discovered_peers(&self) -> Vec<DiscoveredInfo> {
        self.discovered
            .iter()
            .map(|(n, d)| DiscoveredInfo { node: *n, addr: d.addr, age_ms: self.clock.saturating_sub(d.last_seen) })
            .collect()
    }

    pub(super) fn discovery_timers(&mut self, now_ms: u64) {
        let timeout = self.cfg.discovery_timeout_ms;
        self.discovered.retain(|_, d| d.last_seen + timeout > now_ms);
        let due: Vec<(NodeId, SocketAddr, [u8; 8])> = self
            .discovered
            .iter()
            .filter(|(n, d)| !self.links.contains_key(*n) && now_ms >= d.next_attempt)
            .map(|(n, d)| (*n, d.addr, d.fp))
            .collect();
        for (node, addr, fp) in due {
            if let Some(d) = self.discovered.get_mut(&node) {
                d.next_attempt = now_ms + d.backoff;
                d.backoff = (d.backoff * 2).min(self.cfg.retry_max_ms);
            }
            self.initiators.retain(|_, x| x.addr != addr);
            self.initiate(addr, None, Some((node, fp)), now_ms);
        }
    }
}
