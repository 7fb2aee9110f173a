//! The local inbox: messages delivered to this node, kept until deleted.
//!
//! Each message is one record of the state log (segments.rs, table
//! `Inbox`, keyed by its envelope id), committed before anyone is told it
//! arrived; the daemon commits once per turn of its loop:
//!
//! ```text
//! meshpost-inbox 1\n
//! {"id":…,"from":…,"from_name":…,"created":…,"received":…,"expires":…,"read":false}\n
//! <the message body, raw bytes>
//! ```
//! The body is stored as it arrived, not escaped, so a file is never larger
//! than the protocol's maximum envelope plus a bounded header, whatever the
//! body contains.
//!
//! Bounded by `inbox_max` messages and `inbox_max_bytes` body bytes. To make
//! room, read messages go first, oldest first. An inbox full of unread
//! messages refuses the new one ([`InboxError::Full`]): the node then does
//! not acknowledge it and the sender keeps it. The inbox never drops an
//! unread message by itself.
//!
//! A received file is kept as its parts, one record each with a `part`
//! header field and the part's bytes as body; inbox_files.rs groups them
//! into one entry per file (a file counts as one message). A read message
//! that makes room takes its whole file with it.
//!
//! An entry that goes (deleted, or read and making room) leaves a
//! `Delivered` record in the same commit, so its id stays delivered until
//! it expires. The entries themselves count as delivery records at start.
//! It does not commit, and it keeps no other delivered ids.

use std::fmt;
use std::io;

use meshpost_proto::envelope::{EnvelopeId, MAX_ENVELOPE_LEN};
use meshpost_proto::identity::NodeId;
use serde::{Deserialize, Serialize};

use super::inbox_files::PartInfo;
use super::inbox_tally::Tally;
use super::record::{Table, delivered_payload};
use super::segments::Log;

/// The first line of every inbox file.
const MAGIC: &[u8] = b"meshpost-inbox 1\n";
/// Largest header line (the JSON fields without the body).
const MAX_HEADER: usize = 4096;
/// Largest inbox file this version writes or reads.
pub const MAX_FILE: usize = MAGIC.len() + MAX_HEADER + 1 + MAX_ENVELOPE_LEN;

/// One delivered message, as stored and as shown to clients.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Message {
    pub id: String,
    pub from: String,
    #[serde(default)]
    pub from_name: String,
    pub created: u64,
    pub received: u64,
    pub expires: u64,
    /// The body as text (invalid UTF-8 shown with replacement characters);
    /// the file keeps the exact bytes.
    #[serde(default)]
    pub text: String,
    #[serde(default)]
    pub read: bool,
    /// Set for a part of a file (whose `text` is then empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part: Option<PartInfo>,
}

/// The header line: everything but the body.
#[derive(Serialize, Deserialize)]
struct Header {
    id: String,
    from: String,
    #[serde(default)]
    from_name: String,
    created: u64,
    received: u64,
    expires: u64,
    #[serde(default)]
    read: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    part: Option<PartInfo>,
}

/// Why a message could not be added.
#[derive(Debug)]
pub enum InboxError {
    /// Count or byte limit reached and every message is unread.
    Full { messages: usize, bytes: usize },
    /// The file could not be written.
    Io(io::Error),
}

impl fmt::Display for InboxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InboxError::Full { messages, bytes } => write!(
                f,
                "inbox full of unread messages ({messages} messages, {bytes} bytes); read or delete some to receive more"
            ),
            InboxError::Io(e) => write!(f, "cannot write the inbox entry: {e}"),
        }
    }
}

/// Encodes a message file: magic, header line, raw body.
pub fn encode(m: &Message, body: &[u8]) -> io::Result<Vec<u8>> {
    let h = Header {
        id: m.id.clone(),
        from: m.from.clone(),
        from_name: m.from_name.clone(),
        created: m.created,
        received: m.received,
        expires: m.expires,
        read: m.read,
        part: m.part.clone(),
    };
    let header = serde_json::to_vec(&h).map_err(io::Error::other)?;
    if header.len() > MAX_HEADER || body.len() > MAX_ENVELOPE_LEN {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "inbox message larger than the protocol allows"));
    }
    let mut out = Vec::with_capacity(MAGIC.len() + header.len() + 1 + body.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&header);
    out.push(b'\n');
    out.extend_from_slice(body);
    Ok(out)
}

