//! The node's random number generator: a CSPRNG seeded by the caller.
//!
//! Every random draw of the node (handshake indexes, Noise ephemeral keys,
//! ML-KEM encapsulations, end-to-end and channel nonces) comes from here,
//! so a simulation or a fuzz run replays exactly from its seed. The daemon
//! seeds it from the operating system at start. It does not reseed itself
//! and reads no OS randomness.

use rand_chacha::ChaCha20Rng;
use rand_core::{CryptoRng, RngCore, SeedableRng};
use zeroize::Zeroize;

/// ChaCha20 keystream from a 32-byte seed.
pub struct NodeRng(ChaCha20Rng);

impl NodeRng {
    pub fn from_seed(mut seed: [u8; 32]) -> NodeRng {
        let rng = ChaCha20Rng::from_seed(seed);
        seed.zeroize();
        NodeRng(rng)
    }

    /// A new generator seeded from this one: for state that needs its own
    /// boxed generator (snow's handshake state).
    pub fn fork(&mut self) -> NodeRng {
        let mut seed = [0u8; 32];
        self.0.fill_bytes(&mut seed);
        NodeRng::from_seed(seed)
    }
}

impl RngCore for NodeRng {
    fn next_u32(&mut self) -> u32 {
        self.0.next_u32()
    }
    fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        self.0.fill_bytes(dest)
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.0.try_fill_bytes(dest)
    }
}

impl CryptoRng for NodeRng {}

/// snow draws its ephemeral keys through this trait.
impl snow::types::Random for NodeRng {
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), snow::Error> {
        self.0.fill_bytes(dest);
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
}
