//! Fetching the card a beacon names: the beacon is held, the neighbour it
//! came from is asked for the card with a `want` of the card's envelope id,
//! and when the card arrives the beacon is taken as if it came just then
//! (routes, flood). A node floods only beacons whose card it holds, so the
//! neighbour asked can always answer. Serving such wants is here too.
//!
//! A want that goes unanswered (with a fifth of datagrams lost, the want
//! or one of the card's two fragments is lost half the time) is sent
//! again each second, `CARD_REWANTS` times (flow.rs, `rewant`). A copy of
//! the beacon that comes after the hold asks again; each hold that ended
//! without the card doubles the wait for the next (up to 320 s), so a card
//! that cannot cross costs nine asks every five minutes or so, not one a
//! second.
//!
//! Bounded: at most `MAX_HELD` beacons wait; one held longer than
//! `HOLD_MS` gives way to a new one when the set is full, and a beacon
//! that does not fit is dropped and the next interval's one asks again.
//! Unknown origins are charged to the link's new-card budget, and cards
//! served to a link's budget of the same size (300, then 20 a
//! second), so a want frame of 70 ids cannot buy 100 KB at will.
//! It does not verify anything (the envelope was verified on receipt) and
//! does not decide what a card means (announce.rs does).

use super::*;
use crate::link::frame::{IdList, id_frames};

/// Most beacons waiting for their card at once.
pub(super) const MAX_HELD: usize = 256;
/// How long a beacon waits for its card before a new beacon may ask again
/// (doubled each time it did not come), and another may take its place.
pub(super) const HOLD_MS: u64 = 5_000;
/// How often a card a held beacon names is asked for again, a second
/// apart: at a fifth of datagrams lost, when a fetch (a want and the
/// card's two fragments) fails half the time, all nine asks fail for one
/// beacon in 600. The next copy of the beacon (a sync round) asks again.
pub(super) const CARD_REWANTS: u8 = 8;
/// Doublings of the wait before a beacon whose card did not come asks
/// again: `HOLD_MS` times 64 is about five minutes.
const MAX_BACKOFF: u8 = 6;
/// Most ids remembered as asked for (a want sent), each for `HOLD_MS`.
const MAX_ASKED: usize = 4096;

/// A beacon waiting for the card it names.
#[derive(Debug)]
pub(super) struct Held {
    beacon: Envelope,
    card_id: EnvelopeId,
    link: NodeId,
    /// When it was held and its card asked for.
    since: u64,
    /// Holds of this beacon that ended without its card: a copy asks
    /// again only `HOLD_MS` doubled this often after the last hold began.
    fails: u8,
}

impl Node {
    /// Holds `beacon` and asks `link` for the card `card_id`.
    pub(super) fn hold_beacon(&mut self, now_ms: u64, link: NodeId, beacon: Envelope, card_id: EnvelopeId) {
        let origin = beacon.origin_id();
        let fails = match self.held.get(&origin) {
            Some(h) if h.card_id == card_id => {
                if now_ms < h.since + (HOLD_MS << h.fails.min(MAX_BACKOFF)) {
                    // Already asking, or asked in vain a moment ago; this
                    // copy teaches nothing the held one will not.
                    self.metrics.announces_duplicate += 1;
                    return;
                }
                h.fails.saturating_add(1)
            }
            _ => 0,
        };
        if self.cards.get(&origin).is_none() && !self.new_card_budget(link, now_ms) {
            return;
        }
        if self.held.len() >= MAX_HELD && !self.held.contains_key(&origin) {
            self.held.retain(|_, h| now_ms < h.since + HOLD_MS);
            if self.held.len() >= MAX_HELD {
                self.metrics.envelopes_rate_limited += 1;
                return;
            }
        }
        self.held.insert(origin, Held { beacon, card_id, link, since: now_ms, fails });
        if self.asked_recently(&card_id, now_ms) && self.links.values().any(|l| flow::awaits(l, &card_id)) {
            return; // wanted a moment ago, and asked again if it does not come
        }
        self.metrics.cards_requested += 1;
        self.note_asked(card_id, now_ms);
        for f in id_frames(IdList::Want, &[card_id]) {
            self.send_frame(link, &f, now_ms);
        }
        self.awaiting(link, &[card_id], now_ms);
    }

    /// Remembers for `HOLD_MS` that we sent a want of `id` (bounded).
    pub(super) fn note_asked(&mut self, id: EnvelopeId, now_ms: u64) {
        if self.asked.len() >= MAX_ASKED {
            self.asked.pop_soonest();
        }
        self.asked.insert(id, now_ms + HOLD_MS, now_ms + HOLD_MS);
    }

