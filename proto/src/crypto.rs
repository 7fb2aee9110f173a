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

/// True for an X25519 public key of small order (or a non-canonical
/// encoding of one): a Diffie-Hellman with it gives a fixed, public result,
/// so it is refused wherever a peer's key is used. The top bit is ignored,
/// as X25519 ignores it; the only non-canonical encodings of small-order
/// points are p and p + 1.
pub fn is_low_order(u: &[u8; 32]) -> bool {
    const LOW: [[u8; 32]; 7] = [
        [0; 32],
        {
            let mut one = [0; 32];
            one[0] = 1;
            one
        },
        [
            0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3, 0xfa, 0xf1, 0x9f, 0xc4, 0x6a, 0xda, 0x09,
            0x8d, 0xeb, 0x9c, 0x32, 0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16, 0x5f, 0x49, 0xb8, 0x00,
        ],
        [
            0x5f, 0x9c, 0x95, 0xbc, 0xa3, 0x50, 0x8c, 0x24, 0xb1, 0xd0, 0xb1, 0x55, 0x9c, 0x83, 0xef, 0x5b, 0x04, 0x44,
            0x5c, 0xc4, 0x58, 0x1c, 0x8e, 0x86, 0xd8, 0x22, 0x4e, 0xdd, 0xd0, 0x9f, 0x11, 0x57,
        ],
        // p - 1, p, p + 1
        {
            let mut v = [0xff; 32];
            v[0] = 0xec;
            v[31] = 0x7f;
            v
        },
        {
            let mut v = [0xff; 32];
            v[0] = 0xed;
            v[31] = 0x7f;
            v
        },
        {
            let mut v = [0xff; 32];
            v[0] = 0xee;
            v[31] = 0x7f;
            v
        },
    ];
    let mut k = *u;
    k[31] &= 0x7f;
    LOW.iter().fold(false, |acc, l| acc | ct_eq(&k, l))
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

/// Decodes hex (either case) of any even length, at most `max` bytes.
pub fn from_hex_bytes(s: &str, max: usize) -> Option<Vec<u8>> {
    let s = s.as_bytes();
    if !s.len().is_multiple_of(2) || s.len() / 2 > max {
        return None;
    }
    s.chunks_exact(2).map(|p| Some((nibble(p[0])? << 4) | nibble(p[1])?)).collect()
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
    fn hex_of_any_length_within_a_bound() {
        assert_eq!(from_hex_bytes("00ffAb", 3), Some(vec![0, 255, 0xab]));
        assert_eq!(from_hex_bytes("", 3), Some(vec![]));
        assert_eq!(from_hex_bytes("abc", 3), None, "odd length");
        assert_eq!(from_hex_bytes("zz", 3), None);
        assert_eq!(from_hex_bytes("é0", 3), None, "not ASCII");
        assert_eq!(from_hex_bytes("00000000", 3), None, "over the bound");
    }

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