/// Decodes a message file into the message and its body length.
pub fn decode(bytes: &[u8]) -> Result<(Message, usize), String> {
    let rest = bytes.strip_prefix(MAGIC).ok_or("not an inbox file (bad first line)")?;
    let nl = rest.iter().take(MAX_HEADER + 1).position(|b| *b == b'\n').ok_or("header line missing or too long")?;
    let h: Header = serde_json::from_slice(&rest[..nl]).map_err(|e| format!("header: {e}"))?;
    let body = &rest[nl + 1..];
    if body.len() > MAX_ENVELOPE_LEN {
        return Err("body larger than the protocol allows".into());
    }
    if let Some(p) = &h.part {
        p.check(body.len())?;
    }
    let m = Message {
        id: h.id,
        from: h.from,
        from_name: h.from_name,
        created: h.created,
        received: h.received,
        expires: h.expires,
        // A part's bytes stay on disk, not in memory.
        text: if h.part.is_some() { String::new() } else { String::from_utf8_lossy(body).into_owned() },
        read: h.read,
        part: h.part,
    };
    Ok((m, body.len()))
}

/// Delivered messages in arrival order.
pub struct Inbox {
    pub(super) max: usize,
    pub(super) max_bytes: usize,
    /// Each message (or file part) with its body length.
    pub(super) msgs: Vec<(Message, usize)>,
    pub(super) bytes: usize,
    /// Counts over `msgs`, kept current (inbox_tally.rs).
    tally: Tally,
}

impl Inbox {
    /// Loads the inbox from the log; an unreadable entry is set aside
    /// (`log/ID.inbox.bad`) and reported. The caller commits.
    pub fn load(log: &mut Log, max: usize, max_bytes: usize) -> (Inbox, Vec<String>) {
        let mut msgs = Vec::new();
        let mut problems = Vec::new();
        for key in log.keys(Table::Inbox) {
            let got = log.get(Table::Inbox, &key).map_err(|e| e.to_string());
            match got.and_then(|b| decode(&b.unwrap_or_default())) {
                Ok(m) => msgs.push(m),
                Err(e) => {
                    let kept = log.set_aside(Table::Inbox, key);
                    problems.push(format!("inbox entry {} unreadable ({e}); {kept}", EnvelopeId(key)));
                }
            }
        }
        msgs.sort_by(|a, b| (a.0.received, &a.0.id).cmp(&(b.0.received, &b.0.id)));
        msgs.dedup_by(|a, b| a.0.id == b.0.id);
        let bytes = msgs.iter().map(|(_, n)| n).sum();
        let tally = Tally::of(&msgs);
        let mut inbox = Inbox { max: max.max(1), max_bytes: max_bytes.max(1), msgs, bytes, tally };
        // A complete file was checked when its last part arrived; a part
        // changed on disk since then fails here and is set aside.
        for f in inbox.files().into_iter().filter(|f| f.complete) {
            if !inbox.verify_file(log, &f.id).unwrap_or(false) {
                problems.push(format!(
                    "file {} ({}) in the inbox fails its hash check; its parts set aside as log/*.inbox.bad",
                    f.id, f.name
                ));
                let parts: Vec<String> = inbox
                    .list()
                    .filter(|m| m.part.as_ref().is_some_and(|p| p.file == f.id))
                    .map(|m| m.id.clone())
                    .collect();
                for id in parts.iter().filter_map(|id| EnvelopeId::parse(id)) {
                    log.set_aside(Table::Inbox, id.0);
                }
                let _ = inbox.remove_entry(log, &f.id, false);
            }
        }
        (inbox, problems)
    }

    pub fn set_limits(&mut self, max: usize, max_bytes: usize) {
        self.max = max.max(1);
        self.max_bytes = max_bytes.max(1);
    }

    /// Messages held, a file counting as one.
    pub fn len(&self) -> usize {
        self.tally.entries()
    }

    pub fn is_empty(&self) -> bool {
        self.msgs.is_empty()
    }

