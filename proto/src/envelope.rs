//! Signed envelopes: the unit that is stored and carried hop by hop.
//!
//! Wire layout (all integers big-endian; docs/protocol.md is the reference):
//!
//! ```text
//! 0   u8    version (1)
//! 1   u8    hops_left          -- not signed; relays decrement it
//! 2   u8    kind               -- signed region starts here
//! 3   u8    max_hops
//! 4   [32]  origin Ed25519 public key
//! 36  u64   created, unix seconds
//! 44  u32   ttl, seconds
//! 48  [16]  destination id (node id, channel id, or zero for broadcast)
//! 64  u8    domain length L (0..=32)
//! 65  [L]   destination domain, ASCII a-z 0-9 '-' '.'
//! ..  u32   payload length P
//! ..  [P]   payload             -- signed region ends here
//! ..  [64]  Ed25519 signature over SIG_CONTEXT || version || signed region
//! ```
//!
//! [`Envelope::decode`] is a pure function from bytes (and the caller's idea
//! of the current time) to a verified envelope or a typed error. It does not
//! decrypt payloads; see [`crate::e2e`].

use core::fmt;

use crate::crypto::{kdf, to_hex};
use crate::identity::{Identity, NodeId, verify};
use crate::wire::{Put, Reader, Truncated};

/// The only envelope version this code speaks.
pub const VERSION: u8 = 1;
/// Largest envelope on the wire, header and signature included.
pub const MAX_ENVELOPE_LEN: usize = 65536;
/// Largest hop limit an origin may sign. A layer-3 mesh of 1000 routers
/// as the simulator lays them out (a random geometric graph of average
/// degree 8) is about 44 hops across; 32 left one pair in a hundred with
/// no path a signed envelope could take (docs/scale.md).
pub const MAX_HOPS: u8 = 64;
/// Hop limit used when the sender does not choose one.
pub const DEFAULT_HOPS: u8 = 8;
/// Longest time to live, 30 days.
pub const MAX_TTL: u32 = 30 * 24 * 3600;
/// How far in the future `created` may lie before we call the clock wrong.
pub const MAX_CLOCK_SKEW: u64 = 600;
/// Longest domain name.
pub const MAX_DOMAIN_LEN: usize = 32;
/// Bytes before the payload, with an empty domain.
pub const HEADER_LEN: usize = 65 + 4;
/// Signature length.
pub const SIG_LEN: usize = 64;
/// Signatures are computed over this prefix, then the version and the signed
/// region, so no other meshpost structure can be replayed as an envelope.
pub const SIG_CONTEXT: &[u8] = b"meshpost envelope v1";

/// What an envelope is for; decides how it is routed and what its payload is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// To one node, payload end-to-end encrypted ([`crate::e2e`]).
    Direct = 1,
    /// To a channel (encrypted with the channel key).
    Channel = 2,
    /// A node's signed announce carrying its public keys ([`crate::card`]).
    Announce = 3,
    /// End-to-end acknowledgement: the recipient lists envelope ids it got,
    /// so relays can free their copies ([`crate::node`]).
    Ack = 4,
}

impl Kind {
    fn from_u8(v: u8) -> Option<Kind> {
        match v {
            1 => Some(Kind::Direct),
            2 => Some(Kind::Channel),
            3 => Some(Kind::Announce),
            4 => Some(Kind::Ack),
            _ => None,
        }
    }
}

/// The dedup id of an envelope: a labelled BLAKE2s hash of its version and
/// signed region, truncated to 16 bytes. Hops-left does not change it.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct EnvelopeId(pub [u8; 16]);

impl fmt::Display for EnvelopeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&to_hex(&self.0))
    }
}

impl fmt::Debug for EnvelopeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EnvelopeId({self})")
    }
}

impl EnvelopeId {
    pub fn parse(s: &str) -> Option<EnvelopeId> {
        crate::crypto::from_hex::<16>(s.trim()).map(EnvelopeId)
    }
}

/// Why bytes were not accepted as an envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvelopeError {
    BadVersion {
        got: u8,
    },
    Truncated {
        field: &'static str,
    },
    Oversize {
        len: usize,
        max: usize,
    },
    UnknownKind {
        got: u8,
    },
    BadDomain,
    BadTtl {
        ttl: u32,
    },
    TrailingBytes {
        extra: usize,
    },
    BadSignature,
    Expired {
        expired_at: u64,
        now: u64,
    },
    FromTheFuture {
        created: u64,
        now: u64,
    },
    TooManyHops {
        max_hops: u8,
        hops_left: u8,
    },
    /// Bytes read back for a stored envelope are not that envelope.
    NotStored {
        id: EnvelopeId,
    },
}

