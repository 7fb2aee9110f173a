//! Encrypted broadcast channels.
//!
//! A channel is a name (local, for people) and a 256-bit key shared out of
//! band. From the key come:
//! - the **channel id** on the wire: the first 16 bytes of
//!   `KDF("mp-chid\0", key, [])`, so relays and outsiders learn nothing
//!   about the channel from it;
//! - the **message key**: `KDF("mp-chenc", key, [])`.
//!
//! A channel payload is `[12] random nonce || AEAD ciphertext` of the same
//! padded plaintext as direct messages ([`crate::e2e::pad`]), with the
//! origin's Ed25519 key and the channel id as associated data, so a member
//! cannot re-sign someone else's message as their own. Plaintexts are
//! padded to 256-byte buckets. The envelope signature still proves the
//! sender; the key only proves membership.

use core::fmt;

use rand_core::CryptoRngCore;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::crypto::{from_hex, kdf, to_hex};
use crate::e2e::{Opened, pad, unpad};

/// Largest channel message body; larger ones are refused at publish.
pub const MAX_CHANNEL_BODY: usize = 16 * 1024;
/// Prefix of the shareable key string.
pub const KEY_PREFIX: &str = "mpch1-";

/// A channel's secret key. Zeroized on drop; compared in constant time.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct ChannelKey([u8; 32]);

impl fmt::Debug for ChannelKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChannelKey(id {})", to_hex(&self.id()))
    }
}

impl PartialEq for ChannelKey {
    fn eq(&self, other: &Self) -> bool {
        crate::crypto::ct_eq(&self.0, &other.0)
    }
}

/// Why a channel payload was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelError {
    Truncated,
    /// Bad MAC: not this key, or tampered.
    Decrypt,
    BadPadding,
}

impl fmt::Display for ChannelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ChannelError::Truncated => "channel payload truncated",
            ChannelError::Decrypt => "channel message failed authentication (wrong key or tampered)",
            ChannelError::BadPadding => "channel plaintext framing is invalid",
        })
    }
}

impl ChannelKey {
    pub fn generate(rng: &mut impl CryptoRngCore) -> ChannelKey {
        let mut k = [0u8; 32];
        rng.fill_bytes(&mut k);
        ChannelKey(k)
    }

    pub fn from_bytes(k: [u8; 32]) -> ChannelKey {
        ChannelKey(k)
    }

    /// Parses the shareable form `mpch1-<64 hex digits>` (the prefix may be
    /// left out).
    pub fn parse(s: &str) -> Option<ChannelKey> {
        let s = s.trim();
        let hex = s.strip_prefix(KEY_PREFIX).unwrap_or(s);
        from_hex::<32>(hex).map(ChannelKey)
    }

    /// The shareable form of the key: give it only to members.
    pub fn to_share_string(&self) -> Zeroizing<String> {
        Zeroizing::new(format!("{KEY_PREFIX}{}", to_hex(&self.0)))
    }

    /// The channel id carried on the wire.
    pub fn id(&self) -> [u8; 16] {
        let h = kdf(b"mp-chid\0", &self.0, &[]);
        let mut id = [0u8; 16];
        id.copy_from_slice(&h[..16]);
        id
    }

    fn message_key(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(kdf(b"mp-chenc", &self.0, &[]))
    }

