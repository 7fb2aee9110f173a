//! Links: the hybrid handshake in both roles, pinning and link policy,
//! sessions and their replacement on rekey, and sealing frames onto a
//! link. It does not decide what to send over a link (sync, forward,
//! announce do) and keeps no peer addresses beyond the live links.

use super::*;
use crate::hslimit::{COOKIE_USE_MS, Verdict};
use crate::link::cookie;
use crate::link::frame::MAX_FRAGMENT_DATA;
use crate::link::packet::{COOKIE_LEN, MAC2_LEN, emit_cookie, emit_init_cookie};

/// Cookies from loaded peers kept for later handshakes.
pub(super) const MAX_COOKIES_HELD: usize = 256;

/// Why a peer that completed a handshake is not linked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Refusal {
    Myself,
    PinMismatch {
        pinned: NodeId,
    },
    NotConfigured,
    LinkLimit(usize),
    NotAnnounced {
        node: NodeId,
        fp: [u8; 8],
    },
    /// Refused again while a penalty runs (the cause is the earlier one).
    Penalized(String),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Myself => f.write_str("that is this node itself"),
            Refusal::PinMismatch { pinned } => write!(f, "key does not match the pinned key of {pinned}"),
            Refusal::NotConfigured => f.write_str("not a configured peer and accept_unknown is off"),
            Refusal::LinkLimit(n) => write!(f, "link limit of {n} reached"),
            Refusal::Penalized(reason) => f.write_str(reason),
            Refusal::NotAnnounced { node, fp } => write!(
                f,
                "proved a key that does not match node {node} / fingerprint {} it announced over mDNS",
                crate::crypto::to_hex(fp)
            ),
        }
    }
}

pub(super) struct Link {
    pub(super) addr: SocketAddr,
    pub(super) current: Session,
    pub(super) previous: Option<Session>,
    pub(super) last_rx: u64,
    pub(super) last_tx: u64,
    pub(super) next_sync: u64,
    pub(super) offer_cursor: Option<u64>,
    /// Store ids the current pass over the store has still to look at.
    pub(super) pass_left: usize,
    /// The offered window not yet answered, and whether the next window
    /// waits for its answers (flow.rs).
    pub(super) round: std::collections::BTreeSet<EnvelopeId>,
    pub(super) chained: bool,
    /// How long a chained window waits for its answers before the next
    /// goes anyway, and whether any of the window was answered (flow.rs).
    pub(super) window_wait: u64,
    pub(super) round_answered: bool,
    /// Budget of envelopes sent unasked, and whether one was held back
    /// since the pass over the store began (flow.rs).
    pub(super) push: Bucket,
    pub(super) held_back: bool,
    /// Ids the peer offered that we answer later, and when (flow.rs).
    pub(super) deferred: Vec<EnvelopeId>,
    /// Ids that came over their origin's budget on a channel, asked for
    /// again when it has a token for each (flow.rs).
    pub(super) paced: Vec<(EnvelopeId, PaceKey)>,
    pub(super) deferred_at: u64,
    /// Envelopes asked of the peer and when to ask once more, and how
    /// many were asked since the list last dropped those that came
    /// (flow.rs).
    pub(super) awaited: std::collections::VecDeque<(EnvelopeId, u64, u8)>,
    pub(super) asked_since_sweep: usize,
    /// Envelopes pushed to the peer unasked and when to see whether it
    /// said it has them (pushcheck.rs).
    pub(super) pushed: std::collections::VecDeque<(EnvelopeId, u64, u8)>,
    pub(super) reasm: Reassembler,
    pub(super) bucket: Bucket,
    /// When the initiator of this session starts the next rekey (retried
    /// if the new handshake is lost).
    pub(super) rekey_at: u64,
    pub(super) rx: u64,
    pub(super) tx: u64,
    /// Ids the peer said it has; not offered to it again. Cleared when full
    /// (with the store floor, `forget_peer_has`).
    pub(super) peer_has: std::collections::BTreeSet<EnvelopeId>,
    /// Admission number below which every stored id is in `peer_has`: a
    /// pass over the store starts here (flow.rs).
    pub(super) store_floor: u64,
    /// Ids the peer has, kept across rekeys: beacon ids are looked up
    /// here. Cleared when the peer signs a new card (it restarted) or when
    /// full.
    pub(super) beacons_had: std::collections::BTreeSet<EnvelopeId>,
    /// The peer holds every newest beacon stored before this card-book
    /// generation (sync.rs); reset with `beacons_had`.
    pub(super) beacon_floor: u64,
    /// Set when this is a federation link.
    pub(super) fed: Option<Meter>,
    /// The peer has sent an authenticated frame on it: it accepted the
    /// link (confirm.rs). Until then nothing is offered or forwarded.
    pub(super) confirmed: bool,
    /// Budget for announces of origins whose card we do not have yet.
    pub(super) new_cards: Bucket,
    /// Budget for full cards the peer asks us for (cardfetch.rs), the same
    /// size: one want frame names up to 70 cards of 1.4 KB each.
    pub(super) cards_asked: Bucket,
    /// Budget for beacons the peer asks us for (a new link wants the
    /// beacons it lacks: one per node of the mesh, about 300 bytes each).
    pub(super) beacons_asked: Bucket,
    /// When a "session unknown" hint last made us handshake (unknown.rs).
    pub(super) hinted_at: Option<u64>,
}