impl From<Truncated> for EnvelopeError {
    fn from(t: Truncated) -> Self {
        EnvelopeError::Truncated { field: t.0 }
    }
}

impl fmt::Display for EnvelopeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use EnvelopeError::*;
        match self {
            BadVersion { got } => write!(f, "unsupported envelope version {got} (want {VERSION})"),
            Truncated { field } => write!(f, "envelope truncated in field '{field}'"),
            Oversize { len, max } => write!(f, "envelope of {len} bytes exceeds {max}"),
            UnknownKind { got } => write!(f, "unknown envelope kind {got}"),
            BadDomain => f.write_str("destination domain is not 0-32 chars of a-z 0-9 - ."),
            BadTtl { ttl } => write!(f, "ttl {ttl}s is zero or above {MAX_TTL}s"),
            TrailingBytes { extra } => write!(f, "{extra} bytes after the signature"),
            BadSignature => f.write_str("origin signature does not verify"),
            Expired { expired_at, now } => write!(f, "expired at {expired_at}, now {now}"),
            FromTheFuture { created, now } => {
                write!(f, "created at {created}, more than {MAX_CLOCK_SKEW}s after now {now}")
            }
            TooManyHops { max_hops, hops_left } => {
                write!(f, "hops_left {hops_left} exceeds signed max_hops {max_hops} (or max {MAX_HOPS})")
            }
            NotStored { id } => write!(f, "bytes read back for stored envelope {id} are not that envelope"),
        }
    }
}

/// Where an envelope is going.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// Node id, channel id, or all zero.
    pub id: [u8; 16],
    /// Empty for "this domain".
    pub domain: String,
}

/// Fields an origin fills in before signing.
#[derive(Debug, Clone)]
pub struct Draft<'a> {
    pub kind: Kind,
    pub max_hops: u8,
    pub created: u64,
    pub ttl: u32,
    pub dest: Destination,
    pub payload: &'a [u8],
}

/// A decoded envelope whose signature has been verified.
#[derive(Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The wire bytes; the origin's key is read from them (`ORIGIN_AT`),
    /// not kept twice: a stored envelope is mostly its bytes, and a store
    /// of 10,000 held 320 KB of copied keys.
    bytes: Box<[u8]>,
    head: Head,
}

/// What every rule asks of an envelope, without its bytes: a stored
/// envelope whose bytes are only on disk (store.rs) keeps this. It holds
/// no key and no payload; hops-left is kept in step with byte 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    id: EnvelopeId,
    /// The origin's node id, hashed once: the forwarding rule asks for it
    /// for every stored envelope on every link at every sync round.
    origin_id: NodeId,
    dest: Destination,
    created: u64,
    ttl: u32,
    /// The envelope's length (at most `MAX_ENVELOPE_LEN`); the payload lies
    /// between the header with the domain and the signature.
    len: u32,
    /// 4 bytes of a hash of the signature, which the id does not cover:
    /// bytes read back from a disk must carry the signature checked when
    /// the envelope was taken ([`Envelope::from_stored`]).
    sig_check: u32,
    kind: Kind,
    max_hops: u8,
    hops_left: u8,
}

impl Head {
    pub fn id(&self) -> EnvelopeId {
        self.id
    }
    pub fn kind(&self) -> Kind {
        self.kind
    }
    pub fn origin_id(&self) -> NodeId {
        self.origin_id
    }
    pub fn created(&self) -> u64 {
        self.created
    }
    pub fn ttl(&self) -> u32 {
        self.ttl
    }
    /// Unix second at which the envelope must be gone everywhere.
    pub fn expires_at(&self) -> u64 {
        self.created.saturating_add(self.ttl as u64)
    }
    pub fn max_hops(&self) -> u8 {
        self.max_hops
    }
    pub fn hops_left(&self) -> u8 {
        self.hops_left
    }
    pub fn dest(&self) -> &Destination {
        &self.dest
    }
    /// The envelope's length in bytes.
    pub fn len(&self) -> usize {
        self.len as usize
    }
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// Where the origin's Ed25519 key lies in an envelope's bytes (after the
/// version, hops-left, kind and max-hops bytes).
const ORIGIN_AT: usize = 4;

impl fmt::Debug for Envelope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Envelope")
            .field("id", &self.head.id)
            .field("kind", &self.head.kind)
            .field("len", &self.bytes.len())
            .finish()
    }
}

