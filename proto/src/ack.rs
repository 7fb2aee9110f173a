//! Payload of an end-to-end acknowledgement envelope (kind 4): the ids of
//! envelopes its signer received. Layout: `u8 n` then `n x [16]`, n ≤ 64.

use crate::envelope::EnvelopeId;

/// Most ids in one acknowledgement.
pub const MAX_ACK_IDS: usize = 64;

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