/// Announces of origins never seen before accepted per second from one
/// link, and burst: enough for a new link into a large mesh or a
/// federation card exchange, not for a neighbour minting identities.
pub(super) const NEW_CARD_RATE: u32 = 20;
pub(super) const NEW_CARD_BURST: u32 = 300;
/// Beacons served per second to one link, and burst (cardfetch.rs).
pub(super) const BEACON_RATE: u32 = 100;
pub(super) const BEACON_BURST: u32 = 1024;

/// Most ids remembered per link as already held by the peer.
pub(super) const MAX_PEER_HAS: usize = 8192;

pub(super) struct PendingInit {
    pub(super) hs: Initiator,
    pub(super) addr: SocketAddr,
    pub(super) started: u64,
    /// Key the peer must prove (pin, or the key of the link being rekeyed).
    pub(super) expect: Option<[u8; 32]>,
    /// Node id and key fingerprint the peer announced over mDNS.
    pub(super) expect_node: Option<(NodeId, [u8; 8])>,
    /// The msg1 datagram as first sent (type 1), for a resend with a
    /// cookie's proof or when no answer came (resend.rs); and whether the
    /// cookie's resend happened.
    pub(super) msg1: Vec<u8>,
    pub(super) cookie_used: bool,
    /// Copies of msg1 sent since (resend.rs).
    pub(super) resent: u8,
}

pub(super) struct PendingResp {
    pub(super) hs: Responder,
    pub(super) addr: SocketAddr,
    pub(super) started: u64,
}
/// Every timer a live link runs, named (as boringtun's timers.rs names
/// its own). [`Link::timers`] is the one place their deadlines are
/// computed: `poll_timeout` sleeps until the earliest, `link_timers` fires
/// the due ones, so the two cannot disagree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LinkTimer {
    /// Nothing sent for `keepalive_ms`: send a keepalive.
    Keepalive,
    /// Nothing heard for `dead_after_ms`: drop the link.
    DeadPeer,
    /// Offer the store's ids again.
    Sync,
    /// Answer ids the peer offered that had to wait (flow.rs).
    Deferred,
    /// Ask again for envelopes asked for that did not come (flow.rs).
    Rewant,
    /// Offer again what was pushed and not confirmed (pushcheck.rs).
    PushCheck,
    /// The initiator replaces the session (retried if it is lost).
    Rekey,
    /// A federation link's out-quota has a token for its backlog.
    Pace,
    /// The peer never confirmed the link: drop it.
    Unconfirmed,
}

impl Link {
    /// Forgets which ids the peer holds: every stored id is looked at
    /// again from the next pass on.
    pub(super) fn forget_peer_has(&mut self) {
        self.peer_has.clear();
        self.store_floor = 0;
    }

