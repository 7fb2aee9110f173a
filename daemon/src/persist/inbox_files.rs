//! Files in the inbox: their parts, grouped into one entry per file.
//!
//! A part arrives as a direct message of content type 2 (see
//! `meshpost_proto::filepart`) and is stored by inbox.rs like any message,
//! its bytes as the body and a [`PartInfo`] in the header. Here the parts
//! of one file are found, counted, read in order and checked: when the
//! last part is stored, the whole file's BLAKE2s-256 must match the hash
//! every part carries, or the file is discarded. A file whose parts can no
//! longer all arrive (the newest has expired) is removed as stale.
//!
//! It does not assemble files into one file on disk (the parts are read in
//! order when a client downloads it), and it decides nothing about
//! acknowledgements.

use std::io;

use meshpost_proto::crypto::to_hex;
use meshpost_proto::filepart::{self, FilePart, PART_LEN};
use serde::{Deserialize, Serialize};

use super::inbox::Inbox;
use super::record::Table;
use super::segments::Log;
use meshpost_proto::envelope::EnvelopeId;

/// What the header of a stored part says about it and its file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PartInfo {
    /// The file's id in this inbox (see [`file_key`]).
    pub file: String,
    pub index: u16,
    pub count: u16,
    pub size: u32,
    /// BLAKE2s-256 of the whole file, hex.
    pub hash: String,
    pub name: String,
    #[serde(rename = "type", default)]
    pub media_type: String,
}

impl PartInfo {
    pub fn of(from: &[u8; 16], p: &FilePart) -> PartInfo {
        PartInfo {
            file: file_key(from, &p.meta.file_id),
            index: p.index,
            count: p.meta.count,
            size: p.meta.size,
            hash: to_hex(&p.meta.hash),
            name: p.meta.name.clone(),
            media_type: p.meta.media_type.clone(),
        }
    }

    /// Checks a stored header against its body, as the protocol checks a
    /// part on arrival.
    pub fn check(&self, body_len: usize) -> Result<(), String> {
        let size = self.size as usize;
        let ok = size <= filepart::MAX_FILE_LEN
            && self.count as usize == filepart::part_count(size)
            && self.index < self.count
            && body_len == filepart::part_len(size, self.index as usize)
            && self.hash.len() == 64
            && self.file.len() == 32;
        if ok { Ok(()) } else { Err("file part header does not match its body".into()) }
    }
}

/// The name of a file in this inbox: from the sender's id and the file id
/// it chose, so two senders cannot collide, 32 hex digits like a message id.
pub fn file_key(from: &[u8; 16], file_id: &[u8; 16]) -> String {
    let mut input = Vec::with_capacity(13 + 32);
    input.extend_from_slice(b"meshpost file");
    input.extend_from_slice(from);
    input.extend_from_slice(file_id);
    to_hex(&filepart::file_hash(&input)[..16])
}

/// One file in the inbox, complete or still arriving.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FileEntry {
    pub id: String,
    pub from: String,
    pub from_name: String,
    pub created: u64,
    /// When the newest part arrived.
    pub received: u64,
    /// When the newest part expires: a partial file is dropped after it.
    pub expires: u64,
    pub read: bool,
    pub name: String,
    #[serde(rename = "type")]
    pub media_type: String,
    pub size: u64,
    pub hash: String,
    pub parts: u16,
    /// Parts stored so far, and their bytes.
    pub have: u16,
    pub bytes: u64,
    pub complete: bool,
}

impl Inbox {
    /// Files, in order of their first part's arrival.
    pub fn files(&self) -> Vec<FileEntry> {
        self.files_where(None)
    }

    pub fn file(&self, key: &str) -> Option<FileEntry> {
        self.files_where(Some(key)).pop()
    }

