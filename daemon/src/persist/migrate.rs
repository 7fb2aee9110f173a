//! Moving a state directory of the earlier layout (one file per stored
//! envelope in `store/`, per inbox message in `inbox/`, and
//! `delivered.log`) into the state log, so an upgraded router keeps every
//! message it held.
//!
//! Everything readable is put into the log and committed first; only then
//! are the old files removed, so a crash halfway leaves the old files to
//! be moved again at the next start (the same keys: nothing doubles).
//! Unreadable files are moved aside as `*.bad`, as before. It does not
//! check envelopes (restore.rs does that once they are in the log).

use std::fs;
use std::path::PathBuf;

use meshpost_proto::envelope::{Envelope, EnvelopeId};

use super::State;
use super::inbox::{self, Message};
use super::record::{Table, delivered_payload};
use super::segments::Log;

/// What was moved, for the start-up notice.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Moved {
    pub envelopes: usize,
    pub inbox: usize,
    pub delivered: usize,
}

impl Moved {
    pub fn any(&self) -> bool {
        self.envelopes + self.inbox + self.delivered > 0
    }
}

/// Counts a file that was put into the log (removed after the commit), or
/// moves one that could not be read aside as `.bad` and says so.
fn settle(
    state: &State,
    r: Result<(), String>,
    path: PathBuf,
    what: &str,
    count: &mut usize,
    done: &mut Vec<PathBuf>,
    problems: &mut Vec<String>,
) {
    match r {
        Ok(()) => {
            *count += 1;
            done.push(path);
        }
        Err(e) => {
            problems.push(format!("{what} {} unreadable ({e}); moved aside as .bad", path.display()));
            state.quarantine(&path);
        }
    }
}

/// Moves the earlier layout into `log`. Problems (unreadable files) are
/// returned for the log; an error means nothing was removed.
pub fn migrate(state: &State, log: &mut Log, now_s: u64) -> Result<(Moved, Vec<String>), String> {
    let mut moved = Moved::default();
    let mut problems = Vec::new();
    let mut done: Vec<PathBuf> = Vec::new();
    for (path, bytes) in state.envelopes() {
        let r = bytes.map_err(|e| e.to_string()).and_then(|b| {
            let (id, _) = Envelope::peek_id(&b).map_err(|e| e.to_string())?;
            log.put(Table::Envelope, id.0, &b).map_err(|e| e.to_string())
        });
        settle(state, r, path, "stored envelope", &mut moved.envelopes, &mut done, &mut problems);
    }
    let put_message = |log: &mut Log, m: &Message, body: &[u8]| -> Result<(), String> {
        let id = EnvelopeId::parse(&m.id).ok_or("its id is not an envelope id")?;
        let bytes = inbox::encode(m, body).map_err(|e| e.to_string())?;
        log.put(Table::Inbox, id.0, &bytes).map_err(|e| e.to_string())
    };
    for (path, bytes) in state.inbox_files() {
        let r = bytes.map_err(|e| e.to_string()).and_then(|b| {
            let (m, _) = inbox::decode(&b)?;
            put_message(log, &m, inbox::body_of(&b).unwrap_or_default())
        });
        settle(state, r, path, "inbox file", &mut moved.inbox, &mut done, &mut problems);
    }
    // The format before `.msg`: JSON, the body as text.
    for (path, bytes) in state.legacy_inbox_files() {
        let r = bytes
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice::<Message>(&b).map_err(|e| e.to_string()))
            .and_then(|m| put_message(log, &m, m.text.as_bytes()));
        settle(state, r, path, "inbox file", &mut moved.inbox, &mut done, &mut problems);
    }
    let old_log = state.dir().join("delivered.log");
    if old_log.exists() {
        let (ids, problem) = state.delivered(now_s);
        problems.extend(problem);
        for (id, expires, origin) in ids {
            // A delivered id in the inbox as well is recorded by its entry.
            if !log.contains(Table::Inbox, &id.0) {
                log.put(Table::Delivered, id.0, &delivered_payload(expires, &origin.0)).map_err(|e| e.to_string())?;
                moved.delivered += 1;
            }
        }
        done.push(old_log);
    }
    if done.is_empty() {
        return Ok((moved, problems));
    }
    log.commit()
        .map_err(|e| format!("cannot move the stored messages into {}: {e}", state.dir().join("log").display()))?;
    for p in done {
        let _ = fs::remove_file(p);
    }
    // Empty now unless something was moved aside.
    for sub in ["store", "inbox"] {
        let _ = fs::remove_dir(state.dir().join(sub));
    }
    Ok((moved, problems))
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshpost_proto::identity::NodeId;

    #[test]
    fn an_earlier_state_directory_moves_into_the_log_whole() {
        let dir = std::env::temp_dir().join(format!("mp-migrate-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let state = State::open(&dir).unwrap();
        for sub in ["store", "inbox"] {
            fs::create_dir_all(dir.join(sub)).unwrap();
        }
        // What the earlier version left: an inbox message of each format,
        // a delivered.log, and a file that is not an inbox message.
        let m = Message {
            id: format!("{:032x}", 7),
            from: NodeId([3; 16]).to_string(),
            from_name: "b".into(),
            created: 1,
            received: 2,
            expires: 4_000_000_000,
            text: "hallo\u{1}".into(),
            read: true,
            part: None,
        };
        fs::write(dir.join("inbox").join(format!("{}.msg", m.id)), inbox::encode(&m, m.text.as_bytes()).unwrap())
            .unwrap();
        let old = Message { id: format!("{:032x}", 8), read: false, ..m.clone() };
        fs::write(dir.join("inbox").join(format!("{}.json", old.id)), serde_json::to_vec(&old).unwrap()).unwrap();
        fs::write(dir.join("inbox/junk.msg"), b"not a message").unwrap();
        let gone = EnvelopeId([9; 16]);
        fs::write(dir.join("delivered.log"), format!("{gone} 4000000000 {}\n{} 4000000000\n", NodeId([5; 16]), m.id))
            .unwrap();
        let (mut log, _) = Log::open(&dir.join("log")).unwrap();
        let (moved, problems) = migrate(&state, &mut log, 1000).unwrap();
        assert_eq!(moved, Moved { envelopes: 0, inbox: 2, delivered: 1 });
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(dir.join("inbox/junk.bad").exists(), "kept, not deleted");
        assert!(!dir.join("delivered.log").exists());
        drop(log);
        let (mut log, _) = Log::open(&dir.join("log")).unwrap();
        let (inbox, problems) = inbox::Inbox::load(&mut log, 10, 1 << 20);
        assert!(problems.is_empty(), "{problems:?}");
        let texts: Vec<(String, bool)> = inbox.list().map(|m| (m.text.clone(), m.read)).collect();
        assert_eq!(texts, vec![("hallo\u{1}".to_string(), true), ("hallo\u{1}".to_string(), false)]);
        assert!(log.contains(Table::Delivered, &gone.0));
        // Nothing left to move: a second start changes nothing.
        let (again, _) = migrate(&state, &mut log, 1000).unwrap();
        assert!(!again.any());
        let _ = fs::remove_dir_all(&dir);
    }
}
