//! Forwarding rules: which links an envelope goes to (route, flood within
//! the hop limit, gateways towards other domains) and the out-quota of
//! federation links. It does not learn routes (announce.rs, routing.rs).

use super::*;

/// Whether `env` may cross a federation link with `policy`.
pub(super) fn may_cross(env: &Head, policy: &federation::Policy) -> bool {
    match env.kind() {
        Kind::Direct | Kind::Ack => policy.direct && env.dest().domain == policy.domain,
        Kind::Channel => policy.channels.contains(&env.dest().id),
        Kind::Announce => false,
    }
}
impl Node {
    /// What the sync offers (and hands out when asked) over link `to`:
    /// what [`Node::should_offer`] sends, and a channel envelope over every
    /// mesh link, not only along the tree. Two neighbours whose views of
    /// the graph differ (under churn in a large domain they may for long)
    /// can each take the other to be off the tree, and then nobody would
    /// offer a node what it missed. An offer is an id (16 bytes), and a
    /// neighbour that holds the envelope says so once.
    pub(super) fn should_sync(&self, env: &Head, to: NodeId) -> bool {
        if env.kind() == Kind::Channel
            && env.hops_left() > 0
            && env.origin_id() != to
            && self.links.get(&to).is_some_and(|l| l.confirmed && l.fed.is_none())
            && self.foreign_domain(env).is_none()
        {
            return true;
        }
        self.should_offer(env, to)
    }

    /// The rule for what may go to link `to`, used by forwarding and the
    /// federation queue, and under [`Node::should_sync`] by offers and
    /// wants. Whether the stored `env` should go to `to`: a direct envelope
    /// goes only to its recipient when linked, else only along the best
    /// route, else (no route) to every link; channel envelopes go along the
    /// broadcast tree (flood.rs), so a flood costs about one transmission
    /// per node; the sync offers that repair a lost copy go further
    /// ([`Node::should_sync`]).
    /// Nothing goes back to its origin, and nothing with no hops left goes to
    /// anyone but its recipient.
    pub(super) fn should_offer(&self, env: &Head, to: NodeId) -> bool {
        if env.origin_id() == to || !self.links.get(&to).is_some_and(|l| l.confirmed) {
            return false;
        }
        if let Some(m) = self.links.get(&to).and_then(|l| l.fed.as_ref()) {
            return may_cross(env, &m.policy);
        }
        if let Some(domain) = self.foreign_domain(env) {
            // Another community's: only towards a gateway for it.
            if self.is_gateway_for(domain) {
                return false; // it leaves here over federation, or waits here
            }
            return match self.best_gateway(domain) {
                Some(gw) if gw == to => true,
                Some(gw) => self.best_route(&gw).is_some_and(|r| r.via == to && self.links.contains_key(&r.via)),
                None => false,
            };
        }
        match env.kind() {
            Kind::Direct | Kind::Ack => {
                let dest = NodeId(env.dest().id);
                if dest == to {
                    return true;
                }
                if env.hops_left() == 0 || self.links.contains_key(&dest) {
                    return false;
                }
                match self.best_route(&dest) {
                    Some(r) if self.links.contains_key(&r.via) => r.via == to,
                    // A destination we know nothing of: flooded.
                    _ if self.cards.get(&dest).is_none() => true,
                    // Known but unreachable now (away, or beyond a
                    // partition): the envelope waits until the graph has a
                    // path again, instead of a copy on every node. Its
                    // origin also hands one copy to one neighbour, so it
                    // is not lost if the origin leaves first.
                    _ => env.origin_id() == self.me && self.custodian(&dest) == Some(to),
                }
            }
            Kind::Channel => env.hops_left() > 0 && self.on_flood_tree(env.origin_id(), to),
            Kind::Announce => false,
        }
    }

