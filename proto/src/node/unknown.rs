//! A peer that forgot our session (it restarted, or dropped the link):
//! tell the sender at once, so that it starts a new handshake now instead
//! of sending into the void until its dead-peer timer runs out.
//!
//! The hint (type 7, docs/protocol.md §5) is unauthenticated: it only
//! makes the receiver start a handshake with the peer it already has a
//! link to, keeping the current session until the new one replaces it,
//! at most once per handshake timeout per link. A forged hint therefore
//! costs one handshake now and then and drops nothing. Hints are smaller
//! than the datagram that caused them and bounded in total, so a node
//! cannot be used to reflect traffic.
//!
//! Deliberately not here: what a handshake does (links.rs).

use super::*;
use crate::link::packet::emit_unknown;

/// Hints sent per second in total, and burst.
pub(super) const HINT_RATE: u32 = 20;

impl Node {
    /// A transport datagram for session `receiver`, which we do not hold.
    pub(super) fn session_unknown(&mut self, now_ms: u64, from: SocketAddr, receiver: u32) {
        self.metrics.datagrams_unknown_session += 1;
        if self.hint_budget.take(HINT_RATE, HINT_RATE, now_ms) {
            self.metrics.session_unknown_sent += 1;
            self.transmit(from, emit_unknown(receiver));
        }
    }

    /// The peer at `from` says it holds no session `receiver`: if that is
    /// the session of a link of ours to that address, handshake again now.
    pub(super) fn on_unknown(&mut self, now_ms: u64, from: SocketAddr, receiver: u32) {
        let timeout = self.cfg.handshake_timeout_ms;
        let found = self.links.iter_mut().find(|(_, l)| l.current.remote_idx == receiver && l.addr == from);
        let Some((_, l)) = found else {
            // Not a session of ours at that address: a stray or forged hint.
            self.metrics.datagrams_malformed += 1;
            return;
        };
        if l.hinted_at.is_some_and(|t| now_ms < t.saturating_add(timeout)) {
            // Already handshaking because of an earlier hint.
            return;
        }
        l.hinted_at = Some(now_ms);
        let remote = l.current.remote_ed;
        self.metrics.session_unknown_received += 1;
        self.initiate(from, Some(remote), None, true, now_ms);
    }
}