    pub(super) fn asked_recently(&self, id: &EnvelopeId, now_ms: u64) -> bool {
        self.asked.get(id).is_some_and(|until| *until > now_ms)
    }

    /// Whether a held beacon still waits for the card `id`: its want is
    /// asked again (flow.rs), up to `CARD_REWANTS` times, while the
    /// beacon is held (past `HOLD_MS` too, until a newer copy or another
    /// beacon takes its place).
    pub(super) fn card_awaited(&self, id: &EnvelopeId) -> bool {
        self.held.iter().any(|(_, h)| h.card_id == *id)
    }

    /// A card of `origin` was learned: takes the beacon that waited for it.
    pub(super) fn card_arrived(&mut self, now_ms: u64, origin: NodeId) {
        let Some(h) = self.held.get(&origin) else { return };
        // Another card than the one named (an older one, say) keeps the
        // beacon waiting: taking it now would only ask again.
        if self.cards.by_card_id(&h.card_id).is_none_or(|(n, _)| n != origin) {
            return;
        }
        let Some(h) = self.held.remove(&origin) else { return };
        if self.links.contains_key(&h.link) {
            self.on_beacon(now_ms, h.link, h.beacon);
        }
    }

    /// Offers a new mesh link the ids of the cards we hold (not its own),
    /// so a node that links after a beacon went by learns the mesh at once
    /// instead of when each node next floods one (beacons back off to
    /// `announce_max_interval`); the sync round that follows offers the
    /// newest beacons (sync.rs). Ids only: what it holds costs 16 bytes.
    pub(super) fn offer_cards(&mut self, to: NodeId, now_ms: u64) {
        if self.links.get(&to).is_none_or(|l| l.fed.is_some()) {
            return; // a federation link gets its handover (links.rs)
        }
        let ids: Vec<EnvelopeId> = self.cards.card_ids().filter(|(n, _)| *n != to).map(|(_, id)| id).collect();
        for f in id_frames(IdList::Offer, &ids) {
            self.send_frame(to, &f, now_ms);
        }
    }

    /// Whether `id` names a card or newest beacon we hold (ours included).
    pub(super) fn holds_card(&self, id: &EnvelopeId) -> bool {
        self.full_card.as_ref().is_some_and(|(e, _)| e.id() == *id)
            || self.announce.as_ref().is_some_and(|e| e.id() == *id)
            || self.cards.by_card_id(id).is_some()
            || self.cards.by_beacon_id(id).is_some()
    }

    /// Answers a want of a card id, within the link's budget; false if it
    /// names no card we hold or the budget is spent.
    pub(super) fn serve_card(&mut self, now_ms: u64, to: NodeId, id: &EnvelopeId) -> bool {
        let own = self.full_card.as_ref().filter(|(e, _)| e.id() == *id).map(|(e, _)| e.bytes().to_vec());
        let bytes = own.or_else(|| {
            let (node, bytes) = self.cards.by_card_id(id)?;
            // A federation peer gets only our own community's cards, as
            // with beacons (announce.rs).
            let federated = self.links.get(&to).is_some_and(|l| l.fed.is_some());
            let ours = self.cards.get(&node).is_some_and(|c| c.domain == self.cfg.domain);
            (!federated || ours).then(|| bytes.to_vec())
        });
        let Some(bytes) = bytes else { return self.serve_beacon(now_ms, to, id) };
        if !self.links.get_mut(&to).is_some_and(|l| l.cards_asked.take(NEW_CARD_RATE, NEW_CARD_BURST, now_ms)) {
            self.metrics.envelopes_rate_limited += 1;
            return false;
        }
        self.metrics.cards_served += 1;
        self.send_envelope_bytes(to, &bytes);
        true
    }

    /// Answers a want of a beacon id (offered by [`offer_cards`]), within
    /// the link's beacon budget. A federation peer gets none this way: it
    /// has its handover.
    fn serve_beacon(&mut self, now_ms: u64, to: NodeId, id: &EnvelopeId) -> bool {
        if self.links.get(&to).is_none_or(|l| l.fed.is_some()) {
            return false;
        }
        let own = self.announce.as_ref().filter(|e| e.id() == *id).map(|e| e.bytes().to_vec());
        let Some(bytes) = own.or_else(|| self.cards.by_beacon_id(id).map(|(_, b)| b.to_vec())) else { return false };
        if !self.links.get_mut(&to).is_some_and(|l| l.beacons_asked.take(BEACON_RATE, BEACON_BURST, now_ms)) {
            self.metrics.envelopes_rate_limited += 1;
            return false;
        }
        self.send_envelope_bytes(to, &bytes);
        true
    }
}
