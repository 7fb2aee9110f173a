//! Lost pushes: a direct envelope or acknowledgement sent on unasked over
//! a mesh link is expected back as a "have" (once the peer's copy is
//! durable). One that has not come `PUSH_CHECK_MS` later is offered to the
//! peer again, and again a check later while no "have" comes, up to
//! `PUSH_OFFERS` times: it answers "want" if the push was lost (a fragment
//! dropped on a lossy radio link), "have" or later otherwise. Without it a
//! lost push waited for the link's next sync round, about 15 s away: a
//! simulated mesh of 300 with 5% loss per link took 5.2 s to deliver half
//! of its direct messages and 44 s for 99%, against 0.22 and 0.44 s
//! without loss. Offered once: 1.2 and 13 s; up to three times: 1.2 and
//! 6.5 s.
//!
//! It does not send the envelope again itself (an offer costs 16 bytes
//! where the push was lost, and nothing where only the "have" was), track
//! channel floods (their copies are offered over every mesh link each
//! round), or check federation links (their sends wait in a metered queue).

use super::*;

/// How long after a push the peer's "have" is due: a round trip and the
/// peer's write (group commit on flash: tens of milliseconds).
pub(super) const PUSH_CHECK_MS: u64 = 1000;
/// Most pushes checked per link; the oldest make room (those wait for the
/// sync round, as before).
pub(super) const MAX_PUSH_CHECKS: usize = 1024;
/// How many times an unconfirmed push is offered again, a check apart:
/// the offer, the peer's want or the copy it asks for may be lost too.
pub(super) const PUSH_OFFERS: u8 = 3;

impl Node {
    /// Notes a push of `env` to the mesh link `to`, to be checked.
    pub(super) fn push_sent(&mut self, to: NodeId, env: &Envelope, now_ms: u64) {
        if !matches!(env.kind(), Kind::Direct | Kind::Ack) {
            return;
        }
        let Some(l) = self.links.get_mut(&to).filter(|l| l.fed.is_none()) else { return };
        if l.pushed.len() >= MAX_PUSH_CHECKS {
            l.pushed.pop_front();
        }
        l.pushed.push_back((env.id(), now_ms + PUSH_CHECK_MS, 0));
    }

    /// When the first push of a link is due to be checked.
    pub(super) fn push_check_at(l: &Link) -> Option<u64> {
        l.pushed.front().map(|(_, t, _)| *t)
    }

    /// Offers `node` again what was pushed to it `PUSH_CHECK_MS` ago (or
    /// offered again that long ago, up to `PUSH_OFFERS` times), is still
    /// stored here, would still go to it, and of which it has not said it
    /// holds it.
    pub(super) fn check_pushes(&mut self, node: NodeId, now_ms: u64) {
        // In the order pushed (a sender's messages oldest first), each once.
        let (mut again, mut listed) = (Vec::new(), std::collections::BTreeSet::new());
        let due = self.links.get_mut(&node).map(|l| flow::take_due(&mut l.pushed, now_ms)).unwrap_or_default();
        for (id, tries) in due {
            if self.links.get(&node).is_none_or(|l| l.peer_has.contains(&id)) || !listed.insert(id) {
                continue;
            }
            if self.store.get(&id).is_some_and(|e| self.should_offer(&e.head, node)) {
                again.push(id);
                // Checked again a check from now: the latest deadline
                // yet, so the queue stays in deadline order.
                if let Some(l) = self.links.get_mut(&node).filter(|_| tries + 1 < PUSH_OFFERS) {
                    l.pushed.push_back((id, now_ms + PUSH_CHECK_MS, tries + 1));
                }
            }
        }
        if again.is_empty() {
            return;
        }
        self.metrics.pushes_offered_again += again.len() as u64;
        for f in id_frames(IdList::Offer, &again) {
            self.send_frame(node, &f, now_ms);
        }
    }
}
