//! Sessions sent again. A recipient that no longer holds the session a
//! message was sealed in (evicted as the least recently used of its
//! origin's, expired, or its saved state lost) defers the message, like
//! one whose start has not come yet, and asks for the start (a signed
//! acknowledgement with reason [`crate::ack::ASK_SESSION_START`]). The
//! sender keeps the start of every session a stored message of its own is
//! sealed in, and answers with that start alone (suite 6, e2e.rs),
//! keeping the message; the recipient takes the session up
//! again and asks for the messages it deferred. A message whose key is
//! gone from a session still held (skipped keys shed under load) is
//! handled the same way: the start sent again resets the session to its
//! first key. Before this, such a
//! message was refused for good after its sender had told its user it was
//! sent (seen in tests/durability.rs: a sender restarted 100 times left
//! more sessions than the recipient keeps).
//!
//! It deliberately does not choose the session a message is sealed in
//! (sessions.rs), do the cryptography (e2e.rs), or touch the disk: the
//! caller keeps the starts (`Action::SaveStart`) and gives them back at
//! start-up ([`Node::restore_start`]).

use super::*;
use crate::session::SessionId;

/// Session starts kept (about 1.1 KB each); past it the oldest goes, and
/// its messages fall back to a final refusal if their recipient loses it.
pub const MAX_KEPT_STARTS: usize = 256;
/// A start is sent again to its recipient at most this often.
pub const RESTATE_EVERY_MS: u64 = 10_000;
/// A recipient asks for the start of a suite 5 message (normally right
/// behind it) only once the message has waited this long...
pub const ASK_START_AFTER_MS: u64 = 30_000;
/// ...and, for any deferred message, again this often while it waits.
pub const ASK_START_EVERY_MS: u64 = 60_000;

/// The starts of this node's sessions, and when each was last sent again.
#[derive(Default)]
pub(super) struct KeptStarts {
    by_sid: BTreeMap<SessionId, (NodeId, Vec<u8>, u64)>,
    next: u64,
    restated_at: BTreeMap<SessionId, u64>,
    /// Sessions of other nodes we asked the start of, and when (bounded
    /// like the deferred set, sessions.rs).
    asked: BTreeMap<(NodeId, SessionId), u64>,
}

impl KeptStarts {
    /// Adds a start; returns the one evicted to make room, if any.
    fn insert(&mut self, sid: SessionId, to: NodeId, header: Vec<u8>) -> Option<SessionId> {
        self.next += 1;
        self.by_sid.insert(sid, (to, header, self.next));
        if self.by_sid.len() <= MAX_KEPT_STARTS {
            return None;
        }
        let oldest = self.by_sid.iter().min_by_key(|(_, v)| v.2).map(|(k, _)| *k)?;
        self.by_sid.remove(&oldest);
        self.restated_at.remove(&oldest);
        Some(oldest)
    }
}

impl Node {
    /// A session with `to` was started: its start is kept, here and (in
    /// the same commit as its first message) by the caller.
    pub(super) fn keep_start(&mut self, sid: SessionId, to: NodeId, header: Vec<u8>) {
        if let Some(gone) = self.starts.insert(sid, to, header.clone()) {
            self.actions.push_back(Action::ForgetStart { sid: gone });
        }
        self.actions.push_back(Action::SaveStart { sid, to, header });
    }

    /// Takes back a kept session start at start-up. One that is not an
    /// ephemeral key and a KEM ciphertext hashing to `sid` is refused, so
    /// a damaged record is never sent to a recipient as a start.
    pub fn restore_start(&mut self, sid: SessionId, to: NodeId, header: Vec<u8>) -> Result<(), RestoreError> {
        let (eph, ct) = header.split_at_checked(32).ok_or(RestoreError::NotAStart)?;
        let eph: &[u8; 32] = eph.try_into().map_err(|_| RestoreError::NotAStart)?;
        if ct.len() != crate::identity::KEM_CT_LEN || crate::session::session_id(eph, ct) != sid {
            return Err(RestoreError::NotAStart);
        }
        if let Some(gone) = self.starts.insert(sid, to, header) {
            self.actions.push_back(Action::ForgetStart { sid: gone });
        }
        Ok(())
    }

    /// Forgets the starts no stored message of ours and no current
    /// session needs (after the restore, and hourly).
    pub fn forget_unused_starts(&mut self) {
        let mut used: std::collections::BTreeSet<SessionId> = self
            .store
            .iter()
            .filter(|(_, e)| e.local && e.env.kind() == Kind::Direct)
            .filter_map(|(_, e)| e2e::session_of(e.env.payload()))
            .collect();
        used.extend(self.current_send_sessions());
        let unused: Vec<SessionId> = self.starts.by_sid.keys().filter(|s| !used.contains(*s)).copied().collect();
        for sid in unused {
            self.starts.by_sid.remove(&sid);
            self.starts.restated_at.remove(&sid);
            self.actions.push_back(Action::ForgetStart { sid });
        }
    }

