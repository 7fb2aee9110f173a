//! The admission pipeline for an envelope that arrived on a link: rate
//! limits, signature and validity, dedup (relay seen set and delivered
//! ids), then dispatch by kind; delivery of direct messages for us; and
//! the repair of copies stranded without hops near their recipient.
//! It does not write anything: deliveries become `Deliver` actions.

use super::channels::ChannelCheck;
use super::*;

/// At most this many stranded copies are asked for in one minute (each a
/// 16-byte id per mesh link; a neighbour answers only with a copy it
/// would have sent us anyway), and at most `MAX_STRANDED_KEPT` stranded
/// ids are remembered (found once, or asked for) until they expire.
const MAX_STRANDED_ASKED: usize = 64;
pub(super) const MAX_STRANDED_KEPT: usize = 1024;
/// What `stranded_ids` holds for an id.
const FOUND: u64 = 0;
const ASKED: u64 = 1;

impl Node {
    pub(super) fn on_envelope(&mut self, now_ms: u64, link: NodeId, bytes: &[u8]) {
        self.metrics.envelopes_in += 1;
        // What we asked for was paid for when we asked (flow.rs).
        let peek = Envelope::peek_id(bytes).ok();
        let peeked = peek.map(|(id, _)| id);
        let prepaid = peeked.is_some_and(|id| self.prepaid(&id, now_ms));
        let allowed = self.links.get_mut(&link).is_some_and(|l| {
            prepaid && l.fed.is_none() || l.bucket.take(self.cfg.link_rate, self.cfg.link_burst, now_ms)
        });
        if !allowed {
            self.metrics.envelopes_rate_limited += 1;
            // Pushed beyond the budget: asked for when the budget allows,
            // as if it had been offered (not over a federation link, which
            // meters its own queue).
            if let Some(id) = peeked
                && self.links.get(&link).is_some_and(|l| l.fed.is_none())
            {
                self.defer(link, vec![id], now_ms);
            }
            return;
        }
        // A copy of an envelope already relayed or taken costs a hash, not
        // a signature check: its id covers every signed byte, so it is the
        // envelope we verified (hops_left aside). Federation links meter
        // every envelope first (crossing.rs).
        if self.links.get(&link).is_some_and(|l| l.fed.is_none())
            && let Some((id, kind)) = peek
            && self.seen.contains(&id)
            && !self.writes.contains(&id)
            && self.delivered.get(&id).is_none()
        {
            if kind == Kind::Announce {
                self.metrics.announces_duplicate += 1;
                self.peer_holds_beacon(link, id);
            } else {
                self.metrics.envelopes_duplicate += 1;
                self.metrics.channel_duplicate += u64::from(kind == Kind::Channel);
                self.ack(link, id, now_ms);
            }
            return;
        }
        let decoded = match peeked {
            Some(id) => Envelope::decode_peeked(bytes, self.unix_s(), id),
            // Not well formed: decode says why.
            None => Envelope::decode(bytes, self.unix_s()),
        };
        let env = match decoded {
            Ok(e) => e,
            Err(e) => {
                match e {
                    EnvelopeError::BadSignature => self.metrics.envelopes_bad_signature += 1,
                    EnvelopeError::Expired { .. } => self.metrics.envelopes_expired += 1,
                    _ => self.metrics.envelopes_invalid += 1,
                }
                self.emit(Event::EnvelopeDropped { from: link, reason: e.to_string() });
                return;
            }
        };
        let mut env = env;
        let mut share: Option<(String, usize)> = None;
        if self.links.get(&link).is_some_and(|l| l.fed.is_some()) {
            match self.federation_inbound(now_ms, link, &mut env) {
                Some(s) => share = Some(s),
                None => return,
            }
        }
        if env.kind() == Kind::Announce {
            self.on_announce(now_ms, link, env);
            return;
        }
        let id = env.id();
        if let Some(d) = self.delivered.get(&id).copied() {
            self.metrics.envelopes_duplicate += 1;
            if d.durable {
                self.ack(link, id, now_ms);
                // The origin may have missed our acknowledgement.
                let cross = !env.dest().domain.is_empty();
                self.queue_ack(d.origin, id, d.expires, now_ms, cross);
            }
            return;
        }
        if self.seen.contains(&id) || self.store.contains(&id) || self.writes.contains(&id) {
            self.metrics.envelopes_duplicate += 1;
            self.metrics.channel_duplicate += u64::from(env.kind() == Kind::Channel);
            if !self.writes.contains(&id) {
                self.ack(link, id, now_ms);
                self.raise_hops(env, link);
            }
            return;
        }
        let origin = env.origin_id();
        let (rate, burst) = (self.cfg.origin_rate, self.cfg.origin_burst);
        if self.origin_buckets.len() >= self.cfg.max_cards && !self.origin_buckets.contains_key(&origin) {
            // Bounded: forget the fullest (most idle) bucket first.
            let idle = self.origin_buckets.iter().max_by(|a, b| a.1.tokens().total_cmp(&b.1.tokens())).map(|(k, _)| *k);
            if let Some(k) = idle {
                self.origin_buckets.remove(&k);
            }
        }
        let bucket = self.origin_buckets.entry(origin).or_insert_with(|| Bucket::full(burst, now_ms));
        // What we asked for, the link's budget paid for (an origin's share
        // of the store is bounded by its quota, store.rs).
        if !prepaid && !bucket.take(rate, burst, now_ms) {
            self.metrics.envelopes_rate_limited += 1;
            if self.links.get(&link).is_some_and(|l| l.fed.is_none()) {
                self.defer(link, vec![id], now_ms);
            }
            return;
        }
        let for_me = env.dest().id == self.me.0 && self.for_my_domain(&env);
        let channel = (env.kind() == Kind::Channel).then(|| self.on_channel(&env, now_ms));
        match env.kind() {
            Kind::Announce => {}
            Kind::Direct if for_me => self.deliver(&env, link),
            Kind::Ack if for_me => {
                self.on_ack(&env);
                self.seen.insert(id, env.expires_at());
                self.ack(link, id, now_ms);
            }
            Kind::Channel if channel == Some(ChannelCheck::OverRate) => {
                // Paced, not lost: answered later, like an origin over its
                // rate (above), so the peer sends it again once the budget
                // has refilled. Dropped and noted as seen, a burst of more
                // than the channel's burst from one origin (a returning
                // node fetching a backlog, a script posting) was lost here
                // and to every node behind this one.
                if self.links.get(&link).is_some_and(|l| l.fed.is_none()) {
                    self.defer_paced(link, id, (origin, env.dest().id), now_ms);
                }
            }
            Kind::Channel if channel == Some(ChannelCheck::Undecryptable) => {
                // Undecryptable on a channel we hold the key for: dropped,
                // not relayed.
                self.seen.insert(id, env.expires_at());
            }
            Kind::Direct | Kind::Channel | Kind::Ack => {
                if env.kind() == Kind::Ack {
                    // Relays free their copies as the acknowledgement passes.
                    self.on_ack(&env);
                }
                let mut env = env;
                let own_domain = self.cards.get(&origin).is_some_and(|c| c.domain == self.cfg.domain);
                if env.kind() == Kind::Channel
                    && own_domain
                    && let Some(r) = self.best_route(&origin)
                {
                    // A copy that came the long way round (churn, a
                    // partition that healed) has the hops one that came by
                    // the shortest path would have: the origin's hop limit
                    // bounds how far from it a flood goes, not which way.
                    // Copies that spent theirs on detours stopped next to
                    // nodes the shortest paths still reached (a mesh of
                    // 1000 under churn: 41 node-messages never arrived).
                    // Only for our own community's origins: another's
                    // copies keep the limit their gateway clamped them to.
                    env.lift_hops(env.max_hops().saturating_add(1).saturating_sub(r.hops));
                }
                if !env.take_hop() {
                    // No hops left: we may not pass it on, nothing to keep.
                    self.seen.insert(id, env.expires_at());
                    return;
                }
                let share = share.as_ref().map(|(d, n)| (d.as_str(), *n));
                // A relayed copy goes on at once; only the "have" that
                // frees the peer's copy waits for our write (protocol.md
                // *Durability*). Until then the peer keeps its copy and
                // offers it again if we lose ours, so a copy we pass on
                // before our disk has it is one the mesh still holds. On
                // slow flash, waiting for the write put it into every hop:
                // 500 ms writes took a mesh of 300's channel median from
                // 1.2 s to 8.1 s.
                if self.admit_shared(env, false, share, now_ms, vec![AfterWrite::Have { link }]).is_ok()
                    && let Some(stored) = self.store.get(&id).and_then(|e| e.envelope())
                {
                    self.forward(&stored, Some(link));
                }
            }
        }
    }

