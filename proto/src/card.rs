//! A node's card: the public keys and names it announces.
//!
//! The card is the payload of an [`Kind::Announce`](crate::envelope::Kind)
//! envelope, so it is signed by the node's Ed25519 key and self-certifying:
//! the envelope's origin key is the card's identity. Layout (big-endian):
//!
//! ```text
//! u8     card version (1)
//! [32]   X25519 public key for end-to-end encryption
//! u8     1 if an ML-KEM-768 key follows, else 0
//! [1184] ML-KEM-768 encapsulation key (only if the flag is 1)
//! u8 L + [L]  name, UTF-8, at most 32 bytes
//! u8 L + [L]  domain, a-z 0-9 - . , at most 32 bytes
//! u64    sequence number (newer cards replace older ones)
//! u8 N + N x [16]  node ids of current link neighbours, N <= 32
//! u8 G + G x (u8 L + [L])  remote domains this node is a gateway for, G <= 8
//! ```
//! It does not decide trust: callers check the envelope signature first.

use core::fmt;
use core::ops::{Deref, Range};
use std::sync::Arc;

use crate::identity::{KEM_EK_LEN, NodeId};
use crate::wire::{Put, Reader, Truncated};

pub const CARD_VERSION: u8 = 1;
pub const MAX_NAME_LEN: usize = 32;
/// Most neighbours listed in a card.
pub const MAX_NEIGHBOURS: usize = 32;
/// Most gateway domains listed in a card.
pub const MAX_GATEWAY_DOMAINS: usize = 16;

/// An ML-KEM-768 encapsulation key, kept where it was read. A card the
/// card book learns from an announce shares the announce's bytes, which
/// the book keeps anyway, instead of holding a second copy of the key
/// (1,184 bytes a card, 1.2 MB in a domain of 1000 nodes).
///
/// It does not check the key: ML-KEM encapsulation does.
#[derive(Clone)]
pub struct KemKey {
    buf: Arc<[u8]>,
    at: usize,
}

impl KemKey {
    /// A key of its own.
    pub fn new(key: &[u8; KEM_EK_LEN]) -> KemKey {
        KemKey { buf: Arc::from(&key[..]), at: 0 }
    }

    /// The key at `at` in `buf`, if `buf` holds a whole key there.
    fn within(buf: &Arc<[u8]>, at: usize) -> Option<KemKey> {
        let end = at.checked_add(KEM_EK_LEN)?;
        (end <= buf.len()).then(|| KemKey { buf: Arc::clone(buf), at })
    }
}

impl Deref for KemKey {
    type Target = [u8; KEM_EK_LEN];
    fn deref(&self) -> &[u8; KEM_EK_LEN] {
        // Invariant: `new` and `within` only make a key whose buffer holds
        // KEM_EK_LEN bytes from `at`, and an Arc<[u8]> is never changed.
        self.buf[self.at..].first_chunk().expect("a KemKey holds a whole key")
    }
}

impl PartialEq for KemKey {
    fn eq(&self, other: &KemKey) -> bool {
        **self == **other
    }
}
impl Eq for KemKey {}

impl fmt::Debug for KemKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KemKey({:02x?}..)", &self[..4])
    }
}

/// The public half of a node, as announced.
#[derive(Clone, PartialEq, Eq)]
pub struct Card {
    /// The Ed25519 key (the announce envelope's origin).
    pub ed_pk: [u8; 32],
    pub x25519: [u8; 32],
    pub kem_ek: Option<KemKey>,
    pub name: String,
    pub domain: String,
    pub seq: u64,
    /// Nodes this node had links to when it signed the card.
    pub neighbours: Vec<NodeId>,
    /// Remote domains this node relays to (it is a federation gateway).
    pub gateway_for: Vec<String>,
}

impl fmt::Debug for Card {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Card")
            .field("node", &self.node_id())
            .field("name", &self.name)
            .field("domain", &self.domain)
            .field("seq", &self.seq)
            .field("kem", &self.kem_ek.is_some())
            .finish()
    }
}

/// Why a card payload was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CardError {
    Truncated { field: &'static str },
    BadVersion { got: u8 },
    BadField { field: &'static str },
    TrailingBytes { extra: usize },
}

impl From<Truncated> for CardError {
    fn from(t: Truncated) -> Self {
        CardError::Truncated { field: t.0 }
    }
}

impl fmt::Display for CardError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CardError::Truncated { field } => write!(f, "card truncated in '{field}'"),
            CardError::BadVersion { got } => write!(f, "unsupported card version {got}"),
            CardError::BadField { field } => write!(f, "card field '{field}' is invalid"),
            CardError::TrailingBytes { extra } => write!(f, "{extra} bytes after the card"),
        }
    }
}

