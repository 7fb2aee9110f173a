//! The hybrid link handshake: Noise XX plus an ML-KEM-768 exchange.
//!
//! ```text
//! Noise_XX_25519_ChaChaPoly_BLAKE2s, prologue "meshpost link v1"
//! -> e, payload = initiator's ephemeral ML-KEM-768 encapsulation key (1184)
//! <- e, ee, s, es, payload = ML-KEM ciphertext (1088) || responder Ed25519 key
//! -> s, se, payload = initiator Ed25519 key (32)
//! ```
//! Each side's Noise static key is the X25519 form of its Ed25519 key, so a
//! peer proves its identity by completing the handshake: we check that the
//! remote static equals `to_montgomery(claimed Ed25519 key)`.
//!
//! The transport keys are `kdf("mp-link", k, kem_secret || handshake_hash)`
//! for each of Noise's raw split keys `k`, so an attacker must break both
//! X25519 and ML-KEM to read a link. Pinning and policy are the caller's job;
//! this module only proves who is on the other end.

use core::fmt;

use ml_kem::kem::{Decapsulate, DecapsulationKey, Encapsulate, EncapsulationKey};
use ml_kem::{EncodedSizeUser, KemCore, MlKem768, MlKem768Params};
use snow::{Builder, HandshakeState};
use zeroize::Zeroizing;

use super::noise_crypto::Resolver;
use super::packet::{MSG1_LEN, MSG2_LEN, MSG3_LEN, emit_final, emit_init, emit_resp};
use crate::crypto::{ct_eq, kdf};
use crate::identity::{Identity, KEM_CT_LEN, KEM_EK_LEN, noise_static_for};
use crate::rng::NodeRng;

const PARAMS: &str = "Noise_XX_25519_ChaChaPoly_BLAKE2s";
pub const PROLOGUE: &[u8] = b"meshpost link v1";

/// Why a handshake did not complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandshakeError {
    /// Noise rejected the message: tampered, replayed or not for this state.
    Noise,
    /// A payload had the wrong size or content.
    BadPayload,
    /// The claimed Ed25519 key does not belong to the Noise static key.
    IdentityMismatch,
    /// An ephemeral X25519 key of small order, or an ML-KEM key whose
    /// coefficients are not reduced (FIPS 203 input check).
    WeakKey,
}

/// The first 32 bytes of a Noise XX message 1 or 2 are the sender's
/// ephemeral key; one of small order is refused before Noise uses it.
fn check_ephemeral(msg: &[u8]) -> Result<(), HandshakeError> {
    let e: [u8; 32] = msg.get(..32).and_then(|s| s.try_into().ok()).ok_or(HandshakeError::BadPayload)?;
    if crate::crypto::is_low_order(&e) { Err(HandshakeError::WeakKey) } else { Ok(()) }
}

/// FIPS 203 encapsulation-key check: every 12-bit coefficient of the
/// encoded vector (all but the last 32 bytes) is below q = 3329.
pub fn kem_key_is_reduced(ek: &[u8]) -> bool {
    let Some(t) = ek.len().checked_sub(32).map(|n| &ek[..n]) else { return false };
    t.len() % 3 == 0
        && t.chunks_exact(3).all(|c| {
            let (b0, b1, b2) = (u16::from(c[0]), u16::from(c[1]), u16::from(c[2]));
            (b0 | (b1 & 0x0f) << 8) < 3329 && (b1 >> 4 | b2 << 4) < 3329
        })
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandshakeError::Noise => f.write_str("noise handshake message failed to verify"),
            HandshakeError::BadPayload => f.write_str("handshake payload malformed"),
            HandshakeError::IdentityMismatch => f.write_str("claimed identity key does not match the noise static key"),
            HandshakeError::WeakKey => f.write_str("ephemeral key of small order, or an unreduced ML-KEM key"),
        }
    }
}

/// Keys and identity of a finished handshake.
pub struct SessionKeys {
    pub send: Zeroizing<[u8; 32]>,
    pub recv: Zeroizing<[u8; 32]>,
    /// The proven Ed25519 key of the peer.
    pub remote_ed: [u8; 32],
    pub local_idx: u32,
    pub remote_idx: u32,
    pub initiator: bool,
}

