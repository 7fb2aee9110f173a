//! Splitting envelopes into link frames and reassembling them.
//!
//! A transfer is one envelope cut into at most [`MAX_FRAGMENTS`] fragments.
//! Reassembly keeps at most `max_partials` incomplete transfers and
//! `max_bytes` per peer, drops transfers older than the timeout, and never
//! grows a transfer beyond the largest envelope. A lost fragment loses the
//! transfer; the inventory sync offers the envelope again later.

use crate::envelope::MAX_ENVELOPE_LEN;
use crate::link::frame::{MAX_FRAGMENT_DATA, fragment};

pub const MAX_FRAGMENTS: u16 = MAX_ENVELOPE_LEN.div_ceil(MAX_FRAGMENT_DATA) as u16;

/// Cuts `bytes` into fragment frames of transfer `xfer`.
pub fn split(xfer: u32, bytes: &[u8]) -> Vec<Vec<u8>> {
    let count = bytes.len().div_ceil(MAX_FRAGMENT_DATA).max(1) as u16;
    if bytes.is_empty() {
        return vec![fragment(xfer, 0, 1, &[])];
    }
    bytes.chunks(MAX_FRAGMENT_DATA).enumerate().map(|(i, c)| fragment(xfer, i as u16, count, c)).collect()
}

#[derive(Debug)]
struct Partial {
    parts: Vec<Option<Vec<u8>>>,
    have: usize,
    bytes: usize,
    started_ms: u64,
}

/// Why a fragment was dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReassemblyError {
    TooManyFragments,
    Inconsistent,
    OverBudget,
    TooLarge,
}

/// Per-peer reassembly buffers.
#[derive(Debug)]
pub struct Reassembler {
    partials: crate::SmallMap<u32, Partial>,
    bytes: usize,
    max_partials: usize,
    max_bytes: usize,
    timeout_ms: u64,
}

impl Reassembler {
    pub fn new(max_partials: usize, max_bytes: usize, timeout_ms: u64) -> Reassembler {
        Reassembler { partials: crate::SmallMap::new(), bytes: 0, max_partials, max_bytes, timeout_ms }
    }

    /// Bytes held in incomplete transfers.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Adds one fragment; returns the whole envelope once complete.
    pub fn insert(
        &mut self,
        now_ms: u64,
        xfer: u32,
        index: u16,
        count: u16,
        data: &[u8],
    ) -> Result<Option<Vec<u8>>, ReassemblyError> {
        self.expire(now_ms);
        if count > MAX_FRAGMENTS || index >= count {
            return Err(ReassemblyError::TooManyFragments);
        }
        if count == 1 {
            return Ok(Some(data.to_vec()));
        }
        if !self.partials.contains_key(&xfer) {
            if self.partials.len() >= self.max_partials {
                // Drop the oldest transfer to make room: a peer that starts many
                // transfers only hurts itself.
                let oldest = self.partials.iter().min_by_key(|(_, p)| p.started_ms).map(|(k, _)| *k);
                if let Some(k) = oldest {
                    self.drop_partial(k);
                }
            }
            self.partials
                .insert(xfer, Partial { parts: vec![None; count as usize], have: 0, bytes: 0, started_ms: now_ms });
        }
        let Some(p) = self.partials.get_mut(&xfer) else {
            return Ok(None);
        };
        if p.parts.len() != count as usize {
            self.drop_partial(xfer);
            return Err(ReassemblyError::Inconsistent);
        }
        if p.parts[index as usize].is_some() {
            return Ok(None);
        }
        if p.bytes + data.len() > MAX_ENVELOPE_LEN {
            self.drop_partial(xfer);
            return Err(ReassemblyError::TooLarge);
        }
        if self.bytes + data.len() > self.max_bytes {
            self.drop_partial(xfer);
            return Err(ReassemblyError::OverBudget);
        }
        p.parts[index as usize] = Some(data.to_vec());
        p.have += 1;
        p.bytes += data.len();
        self.bytes += data.len();
        if p.have < p.parts.len() {
            return Ok(None);
        }
        let Some(p) = self.partials.remove(&xfer) else {
            return Ok(None);
        };
        self.bytes -= p.bytes;
        let mut out = Vec::with_capacity(p.bytes);
        for part in p.parts.into_iter().flatten() {
            out.extend_from_slice(&part);
        }
        Ok(Some(out))
    }

    fn drop_partial(&mut self, xfer: u32) {
        if let Some(p) = self.partials.remove(&xfer) {
            self.bytes -= p.bytes;
        }
    }

    /// Drops transfers older than the timeout.
    pub fn expire(&mut self, now_ms: u64) {
        let old: Vec<u32> = self
            .partials
            .iter()
            .filter(|(_, p)| now_ms.saturating_sub(p.started_ms) > self.timeout_ms)
            .map(|(k, _)| *k)
            .collect();
        for k in old {
            self.drop_partial(k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::link::frame::Frame;

    fn feed(r: &mut Reassembler, now: u64, frames: &[Vec<u8>]) -> Option<Vec<u8>> {
        let mut out = None;
        for f in frames {
            if let Frame::Fragment { xfer, index, count, data } = Frame::parse(f).unwrap()
                && let Some(done) = r.insert(now, xfer, index, count, data).unwrap()
            {
                out = Some(done);
            }
        }
        out
    }

    #[test]
    fn split_and_reassemble_in_any_order() {
        let data: Vec<u8> = (0..MAX_ENVELOPE_LEN).map(|i| i as u8).collect();
        let mut frames = split(9, &data);
        assert!(frames.len() <= MAX_FRAGMENTS as usize);
        frames.reverse();
        let mut r = Reassembler::new(4, 1 << 20, 10_000);
        assert_eq!(feed(&mut r, 0, &frames), Some(data));
        assert_eq!(r.bytes(), 0);
    }

    #[test]
    fn budget_partials_and_timeout_are_enforced() {
        let data = vec![1u8; 5000];
        let frames = split(1, &data);
        // Budget smaller than the envelope: refused, nothing retained.
        let mut r = Reassembler::new(4, 3000, 10_000);
        let mut errs = 0;
        for f in &frames {
            if let Frame::Fragment { xfer, index, count, data } = Frame::parse(f).unwrap()
                && r.insert(0, xfer, index, count, data).is_err()
            {
                errs += 1;
            }
        }
        assert!(errs > 0);
        assert!(r.bytes() <= 3000);
        // Only `max_partials` incomplete transfers are kept.
        let mut r = Reassembler::new(2, 1 << 20, 10_000);
        for x in 0..5 {
            let f = split(x, &data);
            feed(&mut r, 0, &f[..1]);
        }
        assert_eq!(r.partials.len(), 2);
        // Old partials time out.
        r.expire(20_000);
        assert_eq!(r.bytes(), 0);
    }

    #[test]
    fn inconsistent_counts_are_refused() {
        let mut r = Reassembler::new(4, 1 << 20, 10_000);
        assert_eq!(r.insert(0, 1, 0, 3, b"a"), Ok(None));
        assert_eq!(r.insert(0, 1, 1, 4, b"b"), Err(ReassemblyError::Inconsistent));
        assert_eq!(r.insert(0, 2, 0, MAX_FRAGMENTS + 1, b"b"), Err(ReassemblyError::TooManyFragments));
    }
}