fn valid_domain(d: &[u8]) -> bool {
    d.len() <= MAX_DOMAIN_LEN && d.iter().all(|c| matches!(c, b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.'))
}

/// The length of an envelope, which is at most `MAX_ENVELOPE_LEN` bytes
/// long (checked before any head is made), as a u32.
fn narrow(len: usize) -> u32 {
    const _: () = assert!(MAX_ENVELOPE_LEN <= u32::MAX as usize);
    len as u32
}

/// What the origin signs: the context, the version and the signed region.
fn signed_message(version: u8, region: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(SIG_CONTEXT.len() + 1 + region.len());
    m.extend_from_slice(SIG_CONTEXT);
    m.push(version);
    m.extend_from_slice(region);
    m
}

fn id_of(version: u8, region: &[u8]) -> EnvelopeId {
    let h = kdf(b"mp-envid", &[], &[&[version], region]);
    let mut id = [0u8; 16];
    id.copy_from_slice(&h[..16]);
    EnvelopeId(id)
}

/// The fields of well-formed envelope bytes, before the signature and the
/// time are checked.
struct Parsed<'a> {
    version: u8,
    kind: Kind,
    max_hops: u8,
    hops_left: u8,
    origin: [u8; 32],
    created: u64,
    ttl: u32,
    dest_id: [u8; 16],
    domain: &'a [u8],
    /// End of the signed region (the signature follows).
    region_end: usize,
    sig: [u8; 64],
}

/// 4 bytes of a hash of a signature (`Head::sig_check`).
fn check_of(sig: &[u8; SIG_LEN]) -> u32 {
    let h = kdf(b"mp-sigck", &[], &[sig]);
    u32::from_le_bytes([h[0], h[1], h[2], h[3]])
}

/// The head of parsed bytes whose id is `id`.
fn head_of(p: &Parsed<'_>, id: EnvelopeId) -> Head {
    Head {
        id,
        kind: p.kind,
        max_hops: p.max_hops,
        hops_left: p.hops_left,
        origin_id: NodeId::from_public_key(&p.origin),
        created: p.created,
        ttl: p.ttl,
        // Invariant: valid_domain() accepted only ASCII bytes in parse().
        dest: Destination { id: p.dest_id, domain: String::from_utf8_lossy(p.domain).into_owned() },
        len: narrow(p.region_end + SIG_LEN),
        sig_check: check_of(&p.sig),
    }
}

/// Checks, in order: size, version, structure, domain, ttl, hop counts.
fn parse(bytes: &[u8]) -> Result<Parsed<'_>, EnvelopeError> {
    if bytes.len() > MAX_ENVELOPE_LEN {
        return Err(EnvelopeError::Oversize { len: bytes.len(), max: MAX_ENVELOPE_LEN });
    }
    let mut r = Reader::new(bytes);
    let version = r.u8("version")?;
    if version != VERSION {
        return Err(EnvelopeError::BadVersion { got: version });
    }
    let hops_left = r.u8("hops_left")?;
    let kind_byte = r.u8("kind")?;
    let kind = Kind::from_u8(kind_byte).ok_or(EnvelopeError::UnknownKind { got: kind_byte })?;
    let max_hops = r.u8("max_hops")?;
    let origin = r.array::<32>("origin")?;
    let created = r.u64("created")?;
    let ttl = r.u32("ttl")?;
    let dest_id = r.array::<16>("destination")?;
    let dlen = r.u8("domain length")? as usize;
    let domain = r.bytes(dlen, "domain")?;
    if !valid_domain(domain) {
        return Err(EnvelopeError::BadDomain);
    }
    let plen = r.u32("payload length")? as usize;
    r.bytes(plen, "payload")?;
    let region_end = r.pos();
    let sig = r.array::<64>("signature")?;
    if r.remaining() != 0 {
        return Err(EnvelopeError::TrailingBytes { extra: r.remaining() });
    }
    if ttl == 0 || ttl > MAX_TTL {
        return Err(EnvelopeError::BadTtl { ttl });
    }
    if max_hops > MAX_HOPS || hops_left > max_hops {
        return Err(EnvelopeError::TooManyHops { max_hops, hops_left });
    }
    Ok(Parsed { version, kind, max_hops, hops_left, origin, created, ttl, dest_id, domain, region_end, sig })
}

