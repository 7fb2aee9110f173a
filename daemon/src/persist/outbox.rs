//! The durable record of what became of the messages this node sent
//! (`STATE/outbox.log`), so `meshpost outbox` and `send --wait` tell the
//! truth across restarts.
//!
//! One line per transition, appended, and synced with the state log's
//! commit (one sync per turn of the daemon's loop): `ID TO STATE SINCE`
//! (state as in `meshpost_proto::outbox`, since = unix seconds), and for a
//! part of a file ` FILE INDEX COUNT NAME` (the file's id as the recipient's
//! inbox names it, and its name in hex). A later transition of a message
//! already in the file is only `ID STATE SINCE` (since 2026-12-07: 53
//! bytes instead of 86 or more). A text message just queued gets no line
//! (since 2026-12-07, twenty-fourth session): the state log holds its
//! envelope, and at start the daemon takes every message of ours still
//! stored back as queued; its first later state is a whole line. At start,
//! and whenever [`COMPACT_AFTER`] lines were appended since the last
//! rewrite, the log is cut to the [`MAX_RECORDS`] most recent messages and
//! rewritten, so the file stays bounded on a router that runs for months. Unreadable lines are
//! skipped and counted: this is a report, not a delivery record (the inbox
//! and delivered.log are those). It decides nothing about messages.

use std::collections::{BTreeMap, VecDeque};
use std::fs::OpenOptions;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use meshpost_proto::envelope::EnvelopeId;
use meshpost_proto::identity::NodeId;
use meshpost_proto::outbox::SentState;

use meshpost_proto::crypto::{from_hex_bytes, to_hex};
use meshpost_proto::filepart;

use super::{read_limited, write_durable};

/// Sent messages remembered.
pub const MAX_RECORDS: usize = 1000;
/// Set in a message's `index` position while the file does not name it
/// yet: a queued text message gets no line of its own (its envelope in the
/// state log says as much, and a restart takes it from there,
/// [`OutboxLog::restore_queued`]); its first transition is a whole line.
const UNWRITTEN: u64 = 1 << 63;
/// Appended lines after which the file is rewritten compactly.
pub const COMPACT_AFTER: usize = 3 * MAX_RECORDS;

/// One sent message and its latest state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    pub id: EnvelopeId,
    pub to: NodeId,
    pub state: SentState,
    /// When it entered this state (unix seconds).
    pub since: u64,
    /// Set for a part of a file.
    pub file: Option<FileTag>,
}

/// Which file a sent envelope is a part of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileTag {
    pub key: [u8; 16],
    pub index: u16,
    pub count: u16,
}

impl Record {
    fn line(&self, names: &meshpost_proto::SmallMap<[u8; 16], String>) -> String {
        let mut l = format!("{} {} {} {}", self.id, self.to, self.state.code(), self.since);
        if let Some(f) = self.file {
            let name = names.get(&f.key).map_or(String::new(), |n| to_hex(n.as_bytes()));
            l.push_str(&format!(" {} {} {} {name}", to_hex(&f.key), f.index, f.count));
        }
        l.push('\n');
        l
    }

    /// The line of a later transition: what the first line said stays.
    fn transition_line(&self) -> String {
        format!("{} {} {}\n", self.id, self.state.code(), self.since)
    }
}

pub struct OutboxLog {
    path: PathBuf,
    /// Oldest first.
    records: VecDeque<Record>,
    /// Each record's position counted from the first ever kept: the
    /// record is at `position - dropped` (so dropping the oldest does not
    /// renumber the others); with [`UNWRITTEN`] while no line names it.
    index: BTreeMap<EnvelopeId, u64>,
    /// Records dropped from the front so far.
    dropped: u64,
    /// Lines appended since the file was last rewritten.
    appended: usize,
    /// Names of the files whose parts are in `records`.
    names: meshpost_proto::SmallMap<[u8; 16], String>,
    /// Lines recorded since the last [`OutboxLog::flush`].
    unsynced: String,
}

