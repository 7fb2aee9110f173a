//! Read-only views for `status`, `peers`, `routes` and `federation`.
//! Nothing here changes the node.

use super::*;

impl Node {
    pub fn links(&self) -> Vec<LinkInfo> {
        self.links
            .iter()
            .map(|(id, l)| LinkInfo {
                node: *id,
                name: self.cards.get(id).map(|c| c.name.clone()).unwrap_or_default(),
                addr: l.addr,
                initiator: l.current.initiator,
                established_ms: l.current.established_at,
                last_rx_ms: l.last_rx,
                rx: l.rx,
                tx: l.tx,
                confirmed: l.confirmed,
            })
            .collect()
    }

    pub fn peers(&self) -> Vec<PeerInfo> {
        self.peers
            .statics()
            .iter()
            .map(|p| PeerInfo {
                addr: p.spec.addr,
                pin: p.spec.pin.map(|k| NodeId::from_public_key(&k)),
                linked: p.linked,
                next_attempt_ms: p.next_attempt,
            })
            .collect()
    }

    /// Federation links, for `meshpost federation`.
    pub fn federation_links(&self) -> Vec<FederationInfo> {
        self.links
            .iter()
            .filter_map(|(id, l)| {
                l.fed.as_ref().map(|m| FederationInfo {
                    node: *id,
                    domain: m.policy.domain.clone(),
                    addr: l.addr,
                    established_ms: l.current.established_at,
                    counters: m.counters.clone(),
                    backlog: m.backlog(),
                    confirmed: l.confirmed,
                    policy: m.policy.clone(),
                })
            })
            .collect()
    }

    /// Routes for `meshpost routes`: neighbours, then learned routes.
    pub fn routes(&self) -> Vec<RouteInfo> {
        let now = self.clock;
        let mut out: Vec<RouteInfo> = self
            .links
            .iter()
            .map(|(n, l)| RouteInfo {
                dest: *n,
                name: self.name_of(n),
                via: *n,
                hops: 1,
                age_ms: now.saturating_sub(l.last_rx),
            })
            .collect();
        for (dest, r) in self.all_routes() {
            if self.links.contains_key(&dest) || !self.links.contains_key(&r.via) {
                continue;
            }
            out.push(RouteInfo {
                dest,
                name: self.name_of(&dest),
                via: r.via,
                hops: r.hops,
                age_ms: now.saturating_sub(r.updated),
            });
        }
        out
    }

    pub(super) fn name_of(&self, n: &NodeId) -> String {
        self.cards.get(n).map(|c| c.name.clone()).unwrap_or_default()
    }
}
