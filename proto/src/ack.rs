//! Payload of an end-to-end acknowledgement envelope (kind 4): the ids of
//! envelopes its signer received. Layout: `u8 n` then `n x [16]`, n ≤ 64.
//! A refusal sets the top bit of the count and adds a reason code:
//! `u8 0x80|n`, `u8 reason`, then `n x [16]`: the signer will not take
//! these envelopes (the sender stops offering them and says why).

use crate::envelope::EnvelopeId;

/// Most ids in one acknowledgement.
pub const MAX_ACK_IDS: usize = 64;
/// Refusal reason: a file larger than the recipient's whole inbox.
pub const REFUSED_TOO_LARGE: u8 = 1;
/// Refusal reason: content the recipient cannot take (unknown content
/// type, malformed file part).
pub const REFUSED_UNSUPPORTED: u8 = 2;
/// Refusal reason: an end-to-end session message whose session (or
/// message key) the recipient does not hold.
pub const REFUSED_NO_SESSION: u8 = 3;
/// Not a refusal but a request in the same form: the signer no longer
/// holds the session these envelopes are sealed in (or the key of their
/// counter), defers them, and asks for the session's start (suite 6);
/// the sender keeps them.
pub const ASK_SESSION_START: u8 = 4;

/// A decoded acknowledgement: what it lists, and the reason if it refuses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    pub ids: Vec<EnvelopeId>,
    pub refused: Option<u8>,
}

/// Encodes a refusal of `ids` (at most 64 are taken) for `reason` (not 0).
pub fn encode_refusal(ids: &[EnvelopeId], reason: u8) -> Vec<u8> {
    let mut v = encode(ids);
    v[0] |= 0x80;
    v.insert(1, reason.max(1));
    v
}

/// Parses an acknowledgement or a refusal.
pub fn decode_any(payload: &[u8]) -> Result<Ack, &'static str> {
    match payload.split_first() {
        Some((&n, rest)) if n & 0x80 != 0 => {
            let (&reason, ids) = rest.split_first().ok_or("refusal without a reason")?;
            if reason == 0 {
                return Err("refusal with reason 0");
            }
            let mut plain = Vec::with_capacity(ids.len() + 1);
            plain.push(n & 0x7f);
            plain.extend_from_slice(ids);
            Ok(Ack { ids: decode(&plain)?, refused: Some(reason) })
        }
        _ => Ok(Ack { ids: decode(payload)?, refused: None }),
    }
}

pub fn encode(ids: &[EnvelopeId]) -> Vec<u8> {
    let ids = &ids[..ids.len().min(MAX_ACK_IDS)];
    let mut v = Vec::with_capacity(1 + ids.len() * 16);
    v.push(ids.len() as u8);
    for id in ids {
        v.extend_from_slice(&id.0);
    }
    v
}

/// Parses an acknowledgement payload.
pub fn decode(payload: &[u8]) -> Result<Vec<EnvelopeId>, &'static str> {
    let (&n, rest) = payload.split_first().ok_or("empty acknowledgement")?;
    let n = n as usize;
    if n > MAX_ACK_IDS {
        return Err("acknowledgement lists more than 64 ids");
    }
    if rest.len() != n * 16 {
        return Err("acknowledgement length does not match its count");
    }
    Ok(rest
        .chunks_exact(16)
        .map(|c| {
            let mut id = [0u8; 16];
            id.copy_from_slice(c);
            EnvelopeId(id)
        })
        .collect())
}

#[cfg(test)]
mod refusal_tests {
    use super::*;

    #[test]
    fn refusals_round_trip_and_are_told_apart_from_acks() {
        let ids = [EnvelopeId([1; 16]), EnvelopeId([2; 16])];
        let r = encode_refusal(&ids, REFUSED_TOO_LARGE);
        assert_eq!(r[..2], [0x82, 1]);
        assert_eq!(decode_any(&r), Ok(Ack { ids: ids.to_vec(), refused: Some(1) }));
        assert_eq!(decode_any(&encode(&ids)), Ok(Ack { ids: ids.to_vec(), refused: None }));
        assert!(decode(&r).is_err(), "an older reader refuses a refusal instead of taking it as an ack");
        assert!(decode_any(&[0x81]).is_err());
        assert!(decode_any(&[0x81, 0]).is_err());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rejections() {
        let ids: Vec<EnvelopeId> = (0..3u8).map(|i| EnvelopeId([i; 16])).collect();
        assert_eq!(decode(&encode(&ids)), Ok(ids));
        assert!(decode(&[]).is_err());
        assert!(decode(&[2, 0, 0]).is_err());
        let mut big = vec![65u8];
        big.extend(vec![0u8; 65 * 16]);
        assert!(decode(&big).is_err());
        assert_eq!(encode(&vec![EnvelopeId::default(); 100]).len(), 1 + 64 * 16);
    }
}