impl Envelope {
    /// Builds and signs an envelope, with hops_left set to max_hops.
    pub fn seal(identity: &Identity, draft: &Draft<'_>) -> Result<Envelope, EnvelopeError> {
        if draft.max_hops > MAX_HOPS {
            return Err(EnvelopeError::TooManyHops { max_hops: draft.max_hops, hops_left: draft.max_hops });
        }
        if draft.ttl == 0 || draft.ttl > MAX_TTL {
            return Err(EnvelopeError::BadTtl { ttl: draft.ttl });
        }
        if !valid_domain(draft.dest.domain.as_bytes()) {
            return Err(EnvelopeError::BadDomain);
        }
        let len = HEADER_LEN + draft.dest.domain.len() + draft.payload.len() + SIG_LEN;
        if len > MAX_ENVELOPE_LEN {
            return Err(EnvelopeError::Oversize { len, max: MAX_ENVELOPE_LEN });
        }
        let mut b = Vec::with_capacity(len);
        b.put_u8(VERSION);
        b.put_u8(draft.max_hops);
        b.put_u8(draft.kind as u8);
        b.put_u8(draft.max_hops);
        b.extend_from_slice(&identity.public_key());
        b.put_u64(draft.created);
        b.put_u32(draft.ttl);
        b.extend_from_slice(&draft.dest.id);
        b.put_u8(draft.dest.domain.len() as u8);
        b.extend_from_slice(draft.dest.domain.as_bytes());
        b.put_u32(draft.payload.len() as u32);
        b.extend_from_slice(draft.payload);
        let sig = identity.sign(&signed_message(VERSION, &b[2..]));
        b.extend_from_slice(&sig);
        let sig_check = check_of(&sig);
        let payload_start = HEADER_LEN + draft.dest.domain.len();
        let head = Head {
            id: id_of(VERSION, &b[2..payload_start + draft.payload.len()]),
            kind: draft.kind,
            max_hops: draft.max_hops,
            hops_left: draft.max_hops,
            origin_id: identity.node_id(),
            created: draft.created,
            ttl: draft.ttl,
            dest: draft.dest.clone(),
            len: narrow(len),
            sig_check,
        };
        Ok(Envelope { bytes: b.into_boxed_slice(), head })
    }

    /// Parses, validates and verifies envelope bytes. `now` is unix seconds.
    ///
    /// Checks, in order: size, version, structure, domain, ttl, hop counts,
    /// signature, then time (expired, or created implausibly far ahead).
    pub fn decode(bytes: &[u8], now: u64) -> Result<Envelope, EnvelopeError> {
        Self::decode_at(bytes, Some(now))
    }

    /// Like [`decode`](Self::decode) but skips the time checks: for saved
    /// announces, whose keys stay useful after the announce expires.
    pub fn decode_ignoring_time(bytes: &[u8]) -> Result<Envelope, EnvelopeError> {
        Self::decode_at(bytes, None)
    }

    /// The id and kind of well-formed envelope bytes, without checking the
    /// signature or the time: enough to tell a copy of an envelope already
    /// taken (the id covers every signed byte) for the price of a hash,
    /// not a signature check. It never yields an [`Envelope`].
    pub fn peek_id(bytes: &[u8]) -> Result<(EnvelopeId, Kind), EnvelopeError> {
        let p = parse(bytes)?;
        Ok((id_of(p.version, &bytes[2..p.region_end]), p.kind))
    }

    /// [`decode`](Self::decode) for bytes whose id [`peek_id`](Self::peek_id)
    /// gave: the id is not hashed again. `peeked` must come from these
    /// bytes; a test checks that both decodes agree.
    pub(crate) fn decode_peeked(bytes: &[u8], now: u64, peeked: EnvelopeId) -> Result<Envelope, EnvelopeError> {
        Self::decode_inner(bytes, Some(now), Some(peeked))
    }

    fn decode_at(bytes: &[u8], now: Option<u64>) -> Result<Envelope, EnvelopeError> {
        Self::decode_inner(bytes, now, None)
    }

    fn decode_inner(bytes: &[u8], now: Option<u64>, peeked: Option<EnvelopeId>) -> Result<Envelope, EnvelopeError> {
        let p = parse(bytes)?;
        if !verify(&p.origin, &signed_message(p.version, &bytes[2..p.region_end]), &p.sig) {
            return Err(EnvelopeError::BadSignature);
        }
        if let Some(now) = now {
            let expires_at = p.created.saturating_add(p.ttl as u64);
            if expires_at <= now {
                return Err(EnvelopeError::Expired { expired_at: expires_at, now });
            }
            if p.created > now.saturating_add(MAX_CLOCK_SKEW) {
                return Err(EnvelopeError::FromTheFuture { created: p.created, now });
            }
        }
        let id = peeked.unwrap_or_else(|| id_of(p.version, &bytes[2..p.region_end]));
        Ok(Envelope { head: head_of(&p, id), bytes: bytes.into() })
    }

