//! ChaCha20-Poly1305 (RFC 8439) as plain functions over byte slices: seal
//! and open in place, seal onto the end of a vector, open into a new one.
//!
//! The cipher crates are generic: their code is compiled in the crate that
//! names the concrete cipher, at that crate's optimisation level. Named in
//! `meshpost-proto`, which is built for size, sealing a 450-byte datagram
//! took four times as long as at opt-level 3 (docs/performance.md, "The
//! link cipher built for speed"). Here, in a crate the release profile
//! builds at opt-level 3, the whole cipher is compiled for speed and the
//! callers stay small.
//!
//! It deliberately does nothing else: it chooses no nonces, keeps no keys,
//! zeroizes no plaintext (the callers wrap what they keep) and knows no
//! framing. Callers own all of that.

#![forbid(unsafe_code)]

use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce, Tag};

/// Bytes of the authentication tag.
pub const TAG_LEN: usize = 16;

/// Why a seal or an open failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// The plaintext is longer than the cipher allows (256 GiB).
    TooLong,
    /// The tag does not match: the wrong key, or the bytes were changed.
    Forged,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Error::TooLong => "plaintext too long for ChaCha20-Poly1305",
            Error::Forged => "authentication failed (wrong key, or altered)",
        })
    }
}

impl std::error::Error for Error {}

/// Encrypts `buf` in place and returns the tag over `aad` and the
/// ciphertext.
pub fn seal_in_place(key: &[u8; 32], nonce: &[u8; 12], aad: &[u8], buf: &mut [u8]) -> Result<[u8; TAG_LEN], Error> {
    ChaCha20Poly1305::new(Key::from_slice(key))
        .encrypt_in_place_detached(Nonce::from_slice(nonce), aad, buf)
        .map(Into::into)
        .map_err(|_| Error::TooLong)
}

/// Checks `tag` over `aad` and the ciphertext in `buf`, then decrypts
/// `buf` in place. On failure `buf` is left as it was.
pub fn open_in_place(
    key: &[u8; 32],
    nonce: &[u8; 12],
    aad: &[u8],
    buf: &mut [u8],
    tag: &[u8; TAG_LEN],
) -> Result<(), Error> {
    ChaCha20Poly1305::new(Key::from_slice(key))
        .decrypt_in_place_detached(Nonce::from_slice(nonce), aad, buf, Tag::from_slice(tag))
        .map_err(|_| Error::Forged)
}

/// Appends the encryption of `plain` and its tag to `out`.
pub fn seal_into(key: &[u8; 32], nonce: &[u8; 12], aad: &[u8], plain: &[u8], out: &mut Vec<u8>) -> Result<(), Error> {
    let start = out.len();
    out.reserve(plain.len() + TAG_LEN);
    out.extend_from_slice(plain);
    match seal_in_place(key, nonce, aad, &mut out[start..]) {
        Ok(tag) => {
            out.extend_from_slice(&tag);
            Ok(())
        }
        Err(e) => {
            out.truncate(start);
            Err(e)
        }
    }
}

/// Splits `sealed` (ciphertext then tag) and returns the plaintext.
pub fn open_to_vec(key: &[u8; 32], nonce: &[u8; 12], aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, Error> {
    let (body, tag) = sealed.split_last_chunk::<TAG_LEN>().ok_or(Error::Forged)?;
    let mut plain = body.to_vec();
    open_in_place(key, nonce, aad, &mut plain, tag)?;
    Ok(plain)
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 8439, section 2.8.2: the AEAD test vector.
    const KEY: [u8; 32] = [
        0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8a, 0x8b, 0x8c, 0x8d, 0x8e, 0x8f, 0x90, 0x91,
        0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9a, 0x9b, 0x9c, 0x9d, 0x9e, 0x9f,
    ];
    const NONCE: [u8; 12] = [0x07, 0x00, 0x00, 0x00, 0x40, 0x41, 0x42, 0x43, 0x44, 0x45, 0x46, 0x47];
    const AAD: [u8; 12] = [0x50, 0x51, 0x52, 0x53, 0xc0, 0xc1, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7];
    const PLAIN: &[u8] = b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.";
    const CT_HEAD: [u8; 16] =
        [0xd3, 0x1a, 0x8d, 0x34, 0x64, 0x8e, 0x60, 0xdb, 0x7b, 0x86, 0xaf, 0xbc, 0x53, 0xef, 0x7e, 0xc2];
    const TAG: [u8; 16] =
        [0x1a, 0xe1, 0x0b, 0x59, 0x4f, 0x09, 0xe2, 0x6a, 0x7e, 0x90, 0x2e, 0xcb, 0xd0, 0x60, 0x06, 0x91];

    #[test]
    fn the_rfc_8439_vector_seals_and_opens() {
        let mut buf = PLAIN.to_vec();
        let tag = seal_in_place(&KEY, &NONCE, &AAD, &mut buf).unwrap();
        assert_eq!(buf[..16], CT_HEAD);
        assert_eq!(tag, TAG);
        open_in_place(&KEY, &NONCE, &AAD, &mut buf, &tag).unwrap();
        assert_eq!(buf, PLAIN);

        let mut sealed = b"kept".to_vec();
        seal_into(&KEY, &NONCE, &AAD, PLAIN, &mut sealed).unwrap();
        assert_eq!(&sealed[..4], b"kept");
        assert_eq!(sealed[sealed.len() - 16..], TAG);
        assert_eq!(open_to_vec(&KEY, &NONCE, &AAD, &sealed[4..]).unwrap(), PLAIN);
    }

    #[test]
    fn an_altered_byte_or_a_short_input_is_refused_and_left_alone() {
        let mut buf = PLAIN.to_vec();
        let tag = seal_in_place(&KEY, &NONCE, &AAD, &mut buf).unwrap();
        let sealed = buf.clone();
        for i in [0, 57, buf.len() - 1] {
            buf[i] ^= 1;
            assert_eq!(open_in_place(&KEY, &NONCE, &AAD, &mut buf, &tag), Err(Error::Forged));
            buf[i] ^= 1;
            assert_eq!(buf, sealed, "a refused open changes nothing");
        }
        assert_eq!(open_in_place(&KEY, &NONCE, b"other", &mut buf, &tag), Err(Error::Forged));
        assert_eq!(open_to_vec(&KEY, &NONCE, &AAD, &[0; 15]), Err(Error::Forged));
    }
}