impl OutboxLog {
    /// Reads and compacts `dir/outbox.log`; returns the count of unreadable
    /// lines too.
    pub fn load(dir: &std::path::Path) -> (OutboxLog, usize) {
        let path = dir.join("outbox.log");
        let mut log = OutboxLog {
            path,
            records: VecDeque::new(),
            index: BTreeMap::new(),
            dropped: 0,
            appended: 0,
            names: meshpost_proto::SmallMap::new(),
            unsynced: String::new(),
        };
        let bytes = read_limited(&log.path, 16 << 20).unwrap_or_default();
        let mut bad = 0;
        for line in String::from_utf8_lossy(&bytes).lines().filter(|l| !l.trim().is_empty()) {
            if let [id, state, since] = line.split(' ').collect::<Vec<_>>()[..]
                && let (Some(id), Some(state), Ok(since)) =
                    (EnvelopeId::parse(id), SentState::parse(state), since.trim().parse::<u64>())
            {
                // A transition of a message the file named before (one
                // that went with the oldest beyond MAX_RECORDS is no more).
                if let Some(old) = log.get(&id).copied() {
                    log.set(Record { state, since, ..old });
                }
                continue;
            }
            let mut w = line.split(' ');
            let parsed = (
                w.next().and_then(EnvelopeId::parse),
                w.next().and_then(NodeId::parse),
                w.next().and_then(SentState::parse),
                w.next().and_then(|s| s.trim().parse::<u64>().ok()),
            );
            let file = match (w.next(), w.next(), w.next(), w.next()) {
                (None, ..) => Ok(None),
                (Some(k), Some(i), Some(c), name) => match (from_hex_bytes(k, 16), i.parse(), c.parse()) {
                    (Some(k), Ok(index), Ok(count)) if k.len() == 16 => {
                        let mut key = [0u8; 16];
                        key.copy_from_slice(&k);
                        if let Some(n) = name
                            .and_then(|n| from_hex_bytes(n, filepart::MAX_NAME))
                            .and_then(|n| String::from_utf8(n).ok())
                        {
                            log.names.insert(key, n);
                        }
                        Ok(Some(FileTag { key, index, count }))
                    }
                    _ => Err(()),
                },
                _ => Err(()),
            };
            match (parsed, file) {
                ((Some(id), Some(to), Some(state), Some(since)), Ok(file)) => {
                    log.set(Record { id, to, state, since, file })
                }
                _ => bad += 1,
            }
        }
        let _ = log.compact();
        (log, bad)
    }

    /// Rewrites the file with one line per remembered message.
    fn compact(&mut self) -> io::Result<()> {
        let keys: std::collections::BTreeSet<[u8; 16]> =
            self.records.iter().filter_map(|r| r.file).map(|f| f.key).collect();
        self.names.retain(|k, _| keys.contains(k));
        let text: String = self.records.iter().map(|r| r.line(&self.names)).collect();
        write_durable(&self.path, text.as_bytes(), 0o600)?;
        for p in self.index.values_mut() {
            *p &= !UNWRITTEN;
        }
        self.appended = 0;
        self.unsynced.clear();
        Ok(())
    }

    /// The size of the file now (for tests and status).
    pub fn file_len(&self) -> u64 {
        std::fs::metadata(&self.path).map_or(0, |m| m.len())
    }

    fn set(&mut self, mut r: Record) {
        match self.index.get(&r.id) {
            Some(&pos) => {
                let pos = pos & !UNWRITTEN;
                if let Some(old) = pos.checked_sub(self.dropped).and_then(|i| self.records.get_mut(i as usize)) {
                    // A state change keeps the file the part belongs to.
                    r.file = r.file.or(old.file);
                    *old = r;
                }
            }
            None => {
                if self.records.len() >= MAX_RECORDS
                    && let Some(old) = self.records.pop_front()
                {
                    self.index.remove(&old.id);
                    self.dropped += 1;
                }
                self.index.insert(r.id, self.dropped + self.records.len() as u64);
                self.records.push_back(r);
            }
        }
    }

    /// Records a state; its line is appended at the next [`OutboxLog::flush`]
    /// (a text message just queued gets none, [`UNWRITTEN`]).
    pub fn record(&mut self, r: Record) -> io::Result<()> {
        let known = self.index.get(&r.id).copied();
        self.set(r);
        if known.is_none() && r.state == SentState::Queued && r.file.is_none() {
            self.mark_unwritten(&r.id);
            return Ok(());
        }
        let r = self.get(&r.id).copied().unwrap_or(r);
        if self.appended >= COMPACT_AFTER {
            return self.compact();
        }
        self.appended += 1;
        let named = known.is_some_and(|p| p & UNWRITTEN == 0);
        let line = if named { r.transition_line() } else { r.line(&self.names) };
        if let Some(p) = self.index.get_mut(&r.id) {
            *p &= !UNWRITTEN;
        }
        self.unsynced.push_str(&line);
        Ok(())
    }

