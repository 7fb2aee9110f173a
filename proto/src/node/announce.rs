//! Announces: this node's signed card, flooding others' announces on, and
//! learning routes and keys from them. It does not forward data.

use super::*;

pub(super) const ANNOUNCE_TTL: u32 = 24 * 3600;
/// Soonest re-announce after a link change (debounce).
pub(super) const ANNOUNCE_SOON_MS: u64 = 1_000;
impl Node {
    pub(super) fn my_card(&self, seq: u64) -> Card {
        Card {
            ed_pk: self.identity.public_key(),
            x25519: self.identity.e2e_public(),
            kem_ek: Some(Box::new(*self.identity.kem_public())),
            name: self.cfg.name.clone(),
            domain: self.cfg.domain.clone(),
            seq,
            neighbours: self.links.keys().take(crate::card::MAX_NEIGHBOURS).copied().collect(),
            gateway_for: self.gateway_domains(),
        }
    }

    pub(super) fn refresh_announce(&mut self, now_ms: u64) {
        // Sequence numbers follow the wall clock across restarts, but never
        // go back within a run when the clock is stepped back.
        self.card_seq = self.unix_ms.max(self.card_seq + 1);
        let payload = self.my_card(self.card_seq).encode();
        self.announce = Envelope::seal(
            &self.identity,
            &Draft {
                kind: Kind::Announce,
                max_hops: self.cfg.announce_hops,
                created: self.unix_s(),
                ttl: ANNOUNCE_TTL,
                dest: Destination { id: [0; 16], domain: String::new() },
                payload: &payload,
            },
        )
        .ok();
        self.announce_made_ms = now_ms;
    }

    /// Learns the card in a verified announce; returns its node id if valid.
    pub(super) fn learn_card(&mut self, env: &Envelope, save: bool) -> Option<NodeId> {
        let card = Card::decode(*env.origin(), env.payload()).ok()?;
        let node = card.node_id();
        if node == self.me {
            return Some(node);
        }
        let name = card.name.clone();
        let own_domain = card.domain == self.cfg.domain;
        let links = &self.links;
        let contacts = &self.contacts;
        let (learned, evicted) = self.cards.learn(card, self.clock, |k| links.contains_key(k) || contacts.contains(k));
        if let Some(gone) = evicted {
            // Memory and disk stay bounded together.
            self.cards_out.remove(&gone);
            self.actions.push_back(Action::ForgetCard { node: gone });
        }
        if own_domain && !matches!(learned, Learned::Refused | Learned::Known) {
            self.cards_out.insert(node, env.bytes().to_vec());
        } else if !own_domain {
            self.cards_out.remove(&node);
        }
        let changed = match learned {
            Learned::Refused => return None,
            Learned::Known => false,
            Learned::Updated { changed } => changed,
            Learned::New => true,
        };
        if save && changed {
            self.actions.push_back(Action::SaveCard { node, envelope: env.bytes().to_vec() });
            self.emit(Event::CardUpdated { node, name });
        }
        Some(node)
    }

    /// Re-announce shortly after a link change, debounced.
    pub(super) fn announce_soon(&mut self) {
        self.next_announce = self.next_announce.min(self.clock + ANNOUNCE_SOON_MS);
    }

    /// Signs a fresh announce and floods it to every link.
    pub(super) fn announce_now(&mut self, now_ms: u64) {
        self.refresh_announce(now_ms);
        self.next_announce = now_ms + self.cfg.announce_interval_ms;
        let Some(bytes) = self.announce.as_ref().map(|e| e.bytes().to_vec()) else {
            return;
        };
        let ids: Vec<NodeId> = self.links.keys().copied().collect();
        for id in ids {
            self.send_envelope_bytes(id, &bytes);
        }
    }

