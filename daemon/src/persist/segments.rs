//! The state log: stored envelopes, inbox entries and delivered ids as
//! checksummed records (record.rs) appended to segment files, one fsync
//! per commit.
//!
//! ```text
//! STATE/log/00000001.seg   "meshpost-log 1\n\0", then records
//! STATE/log/00000002.seg   ...; the highest number is the head
//! ```
//! `put` and `del` only buffer; `commit` writes the buffer to the head and
//! syncs it once, so every write of one event-loop turn shares one fsync
//! (group commit). Nothing may be acknowledged before `commit` returns Ok;
//! on an error the buffered writes are taken back (index and file), and
//! the caller reports each one as failed.
//!
//! The index of live records is in memory; payloads stay on disk (or in
//! the buffer) and are read back with `get`. A new head starts once the
//! head holds [`SEGMENT_BYTES`]. Compaction only ever takes the oldest
//! segment: its live records are appended to the head, and after that
//! commit the file is deleted. Deletion records need no copy, since no
//! older segment is left for them to cancel. It runs when the log is more
//! than twice its live bytes plus one segment, so the log stays below
//! that and each live byte is written about twice over its life.
//!
//! At start, a record cut short or failing its check at the end of the
//! head is an unfinished write (never acknowledged): the head is cut back
//! to the last whole record. Damage elsewhere keeps the records before it,
//! and a copy of the segment as `*.seg.bad`.
//!
//! It does not know what an envelope or an inbox entry is, nor when to
//! commit: the daemon commits once per turn of its loop.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::record::{self, Record, RecordError, Table};

/// A new head segment starts after this many bytes.
pub const SEGMENT_BYTES: u64 = 1 << 20;
/// The first bytes of every segment file.
pub const MAGIC: &[u8; 16] = b"meshpost-log 1\n\0";
/// A segment longer than this is not ours (one commit may overrun
/// [`SEGMENT_BYTES`], by at most what one turn of the loop writes).
const MAX_SEGMENT_FILE: usize = 64 << 20;

/// A record's table and key.
type Key = (Table, [u8; 16]);

/// Where a live record is: segment, offset of its header, whole length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Loc {
    seg: u32,
    off: u64,
    len: u32,
}

#[derive(Debug, Clone, Copy, Default)]
struct Seg {
    /// Bytes committed to the file.
    len: u64,
    /// Bytes of records in it that the index points to.
    live: u64,
}

/// Counters for `status`/metrics and docs/performance.md.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogStats {
    pub commits: u64,
    pub failed_commits: u64,
    /// Bytes written by commits, compaction included.
    pub bytes_written: u64,
    /// Of which copied by compaction.
    pub bytes_compacted: u64,
    pub segments_removed: u64,
}

pub struct Log {
    dir: PathBuf,
    segs: meshpost_proto::SmallMap<u32, Seg>,
    /// The segment commits append to. It is opened for each commit and
    /// closed after, so an idle daemon holds no file open for writing (a
    /// read-only remount of the state filesystem stays possible), and one
    /// that could not be created at start (full or read-only disk) is
    /// created by the first commit that can.
    head: u32,
    index: BTreeMap<Key, Loc>,
    /// Records written since the last commit.
    pending: Vec<u8>,
    /// To take the pending records back: each key's previous location.
    undo: Vec<(Key, Option<Loc>)>,
    /// A failed commit could not cut its partial write off the head.
    dirty_tail: bool,
    segment_bytes: u64,
    stats: LogStats,
}

