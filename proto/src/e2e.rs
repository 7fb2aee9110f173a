//! End-to-end encryption of direct payloads.
//!
//! A sender encrypts to the recipient's card: an ephemeral X25519 exchange
//! with the card's X25519 key, plus an ML-KEM-768 encapsulation when the card
//! carries a KEM key. Both secrets go through [`kdf`] into a one-time
//! ChaCha20-Poly1305 key (so the nonce is zero). The AEAD's associated data
//! is the origin's Ed25519 key and the destination id, so a relay cannot
//! re-sign someone else's ciphertext as its own. Plaintext is length-prefixed
//! and zero-padded to [`padded_len`] bytes to hide its size.
//!
//! Payload layout: `u8 suite (1 = X25519, 2 = X25519+ML-KEM-768)`,
//! `[32] ephemeral X25519 key`, `[1088] ML-KEM ciphertext` (suite 2 only),
//! then the AEAD ciphertext with its 16-byte tag.
//!
//! Sessions (session.rs) replace the one-shot exchange for later messages:
//! suite 3 (`u32 counter`, `[32] eph`, `[1088] kem ct`) carries a session's
//! starting exchange, repeated until the recipient has acknowledged a
//! message of it; suite 4 (`[8] session id`, `u32 counter`) is every later
//! message. Both use the counter's message key with a zero nonce, and the
//! associated data adds the whole header (suite byte to counter or KEM ct)
//! to the origin and destination.
//!
//! Plaintext layout: `u8 content type (1 = UTF-8 text, 2 = a file part,
//! see filepart.rs)`, `u32 length`,
//! the body, zero padding.

use core::fmt;

use ml_kem::kem::{Decapsulate, Encapsulate, EncapsulationKey};
use ml_kem::{EncodedSizeUser, MlKem768Params};
use rand_core::CryptoRngCore;
use zeroize::Zeroizing;

use crate::card::Card;
use crate::crypto::kdf;
use crate::filepart::{self, FilePartError};
use crate::identity::NodeId;
use crate::identity::{Identity, KEM_CT_LEN};
use crate::session::{self, Inbound, RecvSession, SID_LEN, SendSession, SessionError, SessionId};
use crate::wire::{Put, Reader};

/// Plaintexts of up to this many bytes (framing included) are padded to
/// it, so every short message has one size.
pub const PAD_MIN: usize = 128;
/// Above [`PAD_MIN`], a plaintext is padded to a multiple of an eighth of
/// the largest power of two not above its length (eight sizes per
/// doubling, at most 12.5% added), and of at most this many bytes.
pub const PAD_MAX_STEP: usize = 256;
/// The single padding bucket of versions before 2026-12-07, still opened.
const OLD_PAD_BUCKET: usize = 256;

/// The padded length of a plaintext of `len` bytes, framing included
/// ([`PAD_MIN`], [`PAD_MAX_STEP`]): 128 up to 128, then steps of 16 to 256,
/// of 32 to 512, of 64 to 1024, of 128 to 2048, and of 256 above.
pub fn padded_len(len: usize) -> usize {
    if len <= PAD_MIN {
        return PAD_MIN;
    }
    // len > 128, so floor(log2(len)) >= 7 and the shift is at least 4.
    let log2 = (usize::BITS - 1 - len.leading_zeros()) as usize;
    let step = (1usize << (log2 - 3)).min(PAD_MAX_STEP);
    len.div_ceil(step) * step
}
/// Bytes the encryption adds around the padded plaintext, at most.
pub const OVERHEAD: usize = 1 + 32 + KEM_CT_LEN + 16;
/// Content type of a UTF-8 text message.
pub const CONTENT_TEXT: u8 = 1;

const SUITE_X25519: u8 = 1;
const SUITE_HYBRID: u8 = 2;
/// A session message that starts (or repeats the start of) its session.
pub const SUITE_SESSION_INIT: u8 = 3;
/// A later message of a confirmed session.
pub const SUITE_SESSION: u8 = 4;
/// A message of a session not confirmed yet that leaves its start to the
/// messages around it ([`session::carries_start`]). A
/// receiver without the session defers it (no ack, no refusal) until the
/// start arrives, and after 30 s asks the sender for it (node/restate.rs).
pub const SUITE_SESSION_EARLY: u8 = 5;
/// No message: the start of a session its sender still has messages in,
/// sent again to a recipient that said it no longer holds the session
/// (evicted, expired, or its saved state lost). `eph || kem ct`, as a
/// suite 3 message carries them; the envelope's signature vouches for it.
/// The recipient takes the session up again from its first key, so every
/// message in it opens once more (exactly-once delivery is the delivered
/// ids' job, not the session's).
pub const SUITE_SESSION_RESTATE: u8 = 6;
/// Header bytes of a suite 4 or 5 message: suite, session id, counter.
pub const SESSION_HEADER: usize = 1 + SID_LEN + 4;