    /// Learns a route and the card from an announce, and floods it on.
    pub(super) fn on_announce(&mut self, now_ms: u64, link: NodeId, env: Envelope) {
        let origin = env.origin_id();
        let id = env.id();
        if origin == self.me {
            self.seen.insert(id, env.expires_at());
            return;
        }
        // The announce rules (protocol.md 7.1): destination zero, no
        // domain, the fixed lifetime.
        if env.dest().id != [0; 16] || !env.dest().domain.is_empty() || env.ttl() != ANNOUNCE_TTL {
            self.metrics.envelopes_invalid += 1;
            self.emit(Event::EnvelopeDropped { from: link, reason: "announce breaks the announce rules".into() });
            return;
        }
        let Ok(card) = Card::decode(*env.origin(), env.payload()) else {
            self.metrics.envelopes_invalid += 1;
            return;
        };
        if self.contact_key_change(&card, link) {
            self.metrics.envelopes_invalid += 1;
            return;
        }
        // Only federation links join two communities: a neighbour of another
        // domain on a plain mesh link is dropped, so its announces do not
        // flood ours.
        let federated = self.links.get(&link).is_some_and(|l| l.fed.is_some());
        if origin == link
            && !federated
            && !card.domain.is_empty()
            && !self.cfg.domain.is_empty()
            && card.domain != self.cfg.domain
        {
            let addr = self.links.get(&link).map_or(SocketAddr::from(([0, 0, 0, 0], 0)), |l| l.addr);
            let reason = format!(
                "announces domain '{}', not ours ('{}'): other communities link only as configured federation peers",
                card.domain, self.cfg.domain
            );
            // Its next handshakes are refused at once, for a penalty that
            // grows to retry_max; one log line for as long as it keeps this up.
            let penalty = (self.cfg.retry_min_ms, self.cfg.retry_max_ms);
            self.refused(addr, link, reason, Some(penalty));
            let told = crate::link::frame::refuse(crate::link::frame::RefuseReason::OtherDomain);
            self.send_frame(link, &told, now_ms);
            self.drop_link(link, "neighbour of another domain on a mesh link");
            return;
        }
        if origin == link {
            // The neighbour proved itself one of ours: a later refusal is news.
            self.refusals.clear(&link);
        }
        // A card we do not know costs a verify, memory and a file: one link
        // gets a budget of them (links.rs), the rest wait for their next
        // announce.
        if self.cards.get(&origin).is_none() {
            let ok = self.links.get_mut(&link).is_some_and(|l| l.new_cards.take(NEW_CARD_RATE, NEW_CARD_BURST, now_ms));
            if !ok {
                self.metrics.envelopes_rate_limited += 1;
                return;
            }
        }
        // Every copy teaches a route, also duplicates over other paths.
        let hops = env.max_hops().saturating_sub(env.hops_left()).saturating_add(1);
        self.routes.learn(origin, link, hops, card.seq, now_ms);
        if self.seen.contains(&id) {
            self.metrics.announces_duplicate += 1;
            return;
        }
        self.seen.insert(id, env.expires_at());
        if let Some(&t) = self.announce_seen.get(&origin)
            && now_ms < t + self.cfg.announce_min_interval_ms
        {
            self.metrics.envelopes_rate_limited += 1;
            return;
        }
        if self.announce_seen.len() >= self.cfg.max_cards * 2 {
            let cutoff = now_ms.saturating_sub(self.cfg.route_timeout_ms);
            self.announce_seen.retain(|_, t| *t >= cutoff);
            // Still full of recent origins: forget the one heard longest ago.
            while self.announce_seen.len() >= self.cfg.max_cards * 2 {
                let Some(oldest) = self.announce_seen.iter().min_by_key(|(_, t)| **t).map(|(k, _)| *k) else { break };
                self.announce_seen.remove(&oldest);
            }
        }
        self.announce_seen.insert(origin, now_ms);
        self.metrics.announces_in += 1;
        self.learn_card(&env, true);
        let mut env = env;
        if env.take_hop() {
            // Over federation links only our own community's announces go.
            let ours = card.domain == self.cfg.domain;
            // The origin sends its announce to each of its links itself, and
            // signs a fresh one whenever a link comes or goes: its listed
            // neighbours have it already. Not sending it to them again is
            // what keeps a shared segment (batman-adv) at N-1 copies of an
            // announce instead of (N-1)^2.
            let reached = &card.neighbours;
            let targets: Vec<NodeId> = self
                .links
                .iter()
                .filter(|(k, l)| **k != link && **k != origin && (l.fed.is_none() || ours))
                .filter(|(k, l)| l.fed.is_some() || !reached.contains(k))
                .map(|(k, _)| *k)
                .collect();
            for t in targets {
                if !self.take_out(t) {
                    continue;
                }
                self.metrics.announces_forwarded += 1;
                self.send_envelope_bytes(t, env.bytes());
            }
        }
    }
}