impl Card {
    pub fn node_id(&self) -> NodeId {
        NodeId::from_public_key(&self.ed_pk)
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(64 + KEM_EK_LEN + 80);
        b.put_u8(CARD_VERSION);
        b.extend_from_slice(&self.x25519);
        match &self.kem_ek {
            Some(ek) => {
                b.put_u8(1);
                b.extend_from_slice(&ek[..]);
            }
            None => b.put_u8(0),
        }
        let name = truncate_utf8(&self.name, MAX_NAME_LEN);
        b.put_u8(name.len() as u8);
        b.extend_from_slice(name.as_bytes());
        b.put_u8(self.domain.len() as u8);
        b.extend_from_slice(self.domain.as_bytes());
        b.put_u64(self.seq);
        put_node_ids(&mut b, &self.neighbours, MAX_NEIGHBOURS);
        let g = self.gateway_for.len().min(MAX_GATEWAY_DOMAINS);
        b.put_u8(g as u8);
        for d in &self.gateway_for[..g] {
            b.put_u8(d.len() as u8);
            b.extend_from_slice(d.as_bytes());
        }
        b
    }

    /// Parses a card payload; `ed_pk` is the verified origin of its envelope.
    pub fn decode(ed_pk: [u8; 32], payload: &[u8]) -> Result<Card, CardError> {
        Card::decode_with(ed_pk, payload, |at| payload.get(at..).and_then(|k| k.first_chunk()).map(KemKey::new))
    }

    /// Parses the card payload at `payload` in an announce's bytes `buf`;
    /// its ML-KEM key stays in `buf` (shared, not copied).
    pub fn decode_shared(ed_pk: [u8; 32], buf: &Arc<[u8]>, payload: Range<usize>) -> Result<Card, CardError> {
        let start = payload.start;
        let bytes = buf.get(payload).ok_or(CardError::Truncated { field: "card" })?;
        Card::decode_with(ed_pk, bytes, |at| KemKey::within(buf, start + at))
    }

