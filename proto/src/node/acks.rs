//! End-to-end acknowledgements: batching ids delivered here into signed
//! ack envelopes, releasing stored copies an ack confirms, and the
//! per-link `have`. Acks of writes wait in durability.rs first.

use super::*;

/// Most delivered ids waiting to be acknowledged.
pub(super) const MAX_PENDING_ACKS: usize = 4096;
/// Most refusals waiting to be sent (more are dropped: the sender then
/// learns only that its message expired).
pub(super) const MAX_PENDING_REFUSALS: usize = 256;
/// Refusals signed per second, and saved up at most. A refusal is a local
/// envelope, which relayed traffic cannot evict: a sender of content we
/// cannot take must not be able to fill our store with our own refusals.
pub(super) const REFUSAL_RATE: u32 = 1;
pub(super) const REFUSAL_BURST: u32 = 16;
/// A refusal lives at most this long (it only saves the sender retries).
pub(super) const REFUSAL_TTL_S: u64 = 600;
impl Node {
    /// Drops a stored envelope whose recipient confirmed it, and remembers
    /// its id so it is not taken in again.
    pub(super) fn release(&mut self, id: &EnvelopeId) {
        self.writes.take(id);
        if let Some(e) = self.store.remove(id) {
            self.seen.insert(*id, e.head.expires_at());
            self.metrics.envelopes_acked += 1;
            self.actions.push_back(Action::Unpersist { id: *id });
        }
    }

    pub(super) fn queue_ack(&mut self, origin: NodeId, id: EnvelopeId, expires: u64, now_ms: u64, cross: bool) {
        let total: usize = self.pending_acks.values().map(Vec::len).sum();
        if total >= MAX_PENDING_ACKS || origin == self.me {
            return;
        }
        let q = self.pending_acks.entry(origin).or_default();
        if !q.iter().any(|(x, _)| *x == id) {
            q.push((id, expires));
        }
        if cross {
            // Only an ack to another community waits for the origin's card.
            self.ack_since.entry(origin).or_insert(now_ms);
        }
        if self.next_ack_flush.is_none() {
            self.next_ack_flush = Some(now_ms + self.cfg.ack_delay_ms);
        }
    }

    /// Queues a signed refusal of `id` for its origin (sent with the acks).
    pub(super) fn queue_refusal(&mut self, origin: NodeId, id: EnvelopeId, expires: u64, reason: u8, now_ms: u64) {
        if self.pending_refusals.len() >= MAX_PENDING_REFUSALS
            || origin == self.me
            || self.pending_refusals.iter().any(|(_, x, _, _)| *x == id)
            || !self.refusal_budget.take(REFUSAL_RATE, REFUSAL_BURST, now_ms)
        {
            return;
        }
        self.pending_refusals.push((origin, id, expires, reason));
        if self.next_ack_flush.is_none() {
            self.next_ack_flush = Some(now_ms + self.cfg.ack_delay_ms);
        }
    }

    /// Sends one signed acknowledgement per origin for what was delivered.
    pub(super) fn flush_acks(&mut self, now_ms: u64) {
        self.next_ack_flush = None;
        for (origin, id, expires, reason) in core::mem::take(&mut self.pending_refusals) {
            let domain = self.cards.get(&origin).map(|c| c.domain.clone()).unwrap_or_default();
            let domain = if domain == self.cfg.domain { String::new() } else { domain };
            let payload = crate::ack::encode_refusal(&[id], reason);
            let now_s = self.unix_s();
            let expires = expires.min(now_s + REFUSAL_TTL_S);
            self.seal_ack_payload(origin, domain, &payload, expires, now_ms, now_s);
        }
        let pending = core::mem::take(&mut self.pending_acks);
        let now_s = self.unix_s();
        for (origin, ids) in pending {
            // An origin of another community is addressed node@domain, so
            // the ack is routed to a gateway and crosses the federation link
            // under the same policy as the direct messages it confirms. That
            // needs the origin's card: a message can arrive before its
            // origin's announce has crossed, so the ack waits for the card
            // (at most two announce intervals, then it goes unaddressed).
            // An ack within our community needs no card: it is addressed to
            // the origin's id alone, and flooded if no route is known yet.
            let since = self.ack_since.get(&origin).copied();
            let Some(card) = self.cards.get(&origin) else {
                if since.is_some_and(|t| now_ms < t + 2 * self.cfg.announce_interval_ms) {
                    self.pending_acks.insert(origin, ids);
                    self.next_ack_flush = Some(now_ms + self.cfg.ack_delay_ms);
                    continue;
                }
                self.ack_since.remove(&origin);
                self.seal_acks(origin, String::new(), &ids, now_ms, now_s);
                continue;
            };
            let domain =
                Some(card.domain.clone()).filter(|d| !d.is_empty() && *d != self.cfg.domain).unwrap_or_default();
            self.ack_since.remove(&origin);
            self.seal_acks(origin, domain, &ids, now_ms, now_s);
        }
    }