    /// Takes back, at start, a message of ours still queued in the store
    /// that the file does not name (its queued state got no line). Oldest
    /// first, as they were sent; nothing is written.
    pub fn restore_queued(&mut self, id: EnvelopeId, to: NodeId, since: u64) {
        if self.get(&id).is_none() {
            self.set(Record { id, to, state: SentState::Queued, since, file: None });
            self.mark_unwritten(&id);
        }
    }

    fn mark_unwritten(&mut self, id: &EnvelopeId) {
        if let Some(p) = self.index.get_mut(id) {
            *p |= UNWRITTEN;
        }
    }

    /// Appends and syncs the lines recorded since the last flush.
    pub fn flush(&mut self) -> io::Result<()> {
        if self.unsynced.is_empty() {
            return Ok(());
        }
        let mut f = OpenOptions::new().append(true).create(true).mode(0o600).open(&self.path)?;
        f.write_all(self.unsynced.as_bytes())?;
        self.unsynced.clear();
        f.sync_data()
    }

    /// Records the parts of a file just queued (appended at the next flush).
    pub fn record_file(&mut self, name: &str, parts: &[Record]) -> io::Result<()> {
        if let Some(f) = parts.first().and_then(|r| r.file) {
            self.names.insert(f.key, name.to_string());
        }
        let mut text = String::new();
        for r in parts {
            self.set(*r);
            text.push_str(&r.line(&self.names));
        }
        self.appended += parts.len();
        if self.appended >= COMPACT_AFTER {
            return self.compact();
        }
        self.unsynced.push_str(&text);
        Ok(())
    }

    /// The name of a file whose parts were sent.
    pub fn file_name(&self, key: &[u8; 16]) -> Option<&str> {
        self.names.get(key).map(String::as_str)
    }

    /// The records of the parts of one file, in part order.
    pub fn file_parts(&self, key: &[u8; 16]) -> Vec<Record> {
        let mut v: Vec<Record> =
            self.records.iter().filter(|r| r.file.is_some_and(|f| &f.key == key)).copied().collect();
        v.sort_unstable_by_key(|r| r.file.map(|f| f.index));
        v
    }

    pub fn get(&self, id: &EnvelopeId) -> Option<&Record> {
        self.index.get(id).and_then(|&pos| self.records.get((pos & !UNWRITTEN).checked_sub(self.dropped)? as usize))
    }