    /// Every file, or only the one named `only` (without building the
    /// others: this runs for each part that arrives).
    fn files_where(&self, only: Option<&str>) -> Vec<FileEntry> {
        let mut out: Vec<FileEntry> = Vec::new();
        for (m, n) in &self.msgs {
            let Some(p) = &m.part else { continue };
            if only.is_some_and(|k| k != p.file) {
                continue;
            }
            match out.iter_mut().find(|f| f.id == p.file) {
                Some(f) => {
                    f.have += 1;
                    f.bytes += *n as u64;
                    f.received = f.received.max(m.received);
                    f.expires = f.expires.max(m.expires);
                    f.read &= m.read;
                }
                None => out.push(FileEntry {
                    id: p.file.clone(),
                    from: m.from.clone(),
                    from_name: m.from_name.clone(),
                    created: m.created,
                    received: m.received,
                    expires: m.expires,
                    read: m.read,
                    name: p.name.clone(),
                    media_type: p.media_type.clone(),
                    size: p.size as u64,
                    hash: p.hash.clone(),
                    parts: p.count,
                    have: 1,
                    bytes: *n as u64,
                    complete: false,
                }),
            }
        }
        for f in &mut out {
            f.complete = f.have == f.parts;
        }
        out
    }

    /// Whether a part (by its envelope id) of this file is stored.
    pub fn has_part(&self, key: &str, index: u16) -> bool {
        self.msgs.iter().any(|(m, _)| m.part.as_ref().is_some_and(|p| p.file == key && p.index == index))
    }

    /// `len` bytes of a complete or partial file from `offset`, read from
    /// its parts on disk; `None` for a part that has not arrived.
    pub fn read_file(&self, log: &Log, key: &str, offset: u64, len: usize) -> io::Result<Option<Vec<u8>>> {
        let Some(f) = self.file(key) else {
            return Err(io::Error::new(io::ErrorKind::NotFound, "no such file in the inbox"));
        };
        let end = (offset.saturating_add(len as u64)).min(f.size);
        let mut out = Vec::with_capacity(end.saturating_sub(offset) as usize);
        let mut pos = offset;
        while pos < end {
            let index = (pos / PART_LEN as u64) as u16;
            let Some(part) = self.part_bytes(log, key, index)? else { return Ok(None) };
            let from = (pos % PART_LEN as u64) as usize;
            let take = ((end - pos) as usize).min(part.len().saturating_sub(from));
            if take == 0 {
                break;
            }
            out.extend_from_slice(&part[from..from + take]);
            pos += take as u64;
        }
        Ok(Some(out))
    }

    fn part_bytes(&self, log: &Log, key: &str, index: u16) -> io::Result<Option<Vec<u8>>> {
        let Some((m, _)) =
            self.msgs.iter().find(|(m, _)| m.part.as_ref().is_some_and(|p| p.file == key && p.index == index))
        else {
            return Ok(None);
        };
        let Some(id) = EnvelopeId::parse(&m.id) else { return Ok(None) };
        let bytes = log.get(Table::Inbox, &id.0)?.unwrap_or_default();
        Ok(super::inbox::body_of(&bytes).map(<[u8]>::to_vec))
    }

    /// For a complete file: whether its bytes hash to what its parts say.
    /// Reads the parts one at a time.
    pub fn verify_file(&self, log: &Log, key: &str) -> io::Result<bool> {
        let Some(f) = self.file(key).filter(|f| f.complete) else { return Ok(false) };
        let mut h = filepart::Hasher::new();
        for index in 0..f.parts {
            let Some(part) = self.part_bytes(log, key, index)? else { return Ok(false) };
            h.update(&part);
        }
        Ok(to_hex(&h.finish()) == f.hash)
    }

    /// Marks every part of a file read.
    pub fn mark_file_read(&mut self, log: &mut Log, key: &str) -> bool {
        let ids: Vec<String> = self
            .msgs
            .iter()
            .filter(|(m, _)| !m.read && m.part.as_ref().is_some_and(|p| p.file == key))
            .map(|(m, _)| m.id.clone())
            .collect();
        ids.iter().all(|id| self.read(log, id).is_some_and(|m| m.read))
    }

    /// Files that can no longer complete: incomplete, and the newest part
    /// expired at `now`, so the sender holds no part any more.
    pub fn stale_files(&self, now: u64) -> Vec<String> {
        self.files().into_iter().filter(|f| !f.complete && f.expires <= now).map(|f| f.id).collect()
    }

