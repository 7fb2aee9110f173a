//! Flow control of the inventory sync on one link. The sender offers its
//! store in windows of at most `OFFER_WINDOW` ids and `WINDOW_BYTES` of
//! envelopes, and sends the next window as soon as the peer has answered
//! every id of the last one, so a backlog drains at the pace the peer
//! takes it instead of one window per `sync_interval`.
//! The receiver asks only for as many envelopes as the link's envelope
//! budget (`link_rate`, `link_burst`) admits, pays for them when it asks
//! (so they are not dropped when they arrive), and answers the rest of an
//! offer later: when the budget has refilled, or when a write has become
//! durable. (An id asked of another link stays unanswered, sync.rs.)
//!
//! It does not decide which ids may go over a link (forward.rs,
//! `should_offer`) nor what an answer means (sync.rs).

use super::*;

/// Stored ids offered in one window, and the envelope bytes they may add
/// up to. The peer holds a window in its socket's receive buffer while it
/// checks signatures: the kernel counts 1.3 to 2.8 KB per datagram, up to
/// 700 KB for 256, a third of the 2 MiB the daemon gets (forced when it
/// runs as root; without, a default `rmem_max` grants 416 KiB, and the
/// daemon warns at start). Short messages (about 400 bytes) fill the id
/// bound; the byte bound stops a window at about 64 envelopes of one full
/// datagram, or after the first one or two of the largest fragmented
/// envelopes (64 of those, 4 MB, went in one window before). With 64 ids
/// whatever their size, two nodes on loopback made 7,100 messages a
/// second and the receiver waited for the next window a third of its
/// time (docs/performance.md, "Offer windows by bytes").
pub(super) const OFFER_WINDOW: usize = 256;
pub(super) const WINDOW_BYTES: usize = 96 * 1024;
/// What we ask for leaves this share (one in so many) of the link's
/// envelope burst to what comes unasked: beacons, cards and pushes. A
/// backlog asked for as fast as the budget refilled emptied it, and the
/// peer's next beacon was dropped (and asked for later).
const WANT_RESERVE: u32 = 10;
/// How long a window waits for the peer's answers before the next goes
/// anyway; doubled while windows go wholly unanswered, up to
/// `sync_interval`.
/// The peer leaves some ids unanswered on purpose (asked of another link,
/// a message waiting for its session's start), and an answer can be
/// lost: waiting the whole `sync_interval` stalled a burst through a
/// relay for 15 s in two runs of five.
pub(super) const WINDOW_WAIT_MS: u64 = 500;
/// How long an offered id waits here before it is looked at again.
const DEFER_MS: u64 = 250;
/// Offered ids waiting here per link; more are left unanswered (the peer
/// offers them again in its next round).
const MAX_DEFERRED: usize = 1024;
/// Ids per link waiting for their origin's budget on a channel; more are
/// left unanswered (offered again in the peer's next round).
const MAX_PACED: usize = 256;
/// New envelopes sent over a mesh link unasked, per second and at once:
/// under the receiver's default budgets (per origin 50/s, burst 500; per
/// link 200/s, burst 1000), so pushes are not dropped there. Beyond them
/// envelopes go in offer windows, which follow the receiver's pace.
const PUSH_RATE: u32 = 50;
pub(super) const PUSH_BURST: u32 = 250;
/// How soon a round starts for envelopes held back from a push.
const HELD_BACK_MS: u64 = 20;
/// An envelope asked for that has not come after this long (a fragment of
/// it was lost) is asked for again, up to `REWANTS` times; after that it
/// waits for the next round's offer. A card that a held beacon waits for
/// is asked for again up to `CARD_REWANTS` times (cardfetch.rs).
const REWANT_MS: u64 = 1_000;
const REWANTS: u8 = 3;
/// Envelopes asked for and awaited per link (the link budget bounds how
/// many are asked for; this bounds the list).
const MAX_AWAITED: usize = 1024;
/// Asks between two sweeps, at most, of a full list of awaited envelopes
/// for those that came.
const SWEEP_AFTER: usize = MAX_AWAITED / 4;

