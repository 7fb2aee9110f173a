//! Announces: this node's full card and beacons, and learning routes and
//! keys from others'. A full card goes to each new link and to a neighbour
//! that asks for it (cardfetch.rs); a short beacon naming it is flooded
//! every interval. It does not forward data.

use super::*;
use crate::beacon::{BEACON_VERSION, Beacon, MAX_BEACON_NEIGHBOURS};
use crate::card::KemKey;
use std::sync::Arc;

pub(super) const ANNOUNCE_TTL: u32 = 24 * 3600;
/// Soonest re-announce after a link change (debounce).
pub(super) const ANNOUNCE_SOON_MS: u64 = 1_000;
/// Beacons of one origin passed on at once before the per-origin rate
/// (one per `announce_min_interval`) applies.
const BEACON_BURST: f32 = 3.0;
impl Node {
    /// This node's card. Its neighbours travel in beacons, not in the card,
    /// so the card changes only with keys, name, domain or gateways.
    pub(super) fn my_card(&self, seq: u64) -> Card {
        Card {
            ed_pk: self.identity.public_key(),
            x25519: self.identity.e2e_public(),
            kem_ek: Some(KemKey::new(self.identity.kem_public())),
            name: self.cfg.name.clone(),
            domain: self.cfg.domain.clone(),
            seq,
            neighbours: Vec::new(),
            gateway_for: self.gateway_domains(),
        }
    }

    fn seal_announce(&self, payload: &[u8]) -> Option<Envelope> {
        Envelope::seal(
            &self.identity,
            &Draft {
                kind: Kind::Announce,
                max_hops: self.cfg.announce_hops,
                created: self.unix_s(),
                ttl: ANNOUNCE_TTL,
                dest: Destination { id: [0; 16], domain: String::new() },
                payload,
            },
        )
        .ok()
    }

    /// Signs a fresh beacon, and a fresh full card first if the card changed.
    pub(super) fn refresh_announce(&mut self, now_ms: u64) {
        // Sequence numbers follow the wall clock across restarts, but never
        // go back within a run when the clock is stepped back.
        self.card_seq = self.unix_ms.max(self.card_seq + 1);
        let stable = self.my_card(0).encode();
        // A card is also signed again before half its lifetime is over, and
        // when the clock was stepped (an RTC-less router signs at boot with
        // a clock NTP sets later): others refuse an expired card.
        let now_s = self.unix_s();
        let stale =
            |e: &Envelope| now_s.saturating_sub(e.created()) > u64::from(ANNOUNCE_TTL / 2) || e.created() > now_s + 60;
        if self.full_card.as_ref().is_none_or(|(e, s)| *s != stable || stale(e)) {
            let card = self.my_card(self.card_seq).encode();
            self.full_card = self.seal_announce(&card).map(|e| (e, stable));
        }
        let Some(card_id) = self.full_card.as_ref().map(|(e, _)| e.id()) else {
            self.announce = None;
            return;
        };
        let neighbours = self.links.keys().take(MAX_BEACON_NEIGHBOURS).copied().collect();
        self.announce = self.seal_announce(&Beacon { card_id, seq: self.card_seq, neighbours }.encode());
        self.announce_made_ms = now_ms;
    }

    /// Sends our full card and then our beacon on a new link.
    pub(super) fn introduce(&mut self, node: NodeId) {
        let card = self.full_card.as_ref().map(|(e, _)| e.bytes().to_vec());
        let beacon = self.announce.as_ref().map(|e| e.bytes().to_vec());
        for bytes in [card, beacon].into_iter().flatten() {
            self.send_envelope_bytes(node, &bytes);
        }
    }

    /// Learns the card in a verified full-card announce; returns its node
    /// id if valid.
    pub(super) fn learn_card(&mut self, env: &Envelope, save: bool) -> Option<NodeId> {
        // One copy of the announce, shared by the card book, the card's
        // ML-KEM key and the federation copy.
        let bytes: Arc<[u8]> = env.bytes().into();
        let card = Card::decode_shared(*env.origin(), &bytes, env.payload_range()).ok()?;
        let node = card.node_id();
        if node == self.me {
            return Some(node);
        }
        let name = card.name.clone();
        let own_domain = card.domain == self.cfg.domain;
        let links = &self.links;
        let contacts = &self.contacts;
        let keep = |k: &NodeId| links.contains_key(k) || contacts.contains(k);
        let (learned, evicted) = self.cards.learn(card, (env.id(), Arc::clone(&bytes)), self.clock, keep);
        if evicted.is_some() || learned == Learned::New {
            self.routes_changed();
        }
        if let Some(gone) = evicted {
            // Memory and disk stay bounded together.
            self.cards_out.remove(&gone);
            self.actions.push_back(Action::ForgetCard { node: gone });
        }
        if own_domain && !matches!(learned, Learned::Refused | Learned::Known) {
            self.cards_out.insert(node, bytes);
        } else if !own_domain {
            self.cards_out.remove(&node);
        }
        if matches!(learned, Learned::Updated { .. })
            && let Some(l) = self.links.get_mut(&node)
        {
            // A neighbour with a new card restarted (or changed): it may
            // have lost the envelopes and beacons it held. A new pass over
            // the store offers them again at once.
            l.beacons_had.clear();
            l.forget_peer_has();
            l.beacon_floor = 0;
            l.offer_cursor = None;
            // (A millisecond on: never a timer at the moment being handled.)
            l.next_sync = l.next_sync.min(self.clock + 1);
        }
        let changed = match learned {
            Learned::Refused => return None,
            Learned::Known => return Some(node),
            Learned::Updated { changed } => changed,
            Learned::New => true,
        };
        // Full cards come rarely now (on a change, or a node's restart):
        // every newer one is saved, so a restart serves what it names.
        if save {
            self.actions.push_back(Action::SaveCard { node, envelope: env.bytes().to_vec() });
        }
        if save && changed {
            self.emit(Event::CardUpdated { node, name });
        }
        Some(node)
    }