    /// Newest first.
    pub fn newest_first(&self) -> impl Iterator<Item = &Record> {
        self.records.iter().rev()
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latest_state_wins_survives_reload_and_stays_bounded() {
        let dir = std::env::temp_dir().join(format!("meshpost-outbox-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (mut log, _) = OutboxLog::load(&dir);
        let (id, to) = (EnvelopeId([1; 16]), NodeId([2; 16]));
        log.record(Record { id, to, state: SentState::Queued, since: 10, file: None }).unwrap();
        log.record(Record { id, to, state: SentState::Delivered, since: 12, file: None }).unwrap();
        log.flush().unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(dir.join("outbox.log"))
            .unwrap()
            .write_all(b"junk line\n")
            .unwrap();
        let (log, bad) = OutboxLog::load(&dir);
        assert_eq!(bad, 1);
        assert_eq!(log.get(&id).map(|r| (r.state, r.since, r.to)), Some((SentState::Delivered, 12, to)));
        let (mut log, _) = OutboxLog::load(&dir);
        for i in 0..(MAX_RECORDS as u32 + 10) {
            let mut b = [0u8; 16];
            b[..4].copy_from_slice(&i.to_le_bytes());
            log.set(Record { id: EnvelopeId(b), to, state: SentState::Queued, since: 1, file: None });
        }
        assert_eq!(log.len(), MAX_RECORDS);
        assert!(log.get(&id).is_none(), "the oldest went");
        // A long uptime: the file stays bounded without a restart.
        let line =
            "00000000000000000000000000000000 00000000000000000000000000000000 forwarded 1234567890\n".len() as u64;
        for i in 0..(5 * MAX_RECORDS as u32) {
            let mut b = [0u8; 16];
            b[4..8].copy_from_slice(&i.to_le_bytes());
            log.record(Record { id: EnvelopeId(b), to, state: SentState::Forwarded, since: 1_234_567_890, file: None })
                .unwrap();
        }
        log.flush().unwrap();
        assert!(log.file_len() <= (MAX_RECORDS + COMPACT_AFTER + 1) as u64 * line, "{} bytes", log.file_len());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_later_transition_is_a_short_line_and_older_files_still_read() {
        let dir = std::env::temp_dir().join(format!("meshpost-outbox-short-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (id, to) = (EnvelopeId([1; 16]), NodeId([2; 16]));
        let file = Some(FileTag { key: [3; 16], index: 1, count: 2 });
        let part = EnvelopeId([4; 16]);
        let (mut log, _) = OutboxLog::load(&dir);
        log.record_file("a.txt", &[Record { id: part, to, state: SentState::Queued, since: 9, file }]).unwrap();
        log.record(Record { id, to, state: SentState::Queued, since: 10, file: None }).unwrap();
        log.record(Record { id, to, state: SentState::Forwarded, since: 11, file: None }).unwrap();
        log.record(Record { id: part, to, state: SentState::Delivered, since: 12, file: None }).unwrap();
        log.flush().unwrap();
        let text = std::fs::read_to_string(dir.join("outbox.log")).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        // The text message's queued state has no line, so its first
        // transition names it whole; a file's part was named when queued.
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[1], format!("{id} {to} forwarded 11"));
        assert_eq!(lines[2], format!("{part} delivered 12"));
        let (log, bad) = OutboxLog::load(&dir);
        assert_eq!(bad, 0);
        assert_eq!(log.get(&id).map(|r| (r.to, r.state, r.since)), Some((to, SentState::Forwarded, 11)));
        assert_eq!(log.get(&part).map(|r| (r.to, r.state, r.file)), Some((to, SentState::Delivered, file)));
        assert_eq!(log.file_name(&[3; 16]), Some("a.txt"));
        // A file of an older version: every line whole.
        let old = format!("{id} {to} queued 10\n{id} {to} delivered 13\n");
        std::fs::write(dir.join("outbox.log"), old).unwrap();
        let (log, bad) = OutboxLog::load(&dir);
        assert_eq!(bad, 0);
        assert_eq!(log.get(&id).map(|r| (r.to, r.state, r.since)), Some((to, SentState::Delivered, 13)));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_queued_text_message_writes_nothing_until_it_moves_and_a_restart_takes_it_back() {
        let dir = std::env::temp_dir().join(format!("meshpost-outbox-queued-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (a, b, to) = (EnvelopeId([1; 16]), EnvelopeId([5; 16]), NodeId([2; 16]));
        let (mut log, _) = OutboxLog::load(&dir);
        log.record(Record { id: a, to, state: SentState::Queued, since: 10, file: None }).unwrap();
        log.record(Record { id: b, to, state: SentState::Queued, since: 11, file: None }).unwrap();
        log.flush().unwrap();
        assert_eq!(log.file_len(), 0, "nothing written for two queued messages");
        assert_eq!(log.get(&a).map(|r| r.state), Some(SentState::Queued), "but both are listed");
        log.record(Record { id: a, to, state: SentState::Delivered, since: 12, file: None }).unwrap();
        log.flush().unwrap();
        assert_eq!(std::fs::read_to_string(dir.join("outbox.log")).unwrap(), format!("{a} {to} delivered 12\n"));
        // A restart: the file names `a`; `b` comes back from the store.
        let (mut log, bad) = OutboxLog::load(&dir);
        assert_eq!(bad, 0);
        log.restore_queued(a, to, 10);
        log.restore_queued(b, to, 11);
        assert_eq!(log.get(&a).map(|r| r.state), Some(SentState::Delivered), "a named message stays as named");
        assert_eq!(log.get(&b).map(|r| (r.to, r.state, r.since)), Some((to, SentState::Queued, 11)));
        log.record(Record { id: b, to, state: SentState::Forwarded, since: 13, file: None }).unwrap();
        log.flush().unwrap();
        let text = std::fs::read_to_string(dir.join("outbox.log")).unwrap();
        assert_eq!(text.lines().last(), Some(format!("{b} {to} forwarded 13").as_str()));
        // A rewrite names every message, queued ones too.
        log.restore_queued(EnvelopeId([6; 16]), to, 14);
        log.compact().unwrap();
        log.record(Record { id: EnvelopeId([6; 16]), to, state: SentState::Expired, since: 15, file: None }).unwrap();
        log.flush().unwrap();
        let text = std::fs::read_to_string(dir.join("outbox.log")).unwrap();
        assert_eq!(text.lines().last(), Some(format!("{} expired 15", EnvelopeId([6; 16])).as_str()));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
