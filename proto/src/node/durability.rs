//! Durability as a protocol between the node and its caller. Every write
//! the caller must make (a stored envelope, an inbox entry) is recorded
//! with what depends on it (the link `have`, the end-to-end ack, the
//! forwarding of a local send); those go out only on `persisted`, and are
//! dropped on `persist_failed`. It does not write anything itself.

use super::*;

/// What waits for a write to be confirmed durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AfterWrite {
    /// Send the stored envelope on: something this node made (a local
    /// send, a channel post, our own acknowledgement). Nothing of ours
    /// leaves before it is durable, or a crash could leave a copy in the
    /// mesh that the sender was told never went. A relayed copy goes on
    /// at once (receive.rs): the peer it came from still holds it.
    Forward,
    /// Tell the link it came from that we hold it.
    Have { link: NodeId },
    /// Acknowledge a delivery to its origin, end to end.
    /// `cross`: it came from another community (addressed to our domain),
    /// so its ack may need the origin's card for the origin's domain.
    Ack { origin: NodeId, expires: u64, cross: bool },
    /// The message key of counter `n` of a session is no longer needed.
    SessionKey { origin: NodeId, sid: crate::session::SessionId, n: u32 },
}

/// Which write an id is waiting for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum WriteKind {
    Store,
    Inbox,
}

/// A write the caller has not confirmed yet, and what depends on it.
#[derive(Debug)]
pub(super) struct PendingWrite {
    pub(super) kind: WriteKind,
    pub(super) then: Vec<AfterWrite>,
}

/// Most writes awaiting confirmation; the daemon confirms each in the same
/// loop turn, so reaching this means the caller stopped answering.
pub(super) const MAX_PENDING_WRITES: usize = 4096;

/// The writes the caller has not confirmed yet, bounded.
#[derive(Debug, Default)]
pub(super) struct Writes {
    pending: BTreeMap<EnvelopeId, PendingWrite>,
}

impl Writes {
    /// Records a write for `id` and what depends on it (added to what
    /// already waits on the same id).
    pub(super) fn add(&mut self, id: EnvelopeId, kind: WriteKind, then: Vec<AfterWrite>) {
        self.pending.entry(id).or_insert(PendingWrite { kind, then: Vec::new() }).then.extend(then);
    }

    /// Takes the write for `id` out: the caller answered, or the envelope
    /// left the store (its dependants are then dropped).
    pub(super) fn take(&mut self, id: &EnvelopeId) -> Option<PendingWrite> {
        self.pending.remove(id)
    }

    pub(super) fn contains(&self, id: &EnvelopeId) -> bool {
        self.pending.contains_key(id)
    }

    /// Writes that may still start.
    pub(super) fn pending_room(&self) -> usize {
        MAX_PENDING_WRITES.saturating_sub(self.pending.len())
    }

    /// No new write may start: the caller stopped confirming.
    pub(super) fn is_full(&self) -> bool {
        self.pending.len() >= MAX_PENDING_WRITES
    }
}

impl Node {
    /// The caller made the write for `id` (a `Persist` or a `Deliver`)
    /// durable: what waited on it goes out now.
    pub fn persisted(&mut self, id: EnvelopeId) {
        let Some(w) = self.writes.take(&id) else { return };
        if w.kind == WriteKind::Inbox {
            self.delivered.confirm(&id);
        }
        let now = self.clock;
        for then in w.then {
            match then {
                AfterWrite::Forward => {
                    // In memory still: the bytes go only once durable, below.
                    if let Some(env) = self.store.get(&id).and_then(|e| e.envelope()) {
                        self.forward(&env, None);
                    }
                }
                AfterWrite::Have { link } => self.ack(link, id, now),
                AfterWrite::Ack { origin, expires, cross } => self.queue_ack(origin, id, expires, now, cross),
                AfterWrite::SessionKey { origin, sid, n } => self.session_key_durable(origin, sid, n),
            }
        }
        if w.kind == WriteKind::Store {
            self.store.cool(&id);
        }
    }