/// The next window of the store to offer over one link.
pub(super) struct Window {
    pub(super) ids: Vec<EnvelopeId>,
    /// Where the next window starts, an admission number (None: the pass
    /// over the store ended).
    pub(super) cursor: Option<u64>,
    /// Store ids the pass has still to look at after this window.
    pub(super) left: usize,
    /// The link's new store floor: the first window of a pass raises it
    /// over the ids it found the peer holds, oldest first, up to the first
    /// it does not.
    pub(super) floor: u64,
}

/// Takes every entry due at `now_ms` from the front of a link's retry
/// queue (ids with their deadline and tries so far, in deadline order: an
/// entry put back goes `now_ms` plus a delay, behind all others), with the
/// tries each has had: the envelopes asked for (`awaited`, below) and the
/// pushes not confirmed (`pushed`, pushcheck.rs).
pub(super) fn take_due(queue: &mut VecDeque<(EnvelopeId, u64, u8)>, now_ms: u64) -> Vec<(EnvelopeId, u8)> {
    let n = queue.iter().take_while(|(_, t, _)| *t <= now_ms).count();
    queue.drain(..n).map(|(id, _, tries)| (id, tries)).collect()
}

impl Node {
    /// Walks the store from the link's cursor, looking at `offer_batch` ids
    /// at most (the work of one round), and collects up to `OFFER_WINDOW`
    /// that may go to `node` and that it does not hold.
    pub(super) fn next_window(&self, node: NodeId) -> Window {
        let Some(l) = self.links.get(&node) else {
            return Window { ids: vec![], cursor: None, left: 0, floor: 0 };
        };
        // A pass over the store starts at the link's floor, with every id
        // stored from there on to look at. Below the floor every id is one
        // the peer holds (in `peer_has`, which only grows until it is
        // cleared, and a clear lowers the floor to 0): the ids a pass
        // would look at and skip. Without it a pass looked at every stored
        // id, mostly channel posts every peer held, on every link every
        // round, a B-tree look-up each (a simulated mesh of 300 under load:
        // a third fewer look-ups with it; a stored message routed over
        // another link still holds a floor back, docs/scale.md).
        let first = l.offer_cursor.is_none();
        let mut left = if first { self.store.count_from(l.store_floor) } else { l.pass_left };
        let batch = self.store.ids_after(l.store_floor, l.offer_cursor, self.cfg.offer_batch.min(left));
        let (mut ids, mut last, mut bytes) = (Vec::new(), None, 0);
        let (mut floor, mut all_held) = (l.store_floor, first);
        for (seq, id) in batch {
            if ids.len() >= OFFER_WINDOW || bytes >= WINDOW_BYTES {
                break;
            }
            last = Some(seq);
            left = left.saturating_sub(1);
            let held = l.peer_has.contains(&id);
            all_held &= held;
            if all_held {
                floor = seq + 1;
            }
            // Not one still being written: it goes out once it is durable
            // (its write's forward, or the next pass), and only then.
            if held || self.writes.contains(&id) {
                continue;
            }
            if let Some(e) = self.store.get(&id).filter(|e| self.should_sync(&e.head, node)) {
                ids.push(id);
                bytes += e.head.len();
            }
        }
        let cursor = if left > 0 { last } else { None };
        Window { ids, cursor, left, floor }
    }

    /// Starts the window just offered: with more of the store to come, the
    /// next one goes when `offered` are all answered (at once when nothing
    /// was offered), and so does the pass after the last window of a pass
    /// of several; otherwise the next round is about a `sync_interval`
    /// away.
    pub(super) fn window_sent(&mut self, node: NodeId, offered: &[EnvelopeId], first: bool, more: bool, now_ms: u64) {
        // The next round comes within a quarter of the interval either
        // side, at random: the two ends of a link come up together, and in
        // step each offered the other what it had just got before hearing
        // the other's offer (a simulated segment: 47% more sync bytes).
        let interval = self.cfg.sync_interval_ms;
        let spread = interval / 2;
        let jittered = interval - spread / 2 + self.rng.next_u64() % (spread + 1);
        let Some(l) = self.links.get_mut(&node) else { return };
        // Envelopes held back from a push during this pass may lie behind
        // its cursor: another pass starts at once.
        let more = more || core::mem::take(&mut l.held_back);
        l.round.clear();
        l.round_answered = false;
        // The last window of a pass of several (a backlog) waits for its
        // answers too: a lost want of it waited for the next round, a
        // `sync_interval` later (a backlog of 2,000 over a link losing
        // every 15th datagram took 15.8 s). Once it is answered another
        // pass follows (answered()); if it is not, the next pass offers
        // again what went unanswered, after a wait that doubles while
        // nothing is answered. A round of one window does not: on a
        // simulated segment of 100 that cost 7 to 11% more sync bytes and
        // a third more events, for ids the peer leaves unanswered on
        // purpose.
        l.chained = !offered.is_empty() && (more || (!first && l.fed.is_none()));
        if l.chained {
            l.round.extend(offered.iter().copied());
        }
        // (A millisecond on: a node never asks to be woken at the moment
        // it is handling.)
        l.next_sync = now_ms
            + match (more, offered.is_empty()) {
                (true, true) => 1,
                // A federation peer answers from a metered queue: its
                // windows wait for the round, as before.
                (_, false) if l.chained && l.fed.is_none() => l.window_wait.min(self.cfg.sync_interval_ms),
                _ => jittered,
            };
    }

