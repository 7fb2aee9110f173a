//! End-to-end sessions in the node: which session a direct message is
//! sealed in, when a session is confirmed (an acknowledgement of one of
//! its messages, signed by the recipient) or retired, and when the
//! receiver's session state is handed to the caller to save.
//!
//! Only the receiver's half is saved: a sender that restarts starts new
//! sessions, so it can never reuse a message key after a crash (it keeps
//! only each session's public start, to send again: restate.rs). The
//! receiver's state goes out with the delivery it changed (written before
//! the inbox entry), and the key of a delivered message is kept until the
//! inbox entry is durable, so a crash between the two can open the same
//! message again. It deliberately does not do the cryptography
//! (session.rs, e2e.rs) or touch the disk.

use super::*;
use crate::session::{self, Inbound, SendSession, SessionId};

/// A receiver's sessions of one origin are saved at the latest after this
/// many deliveries in them (at once when a session starts)...
pub const SAVE_EVERY: u32 = 16;
/// ...or, when their file is larger, once the deliveries since the last
/// save times this many bytes reach its size: rewriting the file costs at
/// most this much flash per delivery. The state on disk may lag by that
/// many message keys, the state in memory never.
pub const SAVE_BYTES_PER_DELIVERY: usize = 256;
/// Recipients a sender keeps a session with (the oldest goes first; its
/// recipient then gets a new one).
pub const MAX_SEND_SESSIONS: usize = 1024;
/// How long a receiver defers a suite 5 message whose session's start has
/// not arrived, from the first time it did so; then it refuses it as
/// "no session" (the start was dropped, say from a sender blocked then).
pub const START_WAIT_MS: u64 = 10 * 60 * 1000;
/// Deferred suite 5 messages remembered (the oldest is forgotten first,
/// which only restarts its wait).
pub const MAX_PENDING_STARTS: usize = 4096;

/// Both halves of the node's sessions.
#[derive(Default)]
pub(super) struct Sessions {
    out: BTreeMap<NodeId, SendSession>,
    inbound: Inbound,
    /// Deliveries per origin since its sessions were last handed out to save.
    unsaved: SmallMap<NodeId, u32>,
    /// Suite 5 messages deferred for want of their session's start, and
    /// when (monotonic ms) they were first.
    pending: BTreeMap<EnvelopeId, (u64, SessionId, NodeId)>,
    /// Origins with a session not saved yet (or whose save failed).
    must_save: std::collections::BTreeSet<NodeId>,
    expire_at: u64,
}

impl Node {
    /// Seals `body` to `to`, in the current session with it (started when
    /// there is none, it is spent, or it was made for another card).
    /// Recipients without an ML-KEM key get a one-shot message.
    pub(super) fn seal_payload(&mut self, to: NodeId, content_type: u8, body: &[u8], expires: u64) -> Option<Vec<u8>> {
        let now_s = self.unix_s();
        let card = self.cards.get(&to)?;
        let origin = self.identity.public_key();
        let outbox = &self.outbox;
        let usable = match self.sessions.out.get_mut(&to) {
            Some(s) => {
                if s.unacked.len() >= session::MAX_UNACKED {
                    // Before retiring it for that: only messages the outbox
                    // still tracks as moving count (not ones whose send
                    // failed after sealing, or that it forgot).
                    s.unacked.retain(|id| outbox.get(&EnvelopeId(*id)).is_some_and(|x| !x.state.is_final()));
                }
                s.recip_x == card.x25519 && !s.spent(now_s)
            }
            None => false,
        };
        if !usable {
            let Some(fresh) = e2e::start_session(&mut self.rng, card, now_s) else {
                return Some(e2e::seal(&mut self.rng, card, &origin, &to.0, content_type, body));
            };
            if self.sessions.out.len() >= MAX_SEND_SESSIONS && !self.sessions.out.contains_key(&to) {
                let oldest = self.sessions.out.iter().min_by_key(|(_, s)| s.created_s).map(|(k, _)| *k);
                if let Some(k) = oldest {
                    self.sessions.out.remove(&k);
                }
            }
            self.metrics.e2e_sessions_started += 1;
            self.keep_start(fresh.sid, to, fresh.header.clone());
            self.sessions.out.insert(to, fresh);
        }
        let s = self.sessions.out.get_mut(&to)?;
        Some(e2e::seal_in(s, &origin, &to.0, content_type, body, expires).0)
    }