    /// Body bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn unread(&self) -> usize {
        self.tally.unread()
    }

    /// True when the next message of `body_len` bytes would be refused; a
    /// part of a file already here (`new_entry` false) adds no message.
    pub fn is_full_for(&self, body_len: usize, new_entry: bool) -> bool {
        (new_entry && self.unread() >= self.max) || self.bytes - self.tally.read_bytes() + body_len > self.max_bytes
    }

    /// Every record: text messages and file parts (the delivery records).
    pub fn list(&self) -> impl Iterator<Item = &Message> {
        self.msgs.iter().map(|(m, _)| m)
    }

    /// Text messages only, for listing (files: [`Inbox::files`]).
    pub fn texts(&self) -> impl Iterator<Item = &Message> {
        self.list().filter(|m| m.part.is_none())
    }

    pub fn contains(&self, id: &str) -> bool {
        self.tally.contains(id)
    }

    /// Stores a message (buffered in the log: the caller commits before
    /// telling anyone). To make room it removes read messages, oldest
    /// first, each leaving its delivered id, and returns their ids; it
    /// refuses rather than drop an unread one.
    pub fn add(&mut self, log: &mut Log, m: Message, body: &[u8]) -> Result<Vec<String>, InboxError> {
        let new_entry = m.part.as_ref().is_none_or(|p| !self.tally.has_file(&p.file));
        if self.is_full_for(body.len(), new_entry) {
            return Err(InboxError::Full { messages: self.len(), bytes: self.bytes });
        }
        let key = key_of(&m.id).map_err(InboxError::Io)?;
        let bytes = encode(&m, body).map_err(InboxError::Io)?;
        log.put(Table::Inbox, key, &bytes).map_err(|e| InboxError::Io(io::Error::other(e)))?;
        self.bytes += body.len();
        self.tally.add(&m, body.len());
        self.msgs.push((m, body.len()));
        let mut dropped = Vec::new();
        while self.len() > self.max || self.bytes > self.max_bytes {
            let Some(pos) = self.msgs.iter().position(|(m, _)| m.read) else { break };
            // A read file goes whole: all its parts.
            let old = &self.msgs[pos].0;
            let key = old.part.as_ref().map_or_else(|| old.id.clone(), |p| p.file.clone());
            if self.remove_entry(log, &key, true).is_err() {
                break;
            }
            dropped.push(key);
        }
        Ok(dropped)
    }

    /// The running counts agree with a count from scratch (for tests).
    #[cfg(test)]
    pub(super) fn tally_is_current(&self) -> bool {
        self.tally == Tally::of(&self.msgs)
    }

    /// Marks a message read and returns it (the flag is buffered in the
    /// log; the caller commits).
    pub fn read(&mut self, log: &mut Log, id: &str) -> Option<Message> {
        let (m, n) = self.msgs.iter_mut().find(|(m, _)| m.id == id)?;
        if !m.read {
            // The entry is written again with the flag set; the body is
            // read back so the stored bytes stay exact.
            if let Ok(key) = key_of(id)
                && let Ok(Some(b)) = log.get(Table::Inbox, &key)
                && let Some(body) = body_of(&b)
            {
                let mut marked = m.clone();
                marked.read = true;
                if let Ok(bytes) = encode(&marked, body)
                    && log.put(Table::Inbox, key, &bytes).is_ok()
                {
                    self.tally.mark_read(m, *n);
                    m.read = true;
                }
            }
        }
        Some(m.clone())
    }

    /// Deletes a message, or a file with all its parts, each leaving its
    /// delivered id.
    pub fn delete(&mut self, log: &mut Log, id: &str) -> Result<bool, io::Error> {
        Ok(self.remove_entry(log, id, true)? > 0)
    }

    /// Removes the text message `key`, or every part of the file `key`;
    /// with `record`, each leaves a `Delivered` record in the same commit.
    /// An id that is not an envelope id removes nothing.
    pub(super) fn remove_entry(&mut self, log: &mut Log, key: &str, record: bool) -> io::Result<usize> {
        let hit = |m: &Message| match &m.part {
            Some(p) => p.file == key,
            None => m.id == key,
        };
        let mut doomed = Vec::new();
        for (m, _) in self.msgs.iter().filter(|(m, _)| hit(m)) {
            doomed.push((key_of(&m.id)?, m.expires, NodeId::parse(&m.from).unwrap_or(NodeId([0; 16]))));
        }
        for (id, expires, from) in &doomed {
            if record {
                log.put(Table::Delivered, *id, &delivered_payload(*expires, &from.0)).map_err(io::Error::other)?;
            }
            log.del(Table::Inbox, *id);
        }
        let before = self.msgs.len();
        let mut kept = Vec::with_capacity(before);
        for (m, n) in std::mem::take(&mut self.msgs) {
            if hit(&m) {
                self.bytes -= n;
            } else {
                kept.push((m, n));
            }
        }
        self.msgs = kept;
        self.tally = Tally::of(&self.msgs);
        Ok(before - self.msgs.len())
    }
}