    /// The deadline (monotonic ms) of each timer this link runs.
    pub(super) fn timers(&self, cfg: &Config) -> impl Iterator<Item = (LinkTimer, u64)> {
        [
            Some((LinkTimer::Keepalive, self.last_tx + cfg.keepalive_ms)),
            Some((LinkTimer::DeadPeer, self.last_rx + cfg.dead_after_ms)),
            Some((LinkTimer::Sync, self.next_sync)),
            (!self.deferred.is_empty() || !self.paced.is_empty()).then_some((LinkTimer::Deferred, self.deferred_at)),
            Node::rewant_at(self).map(|t| (LinkTimer::Rewant, t)),
            Node::push_check_at(self).map(|t| (LinkTimer::PushCheck, t)),
            self.current.initiator.then_some((LinkTimer::Rekey, self.rekey_at)),
            // After a refused take the bucket was updated at that moment,
            // so this lies ahead of it. Not before the peer confirmed the
            // link: nothing is sent until then (confirm() drains the
            // backlog), so the timer would be due at once, again and again.
            self.fed.as_ref().filter(|_| self.confirmed).and_then(Meter::next_send_at).map(|t| (LinkTimer::Pace, t)),
            (!self.confirmed)
                .then_some((LinkTimer::Unconfirmed, self.current.established_at + cfg.handshake_timeout_ms)),
        ]
        .into_iter()
        .flatten()
    }
}

impl Node {
    /// Fires every link timer that is due, and ends handshakes that timed
    /// out.
    pub(super) fn link_timers(&mut self, now_ms: u64) {
        let timeout = self.cfg.handshake_timeout_ms;
        self.initiators.retain(|_, p| now_ms < p.started + timeout);
        self.responders.retain(|_, p| now_ms < p.started + timeout);
        self.resend_first_messages(now_ms);
        let ids: Vec<NodeId> = self.links.keys().copied().collect();
        for id in ids {
            let Some(l) = self.links.get(&id) else { continue };
            let due: Vec<LinkTimer> = l.timers(&self.cfg).filter(|(_, t)| now_ms >= *t).map(|(k, _)| k).collect();
            let (addr, remote_ed) = (l.addr, l.current.remote_ed);
            if due.contains(&LinkTimer::DeadPeer) {
                self.drop_link(id, "peer silent past the dead-peer timeout");
                continue;
            }
            if due.contains(&LinkTimer::Unconfirmed) {
                self.drop_link(id, "the peer never confirmed the link");
                continue;
            }
            if due.contains(&LinkTimer::Deferred) {
                self.redo_deferred(id, now_ms);
            }
            if due.contains(&LinkTimer::Rewant) {
                self.rewant(id, now_ms);
            }
            if due.contains(&LinkTimer::PushCheck) {
                self.check_pushes(id, now_ms);
            }
            if due.contains(&LinkTimer::Sync) {
                self.offer(id, now_ms);
            }
            if due.contains(&LinkTimer::Pace) {
                self.drain_backlog(id, now_ms);
            }
            if due.contains(&LinkTimer::Rekey) {
                // If this handshake is lost, try again after a while.
                let retry = now_ms + self.cfg.retry_max_ms.max(2 * self.cfg.handshake_timeout_ms);
                if let Some(l) = self.links.get_mut(&id) {
                    l.rekey_at = retry;
                }
                self.initiate(addr, Some(remote_ed), None, true, now_ms);
            }
            // Anything sent above counts as a keepalive.
            if let Some(l) = self.links.get(&id)
                && now_ms >= l.last_tx + self.cfg.keepalive_ms
            {
                self.send_frame(id, &keepalive(), now_ms);
            }
        }
    }

    pub(super) fn initiate(
        &mut self,
        addr: SocketAddr,
        expect: Option<[u8; 32]>,
        expect_node: Option<(NodeId, [u8; 8])>,
        eager: bool,
        now_ms: u64,
    ) {
        if self.initiators.len() >= self.cfg.max_pending_handshakes {
            return;
        }
        let idx = self.fresh_index();
        match Initiator::start(&self.identity, &mut self.rng, idx) {
            Ok((hs, msg1)) => {
                let data = self.proved_msg1(addr, idx, &msg1, now_ms);
                // Not eager: no copies of msg1 (resend.rs).
                let resent = if eager { 0 } else { super::resend::HS_RESENDS };
                let p =
                    PendingInit { hs, addr, started: now_ms, expect, expect_node, msg1, cookie_used: false, resent };
                self.initiators.insert(idx, p);
                self.transmit(addr, data);
            }
            Err(e) => self.emit(Event::HandshakeFailed { addr, reason: e.to_string() }),
        }
    }