/// A fresh Noise state for our side of the handshake; its ephemeral key
/// comes from a generator forked from `rng`.
fn noise_state(identity: &Identity, initiator: bool, rng: &mut NodeRng) -> Result<HandshakeState, HandshakeError> {
    let params = PARAMS.parse().map_err(|_| HandshakeError::Noise)?;
    let sk = identity.noise_static_secret();
    let resolver = Resolver(core::cell::RefCell::new(Some(rng.fork())));
    let b = Builder::with_resolver(params, Box::new(resolver))
        .local_private_key(&sk[..])
        .map_err(|_| HandshakeError::Noise)?
        .prologue(PROLOGUE)
        .map_err(|_| HandshakeError::Noise)?;
    let hs = if initiator { b.build_initiator() } else { b.build_responder() };
    hs.map_err(|_| HandshakeError::Noise)
}

/// Checks that the Noise remote static key is the X25519 form of `ed`.
fn check_binding(hs: &HandshakeState, ed: &[u8; 32]) -> Result<(), HandshakeError> {
    let remote = hs.get_remote_static().ok_or(HandshakeError::IdentityMismatch)?;
    let expected = noise_static_for(ed).ok_or(HandshakeError::IdentityMismatch)?;
    if ct_eq(remote, &expected) { Ok(()) } else { Err(HandshakeError::IdentityMismatch) }
}

fn derive(hs: &mut HandshakeState, kem_ss: &[u8], initiator: bool) -> (Zeroizing<[u8; 32]>, Zeroizing<[u8; 32]>) {
    let h = hs.get_handshake_hash().to_vec();
    let (k1, k2) = hs.dangerously_get_raw_split();
    let (k1, k2) = (Zeroizing::new(k1), Zeroizing::new(k2));
    let i2r = Zeroizing::new(kdf(b"mp-link\0", &k1[..], &[kem_ss, &h]));
    let r2i = Zeroizing::new(kdf(b"mp-link\0", &k2[..], &[kem_ss, &h]));
    if initiator { (i2r, r2i) } else { (r2i, i2r) }
}

/// The initiator between sending message 1 and receiving message 2.
pub struct Initiator {
    hs: HandshakeState,
    kem_dk: DecapsulationKey<MlKem768Params>,
    pub local_idx: u32,
}

impl Initiator {
    /// Starts a handshake; returns the state and the init datagram.
    pub fn start(
        identity: &Identity,
        rng: &mut NodeRng,
        local_idx: u32,
    ) -> Result<(Initiator, Vec<u8>), HandshakeError> {
        let mut hs = noise_state(identity, true, rng)?;
        let (kem_dk, kem_ek) = MlKem768::generate(rng);
        let mut msg = vec![0u8; MSG1_LEN + 64];
        let n = hs.write_message(kem_ek.as_bytes().as_slice(), &mut msg).map_err(|_| HandshakeError::Noise)?;
        msg.truncate(n);
        Ok((Initiator { hs, kem_dk, local_idx }, emit_init(local_idx, &msg)))
    }

    /// Consumes message 2; returns the session keys and the final datagram.
    pub fn finish(
        mut self,
        identity: &Identity,
        remote_idx: u32,
        msg2: &[u8],
    ) -> Result<(SessionKeys, Vec<u8>), HandshakeError> {
        if msg2.len() != MSG2_LEN {
            return Err(HandshakeError::BadPayload);
        }
        check_ephemeral(msg2)?;
        let mut payload = vec![0u8; MSG2_LEN];
        let n = self.hs.read_message(msg2, &mut payload).map_err(|_| HandshakeError::Noise)?;
        if n != KEM_CT_LEN + 32 {
            return Err(HandshakeError::BadPayload);
        }
        let mut ct = [0u8; KEM_CT_LEN];
        ct.copy_from_slice(&payload[..KEM_CT_LEN]);
        let mut remote_ed = [0u8; 32];
        remote_ed.copy_from_slice(&payload[KEM_CT_LEN..n]);
        check_binding(&self.hs, &remote_ed)?;
        let ss = self.kem_dk.decapsulate(&ct.into()).map_err(|_| HandshakeError::BadPayload)?;
        let ss = Zeroizing::new(ss.to_vec());
        let mut msg3 = vec![0u8; MSG3_LEN + 16];
        let n = self.hs.write_message(&identity.public_key(), &mut msg3).map_err(|_| HandshakeError::Noise)?;
        msg3.truncate(n);
        let (send, recv) = derive(&mut self.hs, &ss, true);
        let keys = SessionKeys { send, recv, remote_ed, local_idx: self.local_idx, remote_idx, initiator: true };
        Ok((keys, emit_final(remote_idx, &msg3)))
    }
}

/// The responder between sending message 2 and receiving message 3.
pub struct Responder {
    hs: HandshakeState,
    kem_ss: Zeroizing<Vec<u8>>,
    pub local_idx: u32,
    pub remote_idx: u32,
}