    /// Whether a new envelope may be sent over link `to` unasked now (a
    /// federation link meters its own queue). If not, it goes in the next
    /// offer window, which starts soon.
    pub(super) fn may_push(&mut self, to: NodeId) -> bool {
        let now = self.clock;
        let Some(l) = self.links.get_mut(&to) else { return false };
        if l.fed.is_some() || l.push.take(PUSH_RATE, PUSH_BURST, now) {
            return true;
        }
        l.held_back = true;
        if !l.chained {
            l.next_sync = l.next_sync.min(now + HELD_BACK_MS);
        }
        false
    }

    /// The peer answered `ids` (want or have): once it answered the whole
    /// window, the next one is due now. After the last window of a pass
    /// that is another pass, which most often finds nothing to offer and
    /// sets the next round; it offers again what the peer wanted of the
    /// last pass and still lacks (a message waiting for its session's
    /// start, whose want was lost: 31 of a lossy backlog of 2,000 waited
    /// 14 s for the next round when the pass ended there).
    pub(super) fn answered(&mut self, node: NodeId, ids: &[EnvelopeId], now_ms: u64) {
        let Some(l) = self.links.get_mut(&node).filter(|l| l.chained) else { return };
        for id in ids {
            l.round_answered |= l.round.remove(id);
        }
        if l.round.is_empty() {
            l.chained = false;
            l.window_wait = WINDOW_WAIT_MS;
            l.next_sync = now_ms + 1;
        }
    }

    /// Of `want`, the ones the link's envelope budget pays for now; the
    /// rest wait here.
    pub(super) fn afford(&mut self, node: NodeId, mut want: Vec<EnvelopeId>, now_ms: u64) -> Vec<EnvelopeId> {
        let (rate, burst) = (self.cfg.link_rate, self.cfg.link_burst);
        let Some(l) = self.links.get_mut(&node) else { return vec![] };
        if l.fed.is_some() {
            return want; // metered when they arrive (crossing.rs)
        }
        let n = l.bucket.take_up_to(want.len() as u32, burst / WANT_RESERVE, rate, burst, now_ms) as usize;
        let later = want.split_off(n.min(want.len()));
        self.defer(node, later, now_ms);
        want
    }

    /// Answers `ids`, offered by `node`, later (at most `MAX_DEFERRED`).
    pub(super) fn defer(&mut self, node: NodeId, ids: Vec<EnvelopeId>, now_ms: u64) {
        let Some(l) = self.links.get_mut(&node) else { return };
        if ids.is_empty() {
            return;
        }
        let room = MAX_DEFERRED.saturating_sub(l.deferred.len());
        l.deferred.extend(ids.into_iter().take(room));
        if l.deferred_at == u64::MAX {
            l.deferred_at = now_ms + DEFER_MS;
        }
    }

    /// Asks for `id`, which came from `node` over its origin's budget on
    /// the channel `key` names, again once that budget has a token for it
    /// (at most `MAX_PACED` wait per link; the peer offers the rest again).
    pub(super) fn defer_paced(&mut self, node: NodeId, id: EnvelopeId, key: PaceKey, now_ms: u64) {
        let Some(l) = self.links.get_mut(&node) else { return };
        if l.paced.len() < MAX_PACED && !is_paced(l, &id) {
            l.paced.push((id, key));
        } else if !is_paced(l, &id) {
            // No room to wait here: it came and is refused, and the peer
            // offers it again; asking again for it as lost fetched it only
            // to refuse it once more.
            l.awaited.retain(|(a, _, _)| *a != id);
        }
        if l.deferred_at == u64::MAX {
            l.deferred_at = now_ms + DEFER_MS;
        }
    }

