//! The durable record of what became of the messages this node sent
//! (`STATE/outbox.log`), so `meshpost outbox` and `send --wait` tell the
//! truth across restarts.
//!
//! One line per transition, appended and synced: `ID TO STATE SINCE`
//! (state as in `meshpost_proto::outbox`, since = unix seconds). At start,
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

use super::{read_limited, write_durable};

/// Sent messages remembered.
pub const MAX_RECORDS: usize = 1000;
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
}

pub struct OutboxLog {
    path: PathBuf,
    /// Oldest first.
    records: VecDeque<Record>,
    index: BTreeMap<EnvelopeId, usize>,
    /// Lines appended since the file was last rewritten.
    appended: usize,
}

impl OutboxLog {
    /// Reads and compacts `dir/outbox.log`; returns the count of unreadable
    /// lines too.
    pub fn load(dir: &std::path::Path) -> (OutboxLog, usize) {
        let path = dir.join("outbox.log");
        let mut log = OutboxLog { path, records: VecDeque::new(), index: BTreeMap::new(), appended: 0 };
        let bytes = read_limited(&log.path, 16 << 20).unwrap_or_default();
        let mut bad = 0;
        for line in String::from_utf8_lossy(&bytes).lines().filter(|l| !l.trim().is_empty()) {
            let mut w = line.split(' ');
            let parsed = (
                w.next().and_then(EnvelopeId::parse),
                w.next().and_then(NodeId::parse),
                w.next().and_then(SentState::parse),
                w.next().and_then(|s| s.trim().parse::<u64>().ok()),
            );
            match parsed {
                (Some(id), Some(to), Some(state), Some(since)) => log.set(Record { id, to, state, since }),
                _ => bad += 1,
            }
        }
        let _ = log.compact();
        (log, bad)
    }

    /// Rewrites the file with one line per remembered message.
    fn compact(&mut self) -> io::Result<()> {
        let text: String =
            self.records.iter().map(|r| format!("{} {} {} {}\n", r.id, r.to, r.state.name(), r.since)).collect();
        write_durable(&self.path, text.as_bytes(), 0o600)?;
        self.appended = 0;
        Ok(())
    }

    /// The size of the file now (for tests and status).
    pub fn file_len(&self) -> u64 {
        std::fs::metadata(&self.path).map_or(0, |m| m.len())
    }

    fn set(&mut self, r: Record) {
        match self.index.get(&r.id) {
            Some(&i) => {
                if let Some(old) = self.records.get_mut(i) {
                    *old = r;
                }
            }
            None => {
                if self.records.len() >= MAX_RECORDS {
                    self.records.pop_front();
                    self.index = self.records.iter().enumerate().map(|(i, r)| (r.id, i)).collect();
                }
                self.index.insert(r.id, self.records.len());
                self.records.push_back(r);
            }
        }
    }

    /// Records a state and appends it to the log (synced).
    pub fn record(&mut self, r: Record) -> io::Result<()> {
        self.set(r);
        if self.appended >= COMPACT_AFTER {
            return self.compact();
        }
        self.appended += 1;
        let mut f = OpenOptions::new().append(true).create(true).mode(0o600).open(&self.path)?;
        writeln!(f, "{} {} {} {}", r.id, r.to, r.state.name(), r.since)?;
        f.sync_data()
    }

    pub fn get(&self, id: &EnvelopeId) -> Option<&Record> {
        self.index.get(id).and_then(|&i| self.records.get(i))
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
        log.record(Record { id, to, state: SentState::Queued, since: 10 }).unwrap();
        log.record(Record { id, to, state: SentState::Delivered, since: 12 }).unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(dir.join("outbox.log"))
            .unwrap()
            .write_all(b"junk line\n")
            .unwrap();
        let (log, bad) = OutboxLog::load(&dir);
        assert_eq!(bad, 1);
        assert_eq!(log.get(&id).map(|r| (r.state, r.since)), Some((SentState::Delivered, 12)));
        let (mut log, _) = OutboxLog::load(&dir);
        for i in 0..(MAX_RECORDS as u32 + 10) {
            let mut b = [0u8; 16];
            b[..4].copy_from_slice(&i.to_le_bytes());
            log.set(Record { id: EnvelopeId(b), to, state: SentState::Queued, since: 1 });
        }
        assert_eq!(log.len(), MAX_RECORDS);
        assert!(log.get(&id).is_none(), "the oldest went");
        // A long uptime: the file stays bounded without a restart.
        let line =
            "00000000000000000000000000000000 00000000000000000000000000000000 forwarded 1234567890\n".len() as u64;
        for i in 0..(5 * MAX_RECORDS as u32) {
            let mut b = [0u8; 16];
            b[4..8].copy_from_slice(&i.to_le_bytes());
            log.record(Record { id: EnvelopeId(b), to, state: SentState::Forwarded, since: 1_234_567_890 }).unwrap();
        }
        assert!(log.file_len() <= (MAX_RECORDS + COMPACT_AFTER + 1) as u64 * line, "{} bytes", log.file_len());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