impl Responder {
    /// Consumes message 1; returns the state and the response datagram.
    pub fn respond(
        identity: &Identity,
        rng: &mut NodeRng,
        local_idx: u32,
        remote_idx: u32,
        msg1: &[u8],
    ) -> Result<(Responder, Vec<u8>), HandshakeError> {
        if msg1.len() != MSG1_LEN {
            return Err(HandshakeError::BadPayload);
        }
        check_ephemeral(msg1)?;
        let mut hs = noise_state(identity, false, rng)?;
        let mut payload = vec![0u8; MSG1_LEN];
        let n = hs.read_message(msg1, &mut payload).map_err(|_| HandshakeError::Noise)?;
        if n != KEM_EK_LEN {
            return Err(HandshakeError::BadPayload);
        }
        if !kem_key_is_reduced(&payload[..n]) {
            return Err(HandshakeError::WeakKey);
        }
        let mut ek_bytes = [0u8; KEM_EK_LEN];
        ek_bytes.copy_from_slice(&payload[..n]);
        let ek = EncapsulationKey::<MlKem768Params>::from_bytes(&ek_bytes.into());
        let (ct, ss) = ek.encapsulate(rng).map_err(|_| HandshakeError::BadPayload)?;
        let mut out_payload = Vec::with_capacity(KEM_CT_LEN + 32);
        out_payload.extend_from_slice(ct.as_slice());
        out_payload.extend_from_slice(&identity.public_key());
        let mut msg2 = vec![0u8; MSG2_LEN + 16];
        let n = hs.write_message(&out_payload, &mut msg2).map_err(|_| HandshakeError::Noise)?;
        msg2.truncate(n);
        let r = Responder { hs, kem_ss: Zeroizing::new(ss.to_vec()), local_idx, remote_idx };
        Ok((r, emit_resp(local_idx, remote_idx, &msg2)))
    }