    /// `recipient` asked for the start of the session our message `id` is
    /// sealed in: if we still hold the message and the start, the start
    /// goes to it again (at most every [`RESTATE_EVERY_MS`]). The message
    /// stays with us either way; if we cannot help, the recipient refuses
    /// it for good once it has waited its 10 minutes.
    pub(super) fn restate(&mut self, id: EnvelopeId, recipient: NodeId) {
        let sid = self
            .store
            .get(&id)
            .filter(|e| e.local && e.env.kind() == Kind::Direct && e.env.dest().id == recipient.0)
            .and_then(|e| e2e::session_of(e.env.payload()));
        let Some(sid) = sid else { return };
        let header = match self.starts.by_sid.get(&sid) {
            Some((to, header, _)) if *to == recipient => header.clone(),
            _ => return,
        };
        let now = self.clock;
        if self.starts.restated_at.get(&sid).is_some_and(|t| now < t.saturating_add(RESTATE_EVERY_MS)) {
            return;
        }
        let payload = e2e::restatement(&header);
        let sealed = self.seal_direct_envelope(recipient, &payload, self.cfg.default_ttl, None);
        let Ok(env) = sealed else { return };
        if self.admit(env, true, now, vec![AfterWrite::Forward { from: None }]).is_err() {
            // No room now: the recipient asks again and we try again.
            return;
        }
        self.starts.restated_at.insert(sid, now);
        self.metrics.e2e_sessions_restated += 1;
    }

    /// A deferred message waits for the start of its session: ask its
    /// origin for it (which answers with the start) at once when we held
    /// the session and lost it or its key (`at_once`, or a confirmed
    /// session's suite 4), after [`ASK_START_AFTER_MS`] for a message whose
    /// start may still be on its way (suite 5), and again every
    /// [`ASK_START_EVERY_MS`]; one ask per session covers its messages.
    pub(super) fn ask_for_start(&mut self, env: &Envelope, waiting_since: u64, at_once: bool) {
        let (id, now) = (env.id(), self.clock);
        let early = env.payload().first() == Some(&e2e::SUITE_SESSION_EARLY);
        if !at_once && early && now < waiting_since.saturating_add(ASK_START_AFTER_MS) {
            return;
        }
        let Some(sid) = e2e::session_of(env.payload()) else { return };
        let key = (env.origin_id(), sid);
        if self.starts.asked.get(&key).is_some_and(|t| now < t.saturating_add(ASK_START_EVERY_MS)) {
            return;
        }
        if self.starts.asked.len() >= sessions::MAX_PENDING_STARTS {
            self.starts.asked.retain(|_, t| now < t.saturating_add(ASK_START_EVERY_MS));
            if self.starts.asked.len() >= sessions::MAX_PENDING_STARTS {
                return;
            }
        }
        self.starts.asked.insert(key, now);
        self.metrics.e2e_starts_asked += 1;
        self.queue_refusal(env.origin_id(), id, env.expires_at(), crate::ack::ASK_SESSION_START, now);
    }

    /// A message of a session we hold could not open for want of its key
    /// (dropped under load, or beyond the chain's jump): deferred, and the
    /// start asked for at once, which resets the session (for at most
    /// [`sessions::START_WAIT_MS`], as any deferred message). False once
    /// it has waited that long: then it is refused for good.
    pub(super) fn wait_for_reset(&mut self, env: &Envelope, link: NodeId) -> bool {
        let (id, now) = (env.id(), self.clock);
        let Some(sid) = e2e::session_of(env.payload()) else { return false };
        if !self.session_may_wait(id, sid, link) {
            return false;
        }
        self.defer(link, vec![id], now);
        self.metrics.deliveries_deferred += 1;
        let since = self.waiting_since(&id).unwrap_or(now);
        self.ask_for_start(env, since, true);
        true
    }

    /// A start sent again (suite 6) arrived: the session is taken up, the
    /// messages deferred for it are asked for, and the link is told we
    /// hold the envelope (it carries no message: nothing is delivered).
    pub(super) fn take_restatement(&mut self, env: &Envelope, link: NodeId) {
        let (id, now) = (env.id(), self.clock);
        self.seen.insert(id, env.expires_at());
        match self.restate_inbound(env) {
            Ok((sid, new)) => {
                if new {
                    self.metrics.e2e_sessions_accepted += 1;
                }
                self.fetch_pending(sid);
                self.ack(link, id, now);
            }
            Err(e) => {
                self.metrics.envelopes_undecryptable += 1;
                self.emit(Event::EnvelopeDropped { from: env.origin_id(), reason: e.to_string() });
            }
        }
    }
}