/// Why a direct payload could not be opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenError {
    Truncated,
    /// Bytes after a payload that has no room for any.
    TrailingBytes,
    UnknownSuite(u8),
    /// Wrong recipient, or tampered in transit.
    Decrypt,
    BadPadding,
    /// Suite 1 (no ML-KEM) although our card offers ML-KEM: a downgrade.
    Downgrade,
    /// The ephemeral X25519 key is of small order.
    WeakKey,
    /// A content type this node does not know.
    UnknownContentType(u8),
    /// A text message that is not UTF-8.
    NotText,
    /// A file part that does not fit its file (truncated, misplaced, bad name).
    BadFilePart(FilePartError),
    /// A session message the session state held cannot open.
    Session(SessionError),
    /// A suite 5 message whose session has not started here yet: its
    /// start is on its way in another message.
    SessionPending(SessionId),
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenError::Truncated => f.write_str("encrypted payload truncated"),
            OpenError::TrailingBytes => f.write_str("bytes after the end of the payload"),
            OpenError::UnknownSuite(s) => write!(f, "unknown encryption suite {s}"),
            OpenError::Decrypt => f.write_str("decryption failed (not for us, or tampered)"),
            OpenError::BadPadding => f.write_str("plaintext framing or padding is invalid"),
            OpenError::Downgrade => {
                f.write_str("suite 1 (no ML-KEM) although our card offers ML-KEM: refused as a downgrade")
            }
            OpenError::WeakKey => f.write_str("ephemeral key of small order"),
            OpenError::UnknownContentType(t) => write!(f, "unknown content type {t}"),
            OpenError::NotText => f.write_str("a text message that is not UTF-8"),
            OpenError::BadFilePart(e) => write!(f, "{e}"),
            OpenError::Session(e) => write!(f, "{e}"),
            OpenError::SessionPending(_) => f.write_str("the session's start has not arrived yet"),
        }
    }
}

/// A decrypted direct message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    pub content_type: u8,
    pub body: Vec<u8>,
}

/// ChaCha20-Poly1305 under a key used once (so the nonce is zero), the
/// ciphertext and tag appended to `out`. Every suite seals through here.
fn aead_seal_into(key: &[u8; 32], plain: &[u8], aad: &[u8], out: &mut Vec<u8>) {
    // Encryption only fails for inputs beyond 256 GiB; ours are < 64 KiB.
    let _ = meshpost_aead::seal_into(key, &[0u8; 12], aad, plain, out);
}

/// The reverse of [`aead_seal_into`]; the plaintext is zeroized when dropped.
fn aead_open(key: &[u8; 32], sealed: &[u8], aad: &[u8]) -> Result<Zeroizing<Vec<u8>>, OpenError> {
    meshpost_aead::open_to_vec(key, &[0u8; 12], aad, sealed).map(Zeroizing::new).map_err(|_| OpenError::Decrypt)
}

fn aad(origin: &[u8; 32], dest: &[u8; 16]) -> [u8; 48] {
    let mut a = [0u8; 48];
    a[..32].copy_from_slice(origin);
    a[32..].copy_from_slice(dest);
    a
}

fn message_key(dh: &[u8], kem_ss: &[u8], eph: &[u8], recip_x: &[u8], kem_ct: &[u8]) -> Zeroizing<[u8; 32]> {
    Zeroizing::new(kdf(b"mp-e2e\0\0", &[], &[dh, kem_ss, eph, recip_x, kem_ct]))
}

/// Length of the sealed payload for a body of `body_len` bytes.
pub fn sealed_len(body_len: usize, hybrid: bool) -> usize {
    let padded = padded_len(5 + body_len);
    1 + 32 + if hybrid { KEM_CT_LEN } else { 0 } + padded + 16
}