    /// A copy of a stored direct envelope (or acknowledgement) that has
    /// more hops left than ours replaces it and goes on. Without this, a
    /// copy that spent its hops on a long detour (a route that changed
    /// under it, a partition) would sit near its recipient for good: every
    /// better copy offered later would be answered "have".
    fn raise_hops(&mut self, mut env: Envelope, link: NodeId) {
        if !matches!(env.kind(), Kind::Direct | Kind::Ack) || !env.take_hop() || !self.store.raise_hops(&env) {
            return;
        }
        self.metrics.envelopes_hops_raised += 1;
        // Written again so a restart keeps the hops; nothing waits on it.
        self.actions.push_back(Action::Persist { id: env.id(), bytes: env.bytes().to_vec() });
        self.forward(&env, Some(link));
    }

    /// Stored channel copies of our community's origins that came with
    /// their hops spent (a detour taken while the origin was beyond a
    /// partition, so the lift on arrival had no route to go by) get, once a
    /// route to the origin exists, the hops a copy that came by it would
    /// hold here, and go on. A spent copy is never offered: without this
    /// the nodes behind it waited for a copy that never came (a mesh of
    /// 1000 under churn and a partition: 7 node-messages missed). Called
    /// once a minute; looks only at spent channel copies.
    pub(super) fn lift_spent_channel_copies(&mut self) {
        let spent: Vec<EnvelopeId> = self
            .store
            .iter()
            .filter(|(_, e)| e.head.kind() == Kind::Channel && e.head.hops_left() == 0)
            .map(|(id, _)| *id)
            .collect();
        for id in spent {
            // Channel copies keep their bytes in memory (store.rs).
            let Some(mut env) = self.store.get(&id).and_then(|e| e.envelope()) else { continue };
            let origin = env.origin_id();
            if self.cards.get(&origin).is_none_or(|c| c.domain != self.cfg.domain) {
                continue;
            }
            let Some(r) = self.best_route(&origin) else { continue };
            env.lift_hops(env.max_hops().saturating_sub(r.hops));
            if !self.store.raise_hops(&env) {
                continue;
            }
            self.metrics.envelopes_hops_raised += 1;
            self.actions.push_back(Action::Persist { id, bytes: env.bytes().to_vec() });
            self.forward(&env, None);
        }
    }