    /// The parser; `key_at` makes the ML-KEM key found at an offset of the
    /// payload (the parser has checked a whole key is there).
    fn decode_with(
        ed_pk: [u8; 32],
        payload: &[u8],
        key_at: impl FnOnce(usize) -> Option<KemKey>,
    ) -> Result<Card, CardError> {
        let mut r = Reader::new(payload);
        let v = r.u8("version")?;
        if v != CARD_VERSION {
            return Err(CardError::BadVersion { got: v });
        }
        let x25519 = r.array::<32>("x25519")?;
        let kem_ek = match r.u8("kem flag")? {
            0 => None,
            1 => {
                let at = r.pos();
                r.bytes(KEM_EK_LEN, "kem key")?;
                Some(key_at(at).ok_or(CardError::Truncated { field: "kem key" })?)
            }
            _ => return Err(CardError::BadField { field: "kem flag" }),
        };
        let nlen = r.u8("name length")? as usize;
        if nlen > MAX_NAME_LEN {
            return Err(CardError::BadField { field: "name" });
        }
        let name =
            core::str::from_utf8(r.bytes(nlen, "name")?).map_err(|_| CardError::BadField { field: "name" })?.to_owned();
        if name.chars().any(char::is_control) {
            return Err(CardError::BadField { field: "name" });
        }
        let dlen = r.u8("domain length")? as usize;
        let domain = r.bytes(dlen, "domain")?;
        if dlen > crate::envelope::MAX_DOMAIN_LEN
            || !domain.iter().all(|c| matches!(c, b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.'))
        {
            return Err(CardError::BadField { field: "domain" });
        }
        let seq = r.u64("seq")?;
        let neighbours = read_node_ids(&mut r, MAX_NEIGHBOURS)?;
        let g = r.u8("gateway count")? as usize;
        if g > MAX_GATEWAY_DOMAINS {
            return Err(CardError::BadField { field: "gateway count" });
        }
        let mut gateway_for = Vec::with_capacity(g);
        for _ in 0..g {
            let l = r.u8("gateway domain length")? as usize;
            let d = r.bytes(l, "gateway domain")?;
            if l == 0
                || l > crate::envelope::MAX_DOMAIN_LEN
                || !d.iter().all(|c| matches!(c, b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.'))
            {
                return Err(CardError::BadField { field: "gateway domain" });
            }
            // Invariant: only ASCII bytes passed the check above.
            gateway_for.push(String::from_utf8_lossy(d).into_owned());
        }
        if r.remaining() != 0 {
            return Err(CardError::TrailingBytes { extra: r.remaining() });
        }
        Ok(Card {
            ed_pk,
            x25519,
            kem_ek,
            name,
            // Invariant: only ASCII bytes passed the check above.
            domain: String::from_utf8_lossy(domain).into_owned(),
            seq,
            neighbours,
            gateway_for,
        })
    }
}

/// Writes a neighbour list: a count byte, then at most `max` node ids.
pub(crate) fn put_node_ids(b: &mut Vec<u8>, ids: &[NodeId], max: usize) {
    let n = ids.len().min(max).min(255);
    b.put_u8(n as u8);
    for id in &ids[..n] {
        b.extend_from_slice(&id.0);
    }
}

/// Reads a neighbour list written by [`put_node_ids`], refusing more than `max`.
pub(crate) fn read_node_ids(r: &mut Reader<'_>, max: usize) -> Result<Vec<NodeId>, CardError> {
    let n = r.u8("neighbour count")? as usize;
    if n > max {
        return Err(CardError::BadField { field: "neighbour count" });
    }
    let mut ids = Vec::with_capacity(n);
    for _ in 0..n {
        ids.push(NodeId(r.array::<16>("neighbour")?));
    }
    Ok(ids)
}

fn truncate_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn card() -> Card {
        Card {
            ed_pk: [1; 32],
            x25519: [2; 32],
            kem_ek: Some(KemKey::new(&[3; KEM_EK_LEN])),
            name: "router-äöü".into(),
            domain: "ffhh".into(),
            seq: 42,
            neighbours: vec![NodeId([5; 16]), NodeId([6; 16])],
            gateway_for: vec!["ffb".into()],
        }
    }

    #[test]
    fn round_trip() {
        let c = card();
        assert_eq!(Card::decode([1; 32], &c.encode()), Ok(c));
        let mut no_kem = card();
        no_kem.kem_ek = None;
        assert_eq!(Card::decode([1; 32], &no_kem.encode()), Ok(no_kem));
    }

    #[test]
    fn long_names_are_cut_on_a_char_boundary() {
        let mut c = card();
        c.name = "ä".repeat(40);
        let back = Card::decode([1; 32], &c.encode()).unwrap();
        assert_eq!(back.name, "ä".repeat(16));
    }

    #[test]
    fn rejects_truncation_and_bad_fields() {
        let b = card().encode();
        for cut in 0..b.len() {
            assert!(Card::decode([1; 32], &b[..cut]).is_err());
        }
        let mut bad = b.clone();
        bad[0] = 9;
        assert_eq!(Card::decode([1; 32], &bad), Err(CardError::BadVersion { got: 9 }));
        let mut bad = b.clone();
        bad[33] = 2;
        assert_eq!(Card::decode([1; 32], &bad), Err(CardError::BadField { field: "kem flag" }));
        let mut bad = b;
        bad.push(0);
        assert_eq!(Card::decode([1; 32], &bad), Err(CardError::TrailingBytes { extra: 1 }));
    }

    #[test]
    fn a_shared_card_keeps_its_key_in_the_announce_bytes() {
        let c = card();
        let payload = c.encode();
        // The payload inside a larger buffer, as in an announce envelope.
        let mut framed = vec![0xee; 40];
        framed.extend_from_slice(&payload);
        framed.extend_from_slice(&[0xdd; 64]);
        let framed: Arc<[u8]> = framed.into();
        let range = 40..40 + payload.len();
        let shared = Card::decode_shared([1; 32], &framed, range.clone()).unwrap();
        assert_eq!(shared, c, "the same card as a copy would give");
        let key = shared.kem_ek.as_ref().unwrap();
        // The key points into the buffer: no second copy of 1,184 bytes.
        let inside = framed.as_ptr_range();
        assert!(inside.contains(&key.as_ptr()), "the key is read where it lies");
        assert_eq!(Arc::strong_count(&framed), 2, "the card holds the buffer, not a copy");
        // Cut anywhere, or a range past the buffer: an error, never a panic.
        for cut in range.start..range.end {
            assert!(Card::decode_shared([1; 32], &framed, range.start..cut).is_err());
        }
        assert!(Card::decode_shared([1; 32], &framed, 40..framed.len() + 1).is_err());
        #[allow(clippy::reversed_empty_ranges)]
        let backwards = 50..40;
        assert!(Card::decode_shared([1; 32], &framed, backwards).is_err());
    }
}
