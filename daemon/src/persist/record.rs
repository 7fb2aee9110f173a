//! One record of the state log (segments.rs): its bytes on disk and the
//! pure decoder that reads them back.
//!
//! ```text
//! 0..4    payload length, u32 little-endian
//! 4       kind: table (low 6 bits) | 0x80 for a deletion
//! 5..21   key (an envelope id)
//! 21..29  check: BLAKE2s-256 over bytes 0..21 and the payload, first 8 bytes
//! 29..    payload (empty for a deletion)
//! ```
//! A stored envelope filed under its own envelope id (always, since
//! 2026-12-07) leaves the key out, since the payload holds it: kind
//! `1 | 0x40`, bytes 5..13 the check over bytes 0..5 and the payload, the
//! payload from byte 13; the reader computes the key
//! (`Envelope::peek_id`), 16 bytes less per stored message.
//! The check finds torn writes and flipped bits; it is not a MAC (whoever
//! can write the state directory can forge anything in it).
//!
//! It does not decide what a record means, nor where it lives on disk;
//! it knows only where an envelope keeps its id.

use blake2::{Blake2s256, Digest};
use std::fmt;

/// Bytes before the payload.
pub const HEADER: usize = 29;
/// Bytes before the payload of an envelope record without its key.
pub const HEADER_OWN_KEY: usize = 13;
/// Largest payload: an inbox entry (header and a 64 KiB body) fits.
pub const MAX_PAYLOAD: usize = 128 * 1024;

/// What a record belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Table {
    /// A stored envelope; payload = its wire bytes.
    Envelope = 1,
    /// A delivered message in the inbox; payload = inbox.rs's encoding.
    Inbox = 2,
    /// A delivered id that outlives its inbox entry; payload = expiry
    /// (unix seconds, u64 LE) and origin (16 bytes).
    Delivered = 3,
    /// The start of an end-to-end session this node sealed messages in;
    /// key = session id (8 bytes, then zeros); payload = recipient node
    /// id (16 bytes) and the start (`eph || kem ct`, public bytes).
    Start = 4,
}

impl Table {
    /// For file names and messages.
    pub fn name(self) -> &'static str {
        match self {
            Table::Envelope => "envelope",
            Table::Inbox => "inbox",
            Table::Delivered => "delivered",
            Table::Start => "start",
        }
    }

    fn from_byte(b: u8) -> Option<Table> {
        match b {
            1 => Some(Table::Envelope),
            2 => Some(Table::Inbox),
            3 => Some(Table::Delivered),
            4 => Some(Table::Start),
            _ => None,
        }
    }
}

const DELETE: u8 = 0x80;
/// The key is the payload's own envelope id and is not written.
const OWN_KEY: u8 = 0x40;

/// The bytes before the payload of a record whose kind byte is `kind`.
pub fn header_len(kind: u8) -> usize {
    if kind & OWN_KEY != 0 { HEADER_OWN_KEY } else { HEADER }
}

/// The key an envelope record's payload files itself under: its envelope
/// id. Bytes that are no envelope (only a damaged or forged record has
/// them) get a hash of themselves, so they are still indexed, read, and
/// set aside by the daemon instead of ending the segment.
fn own_key(payload: &[u8]) -> [u8; 16] {
    match meshpost_proto::envelope::Envelope::peek_id(payload) {
        Ok((id, _)) => id.0,
        Err(_) => {
            let d = Blake2s256::digest(payload);
            let mut k = [0u8; 16];
            k.copy_from_slice(&d[..16]);
            k
        }
    }
}

/// A decoded record, borrowing its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    pub table: Table,
    pub key: [u8; 16],
    /// `None` for a deletion.
    pub payload: Option<&'a [u8]>,
}

/// Why bytes are not a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordError {
    /// Fewer bytes than the record needs: the end of a write that did
    /// not finish (or nothing more).
    Short { have: usize, need: usize },
    /// The length field is beyond any record this version writes.
    TooLong(usize),
    /// An unknown table or a deletion with a payload.
    BadKind(u8),
    /// The check does not match: a torn or damaged record.
    BadCheck,
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordError::Short { have, need } => write!(f, "record cut short ({have} of {need} bytes)"),
            RecordError::TooLong(n) => write!(f, "record length {n} above the limit of {MAX_PAYLOAD}"),
            RecordError::BadKind(k) => write!(f, "unknown record kind {k:#04x}"),
            RecordError::BadCheck => write!(f, "record check does not match (damaged or torn)"),
        }
    }
}

