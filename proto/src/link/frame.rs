//! Frames: what a transport datagram carries once decrypted.
//!
//! ```text
//! 0 keepalive   (no body)
//! 1 fragment    u32 transfer id, u16 index, u16 count, data
//! 2 offer       u8 n, n x [16] envelope ids   "I hold these"
//! 3 want        u8 n, n x [16]                "send me these"
//! 4 have        u8 n, n x [16]                "I already have (or got) these"
//! 5 refuse      u8 reason                     "I will not link with you"
//! 6 want better u8 hops, u8 n, n x [16]       "send me these if yours
//!                                              arrive with more hops left"
//! ```
//! A `refuse` frame is sealed with the keys of the handshake just finished,
//! so it proves it comes from the key the handshake proved; it is the only
//! frame sent on a session that is not kept.
//! One frame per datagram. Parsing borrows from the plaintext.

use crate::envelope::EnvelopeId;
use crate::wire::{Put, Reader};

use super::packet::MAX_FRAME;

/// Most ids one offer/want/have frame carries.
pub const MAX_IDS: usize = (MAX_FRAME - 2) / 16;
/// Most ids one want-better frame carries (it has a hops byte more).
pub const MAX_BETTER_IDS: usize = (MAX_FRAME - 3) / 16;
/// Largest fragment data per datagram.
pub const MAX_FRAGMENT_DATA: usize = MAX_FRAME - 9;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdList {
    Offer = 2,
    Want = 3,
    Have = 4,
}

/// Why a peer refused to link with us, as a `refuse` frame says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefuseReason {
    /// Our key is not the key it has pinned for our address.
    PinMismatch = 1,
    /// We are not a configured peer there (and it takes no strangers).
    NotConfigured = 2,
    /// It is at its link limit.
    LinkLimit = 3,
    /// We belong to another community's domain (a mesh link).
    OtherDomain = 4,
    /// Any other cause.
    Other = 5,
}

impl RefuseReason {
    fn from_u8(b: u8) -> RefuseReason {
        match b {
            1 => Self::PinMismatch,
            2 => Self::NotConfigured,
            3 => Self::LinkLimit,
            4 => Self::OtherDomain,
            _ => Self::Other,
        }
    }