/// The log key of an inbox message: its envelope id.
fn key_of(id: &str) -> io::Result<[u8; 16]> {
    EnvelopeId::parse(id)
        .map(|e| e.0)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, format!("inbox id {id:?} is not an envelope id")))
}

/// The body of an encoded message file.
pub(super) fn body_of(bytes: &[u8]) -> Option<&[u8]> {
    let rest = bytes.strip_prefix(MAGIC)?;
    let nl = rest.iter().position(|b| *b == b'\n')?;
    Some(&rest[nl + 1..])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(i: u64) -> Message {
        Message {
            id: format!("{i:032x}"),
            from: "f".into(),
            from_name: String::new(),
            created: i,
            received: i,
            expires: i + 100,
            text: format!("m{i}"),
            read: false,
            part: None,
        }
    }

    fn add(inbox: &mut Inbox, log: &mut Log, i: u64) -> Result<Vec<String>, InboxError> {
        let m = msg(i);
        let body = m.text.clone().into_bytes();
        let r = inbox.add(log, m, &body);
        log.commit().unwrap();
        r
    }

    fn open(tag: &str) -> (std::path::PathBuf, Log) {
        let dir = std::env::temp_dir().join(format!("meshpost-inbox-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (log, _) = Log::open(&dir).unwrap();
        (dir, log)
    }

    #[test]
    fn bounded_never_drops_unread_and_sets_bad_entries_aside() {
        let (dir, mut log) = open("bounded");
        let (mut inbox, problems) = Inbox::load(&mut log, 3, 1 << 20);
        assert!(problems.is_empty());
        for i in 0..3 {
            add(&mut inbox, &mut log, i).unwrap();
        }
        assert!(matches!(add(&mut inbox, &mut log, 3), Err(InboxError::Full { .. })), "unread mail is not dropped");
        assert_eq!(inbox.len(), 3);
        assert_eq!(inbox.read(&mut log, &msg(1).id).unwrap().text, "m1");
        assert!(inbox.tally_is_current());
        assert_eq!(add(&mut inbox, &mut log, 3).unwrap(), vec![msg(1).id], "a read message makes room");
        assert!(inbox.tally_is_current());
        let one = EnvelopeId::parse(&msg(1).id).unwrap().0;
        assert!(log.contains(Table::Delivered, &one) && !log.contains(Table::Inbox, &one), "its id stays delivered");
        assert!(inbox.delete(&mut log, &msg(3).id).unwrap());
        assert!(inbox.tally_is_current());
        assert!(!inbox.delete(&mut log, &msg(3).id).unwrap());
        log.put(Table::Inbox, [0xee; 16], b"{not an inbox entry").unwrap();
        log.commit().unwrap();
        drop(log);
        let (mut log, _) = Log::open(&dir).unwrap();
        let (back, problems) = Inbox::load(&mut log, 3, 1 << 20);
        assert_eq!(back.len(), 2);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(dir.join(format!("{}.inbox.bad", "ee".repeat(16))).exists(), "moved aside, not deleted");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn bodies_are_stored_raw_within_the_protocol_bound() {
        let m = msg(1);
        let body: Vec<u8> = (0..MAX_ENVELOPE_LEN).map(|i| (i % 32) as u8).collect();
        let bytes = encode(&m, &body).unwrap();
        assert!(bytes.len() <= MAX_FILE, "control characters are not escaped");
        assert!(bytes.len() <= super::super::record::MAX_PAYLOAD, "fits one log record");
        let (back, n) = decode(&bytes).unwrap();
        assert_eq!((back.id, n), (m.id, body.len()));
        assert_eq!(body_of(&bytes).unwrap(), &body[..]);
        assert!(decode(b"meshpost-inbox 1\n{}").is_err());
        assert!(decode(&bytes[..10]).is_err());
    }

    #[test]
    fn the_byte_limit_holds_too() {
        let (dir, mut log) = open("bytes");
        let (mut inbox, _) = Inbox::load(&mut log, 100, 5);
        add(&mut inbox, &mut log, 1).unwrap();
        add(&mut inbox, &mut log, 2).unwrap();
        assert!(matches!(add(&mut inbox, &mut log, 3), Err(InboxError::Full { .. })));
        assert_eq!(inbox.bytes(), 4);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