impl std::error::Error for RecordError {}

fn check(head: &[u8], payload: &[u8]) -> [u8; 8] {
    let mut h = Blake2s256::new();
    h.update(head);
    h.update(payload);
    let d = h.finalize();
    let mut c = [0u8; 8];
    c.copy_from_slice(&d[..8]);
    c
}

/// Appends one record to `out`; an envelope filed under its own id goes
/// without its key. A payload above [`MAX_PAYLOAD`] is the caller's bug;
/// it is refused, not truncated.
pub fn encode(out: &mut Vec<u8>, table: Table, key: &[u8; 16], payload: Option<&[u8]>) -> Result<usize, RecordError> {
    let body = payload.unwrap_or(&[]);
    if body.len() > MAX_PAYLOAD {
        return Err(RecordError::TooLong(body.len()));
    }
    let start = out.len();
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    if table == Table::Envelope
        && let Some(p) = payload
        && meshpost_proto::envelope::Envelope::peek_id(p).is_ok_and(|(id, _)| id.0 == *key)
    {
        out.push(table as u8 | OWN_KEY);
        let c = check(&out[start..start + 5], body);
        out.extend_from_slice(&c);
        out.extend_from_slice(body);
        return Ok(out.len() - start);
    }
    out.push(table as u8 | if payload.is_none() { DELETE } else { 0 });
    out.extend_from_slice(key);
    let c = check(&out[start..start + 21], body);
    out.extend_from_slice(&c);
    out.extend_from_slice(body);
    Ok(out.len() - start)
}

/// Decodes the record at the start of `bytes`; returns it and its length.
pub fn decode(bytes: &[u8]) -> Result<(Record<'_>, usize), RecordError> {
    if bytes.len() < HEADER_OWN_KEY {
        return Err(RecordError::Short { have: bytes.len(), need: HEADER_OWN_KEY });
    }
    let len = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
    if len > MAX_PAYLOAD {
        return Err(RecordError::TooLong(len));
    }
    let kind = bytes[4];
    let table = Table::from_byte(kind & !(DELETE | OWN_KEY)).ok_or(RecordError::BadKind(kind))?;
    let deletion = kind & DELETE != 0;
    let own_key_form = kind & OWN_KEY != 0;
    if (deletion && len != 0) || (own_key_form && (deletion || table != Table::Envelope)) {
        return Err(RecordError::BadKind(kind));
    }
    let head = header_len(kind);
    let total = head + len;
    if bytes.len() < total {
        return Err(RecordError::Short { have: bytes.len(), need: total });
    }
    let payload = &bytes[head..total];
    if check(&bytes[..head - 8], payload) != bytes[head - 8..head] {
        return Err(RecordError::BadCheck);
    }
    let key = if own_key_form {
        own_key(payload)
    } else {
        let mut key = [0u8; 16];
        key.copy_from_slice(&bytes[5..21]);
        key
    };
    Ok((Record { table, key, payload: if deletion { None } else { Some(payload) } }, total))
}

/// The payload of a [`Table::Delivered`] record.
pub fn delivered_payload(expires: u64, origin: &[u8; 16]) -> [u8; 24] {
    let mut p = [0u8; 24];
    p[..8].copy_from_slice(&expires.to_le_bytes());
    p[8..].copy_from_slice(origin);
    p
}