    /// Whether our stored copy of `id` cannot reach its recipient on its
    /// own: a direct envelope (or acknowledgement) with fewer hops left
    /// than the route needs. A peer that offers it may hold a better copy.
    pub(super) fn short_of_hops(&self, id: &EnvelopeId) -> bool {
        let Some(e) = self.store.get(id).map(|e| &e.head) else { return false };
        let dest = NodeId(e.dest().id);
        if !matches!(e.kind(), Kind::Direct | Kind::Ack) || dest == self.me || self.links.contains_key(&dest) {
            return false;
        }
        // From here `r` hops: the copy needs `r - 1` more after ours.
        match self.best_route(&dest) {
            Some(r) => e.hops_left().saturating_add(1) < r.hops,
            None => e.hops_left() == 0,
        }
    }

    /// Asks every mesh link for the stored direct copies that a route reaches
    /// but whose hops left do not: copies that spent their hops on detours
    /// while a partition lasted. A neighbour whose route goes through us and
    /// that holds a better copy sends it (a want-better, sync.rs; one no better
    /// is not sent), and it replaces ours and goes on at once (`raise_hops`).
    /// Without this such a copy waited for an offer that never came, since we
    /// had once told that neighbour we hold the id (mesh of 300: one message
    /// missed in about 17 runs). Called once a minute. A copy is asked for
    /// once, and only when it was stranded at the check before too: most are
    /// stranded for a moment while routes change, and every ask made the
    /// neighbours whose routes go through us send their copies, most no better
    /// than ours, while asks were plain wants (asking for every stranded copy
    /// every minute took a mesh of 300 from 3.6 to 9.6 duplicate receptions per
    /// delivered message). Not for copies whose recipient has no route (a want
    /// cannot help those), nor for acknowledgements (a message whose
    /// acknowledgement is lost is offered again, and answered with a new one).
    pub(super) fn ask_for_stranded_copies(&mut self, now_ms: u64) {
        let stranded: Vec<EnvelopeId> = self
            .store
            .iter()
            .filter(|(id, e)| !e.local && e.head.kind() == Kind::Direct && self.stranded_ids.get(id) != Some(&ASKED))
            .map(|(id, _)| *id)
            .filter(|id| self.stranded(id))
            .take(MAX_STRANDED_KEPT)
            .collect();
        // Found stranded before: asked for now. Found now: asked for at
        // the next check if still stranded then.
        let ask: Vec<EnvelopeId> =
            stranded.iter().filter(|id| self.stranded_ids.contains(id)).take(MAX_STRANDED_ASKED).copied().collect();
        self.stranded_ids.expire(self.unix_s());
        for id in stranded {
            let Some(expires) = self.store.get(&id).map(|e| e.head.expires_at()) else { continue };
            if self.stranded_ids.len() >= MAX_STRANDED_KEPT && !self.stranded_ids.contains(&id) {
                self.stranded_ids.pop_soonest();
            }
            self.stranded_ids.insert(id, expires, if ask.contains(&id) { ASKED } else { FOUND });
        }
        if ask.is_empty() {
            return;
        }
        let links: Vec<NodeId> =
            self.links.iter().filter(|(_, l)| l.confirmed && l.fed.is_none()).map(|(n, _)| *n).collect();
        for link in links {
            self.want_better(link, &ask, now_ms);
        }
    }