    /// Tokens the channel budget `key` holds at `now_ms`, and when (ms) its
    /// next token comes. A bucket not kept (never used, or forgotten as
    /// the most idle) is full when the envelope arrives.
    fn budget(&self, key: &PaceKey, now_ms: u64) -> (f32, u64) {
        let (rate, burst) = (self.cfg.channel_rate, self.cfg.channel_burst);
        self.channel_buckets
            .get(key)
            .map_or((burst as f32, now_ms), |b| (b.available(rate, burst, now_ms), b.next_token_at(rate)))
    }

    /// Looks at the ids waiting here again, as if `node` offered them now.
    /// One that waits for its origin's budget on a channel is asked for
    /// only if that budget has a token for it, one token per id asked in
    /// this turn: asking for all of them brought each back to be refused
    /// again until its turn came (a burst of 120 channel posts cost 474
    /// copies).
    pub(super) fn redo_deferred(&mut self, node: NodeId, now_ms: u64) {
        let Some(l) = self.links.get_mut(&node) else { return };
        let mut ids = core::mem::take(&mut l.deferred);
        let paced = core::mem::take(&mut l.paced);
        l.deferred_at = u64::MAX;
        let (mut ask, mut still) = (Vec::new(), Vec::new());
        let mut due = u64::MAX;
        // Tokens not yet spoken for in this turn, per budget (a list: at
        // most MAX_PACED budgets).
        let mut left: Vec<(PaceKey, f32, u64)> = Vec::new();
        for (id, key) in paced {
            if self.seen.contains(&id) || self.store.contains(&id) {
                ids.push(id); // answered "have"
                continue;
            }
            let at = left.iter().position(|e| e.0 == key).unwrap_or_else(|| {
                let (tokens, next) = self.budget(&key, now_ms);
                left.push((key, tokens, next));
                left.len() - 1
            });
            // (`at` is an index into `left`, just found or pushed.)
            let Some(slot) = left.get_mut(at) else { continue };
            if slot.1 >= 1.0 {
                slot.1 -= 1.0;
                ask.push(id);
            } else {
                due = due.min(slot.2);
                still.push((id, key));
            }
        }
        if !still.is_empty()
            && let Some(l) = self.links.get_mut(&node)
        {
            l.paced = still;
            l.deferred_at = due.max(now_ms + DEFER_MS);
        }
        // A message waiting for its session's start that we fetched a
        // moment ago is not fetched again: it came and waits again, and
        // would come back every 250 ms until its start did. The start's
        // arrival fetches it (sessions.rs), and so does the peer's next
        // offer of it (sync.rs answers those).
        ids.retain(|id| !(self.waits_for_start(id) && self.asked_recently(id, now_ms)));
        self.on_ids(now_ms, node, IdList::Offer, ids);
        // Asked for straight away: through `on_ids`, one we had asked for
        // in the last 5 s (most: it came, and was refused) was taken as on
        // its way from another link and left unanswered, so it waited for
        // a re-ask or the peer's next round (a burst of 120 fetched
        // through offers took 30 s instead of 14).
        let ask = self.afford(node, ask, now_ms);
        for id in &ask {
            self.note_asked(*id, now_ms);
        }
        self.awaiting(node, &ask, now_ms);
        for f in id_frames(IdList::Want, &ask) {
            self.send_frame(node, &f, now_ms);
        }
    }