    /// Re-announce shortly after a link change, debounced. The backoff
    /// goes on where it was: the beacon after this one follows the current
    /// interval (halved here, doubled when it is sent). Starting it again
    /// from the shortest interval cost six more beacons per change, each
    /// flooded to every node: under churn in a mesh of 1000 that was most
    /// of the beacon bytes, and a beacon lost meanwhile is fetched by the
    /// link sync anyway (the newest beacon ids are part of it).
    pub(super) fn announce_soon(&mut self) {
        self.announce_ivl /= 2;
        self.next_announce = self.next_announce.min(self.clock + ANNOUNCE_SOON_MS);
    }

    /// Signs a fresh announce and floods it to every link. The next one
    /// follows after the current interval, which doubles each time up to
    /// `announce_max_interval_ms` (Trickle's backoff, RFC 6206, without its
    /// suppression: every origin's beacon is news to the others). Routes do
    /// not depend on beacons passing (routing.rs), so a quiet mesh goes
    /// quiet; a change (a link, a key, the name) starts again from
    /// `announce_interval_ms`.
    pub(super) fn announce_now(&mut self, now_ms: u64) {
        self.refresh_announce(now_ms);
        let (min, max) = (self.cfg.announce_interval_ms, self.cfg.announce_max_interval_ms);
        self.announce_ivl =
            if self.announce_ivl == 0 { min } else { self.announce_ivl.saturating_mul(2) }.min(max.max(min));
        self.next_announce = now_ms + self.announce_ivl;
        let Some(bytes) = self.announce.as_ref().map(|e| e.bytes().to_vec()) else {
            return;
        };
        let ids: Vec<NodeId> = self.links.keys().copied().collect();
        for id in ids {
            self.send_envelope_bytes(id, &bytes);
        }
    }

    /// Takes an announce: a full card (learned) or a beacon (routes, flood).
    pub(super) fn on_announce(&mut self, now_ms: u64, link: NodeId, env: Envelope) {
        let origin = env.origin_id();
        if origin == self.me {
            self.seen.insert(env.id(), env.expires_at());
            return;
        }
        // The announce rules (protocol.md 7.1): destination zero, no
        // domain, the fixed lifetime.
        if env.dest().id != [0; 16] || !env.dest().domain.is_empty() || env.ttl() != ANNOUNCE_TTL {
            self.metrics.envelopes_invalid += 1;
            self.emit(Event::EnvelopeDropped { from: link, reason: "announce breaks the announce rules".into() });
            return;
        }
        if env.payload().first() == Some(&BEACON_VERSION) {
            self.on_beacon(now_ms, link, env);
        } else {
            self.on_full_card(now_ms, link, env);
        }
    }

    /// Learns a full card: sent on link-up, or asked for by a beacon. It is
    /// not flooded on.
    fn on_full_card(&mut self, now_ms: u64, link: NodeId, env: Envelope) {
        let origin = env.origin_id();
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
        // A card we do not know costs memory and a file: one link gets a
        // budget of them (links.rs), the rest wait for their next beacon.
        // A card we asked for was charged when its beacon came.
        if self.cards.get(&origin).is_none() && !self.held.contains_key(&origin) && !self.new_card_budget(link, now_ms)
        {
            return;
        }
        if self.learn_card(&env, true).is_some() {
            self.card_arrived(now_ms, origin);
        }
    }

    /// Charges `link`'s budget for cards of origins we did not know.
    pub(super) fn new_card_budget(&mut self, link: NodeId, now_ms: u64) -> bool {
        let ok = self.links.get_mut(&link).is_some_and(|l| l.new_cards.take(NEW_CARD_RATE, NEW_CARD_BURST, now_ms));
        if !ok {
            self.metrics.envelopes_rate_limited += 1;
        }
        ok
    }