    /// The write for `id` failed: nothing that waited on it is sent. A
    /// stored envelope is taken out of the store (a local sender is told it
    /// was not sent; a relayed copy is offered to us again later); a
    /// delivery is forgotten, so the sender keeps its copy and retries.
    pub fn persist_failed(&mut self, id: EnvelopeId) {
        let Some(w) = self.writes.take(&id) else { return };
        self.metrics.writes_failed += 1;
        match w.kind {
            WriteKind::Store => {
                if let Some(e) = self.store.get(&id).filter(|e| e.local).map(|e| e.head.clone()) {
                    self.session_unsealed(NodeId(e.dest().id), id);
                }
                self.store.remove(&id);
                // A local send that could not be stored was never sent.
                self.outbox.forget(&id);
            }
            WriteKind::Inbox => {
                self.metrics.envelopes_delivered = self.metrics.envelopes_delivered.saturating_sub(1);
                self.metrics.deliveries_deferred += 1;
                self.delivered.abort(&id);
            }
        }
    }

    /// The caller will never store the delivery `id` from `origin` (a file
    /// larger than its whole inbox: reason [`crate::ack::REFUSED_TOO_LARGE`]):
    /// not acknowledged but refused, signed, so the sender stops offering it
    /// and can say why; remembered as seen until it expires so its copies
    /// cost no more decryption.
    pub fn delivery_refused(&mut self, id: EnvelopeId, origin: NodeId, expires: u64, reason: u8) {
        self.persist_failed(id);
        self.seen.insert(id, expires);
        let now = self.clock;
        self.queue_refusal(origin, id, expires, reason, now);
    }

    /// The caller's inbox is full (`false`) or has room again (`true`).
    /// While it is full, messages for this node are left with their
    /// senders before any decryption work is spent on them.
    pub fn set_inbox_open(&mut self, open: bool) {
        self.inbox_open = open;
    }

    /// Whether a write for `id` is still waiting for the caller.
    pub fn is_pending_write(&self, id: &EnvelopeId) -> bool {
        self.writes.contains(id)
    }

    pub(super) fn await_write(&mut self, id: EnvelopeId, kind: WriteKind, then: Vec<AfterWrite>) {
        self.writes.add(id, kind, then);
    }

    /// Puts an envelope in the store and asks the caller to persist it;
    /// `then` happens once the caller confirms the write.
    pub(super) fn admit(
        &mut self,
        env: Envelope,
        local: bool,
        now_ms: u64,
        then: Vec<AfterWrite>,
    ) -> Result<(), StoreError> {
        self.admit_shared(env, local, None, now_ms, then)
    }

    pub(super) fn admit_shared(
        &mut self,
        env: Envelope,
        local: bool,
        share: Option<(&str, usize)>,
        now_ms: u64,
        then: Vec<AfterWrite>,
    ) -> Result<(), StoreError> {
        if self.writes.is_full() {
            self.metrics.envelopes_store_refused += 1;
            return Err(StoreError::Busy);
        }
        let id = env.id();
        let bytes = env.bytes().to_vec();
        let _ = now_ms;
        match self.store.insert_shared(env, local, share, self.unix_s()) {
            Ok(evicted) => {
                for victim in evicted {
                    self.metrics.envelopes_evicted += 1;
                    self.writes.take(&victim);
                    self.actions.push_back(Action::Unpersist { id: victim });
                    self.emit(Event::StoreEvicted { id: victim });
                    self.sent_moved(victim, SentState::Dropped);
                }
                self.metrics.envelopes_stored += 1;
                self.await_write(id, WriteKind::Store, then);
                self.actions.push_back(Action::Persist { id, bytes });
                Ok(())
            }
            Err(e) => {
                self.metrics.envelopes_store_refused += 1;
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dependants_accumulate_until_taken_and_the_table_is_bounded() {
        let mut w = Writes::default();
        let id = EnvelopeId([1; 16]);
        let link = NodeId([2; 16]);
        w.add(id, WriteKind::Store, vec![AfterWrite::Have { link }]);
        w.add(id, WriteKind::Store, vec![AfterWrite::Forward]);
        assert!(w.contains(&id));
        let p = w.take(&id).unwrap();
        assert_eq!(p.then, vec![AfterWrite::Have { link }, AfterWrite::Forward]);
        assert!(w.take(&id).is_none(), "answered once");
        for i in 0..MAX_PENDING_WRITES as u32 {
            assert!(!w.is_full());
            let mut b = [0u8; 16];
            b[..4].copy_from_slice(&i.to_le_bytes());
            w.add(EnvelopeId(b), WriteKind::Inbox, Vec::new());
        }
        assert!(w.is_full());
    }
}