    /// Our msg1 as it goes to `addr`: with the proof of a cookie this
    /// peer gave us lately, so that we are not told again.
    pub(super) fn proved_msg1(&self, addr: SocketAddr, idx: u32, msg1: &[u8], now_ms: u64) -> Vec<u8> {
        self.cookies_held
            .get(&addr.ip())
            .filter(|(_, at)| now_ms < at + COOKIE_USE_MS)
            .and_then(|(c, _)| emit_init_cookie(msg1, &cookie::mac2(c, idx, msg1.get(6..).unwrap_or_default())))
            .unwrap_or_else(|| msg1.to_vec())
    }

    pub(super) fn on_init(
        &mut self,
        now_ms: u64,
        from: SocketAddr,
        sender: u32,
        noise: &[u8],
        mac2: Option<&[u8; MAC2_LEN]>,
    ) {
        // Before any cryptography: msg1 is unauthenticated and costly.
        let invalid = self.hs_limit.proofs_invalid;
        let verdict = self.hs_limit.msg1(from.ip(), sender, noise, mac2, now_ms, &mut self.rng);
        self.metrics.handshake_proofs_invalid += self.hs_limit.proofs_invalid - invalid;
        match verdict {
            Verdict::Answer => {}
            Verdict::SendCookie(c) => {
                self.metrics.handshake_cookies_sent += 1;
                self.transmit(from, emit_cookie(sender, &c));
                return;
            }
            Verdict::Drop => {
                self.metrics.handshakes_rate_limited += 1;
                return;
            }
        }
        // One pending response per address, and a bounded total: message 1
        // is unauthenticated, so this is all a stranger can make us hold.
        self.responders.retain(|_, p| p.addr != from);
        if self.responders.len() >= self.cfg.max_pending_handshakes {
            let oldest = self.responders.iter().min_by_key(|(_, p)| p.started).map(|(k, _)| *k);
            if let Some(k) = oldest {
                self.responders.remove(&k);
            }
        }
        let idx = self.fresh_index();
        match Responder::respond(&self.identity, &mut self.rng, idx, sender, noise) {
            Ok((hs, data)) => {
                self.responders.insert(idx, PendingResp { hs, addr: from, started: now_ms });
                self.transmit(from, data);
            }
            Err(e) => self.handshake_failed(from, e),
        }
    }

    /// A loaded peer's cookie for a handshake we started: keep it for later
    /// attempts and send that msg1 again with the proof, once.
    pub(super) fn on_cookie(&mut self, now_ms: u64, from: SocketAddr, receiver: u32, cookie: &[u8; COOKIE_LEN]) {
        let Some(p) = self.initiators.get_mut(&receiver).filter(|p| p.addr.ip() == from.ip() && !p.cookie_used) else {
            // Not ours, or a second one: nothing to do, and nothing to send.
            self.metrics.datagrams_malformed += 1;
            return;
        };
        p.cookie_used = true;
        let (addr, msg1) = (p.addr, p.msg1.clone());
        self.metrics.handshake_cookies_received += 1;
        if !self.cookies_held.contains_key(&from.ip()) && self.cookies_held.len() >= MAX_COOKIES_HELD {
            let oldest = self.cookies_held.iter().min_by_key(|(_, (_, at))| *at).map(|(k, _)| *k);
            if let Some(k) = oldest {
                self.cookies_held.remove(&k);
            }
        }
        self.cookies_held.insert(from.ip(), (*cookie, now_ms));
        // The same msg1, now with the cookie's proof.
        let data = self.proved_msg1(addr, receiver, &msg1, now_ms);
        self.transmit(addr, data);
    }

    pub(super) fn handshake_failed(&mut self, addr: SocketAddr, e: HandshakeError) {
        self.metrics.handshakes_failed += 1;
        self.emit(Event::HandshakeFailed { addr, reason: e.to_string() });
    }

