//! Inventory sync on a link: offering stored ids and the ids of the newest
//! beacons, answering offers with want and have, and sending what the peer
//! wants. A round offers a window of stored ids (flow.rs chains windows
//! while the store has more for the peer) and up to `offer_batch` beacon
//! ids, every `sync_interval` otherwise.
//!
//! Beacons are flooded at once and offered here as well, until the peer
//! says it has them (or sent them to us): a flooded copy lost on the way
//! would otherwise leave a stale neighbour list in the peer's graph until
//! the origin's next beacon, which may be hours away. That costs about
//! 32 bytes (offer and have) per beacon and link.

use super::*;

/// How soon after the graph changed a sync round offers what waits here.
const SYNC_SOON_MS: u64 = 200;

impl Node {
    /// Whether a direct envelope or acknowledgement in the store has no
    /// path now: its destination (not linked) has no route, or it is for
    /// another community (a gateway may have come; not looked up here).
    /// Channel messages and envelopes on a route do not wait for a change
    /// of the graph; under churn at a thousand nodes the graph changes
    /// every second or so, and a sync round of every link each time was
    /// most of what a node did.
    pub(super) fn waits_for_path(&self) -> bool {
        self.store.iter().any(|(_, e)| {
            let dest = NodeId(e.head.dest().id);
            matches!(e.head.kind(), Kind::Direct | Kind::Ack)
                && dest != self.me
                && !self.links.contains_key(&dest)
                && (self.foreign_domain(&e.head).is_some() || self.best_route(&dest).is_none())
        })
    }

    /// Brings every link's next sync round forward when envelopes wait
    /// here: one whose destination had no path may have one now.
    pub(super) fn sync_soon(&mut self, now_ms: u64) {
        if self.store.is_empty() {
            return;
        }
        for l in self.links.iter_mut().map(|(_, l)| l) {
            l.next_sync = l.next_sync.min(now_ms + SYNC_SOON_MS);
        }
    }

    pub(super) fn offer(&mut self, node: NodeId, now_ms: u64) {
        if !self.links.contains_key(&node) {
            return;
        }
        let most = self.cfg.sync_interval_ms;
        if let Some(l) = self.links.get_mut(&node).filter(|l| !l.confirmed) {
            // Nothing goes over a link the peer has not confirmed
            // (should_offer), and a window walked now moved the pass's
            // cursor past up to `offer_batch` ids without offering them:
            // a returning peer got the oldest 1024 of its backlog a whole
            // round later. confirm() starts the first round.
            l.next_sync = now_ms + most;
            return;
        }
        if let Some(l) = self.links.get_mut(&node).filter(|l| l.chained && l.fed.is_none()) {
            // The last window's wait ran out before every id was answered
            // (flow.rs): the next goes now. The one after waits longer if
            // the peer answered none of it; a peer that answered some is
            // there and keeping up, and what it left was lost on the way
            // or is on its way from elsewhere (a backlog over a link that
            // lost one datagram of most windows' answers waited 0.5, 1, 2
            // and 4 s in turn). Its unanswered ids lie behind the cursor
            // now: another pass follows this one at once, as for
            // envelopes held back.
            l.window_wait =
                if l.round_answered { flow::WINDOW_WAIT_MS } else { l.window_wait.saturating_mul(2).min(most) };
            l.held_back = true;
            self.metrics.offer_windows_unanswered += 1;
        }
        // Only what this link should carry (see should_offer). Beacons go
        // with the first window of a pass over the store only: the windows
        // that follow it at once would each walk the beacon log again (at
        // 1000 nodes that was a third of a segment's work).
        let first = self.links.get(&node).is_some_and(|l| l.offer_cursor.is_none());
        let window = self.next_window(node);
        let had = self.links.get(&node).map(|l| &l.beacons_had);
        let mut floor = self.links.get(&node).map_or(0, |l| l.beacon_floor);
        let mut ids = window.ids;
        // The newest beacons, ours first, that the peer has not said it has.
        // Not over a federation link: that gets its handover.
        if first && self.links.get(&node).is_some_and(|l| l.fed.is_none()) {
            let held = |origin: &NodeId, id: &EnvelopeId| *origin == node || had.is_some_and(|h| h.contains(id));
            let mut beacons: Vec<EnvelopeId> =
                self.announce.as_ref().map(|e| e.id()).filter(|id| !held(&self.me, id)).into_iter().collect();
            // Beacons the peer holds up to the first it lacks are behind
            // the floor: the next round starts after them, so a round costs
            // what changed, not the whole card book.
            let mut holds_all = true;
            for (generation, origin, id) in self.cards.beacons_since(floor) {
                if held(&origin, &id) {
                    if holds_all {
                        floor = generation + 1;
                    }
                    continue;
                }
                holds_all = false;
                if beacons.len() >= self.cfg.offer_batch {
                    break;
                }
                beacons.push(id);
            }
            ids.extend(beacons);
        }
        if let Some(l) = self.links.get_mut(&node) {
            l.beacon_floor = floor;
            l.offer_cursor = window.cursor;
            l.store_floor = window.floor;
            l.pass_left = window.left;
        }
        self.window_sent(node, &ids, first, window.left > 0, now_ms);
        for f in id_frames(IdList::Offer, &ids) {
            self.send_frame(node, &f, now_ms);
        }
    }

