//! Small cryptographic helpers shared by every module: the one KDF, hex, and
//! constant-time comparison.
//!
//! Everything here is a pure function. It deliberately holds no keys and no
//! randomness; callers pass both in.

use blake2::Blake2sMac256;
use blake2::digest::{FixedOutput, Mac};
use subtle::ConstantTimeEq;

/// Derives 32 bytes from `key` and `parts`, domain-separated by `label`.
///
/// This is keyed BLAKE2s-256 with the label as the BLAKE2 personalisation
/// string, over the concatenation of `parts`, each prefixed by its length as
/// a big-endian u32 so that no two part lists collide. An empty `key` means
/// 32 zero bytes: the blake2 crate's MAC always adds a key block, which RFC
/// 7693 omits for an empty key, so an empty key would not be portable. Keys
/// longer than 32 bytes are first hashed (the same construction, label
/// `mp-lkey`), so every input is accepted.
pub fn kdf(label: &[u8; 8], key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let hashed;
    let key = if key.len() > 32 {
        hashed = kdf(b"mp-lkey\0", &[], &[key]);
        &hashed[..]
    } else if key.is_empty() {
        &[0u8; 32][..]
    } else {
        key
    };
    // Invariant: key is at most 32 bytes, the salt is empty and the label is
    // 8 bytes, all within BLAKE2s limits, so construction cannot fail. The
    // fallback arm is therefore unreachable but keeps the function total.
    let Ok(mut mac) = Blake2sMac256::new_with_salt_and_personal(key, &[], label) else {
        return [0u8; 32];
    };
    for part in parts {
        mac.update(&(part.len() as u32).to_be_bytes());
        mac.update(part);
    }
    mac.finalize_fixed().into()
}

/// Constant-time equality for secrets and MACs.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// Lowercase hex encoding.
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// Decodes hex (either case) into exactly `N` bytes.
pub fn from_hex<const N: usize>(s: &str) -> Option<[u8; N]> {
    let s = s.as_bytes();
    if s.len() != N * 2 {
        return None;
    }
    let mut out = [0u8; N];
    for (i, pair) in s.chunks_exact(2).enumerate() {
        out[i] = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(out)
}

fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kdf_separates_labels_and_part_boundaries() {
        let a = kdf(b"mp-test\0", b"k", &[b"ab", b"c"]);
        let b = kdf(b"mp-test\0", b"k", &[b"a", b"bc"]);
        let c = kdf(b"mp-othr\0", b"k", &[b"ab", b"c"]);
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert_eq!(a, kdf(b"mp-test\0", b"k", &[b"ab", b"c"]));
        // Long keys are accepted and still matter.
        assert_ne!(kdf(b"mp-test\0", &[1; 40], &[]), kdf(b"mp-test\0", &[2; 40], &[]));
    }

    #[test]
    fn hex_round_trip_and_rejects() {
        let b = [0u8, 1, 0xab, 0xff];
        assert_eq!(to_hex(&b), "0001abff");
        assert_eq!(from_hex::<4>("0001ABff"), Some(b));
        assert_eq!(from_hex::<4>("0001abf"), None);
        assert_eq!(from_hex::<4>("0001abgg"), None);
    }
}
