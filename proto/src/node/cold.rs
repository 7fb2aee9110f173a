//! Stored envelopes whose bytes are only on the caller's disk (cold, see
//! store.rs): sending one asks the caller to read it back
//! ([`Action::Load`]), and the copy goes out when the bytes come
//! ([`Node::loaded`]). A copy that cannot be read back is lost and said so.
//!
//! It does not decide which envelopes go cold (the store does, once they
//! are durable) nor whether an envelope should go to a link (the caller
//! has applied forward.rs's rules before asking).

use super::*;

/// Envelopes asked for at once; beyond it a send is skipped, and the peer
/// asks again in its next round. The daemon answers within the same tick,
/// so this bounds only a caller that does not.
pub(super) const MAX_LOADING: usize = 1024;
/// A read asked for this long ago and not answered is asked for again.
const LOAD_AGAIN_MS: u64 = 5_000;

/// The links a cold envelope is to go to once read, and when it was asked for.
#[derive(Debug, Default)]
pub(super) struct Loading {
    pub(super) asked_at: u64,
    pub(super) to: Vec<NodeId>,
}

impl Node {
    /// Sends the stored envelope `id` to link `to`, from memory or, when
    /// cold, once read back. The caller checked that it may go there.
    /// `after_cold` is for a list answered in order: once one envelope of
    /// it had to be read back, the rest are read back too (the caller reads
    /// in the order asked), so a sender's messages still leave in the order
    /// they were sent, and the recipient's session keeps no skipped keys.
    pub(super) fn send_stored_id(&mut self, to: NodeId, id: EnvelopeId, after_cold: &mut bool) {
        let Some(e) = self.store.get(&id) else { return };
        *after_cold |= e.is_cold();
        match e.bytes().filter(|_| !*after_cold).map(<[u8]>::to_vec) {
            Some(b) => self.send_stored(to, id, &b),
            None if self.take_out(to) => self.read_back(to, id),
            None => self.queue_out(to, Queued::Envelope(id)),
        }
    }

    /// Lets the bytes of durable envelopes go while the store holds more
    /// than its memory limit (a lowered `store_memory` takes effect at
    /// once, not only as new envelopes come), oldest first.
    pub(super) fn cool_durable(&mut self) {
        let limit = self.store.limits().max_hot_bytes;
        if self.store.hot_bytes() <= limit {
            return;
        }
        for (_, id) in self.store.ids_after(0, None, usize::MAX) {
            if self.store.hot_bytes() <= limit {
                break;
            }
            if !self.writes.contains(&id) {
                self.store.cool(&id);
            }
        }
    }

    /// Asks the caller for the bytes of the cold envelope `id`, to go to
    /// `to` (whose out-quota is already charged).
    pub(super) fn read_back(&mut self, to: NodeId, id: EnvelopeId) {
        let now = self.clock;
        let at = match self.loading.iter().position(|(i, _)| *i == id) {
            Some(at) => at,
            None if self.loading.len() >= MAX_LOADING => return,
            None => {
                self.loading.push((id, Loading::default()));
                self.loading.len() - 1
            }
        };
        let l = &mut self.loading[at].1;
        let ask = l.to.is_empty() || now >= l.asked_at.saturating_add(LOAD_AGAIN_MS);
        if !l.to.contains(&to) {
            l.to.push(to);
        }
        if ask {
            l.asked_at = now;
            self.actions.push_back(Action::Load { id });
        }
    }

    /// The caller read back the bytes of stored envelope `id` (after an
    /// [`Action::Load`]): the copy goes to the links that wait for it.
    /// Bytes that are not that envelope lose it, as
    /// [`load_failed`](Self::load_failed) does.
    pub fn loaded(&mut self, id: EnvelopeId, bytes: &[u8]) {
        let Some(l) = self.take_loading(&id) else { return };
        // Delivered, expired or evicted meanwhile: nothing to send.
        let env = match self.store.get(&id).map(|e| Envelope::from_stored(&e.head, bytes)) {
            None => return,
            Some(Ok(env)) => env,
            Some(Err(e)) => return self.lose_stored(id, &e.to_string()),
        };
        self.metrics.envelopes_read_back += 1;
        for to in l.to {
            if self.links.get(&to).is_some_and(|l| l.confirmed) {
                self.metrics.envelopes_forwarded += 1;
                self.send_envelope_bytes(to, env.bytes());
            }
        }
    }

    /// The caller could not read back stored envelope `id` (its disk
    /// failed it; `why` says how, for the log). The copy is lost: it
    /// leaves the store, and a message of ours is reported dropped.
    pub fn load_failed(&mut self, id: EnvelopeId, why: &str) {
        self.take_loading(&id);
        if self.store.contains(&id) {
            self.lose_stored(id, why);
        }
    }

    /// The caller cannot read `id` back now (a passing error): this send
    /// is skipped, the envelope stays, and the peer asks again.
    pub fn load_later(&mut self, id: EnvelopeId) {
        self.take_loading(&id);
    }

    fn take_loading(&mut self, id: &EnvelopeId) -> Option<Loading> {
        let at = self.loading.iter().position(|(i, _)| i == id)?;
        Some(self.loading.swap_remove(at).1)
    }

    fn lose_stored(&mut self, id: EnvelopeId, why: &str) {
        let Some(e) = self.store.remove(&id) else { return };
        self.metrics.envelopes_unreadable += 1;
        if e.local {
            self.session_unsealed(NodeId(e.head.dest().id), id);
        }
        self.actions.push_back(Action::Unpersist { id });
        self.emit(Event::StoredUnreadable { id, reason: why.to_string() });
        self.sent_moved(id, SentState::Dropped);
    }
}
