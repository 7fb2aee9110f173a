//! Node identity: one secret seed from which every key of a node is derived.
//!
//! A node's long-term secret is a single 32-byte Ed25519 seed. From it come:
//! - the Ed25519 signing key (envelopes, announces);
//! - the Noise static X25519 key, the standard Ed25519-to-X25519 conversion
//!   (as libsodium's `crypto_sign_ed25519_sk_to_curve25519`), so a peer can
//!   check that a Noise static key belongs to an Ed25519 key with
//!   `to_montgomery()` and the link proves the identity with 32 bytes;
//! - a separate X25519 key and an ML-KEM-768 key pair for end-to-end
//!   encryption, each derived with [`kdf`] under its own label.
//!
//! This module parses and writes the identity file's bytes; it does not touch
//! the file system (the daemon does, and enforces mode 0600).

use core::fmt;

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use ml_kem::kem::DecapsulationKey;
use ml_kem::{EncodedSizeUser, KemCore, MlKem768, MlKem768Params};
use rand_core::CryptoRngCore;
use zeroize::{Zeroize, Zeroizing};

use crate::crypto::{from_hex, kdf, to_hex};

/// Length of an ML-KEM-768 encapsulation (public) key.
pub const KEM_EK_LEN: usize = 1184;
/// Length of an ML-KEM-768 ciphertext.
pub const KEM_CT_LEN: usize = 1088;

/// The short, printable name of a node: the first 16 bytes of a labelled
/// BLAKE2s hash of its Ed25519 public key, shown as 32 hex digits.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct NodeId(pub [u8; 16]);

impl NodeId {
    /// The node id that belongs to an Ed25519 public key.
    pub fn from_public_key(pk: &[u8; 32]) -> NodeId {
        let h = kdf(b"mp-nodid", &[], &[pk]);
        let mut id = [0u8; 16];
        id.copy_from_slice(&h[..16]);
        NodeId(id)
    }

    /// Parses the 32-hex-digit form.
    pub fn parse(s: &str) -> Option<NodeId> {
        from_hex::<16>(s.trim()).map(NodeId)
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&to_hex(&self.0))
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({self})")
    }
}

/// Why an identity file was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentityError {
    /// The first line is not `meshpost-identity v1`.
    BadHeader,
    /// The seed line is not 64 hex digits.
    BadSeed,
    /// The check line is missing or does not match the seed.
    BadChecksum,
}

impl fmt::Display for IdentityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdentityError::BadHeader => f.write_str("first line is not 'meshpost-identity v1'"),
            IdentityError::BadSeed => f.write_str("seed line is not 64 hex digits"),
            IdentityError::BadChecksum => f.write_str("check line missing or wrong: the file is corrupt"),
        }
    }
}

const FILE_HEADER: &str = "meshpost-identity v1";

/// A node's secret keys. Secret material is zeroized on drop.
pub struct Identity {
    seed: Zeroizing<[u8; 32]>,
    signing: SigningKey,
    e2e_x25519: x25519_dalek::StaticSecret,
    kem_dk: DecapsulationKey<MlKem768Params>,
    kem_ek: Box<[u8; KEM_EK_LEN]>,
}

impl Identity {
    /// Creates a fresh identity from the caller's randomness.
    pub fn generate(rng: &mut impl CryptoRngCore) -> Identity {
        let mut seed = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(&mut seed[..]);
        Identity::from_seed(&seed)
    }

    /// Rebuilds every key from the 32-byte seed.
    pub fn from_seed(seed: &[u8; 32]) -> Identity {
        let signing = SigningKey::from_bytes(seed);
        let mut x = kdf(b"mp-e2ex\0", seed, &[]);
        let e2e_x25519 = x25519_dalek::StaticSecret::from(x);
        x.zeroize();
        let mut d = kdf(b"mp-kemd\0", seed, &[]);
        let mut z = kdf(b"mp-kemz\0", seed, &[]);
        let (kem_dk, ek) = MlKem768::generate_deterministic(&d.into(), &z.into());
        d.zeroize();
        z.zeroize();
        let mut kem_ek = Box::new([0u8; KEM_EK_LEN]);
        kem_ek.copy_from_slice(ek.as_bytes().as_slice());
        Identity { seed: Zeroizing::new(*seed), signing, e2e_x25519, kem_dk, kem_ek }
    }