    pub(super) fn on_resp(&mut self, now_ms: u64, from: SocketAddr, sender: u32, receiver: u32, noise: &[u8]) {
        let Some(p) = self.initiators.remove(&receiver) else {
            self.metrics.datagrams_unknown_session += 1;
            return;
        };
        if p.addr != from {
            // Not from where we sent it: keep waiting for the real answer.
            self.initiators.insert(receiver, p);
            self.metrics.datagrams_unknown_session += 1;
            return;
        }
        match p.hs.finish(&self.identity, sender, noise) {
            Ok((keys, data)) => {
                let announced = match p.expect_node {
                    Some((id, fp))
                        if NodeId::from_public_key(&keys.remote_ed) != id || fingerprint(&keys.remote_ed) != fp =>
                    {
                        Err(Refusal::NotAnnounced { node: id, fp })
                    }
                    _ => Ok(()),
                };
                if let Err(reason) = announced.and_then(|_| self.check_policy(&keys, from, p.expect)) {
                    // Finish the handshake so the responder can read why.
                    self.transmit(from, data);
                    self.refuse(from, &keys, &reason);
                    self.send_refusal(from, keys, reason.told());
                    return;
                }
                self.transmit(from, data);
                let node = NodeId::from_public_key(&keys.remote_ed);
                self.establish(keys, from, now_ms);
                // Confirm at once: the responder counts the link up on it.
                self.send_frame(node, &keepalive(), now_ms);
            }
            Err(e) => self.handshake_failed(from, e),
        }
    }

    pub(super) fn on_final(&mut self, now_ms: u64, from: SocketAddr, receiver: u32, noise: &[u8]) {
        let Some(p) = self.responders.remove(&receiver) else {
            self.metrics.datagrams_unknown_session += 1;
            return;
        };
        if p.addr != from {
            self.responders.insert(receiver, p);
            self.metrics.datagrams_unknown_session += 1;
            return;
        }
        match p.hs.finish(noise) {
            Ok(keys) => {
                let expect = self.peers.pin_for(from);
                if let Err(reason) = self.check_policy(&keys, from, expect) {
                    self.refuse(from, &keys, &reason);
                    self.send_refusal(from, keys, reason.told());
                    return;
                }
                let node = NodeId::from_public_key(&keys.remote_ed);
                self.establish(keys, from, now_ms);
                // Confirm at once so the initiator sees the session is live.
                self.send_frame(node, &keepalive(), now_ms);
            }
            Err(e) => self.handshake_failed(from, e),
        }
    }

    pub(super) fn check_policy(
        &self,
        keys: &SessionKeys,
        from: SocketAddr,
        expect: Option<[u8; 32]>,
    ) -> Result<(), Refusal> {
        let node = NodeId::from_public_key(&keys.remote_ed);
        if node == self.me {
            return Err(Refusal::Myself);
        }
        if let Some(reason) = self.refusals.blocked(&node, self.clock) {
            return Err(Refusal::Penalized(reason.to_string()));
        }
        if let Some(pin) = expect
            && !crate::crypto::ct_eq(&pin, &keys.remote_ed)
        {
            return Err(Refusal::PinMismatch { pinned: NodeId::from_public_key(&pin) });
        }
        let configured = self.peers.is_configured(from, &keys.remote_ed);
        if !self.cfg.accept_unknown && !configured {
            return Err(Refusal::NotConfigured);
        }
        if !self.links.contains_key(&node) && self.links.len() >= self.cfg.max_links {
            return Err(Refusal::LinkLimit(self.cfg.max_links));
        }
        Ok(())
    }

    pub(super) fn refuse(&mut self, addr: SocketAddr, keys: &SessionKeys, reason: &Refusal) {
        let node = NodeId::from_public_key(&keys.remote_ed);
        if let Refusal::PinMismatch { pinned } = reason {
            // Also under the pinned id, which is what the admin configured
            // and what `meshpost federation` shows (logged once, below).
            self.refusals.note(*pinned, &reason.to_string(), self.clock, None);
        }
        self.refused(addr, node, reason.to_string(), None);
    }

    /// Counts a refusal of `node` and logs it once per cause; `penalize`
    /// also refuses its handshakes for a growing while.
    pub(super) fn refused(&mut self, addr: SocketAddr, node: NodeId, reason: String, penalize: Option<(u64, u64)>) {
        self.metrics.peers_refused += 1;
        if self.refusals.note(node, &reason, self.clock, penalize) {
            self.emit(Event::PeerRefused { addr, node: Some(node), reason });
        }
    }

