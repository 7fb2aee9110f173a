//! The node's random number generator: a CSPRNG seeded by the caller.
//!
//! Every random draw of the node (handshake indexes, Noise ephemeral keys,
//! ML-KEM encapsulations, end-to-end and channel nonces) comes from here,
//! so a simulation or a fuzz run replays exactly from its seed. The daemon
//! seeds it from the operating system at start. It does not read OS
//! randomness.
//!
//! The generator is the ChaCha20 keystream (the `chacha20` crate, already
//! linked for ChaCha20-Poly1305) under the seed as key. The IETF variant's
//! 32-bit block counter ends after 256 GiB; should a node ever get there,
//! it re-keys from its own output instead of failing.

use chacha20::ChaCha20;
use chacha20::cipher::{KeyIvInit, StreamCipher};
use rand_core::{CryptoRng, RngCore};
use zeroize::{Zeroize, Zeroizing};

use crate::crypto::kdf;

/// ChaCha20 keystream from a 32-byte seed.
pub struct NodeRng {
    cipher: ChaCha20,
    key: Zeroizing<[u8; 32]>,
}

fn cipher(key: &[u8; 32]) -> ChaCha20 {
    ChaCha20::new(key.into(), &[0u8; 12].into())
}

impl NodeRng {
    pub fn from_seed(mut seed: [u8; 32]) -> NodeRng {
        let rng = NodeRng { cipher: cipher(&seed), key: Zeroizing::new(seed) };
        seed.zeroize();
        rng
    }

    /// A new generator seeded from this one: for state that needs its own
    /// boxed generator (snow's handshake state).
    pub fn fork(&mut self) -> NodeRng {
        let mut seed = [0u8; 32];
        self.fill_bytes(&mut seed);
        NodeRng::from_seed(seed)
    }

    /// The keystream is used up: continue under a key derived from this one.
    fn rekey(&mut self) {
        let next = Zeroizing::new(kdf(b"mp-rng\0\0", &self.key[..], &[b"rekey"]));
        self.cipher = cipher(&next);
        self.key = next;
    }
}

impl RngCore for NodeRng {
    fn next_u32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        self.fill_bytes(&mut b);
        u32::from_le_bytes(b)
    }
    fn next_u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        self.fill_bytes(&mut b);
        u64::from_le_bytes(b)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        dest.fill(0);
        if self.cipher.try_apply_keystream(dest).is_err() {
            self.rekey();
            dest.fill(0);
            // A fresh key has the whole keystream ahead: this cannot fail
            // for any request smaller than 256 GiB.
            let _ = self.cipher.try_apply_keystream(dest);
        }
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl CryptoRng for NodeRng {}

/// snow draws its ephemeral keys through this trait.
impl snow::types::Random for NodeRng {
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), snow::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream_and_forks_differ() {
        let (mut a, mut b) = (NodeRng::from_seed([7; 32]), NodeRng::from_seed([7; 32]));
        assert_eq!(a.next_u64(), b.next_u64());
        let (mut fa, mut fb) = (a.fork(), b.fork());
        assert_eq!(fa.next_u64(), fb.next_u64());
        assert_ne!(a.next_u64(), fa.next_u64());
    }

    #[test]
    fn an_exhausted_keystream_rekeys_instead_of_failing() {
        use chacha20::cipher::StreamCipherSeek;
        let mut r = NodeRng::from_seed([9; 32]);
        // 16 bytes before the end of the 32-bit block counter's range.
        r.cipher.seek((1u64 << 32) * 64 - 16);
        let mut out = [0u8; 64];
        r.fill_bytes(&mut out);
        assert_ne!(out, [0u8; 64], "fresh output after the re-key");
        let mut more = [0u8; 64];
        r.fill_bytes(&mut more);
        assert_ne!(out, more);
    }
}
