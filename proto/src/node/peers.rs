//! The node's side of the peer book (`crate::peerbook`): configuration
//! of static peers, discovery sightings, and dialing what the book says is
//! due. Whether a completed handshake is accepted is links.rs's job.

use super::*;

impl Node {
    /// The peer book's limits from the configuration.
    pub(super) fn peer_limits(cfg: &Config) -> PeerLimits {
        PeerLimits {
            retry_min_ms: cfg.retry_min_ms,
            retry_max_ms: cfg.retry_max_ms,
            max_discovered: cfg.max_discovered,
            discovery_timeout_ms: cfg.discovery_timeout_ms,
            link_target: cfg.link_target,
        }
    }

    /// When the peer book next wants to dial (monotonic ms).
    pub(super) fn next_dial(&self) -> Option<u64> {
        self.peers.next_dial(|n| self.links.contains_key(n))
    }

    /// Once a minute (`announce_interval`), looks for a discovered peer
    /// our routes do not reach although we are linked: the overlay of
    /// preferred links left it apart (or its beacons have not come yet).
    /// The best-ranked such peer is dialled too, one at a time, which joins
    /// the two parts; once routes reach it the bridge is no longer needed
    /// (the link stays).
    pub(super) fn bridge_timer(&mut self, now_ms: u64) {
        if now_ms < self.bridge_check_at {
            return;
        }
        self.bridge_check_at = now_ms + self.cfg.announce_interval_ms;
        if self.cfg.link_target == 0 || !self.links.values().any(|l| l.confirmed) {
            self.peers.set_bridge(None);
            return;
        }
        let apart = self.peers.ranked().find(|n| !self.links.contains_key(n) && self.best_route(n).is_none()).copied();
        self.peers.set_bridge(apart);
    }

    /// Dials every static or discovered peer that is due.
    pub(super) fn peer_timers(&mut self, now_ms: u64) {
        let (links, rng) = (&self.links, &mut self.rng);
        // Up to a quarter of the backoff at random, so nodes do not dial in step.
        let jitter = |backoff: u64| rng.next_u64() % (backoff / 4 + 1);
        for d in self.peers.due(now_ms, |n| links.contains_key(n), jitter) {
            // A retry replaces an unanswered attempt to the same address.
            self.initiators.retain(|_, x| x.addr != d.addr || (d.announced.is_none() && x.expect != d.pin));
            self.initiate(d.addr, d.pin, d.announced, d.eager, now_ms);
        }
    }

    /// Adds (or updates the pin of) a static peer.
    /// Returns false if [`MAX_STATIC_PEERS`] are configured already.
    pub fn add_peer(&mut self, spec: PeerSpec, now: Timestamp) -> bool {
        let now_ms = self.tick(now);
        self.peers.add(spec, now_ms)
    }

    /// Removes a static peer and closes its link.
    pub fn remove_peer(&mut self, addr: SocketAddr) -> bool {
        let Some(p) = self.peers.remove(addr) else {
            return false;
        };
        if let Some(id) = p.linked {
            self.drop_link(id, "peer removed from configuration");
        }
        true
    }

    /// Makes the static peer list equal to `specs` (reload), keeping links
    /// to peers that are still configured at the same address with the same
    /// pin. A changed federation policy applies to the live link at once,
    /// and its counters stay.
    pub fn set_peers(&mut self, specs: &[PeerSpec], now: Timestamp) {
        let now_ms = self.tick(now);
        let gone: Vec<SocketAddr> = self
            .peers
            .statics()
            .iter()
            .filter(|p| !specs.iter().any(|s| s.addr == p.spec.addr && s.pin == p.spec.pin))
            .map(|p| p.spec.addr)
            .collect();
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
        let peers = &self.peers;
        for (node, l) in self.links.iter_mut() {
            let Some(spec) = peers.pinned(node) else { continue };
            match (&mut l.fed, &spec.federation) {
                (Some(m), Some(p)) => m.policy = p.clone(),
                (slot, p) => *slot = p.clone().map(|p| Meter::new(p, now_ms)),
            }
        }
    }

    /// Records a peer that discovery (mDNS) found at `addr`, announcing node
    /// id `node` and key fingerprint `fp`; the node links to it unless it is
    /// linked already. Call again whenever it is seen, to keep it fresh.
    pub fn discovered(&mut self, addr: SocketAddr, node: NodeId, fp: [u8; 8], now: Timestamp) {
        let now_ms = self.tick(now);
        self.peers.discovered(addr, node, fp, now_ms, self.me);
    }

    /// A peer found by discovery said goodbye (it is stopping): it is not
    /// dialled again until it is announced again. Returns whether it was
    /// known.
    pub fn discovery_goodbye(&mut self, node: &NodeId, now: Timestamp) -> bool {
        self.tick(now);
        self.peers.goodbye(node)
    }

    /// Peers found by discovery, for status output.
    pub fn discovered_peers(&self) -> Vec<DiscoveredInfo> {
        self.peers
            .found()
            .map(|(n, d)| DiscoveredInfo { node: *n, addr: d.addr, age_ms: self.clock.saturating_sub(d.last_seen) })
            .collect()
    }
}