    /// Notes that the peer `node` holds `id` (it sent or offered it to us),
    /// an envelope or a beacon.
    pub(super) fn peer_holds(&mut self, node: NodeId, id: EnvelopeId) {
        if let Some(l) = self.links.get_mut(&node) {
            if l.peer_has.len() >= MAX_PEER_HAS {
                l.forget_peer_has();
            }
            l.peer_has.insert(id);
            if l.beacons_had.len() >= MAX_PEER_HAS {
                l.beacons_had.clear();
            }
            l.beacons_had.insert(id);
        }
    }

    /// Notes that the peer `node` holds beacon `id` (beacons are not in
    /// the store, so only the beacon set needs it).
    pub(super) fn peer_holds_beacon(&mut self, node: NodeId, id: EnvelopeId) {
        if let Some(set) = self.links.get_mut(&node).map(|l| &mut l.beacons_had) {
            if set.len() >= MAX_PEER_HAS {
                set.clear();
            }
            set.insert(id);
        }
    }

    pub(super) fn on_ids(&mut self, now_ms: u64, node: NodeId, list: IdList, ids: Vec<EnvelopeId>) {
        match list {
            IdList::Offer => {
                let (mut want, mut have, mut later, mut better) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
                // An id twice in one list (a peer's offer, or our deferred
                // ids: a refused push and a later offer of it) is looked at
                // once: asked for twice, it came twice.
                let mut once = std::collections::BTreeSet::new();
                for id in ids {
                    if !once.insert(id) {
                        continue;
                    }
                    // The peer holds what it offers: not offered back.
                    self.peer_holds(node, id);
                    if let Some(d) = self.delivered.get(&id).copied() {
                        // Delivered here: say so once it is durable, and
                        // remind the origin, which may have missed our ack.
                        if d.durable {
                            have.push(id);
                            // A reminder does not wait for the origin's card
                            // (that would hold back every ack queued for it;
                            // the first ack of a cross-community message did).
                            self.queue_ack(d.origin, id, d.expires, now_ms, false);
                        } else {
                            later.push(id);
                        }
                    } else if self.short_of_hops(&id) {
                        // Ours cannot get there; theirs may (receive.rs),
                        // and is sent only if it can: a copy no better
                        // than ours is a duplicate on the air.
                        better.push(id);
                    } else if self.seen.contains(&id) || self.store.contains(&id) || self.holds_card(&id) {
                        // Not "have" before our copy is durable: the peer
                        // would stop offering it to us, and a crash here
                        // would leave it believing we hold it.
                        if self.writes.contains(&id) { later.push(id) } else { have.push(id) }
                    } else if self.links.get(&node).is_some_and(|l| flow::is_paced(l, &id)) {
                        // It came over its channel's budget and is asked
                        // for again in its turn (flow.rs): answered then.
                    } else if self.waits_for_start(&id) {
                        // It came before its session's start and waits for
                        // it unopened (sessions.rs): asked for again, so
                        // the peer's window is answered and its pass goes
                        // on to the start (left unanswered, as below, each
                        // window waited for its answers in vain).
                        want.push(id);
                    } else if self.asked_recently(&id, now_ms) {
                        // Asked of another link a moment ago and on its
                        // way: not fetched twice, and left unanswered (this
                        // peer offers it again next round). Answering it
                        // later instead doubled the duplicate copies on a
                        // segment of 100 under churn (3.4 -> 6.4 per
                        // delivered message): more links asked once the
                        // first copy was late.
                    } else if self.writes.contains(&id) {
                        // Being written: answered once it is durable.
                        later.push(id);
                    } else {
                        want.push(id);
                    }
                }
                self.defer(node, later, now_ms);
                self.want_better(node, &better, now_ms);
                let want = self.afford(node, want, now_ms);
                for id in &want {
                    self.note_asked(*id, now_ms);
                }
                self.awaiting(node, &want, now_ms);
                for f in id_frames(IdList::Want, &want).into_iter().chain(id_frames(IdList::Have, &have)) {
                    self.send_frame(node, &f, now_ms);
                }
            }
            IdList::Want => {
                self.answered(node, &ids, now_ms);
                let mut after_cold = false;
                for id in ids {
                    // The same rule as offers and forwarding: a peer gets
                    // only what we would have offered it (a federation
                    // peer cannot fetch what may not cross by asking).
                    // Nothing still being written (asked for again later).
                    let ours = self
                        .store
                        .get(&id)
                        .is_some_and(|e| !self.writes.contains(&id) && self.should_sync(&e.head, node));
                    if ours {
                        self.send_stored_id(node, id, &mut after_cold);
                    } else {
                        // Or a card a beacon of ours named (cardfetch.rs).
                        self.serve_card(now_ms, node, &id);
                    }
                }
            }
            IdList::Have => {
                self.answered(node, &ids, now_ms);
                for id in &ids {
                    self.sent_moved(*id, SentState::Forwarded);
                }
                if let Some(l) = self.links.get_mut(&node) {
                    if l.peer_has.len() + ids.len() > MAX_PEER_HAS {
                        l.forget_peer_has();
                    }
                    l.peer_has.extend(ids.iter().copied());
                    if l.beacons_had.len() + ids.len() > MAX_PEER_HAS {
                        l.beacons_had.clear();
                    }
                    l.beacons_had.extend(ids.iter().copied());
                }
                for id in ids {
                    // The recipient itself confirms: our copy has done its job.
                    let delivered = self.store.get(&id).is_some_and(|e| {
                        matches!(e.head.kind(), Kind::Direct | Kind::Ack) && e.head.dest().id == node.0
                    });
                    if delivered {
                        self.release(&id);
                    }
                }
            }
        }
    }