    /// Removes a file and all its parts, each leaving its delivered id
    /// (see `remove_entry`).
    pub fn remove_file(&mut self, log: &mut Log, key: &str) -> io::Result<usize> {
        self.remove_entry(log, key, true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::persist::inbox::Message;

    fn part_msg(from: [u8; 16], p: &FilePart, n: u64, expires: u64) -> Message {
        Message {
            id: format!("{n:032x}"),
            from: to_hex(&from),
            from_name: String::new(),
            created: n,
            received: n,
            expires,
            text: String::new(),
            read: false,
            part: Some(PartInfo::of(&from, p)),
        }
    }

    #[test]
    fn parts_group_into_one_file_that_is_checked_read_and_evicted_whole() {
        let dir = std::env::temp_dir().join(format!("meshpost-inbox-files-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (mut log, _) = Log::open(&dir).unwrap();
        let (mut inbox, _) = Inbox::load(&mut log, 2, 1 << 20);
        let data: Vec<u8> = (0..(PART_LEN + 7)).map(|i| (i % 253) as u8).collect();
        let parts: Vec<FilePart> = filepart::split([4; 16], "a.bin", "", &data)
            .unwrap()
            .iter()
            .map(|b| filepart::decode(b).unwrap())
            .collect();
        // The second part first: a partial file, one entry, not complete.
        inbox.add(&mut log, part_msg([1; 16], &parts[1], 1, 100), &parts[1].data).unwrap();
        assert_eq!((inbox.len(), inbox.files().len()), (1, 1));
        let key = inbox.files()[0].id.clone();
        assert!(!inbox.files()[0].complete);
        assert_eq!(inbox.stale_files(99), Vec::<String>::new());
        assert_eq!(inbox.stale_files(100), vec![key.clone()], "expired with a part missing");
        assert!(!inbox.is_full_for(10, false), "another part of a known file adds no message");
        inbox.add(&mut log, part_msg([1; 16], &parts[0], 2, 100), &parts[0].data).unwrap();
        assert!(inbox.tally_is_current());
        assert!(inbox.file(&key).unwrap().complete);
        assert!(inbox.verify_file(&log, &key).unwrap());
        assert_eq!(inbox.read_file(&log, &key, 0, 1 << 20).unwrap().unwrap(), data);
        assert!(inbox.stale_files(1000).is_empty(), "a complete file never goes stale");
        // Reloaded: still one complete, verified file.
        log.commit().unwrap();
        let (back, problems) = Inbox::load(&mut log, 2, 1 << 20);
        assert!(problems.is_empty(), "{problems:?}");
        assert!(back.file(&key).unwrap().complete);
        // Read, it makes room whole: both part files go.
        assert!(inbox.mark_file_read(&mut log, &key));
        assert!(inbox.tally_is_current());
        assert_eq!(inbox.unread(), 0);
        let text = Message { part: None, text: "hi".into(), ..part_msg([2; 16], &parts[0], 3, 100) };
        inbox.add(&mut log, text.clone(), b"hi").unwrap();
        let other = Message { id: format!("{:032x}", 4), ..text };
        let dropped = inbox.add(&mut log, other, b"hi").unwrap();
        log.commit().unwrap();
        assert_eq!(dropped, vec![key.clone()]);
        assert!(inbox.tally_is_current());
        assert!(inbox.files().is_empty());
        assert_eq!(log.count(Table::Inbox), 2, "only the two texts are left");
        assert_eq!(log.count(Table::Delivered), 2, "the parts' ids stay delivered");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_part_changed_on_disk_is_moved_aside_at_start() {
        let dir = std::env::temp_dir().join(format!("meshpost-inbox-files-bad-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (mut log, _) = Log::open(&dir).unwrap();
        let (mut inbox, _) = Inbox::load(&mut log, 10, 1 << 20);
        let parts = filepart::split([4; 16], "a.bin", "", &[7; 10]).unwrap();
        let p = filepart::decode(&parts[0]).unwrap();
        inbox.add(&mut log, part_msg([1; 16], &p, 1, 100), &p.data).unwrap();
        // The part's bytes change on disk (the check of its record is
        // made to match, as a careless repair would).
        let key = EnvelopeId::parse(&format!("{:032x}", 1)).unwrap().0;
        let mut bytes = log.get(Table::Inbox, &key).unwrap().unwrap();
        let n = bytes.len();
        bytes[n - 1] ^= 1;
        log.put(Table::Inbox, key, &bytes).unwrap();
        log.commit().unwrap();
        let (back, problems) = Inbox::load(&mut log, 10, 1 << 20);
        assert!(back.files().is_empty());
        assert!(problems[0].contains("hash check"), "{problems:?}");
        log.commit().unwrap();
        assert!(dir.join(format!("{}.inbox.bad", to_hex(&key))).exists());
        assert_eq!(log.count(Table::Inbox), 0);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
