//! Handshake messages sent again when a lossy link loses them. A link
//! handshake is three datagrams; before this, losing the first or the
//! second cost the whole attempt: 5 s (`handshake_timeout`) and then a
//! redial with backoff. Now:
//! - the initiator sends its first message again after 1, 2 and 3 s while
//!   no answer came (with a cookie's proof when the peer gave us one), for
//!   a rekey, a "session unknown" hint and the first two dials of a peer;
//!   later dials of a peer that answered none (gone, most likely) send one
//!   message each, as before;
//! - the responder takes a copy as a new first message (on_init): it
//!   answers with a new second message and forgets the one before for that
//!   address. Whichever answer reaches the initiator first completes the
//!   handshake; if that was the older one, the final message names a
//!   responder that is gone, and the "session unknown" hint starts a new
//!   handshake at once (unknown.rs). Keeping each answer to send again
//!   instead cost 0.4 KB on mipsel, where the binary is at its aim.
//!
//! A lost final message needs nothing here: the initiator's first frames
//! on the new session reach a responder that does not know it, whose
//! "session unknown" hint starts a new handshake at once (unknown.rs).
//!
//! It does not change the handshake (handshake.rs): the same bytes go
//! again, so a copy proves nothing a first send did not; copies count
//! against the responder's per-address handshake rate like any first
//! message. Rekeys are handshakes too and get the same.

use super::*;

/// How long a handshake message waits for its answer before it goes again.
pub(super) const HS_RESEND_MS: u64 = 1_000;
/// Copies of one handshake message at most, besides the first send.
pub(super) const HS_RESENDS: u8 = 3;

impl PendingInit {
    /// When the first message goes again, if it does.
    pub(super) fn resend_at(&self) -> Option<u64> {
        (self.resent < HS_RESENDS).then(|| self.started + (u64::from(self.resent) + 1) * HS_RESEND_MS)
    }
}

impl Node {
    /// Sends again every first message whose answer is overdue.
    pub(super) fn resend_first_messages(&mut self, now_ms: u64) {
        let mut due = Vec::new();
        for (idx, p) in self.initiators.iter_mut() {
            if p.resend_at().is_some_and(|t| now_ms >= t) {
                p.resent += 1;
                due.push((*idx, p.addr, p.msg1.clone()));
            }
        }
        for (idx, addr, msg1) in due {
            let data = self.proved_msg1(addr, idx, &msg1, now_ms);
            self.metrics.handshake_messages_resent += 1;
            self.transmit(addr, data);
        }
    }
}
