//! What happened to the direct messages this node sent: queued (stored
//! here), forwarded (a neighbour confirmed it holds a copy), delivered (the
//! recipient's signed acknowledgement arrived and was verified), or expired
//! (its lifetime ran out first) or dropped (evicted from a full store), or
//! refused (the recipient signed a refusal, with a reason).
//!
//! It only records transitions the node reports and says which are news;
//! it writes nothing (the caller keeps the durable record and shows it) and
//! never guesses: `Delivered` comes only from an acknowledgement signed by
//! the recipient. Bounded: at most [`MAX_TRACKED`] messages, finished ones
//! forgotten first.

use std::collections::{BTreeMap, BTreeSet};

use crate::envelope::EnvelopeId;
use crate::identity::NodeId;

/// Most sent messages tracked at once.
pub const MAX_TRACKED: usize = 4096;

/// The state of one sent message, in the order it normally moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SentState {
    Queued,
    Forwarded,
    Delivered,
    Expired,
    /// Evicted from a full store before it was delivered.
    Dropped,
    /// The recipient signed a refusal: the file is larger than its whole
    /// inbox.
    RefusedTooLarge,
    /// The recipient signed a refusal: it cannot take this content (an
    /// unknown content type, or a malformed file part).
    RefusedUnsupported,
    /// The recipient signed a refusal: it no longer holds the end-to-end
    /// session the message was sealed in (its state was lost or the
    /// session expired); later messages start a new one.
    RefusedNoSession,
}

impl SentState {
    pub fn name(self) -> &'static str {
        match self {
            SentState::Queued => "queued",
            SentState::Forwarded => "forwarded",
            SentState::Delivered => "delivered",
            SentState::Expired => "expired",
            SentState::Dropped => "dropped",
            SentState::RefusedTooLarge | SentState::RefusedUnsupported | SentState::RefusedNoSession => "refused",
        }
    }

    /// The state as one word, the refusal's reason included (for logs).
    pub fn code(self) -> &'static str {
        match self {
            SentState::RefusedTooLarge => "refused:too_large",
            SentState::RefusedUnsupported => "refused:unsupported",
            SentState::RefusedNoSession => "refused:no_session",
            s => s.name(),
        }
    }

    /// Why the recipient refused, for people.
    pub fn reason(self) -> Option<&'static str> {
        match self {
            SentState::RefusedTooLarge => Some("larger than the recipient's whole inbox"),
            SentState::RefusedUnsupported => Some("the recipient cannot take this content"),
            SentState::RefusedNoSession => Some("the recipient no longer holds the session it was sealed in"),
            _ => None,
        }
    }

    pub fn parse(s: &str) -> Option<SentState> {
        [
            Self::Queued,
            Self::Forwarded,
            Self::Delivered,
            Self::Expired,
            Self::Dropped,
            Self::RefusedTooLarge,
            Self::RefusedUnsupported,
            Self::RefusedNoSession,
        ]
        .into_iter()
        .find(|x| x.code() == s)
    }

    /// The refusal a reason code of a refusing acknowledgement stands for.
    pub fn refused(reason: u8) -> SentState {
        match reason {
            crate::ack::REFUSED_TOO_LARGE => SentState::RefusedTooLarge,
            crate::ack::REFUSED_NO_SESSION => SentState::RefusedNoSession,
            _ => SentState::RefusedUnsupported,
        }
    }

    /// Nothing changes after this.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Self::Delivered
                | Self::Expired
                | Self::Dropped
                | Self::RefusedTooLarge
                | Self::RefusedUnsupported
                | Self::RefusedNoSession
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    pub to: NodeId,
    pub state: SentState,
    /// A counter of when it was added, for eviction order.
    order: u64,
}

#[derive(Debug, Default)]
pub struct Outbox {
    sent: BTreeMap<EnvelopeId, Sent>,
    /// Eviction order: (still moving, added, id), so finished messages go
    /// first, oldest first, without a walk over all of them.
    order: BTreeSet<(bool, u64, EnvelopeId)>,
    next: u64,
}