    /// The envelope `head` describes, from bytes this node stored itself
    /// and read back: their id must be `head`'s (the id covers every signed
    /// byte) and their signature must hash to `head`'s check (the signature
    /// is not signed), so these are the bytes whose signature was checked
    /// when the envelope was taken, for the price of two hashes. Hops-left
    /// is `head`'s, which may be newer than the bytes read.
    pub fn from_stored(head: &Head, bytes: &[u8]) -> Result<Envelope, EnvelopeError> {
        let p = parse(bytes)?;
        if id_of(p.version, &bytes[2..p.region_end]) != head.id
            || bytes.len() != head.len()
            || check_of(&p.sig) != head.sig_check
        {
            return Err(EnvelopeError::NotStored { id: head.id });
        }
        let mut bytes: Box<[u8]> = bytes.into();
        bytes[1] = head.hops_left;
        Ok(Envelope { bytes, head: head.clone() })
    }

    /// What the rules ask of this envelope, without its bytes.
    pub fn head(&self) -> &Head {
        &self.head
    }

    /// The head and the bytes apart (for a store that may let the bytes go).
    pub fn into_parts(self) -> (Head, Box<[u8]>) {
        (self.head, self.bytes)
    }

    /// The envelope again from [`into_parts`](Self::into_parts)'s halves.
    pub(crate) fn from_parts(head: Head, bytes: Box<[u8]>) -> Envelope {
        Envelope { bytes, head }
    }

    pub fn id(&self) -> EnvelopeId {
        self.head.id
    }
    pub fn kind(&self) -> Kind {
        self.head.kind
    }
    pub fn origin(&self) -> &[u8; 32] {
        // Invariant: `seal` and `decode` make envelopes of at least
        // HEADER_LEN bytes (parse() refuses shorter ones), the origin's 32
        // bytes among them, and the bytes never change length.
        self.bytes[ORIGIN_AT..].first_chunk().expect("an envelope holds its origin's key")
    }
    pub fn origin_id(&self) -> NodeId {
        self.head.origin_id
    }
    pub fn created(&self) -> u64 {
        self.head.created
    }
    pub fn ttl(&self) -> u32 {
        self.head.ttl
    }
    /// Unix second at which the envelope must be gone everywhere.
    pub fn expires_at(&self) -> u64 {
        self.head.expires_at()
    }
    pub fn max_hops(&self) -> u8 {
        self.head.max_hops
    }
    pub fn hops_left(&self) -> u8 {
        self.head.hops_left
    }
    /// Lowers hops-left by one for the next hop; false if none are left.
    pub fn take_hop(&mut self) -> bool {
        if self.head.hops_left == 0 {
            return false;
        }
        self.set_hops(self.head.hops_left - 1);
        true
    }
    /// Raises hops-left to `floor` if it is lower, never beyond the signed
    /// `max_hops` (hops-left is not signed: any relay may set it).
    pub fn lift_hops(&mut self, floor: u8) {
        self.set_hops(self.head.hops_left.max(floor.min(self.head.max_hops)));
    }
    /// Lowers hops-left to at most `max` (a mesh's own hop limit, for
    /// envelopes that arrive from another mesh).
    pub fn clamp_hops(&mut self, max: u8) {
        self.set_hops(self.head.hops_left.min(max));
    }
    /// Byte 1 and the head agree, always.
    fn set_hops(&mut self, hops: u8) {
        self.bytes[1] = hops;
        self.head.hops_left = hops;
    }
    pub fn dest(&self) -> &Destination {
        &self.head.dest
    }
    pub fn payload(&self) -> &[u8] {
        &self.bytes[self.payload_range()]
    }
    /// Where the payload lies in [`Envelope::bytes`].
    pub fn payload_range(&self) -> core::ops::Range<usize> {
        // Invariant: parse() and seal() put the payload after the header
        // and the (ASCII) domain and before the signature.
        HEADER_LEN + self.head.dest.domain.len()..self.head.len as usize - SIG_LEN
    }
    /// The bytes as sent on the wire, with the current hops-left.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
    pub fn len(&self) -> usize {
        self.bytes.len()
    }
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

#[cfg(test)]
mod tests;