/// Reads a [`Table::Delivered`] payload back: (expires, origin).
pub fn parse_delivered(p: &[u8]) -> Option<(u64, [u8; 16])> {
    if p.len() != 24 {
        return None;
    }
    let mut e = [0u8; 8];
    e.copy_from_slice(&p[..8]);
    let mut o = [0u8; 16];
    o.copy_from_slice(&p[8..]);
    Some((u64::from_le_bytes(e), o))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_every_damage_is_found() {
        let mut buf = Vec::new();
        let n1 = encode(&mut buf, Table::Envelope, &[7; 16], Some(b"wire bytes")).unwrap();
        let n2 = encode(&mut buf, Table::Inbox, &[8; 16], None).unwrap();
        assert_eq!((n1, n2), (HEADER + 10, HEADER));
        let (r, used) = decode(&buf).unwrap();
        assert_eq!((r.table, r.key, r.payload, used), (Table::Envelope, [7; 16], Some(&b"wire bytes"[..]), n1));
        let (r, used) = decode(&buf[n1..]).unwrap();
        assert_eq!((r.table, r.payload, used), (Table::Inbox, None, n2));
        // Every cut of the first record is "short"; every flipped bit is caught.
        for cut in 0..n1 {
            assert!(matches!(decode(&buf[..cut]), Err(RecordError::Short { .. })), "cut at {cut}");
        }
        for byte in 0..n1 {
            for bit in 0..8 {
                let mut b = buf[..n1].to_vec();
                b[byte] ^= 1 << bit;
                assert!(decode(&b).is_err(), "flip at {byte}.{bit} went unnoticed");
            }
        }
        assert_eq!(
            encode(&mut buf, Table::Inbox, &[0; 16], Some(&vec![0; MAX_PAYLOAD + 1])),
            Err(RecordError::TooLong(MAX_PAYLOAD + 1))
        );
        assert_eq!(parse_delivered(&delivered_payload(99, &[3; 16])), Some((99, [3; 16])));
        assert_eq!(parse_delivered(&[0; 23]), None);
    }

    /// A record in the form written before 2026-12-07: always with its key.
    pub(crate) fn keyed(table: Table, key: &[u8; 16], payload: &[u8]) -> Vec<u8> {
        let mut r = (payload.len() as u32).to_le_bytes().to_vec();
        r.push(table as u8);
        r.extend_from_slice(key);
        let c = check(&r, payload);
        r.extend_from_slice(&c);
        r.extend_from_slice(payload);
        r
    }

    /// A short envelope record of any payload, as only damage that passes
    /// the check or a forgery could leave.
    pub(crate) fn short_form(payload: &[u8]) -> Vec<u8> {
        let mut r = (payload.len() as u32).to_le_bytes().to_vec();
        r.push(Table::Envelope as u8 | OWN_KEY);
        let c = check(&r, payload);
        r.extend_from_slice(&c);
        r.extend_from_slice(payload);
        r
    }

    /// A signed envelope of `len` payload bytes and its id.
    pub(crate) fn envelope(len: usize) -> (Vec<u8>, [u8; 16]) {
        use meshpost_proto::envelope::{Destination, Draft, Envelope, Kind};
        let id = meshpost_proto::identity::Identity::from_seed(&[5; 32]);
        let dest = Destination { id: [7; 16], domain: String::new() };
        let draft =
            Draft { kind: Kind::Direct, max_hops: 8, created: 1_800_000_000, ttl: 3600, dest, payload: &vec![9; len] };
        let env = Envelope::seal(&id, &draft).unwrap();
        (env.bytes().to_vec(), env.id().0)
    }

    #[test]
    fn an_envelope_under_its_own_id_is_written_without_it() {
        let (env, id) = envelope(237);
        let mut buf = Vec::new();
        let n = encode(&mut buf, Table::Envelope, &id, Some(&env)).unwrap();
        assert_eq!(n, HEADER_OWN_KEY + env.len(), "16 bytes less than a keyed record");
        let (r, used) = decode(&buf).unwrap();
        assert_eq!((r.table, r.key, r.payload, used), (Table::Envelope, id, Some(&env[..]), n));
        for cut in 0..n {
            assert!(matches!(decode(&buf[..cut]), Err(RecordError::Short { .. })), "cut at {cut}");
        }
        for byte in 0..n {
            for bit in 0..8 {
                let mut b = buf.clone();
                b[byte] ^= 1 << bit;
                assert!(decode(&b).is_err(), "flip at {byte}.{bit} went unnoticed");
            }
        }
        // Under another key, or in another table, the key is written.
        let mut other = Vec::new();
        assert_eq!(encode(&mut other, Table::Envelope, &[1; 16], Some(&env)), Ok(HEADER + env.len()));
        assert_eq!(decode(&other).unwrap().0.key, [1; 16]);
        // A record written before 2026-12-07, with the key, still reads.
        let old = keyed(Table::Envelope, &id, &env);
        assert_eq!(
            decode(&old).unwrap(),
            (Record { table: Table::Envelope, key: id, payload: Some(&env[..]) }, HEADER + env.len())
        );
        // The short form only for a stored envelope.
        let mut bad = buf.clone();
        bad[4] = Table::Inbox as u8 | OWN_KEY;
        assert_eq!(decode(&bad), Err(RecordError::BadKind(bad[4])));
        bad[4] = Table::Envelope as u8 | OWN_KEY | DELETE;
        assert_eq!(decode(&bad), Err(RecordError::BadKind(bad[4])));
    }
}
