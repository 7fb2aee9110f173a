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

/// One kept start: whose session, its bytes, and when it was last sent
/// again.
struct Kept {
    sid: SessionId,
    to: NodeId,
    header: Vec<u8>,
    /// Order of keeping: the lowest goes first when the list is full.
    seq: u64,
    restated_at: Option<u64>,
}

/// The starts of this node's sessions, and the sessions of others whose
/// start we asked for. Plain vectors, not maps: a few hundred entries
/// scanned now and then cost less than another B-tree's code on mipsel
/// (docs/size.md).
#[derive(Default)]
pub(super) struct KeptStarts {
    kept: Vec<Kept>,
    next: u64,
    /// Sessions of other nodes we asked the start of, and when, sorted by
    /// (origin, session) (bounded like the deferred set, sessions.rs).
    asked: Vec<(NodeId, SessionId, u64)>,
}

impl KeptStarts {
    /// Adds a start; returns the one evicted to make room, if any.
    fn insert(&mut self, sid: SessionId, to: NodeId, header: Vec<u8>) -> Option<SessionId> {
        self.next += 1;
        self.kept.retain(|k| k.sid != sid);
        self.kept.push(Kept { sid, to, header, seq: self.next, restated_at: None });
        if self.kept.len() <= MAX_KEPT_STARTS {
            return None;
        }
        let (i, _) = self.kept.iter().enumerate().min_by_key(|(_, k)| k.seq)?;
        Some(self.kept.swap_remove(i).sid)
    }

    fn get_mut(&mut self, sid: &SessionId) -> Option<&mut Kept> {
        self.kept.iter_mut().find(|k| k.sid == *sid)
    }

    /// Where the entry of `origin`'s session `sid` is in `asked`, or goes.
    fn asked_pos(&self, origin: NodeId, sid: SessionId) -> Result<usize, usize> {
        self.asked.binary_search_by(|(o, s, _)| (o, s).cmp(&(&origin, &sid)))
    }

    /// Whether to ask `origin` for the start of `sid` now: not if we did
    /// within [`ASK_START_EVERY_MS`], nor while [`sessions::MAX_PENDING_STARTS`]
    /// asks that recent are remembered. Remembers the ask.
    fn ask_now(&mut self, origin: NodeId, sid: SessionId, now: u64) -> bool {
        let fresh = |t: u64| now < t.saturating_add(ASK_START_EVERY_MS);
        match self.asked_pos(origin, sid) {
            Ok(i) if fresh(self.asked[i].2) => false,
            Ok(i) => {
                self.asked[i].2 = now;
                true
            }
            Err(mut at) => {
                if self.asked.len() >= sessions::MAX_PENDING_STARTS {
                    self.asked.retain(|(_, _, t)| fresh(*t));
                    if self.asked.len() >= sessions::MAX_PENDING_STARTS {
                        return false;
                    }
                    at = self.asked_pos(origin, sid).unwrap_or_else(|at| at);
                }
                self.asked.insert(at, (origin, sid, now));
                true
            }
        }
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
        let mut used: Vec<SessionId> = self
            .store
            .iter()
            .filter(|(_, e)| e.local && e.head.kind() == Kind::Direct)
            .filter_map(|(_, e)| e.sid)
            .collect();
        used.extend(self.current_send_sessions());
        used.sort_unstable();
        let actions = &mut self.actions;
        self.starts.kept.retain(|k| {
            let keep = used.binary_search(&k.sid).is_ok();
            if !keep {
                actions.push_back(Action::ForgetStart { sid: k.sid });
            }
            keep
        });
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
            .filter(|e| e.local && e.head.kind() == Kind::Direct && e.head.dest().id == recipient.0)
            .and_then(|e| e.sid);
        let Some(sid) = sid else { return };
        let now = self.clock;
        let payload = match self.starts.get_mut(&sid) {
            Some(k) if k.to == recipient && k.restated_at.is_none_or(|t| now >= t.saturating_add(RESTATE_EVERY_MS)) => {
                e2e::restatement(&k.header)
            }
            _ => return,
        };
        let sealed = self.seal_direct_envelope(recipient, &payload, self.cfg.default_ttl, None);
        let Ok(env) = sealed else { return };
        if self.admit(env, true, now, vec![AfterWrite::Forward]).is_err() {
            // No room now: the recipient asks again and we try again.
            return;
        }
        if let Some(k) = self.starts.get_mut(&sid) {
            k.restated_at = Some(now);
        }
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
        if !self.starts.ask_now(env.origin_id(), sid, now) {
            return;
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_starts_hold_at_most_their_limit_and_the_oldest_goes_first() {
        let mut k = KeptStarts::default();
        let sid = |i: u64| i.to_le_bytes();
        for i in 0..MAX_KEPT_STARTS as u64 {
            assert_eq!(k.insert(sid(i), NodeId([1; 16]), vec![i as u8]), None);
        }
        // Kept again: it becomes the newest, and 1 is now the oldest.
        assert_eq!(k.insert(sid(0), NodeId([1; 16]), vec![0]), None);
        assert_eq!(k.insert(sid(1000), NodeId([1; 16]), vec![]), Some(sid(1)));
        assert_eq!(k.kept.len(), MAX_KEPT_STARTS);
        assert!(k.get_mut(&sid(0)).is_some() && k.get_mut(&sid(1)).is_none());
    }

    #[test]
    fn a_start_is_asked_for_once_a_minute_and_asks_remembered_stay_bounded() {
        let mut k = KeptStarts::default();
        let (a, b) = (NodeId([1; 16]), NodeId([2; 16]));
        assert!(k.ask_now(a, [1; 8], 0));
        assert!(!k.ask_now(a, [1; 8], ASK_START_EVERY_MS - 1));
        assert!(k.ask_now(b, [1; 8], 10), "another origin's session of the same id");
        assert!(k.ask_now(a, [1; 8], ASK_START_EVERY_MS));
        // Full of recent asks: no more until they age.
        k.asked.clear();
        for i in 0..sessions::MAX_PENDING_STARTS as u64 {
            assert!(k.ask_now(a, i.to_be_bytes(), 1_000));
        }
        assert!(k.asked.is_sorted_by_key(|(o, s, _)| (*o, *s)));
        assert!(!k.ask_now(b, [0; 8], 1_000 + ASK_START_EVERY_MS - 1));
        assert!(k.ask_now(b, [0; 8], 1_000 + ASK_START_EVERY_MS));
        assert_eq!(k.asked, vec![(b, [0; 8], 1_000 + ASK_START_EVERY_MS)]);
    }
}