    /// Notes that `ids` were just asked of `node`, to ask once more if they
    /// do not come (`REWANT_MS`).
    pub(super) fn awaiting(&mut self, node: NodeId, ids: &[EnvelopeId], now_ms: u64) {
        // A federation peer sends from a metered queue: its answers may
        // take longer than a lost fragment would.
        let full = self.links.get_mut(&node).is_some_and(|l| {
            l.asked_since_sweep = l.asked_since_sweep.saturating_add(ids.len());
            l.fed.is_none() && l.awaited.len() + ids.len() > MAX_AWAITED && l.asked_since_sweep >= SWEEP_AFTER
        });
        if full {
            // Those that came go first: a fast backlog asks for more than
            // `MAX_AWAITED` within `REWANT_MS`, most of which have come,
            // and making room by age alone dropped the re-ask of a lost
            // want (its ids went unanswered when offered again until our
            // ask was 5 s old: windows stalled 5 s). At most once per
            // `SWEEP_AFTER` asks: a peer that never sends what it offers
            // keeps the list full of asks that did not come, and a sweep
            // at every ask cost a look-up of each; so an ask costs at most
            // four look-ups more.
            let left: VecDeque<_> = self.links.get(&node).map_or_else(VecDeque::new, |l| {
                l.awaited.iter().filter(|(id, _, _)| !self.came(node, id)).copied().collect()
            });
            if let Some(l) = self.links.get_mut(&node) {
                l.awaited = left;
                l.asked_since_sweep = 0;
            }
        }
        let Some(l) = self.links.get_mut(&node).filter(|l| l.fed.is_none()) else { return };
        // Still full: the oldest go. They were asked longest ago, so most
        // have come; leaving out the newest instead left a lost want of a
        // fast backlog without its re-ask, waiting for the peer's next pass
        // and the 5 s hold (windows waiting up to 8 s).
        let ids = &ids[ids.len().saturating_sub(MAX_AWAITED)..];
        let drop = (l.awaited.len() + ids.len()).saturating_sub(MAX_AWAITED);
        l.awaited.drain(..drop);
        l.awaited.extend(ids.iter().map(|id| (*id, now_ms + REWANT_MS, 0)));
    }

    /// Whether `id`, asked of `node`, has come (from it or anyone else).
    fn came(&self, node: NodeId, id: &EnvelopeId) -> bool {
        self.seen.contains(id)
            || self.store.contains(id)
            || self.delivered.get(id).is_some()
            || self.writes.contains(id)
            || self.holds_card(id)
            // It came, and waits for its session's start.
            || self.waits_for_start(id)
            // It came, and waits for its channel budget (redo_deferred).
            || self.links.get(&node).is_some_and(|l| is_paced(l, id))
    }

    /// When the first awaited envelope of a link is due to be asked again.
    pub(super) fn rewant_at(l: &Link) -> Option<u64> {
        l.awaited.front().map(|(_, t, _)| *t)
    }

    /// Asks `node` again for what it was asked for `REWANT_MS` ago and has
    /// not come, neither from it nor from anyone else.
    pub(super) fn rewant(&mut self, node: NodeId, now_ms: u64) {
        let mut again = Vec::new();
        let due = self.links.get_mut(&node).map(|l| take_due(&mut l.awaited, now_ms)).unwrap_or_default();
        for (id, tries) in due {
            let more = tries + 1 < REWANTS || (tries + 1 < cardfetch::CARD_REWANTS && self.card_awaited(&id));
            if !self.came(node, &id) {
                again.push(id);
                if let Some(l) = self.links.get_mut(&node).filter(|_| more) {
                    l.awaited.push_back((id, now_ms + REWANT_MS, tries.saturating_add(1)));
                }
            }
        }
        if again.is_empty() {
            return;
        }
        self.metrics.envelopes_rewanted += again.len() as u64;
        for id in &again {
            self.note_asked(*id, now_ms); // still paid for (prepaid)
        }
        for f in id_frames(IdList::Want, &again) {
            self.send_frame(node, &f, now_ms);
        }
    }

    /// Whether an arriving envelope `id` was paid for when we asked for it
    /// (the budget is not charged twice).
    pub(super) fn prepaid(&self, id: &EnvelopeId, now_ms: u64) -> bool {
        self.asked_recently(id, now_ms)
    }
}

/// Whether `id` was asked of `l` and is to be asked again if it does not come.
pub(super) fn awaits(l: &Link, id: &EnvelopeId) -> bool {
    l.awaited.iter().any(|(a, _, _)| a == id)
}

/// Whether `id` waits on `l` for its channel budget: it came, and is
/// asked for again in its turn, not at each offer or as lost.
pub(super) fn is_paced(l: &Link, id: &EnvelopeId) -> bool {
    l.paced.iter().any(|(p, _)| p == id)
}

/// A channel budget: the origin and the channel id (channels.rs).
pub(super) type PaceKey = (NodeId, [u8; 16]);