/// Encrypts `body` to `recipient`, bound to the origin key and destination.
pub fn seal(
    rng: &mut impl CryptoRngCore,
    recipient: &Card,
    origin: &[u8; 32],
    dest: &[u8; 16],
    content_type: u8,
    body: &[u8],
) -> Vec<u8> {
    let eph = x25519_dalek::StaticSecret::random_from_rng(&mut *rng);
    let eph_pub = x25519_dalek::PublicKey::from(&eph).to_bytes();
    let dh = eph.diffie_hellman(&x25519_dalek::PublicKey::from(recipient.x25519));
    let mut out = Vec::with_capacity(sealed_len(body.len(), recipient.kem_ek.is_some()));
    let (kem_ct, kem_ss): (Vec<u8>, Zeroizing<Vec<u8>>) = match &recipient.kem_ek {
        Some(ek_bytes) => {
            let ek = EncapsulationKey::<MlKem768Params>::from_bytes(&(**ek_bytes).into());
            // Encapsulation to a decoded key is infallible in ml-kem 0.2.
            match ek.encapsulate(&mut *rng) {
                Ok((ct, ss)) => (ct.to_vec(), Zeroizing::new(ss.to_vec())),
                Err(_) => (Vec::new(), Zeroizing::new(Vec::new())),
            }
        }
        None => (Vec::new(), Zeroizing::new(Vec::new())),
    };
    out.put_u8(if kem_ct.is_empty() { SUITE_X25519 } else { SUITE_HYBRID });
    out.extend_from_slice(&eph_pub);
    out.extend_from_slice(&kem_ct);
    let key = message_key(dh.as_bytes(), &kem_ss, &eph_pub, &recipient.x25519, &kem_ct);
    aead_seal_into(&key, &pad(content_type, body), &aad(origin, dest), &mut out);
    out
}

/// Decrypts a direct payload addressed to `me`.
pub fn open(me: &Identity, origin: &[u8; 32], dest: &[u8; 16], payload: &[u8]) -> Result<Opened, OpenError> {
    let mut r = Reader::new(payload);
    let suite = r.u8("suite").map_err(|_| OpenError::Truncated)?;
    let eph_pub = r.array::<32>("eph").map_err(|_| OpenError::Truncated)?;
    if crate::crypto::is_low_order(&eph_pub) {
        return Err(OpenError::WeakKey);
    }
    let (kem_ct, kem_ss): (&[u8], Zeroizing<Vec<u8>>) = match suite {
        // Our card always offers ML-KEM, so a sender following the spec
        // never uses suite 1 towards us.
        SUITE_X25519 => return Err(OpenError::Downgrade),
        SUITE_HYBRID => {
            let ct = r.array::<KEM_CT_LEN>("kem ct").map_err(|_| OpenError::Truncated)?;
            let ss = me.kem_dk().decapsulate(&ct.into()).map_err(|_| OpenError::Decrypt)?;
            (&payload[33..33 + KEM_CT_LEN], Zeroizing::new(ss.to_vec()))
        }
        other => return Err(OpenError::UnknownSuite(other)),
    };
    let sealed = r.rest();
    let dh = me.e2e_secret().diffie_hellman(&x25519_dalek::PublicKey::from(eph_pub));
    let key = message_key(dh.as_bytes(), &kem_ss, &eph_pub, &me.e2e_public(), kem_ct);
    unpad_direct(&aead_open(&key, sealed, &aad(origin, dest))?)
}

/// Starts a session to `recipient`: a fresh hybrid exchange with its card.
/// `None` if the card offers no ML-KEM key (such a recipient gets one-shot
/// messages, [`seal`]).
pub fn start_session(rng: &mut impl CryptoRngCore, recipient: &Card, now_s: u64) -> Option<SendSession> {
    let ek_bytes = recipient.kem_ek.as_ref()?;
    let eph = x25519_dalek::StaticSecret::random_from_rng(&mut *rng);
    let eph_pub = x25519_dalek::PublicKey::from(&eph).to_bytes();
    let dh = eph.diffie_hellman(&x25519_dalek::PublicKey::from(recipient.x25519));
    let ek = EncapsulationKey::<MlKem768Params>::from_bytes(&(**ek_bytes).into());
    // Encapsulation to a decoded key is infallible in ml-kem 0.2.
    let (ct, ss) = ek.encapsulate(&mut *rng).ok()?;
    let ss = Zeroizing::new(ss.to_vec());
    let mut header = Vec::with_capacity(32 + KEM_CT_LEN);
    header.extend_from_slice(&eph_pub);
    header.extend_from_slice(&ct);
    let first = session::first_chain_key(dh.as_bytes(), &ss, &eph_pub, &recipient.x25519, &ct);
    Some(SendSession {
        sid: session::session_id(&eph_pub, &ct),
        header,
        recip_x: recipient.x25519,
        chain: session::Chain::new(first),
        confirmed: false,
        created_s: now_s,
        start_until: 0,
        starts: Default::default(),
        unacked: Default::default(),
    })
}