    /// Sends an envelope on at once to every link [`should_offer`] picks,
    /// except the one it came from.
    ///
    /// A channel message whose origin the broadcast trees cannot place
    /// (beyond a partition, or not known yet) goes to every link
    /// (should_offer), except, when it came over a link, that link's own
    /// neighbours as its beacon lists them (in the same part of the graph
    /// they had it from that link; where views differ, one left out is
    /// offered it in the next sync round). Not to a few links only: copies
    /// that took the long way round spent their hops, and the nodes behind
    /// them never got the message (a fan-out of two was tried: 75 node-
    /// messages missed in an hour at 300 nodes with a partition).
    ///
    /// Such a copy that came over a mesh link is offered to those links,
    /// not sent (a lazy push, as in Plumtree's epidemic broadcast trees):
    /// every node beyond the trees hands it to every link, so each node
    /// hears of it from several, and asks only the first (sync.rs,
    /// `asked_recently`). This is what happens when a partition heals: the
    /// copies that cross it reach nodes whose graph does not yet hold the
    /// links that just formed. Sent whole, a segment of 300 received 1.74
    /// copies per node over a run with a split, against 1.00 without one.
    /// The first offer to arrive comes, as the first copy did, the
    /// quickest way; the cost is one round trip per hop.
    pub(super) fn forward(&mut self, env: &Envelope, from: Option<NodeId>) {
        let mut skip: &[NodeId] = &[];
        let beyond = from.is_some() && env.kind() == Kind::Channel && self.beyond_trees(env.origin_id());
        if let Some(f) = from.filter(|_| beyond) {
            skip = self.cards.advert(&f).map_or(skip, |a| a.neighbours);
        }
        let targets: Vec<NodeId> = self
            .links
            .keys()
            .filter(|k| Some(**k) != from && !skip.contains(k) && self.should_offer(env.head(), **k))
            .copied()
            .collect();
        let now = self.clock;
        for t in targets {
            if let Some(l) = self.links.get(&t).filter(|l| beyond && l.fed.is_none()) {
                if l.peer_has.contains(&env.id()) {
                    continue; // it offered it to us, or said it has it
                }
                for f in id_frames(IdList::Offer, &[env.id()]) {
                    self.send_frame(t, &f, now);
                }
            } else if self.may_push(t) {
                self.send_stored(t, env.id(), env.bytes());
                self.push_sent(t, env, now);
            }
        }
    }

    /// Sends a stored envelope to link `to` now, or, over a federation link
    /// out of outbound tokens, queues it to go when a token is there.
    pub(super) fn send_stored(&mut self, to: NodeId, id: EnvelopeId, bytes: &[u8]) {
        if self.take_out(to) {
            self.metrics.envelopes_forwarded += 1;
            self.send_envelope_bytes(to, bytes);
        } else {
            self.queue_out(to, Queued::Envelope(id));
        }
    }

    /// Queues `q` on federation link `to`; logs when envelopes start to
    /// wait (cards handed over at link-up are not worth a line).
    pub(super) fn queue_out(&mut self, to: NodeId, q: Queued) {
        let Some(m) = self.links.get_mut(&to).and_then(|l| l.fed.as_mut()) else { return };
        m.queue(q);
        if matches!(q, Queued::Envelope(_)) && m.backlog() > 0 && !m.backlog_logged {
            m.backlog_logged = true;
            let (domain, rate) = (m.policy.domain.clone(), m.policy.out_rate);
            self.emit(Event::FederationBacklog { node: to, domain, waiting: true, rate });
        }
    }

    /// Logs a cleared backlog if its start was logged.
    fn backlog_cleared(&mut self, to: NodeId) {
        let Some(m) = self.links.get_mut(&to).and_then(|l| l.fed.as_mut()) else { return };
        if m.backlog() == 0 && m.backlog_logged {
            m.backlog_logged = false;
            let (domain, rate) = (m.policy.domain.clone(), m.policy.out_rate);
            self.emit(Event::FederationBacklog { node: to, domain, waiting: false, rate });
        }
    }

