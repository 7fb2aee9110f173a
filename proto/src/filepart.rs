//! File parts: a file for one recipient travels as direct messages of
//! content type [`CONTENT_FILE`], one per [`PART_LEN`] bytes of the file,
//! each carrying what the recipient needs to place it, so parts may arrive
//! in any order, twice, or through different relays.
//!
//! Body layout (inside the end-to-end encrypted plaintext, see e2e.rs):
//! `[16] file id`, `u32 size`, `u16 index`, `u16 count`,
//! `[32] BLAKE2s-256 of the whole file`, `u8 name length`, name (UTF-8),
//! `u8 type length`, media type (ASCII), then the part's bytes.
//!
//! The split is fixed by the protocol: `count` is `size / PART_LEN`
//! rounded up (1 for an empty file), every part but the last holds exactly
//! `PART_LEN` bytes and the last holds the rest. A part that disagrees is
//! refused by [`decode`], so a truncated part never reaches an inbox.
//!
//! It does not store, reassemble or hash-check whole files (the daemon's
//! inbox does that when the last part arrives) and does not compress.

use core::fmt;

use blake2::{Blake2s256, Digest};

use crate::wire::{Put, Reader};

/// Content type of a file part.
pub const CONTENT_FILE: u8 = 2;
/// File bytes per part (the last part may hold fewer).
pub const PART_LEN: usize = 32 * 1024;
/// Largest file the protocol carries.
pub const MAX_FILE_LEN: usize = 16 << 20;
/// Longest file name, in bytes.
pub const MAX_NAME: usize = 255;
/// Longest media type, in bytes.
pub const MAX_TYPE: usize = 127;
/// Bytes a part adds around its data, at most.
pub const OVERHEAD: usize = 16 + 4 + 2 + 2 + 32 + 1 + MAX_NAME + 1 + MAX_TYPE;

/// What every part of one file says about the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileMeta {
    /// Chosen by the sender; with the sender's id it names the file.
    pub file_id: [u8; 16],
    pub size: u32,
    pub count: u16,
    /// BLAKE2s-256 of the whole file.
    pub hash: [u8; 32],
    pub name: String,
    /// A media type such as `image/png`, or empty when unknown.
    pub media_type: String,
}

/// One decoded part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilePart {
    pub meta: FileMeta,
    pub index: u16,
    pub data: Vec<u8>,
}

/// Why a part (or a file to be split) was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FilePartError {
    Truncated(&'static str),
    /// Larger than [`MAX_FILE_LEN`].
    TooLarge(usize),
    /// `count` is not what `size` implies, or `index` is not below it.
    BadIndex {
        index: u16,
        count: u16,
    },
    /// The part's length is not what its index and the size imply.
    BadLength {
        index: u16,
        len: usize,
        expected: usize,
    },
    BadName(&'static str),
    BadType,
}

impl fmt::Display for FilePartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FilePartError::Truncated(field) => write!(f, "file part truncated at {field}"),
            FilePartError::TooLarge(n) => write!(f, "file of {n} bytes is larger than the maximum of {MAX_FILE_LEN}"),
            FilePartError::BadIndex { index, count } => write!(f, "file part {index} of {count} does not fit the size"),
            FilePartError::BadLength { index, len, expected } => {
                write!(f, "file part {index} holds {len} bytes, expected {expected}")
            }
            FilePartError::BadName(why) => write!(f, "file name {why}"),
            FilePartError::BadType => f.write_str("media type is not of the form type/subtype"),
        }
    }
}

/// Parts a file of `size` bytes is split into.
pub fn part_count(size: usize) -> usize {
    size.div_ceil(PART_LEN).max(1)
}

/// Bytes part `index` of a file of `size` bytes holds.
pub fn part_len(size: usize, index: usize) -> usize {
    size.saturating_sub(index * PART_LEN).min(PART_LEN)
}

/// BLAKE2s-256 of a whole file, as parts carry it.
pub fn file_hash(data: &[u8]) -> [u8; 32] {
    Blake2s256::digest(data).into()
}