/// Seals `body`, for a message that expires at `expires` (unix seconds),
/// as the next message of `s`. Until `s` is confirmed, the session's
/// starting exchange rides in the messages [`session::carries_start`] names
/// (suite 3), in any that would outlive all earlier ones carrying it by
/// more than [`session::START_GRACE_S`], and in the next one whenever no
/// message carrying it is still on its way (`s.starts` empty); the rest
/// name the session (suite 5). Suite 4 once confirmed. Returns the
/// payload and the counter used.
pub fn seal_in(
    s: &mut SendSession,
    origin: &[u8; 32],
    dest: &[u8; 16],
    content_type: u8,
    body: &[u8],
    expires: u64,
) -> (Vec<u8>, u32) {
    let (n, mk) = s.chain.step();
    let plain = pad(content_type, body);
    let mut out = Vec::with_capacity(SESSION_HEADER + s.header.len() + plain.len() + 16);
    let start = !s.confirmed
        && (s.starts.is_empty()
            || session::carries_start(n)
            || expires > s.start_until.saturating_add(session::START_GRACE_S));
    if !start {
        out.put_u8(if s.confirmed { SUITE_SESSION } else { SUITE_SESSION_EARLY });
        out.extend_from_slice(&s.sid);
        out.put_u32(n);
    } else {
        s.start_until = s.start_until.max(expires);
        out.put_u8(SUITE_SESSION_INIT);
        out.put_u32(n);
        out.extend_from_slice(&s.header);
    }
    let a = session_aad(origin, dest, &out);
    aead_seal_into(&mk, &plain, &a, &mut out);
    (out, n)
}

fn session_aad(origin: &[u8; 32], dest: &[u8; 16], header: &[u8]) -> Vec<u8> {
    let mut a = Vec::with_capacity(48 + header.len());
    a.extend_from_slice(&aad(origin, dest));
    a.extend_from_slice(header);
    a
}

/// The session message a payload was, once opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionUse {
    pub sid: SessionId,
    pub counter: u32,
    /// This message started the session here (it is new in `book`).
    pub new: bool,
}

/// Opens a direct payload of any suite. Session messages use and update
/// `book` (the receiver's sessions); a suite 3 message whose session is
/// unknown starts it, but only once its AEAD has checked out.
pub fn open_any(
    me: &Identity,
    book: &mut Inbound,
    origin_id: NodeId,
    origin: &[u8; 32],
    dest: &[u8; 16],
    payload: &[u8],
    now_s: u64,
) -> Result<(Opened, Option<SessionUse>), OpenError> {
    let mut r = Reader::new(payload);
    let suite = r.u8("suite").map_err(|_| OpenError::Truncated)?;
    let (sid, counter, fresh) = match suite {
        SUITE_SESSION | SUITE_SESSION_EARLY => {
            let sid = r.array::<SID_LEN>("sid").map_err(|_| OpenError::Truncated)?;
            // Either waits: for the start around it (suite 5), or for the
            // start sent again once we ask (suite 6; a confirmed session
            // we no longer hold).
            if !book.contains(&origin_id, &sid) {
                return Err(OpenError::SessionPending(sid));
            }
            (sid, r.u32("counter").map_err(|_| OpenError::Truncated)?, None)
        }
        SUITE_SESSION_INIT => {
            let n = r.u32("counter").map_err(|_| OpenError::Truncated)?;
            let eph = r.array::<32>("eph").map_err(|_| OpenError::Truncated)?;
            let ct = r.array::<KEM_CT_LEN>("kem ct").map_err(|_| OpenError::Truncated)?;
            let sid = session::session_id(&eph, &ct);
            let fresh = if book.contains(&origin_id, &sid) { None } else { Some(recv_session(me, &eph, &ct, now_s)?) };
            (sid, n, fresh)
        }
        _ => return open(me, origin, dest, payload).map(|o| (o, None)),
    };
    let sealed = r.rest();
    let header_len = payload.len() - sealed.len();
    let a = session_aad(origin, dest, &payload[..header_len]);
    let decrypt = |mk: &[u8; 32]| aead_open(mk, sealed, &a);
    let new = fresh.is_some();
    let plain = match fresh {
        Some(mut s) => {
            let plain = s.open(counter, now_s, decrypt).map_err(OpenError::Session)??;
            book.insert(origin_id, s);
            plain
        }
        None => book.open(&origin_id, &sid, counter, now_s, decrypt).map_err(OpenError::Session)??,
    };
    Ok((unpad_direct(&plain)?, Some(SessionUse { sid, counter, new })))
}