    /// [`Node::short_of_hops`] where a route to the recipient exists.
    fn stranded(&self, id: &EnvelopeId) -> bool {
        let Some(e) = self.store.get(id).map(|e| &e.head) else { return false };
        let dest = NodeId(e.dest().id);
        self.short_of_hops(id) && self.best_route(&dest).is_some()
    }

    /// What the caller gets for a decrypted envelope.
    pub(super) fn delivery(&self, env: &Envelope, opened: e2e::Opened) -> Delivery {
        let from = env.origin_id();
        Delivery {
            id: env.id(),
            from,
            from_name: self.name_of(&from),
            created: env.created(),
            expires: env.expires_at(),
            content_type: opened.content_type,
            body: opened.body,
            sessions: None,
        }
    }

    pub(super) fn for_my_domain(&self, env: &Envelope) -> bool {
        env.dest().domain.is_empty() || env.dest().domain == self.cfg.domain
    }

    /// Decrypts a message for us and asks the caller to write it to the
    /// inbox. The link `have` and the end-to-end ack wait for the write.
    pub(super) fn deliver(&mut self, env: &Envelope, link: NodeId) {
        let (id, origin, expires) = (env.id(), env.origin_id(), env.expires_at());
        if self.blocked.contains(&origin) {
            // Dropped unread; remembered so its copies are not taken again.
            // It is opened only to keep its sender's end-to-end session,
            // so messages after an unblock that name the session (suite
            // 5) open; its key goes at once.
            if let Ok((_, Some(u))) = self.open_direct(env) {
                self.session_key_durable(origin, u.sid, u.counter);
            }
            self.seen.insert(id, expires);
            self.metrics.envelopes_blocked += 1;
            return;
        }
        if env.payload().first() == Some(&e2e::SUITE_SESSION_RESTATE) {
            // No message: a session's start sent again (restate.rs).
            self.take_restatement(env, link);
            return;
        }
        if !self.inbox_open || self.writes.is_full() {
            self.metrics.deliveries_deferred += 1;
            return;
        }
        let (opened, used) = match self.open_direct(env) {
            Ok(o) => o,
            Err(e2e::OpenError::SessionPending(sid)) if self.session_may_wait(id, sid, link) => {
                // Looked at again shortly, as an offer answered later.
                let now = self.clock;
                self.defer(link, vec![id], now);
                // Its start may be on its way; if not, its origin sends it
                // again when asked (restate.rs).
                let since = self.waiting_since(&id).unwrap_or(now);
                self.ask_for_start(env, since, false);
                // Its session's start is in another message, offered
                // before it: not acknowledged, the sender keeps it.
                self.metrics.deliveries_deferred += 1;
                self.metrics.e2e_session_pending += 1;
                return;
            }
            Err(e2e::OpenError::Session(
                crate::session::SessionError::KeyGone | crate::session::SessionError::TooFar,
            )) if self.wait_for_reset(env, link) => {
                return;
            }
            Err(e) => {
                // Nobody else can read it either: remember it as seen.
                self.seen.insert(id, expires);
                self.metrics.envelopes_undecryptable += 1;
                // Content we cannot take (as opposed to a key or padding
                // failure): tell the sender, signed, so it stops offering.
                let reason = match e {
                    e2e::OpenError::UnknownContentType(_) | e2e::OpenError::BadFilePart(_) => {
                        Some(crate::ack::REFUSED_UNSUPPORTED)
                    }
                    // The sender retires the session and starts a new one.
                    e2e::OpenError::Session(_) | e2e::OpenError::SessionPending(_) => {
                        Some(crate::ack::REFUSED_NO_SESSION)
                    }
                    _ => None,
                };
                if let Some(reason) = reason {
                    let now = self.clock;
                    self.queue_refusal(origin, id, expires, reason, now);
                }
                self.emit(Event::EnvelopeDropped { from: origin, reason: e.to_string() });
                return;
            }
        };
        if let Err(e) = self.delivered.begin(id, origin, expires) {
            // Not acknowledged: the sender keeps it and offers it again.
            self.metrics.deliveries_deferred += 1;
            if self.metrics.deliveries_deferred % 1000 == 1 {
                self.emit(Event::DeliveryDeferred { reason: e.to_string() });
            }
            return;
        }
        self.metrics.envelopes_delivered += 1;
        let mut message = self.delivery(env, opened);
        let cross = !env.dest().domain.is_empty();
        let mut then = vec![AfterWrite::Have { link }, AfterWrite::Ack { origin, expires, cross }];
        if let Some(u) = used {
            if u.new {
                self.fetch_pending(u.sid);
            }
            message.sessions = self.sessions_to_save(origin);
            then.push(AfterWrite::SessionKey { origin, sid: u.sid, n: u.counter });
        }
        self.await_write(id, WriteKind::Inbox, then);
        self.actions.push_back(Action::Deliver(message));
    }
}