/// BLAKE2s-256 over a file fed in pieces (its parts, in order).
#[derive(Default)]
pub struct Hasher(Blake2s256);

impl Hasher {
    pub fn new() -> Hasher {
        Hasher::default()
    }

    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    pub fn finish(self) -> [u8; 32] {
        self.0.finalize().into()
    }
}

/// Checks a file name: 1 to [`MAX_NAME`] bytes, no path separator, no
/// control character, not `.` or `..`, so it can name a file anywhere.
pub fn check_name(name: &str) -> Result<(), FilePartError> {
    if name.is_empty() || name.len() > MAX_NAME {
        return Err(FilePartError::BadName("must be 1 to 255 bytes"));
    }
    if name == "." || name == ".." {
        return Err(FilePartError::BadName("must not be . or .."));
    }
    if name.chars().any(|c| c == '/' || c == '\\' || c.is_control()) {
        return Err(FilePartError::BadName("must not contain / \\ or control characters"));
    }
    // Bidirectional and invisible formatting characters would let a name
    // look like another one on a terminal ("photo\u{202e}gpj.exe").
    if name
        .chars()
        .any(|c| matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2069}' | '\u{feff}'))
    {
        return Err(FilePartError::BadName("must not contain invisible or bidirectional formatting characters"));
    }
    Ok(())
}

/// Checks a media type: empty, or `type/subtype` of RFC 6838's restricted
/// name characters, at most [`MAX_TYPE`] bytes.
pub fn check_type(t: &str) -> Result<(), FilePartError> {
    if t.is_empty() {
        return Ok(());
    }
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
            && s.as_bytes()[0].is_ascii_alphanumeric()
    };
    match t.split_once('/') {
        Some((a, b)) if t.len() <= MAX_TYPE && token(a) && token(b) => Ok(()),
        _ => Err(FilePartError::BadType),
    }
}

/// Splits a file into part bodies, in order.
pub fn split(file_id: [u8; 16], name: &str, media_type: &str, data: &[u8]) -> Result<Vec<Vec<u8>>, FilePartError> {
    if data.len() > MAX_FILE_LEN {
        return Err(FilePartError::TooLarge(data.len()));
    }
    check_name(name)?;
    check_type(media_type)?;
    let meta = FileMeta {
        file_id,
        // Fits: data.len() <= MAX_FILE_LEN (16 MiB), so count <= 512.
        size: data.len() as u32,
        count: part_count(data.len()) as u16,
        hash: file_hash(data),
        name: name.to_string(),
        media_type: media_type.to_string(),
    };
    Ok((0..meta.count as usize)
        .map(|index| {
            let start = index * PART_LEN;
            encode(&meta, index as u16, &data[start..start + part_len(data.len(), index)])
        })
        .collect())
}

/// Encodes one part body (no checks: [`split`] makes only valid ones).
pub fn encode(meta: &FileMeta, index: u16, data: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(OVERHEAD + data.len());
    b.extend_from_slice(&meta.file_id);
    b.put_u32(meta.size);
    b.put_u16(index);
    b.put_u16(meta.count);
    b.extend_from_slice(&meta.hash);
    // Both lengths were checked to fit a byte (check_name, check_type).
    b.put_u8(meta.name.len() as u8);
    b.extend_from_slice(meta.name.as_bytes());
    b.put_u8(meta.media_type.len() as u8);
    b.extend_from_slice(meta.media_type.as_bytes());
    b.extend_from_slice(data);
    b
}