fn seg_path(dir: &Path, n: u32) -> PathBuf {
    dir.join(format!("{n:08}.seg"))
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// A new, empty segment file (its magic synced, and the directory).
fn create_segment(dir: &Path, n: u32) -> io::Result<File> {
    let p = seg_path(dir, n);
    let mut f = OpenOptions::new().read(true).write(true).create(true).truncate(true).mode(0o600).open(&p)?;
    let made = f.write_all(MAGIC).and_then(|()| f.sync_all()).and_then(|()| sync_dir(dir));
    if let Err(e) = made {
        let _ = fs::remove_file(&p);
        return Err(e);
    }
    Ok(f)
}

impl Log {
    /// Opens (creating if needed) the log in `dir` and indexes every
    /// segment. Returns problems an admin should read (damaged segments,
    /// unfinished writes cut off).
    pub fn open(dir: &Path) -> Result<(Log, Vec<String>), String> {
        Self::open_with(dir, SEGMENT_BYTES)
    }

    /// As [`Log::open`], with a smaller segment size for tests.
    pub fn open_with(dir: &Path, segment_bytes: u64) -> Result<(Log, Vec<String>), String> {
        super::mkdir(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        if !fs::symlink_metadata(dir).is_ok_and(|m| m.is_dir()) {
            return Err(format!(
                "{} is not a directory; move it aside (it should hold the stored messages) and start again",
                dir.display()
            ));
        }
        let mut numbers: Vec<u32> = fs::read_dir(dir)
            .map_err(|e| format!("cannot list {}: {e}", dir.display()))?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let stem = name.strip_suffix(".seg")?;
                if stem.len() == 8 { stem.parse::<u32>().ok() } else { None }
            })
            .collect();
        numbers.sort_unstable();
        let mut problems = Vec::new();
        let mut log = Log {
            dir: dir.to_path_buf(),
            segs: meshpost_proto::SmallMap::new(),
            head: 0,
            index: BTreeMap::new(),
            pending: Vec::new(),
            undo: Vec::new(),
            dirty_tail: false,
            segment_bytes: segment_bytes.max(4096),
            stats: LogStats::default(),
        };
        let last = numbers.last().copied();
        for n in numbers {
            log.load_segment(n, Some(n) == last, &mut problems)?;
        }
        match last {
            Some(n) if log.segs.contains_key(&n) => log.head = n,
            _ => {
                let n = last.map_or(1, |n| n + 1);
                match create_segment(dir, n) {
                    Ok(_) => {}
                    Err(e) => problems.push(format!(
                        "cannot create a log segment in {} ({e}); tried again at the first write",
                        dir.display()
                    )),
                }
                log.segs.insert(n, Seg { len: MAGIC.len() as u64, live: 0 });
                log.head = n;
            }
        }
        Ok((log, problems))
    }

    /// Reads one segment into the index. The head's unfinished tail is cut
    /// off; damage anywhere else keeps a `.bad` copy.
    fn load_segment(&mut self, n: u32, is_head: bool, problems: &mut Vec<String>) -> Result<(), String> {
        let p = seg_path(&self.dir, n);
        let bytes =
            super::read_limited(&p, MAX_SEGMENT_FILE).map_err(|e| format!("cannot read {}: {e}", p.display()))?;
        if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
            if is_head && MAGIC.starts_with(&bytes) {
                // Created but its magic never synced: nothing was in it.
                let _ = fs::remove_file(&p);
                return Ok(());
            }
            let kept = p.with_extension("seg.bad");
            let _ = fs::rename(&p, &kept);
            problems.push(format!("{} is not a meshpost log segment; moved aside as {}", p.display(), kept.display()));
            return Ok(());
        }
        self.segs.insert(n, Seg { len: MAGIC.len() as u64, live: 0 });
        let mut off = MAGIC.len();
        let mut damage = None;
        while off < bytes.len() {
            match record::decode(&bytes[off..]) {
                Ok((r, used)) => {
                    let loc = Loc { seg: n, off: off as u64, len: used as u32 };
                    self.set((r.table, r.key), r.payload.map(|_| loc));
                    off += used;
                    if let Some(s) = self.segs.get_mut(&n) {
                        s.len = off as u64;
                    }
                }
                Err(e) => {
                    damage = Some(e);
                    break;
                }
            }
        }
        let Some(e) = damage else { return Ok(()) };
        // An unfinished write is a cut-short record, or one failing its
        // check that ends exactly at the end of the head.
        let torn = match e {
            RecordError::Short { .. } => true,
            RecordError::BadCheck => {
                let len = u32::from_le_bytes([bytes[off], bytes[off + 1], bytes[off + 2], bytes[off + 3]]) as usize;
                off + record::header_len(bytes[off + 4]) + len == bytes.len()
            }
            _ => false,
        };
        let cut = bytes.len() - off;
        if !(is_head && torn) {
            let kept = p.with_extension("seg.bad");
            if !kept.exists() {
                // Inbox entries are plaintext: private like the log.
                let _ = super::write_durable(&kept, &bytes, 0o600);
            }
            problems.push(format!(
                "{}: {e} at byte {off}; the {cut} bytes from there are not used (a copy is kept as {})",
                p.display(),
                kept.display()
            ));
        } else {
            problems.push(format!(
                "{}: cut off {cut} bytes of a write that never finished (not acknowledged)",
                p.display()
            ));
        }
        if is_head {
            // Appending after garbage would hide the new records from the
            // next start.
            let f = OpenOptions::new().write(true).open(&p).map_err(|e| format!("cannot open {}: {e}", p.display()))?;
            f.set_len(off as u64)
                .and_then(|()| f.sync_all())
                .map_err(|e| format!("cannot cut {}: {e}", p.display()))?;
        }
        Ok(())
    }

    /// Points `key` at `new` (or removes it); keeps the live counts.
    fn set(&mut self, key: Key, new: Option<Loc>) -> Option<Loc> {
        let prev = match new {
            Some(l) => self.index.insert(key, l),
            None => self.index.remove(&key),
        };
        if let Some(p) = prev
            && let Some(s) = self.segs.get_mut(&p.seg)
        {
            s.live -= u64::from(p.len);
        }
        if let Some(l) = new
            && let Some(s) = self.segs.get_mut(&l.seg)
        {
            s.live += u64::from(l.len);
        }
        prev
    }

    fn head_len(&self) -> u64 {
        self.segs.get(&self.head).map_or(MAGIC.len() as u64, |s| s.len)
    }

    /// Buffers a record that stores `payload` under `key` (replacing any).
    pub fn put(&mut self, table: Table, key: [u8; 16], payload: &[u8]) -> Result<(), RecordError> {
        let off = self.head_len() + self.pending.len() as u64;
        let len = record::encode(&mut self.pending, table, &key, Some(payload))?;
        let loc = Loc { seg: self.head, off, len: len as u32 };
        let prev = self.set((table, key), Some(loc));
        self.undo.push(((table, key), prev));
        Ok(())
    }

    /// Buffers the deletion of `key` (nothing if it is not there).
    pub fn del(&mut self, table: Table, key: [u8; 16]) {
        if !self.index.contains_key(&(table, key)) {
            return;
        }
        // An empty payload always encodes.
        let _ = record::encode(&mut self.pending, table, &key, None);
        let prev = self.set((table, key), None);
        self.undo.push(((table, key), prev));
    }

    pub fn contains(&self, table: Table, key: &[u8; 16]) -> bool {
        self.index.contains_key(&(table, *key))
    }

    /// Keys of one table, in key order.
    pub fn keys(&self, table: Table) -> Vec<[u8; 16]> {
        self.index.range((table, [0; 16])..=(table, [0xff; 16])).map(|((_, k), _)| *k).collect()
    }

    /// Keys of one table in the order their records lie in the log, oldest
    /// segment first: the order they were written (a compacted record
    /// counts from its copy).
    pub fn keys_in_write_order(&self, table: Table) -> Vec<[u8; 16]> {
        let mut v: Vec<(u32, u64, [u8; 16])> =
            self.index.range((table, [0; 16])..=(table, [0xff; 16])).map(|((_, k), l)| (l.seg, l.off, *k)).collect();
        v.sort_unstable();
        v.into_iter().map(|(_, _, k)| k).collect()
    }

    pub fn count(&self, table: Table) -> usize {
        self.index.range((table, [0; 16])..=(table, [0xff; 16])).count()
    }

    /// The payload stored under `key`, committed or not.
    pub fn get(&self, table: Table, key: &[u8; 16]) -> io::Result<Option<Vec<u8>>> {
        let Some(loc) = self.index.get(&(table, *key)).copied() else { return Ok(None) };
        let head_len = self.head_len();
        let mut buf = vec![0u8; loc.len as usize];
        if loc.seg == self.head && loc.off >= head_len {
            let at = (loc.off - head_len) as usize;
            match self.pending.get(at..at + buf.len()) {
                Some(b) => buf.copy_from_slice(b),
                None => return Err(io::Error::other("log index points past its buffer")),
            }
        } else {
            File::open(seg_path(&self.dir, loc.seg))?.read_exact_at(&mut buf, loc.off)?;
        }
        match record::decode(&buf) {
            Ok((Record { payload: Some(p), .. }, _)) => Ok(Some(p.to_vec())),
            Ok(_) => Err(io::Error::other("log index points at a deletion")),
            Err(e) => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {e}", seg_path(&self.dir, loc.seg).display()),
            )),
        }
    }

    /// Takes a record that its owner cannot read out of the log, keeping
    /// its bytes as `log/KEY.TABLE.bad` (a deletion is buffered only once
    /// the copy is written). Says what became of it, for the admin.
    pub fn set_aside(&mut self, table: Table, key: [u8; 16]) -> String {
        let name = format!("{}.{}.bad", meshpost_proto::crypto::to_hex(&key), table.name());
        let path = self.dir.join(&name);
        let kept = match self.index.get(&(table, key)).copied() {
            None => return "not in the log".into(),
            Some(loc) => {
                let mut raw = vec![0u8; loc.len as usize];
                let read = if loc.seg == self.head && loc.off >= self.head_len() {
                    let at = (loc.off - self.head_len()) as usize;
                    self.pending
                        .get(at..at + raw.len())
                        .map(|b| raw.copy_from_slice(b))
                        .ok_or(io::ErrorKind::InvalidData.into())
                } else {
                    File::open(seg_path(&self.dir, loc.seg)).and_then(|f| f.read_exact_at(&mut raw, loc.off))
                };
                let body = raw.get(raw.get(4).map_or(raw.len(), |k| record::header_len(*k))..).unwrap_or_default();
                read.and_then(|()| super::write_durable(&path, body, 0o600))
            }
        };
        match kept {
            Ok(()) => {
                self.del(table, key);
                format!("moved aside as {}", path.display())
            }
            Err(e) => format!("left in the log (cannot keep a copy as {}: {e})", path.display()),
        }
    }

    /// True when writes wait for [`Log::commit`].
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Writes and syncs everything buffered: one fsync. On an error the
    /// buffered writes are taken back and none of them happened.
    pub fn commit(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let at = self.head_len();
        let mut opened = None;
        let written = (|| {
            let f = match OpenOptions::new().write(true).open(seg_path(&self.dir, self.head)) {
                Err(e) if e.kind() == io::ErrorKind::NotFound && at == MAGIC.len() as u64 => {
                    create_segment(&self.dir, self.head)?
                }
                r => r?,
            };
            let f = opened.insert(f);
            if self.dirty_tail {
                f.set_len(at)?;
                self.dirty_tail = false;
            }
            f.write_all_at(&self.pending, at)?;
            f.sync_data()
        })();
        if let Err(e) = written {
            self.stats.failed_commits += 1;
            if let Some(f) = &opened {
                self.dirty_tail = f.set_len(at).and_then(|()| f.sync_data()).is_err();
            }
            for (key, prev) in std::mem::take(&mut self.undo).into_iter().rev() {
                self.set(key, prev);
            }
            self.pending.clear();
            return Err(e);
        }
        let n = self.pending.len() as u64;
        if let Some(s) = self.segs.get_mut(&self.head) {
            s.len += n;
        }
        self.stats.commits += 1;
        self.stats.bytes_written += n;
        self.pending.clear();
        self.undo.clear();
        if self.head_len() >= self.segment_bytes {
            // If no new segment can be made now, the head grows until one can.
            if create_segment(&self.dir, self.head + 1).is_ok() {
                self.head += 1;
                self.segs.insert(self.head, Seg { len: MAGIC.len() as u64, live: 0 });
            }
        }
        Ok(())
    }

    /// Bytes in all segments, and of live records.
    pub fn sizes(&self) -> (u64, u64) {
        self.segs.values().fold((0, 0), |(t, l), s| (t + s.len, l + s.live))
    }

    pub fn segments(&self) -> usize {
        self.segs.len()
    }

    pub fn stats(&self) -> LogStats {
        self.stats
    }

    /// Compacts the oldest segment if the log is more than twice its live
    /// bytes plus one segment. Delivered ids that expired by `now_s` are
    /// dropped. Call with nothing pending (right after a commit); does at
    /// most one segment. Returns whether it removed one.
    pub fn maintain(&mut self, now_s: u64) -> io::Result<bool> {
        let (total, live) = self.sizes();
        let Some((oldest, seg)) = self.segs.iter().next().map(|(n, s)| (*n, *s)) else { return Ok(false) };
        if self.has_pending() || oldest == self.head || (seg.live > 0 && total <= 2 * live + self.segment_bytes) {
            return Ok(false);
        }
        if seg.live > 0 {
            let p = seg_path(&self.dir, oldest);
            let bytes = super::read_limited(&p, MAX_SEGMENT_FILE)?;
            let mut off = MAGIC.len();
            let mut copied = 0u64;
            while off < seg.len as usize {
                // A file cut short since it was read at start ends the copy;
                // the segment then keeps live records and is not deleted.
                let Some(Ok((r, used))) = bytes.get(off..).map(record::decode) else { break };
                let here = Loc { seg: oldest, off: off as u64, len: used as u32 };
                if let Some(payload) = r.payload
                    && self.index.get(&(r.table, r.key)) == Some(&here)
                {
                    let expired = r.table == Table::Delivered
                        && record::parse_delivered(payload).is_some_and(|(e, _)| e <= now_s);
                    if expired {
                        self.set((r.table, r.key), None);
                        self.undo.push(((r.table, r.key), Some(here)));
                    } else {
                        self.put(r.table, r.key, payload).map_err(io::Error::other)?;
                        copied += used as u64;
                    }
                }
                off += used;
            }
            let pending = self.pending.len() as u64;
            if pending == 0 {
                // Only expired ids: nothing to write, nothing to take back.
                self.undo.clear();
            }
            self.commit()?;
            self.stats.bytes_compacted += copied.min(pending);
        }
        if self.segs.get(&oldest).is_some_and(|s| s.live > 0) {
            // A record past damage in the file: keep the segment.
            return Ok(false);
        }
        fs::remove_file(seg_path(&self.dir, oldest))?;
        sync_dir(&self.dir)?;
        self.segs.remove(&oldest);
        self.stats.segments_removed += 1;
        Ok(true)
    }
}

#[cfg(test)]
#[path = "segments_tests.rs"]
mod tests;