    pub(super) fn establish(&mut self, keys: SessionKeys, addr: SocketAddr, now_ms: u64) {
        self.metrics.handshakes_completed += 1;
        let node = NodeId::from_public_key(&keys.remote_ed);
        let session = Session::new(keys, now_ms);
        self.by_index.insert(session.local_idx, node);
        let is_new = !self.links.contains_key(&node);
        match self.links.get_mut(&node) {
            Some(l) => {
                let old = core::mem::replace(&mut l.current, session);
                if let Some(prev) = l.previous.replace(old) {
                    self.by_index.remove(&prev.local_idx);
                }
                l.addr = addr;
                l.last_rx = now_ms;
                l.rekey_at = now_ms + self.cfg.rekey_after_ms;
                l.next_sync = now_ms;
                // A new session may mean the peer restarted with an empty
                // (RAM) store; but a restart also signs a new card, which
                // clears what we noted it holds, envelopes and beacons
                // (announce.rs). A rekey every ten minutes does not make us
                // offer it every stored id again (a day of channel messages
                // is hundreds of ids per link).
                l.offer_cursor = None;
                l.round.clear();
                l.chained = false;
                l.window_wait = flow::WINDOW_WAIT_MS;
                self.emit(Event::Rekeyed { node });
            }
            None => {
                self.links.insert(
                    node,
                    Link {
                        addr,
                        current: session,
                        previous: None,
                        last_rx: now_ms,
                        last_tx: now_ms,
                        next_sync: now_ms,
                        offer_cursor: None,
                        pass_left: 0,
                        round: std::collections::BTreeSet::new(),
                        chained: false,
                        window_wait: flow::WINDOW_WAIT_MS,
                        round_answered: false,
                        push: Bucket::full(flow::PUSH_BURST, now_ms),
                        held_back: false,
                        deferred: Vec::new(),
                        paced: Vec::new(),
                        deferred_at: u64::MAX,
                        awaited: std::collections::VecDeque::new(),
                        asked_since_sweep: 0,
                        pushed: std::collections::VecDeque::new(),
                        reasm: Reassembler::new(
                            self.cfg.reassembly_transfers_per_link,
                            self.cfg.reassembly_bytes_per_link,
                            self.cfg.reassembly_timeout_ms,
                        ),
                        bucket: Bucket::full(self.cfg.link_burst, now_ms),
                        rekey_at: now_ms + self.cfg.rekey_after_ms,
                        rx: 0,
                        tx: 0,
                        peer_has: std::collections::BTreeSet::new(),
                        beacons_had: std::collections::BTreeSet::new(),
                        beacon_floor: 0,
                        store_floor: 0,
                        fed: None,
                        confirmed: false,
                        new_cards: Bucket::full(NEW_CARD_BURST, now_ms),
                        cards_asked: Bucket::full(NEW_CARD_BURST, now_ms),
                        beacons_asked: Bucket::full(BEACON_BURST, now_ms),
                        hinted_at: None,
                    },
                );
            }
        }
        self.peers.linked(node, addr, now_ms);
        if is_new {
            self.links_changed();
            self.introduce(node);
            self.announce_soon();
        }
        // A federation link is a configured peer with a policy and a pin.
        let policy = self.peers.pinned(&node).and_then(|s| s.federation.clone());
        if let Some(l) = self.links.get_mut(&node) {
            match (&mut l.fed, policy) {
                (Some(m), Some(p)) => m.policy = p,
                (slot, p) => *slot = p.map(|p| Meter::new(p, now_ms)),
            }
        }
        // A new federation link gets our community's cards at once (paced),
        // so its side can address our nodes without waiting for announces.
        if is_new && self.links.get(&node).is_some_and(|l| l.fed.is_some()) {
            for n in self.cards_out.newest_first() {
                self.queue_out(node, Queued::Card(n));
            }
            self.drain_backlog(node, now_ms);
        }
        self.offer(node, now_ms);
    }