/// The receiver's half of the session that `eph` and `ct` start.
fn recv_session(me: &Identity, eph: &[u8; 32], ct: &[u8; KEM_CT_LEN], now_s: u64) -> Result<RecvSession, OpenError> {
    if crate::crypto::is_low_order(eph) {
        return Err(OpenError::WeakKey);
    }
    let ss = me.kem_dk().decapsulate(&(*ct).into()).map_err(|_| OpenError::Decrypt)?;
    let dh = me.e2e_secret().diffie_hellman(&x25519_dalek::PublicKey::from(*eph));
    let first = session::first_chain_key(dh.as_bytes(), &ss, eph, &me.e2e_public(), ct);
    Ok(RecvSession::new(session::session_id(eph, ct), first, now_s))
}

/// A suite 6 payload: the start `header` (`eph || kem ct`) of a session
/// sent again.
pub fn restatement(header: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + header.len());
    out.put_u8(SUITE_SESSION_RESTATE);
    out.extend_from_slice(header);
    out
}

/// Takes up the session a suite 6 payload starts, unless `book` holds it
/// already and `reset` is false (with `reset` the session starts over
/// from its first key: messages whose keys were dropped open again, and
/// the delivered ids keep those already delivered from arriving twice).
/// Returns its id and whether it was taken up.
pub fn restate(
    me: &Identity,
    book: &mut Inbound,
    origin_id: NodeId,
    payload: &[u8],
    now_s: u64,
    reset: bool,
) -> Result<(SessionId, bool), OpenError> {
    let mut r = Reader::new(payload);
    match r.u8("suite").map_err(|_| OpenError::Truncated)? {
        SUITE_SESSION_RESTATE => {}
        s => return Err(OpenError::UnknownSuite(s)),
    }
    let eph = r.array::<32>("eph").map_err(|_| OpenError::Truncated)?;
    let ct = r.array::<KEM_CT_LEN>("kem ct").map_err(|_| OpenError::Truncated)?;
    if !r.rest().is_empty() {
        return Err(OpenError::TrailingBytes);
    }
    let sid = session::session_id(&eph, &ct);
    if let Some(s) = book.get_mut(&origin_id, &sid) {
        // A chain started over reaches MAX_JUMP counters only: a session
        // that went further keeps the state it has.
        if !reset || s.next() > session::MAX_JUMP {
            return Ok((sid, false));
        }
    }
    book.insert(origin_id, recv_session(me, &eph, &ct, now_s)?);
    Ok((sid, true))
}

/// The session a session payload (suite 3, 4 or 5) was sealed in, or a
/// suite 6 payload starts.
pub fn session_of(payload: &[u8]) -> Option<SessionId> {
    let mut r = Reader::new(payload);
    match r.u8("suite").ok()? {
        SUITE_SESSION | SUITE_SESSION_EARLY => r.array::<SID_LEN>("sid").ok(),
        s @ (SUITE_SESSION_INIT | SUITE_SESSION_RESTATE) => {
            if s == SUITE_SESSION_INIT {
                r.u32("counter").ok()?;
            }
            let eph = r.array::<32>("eph").ok()?;
            let ct = r.array::<KEM_CT_LEN>("kem ct").ok()?;
            Some(session::session_id(&eph, &ct))
        }
        _ => None,
    }
}

/// Frames and pads a plaintext: `u8 content type`, `u32 length`, body, zero
/// bytes up to [`padded_len`].
pub fn pad(content_type: u8, body: &[u8]) -> Zeroizing<Vec<u8>> {
    let padded = padded_len(5 + body.len());
    let mut plain = Zeroizing::new(Vec::with_capacity(padded));
    plain.put_u8(content_type);
    plain.put_u32(body.len() as u32);
    plain.extend_from_slice(body);
    plain.resize(padded, 0);
    plain
}

/// Reverses [`pad`] for a channel message, which is always text; refuses
/// short framing, padding that is not zeros up to exactly [`padded_len`]
/// (or the older single 256-byte bucket), other content types and text
/// that is not UTF-8.
pub fn unpad(plain: &[u8]) -> Result<Opened, OpenError> {
    unpad_with(plain, false)
}