    /// Sends what waits on federation link `to` while it has tokens.
    pub(super) fn drain_backlog(&mut self, to: NodeId, now_ms: u64) {
        if !self.links.get(&to).is_some_and(|l| l.confirmed) {
            return; // confirm() drains it
        }
        // Once one envelope is read back, so are those behind it, in order
        // (cold.rs, `send_stored_id`).
        let mut after_cold = false;
        loop {
            let Some(q) = self.links.get(&to).and_then(|l| l.fed.as_ref()).and_then(Meter::front) else { return };
            // `Some(None)`: a cold envelope, sent once read back (cold.rs).
            let bytes = match q {
                Queued::Envelope(id) => self
                    .store
                    .get(&id)
                    .filter(|e| self.should_offer(&e.head, to))
                    .filter(|_| !self.links.get(&to).is_some_and(|l| l.peer_has.contains(&id)))
                    .map(|e| e.bytes().filter(|_| !after_cold).map(|b| vec![b.to_vec()])),
                Queued::Card(node) => self.cards_out.get(&node).map(Some),
            };
            let Some(m) = self.links.get_mut(&to).and_then(|l| l.fed.as_mut()) else { return };
            if let Some(b) = bytes {
                if !m.take_out(now_ms) {
                    return; // the Pace timer comes back for the rest
                }
                m.pop_front();
                match (b, q) {
                    (Some(b), _) => {
                        self.metrics.envelopes_forwarded += 1;
                        for b in b {
                            self.send_envelope_bytes(to, &b);
                        }
                    }
                    (None, Queued::Envelope(id)) => {
                        after_cold = true;
                        self.read_back(to, id);
                    }
                    (None, Queued::Card(_)) => {}
                }
            } else {
                // Delivered, expired or no longer for this link meanwhile.
                m.pop_front();
            }
            self.backlog_cleared(to);
        }
    }

    /// Charges the out-quota of a federation link; true for mesh links.
    /// An envelope over quota stays in the store and is offered again.
    pub(super) fn take_out(&mut self, to: NodeId) -> bool {
        let now = self.clock;
        match self.links.get_mut(&to).and_then(|l| l.fed.as_mut()) {
            Some(m) => m.take_out(now),
            None => true,
        }
    }

    /// The destination domain of `env` if it is another community's.
    pub(super) fn foreign_domain<'e>(&self, env: &'e Head) -> Option<&'e str> {
        let d = env.dest().domain.as_str();
        (!d.is_empty() && d != self.cfg.domain).then_some(d)
    }

    /// Domains this node has federation peers for.
    pub(super) fn gateway_domains(&self) -> Vec<String> {
        let mut v: Vec<String> =
            self.peers.statics().iter().filter_map(|p| p.spec.federation.as_ref().map(|f| f.domain.clone())).collect();
        v.sort();
        v.dedup();
        v
    }

    pub(super) fn is_gateway_for(&self, domain: &str) -> bool {
        self.peers.statics().iter().any(|p| p.spec.federation.as_ref().is_some_and(|f| f.domain == domain))
    }

    /// The neighbour that keeps a copy of our own envelope for `dest`
    /// while no path leads there: of the confirmed mesh links, the one
    /// whose pair rank with the destination is lowest (stable while the
    /// links are).
    fn custodian(&self, dest: &NodeId) -> Option<NodeId> {
        self.links
            .iter()
            .filter(|(_, l)| l.confirmed && l.fed.is_none())
            .min_by_key(|(n, _)| crate::peerbook::pair_rank(dest, n))
            .map(|(n, _)| *n)
    }

    /// The nearest node of our own domain that announces itself as a
    /// gateway for `domain`.
    pub(super) fn best_gateway(&self, domain: &str) -> Option<NodeId> {
        self.cards
            .iter()
            .filter(|(_, c)| c.domain == self.cfg.domain && c.gateway_for.iter().any(|d| d == domain))
            .filter_map(|(id, _)| {
                if self.links.contains_key(id) {
                    return Some((1, *id));
                }
                self.best_route(id).filter(|r| self.links.contains_key(&r.via)).map(|r| (r.hops, *id))
            })
            .min()
            .map(|(_, id)| id)
    }
}