    pub(super) fn drop_link(&mut self, node: NodeId, reason: &'static str) {
        if let Some(l) = self.links.remove(&node) {
            self.by_index.remove(&l.current.local_idx);
            if let Some(p) = l.previous {
                self.by_index.remove(&p.local_idx);
            }
            self.peers.unlinked(&node, self.clock);
            self.links_changed();
            self.announce_soon();
            self.emit(Event::LinkDown { node, reason });
        }
    }

    pub(super) fn on_data(
        &mut self,
        now_ms: u64,
        from: SocketAddr,
        receiver: u32,
        counter: u64,
        header: &[u8],
        ct: &[u8],
    ) {
        let Some(&node) = self.by_index.get(&receiver) else {
            return self.session_unknown(now_ms, from, receiver);
        };
        let Some(l) = self.links.get_mut(&node) else {
            self.metrics.datagrams_unknown_session += 1;
            return;
        };
        let session = if l.current.local_idx == receiver {
            &mut l.current
        } else {
            match l.previous.as_mut() {
                Some(p) if p.local_idx == receiver => p,
                _ => {
                    self.metrics.datagrams_unknown_session += 1;
                    return;
                }
            }
        };
        let plain = match session.open(counter, header, ct) {
            Ok(p) => p,
            Err(OpenError::Replayed) => {
                self.metrics.datagrams_replayed += 1;
                return;
            }
            Err(OpenError::Decrypt) => {
                self.metrics.datagrams_decrypt_failed += 1;
                return;
            }
        };
        // Authenticated: the peer may have moved (roaming).
        l.addr = from;
        l.last_rx = now_ms;
        l.rx += 1;
        let frame = Frame::parse(&plain);
        match frame {
            Ok(Frame::Refuse(reason)) => return self.refused_by_peer(node, reason),
            Ok(_) => self.confirm(node, now_ms),
            Err(_) => {}
        }
        let Some(l) = self.links.get_mut(&node) else { return };
        match frame {
            Ok(Frame::Keepalive | Frame::Refuse(_)) => {}
            Ok(Frame::Fragment { xfer, index, count, data }) => {
                match l.reasm.insert(now_ms, xfer, index, count, data) {
                    Ok(Some(bytes)) => self.on_envelope(now_ms, node, &bytes),
                    Ok(None) => {}
                    Err(_) => self.metrics.fragments_dropped += 1,
                }
            }
            Ok(Frame::Ids { list, ids }) => self.on_ids(now_ms, node, list, ids),
            Ok(Frame::WantBetter { hops, ids }) => self.on_want_better(now_ms, node, hops, ids),
            Err(_) => self.metrics.frames_invalid += 1,
        }
    }

    /// Sends an envelope over a link, cut into fragments if it must be.
    /// An envelope of several fragments takes its transfer number from the
    /// end of its signature, so a copy sent again (a card asked for again,
    /// an envelope wanted again) is the same transfer to the peer's
    /// reassembly: the fragments that got through the first time count,
    /// and with a fifth lost a card of two fragments is whole after two
    /// sends 92 times in 100, not 87. (The hop count is not signed; two
    /// copies that differ only there make a valid envelope whichever part
    /// comes.)
    pub(super) fn send_envelope_bytes(&mut self, node: NodeId, bytes: &[u8]) {
        let by_sig = bytes.last_chunk::<4>().filter(|_| bytes.len() > MAX_FRAGMENT_DATA);
        let xfer = match by_sig {
            Some(s) => u32::from_le_bytes(*s),
            None => {
                self.next_xfer = self.next_xfer.wrapping_add(1);
                self.next_xfer
            }
        };
        let now = self.clock;
        self.fragments = WireClass::of_envelope(bytes);
        for f in split(xfer, bytes) {
            self.send_frame(node, &f, now);
        }
    }

    pub(super) fn send_frame(&mut self, node: NodeId, frame: &[u8], now_ms: u64) {
        let Some(l) = self.links.get_mut(&node) else {
            return;
        };
        let Some(d) = l.current.seal(frame) else {
            return;
        };
        l.last_tx = l.last_tx.max(now_ms);
        l.tx += 1;
        let addr = l.addr;
        self.sending = WireClass::of_frame(frame, self.fragments);
        self.transmit(addr, d);
    }
}
