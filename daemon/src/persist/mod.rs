//! The state directory: identity, the state log, known cards, sessions.
//!
//! ```text
//! STATE/identity.key        the node's secret seed, mode 0600
//! STATE/log/NNNNNNNN.seg    the state log (segments.rs): stored envelopes,
//!                           inbox entries (inbox.rs) and delivered ids
//! STATE/outbox.log          what became of the messages sent (outbox.rs)
//! STATE/cards/NODE.ann      verified announces: other nodes' public keys
//! STATE/channels            channels joined at run time: name and key, 0600
//! STATE/sessions/NODE.ses   end-to-end sessions received from NODE, 0600
//! ```
//! What acknowledges something (a local send, a delivery) is a record in
//! the log, committed (one fsync per turn of the daemon's loop) before
//! anyone is told. A delivery is one record, the inbox entry; when the
//! entry goes, a delivered-id record replaces it in the same commit, so
//! the two can never disagree about a delivery.
//!
//! Other files go to a temporary file, are fsynced, renamed into place,
//! and the directory is fsynced, so a crash leaves either the old state or
//! the new one. A `*.tmp` left by a crash was never acknowledged and is
//! removed at start. Files that fail to parse are renamed to `*.bad`,
//! never deleted. The layout before the log (`store/ID.env`,
//! `inbox/ID.msg`, `delivered.log`) is moved into it at start (migrate.rs).

pub mod contacts;
pub mod inbox;
pub mod inbox_files;
mod inbox_tally;
pub mod migrate;
pub mod outbox;
pub mod record;
pub mod segments;

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use meshpost_proto::envelope::{EnvelopeId, MAX_ENVELOPE_LEN};
use meshpost_proto::identity::{Identity, NodeId};
use rand_core::OsRng;

/// Handle on the state directory.
pub struct State {
    dir: PathBuf,
}

fn mkdir(p: &Path) -> io::Result<()> {
    match fs::create_dir(p) {
        Ok(()) => fs::set_permissions(p, fs::Permissions::from_mode(0o700)),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// Reads a file of at most `max` bytes.
fn read_limited(p: &Path, max: usize) -> io::Result<Vec<u8>> {
    let f = File::open(p)?;
    // Sized once from the file's length: a `take` hides it from
    // `read_to_end`, which then grew the buffer by doubling, to up to
    // twice the file (a segment compacted while 10,000 messages were
    // queued, heaptrack).
    let len = f.metadata().map_or(0, |m| m.len()).min(max as u64 + 1);
    let mut buf = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    f.take(max as u64 + 1).read_to_end(&mut buf)?;
    if buf.len() > max {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("larger than {max} bytes")));
    }
    Ok(buf)
}