    /// Consumes message 3 and returns the session keys.
    pub fn finish(mut self, msg3: &[u8]) -> Result<SessionKeys, HandshakeError> {
        if msg3.len() != MSG3_LEN {
            return Err(HandshakeError::BadPayload);
        }
        let mut payload = [0u8; MSG3_LEN];
        let n = self.hs.read_message(msg3, &mut payload).map_err(|_| HandshakeError::Noise)?;
        if n != 32 {
            return Err(HandshakeError::BadPayload);
        }
        let mut remote_ed = [0u8; 32];
        remote_ed.copy_from_slice(&payload[..32]);
        check_binding(&self.hs, &remote_ed)?;
        let (send, recv) = derive(&mut self.hs, &self.kem_ss, false);
        Ok(SessionKeys {
            send,
            recv,
            remote_ed,
            local_idx: self.local_idx,
            remote_idx: self.remote_idx,
            initiator: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::link::packet::{MAX_DATAGRAM, Packet};
    use rand_core::OsRng;
    #[allow(non_upper_case_globals)]
    fn rng() -> NodeRng {
        NodeRng::from_seed([5; 32])
    }

    fn noise(d: &[u8]) -> Vec<u8> {
        match Packet::parse(d).unwrap() {
            Packet::Init { noise, .. } | Packet::Resp { noise, .. } | Packet::Final { noise, .. } => noise.to_vec(),
            other => panic!("not a handshake datagram: {other:?}"),
        }
    }

    #[test]
    fn both_sides_agree_and_prove_identities() {
        let (a, b) = (Identity::generate(&mut OsRng), Identity::generate(&mut OsRng));
        let (init, d1) = Initiator::start(&a, &mut rng(), 1).unwrap();
        let (resp, d2) = Responder::respond(&b, &mut rng(), 2, 1, &noise(&d1)).unwrap();
        let (ka, d3) = init.finish(&a, 2, &noise(&d2)).unwrap();
        let kb = resp.finish(&noise(&d3)).unwrap();
        for d in [&d1, &d2, &d3] {
            assert!(d.len() <= MAX_DATAGRAM, "{}", d.len());
        }
        assert_eq!(ka.send[..], kb.recv[..]);
        assert_eq!(ka.recv[..], kb.send[..]);
        assert_ne!(ka.send[..], ka.recv[..]);
        assert_eq!(ka.remote_ed, b.public_key());
        assert_eq!(kb.remote_ed, a.public_key());
    }

    #[test]
    fn tampered_messages_fail() {
        let (a, b) = (Identity::generate(&mut OsRng), Identity::generate(&mut OsRng));
        // Tamper with the KEM key in message 1: the responder accepts it (it is
        // cleartext), but the transcripts differ, so message 2 fails at A.
        let (init, d1) = Initiator::start(&a, &mut rng(), 1).unwrap();
        let mut m1 = noise(&d1);
        m1[100] ^= 1;
        let (_, d2) = Responder::respond(&b, &mut rng(), 2, 1, &m1).unwrap();
        assert_eq!(init.finish(&a, 2, &noise(&d2)).err(), Some(HandshakeError::Noise));

        // Tamper with message 2 and with message 3.
        let (init, d1) = Initiator::start(&a, &mut rng(), 1).unwrap();
        let (_, d2) = Responder::respond(&b, &mut rng(), 2, 1, &noise(&d1)).unwrap();
        let mut m2 = noise(&d2);
        m2[500] ^= 1;
        assert_eq!(init.finish(&a, 2, &m2).err(), Some(HandshakeError::Noise));

        let (init, d1) = Initiator::start(&a, &mut rng(), 1).unwrap();
        let (resp, d2) = Responder::respond(&b, &mut rng(), 2, 1, &noise(&d1)).unwrap();
        let (_, d3) = init.finish(&a, 2, &noise(&d2)).unwrap();
        let mut m3 = noise(&d3);
        m3[60] ^= 1;
        assert_eq!(resp.finish(&m3).err(), Some(HandshakeError::Noise));
    }

    #[test]
    fn small_order_ephemerals_and_unreduced_kem_keys_are_refused_before_any_work() {
        let (a, b) = (Identity::generate(&mut OsRng), Identity::generate(&mut OsRng));
        let (_, d1) = Initiator::start(&a, &mut rng(), 1).unwrap();
        let mut m1 = noise(&d1);
        m1[..32].copy_from_slice(&[0; 32]);
        assert_eq!(Responder::respond(&b, &mut rng(), 2, 1, &m1).err(), Some(HandshakeError::WeakKey));
        // A coefficient of 4095 (>= q) in the ML-KEM key.
        let mut m1 = noise(&d1);
        m1[32] = 0xff;
        m1[33] |= 0x0f;
        assert_eq!(Responder::respond(&b, &mut rng(), 2, 1, &m1).err(), Some(HandshakeError::WeakKey));
        // Message 2 with a small-order ephemeral.
        let (init, d1) = Initiator::start(&a, &mut rng(), 1).unwrap();
        let (_, d2) = Responder::respond(&b, &mut rng(), 2, 1, &noise(&d1)).unwrap();
        let mut m2 = noise(&d2);
        m2[..32].copy_from_slice(&[0xff; 32]);
        m2[0] = 0xec; // p - 1 with the top bit set
        assert_eq!(init.finish(&a, 2, &m2).err(), Some(HandshakeError::WeakKey));
        // Real keys pass the check.
        let ek = a.kem_public();
        assert!(kem_key_is_reduced(ek.as_ref()));
    }

    #[test]
    fn a_peer_claiming_someone_elses_identity_is_refused() {
        // Mallory completes Noise with her own static key but claims Bob's
        // Ed25519 key in the payload: the binding check catches it.
        let (a, bob, mallory) =
            (Identity::generate(&mut OsRng), Identity::generate(&mut OsRng), Identity::generate(&mut OsRng));
        let (init, d1) = Initiator::start(&a, &mut rng(), 1).unwrap();
        let mut hs = noise_state(&mallory, false, &mut rng()).unwrap();
        let mut buf = vec![0u8; 4096];
        let n = hs.read_message(&noise(&d1), &mut buf).unwrap();
        let ek =
            EncapsulationKey::<MlKem768Params>::from_bytes(&<[u8; KEM_EK_LEN]>::try_from(&buf[..n]).unwrap().into());
        let (ct, _) = ek.encapsulate(&mut OsRng).unwrap();
        let mut payload = ct.to_vec();
        payload.extend_from_slice(&bob.public_key());
        let n = hs.write_message(&payload, &mut buf).unwrap();
        assert_eq!(init.finish(&a, 2, &buf[..n]).err(), Some(HandshakeError::IdentityMismatch));
    }

    #[test]
    fn wrong_sizes_are_bad_payloads() {
        let b = Identity::generate(&mut OsRng);
        assert_eq!(Responder::respond(&b, &mut rng(), 2, 1, &[0u8; 10]).err(), Some(HandshakeError::BadPayload));
        // Message 1 is unauthenticated by design (XX): any key of the right
        // size that is not of small order is answered, which is why the node
        // bounds pending responders and rate-limits message 1.
        assert_eq!(Responder::respond(&b, &mut rng(), 2, 1, &[0u8; MSG1_LEN]).err(), Some(HandshakeError::WeakKey));
        assert!(Responder::respond(&b, &mut rng(), 2, 1, &[9u8; MSG1_LEN]).is_ok());
    }
}