/// Reverses [`pad`] for a direct message: text as [`unpad`], or a file
/// part that [`filepart::decode`] accepts.
pub fn unpad_direct(plain: &[u8]) -> Result<Opened, OpenError> {
    unpad_with(plain, true)
}

fn unpad_with(plain: &[u8], files: bool) -> Result<Opened, OpenError> {
    let mut r = Reader::new(plain);
    let content_type = r.u8("type").map_err(|_| OpenError::BadPadding)?;
    let len = r.u32("len").map_err(|_| OpenError::BadPadding)? as usize;
    let body = r.bytes(len, "body").map_err(|_| OpenError::BadPadding)?.to_vec();
    // The single 256-byte bucket of versions before 2026-12-07 is taken
    // too, so their messages still open here.
    let old_bucket = (5 + len).div_ceil(OLD_PAD_BUCKET) * OLD_PAD_BUCKET;
    if r.rest().iter().any(|&b| b != 0) || (plain.len() != padded_len(5 + len) && plain.len() != old_bucket) {
        return Err(OpenError::BadPadding);
    }
    if files && content_type == filepart::CONTENT_FILE {
        filepart::decode(&body).map_err(OpenError::BadFilePart)?;
        return Ok(Opened { content_type, body });
    }
    if content_type != CONTENT_TEXT {
        return Err(OpenError::UnknownContentType(content_type));
    }
    if std::str::from_utf8(&body).is_err() {
        return Err(OpenError::NotText);
    }
    Ok(Opened { content_type, body })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::OsRng;

    fn card_of(id: &Identity, kem: bool) -> Card {
        Card {
            ed_pk: id.public_key(),
            x25519: id.e2e_public(),
            kem_ek: kem.then(|| crate::card::KemKey::new(id.kem_public())),
            name: String::new(),
            domain: String::new(),
            seq: 1,
            neighbours: Vec::new(),
            gateway_for: Vec::new(),
        }
    }

    #[test]
    fn padded_lengths_hide_short_messages_and_add_at_most_an_eighth() {
        // A 200-byte text is 205 bytes framed: 208 padded (256 before).
        let table = [(6, 128), (128, 128), (129, 144), (205, 208), (256, 256), (257, 288), (513, 576)];
        for (len, padded) in table {
            assert_eq!(padded_len(len), padded, "{len}");
        }
        // Above 2 KiB the steps are the 256 bytes of a whole bucket, so a
        // file part pads as much as it did with the single bucket.
        assert_eq!(padded_len(2049), 2304);
        assert_eq!(padded_len(5 + 33_000), 33_024);
        let mut last = 0;
        for len in 1..70_000 {
            let p = padded_len(len);
            assert!(p >= len && p >= last, "{len}");
            assert!(len <= PAD_MIN || (p - len) * 8 <= len, "{len} -> {p}");
            last = p;
        }
    }

    #[test]
    fn an_unconfirmed_session_seals_its_start_into_counters_0_16_32_64() {
        let bob = Identity::generate(&mut OsRng);
        let mut s = start_session(&mut OsRng, &card_of(&bob, true), 0).unwrap();
        let mut with_start = Vec::new();
        for i in 0..100u32 {
            let (m, n) = seal_in(&mut s, &[1; 32], &[2; 16], CONTENT_TEXT, b"m", 99);
            assert_eq!(n, i);
            if m[0] == SUITE_SESSION_INIT {
                with_start.push(n);
            } else {
                assert_eq!(m[0], SUITE_SESSION_EARLY, "{n}");
            }
            // The first carries the start and is on its way.
            s.starts.insert([0; 16]);
        }
        assert_eq!(with_start, [0, 16, 32, 64]);
    }

    #[test]
    fn a_start_sent_again_takes_a_lost_session_up_and_resets_one_whose_key_is_gone() {
        let (alice, bob) = (Identity::generate(&mut OsRng), Identity::generate(&mut OsRng));
        let (origin, dest) = (alice.public_key(), [2u8; 16]);
        let from = NodeId::from_public_key(&origin);
        let mut s = start_session(&mut OsRng, &card_of(&bob, true), 0).unwrap();
        let mut msgs = Vec::new();
        for i in 0..3u8 {
            msgs.push(seal_in(&mut s, &origin, &dest, CONTENT_TEXT, &[b'm', i], 99).0);
            // The first carries the start and is on its way: the rest name it.
            s.starts.insert([0; 16]);
        }
        assert_eq!(msgs[1][0], SUITE_SESSION_EARLY);
        assert_eq!(session_of(&msgs[1]), Some(s.sid));
        let open = |book: &mut Inbound, m: &[u8]| open_any(&bob, book, from, &origin, &dest, m, 5);
        // A receiver that lost the session waits for it (suite 5)...
        let mut book = Inbound::default();
        assert_eq!(open(&mut book, &msgs[1]).unwrap_err(), OpenError::SessionPending(s.sid));
        // ...and takes it up from the start sent again: 1 and 2 open.
        let again = restatement(&s.header);
        assert_eq!(session_of(&again), Some(s.sid));
        assert_eq!(restate(&bob, &mut book, from, &again, 5, false), Ok((s.sid, true)));
        assert_eq!(open(&mut book, &msgs[1]).unwrap().0.body, b"m\x01");
        // The key of 1 is gone once its message is durable: a message of
        // counter 1 no longer opens; a reset brings it back (the delivered
        // ids, not the session, keep a delivered message from a second
        // delivery). Without `reset` a held session is left as it is.
        book.forget(&from, &s.sid, 1);
        assert_eq!(open(&mut book, &msgs[1]).unwrap_err(), OpenError::Session(SessionError::KeyGone));
        assert_eq!(restate(&bob, &mut book, from, &again, 5, false), Ok((s.sid, false)));
        assert_eq!(restate(&bob, &mut book, from, &again, 5, true), Ok((s.sid, true)));
        assert_eq!(open(&mut book, &msgs[1]).unwrap().0.body, b"m\x01");
        assert_eq!(open(&mut book, &msgs[2]).unwrap().0.body, b"m\x02");
        // Bytes after the start, or a start that is not one, are refused.
        let mut long = again.clone();
        long.push(0);
        assert_eq!(restate(&bob, &mut book, from, &long, 5, false), Err(OpenError::TrailingBytes));
        assert_eq!(restate(&bob, &mut book, from, &again[..100], 5, false), Err(OpenError::Truncated));
        assert_eq!(
            restate(&bob, &mut book, from, &msgs[0], 5, false),
            Err(OpenError::UnknownSuite(SUITE_SESSION_INIT))
        );
    }

    #[test]
    fn hybrid_round_trips_and_a_classic_downgrade_is_refused() {
        let bob = Identity::generate(&mut OsRng);
        let ct = seal(&mut OsRng, &card_of(&bob, true), &[1; 32], &[2; 16], CONTENT_TEXT, b"hi bob");
        assert_eq!(ct.len(), sealed_len(6, true));
        let opened = open(&bob, &[1; 32], &[2; 16], &ct).unwrap();
        assert_eq!((opened.body.as_slice(), opened.content_type), (&b"hi bob"[..], CONTENT_TEXT));
        // Suite 1 to a node whose card offers ML-KEM: refused.
        let classic = seal(&mut OsRng, &card_of(&bob, false), &[1; 32], &[2; 16], CONTENT_TEXT, b"hi bob");
        assert_eq!(classic.len(), sealed_len(6, false));
        assert_eq!(open(&bob, &[1; 32], &[2; 16], &classic), Err(OpenError::Downgrade));
    }

    #[test]
    fn receive_rules_refuse_weak_keys_loose_padding_and_unknown_content() {
        let bob = Identity::generate(&mut OsRng);
        let mut ct = seal(&mut OsRng, &card_of(&bob, true), &[1; 32], &[2; 16], CONTENT_TEXT, b"x");
        ct[1..33].copy_from_slice(&[0; 32]);
        assert_eq!(open(&bob, &[1; 32], &[2; 16], &ct), Err(OpenError::WeakKey));
        // Padding: zeros to exactly padded_len, nothing more or less.
        let mut long = pad(CONTENT_TEXT, b"x").to_vec();
        long.extend_from_slice(&[0; 16]);
        assert_eq!(unpad(&long), Err(OpenError::BadPadding));
        let mut long = pad(CONTENT_TEXT, &[b'y'; 200]).to_vec();
        assert_eq!(long.len(), 208);
        long.extend_from_slice(&[0; 16]);
        assert_eq!(unpad(&long), Err(OpenError::BadPadding));
        // What a version before 2026-12-07 sent (the 256-byte bucket)
        // still opens; nothing between, nothing beyond.
        long.resize(256, 0);
        assert_eq!(unpad(&long).map(|o| o.body.len()), Ok(200));
        long.resize(512, 0);
        assert_eq!(unpad(&long), Err(OpenError::BadPadding));
        let mut short = pad(CONTENT_TEXT, b"x").to_vec();
        short.resize(256, 0);
        assert!(unpad(&short).is_ok());
        assert_eq!(unpad(&pad(CONTENT_TEXT, b"x")[..100]), Err(OpenError::BadPadding));
        assert_eq!(unpad(&pad(9, b"x")), Err(OpenError::UnknownContentType(9)));
        assert_eq!(unpad(&pad(CONTENT_TEXT, &[0xff, 0xfe])), Err(OpenError::NotText));
        assert!(unpad(&pad(CONTENT_TEXT, "grüße".as_bytes())).is_ok());
        // File parts: only in direct messages, and only whole.
        let part = &filepart::split([3; 16], "f.bin", "", &[7; 100]).unwrap()[0];
        assert!(unpad_direct(&pad(filepart::CONTENT_FILE, part)).is_ok());
        assert_eq!(unpad(&pad(filepart::CONTENT_FILE, part)), Err(OpenError::UnknownContentType(2)));
        let short = unpad_direct(&pad(filepart::CONTENT_FILE, &part[..part.len() - 1]));
        assert!(matches!(short, Err(OpenError::BadFilePart(_))), "{short:?}");
    }

    #[test]
    fn every_small_order_x25519_point_is_caught_and_real_keys_are_not() {
        // Each listed point, also with the top bit set (ignored by X25519),
        // gives the all-zero shared secret with any scalar.
        let me = x25519_dalek::StaticSecret::random_from_rng(OsRng);
        let mut low = 0;
        for b0 in [0x00u8, 0x01, 0xe0, 0x5f, 0xec, 0xed, 0xee] {
            for top in [0u8, 0x80] {
                let mut u = match b0 {
                    0x00 | 0x01 => [0u8; 32],
                    0xe0 => hex32("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
                    0x5f => hex32("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157"),
                    _ => [0xff; 32],
                };
                if matches!(b0, 0x00 | 0x01 | 0xec | 0xed | 0xee) {
                    u[0] = b0;
                }
                if matches!(b0, 0xec..=0xee) {
                    u[31] = 0x7f;
                }
                u[31] |= top;
                assert!(crate::crypto::is_low_order(&u), "{b0:x} top {top}");
                let shared = me.diffie_hellman(&x25519_dalek::PublicKey::from(u));
                assert_eq!(shared.as_bytes(), &[0u8; 32], "{b0:x}: not small order after all");
                low += 1;
            }
        }
        assert_eq!(low, 14);
        for _ in 0..100 {
            let k = x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::random_from_rng(OsRng));
            assert!(!crate::crypto::is_low_order(k.as_bytes()));
        }
    }

    fn hex32(s: &str) -> [u8; 32] {
        crate::crypto::from_hex::<32>(s).unwrap()
    }

    #[test]
    fn short_messages_have_one_size() {
        let bob = Identity::generate(&mut OsRng);
        let a = seal(&mut OsRng, &card_of(&bob, true), &[1; 32], &[2; 16], 1, b"a");
        let b = seal(&mut OsRng, &card_of(&bob, true), &[1; 32], &[2; 16], 1, &[b'x'; 123]);
        let c = seal(&mut OsRng, &card_of(&bob, true), &[1; 32], &[2; 16], 1, &[b'x'; 124]);
        assert_eq!(a.len(), b.len());
        assert_eq!(c.len(), a.len() + 16);
    }

    #[test]
    fn wrong_recipient_tamper_and_rebinding_fail() {
        let bob = Identity::generate(&mut OsRng);
        let eve = Identity::generate(&mut OsRng);
        let ct = seal(&mut OsRng, &card_of(&bob, true), &[1; 32], &[2; 16], 1, b"secret");
        assert_eq!(open(&eve, &[1; 32], &[2; 16], &ct), Err(OpenError::Decrypt));
        let mut t = ct.clone();
        let last = t.len() - 1;
        t[last] ^= 1;
        assert_eq!(open(&bob, &[1; 32], &[2; 16], &t), Err(OpenError::Decrypt));
        // Same ciphertext presented as coming from another origin.
        assert_eq!(open(&bob, &[9; 32], &[2; 16], &ct), Err(OpenError::Decrypt));
        assert_eq!(open(&bob, &[1; 32], &[2; 16], &ct[..20]), Err(OpenError::Truncated));
        let mut s = ct;
        s[0] = 7;
        assert_eq!(open(&bob, &[1; 32], &[2; 16], &s), Err(OpenError::UnknownSuite(7)));
    }
}