/// Decodes and checks one part body.
pub fn decode(body: &[u8]) -> Result<FilePart, FilePartError> {
    let t = |e: crate::wire::Truncated| FilePartError::Truncated(e.0);
    let mut r = Reader::new(body);
    let file_id = r.array::<16>("file id").map_err(t)?;
    let size = r.u32("size").map_err(t)?;
    let index = r.u16("index").map_err(t)?;
    let count = r.u16("count").map_err(t)?;
    let hash = r.array::<32>("hash").map_err(t)?;
    let n = r.u8("name length").map_err(t)? as usize;
    let name = r.bytes(n, "name").map_err(t)?;
    let n = r.u8("type length").map_err(t)? as usize;
    let media_type = r.bytes(n, "media type").map_err(t)?;
    let data = r.rest();
    let size_us = size as usize;
    if size_us > MAX_FILE_LEN {
        return Err(FilePartError::TooLarge(size_us));
    }
    if count as usize != part_count(size_us) || index >= count {
        return Err(FilePartError::BadIndex { index, count });
    }
    let expected = part_len(size_us, index as usize);
    if data.len() != expected {
        return Err(FilePartError::BadLength { index, len: data.len(), expected });
    }
    let name = core::str::from_utf8(name).map_err(|_| FilePartError::BadName("is not UTF-8"))?;
    check_name(name)?;
    let media_type = core::str::from_utf8(media_type).map_err(|_| FilePartError::BadType)?;
    check_type(media_type)?;
    Ok(FilePart {
        meta: FileMeta { file_id, size, count, hash, name: name.to_string(), media_type: media_type.to_string() },
        index,
        data: data.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_split_file_decodes_back_in_any_order() {
        let data: Vec<u8> = (0..(3 * PART_LEN + 5)).map(|i| (i * 7 % 251) as u8).collect();
        let parts = split([9; 16], "photo.jpg", "image/jpeg", &data).unwrap();
        assert_eq!(parts.len(), 4);
        let mut back = vec![Vec::new(); 4];
        for p in parts.iter().rev() {
            let d = decode(p).unwrap();
            assert_eq!((d.meta.size as usize, d.meta.count, &d.meta.name[..]), (data.len(), 4, "photo.jpg"));
            assert_eq!(d.meta.hash, file_hash(&data));
            back[d.index as usize] = d.data;
        }
        assert_eq!(back.concat(), data);
        let empty = split([1; 16], "e", "", b"").unwrap();
        assert_eq!(decode(&empty[0]).unwrap().meta.count, 1);
    }

    #[test]
    fn truncated_padded_or_misplaced_parts_are_refused() {
        let data = vec![5u8; PART_LEN + 10];
        let parts = split([9; 16], "a.bin", "", &data).unwrap();
        let first = &parts[0];
        assert!(matches!(decode(&first[..first.len() - 1]), Err(FilePartError::BadLength { .. })));
        let mut longer = parts[1].clone();
        longer.push(0);
        assert!(matches!(decode(&longer), Err(FilePartError::BadLength { .. })));
        let mut count = parts[1].clone();
        count[23] = 3; // count 2 -> 3
        assert!(matches!(decode(&count), Err(FilePartError::BadIndex { .. })));
        let mut index = parts[1].clone();
        index[21] = 2; // index 1 -> 2 of 2
        assert!(matches!(decode(&index), Err(FilePartError::BadIndex { .. })));
        for n in 0..60 {
            assert!(decode(&first[..n]).is_err());
        }
    }

    #[test]
    fn names_and_types_that_could_escape_or_confuse_are_refused() {
        for bad in
            ["", ".", "..", "../etc/passwd", "a/b", "a\\b", "a\nb", "tab\there", "photo\u{202e}gpj.exe", "a\u{200b}b"]
        {
            assert!(split([0; 16], bad, "", b"x").is_err(), "{bad:?}");
        }
        assert!(split([0; 16], &"x".repeat(256), "", b"x").is_err());
        assert!(split([0; 16], "grüße.txt", "text/plain", b"x").is_ok());
        for bad in ["text", "/plain", "text/", "text/pl ain", "a/b/c"] {
            assert_eq!(check_type(bad), Err(FilePartError::BadType), "{bad:?}");
        }
        assert!(check_type("application/vnd.oasis.opendocument.text").is_ok());
        assert!(split([0; 16], "big", "", &vec![0; MAX_FILE_LEN + 1]).is_err());
    }
}