    /// Parses the identity file's bytes.
    pub fn from_file_bytes(bytes: &[u8]) -> Result<Identity, IdentityError> {
        let text = core::str::from_utf8(bytes).map_err(|_| IdentityError::BadHeader)?;
        let mut lines = text.lines();
        if lines.next().map(str::trim) != Some(FILE_HEADER) {
            return Err(IdentityError::BadHeader);
        }
        let seed =
            lines.next().and_then(|l| from_hex::<32>(l.trim())).map(Zeroizing::new).ok_or(IdentityError::BadSeed)?;
        let check = lines
            .next()
            .and_then(|l| l.trim().strip_prefix("check "))
            .and_then(from_hex::<8>)
            .ok_or(IdentityError::BadChecksum)?;
        if !crate::crypto::ct_eq(&check, &seed_check(&seed)) {
            return Err(IdentityError::BadChecksum);
        }
        Ok(Identity::from_seed(&seed))
    }

    /// The identity file's bytes: a header, the hex seed and a check value.
    pub fn to_file_bytes(&self) -> Zeroizing<Vec<u8>> {
        let text = format!("{FILE_HEADER}\n{}\ncheck {}\n", to_hex(&self.seed[..]), to_hex(&seed_check(&self.seed)));
        Zeroizing::new(text.into_bytes())
    }

    pub fn node_id(&self) -> NodeId {
        NodeId::from_public_key(&self.public_key())
    }

    /// The Ed25519 public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.signing.verifying_key().to_bytes()
    }

    pub fn sign(&self, msg: &[u8]) -> [u8; 64] {
        self.signing.sign(msg).to_bytes()
    }

    /// The Noise static private key (X25519), derived from the Ed25519 key.
    pub fn noise_static_secret(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.signing.to_scalar_bytes())
    }

    /// The X25519 public key senders encrypt direct payloads to.
    pub fn e2e_public(&self) -> [u8; 32] {
        x25519_dalek::PublicKey::from(&self.e2e_x25519).to_bytes()
    }

    pub(crate) fn e2e_secret(&self) -> &x25519_dalek::StaticSecret {
        &self.e2e_x25519
    }

    pub(crate) fn kem_dk(&self) -> &DecapsulationKey<MlKem768Params> {
        &self.kem_dk
    }

    /// The ML-KEM-768 encapsulation key senders encapsulate to.
    pub fn kem_public(&self) -> &[u8; KEM_EK_LEN] {
        &self.kem_ek
    }
}

fn seed_check(seed: &[u8; 32]) -> [u8; 8] {
    let h = kdf(b"mp-idchk", &[], &[seed]);
    let mut out = [0u8; 8];
    out.copy_from_slice(&h[..8]);
    out
}

/// A short fingerprint of an Ed25519 public key, as published in mDNS TXT
/// records: the first 8 bytes of `KDF("mp-keyfp", "", [pk])`.
pub fn fingerprint(pk: &[u8; 32]) -> [u8; 8] {
    let h = kdf(b"mp-keyfp", &[], &[pk]);
    let mut out = [0u8; 8];
    out.copy_from_slice(&h[..8]);
    out
}

/// The Noise static public key (Montgomery u) that belongs to an Ed25519
/// public key, or `None` if the bytes are not a valid Edwards point.
pub fn noise_static_for(ed_pk: &[u8; 32]) -> Option<[u8; 32]> {
    VerifyingKey::from_bytes(ed_pk).ok().map(|vk| vk.to_montgomery().to_bytes())
}