    /// Asks `node` for the copies of `ids` (stored here, short of hops)
    /// that would arrive with more hops left than ours: one frame per
    /// distinct hop count. Neither paid from the link's budget nor awaited
    /// (flow.rs): the peer sends only a better copy, most often none, and
    /// our own copy stays whatever comes.
    pub(super) fn want_better(&mut self, node: NodeId, ids: &[EnvelopeId], now_ms: u64) {
        let mut by_hops: Vec<(u8, EnvelopeId)> =
            ids.iter().filter_map(|id| self.store.get(id).map(|e| (e.head.hops_left(), *id))).collect();
        by_hops.sort_unstable();
        for group in by_hops.chunk_by(|a, b| a.0 == b.0) {
            let ids: Vec<EnvelopeId> = group.iter().map(|(_, id)| *id).collect();
            for f in want_better_frames(group[0].0, &ids) {
                self.send_frame(node, &f, now_ms);
            }
        }
    }

    /// A want of copies better than the asker's (`hops` hops left): ours
    /// goes only if it arrives with more, after the hop it takes on the
    /// way, and otherwise nothing is sent. The same rule as a want besides:
    /// only what we would have offered, nothing still being written.
    pub(super) fn on_want_better(&mut self, now_ms: u64, node: NodeId, hops: u8, ids: Vec<EnvelopeId>) {
        self.answered(node, &ids, now_ms);
        let mut after_cold = false;
        for id in ids {
            let better = self
                .store
                .get(&id)
                .filter(|e| e.head.hops_left().saturating_sub(1) > hops)
                .is_some_and(|e| !self.writes.contains(&id) && self.should_sync(&e.head, node));
            if better {
                self.send_stored_id(node, id, &mut after_cold);
            }
        }
    }
}