/// Writes `bytes` to `path` atomically and durably with `mode`.
pub fn write_durable(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    let written = (|| {
        let mut f = OpenOptions::new().write(true).create(true).truncate(true).mode(mode).open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        // A full disk keeps no half-written file.
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    if let Some(parent) = path.parent() {
        File::open(parent)?.sync_all()?;
    }
    Ok(())
}

impl State {
    /// Opens (creating if needed) the state directory.
    pub fn open(dir: &Path) -> Result<State, String> {
        let s = State { dir: dir.to_path_buf() };
        fs::create_dir_all(dir).map_err(|e| format!("cannot create state directory {}: {e}", dir.display()))?;
        // The directory holds the identity and private messages.
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .map_err(|e| format!("cannot set mode 0700 on {}: {e}", dir.display()))?;
        for sub in ["cards", "sessions"] {
            let p = dir.join(sub);
            mkdir(&p).map_err(|e| format!("cannot create {}: {e}", p.display()))?;
            // mkdir says "exists" for a plain file too; every write would fail.
            if !fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir()) {
                return Err(format!(
                    "{} is not a directory; move it aside (nothing in it is used) and start again",
                    p.display()
                ));
            }
        }
        let log = dir.join("delivered.log");
        if fs::symlink_metadata(&log).is_ok_and(|m| !m.is_file()) {
            return Err(format!(
                "{} is not a regular file; move it aside (it records which messages were delivered)",
                log.display()
            ));
        }
        Ok(s)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Removes `*.tmp` files that interrupted writes left behind; none of
    /// them was acknowledged. Returns how many there were.
    pub fn clean_tmp(&self) -> usize {
        let mut n = 0;
        for sub in ["", "store", "inbox", "cards", "sessions"] {
            for p in list(&self.dir.join(sub), "tmp") {
                if fs::remove_file(&p).is_ok() {
                    n += 1;
                }
            }
        }
        n
    }

    /// Loads the identity, or creates one on first start. Refuses a file
    /// that others can read, or that is corrupt.
    pub fn identity(&self) -> Result<(Identity, bool), String> {
        let path = self.dir.join("identity.key");
        // A symlink whose target is missing (flash not mounted yet) must not
        // be replaced by a new identity: the node would become someone else.
        if let Ok(m) = fs::symlink_metadata(&path)
            && m.file_type().is_symlink()
            && fs::metadata(&path).is_err()
        {
            let target = fs::read_link(&path).map(|t| t.display().to_string()).unwrap_or_default();
            return Err(format!(
                "identity file {} is a link to {target}, which does not exist (is that storage mounted?); refusing to create a new identity",
                path.display()
            ));
        }
        match fs::metadata(&path) {
            Ok(meta) if !meta.is_file() => Err(format!(
                "identity file {} is not a regular file; move it aside to create a new identity",
                path.display()
            )),
            Ok(meta) => {
                let mode = meta.permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    return Err(format!(
                        "identity file {} has mode {mode:04o}: it must not be readable by group or others; run: chmod 600 {}",
                        path.display(),
                        path.display()
                    ));
                }
                let bytes = read_limited(&path, 4096).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                let id = Identity::from_file_bytes(&bytes).map_err(|e| {
                    format!(
                        "identity file {} is corrupt ({e}); restore it from a backup, or move it away to create a new identity",
                        path.display()
                    )
                })?;
                Ok((id, false))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let id = Identity::generate(&mut OsRng);
                write_durable(&path, &id.to_file_bytes(), 0o600)
                    .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
                Ok((id, true))
            }
            Err(e) => Err(format!("cannot stat {}: {e}", path.display())),
        }
    }

    /// Every envelope file of the earlier layout with its bytes (or the
    /// read error), to be moved into the log.
    pub fn envelopes(&self) -> Vec<(PathBuf, io::Result<Vec<u8>>)> {
        read_all(&self.dir.join("store"), "env", MAX_ENVELOPE_LEN)
    }

    /// Moves a file that failed to load aside as `*.bad`.
    pub fn quarantine(&self, p: &Path) {
        let _ = fs::rename(p, p.with_extension("bad"));
    }

    pub fn remove_file(&self, p: &Path) {
        let _ = fs::remove_file(p);
    }

    /// Loads the delivered ids of the earlier layout's delivered.log that
    /// are still unexpired at `now` (and compacts it).
    /// Lines that do not parse are kept in `delivered.log.bad` first (a
    /// lost id could let a re-sent copy be delivered twice), and reported.
    /// Lines of the earlier "ID EXPIRES" form have an all-zero origin.
    pub fn delivered(&self, now: u64) -> (Vec<(EnvelopeId, u64, NodeId)>, Option<String>) {
        let path = self.dir.join("delivered.log");
        let bytes = match read_limited(&path, 64 << 20) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return (Vec::new(), None),
            Err(e) => return (Vec::new(), Some(format!("cannot read {}: {e}", path.display()))),
        };
        let text = String::from_utf8_lossy(&bytes);
        let mut bad = 0usize;
        let mut out: Vec<(EnvelopeId, u64, NodeId)> = Vec::new();
        for l in text.lines().filter(|l| !l.trim().is_empty()) {
            let mut w = l.split(' ');
            let id = w.next().and_then(EnvelopeId::parse);
            let exp = w.next().and_then(|e| e.trim().parse::<u64>().ok());
            let origin = match w.next() {
                None => Some(NodeId([0; 16])),
                Some(o) => NodeId::parse(o.trim()),
            };
            match (id, exp, origin) {
                (Some(id), Some(exp), Some(origin)) => {
                    if exp > now {
                        out.push((id, exp, origin));
                    }
                }
                _ => bad += 1,
            }
        }
        out.sort_by_key(|(id, _, _)| *id);
        out.dedup_by_key(|(id, _, _)| *id);
        let mut problem = None;
        if bad > 0 {
            let kept = path.with_extension("log.bad");
            let _ = write_durable(&kept, &bytes, 0o600);
            problem =
                Some(format!("{}: {bad} unreadable lines; the file was kept as {}", path.display(), kept.display()));
        }
        let compact: String = out.iter().map(|(id, e, o)| format!("{id} {e} {o}\n")).collect();
        let _ = write_durable(&path, compact.as_bytes(), 0o600);
        (out, problem)
    }

    fn card_path(&self, node: &NodeId) -> PathBuf {
        self.dir.join("cards").join(format!("{node}.ann"))
    }

    pub fn save_card(&self, node: &NodeId, bytes: &[u8]) {
        let _ = write_durable(&self.card_path(node), bytes, 0o644);
    }

    /// Deletes the saved announce of a node whose card was forgotten.
    pub fn remove_card(&self, node: &NodeId) {
        let _ = fs::remove_file(self.card_path(node));
    }

    pub fn cards(&self) -> Vec<(PathBuf, io::Result<Vec<u8>>)> {
        read_all(&self.dir.join("cards"), "ann", 8192)
    }

    fn sessions_path(&self, node: &NodeId) -> PathBuf {
        self.dir.join("sessions").join(format!("{node}.ses"))
    }

    /// Saves the end-to-end sessions received from `node` (secret keys:
    /// 0600, written like everything that acknowledges something).
    pub fn save_sessions(&self, node: &NodeId, bytes: &[u8]) -> io::Result<()> {
        write_durable(&self.sessions_path(node), bytes, 0o600)
    }

    pub fn remove_sessions(&self, node: &NodeId) {
        let _ = fs::remove_file(self.sessions_path(node));
    }

    /// Saved session files; one holds at most 16 sessions and the book's
    /// whole allowance of skipped keys (about 1.2 MB), anything larger is
    /// not ours.
    pub fn sessions(&self) -> Vec<(PathBuf, io::Result<Vec<u8>>)> {
        read_all(&self.dir.join("sessions"), "ses", meshpost_proto::session::MAX_FILE_LEN)
    }

    /// Channels joined at run time: `name key` lines, mode 0600 (secret).
    /// If any line does not parse, the file is first copied to
    /// `channels.bad` (mode 0600), so the next save cannot lose a key.
    pub fn channels(&self) -> Vec<(String, meshpost_proto::channel::ChannelKey)> {
        let path = self.dir.join("channels");
        let Ok(bytes) = read_limited(&path, 1 << 20) else { return Vec::new() };
        let text = String::from_utf8_lossy(&bytes);
        let mut bad = 0;
        let list = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .filter_map(|l| {
                let parsed = l
                    .split_once(' ')
                    .and_then(|(n, k)| Some((n.to_string(), meshpost_proto::channel::ChannelKey::parse(k)?)));
                bad += usize::from(parsed.is_none());
                parsed
            })
            .collect();
        if bad > 0 {
            let kept = path.with_extension("bad");
            let _ = write_durable(&kept, &bytes, 0o600);
            crate::warn!("{}: {bad} unreadable lines; the file was kept as {}", path.display(), kept.display());
        }
        list
    }

    pub fn save_channels(&self, list: &[(String, meshpost_proto::channel::ChannelKey)]) -> io::Result<()> {
        let mut text = zeroize::Zeroizing::new(String::new());
        for (name, key) in list {
            text.push_str(name);
            text.push(' ');
            text.push_str(&key.to_share_string());
            text.push('\n');
        }
        write_durable(&self.dir.join("channels"), text.as_bytes(), 0o600)
    }

    /// Inbox files of the earlier layout, to be moved into the log.
    pub fn inbox_files(&self) -> Vec<(PathBuf, io::Result<Vec<u8>>)> {
        read_all(&self.dir.join("inbox"), "msg", inbox::MAX_FILE)
    }

    /// Inbox files of the earlier JSON format (a body escaped as JSON can
    /// be six times its size), to be converted.
    pub fn legacy_inbox_files(&self) -> Vec<(PathBuf, io::Result<Vec<u8>>)> {
        read_all(&self.dir.join("inbox"), "json", 6 * MAX_ENVELOPE_LEN + 4096)
    }
}

/// Every `*.ext` file in `dir` (sorted) with its bytes, or the error that
/// kept them (a file larger than `max` included).
fn read_all(dir: &Path, ext: &str, max: usize) -> Vec<(PathBuf, io::Result<Vec<u8>>)> {
    list(dir, ext)
        .into_iter()
        .map(|p| {
            let b = read_limited(&p, max);
            (p, b)
        })
        .collect()
}

fn list(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let Ok(rd) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> =
        rd.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == ext)).collect();
    v.sort();
    v
}