    /// Learns a route from a beacon and floods it on, once we hold the
    /// card it names (until then it is held, and the card fetched).
    pub(super) fn on_beacon(&mut self, now_ms: u64, link: NodeId, env: Envelope) {
        let origin = env.origin_id();
        let Ok(beacon) = Beacon::decode(env.payload()) else {
            self.metrics.envelopes_invalid += 1;
            return;
        };
        // The table changes only when the links it is built from do, or
        // when a beacon that had aged out of it (graph.rs) comes back.
        let timeout = self.cfg.route_timeout_ms;
        let moved = self
            .cards
            .advert(&origin)
            .is_none_or(|a| a.neighbours != &beacon.neighbours[..] || a.heard.saturating_add(timeout) <= now_ms);
        match self.cards.beacon(origin, &beacon, (env.id(), env.bytes()), now_ms) {
            BeaconMatch::NeedsCard => return self.hold_beacon(now_ms, link, env, beacon.card_id),
            BeaconMatch::Stale => {
                // Remembered, so a sync offer of it is answered with have
                // instead of a want that would fetch it again each round.
                self.seen.insert(env.id(), env.expires_at());
                self.peer_holds_beacon(link, env.id());
                self.metrics.announces_duplicate += 1;
                return;
            }
            // A newer beacon may list other neighbours: the graph changed,
            // and what waits here for a path may have one now.
            BeaconMatch::Current { newer: true } => {
                if moved {
                    // Asked of the table as it was, before the change.
                    if self.waits_for_path() {
                        self.sync_soon(now_ms);
                    }
                    self.routes_changed();
                }
            }
            BeaconMatch::Current { newer: false } => {}
        }
        if origin == link {
            self.refusals.clear(&link);
        }
        let id = env.id();
        // The link that sent it has it: not offered back in sync rounds.
        self.peer_holds_beacon(link, id);
        if self.seen.contains(&id) {
            self.metrics.announces_duplicate += 1;
            return;
        }
        self.seen.insert(id, env.expires_at());
        // One beacon per origin per announce_min_interval, with a burst of
        // a few: a node that just linked sends two or three within a
        // second or two, and arrival times bunch up on slow links. A
        // newest beacon that is not passed on leaves a stale neighbour
        // list in others' graphs until the next one, which may be hours
        // away.
        let min = self.cfg.announce_min_interval_ms.max(1) as f32;
        let credit = self
            .announce_seen
            .get(&origin)
            .map_or(BEACON_BURST, |&(t, c)| (c + now_ms.saturating_sub(t) as f32 / min).min(BEACON_BURST));
        if credit < 1.0 {
            self.announce_seen.insert(origin, (now_ms, credit));
            self.metrics.envelopes_rate_limited += 1;
            return;
        }
        if self.announce_seen.len() >= self.cfg.max_cards * 2 {
            let cutoff = now_ms.saturating_sub(self.cfg.route_timeout_ms);
            self.announce_seen.retain(|_, (t, _)| *t >= cutoff);
            // Still full of recent origins: forget the one heard longest ago.
            while self.announce_seen.len() >= self.cfg.max_cards * 2 {
                let Some(oldest) = self.announce_seen.iter().min_by_key(|(_, (t, _))| *t).map(|(k, _)| *k) else {
                    break;
                };
                self.announce_seen.remove(&oldest);
            }
        }
        self.announce_seen.insert(origin, (now_ms, credit - 1.0));
        self.metrics.announces_in += 1;
        self.cards_out.set_beacon(&origin, env.bytes());
        let mut env = env;
        if env.take_hop() {
            // Over federation links only our own community's announces go.
            let ours = self.cards.get(&origin).is_some_and(|c| c.domain == self.cfg.domain);
            // The origin sends its beacon to each of its links itself, and
            // signs a fresh one whenever a link comes or goes: its listed
            // neighbours have it already. Not sending it to them again is
            // what keeps a shared segment (batman-adv) at N-1 copies of a
            // beacon instead of (N-1)^2.
            // Likewise the neighbour it came from passed it to each of its
            // own links (as its latest beacon lists them) except those the
            // origin had reached: those have it too.
            // And over the mesh a beacon follows its origin's broadcast tree
            // (flood.rs), as a channel message does: one copy per node, not
            // one per link. Where the trees of two nodes disagree for a
            // moment, the link sync offers the newest beacons on every link.
            let reached = &beacon.neighbours;
            let empty = Vec::new();
            let relayed = self.cards.get(&link).filter(|_| link != origin).map_or(&empty, |c| &c.neighbours);
            let targets: Vec<NodeId> = self
                .links
                .iter()
                .filter(|(k, l)| **k != link && **k != origin && (l.fed.is_none() || ours))
                .filter(|(k, l)| l.fed.is_some() || !(reached.contains(k) || relayed.contains(k)))
                .map(|(k, _)| *k)
                .collect();
            let targets: Vec<NodeId> = targets
                .into_iter()
                .filter(|k| self.links.get(k).is_some_and(|l| l.fed.is_some()) || self.on_flood_tree(origin, *k))
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