    /// Records that envelope `env` to `to` was sealed in its current session.
    pub(super) fn session_sealed(&mut self, to: NodeId, env: &Envelope) {
        if let Some(s) = self.sessions.out.get_mut(&to) {
            s.unacked.insert(env.id().0);
            if env.payload().first() == Some(&e2e::SUITE_SESSION_INIT) {
                s.starts.insert(env.id().0);
            }
        }
    }

    /// A local envelope to `to` will never go out (its write failed).
    pub(super) fn session_unsealed(&mut self, to: NodeId, id: EnvelopeId) {
        if let Some(s) = self.sessions.out.get_mut(&to) {
            s.unacked.remove(&id.0);
            s.starts.remove(&id.0);
        }
    }

    /// The sessions messages are sealed in now, one per recipient.
    pub(super) fn current_send_sessions(&self) -> impl Iterator<Item = SessionId> + '_ {
        self.sessions.out.values().map(|s| s.sid)
    }

    /// Takes up the session a start sent again (suite 6) names, from its
    /// first key again if messages of it wait here (their keys were
    /// gone); saved with the next delivery of its origin's.
    pub(super) fn restate_inbound(&mut self, env: &Envelope) -> Result<(SessionId, bool), e2e::OpenError> {
        let (origin, now_s) = (env.origin_id(), self.unix_s());
        let sid = e2e::session_of(env.payload());
        // (The deferred set is keyed by envelope, not origin: another
        // origin's session of the same id could only reset that origin's.)
        let reset = self.sessions.pending.values().any(|p| Some(p.1) == sid);
        let r = e2e::restate(&self.identity, &mut self.sessions.inbound, origin, env.payload(), now_s, reset);
        if let Ok((_, true)) = r {
            self.sessions.must_save.insert(origin);
        }
        self.forget_evicted_sessions();
        r
    }

    /// Since when (monotonic ms) the message `id` has waited for its
    /// session's start.
    pub(super) fn waiting_since(&self, id: &EnvelopeId) -> Option<u64> {
        self.sessions.pending.get(id).map(|p| p.0)
    }

    /// Whether the suite 5 message `id` came before its session's start
    /// and waits for it (deferred, not acknowledged).
    pub(super) fn waits_for_start(&self, id: &EnvelopeId) -> bool {
        self.sessions.pending.contains_key(id)
    }

    /// Whether the suite 5 message `id` may wait longer for its session's
    /// start ([`START_WAIT_MS`] from the first time it was deferred).
    pub(super) fn session_may_wait(&mut self, id: EnvelopeId, sid: SessionId, link: NodeId) -> bool {
        let now = self.clock;
        let pending = &mut self.sessions.pending;
        if !pending.contains_key(&id) && pending.len() >= MAX_PENDING_STARTS {
            let oldest = pending.iter().min_by_key(|(_, p)| p.0).map(|(k, _)| *k);
            if let Some(k) = oldest {
                pending.remove(&k);
            }
        }
        let p = pending.entry(id).or_insert((now, sid, link));
        p.2 = link;
        if now.saturating_sub(p.0) < START_WAIT_MS {
            return true;
        }
        pending.remove(&id);
        false
    }

    /// The start of session `sid` arrived: its messages that came before
    /// it (deferred, not acknowledged) are asked for again now from the
    /// links that brought them, instead of at those links' next offer
    /// round (a relay pushes them as they come; the start, two datagrams,
    /// can come after them). Without this and the re-ask of each deferred
    /// message (receive.rs), a burst through a relay that retired its
    /// session mid-way waited 15 s for the rest in half the runs.
    pub(super) fn fetch_pending(&mut self, sid: SessionId) {
        let now = self.clock;
        let mut by_link: BTreeMap<NodeId, Vec<EnvelopeId>> = BTreeMap::new();
        for (id, (_, s, link)) in &self.sessions.pending {
            if *s == sid {
                by_link.entry(*link).or_default().push(*id);
            }
        }
        for (link, ids) in by_link {
            for id in &ids {
                self.note_asked(*id, now);
            }
            self.awaiting(link, &ids, now);
            for f in crate::link::frame::id_frames(IdList::Want, &ids) {
                self.send_frame(link, &f, now);
            }
        }
    }

    /// A sent message reached a final state: an acknowledgement confirms
    /// its session (later messages leave out the starting exchange); a
    /// refusal for want of the session retires it.
    pub(super) fn session_moved(&mut self, id: EnvelopeId, to: NodeId, state: SentState) {
        if !state.is_final() {
            return;
        }
        let Some(s) = self.sessions.out.get_mut(&to) else { return };
        s.starts.remove(&id.0);
        if !s.unacked.remove(&id.0) {
            return;
        }
        match state {
            SentState::Delivered => s.confirmed = true,
            SentState::RefusedNoSession => {
                self.sessions.out.remove(&to);
            }
            _ => {}
        }
    }

    /// Opens a direct message for us in the session state held.
    pub(super) fn open_direct(
        &mut self,
        env: &Envelope,
    ) -> Result<(e2e::Opened, Option<e2e::SessionUse>), e2e::OpenError> {
        let now_s = self.unix_s();
        let r = e2e::open_any(
            &self.identity,
            &mut self.sessions.inbound,
            env.origin_id(),
            env.origin(),
            &env.dest().id,
            env.payload(),
            now_s,
        );
        if r.is_ok() {
            self.sessions.pending.remove(&env.id());
        }
        if let Ok((_, Some(u))) = &r
            && u.new
        {
            self.metrics.e2e_sessions_accepted += 1;
            // Saved with the next delivery whatever the count.
            self.sessions.must_save.insert(env.origin_id());
        }
        self.forget_evicted_sessions();
        r
    }

    /// The origin's sessions to save with this delivery, if they are due:
    /// a session not saved yet at once, otherwise after [`SAVE_EVERY`]
    /// deliveries or [`SAVE_BYTES_PER_DELIVERY`] per delivery.
    pub(super) fn sessions_to_save(&mut self, origin: NodeId) -> Option<session::SessionsFile> {
        let size = self.sessions.inbound.encoded_len(&origin);
        let n = self.sessions.unsaved.entry(origin).or_insert(0);
        *n += 1;
        let due = SAVE_EVERY.max((size / SAVE_BYTES_PER_DELIVERY) as u32);
        if *n < due && !self.sessions.must_save.remove(&origin) {
            return None;
        }
        self.sessions.unsaved.remove(&origin);
        self.sessions.inbound.encode(&origin)
    }

    /// The caller could not save the sessions handed out with a delivery
    /// of `origin`'s (that delivery failed too): the next one saves them.
    pub fn sessions_save_failed(&mut self, origin: NodeId) {
        self.sessions.must_save.insert(origin);
    }

    /// The delivery that used counter `n` of a session is durable: its key
    /// goes (from memory now, from disk with the next save).
    pub(super) fn session_key_durable(&mut self, origin: NodeId, sid: SessionId, n: u32) {
        self.sessions.inbound.forget(&origin, &sid, n);
    }

    /// Takes back one origin's saved sessions at start-up.
    pub fn restore_sessions(&mut self, bytes: &[u8]) -> Result<NodeId, session::FileError> {
        let r = self.sessions.inbound.restore(bytes);
        self.forget_evicted_sessions();
        r
    }

    /// Drops sessions nobody used for longer than an envelope can live
    /// (checked once an hour).
    pub(super) fn expire_sessions(&mut self, now_ms: u64) {
        if now_ms < self.sessions.expire_at {
            return;
        }
        self.sessions.expire_at = now_ms + 3_600_000;
        let before = self.unix_s().saturating_sub(u64::from(crate::envelope::MAX_TTL) + session::SESSION_AGE_S);
        self.sessions.inbound.expire(before);
        self.forget_evicted_sessions();
        self.forget_unused_starts();
    }

    fn forget_evicted_sessions(&mut self) {
        for origin in self.sessions.inbound.take_gone() {
            self.sessions.unsaved.remove(&origin);
            self.sessions.must_save.remove(&origin);
            self.actions.push_back(Action::ForgetSessions { origin });
        }
    }

    /// Sessions held: (recipients we send to, origins we receive from,
    /// sessions received in).
    pub fn session_counts(&self) -> (usize, usize, usize) {
        (self.sessions.out.len(), self.sessions.inbound.origins(), self.sessions.inbound.sessions())
    }
}
