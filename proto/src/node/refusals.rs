//! Peers refused recently, so a peer that keeps coming back costs one log
//! line per cause, not one per attempt, and a node refused for belonging
//! to another community is refused at the handshake (with a growing
//! penalty) instead of linking and being dropped again and again.
//!
//! It decides nothing about who is refused (links.rs and announce.rs do)
//! and keeps at most [`MAX_REFUSED`] peers, forgetting the oldest.

use super::*;

/// Most peers remembered as refused.
pub(super) const MAX_REFUSED: usize = 256;
/// Causes remembered per peer (two sides refusing each other for two
/// causes must not log them in turn).
const CAUSES_PER_PEER: usize = 4;

#[derive(Debug, Clone)]
pub(super) struct Refused {
    /// The last cause noted for this peer.
    reason: String,
    /// Causes already logged for it (at most [`CAUSES_PER_PEER`]).
    logged: Vec<String>,
    /// Until when a handshake from it is refused at once (0: not at all).
    until: u64,
    penalty: u64,
    noted: u64,
}

#[derive(Debug, Default)]
pub(super) struct Refusals {
    peers: crate::SmallMap<NodeId, Refused>,
}

impl Refusals {
    /// Records that `node` was refused for `reason`; true when this cause
    /// is new for it (log it). With `penalize`, handshakes from it are
    /// refused at once for a penalty that doubles each time, from `min_ms`
    /// up to `max_ms`.
    pub(super) fn note(&mut self, node: NodeId, reason: &str, now: u64, penalize: Option<(u64, u64)>) -> bool {
        if !self.peers.contains_key(&node) && self.peers.len() >= MAX_REFUSED {
            let oldest = self.peers.iter().min_by_key(|(_, r)| r.noted).map(|(k, _)| *k);
            if let Some(k) = oldest {
                self.peers.remove(&k);
            }
        }
        let r = self.peers.entry(node).or_insert(Refused {
            reason: String::new(),
            logged: Vec::new(),
            until: 0,
            penalty: 0,
            noted: now,
        });
        r.reason = reason.to_string();
        let new_cause = !r.logged.iter().any(|c| c == reason);
        if new_cause {
            if r.logged.len() >= CAUSES_PER_PEER {
                r.logged.remove(0);
            }
            r.logged.push(reason.to_string());
        }
        r.noted = now;
        if let Some((min, max)) = penalize {
            r.penalty = if r.penalty == 0 { min } else { (r.penalty * 2).min(max) };
            r.until = now + r.penalty;
        }
        new_cause
    }

    /// The cause, while handshakes from `node` are refused at once.
    pub(super) fn blocked(&self, node: &NodeId, now: u64) -> Option<&str> {
        self.peers.get(node).filter(|r| now < r.until).map(|r| r.reason.as_str())
    }

    /// The last cause noted for `node`, while it is remembered.
    pub(super) fn reason(&self, node: &NodeId) -> Option<&str> {
        self.peers.get(node).map(|r| r.reason.as_str())
    }

    /// A link with `node` was accepted: a later refusal is news again.
    pub(super) fn clear(&mut self, node: &NodeId) {
        self.peers.remove(node);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_log_per_cause_and_a_growing_penalty() {
        let mut r = Refusals::default();
        let n = NodeId([1; 16]);
        assert!(r.note(n, "other domain", 0, Some((1_000, 8_000))));
        assert!(!r.note(n, "other domain", 10, Some((1_000, 8_000))), "same cause: not logged again");
        assert_eq!(r.blocked(&n, 1_500), Some("other domain"), "penalty doubled to 2 s");
        assert_eq!(r.blocked(&n, 2_010), None);
        for t in 0..10 {
            r.note(n, "other domain", 100_000 + t, Some((1_000, 8_000)));
        }
        assert_eq!(r.blocked(&n, 100_009 + 7_999), Some("other domain"), "capped at the maximum");
        assert!(r.note(n, "pin mismatch", 200_000, None), "a new cause is logged");
        assert!(!r.note(n, "other domain", 200_000, None), "causes in turn are not logged again");
        assert_eq!(r.reason(&n), Some("other domain"), "the state is the latest cause");
        r.clear(&n);
        assert!(r.note(n, "pin mismatch", 200_001, None), "after a good link, news again");
        for i in 0..=MAX_REFUSED as u32 {
            let mut b = [0u8; 16];
            b[..4].copy_from_slice(&i.to_le_bytes());
            r.note(NodeId(b), "x", u64::from(i), None);
        }
        assert!(r.peers.len() <= MAX_REFUSED);
    }
}
