//! snow's primitives for the one Noise suite the handshake speaks
//! (`Noise_XX_25519_ChaChaPoly_BLAKE2s`): randomness from the node's seeded
//! generator instead of the operating system's, BLAKE2s from the `blake2`
//! crate, X25519 and ChaCha20-Poly1305 from snow's own resolver.
//!
//! It deliberately offers no other hash: snow's resolver would also link
//! BLAKE2b, 27 KB of flash on mipsel that the suite never uses
//! (docs/size.md). A test checks this BLAKE2s against snow's, HMAC and
//! HKDF included.

use blake2::{Blake2s256, Digest};
use snow::params::{CipherChoice, DHChoice, HashChoice};
use snow::resolvers::{CryptoResolver, DefaultResolver};
use snow::types::{Cipher, Dh, Hash, Random};

use crate::rng::NodeRng;

/// The resolver a handshake is built with; its generator is handed out once.
pub(super) struct Resolver(pub(super) core::cell::RefCell<Option<NodeRng>>);

impl CryptoResolver for Resolver {
    fn resolve_rng(&self) -> Option<Box<dyn Random>> {
        self.0.borrow_mut().take().map(|r| Box::new(r) as Box<dyn Random>)
    }
    fn resolve_dh(&self, choice: &DHChoice) -> Option<Box<dyn Dh>> {
        DefaultResolver.resolve_dh(choice)
    }
    fn resolve_hash(&self, choice: &HashChoice) -> Option<Box<dyn Hash>> {
        match choice {
            HashChoice::Blake2s => Some(Box::new(NoiseBlake2s(Blake2s256::new()))),
            _ => None,
        }
    }
    fn resolve_cipher(&self, choice: &CipherChoice) -> Option<Box<dyn Cipher>> {
        DefaultResolver.resolve_cipher(choice)
    }
}

/// BLAKE2s-256 as Noise uses it (block 64 bytes, hash 32); HMAC and HKDF
/// are snow's, built on these methods.
struct NoiseBlake2s(Blake2s256);

impl Hash for NoiseBlake2s {
    fn name(&self) -> &'static str {
        "BLAKE2s"
    }
    fn block_len(&self) -> usize {
        64
    }
    fn hash_len(&self) -> usize {
        32
    }
    fn reset(&mut self) {
        Digest::reset(&mut self.0);
    }
    fn input(&mut self, data: &[u8]) {
        Digest::update(&mut self.0, data);
    }
    fn result(&mut self, out: &mut [u8]) {
        let h = self.0.finalize_reset();
        // snow passes buffers of its largest hash length (64); a shorter
        // one gets a prefix rather than a panic.
        let n = out.len().min(h.len());
        out[..n].copy_from_slice(&h[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blake2s_hmac_and_hkdf_agree_with_snow() {
        let ours = Resolver(core::cell::RefCell::new(None));
        let mut a = ours.resolve_hash(&HashChoice::Blake2s).unwrap();
        let mut b = DefaultResolver.resolve_hash(&HashChoice::Blake2s).unwrap();
        assert_eq!((a.name(), a.block_len(), a.hash_len()), (b.name(), b.block_len(), b.hash_len()));
        for len in [0usize, 1, 63, 64, 65, 200, 1000] {
            let data: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
            let (mut x, mut y) = ([0u8; 64], [0u8; 64]);
            a.reset();
            a.input(&data);
            a.result(&mut x);
            b.reset();
            b.input(&data);
            b.result(&mut y);
            assert_eq!(x, y, "hash of {len} bytes");
            a.hmac(&data[..len.min(64)], &data, &mut x);
            b.hmac(&data[..len.min(64)], &data, &mut y);
            assert_eq!(x, y, "hmac over {len} bytes");
            let (mut x1, mut x2, mut x3) = ([0u8; 64], [0u8; 64], [0u8; 64]);
            let (mut y1, mut y2, mut y3) = ([0u8; 64], [0u8; 64], [0u8; 64]);
            a.hkdf(&x[..32], &data, 3, &mut x1, &mut x2, &mut x3);
            b.hkdf(&x[..32], &data, 3, &mut y1, &mut y2, &mut y3);
            assert_eq!((x1, x2, x3), (y1, y2, y3), "hkdf over {len} bytes");
        }
        assert!(ours.resolve_hash(&HashChoice::Blake2b).is_none());
        assert!(ours.resolve_hash(&HashChoice::SHA256).is_none());
    }
}