    /// The refusal as the refused side logs it.
    pub fn describe(self) -> &'static str {
        match self {
            Self::PinMismatch => "refused by peer: our key is not the one it has pinned (check its `option key`)",
            Self::NotConfigured => "refused by peer: we are not a configured peer there",
            Self::LinkLimit => "refused by peer: it is at its link limit",
            Self::OtherDomain => "refused by peer: we belong to another domain",
            Self::Other => "refused by peer",
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    Keepalive,
    Fragment {
        xfer: u32,
        index: u16,
        count: u16,
        data: &'a [u8],
    },
    Ids {
        list: IdList,
        ids: Vec<EnvelopeId>,
    },
    Refuse(RefuseReason),
    /// A want of copies that arrive with more than `hops` hops left: the
    /// asker's own copy has `hops`, too few to reach the recipient.
    WantBetter {
        hops: u8,
        ids: Vec<EnvelopeId>,
    },
}

/// Why a decrypted frame was refused (only an authenticated peer can send one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameError(pub &'static str);

impl<'a> Frame<'a> {
    pub fn parse(b: &'a [u8]) -> Result<Frame<'a>, FrameError> {
        let mut r = Reader::new(b);
        let t = r.u8("type").map_err(|_| FrameError("empty frame"))?;
        match t {
            0 => Ok(Frame::Keepalive),
            1 => {
                let short = |_| FrameError("fragment header truncated");
                let xfer = r.u32("xfer").map_err(short)?;
                let index = r.u16("index").map_err(short)?;
                let count = r.u16("count").map_err(short)?;
                if count == 0 || index >= count {
                    return Err(FrameError("fragment index out of range"));
                }
                Ok(Frame::Fragment { xfer, index, count, data: r.rest() })
            }
            2..=4 => {
                let ids = id_list(&mut r, MAX_IDS)?;
                let list = match t {
                    2 => IdList::Offer,
                    3 => IdList::Want,
                    _ => IdList::Have,
                };
                Ok(Frame::Ids { list, ids })
            }
            6 => {
                let hops = r.u8("hops").map_err(|_| FrameError("want-better frame truncated"))?;
                Ok(Frame::WantBetter { hops, ids: id_list(&mut r, MAX_BETTER_IDS)? })
            }
            5 => {
                let reason = r.u8("reason").map_err(|_| FrameError("refuse without a reason"))?;
                if r.remaining() != 0 {
                    return Err(FrameError("refuse frame too long"));
                }
                Ok(Frame::Refuse(RefuseReason::from_u8(reason)))
            }
            _ => Err(FrameError("unknown frame type")),
        }
    }
}

/// The `n u8` then n ids that end an id-carrying frame, at most `most`.
fn id_list(r: &mut Reader<'_>, most: usize) -> Result<Vec<EnvelopeId>, FrameError> {
    let n = r.u8("n").map_err(|_| FrameError("id list truncated"))? as usize;
    if n > most || r.remaining() != n * 16 {
        return Err(FrameError("id list length mismatch"));
    }
    let mut ids = Vec::with_capacity(n);
    for _ in 0..n {
        ids.push(EnvelopeId(r.array::<16>("id").map_err(|_| FrameError("id truncated"))?));
    }
    Ok(ids)
}

pub fn keepalive() -> Vec<u8> {
    vec![0]
}

pub fn refuse(reason: RefuseReason) -> Vec<u8> {
    vec![5, reason as u8]
}

pub fn fragment(xfer: u32, index: u16, count: u16, data: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(9 + data.len());
    v.put_u8(1);
    v.put_u32(xfer);
    v.put_u16(index);
    v.put_u16(count);
    v.extend_from_slice(data);
    v
}

/// Encodes `ids` into as many frames as needed.
pub fn id_frames(list: IdList, ids: &[EnvelopeId]) -> Vec<Vec<u8>> {
    ids.chunks(MAX_IDS)
        .map(|chunk| {
            let mut v = Vec::with_capacity(2 + chunk.len() * 16);
            v.put_u8(list as u8);
            v.put_u8(chunk.len() as u8);
            for id in chunk {
                v.extend_from_slice(&id.0);
            }
            v
        })
        .collect()
}

/// Encodes a want of the copies of `ids` better than ones with `hops`
/// hops left into as many frames as needed.
pub fn want_better_frames(hops: u8, ids: &[EnvelopeId]) -> Vec<Vec<u8>> {
    ids.chunks(MAX_BETTER_IDS)
        .map(|chunk| {
            let mut v = Vec::with_capacity(3 + chunk.len() * 16);
            v.put_u8(6);
            v.put_u8(hops);
            v.put_u8(chunk.len() as u8);
            for id in chunk {
                v.extend_from_slice(&id.0);
            }
            v
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        assert_eq!(Frame::parse(&keepalive()), Ok(Frame::Keepalive));
        let f = fragment(5, 1, 3, b"abc");
        assert_eq!(Frame::parse(&f), Ok(Frame::Fragment { xfer: 5, index: 1, count: 3, data: b"abc" }));
        let ids: Vec<EnvelopeId> = (0..200u8).map(|i| EnvelopeId([i; 16])).collect();
        let frames = id_frames(IdList::Want, &ids);
        assert_eq!(frames.len(), ids.len().div_ceil(MAX_IDS));
        let mut back = Vec::new();
        for f in &frames {
            assert!(f.len() <= MAX_FRAME);
            match Frame::parse(f).unwrap() {
                Frame::Ids { list: IdList::Want, ids } => back.extend(ids),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(back, ids);
        assert_eq!(Frame::parse(&refuse(RefuseReason::PinMismatch)), Ok(Frame::Refuse(RefuseReason::PinMismatch)));
        assert_eq!(Frame::parse(&[5, 77]), Ok(Frame::Refuse(RefuseReason::Other)), "unknown reasons still refuse");
        assert!(Frame::parse(&[5]).is_err() && Frame::parse(&[5, 1, 0]).is_err());
        let frames = want_better_frames(3, &ids);
        assert_eq!(frames.len(), ids.len().div_ceil(MAX_BETTER_IDS));
        let mut back = Vec::new();
        for f in &frames {
            assert!(f.len() <= MAX_FRAME);
            match Frame::parse(f).unwrap() {
                Frame::WantBetter { hops: 3, ids } => back.extend(ids),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(back, ids);
    }

    #[test]
    fn rejects_malformed() {
        assert!(Frame::parse(&[]).is_err());
        assert!(Frame::parse(&[9]).is_err());
        assert!(Frame::parse(&fragment(1, 3, 3, b"x")).is_err());
        assert!(Frame::parse(&fragment(1, 0, 0, b"x")).is_err());
        assert!(Frame::parse(&[2, 2, 0, 0]).is_err());
        assert!(Frame::parse(&[1, 0, 0]).is_err());
        // A want-better frame: its hops, then a count that matches.
        assert!(Frame::parse(&[6]).is_err());
        assert!(Frame::parse(&[6, 2]).is_err());
        assert!(Frame::parse(&[6, 2, 1, 0]).is_err());
        let mut full = vec![6, 2, (MAX_BETTER_IDS + 1) as u8];
        full.resize(3 + (MAX_BETTER_IDS + 1) * 16, 0);
        assert!(Frame::parse(&full).is_err(), "more ids than a frame may carry");
        assert_eq!(Frame::parse(&[6, 2, 0]), Ok(Frame::WantBetter { hops: 2, ids: vec![] }));
    }
}
