//! A beacon: the short announce a node floods every interval instead of
//! its full card. It names the card (by the envelope id of the node's
//! signed full-card announce), carries the sequence number routes are
//! ordered by, and lists the node's link neighbours for the split horizon.
//! A receiver that does not hold the named card asks the neighbour the
//! beacon came from for it (a `want` of that id) before it floods the
//! beacon on, so the ML-KEM key crosses each link once per card, not once
//! per interval. Layout (the payload of a kind-3 envelope, big-endian):
//!
//! ```text
//! u8     version (2; a full card is version 1, see card.rs)
//! [16]   card id: the envelope id of the origin's current full-card announce
//! u64    sequence number (higher replaces lower, shared with the card's)
//! u8 N + N x [16]  node ids of current link neighbours, N <= 64
//! ```
//! It does not decide trust (callers verify the envelope first) and does
//! not know which card an id belongs to (the card book does).

use crate::envelope::EnvelopeId;
use crate::identity::NodeId;
use crate::wire::{Put, Reader};

pub use crate::card::CardError;
use crate::card::{put_node_ids, read_node_ids};

pub const BEACON_VERSION: u8 = 2;
/// Most neighbours a beacon lists: the largest `max_links` whose
/// neighbours all fit the split horizon (a larger link set lists the first
/// 64 and its other neighbours may receive a flood twice).
pub const MAX_BEACON_NEIGHBOURS: usize = 64;

/// The payload of a short announce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Beacon {
    pub card_id: EnvelopeId,
    pub seq: u64,
    pub neighbours: Vec<NodeId>,
}

impl Beacon {
    pub fn encode(&self) -> Vec<u8> {
        let n = self.neighbours.len().min(MAX_BEACON_NEIGHBOURS);
        let mut b = Vec::with_capacity(26 + 16 * n);
        b.put_u8(BEACON_VERSION);
        b.extend_from_slice(&self.card_id.0);
        b.put_u64(self.seq);
        put_node_ids(&mut b, &self.neighbours, MAX_BEACON_NEIGHBOURS);
        b
    }

    pub fn decode(payload: &[u8]) -> Result<Beacon, CardError> {
        let mut r = Reader::new(payload);
        let v = r.u8("version")?;
        if v != BEACON_VERSION {
            return Err(CardError::BadVersion { got: v });
        }
        let card_id = EnvelopeId(r.array::<16>("card id")?);
        let seq = r.u64("seq")?;
        let neighbours = read_node_ids(&mut r, MAX_BEACON_NEIGHBOURS)?;
        if r.remaining() != 0 {
            return Err(CardError::TrailingBytes { extra: r.remaining() });
        }
        Ok(Beacon { card_id, seq, neighbours })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn beacon(n: usize) -> Beacon {
        Beacon {
            card_id: EnvelopeId([7; 16]),
            seq: 1_700_000_000_123,
            neighbours: (0..n).map(|i| NodeId([i as u8; 16])).collect(),
        }
    }

    #[test]
    fn round_trips_up_to_the_neighbour_limit() {
        for n in [0, 1, 32, MAX_BEACON_NEIGHBOURS] {
            let b = beacon(n);
            let bytes = b.encode();
            assert_eq!(bytes.len(), 26 + 16 * n);
            assert_eq!(Beacon::decode(&bytes), Ok(b));
        }
        // More neighbours than fit are cut, not wrapped.
        let long = beacon(70).encode();
        assert_eq!(Beacon::decode(&long).unwrap().neighbours.len(), MAX_BEACON_NEIGHBOURS);
    }

    #[test]
    fn refuses_truncation_other_versions_and_trailing_bytes() {
        let b = beacon(3).encode();
        for cut in 0..b.len() {
            assert!(Beacon::decode(&b[..cut]).is_err(), "cut at {cut}");
        }
        let mut full_card = b.clone();
        full_card[0] = 1;
        assert_eq!(Beacon::decode(&full_card), Err(CardError::BadVersion { got: 1 }));
        let mut long = b.clone();
        long.push(0);
        assert_eq!(Beacon::decode(&long), Err(CardError::TrailingBytes { extra: 1 }));
        let mut many = b;
        many[25] = 65;
        assert_eq!(Beacon::decode(&many), Err(CardError::BadField { field: "neighbour count" }));
    }
}
