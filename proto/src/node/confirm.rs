//! A link is up only when both sides have confirmed it, and a refused side
//! learns why.
//!
//! After a handshake each side sends one authenticated frame at once (a
//! keepalive); a link carries envelopes, counts as up and is logged only
//! once the first authenticated frame of the peer has arrived. A side that
//! refuses the other after the handshake (wrong pin, not configured, link
//! limit, another domain) seals one `refuse` frame with the keys of the
//! handshake it will not keep, so the refused side drops its half at once
//! and shows `refused by peer` instead of a link that carries nothing. A
//! link not confirmed within the handshake timeout is dropped. It does not
//! decide whom to refuse (links.rs, announce.rs).

use super::links::Refusal;
use super::*;
use crate::link::frame::{RefuseReason, refuse};

impl Refusal {
    /// What the refused side is told.
    pub(super) fn told(&self) -> RefuseReason {
        match self {
            Refusal::PinMismatch { .. } => RefuseReason::PinMismatch,
            Refusal::NotConfigured => RefuseReason::NotConfigured,
            Refusal::LinkLimit(_) => RefuseReason::LinkLimit,
            Refusal::Penalized(_) => RefuseReason::OtherDomain,
            Refusal::Myself | Refusal::NotAnnounced { .. } => RefuseReason::Other,
        }
    }
}

impl Node {
    /// Tells the peer of a handshake we refused why, sealed with that
    /// handshake's keys (then forgotten).
    pub(super) fn send_refusal(&mut self, addr: SocketAddr, keys: SessionKeys, reason: RefuseReason) {
        let mut s = Session::new(keys, self.clock);
        if let Some(d) = s.seal(&refuse(reason)) {
            self.transmit(addr, d);
        }
    }

    /// An authenticated frame other than a refusal came over the link to
    /// `node`: the peer has accepted it. The first one makes it up.
    pub(super) fn confirm(&mut self, node: NodeId, now_ms: u64) {
        let Some(l) = self.links.get_mut(&node) else { return };
        if l.confirmed {
            return;
        }
        l.confirmed = true;
        let (addr, initiator, federated) = (l.addr, l.current.initiator, l.fed.is_some());
        if federated {
            // A federation peer that refused us before has accepted us now.
            self.refusals.clear(&node);
        }
        self.emit(Event::LinkUp { node, addr, initiator });
        // Card ids first: the peer asks for cards before the beacons (in
        // the sync offer) that name them.
        self.offer_cards(node, now_ms);
        self.offer(node, now_ms);
        self.drain_backlog(node, now_ms);
    }

    /// The peer refused the link over its session.
    pub(super) fn refused_by_peer(&mut self, node: NodeId, reason: RefuseReason) {
        let addr = self.links.get(&node).map_or(SocketAddr::from(([0, 0, 0, 0], 0)), |l| l.addr);
        self.refused(addr, node, reason.describe().to_string(), None);
        self.drop_link(node, "refused by peer");
    }

    /// Why the link with `node` is not up, if it was refused recently (by
    /// us, or by the peer: then the text starts with "refused by peer").
    pub fn refusal(&self, node: &NodeId) -> Option<&str> {
        self.refusals.reason(node)
    }
}
