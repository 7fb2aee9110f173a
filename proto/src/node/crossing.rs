//! The federation crossing rule for envelopes arriving over a federation
//! link: quotas, what may cross, and no re-injection of our own domain.
//! The outbound half of the rule is `may_cross` in forward.rs.

use super::*;

impl Node {
    /// Applies a federation link's policy to an envelope that came over it:
    /// quotas, what may cross, and no re-injection of our own domain. It
    /// also lowers the hop limit to this mesh's. Returns the store share to
    /// charge, or None to drop the envelope.
    pub(super) fn federation_inbound(
        &mut self,
        now_ms: u64,
        link: NodeId,
        env: &mut Envelope,
    ) -> Option<(String, usize)> {
        let my_domain = self.cfg.domain.clone();
        let known = self.cards.get(&env.origin_id()).map(|c| c.domain.clone());
        // A beacon of a node we hold no card for waits for the card
        // (cardfetch.rs), which passes this rule itself before the beacon
        // is taken.
        let beacon = env.kind() == Kind::Announce && env.payload().first() == Some(&crate::beacon::BEACON_VERSION);
        let origin_domain = match env.kind() {
            Kind::Announce if !beacon => Card::decode(*env.origin(), env.payload()).ok().map(|c| c.domain),
            _ => known,
        };
        let addr = self.links.get(&link).map(|l| l.addr)?;
        let m = self.links.get_mut(&link).and_then(|l| l.fed.as_mut())?;
        let remote = m.policy.domain.clone();
        if !m.take_in(env.len(), now_ms) {
            // One log line per thousand drops, not one per envelope.
            if m.counters.quota_drops % 1000 == 1 {
                let reason = format!(
                    "federation peer for {remote} is over its inbound quota ({} dropped so far)",
                    m.counters.quota_drops
                );
                self.emit(Event::PeerRefused { addr, node: Some(link), reason });
            }
            return None;
        }
        // Nothing that claims to come from our own domain may come back in.
        if origin_domain.as_deref() == Some(my_domain.as_str()) {
            m.counters.refused_spoofed += 1;
            let reason = format!("federation peer for {remote} sent an envelope claiming to come from our domain");
            self.emit(Event::EnvelopeDropped { from: link, reason });
            return None;
        }
        let allowed = match env.kind() {
            // Announces of the remote community only: they carry its keys.
            Kind::Announce => match origin_domain {
                Some(d) => d == remote,
                None => beacon,
            },
            Kind::Direct | Kind::Ack => m.policy.direct && env.dest().domain == my_domain,
            Kind::Channel => m.policy.channels.contains(&env.dest().id),
        };
        if !allowed {
            m.counters.refused_class += 1;
            return None;
        }
        let share = (remote, m.policy.store_share);
        env.clamp_hops(self.cfg.default_hops.max(self.cfg.announce_hops));
        Some(share)
    }
}
