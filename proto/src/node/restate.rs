//! Sessions sent again. A recipient that no longer holds the session a
//! message was sealed in (evicted as the least recently used of its
//! origin's, expired, or its saved state lost) defers the message, like
//! one whose start has not come yet, and refuses it "no session". The
//! sender keeps the start of every session a stored message of its own is
//! sealed in, and answers with that start alone (suite 6, e2e.rs) instead
//! of taking the refusal as final; the recipient takes the session up
//! again and asks for the messages it deferred. Before this, such a
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
    /// Deferred messages of other nodes, and when we last asked for
    /// their start (bounded like the deferred set, sessions.rs).
    asked: BTreeMap<EnvelopeId, u64>,
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

    /// Takes back a kept session start at start-up.
    pub fn restore_start(&mut self, sid: SessionId, to: NodeId, header: Vec<u8>) {
        if let Some(gone) = self.starts.insert(sid, to, header) {
            self.actions.push_back(Action::ForgetStart { sid: gone });
        }
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

    /// `recipient` refused our message `id` for want of its session: if
    /// we still hold the message and the session's start, the start goes
    /// to it again (at most every [`RESTATE_EVERY_MS`]) and the message
    /// stays with us. False if the refusal is final.
    pub(super) fn restate(&mut self, id: EnvelopeId, recipient: NodeId) -> bool {
        let sid = self
            .store
            .get(&id)
            .filter(|e| e.local && e.env.kind() == Kind::Direct && e.env.dest().id == recipient.0)
            .and_then(|e| e2e::session_of(e.env.payload()));
        let Some(sid) = sid else { return false };
        let header = match self.starts.by_sid.get(&sid) {
            Some((to, header, _)) if *to == recipient => header.clone(),
            _ => return false,
        };
        let now = self.clock;
        if self.starts.restated_at.get(&sid).is_some_and(|t| now < t.saturating_add(RESTATE_EVERY_MS)) {
            return true;
        }
        let Some(card) = self.cards.get(&recipient) else { return false };
        let domain = if card.domain != self.cfg.domain { card.domain.clone() } else { String::new() };
        let payload = e2e::restatement(&header);
        let sealed = Envelope::seal(
            &self.identity,
            &Draft {
                kind: Kind::Direct,
                max_hops: self.hops_to(&recipient),
                created: self.unix_s(),
                ttl: self.cfg.default_ttl,
                dest: Destination { id: recipient.0, domain },
                payload: &payload,
            },
        );
        let Ok(env) = sealed else { return false };
        if self.admit(env, true, now, vec![AfterWrite::Forward { from: None }]).is_err() {
            // No room now: the recipient asks again and we try again.
            return true;
        }
        self.starts.restated_at.insert(sid, now);
        self.metrics.e2e_sessions_restated += 1;
        true
    }

    /// A deferred message `id` from `origin` waits for the start of its
    /// session: ask for it (a signed "no session" refusal, which the
    /// origin answers with the start) at once for a confirmed session's
    /// message (suite 4: we held the session and lost it), after
    /// [`ASK_START_AFTER_MS`] for one whose start may still be on its way
    /// (suite 5), and again every [`ASK_START_EVERY_MS`].
    pub(super) fn ask_for_start(&mut self, env: &Envelope, waiting_since: u64) {
        let (id, now) = (env.id(), self.clock);
        let early = env.payload().first() == Some(&e2e::SUITE_SESSION_EARLY);
        if early && now < waiting_since.saturating_add(ASK_START_AFTER_MS) {
            return;
        }
        if self.starts.asked.get(&id).is_some_and(|t| now < t.saturating_add(ASK_START_EVERY_MS)) {
            return;
        }
        if self.starts.asked.len() >= sessions::MAX_PENDING_STARTS {
            self.starts.asked.retain(|_, t| now < t.saturating_add(ASK_START_EVERY_MS));
            if self.starts.asked.len() >= sessions::MAX_PENDING_STARTS {
                return;
            }
        }
        self.starts.asked.insert(id, now);
        self.metrics.e2e_starts_asked += 1;
        self.queue_refusal(env.origin_id(), id, env.expires_at(), crate::ack::REFUSED_NO_SESSION, now);
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