    /// Encrypts a channel message from `origin`.
    pub fn seal(&self, rng: &mut impl CryptoRngCore, origin: &[u8; 32], content_type: u8, body: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; 12];
        rng.fill_bytes(&mut nonce);
        let plain = pad(content_type, body);
        let key = self.message_key();
        let aad = aad(origin, &self.id());
        let mut out = Vec::with_capacity(12 + plain.len() + 16);
        out.extend_from_slice(&nonce);
        // Encryption fails only beyond 256 GiB; bodies here are < 64 KiB.
        let _ = meshpost_aead::seal_into(&key, &nonce, &aad, &plain, &mut out);
        out
    }

    /// Decrypts a channel payload sent by `origin`.
    pub fn open(&self, origin: &[u8; 32], payload: &[u8]) -> Result<Opened, ChannelError> {
        if payload.len() < 12 + 16 {
            return Err(ChannelError::Truncated);
        }
        let (nonce, ct) = payload.split_first_chunk::<12>().ok_or(ChannelError::Truncated)?;
        let key = self.message_key();
        let aad = aad(origin, &self.id());
        let plain =
            Zeroizing::new(meshpost_aead::open_to_vec(&key, nonce, &aad, ct).map_err(|_| ChannelError::Decrypt)?);
        unpad(&plain).map_err(|_| ChannelError::BadPadding)
    }
}

fn aad(origin: &[u8; 32], id: &[u8; 16]) -> [u8; 48] {
    let mut a = [0u8; 48];
    a[..32].copy_from_slice(origin);
    a[32..].copy_from_slice(id);
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::e2e::padded_len;
    use rand_core::OsRng;

    #[test]
    fn key_derivation_vectors() {
        // Fixed vectors, so a second implementation can check itself.
        let k = ChannelKey::from_bytes([0x42; 32]);
        assert_eq!(to_hex(&k.id()), to_hex(&kdf(b"mp-chid\0", &[0x42; 32], &[])[..16]));
        // Computed independently with Python's hashlib.blake2s from the
        // definition in docs/protocol.md.
        assert_eq!(to_hex(&k.id()), "1ef4a2acf69a10f13359b5498ab43f8a");
        assert_eq!(to_hex(&k.message_key()[..]), "39e4512b7256ebea102964e2a1ab56b0ae553cab2a6792ab03d82c694e0b16fb");
        assert_ne!(k.id(), ChannelKey::from_bytes([0x43; 32]).id());
    }

    #[test]
    fn share_string_round_trips() {
        let k = ChannelKey::generate(&mut OsRng);
        let s = k.to_share_string();
        assert!(s.starts_with(KEY_PREFIX));
        assert_eq!(ChannelKey::parse(&s), Some(k.clone()));
        assert_eq!(ChannelKey::parse(&s[KEY_PREFIX.len()..]), Some(k));
        assert_eq!(ChannelKey::parse("mpch1-zz"), None);
    }

    #[test]
    fn round_trip_and_padding_buckets() {
        let k = ChannelKey::generate(&mut OsRng);
        let a = k.seal(&mut OsRng, &[1; 32], 1, b"x");
        let b = k.seal(&mut OsRng, &[1; 32], 1, &[b'y'; 100]);
        let c = k.seal(&mut OsRng, &[1; 32], 1, &[b'z'; 300]);
        assert_eq!(a.len(), b.len(), "short messages have one size");
        assert_eq!(a.len() - 12 - 16, padded_len(5 + 1));
        assert_eq!(c.len() - 12 - 16, padded_len(5 + 300));
        assert_eq!(c.len(), a.len() + 320 - 128);
        assert_eq!(k.open(&[1; 32], &a).unwrap().body, b"x");
    }

    #[test]
    fn tampering_wrong_key_and_wrong_origin_fail() {
        let k = ChannelKey::generate(&mut OsRng);
        let ct = k.seal(&mut OsRng, &[1; 32], 1, b"secret");
        let mut t = ct.clone();
        t[20] ^= 1;
        assert_eq!(k.open(&[1; 32], &t), Err(ChannelError::Decrypt));
        let other = ChannelKey::generate(&mut OsRng);
        assert_eq!(other.open(&[1; 32], &ct), Err(ChannelError::Decrypt));
        assert_eq!(k.open(&[2; 32], &ct), Err(ChannelError::Decrypt), "re-signed by someone else");
        assert_eq!(k.open(&[1; 32], &ct[..20]), Err(ChannelError::Truncated));
    }
}