/// The safety number of two identities: the same 30 digits on both sides
/// (the keys are sorted), shown as six groups of five. Two people who read
/// the same number to each other hold each other's real keys.
pub fn safety_number(a: &[u8; 32], b: &[u8; 32]) -> String {
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    let h = crate::crypto::kdf(b"mp-safty", &[], &[lo, hi]);
    h.chunks(4)
        .take(6)
        .map(|c| format!("{:05}", u32::from_be_bytes([c[0], c[1], c[2], c[3]]) % 100_000))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether a compressed Edwards point encodes its y coordinate canonically
/// (y < p = 2^255 - 19, sign bit aside).
fn canonical_y(b: &[u8]) -> bool {
    let top = b[31] & 0x7f;
    !(top == 0x7f && b[1..31].iter().all(|&x| x == 0xff) && b[0] >= 0xed)
}

/// Verifies an Ed25519 signature with the strict checks of protocol.md:
/// S canonical (S < L), A and R canonical encodings, neither A nor R of
/// small order, and the cofactorless equation `[S]B = R + [k]A`.
pub fn verify(pk: &[u8; 32], msg: &[u8], sig: &[u8; 64]) -> bool {
    verify_memo::checked(pk, msg, sig, || verify_now(pk, msg, sig))
}

fn verify_now(pk: &[u8; 32], msg: &[u8], sig: &[u8; 64]) -> bool {
    if !canonical_y(&sig[..32]) || SMALL_ORDER.iter().any(|p| p[..] == sig[..32]) {
        return false;
    }
    let Some(vk) = key_cache::key(pk) else {
        return false;
    };
    // The cofactorless check compares the encoding of [S]B - [k]A with R's
    // bytes. An encoding equal to one the curve code computed is a point's
    // canonical encoding, so R is a point, and of small order exactly when
    // it is one of the eight in SMALL_ORDER: the same answers as
    // `verify_strict`, without decompressing R (a field square root, a
    // sixth of the check). A is checked by `checked_key`.
    ed25519_dalek::Verifier::verify(&vk, msg, &ed25519_dalek::Signature::from_bytes(sig)).is_ok()
}

/// The canonical encodings of the eight points of small order (the
/// torsion subgroup): a test derives them from curve25519-dalek's
/// `EIGHT_TORSION`.
const SMALL_ORDER: [[u8; 32]; 8] = {
    let mut t = [[0u8; 32]; 8];
    // The identity (0, 1).
    t[0][0] = 1;
    // (0, -1), of order 2: y = p - 1.
    t[1] = [0xff; 32];
    t[1][0] = 0xec;
    t[1][31] = 0x7f;
    // (+-sqrt(-1), 0), of order 4: y = 0, either sign of x (t[2] is the
    // all-zero encoding as it stands).
    t[3][31] = 0x80;
    // The four of order 8.
    t[4] = ORDER8_A;
    t[5] = ORDER8_A;
    t[5][31] |= 0x80;
    t[6] = ORDER8_B;
    t[7] = ORDER8_B;
    t[7][31] |= 0x80;
    t
};
const ORDER8_A: [u8; 32] = [
    0xc7, 0x17, 0x6a, 0x70, 0x3d, 0x4d, 0xd8, 0x4f, 0xba, 0x3c, 0x0b, 0x76, 0x0d, 0x10, 0x67, 0x0f, 0x2a, 0x20, 0x53,
    0xfa, 0x2c, 0x39, 0xcc, 0xc6, 0x4e, 0xc7, 0xfd, 0x77, 0x92, 0xac, 0x03, 0x7a,
];
const ORDER8_B: [u8; 32] = [
    0x26, 0xe8, 0x95, 0x8f, 0xc2, 0xb2, 0x27, 0xb0, 0x45, 0xc3, 0xf4, 0x89, 0xf2, 0xef, 0x98, 0xf0, 0xd5, 0xdf, 0xac,
    0x05, 0xd3, 0xc6, 0x33, 0x39, 0xb1, 0x38, 0x02, 0x88, 0x6d, 0x53, 0xfc, 0x05,
];

/// A public key as a checked curve point, or `None` if it is not
/// canonical, not on the curve, or of small order.
fn checked_key(pk: &[u8; 32]) -> Option<VerifyingKey> {
    if !canonical_y(pk) {
        return None;
    }
    VerifyingKey::from_bytes(pk).ok().filter(|vk| !vk.is_weak())
}

/// Checked public keys of recent signers. Decompressing a key is a field
/// square root, about a quarter of a signature check, and a few origins
/// sign most envelopes a node sees; the result is a pure function of the
/// 32 bytes, so it is remembered per thread (the daemon has one). Bounded:
/// cleared at [`MAX_KEYS`](key_cache::MAX_KEYS) entries, so keys sent to
/// fill it cost no more than checking them did.
mod key_cache {
    use std::cell::RefCell;
    // Not a HashMap: its per-thread random seed would be OS randomness.
    use std::collections::BTreeMap;

    use ed25519_dalek::VerifyingKey;

    pub const MAX_KEYS: usize = 1024;

    thread_local! {
        static KEYS: RefCell<BTreeMap<[u8; 32], Option<VerifyingKey>>> = const { RefCell::new(BTreeMap::new()) };
    }

    pub(super) fn key(pk: &[u8; 32]) -> Option<VerifyingKey> {
        if let Some(k) = KEYS.with(|c| c.borrow().get(pk).copied()) {
            return k;
        }
        let k = super::checked_key(pk);
        KEYS.with(|c| {
            let mut c = c.borrow_mut();
            if c.len() >= MAX_KEYS {
                c.clear();
            }
            c.insert(*pk, k);
        });
        k
    }

    #[cfg(test)]
    pub(super) fn len() -> usize {
        KEYS.with(|c| c.borrow().len())
    }
}

/// A memo of signature checks for simulations, where a thousand nodes on
/// one thread each check the same beacon: the check is a pure function of
/// key, message and signature, so its result is remembered by their hash.
/// Off unless [`enable`](verify_memo::enable) is called on the thread (the
/// daemon never does); bounded (cleared at a million entries).
pub mod verify_memo {
    use std::cell::{Cell, RefCell};
    use std::collections::HashMap;

    const MAX_ENTRIES: usize = 1 << 20;

    thread_local! {
        static ON: Cell<bool> = const { Cell::new(false) };
        static SEEN: RefCell<HashMap<[u8; 32], bool>> = RefCell::new(HashMap::new());
    }

    /// Remembers signature checks on this thread from now on.
    pub fn enable() {
        ON.with(|o| o.set(true));
    }

    pub(super) fn checked(pk: &[u8; 32], msg: &[u8], sig: &[u8; 64], check: impl FnOnce() -> bool) -> bool {
        if !ON.with(Cell::get) {
            return check();
        }
        let key = crate::crypto::kdf(b"mp-vmemo", &[], &[pk, sig, msg]);
        if let Some(ok) = SEEN.with(|s| s.borrow().get(&key).copied()) {
            return ok;
        }
        let ok = check();
        SEEN.with(|s| {
            let mut s = s.borrow_mut();
            if s.len() >= MAX_ENTRIES {
                s.clear();
            }
            s.insert(key, ok);
        });
        ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembered_keys_give_the_answers_a_fresh_check_gives_and_stay_bounded() {
        let id = Identity::from_seed(&[5; 32]);
        let sig = id.sign(b"m");
        let mut identity_pt = [0u8; 32];
        identity_pt[0] = 1;
        let mut noncanonical = [0xff; 32];
        noncanonical[31] = 0x7f;
        for pk in [id.public_key(), identity_pt, noncanonical, [0x42; 32]] {
            let fresh = checked_key(&pk).is_some();
            // Twice: from the check, then from the memory.
            assert_eq!(key_cache::key(&pk).is_some(), fresh);
            assert_eq!(key_cache::key(&pk).is_some(), fresh);
        }
        assert!(verify(&id.public_key(), b"m", &sig) && verify(&id.public_key(), b"m", &sig));
        assert!(!verify(&id.public_key(), b"n", &sig));
        for i in 0..(key_cache::MAX_KEYS as u32 + 10) {
            let mut pk = [0u8; 32];
            pk[..4].copy_from_slice(&i.to_le_bytes());
            let _ = key_cache::key(&pk);
            assert!(key_cache::len() <= key_cache::MAX_KEYS);
        }
        assert!(verify(&id.public_key(), b"m", &sig), "after the memory was cleared");
    }

    #[test]
    fn strict_ed25519_refuses_the_forms_a_lax_verifier_accepts() {
        let id = Identity::from_seed(&[3; 32]);
        let msg = b"strict";
        let sig = id.sign(msg);
        assert!(verify(&id.public_key(), msg, &sig));
        // R = identity, S = 0 under the identity key: true for any message
        // under the cofactorless equation, refused as small order.
        let mut identity_pt = [0u8; 32];
        identity_pt[0] = 1;
        let mut forged = [0u8; 64];
        forged[..32].copy_from_slice(&identity_pt);
        assert!(!verify(&identity_pt, b"anything", &forged));
        // S + L (a second encoding of the same S) is refused.
        const L: [u8; 32] = [
            0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14, 0, 0, 0, 0,
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
        ];
        let mut s_plus_l = sig;
        let mut carry = 0u16;
        for i in 0..32 {
            let v = u16::from(s_plus_l[32 + i]) + u16::from(L[i]) + carry;
            s_plus_l[32 + i] = v as u8;
            carry = v >> 8;
        }
        assert!(!verify(&id.public_key(), msg, &s_plus_l));
        // Non-canonical encodings (y >= p) of A and of R.
        let mut y_is_p = [0xffu8; 32];
        y_is_p[0] = 0xed;
        y_is_p[31] = 0x7f;
        assert!(!canonical_y(&y_is_p));
        assert!(!verify(&y_is_p, msg, &sig));
        let mut bad_r = sig;
        bad_r[..32].copy_from_slice(&y_is_p);
        assert!(!verify(&id.public_key(), msg, &bad_r));
        assert!(canonical_y(&id.public_key()));
    }

    #[test]
    fn the_small_order_table_is_the_torsion_subgroup() {
        let mut want: Vec<[u8; 32]> =
            curve25519_dalek::constants::EIGHT_TORSION.iter().map(|p| p.compress().to_bytes()).collect();
        let mut have = SMALL_ORDER.to_vec();
        want.sort();
        have.sort();
        assert_eq!(have, want);
    }

    /// A signature whose R is the identity, made with the secret key so the
    /// cofactorless equation holds (S = k a): `verify` must refuse it
    /// though the equation checks out, as `verify_strict` does.
    #[test]
    fn a_valid_equation_with_a_small_order_r_is_refused() {
        use curve25519_dalek::scalar::Scalar;
        use sha2::{Digest, Sha512};
        let seed = [9u8; 32];
        let id = Identity::from_seed(&seed);
        let pk = id.public_key();
        let h = Sha512::digest(seed);
        let mut a = [0u8; 32];
        a.copy_from_slice(&h[..32]);
        a[0] &= 248;
        a[31] &= 127;
        a[31] |= 64;
        let a = Scalar::from_bytes_mod_order(a);
        let msg = b"small order R";
        let r = SMALL_ORDER[0];
        let k = Scalar::from_hash(Sha512::new().chain_update(r).chain_update(pk).chain_update(msg));
        let mut sig = [0u8; 64];
        sig[..32].copy_from_slice(&r);
        sig[32..].copy_from_slice((k * a).as_bytes());
        let vk = VerifyingKey::from_bytes(&pk).expect("a real key");
        let dalek_sig = ed25519_dalek::Signature::from_bytes(&sig);
        assert!(ed25519_dalek::Verifier::verify(&vk, msg, &dalek_sig).is_ok(), "the lax check accepts it");
        assert!(vk.verify_strict(msg, &dalek_sig).is_err());
        assert!(!verify(&pk, msg, &sig));
        // And an honest signature still verifies.
        assert!(verify(&pk, msg, &id.sign(msg)));
    }
    use rand_core::OsRng;

    #[test]
    fn file_round_trip_restores_the_same_keys() {
        let id = Identity::generate(&mut OsRng);
        let back = Identity::from_file_bytes(&id.to_file_bytes()).unwrap();
        assert_eq!(back.public_key(), id.public_key());
        assert_eq!(back.e2e_public(), id.e2e_public());
        assert_eq!(back.kem_public()[..], id.kem_public()[..]);
        assert_eq!(back.node_id(), id.node_id());
    }

    #[test]
    fn corrupt_files_are_refused_with_a_reason() {
        let id = Identity::generate(&mut OsRng);
        let good = id.to_file_bytes().to_vec();
        assert_eq!(Identity::from_file_bytes(b"").err(), Some(IdentityError::BadHeader));
        assert_eq!(Identity::from_file_bytes(b"meshpost-identity v1\nzz\n").err(), Some(IdentityError::BadSeed));
        let mut flipped = good.clone();
        flipped[FILE_HEADER.len() + 1] ^= 1; // change one seed digit
        let flipped_ok = core::str::from_utf8(&flipped).is_ok();
        assert!(flipped_ok);
        assert!(matches!(
            Identity::from_file_bytes(&flipped).err(),
            Some(IdentityError::BadChecksum | IdentityError::BadSeed)
        ));
        let truncated = &good[..good.len() - 10];
        assert_eq!(Identity::from_file_bytes(truncated).err(), Some(IdentityError::BadChecksum));
    }

    #[test]
    fn noise_static_key_is_bound_to_the_ed25519_key() {
        let id = Identity::generate(&mut OsRng);
        let secret = id.noise_static_secret();
        let derived_pub = x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from(*secret)).to_bytes();
        assert_eq!(noise_static_for(&id.public_key()), Some(derived_pub));
        let other = Identity::generate(&mut OsRng);
        assert_ne!(noise_static_for(&other.public_key()), Some(derived_pub));
    }

    #[test]
    fn node_id_and_fingerprint_vectors() {
        // Computed independently with Python's hashlib.blake2s from the
        // definition in docs/protocol.md.
        let pk: [u8; 32] = core::array::from_fn(|i| i as u8);
        assert_eq!(NodeId::from_public_key(&pk).to_string(), "80452af8c8084ddf74f1223065a292b8");
        assert_eq!(to_hex(&fingerprint(&pk)), "e5b9621a24a0169d");
    }

    #[test]
    fn signatures_verify_only_for_their_message_and_key() {
        let id = Identity::generate(&mut OsRng);
        let sig = id.sign(b"hello");
        assert!(verify(&id.public_key(), b"hello", &sig));
        assert!(!verify(&id.public_key(), b"hellp", &sig));
        let other = Identity::generate(&mut OsRng);
        assert!(!verify(&other.public_key(), b"hello", &sig));
    }

    #[test]
    fn the_simulations_memo_gives_the_same_answers() {
        // On its own thread: the memo is per thread and stays on.
        std::thread::spawn(|| {
            verify_memo::enable();
            let id = Identity::generate(&mut OsRng);
            let sig = id.sign(b"hello");
            for _ in 0..2 {
                assert!(verify(&id.public_key(), b"hello", &sig));
                assert!(!verify(&id.public_key(), b"hellp", &sig));
                let mut bad = sig;
                bad[63] ^= 1;
                assert!(!verify(&id.public_key(), b"hello", &bad));
            }
        })
        .join()
        .unwrap();
    }
}