impl Outbox {
    pub fn track(&mut self, id: EnvelopeId, to: NodeId, state: SentState) {
        if !self.sent.contains_key(&id)
            && self.sent.len() >= MAX_TRACKED
            && let Some((_, _, k)) = self.order.pop_first()
        {
            self.sent.remove(&k);
        }
        self.next += 1;
        if let Some(old) = self.sent.insert(id, Sent { to, state, order: self.next }) {
            self.order.remove(&(!old.state.is_final(), old.order, id));
        }
        self.order.insert((!state.is_final(), self.next, id));
    }

    pub fn get(&self, id: &EnvelopeId) -> Option<&Sent> {
        self.sent.get(id)
    }

    /// Moves `id` to `state` if that is progress; returns the message's
    /// recipient when it is news. A final state never changes, and
    /// `Delivered` only comes from an acknowledgement signed by `to`.
    pub fn advance(&mut self, id: &EnvelopeId, state: SentState) -> Option<NodeId> {
        let s = self.sent.get_mut(id)?;
        if s.state.is_final() || state <= s.state {
            return None;
        }
        if state.is_final() {
            self.order.remove(&(true, s.order, *id));
            self.order.insert((false, s.order, *id));
        }
        s.state = state;
        Some(s.to)
    }

    /// Stops tracking `id` (it was never sent after all).
    pub fn forget(&mut self, id: &EnvelopeId) {
        if let Some(s) = self.sent.remove(id) {
            self.order.remove(&(!s.state.is_final(), s.order, *id));
        }
    }

    pub fn len(&self) -> usize {
        self.sent.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sent.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_only_move_forward_and_stay_final() {
        let mut o = Outbox::default();
        let (id, to) = (EnvelopeId([1; 16]), NodeId([2; 16]));
        o.track(id, to, SentState::Queued);
        assert_eq!(o.advance(&id, SentState::Forwarded), Some(to));
        assert_eq!(o.advance(&id, SentState::Forwarded), None, "not news twice");
        assert_eq!(o.advance(&id, SentState::Delivered), Some(to));
        assert_eq!(o.advance(&id, SentState::Expired), None, "delivered stays delivered");
        assert_eq!(o.advance(&EnvelopeId([9; 16]), SentState::Delivered), None, "not ours");
    }

    #[test]
    fn bounded_and_finished_ones_go_first() {
        let mut o = Outbox::default();
        for i in 0..MAX_TRACKED as u32 {
            let mut b = [0u8; 16];
            b[..4].copy_from_slice(&i.to_le_bytes());
            o.track(EnvelopeId(b), NodeId([1; 16]), if i == 5 { SentState::Delivered } else { SentState::Queued });
        }
        o.track(EnvelopeId([0xff; 16]), NodeId([1; 16]), SentState::Queued);
        assert_eq!(o.len(), MAX_TRACKED);
        let mut five = [0u8; 16];
        five[0] = 5;
        assert!(o.get(&EnvelopeId(five)).is_none(), "the finished one was forgotten first");
        // One that finishes later goes before older ones still moving.
        let mut seven = [0u8; 16];
        seven[0] = 7;
        assert_eq!(o.advance(&EnvelopeId(seven), SentState::Expired), Some(NodeId([1; 16])));
        o.forget(&EnvelopeId([0xff; 16]));
        o.track(EnvelopeId([0xfe; 16]), NodeId([1; 16]), SentState::Queued);
        o.track(EnvelopeId([0xfd; 16]), NodeId([1; 16]), SentState::Queued);
        assert!(o.get(&EnvelopeId(seven)).is_none());
        assert_eq!((o.len(), o.order.len()), (MAX_TRACKED, MAX_TRACKED));
        assert!(o.get(&EnvelopeId([0; 16])).is_some());
        o.track(EnvelopeId([0xfc; 16]), NodeId([1; 16]), SentState::Queued);
        assert!(o.get(&EnvelopeId([0; 16])).is_none(), "then the oldest");
    }
}