    /// Signs and stores the acknowledgements for `ids` to `origin`.
    fn seal_acks(&mut self, origin: NodeId, domain: String, ids: &[(EnvelopeId, u64)], now_ms: u64, now_s: u64) {
        for chunk in ids.chunks(crate::ack::MAX_ACK_IDS) {
            let list: Vec<EnvelopeId> = chunk.iter().map(|(id, _)| *id).collect();
            let payload = crate::ack::encode(&list);
            // It lives as long as the longest-lived envelope it confirms.
            let expires = chunk.iter().map(|(_, e)| *e).max().unwrap_or(now_s);
            self.seal_ack_payload(origin, domain.clone(), &payload, expires, now_ms, now_s);
        }
    }

    fn seal_ack_payload(
        &mut self,
        origin: NodeId,
        domain: String,
        payload: &[u8],
        expires: u64,
        now_ms: u64,
        now_s: u64,
    ) {
        let ttl = expires.saturating_sub(now_s).clamp(60, crate::envelope::MAX_TTL as u64) as u32;
        let Ok(env) = Envelope::seal(
            &self.identity,
            &Draft {
                kind: Kind::Ack,
                max_hops: self.hops_to(&origin),
                created: now_s,
                ttl,
                dest: Destination { id: origin.0, domain },
                payload,
            },
        ) else {
            return;
        };
        if self.admit(env, true, now_ms, vec![AfterWrite::Forward]).is_ok() {
            self.metrics.acks_sent += 1;
        }
    }

    /// Frees stored copies of what an acknowledgement lists, but only of
    /// envelopes addressed to the acknowledgement's signer.
    pub(super) fn on_ack(&mut self, ack: &Envelope) {
        self.metrics.acks_in += 1;
        let Ok(ack_list) = crate::ack::decode_any(ack.payload()) else {
            self.metrics.envelopes_invalid += 1;
            return;
        };
        let recipient = ack.origin_id();
        if ack_list.refused == Some(crate::ack::ASK_SESSION_START) {
            // Not final: the start goes again, the messages stay.
            for id in ack_list.ids {
                self.restate(id, recipient);
            }
            return;
        }
        // A refusal, like an ack, ends the offering of what it lists.
        let state = ack_list.refused.map_or(SentState::Delivered, SentState::refused);
        for id in ack_list.ids {
            // Ours, and acknowledged by its recipient's signature (the
            // envelope was verified before we got here): delivered, or
            // refused with the recipient's reason.
            if self.outbox.get(&id).is_some_and(|s| s.to == recipient) {
                self.sent_moved(id, state);
            }
            let addressed =
                self.store.get(&id).is_some_and(|e| e.head.kind() == Kind::Direct && e.head.dest().id == recipient.0);
            if addressed {
                self.release(&id);
            }
        }
    }

    pub(super) fn ack(&mut self, link: NodeId, id: EnvelopeId, now_ms: u64) {
        for f in id_frames(IdList::Have, &[id]) {
            self.send_frame(link, &f, now_ms);
        }
    }
}
