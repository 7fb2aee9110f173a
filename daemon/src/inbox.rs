//! The local inbox: messages delivered to this node, kept until deleted.
//!
//! Bounded by `inbox_max` messages; when full, the oldest message is
//! dropped with a warning. Each message is one JSON file in STATE/inbox, so
//! a delivery is durable before the sender is told it arrived.

use serde::{Deserialize, Serialize};

use crate::persist::{State, write_durable};

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
    pub text: String,
    #[serde(default)]
    pub read: bool,
}

/// Delivered messages in arrival order.
pub struct Inbox {
    max: usize,
    msgs: Vec<Message>,
}

impl Inbox {
    /// Loads the inbox; unreadable files are quarantined and reported.
    pub fn load(state: &State, max: usize) -> (Inbox, Vec<String>) {
        let mut msgs = Vec::new();
        let mut problems = Vec::new();
        for (path, bytes) in state.inbox_files() {
            match bytes
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice::<Message>(&b).map_err(|e| e.to_string()))
            {
                Ok(m) => msgs.push(m),
                Err(e) => {
                    problems.push(format!("inbox file {} unreadable ({e}); moved aside as .bad", path.display()));
                    state.quarantine(&path);
                }
            }
        }
        msgs.sort_by(|a, b| (a.received, &a.id).cmp(&(b.received, &b.id)));
        (Inbox { max: max.max(1), msgs }, problems)
    }

    pub fn set_max(&mut self, max: usize) {
        self.max = max.max(1);
    }

    pub fn len(&self) -> usize {
        self.msgs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.msgs.is_empty()
    }

    pub fn unread(&self) -> usize {
        self.msgs.iter().filter(|m| !m.read).count()
    }

    pub fn list(&self) -> &[Message] {
        &self.msgs
    }

    /// Stores a message durably; returns the ids dropped to make room.
    pub fn add(&mut self, state: &State, m: Message) -> std::io::Result<Vec<String>> {
        let bytes = serde_json::to_vec(&m).map_err(std::io::Error::other)?;
        write_durable(&state.inbox_path(&m.id), &bytes, 0o600)?;
        self.msgs.push(m);
        let mut dropped = Vec::new();
        while self.msgs.len() > self.max {
            let old = self.msgs.remove(0);
            state.remove_file(&state.inbox_path(&old.id));
            dropped.push(old.id);
        }
        Ok(dropped)
    }

    /// Marks a message read and returns it.
    pub fn read(&mut self, state: &State, id: &str) -> Option<Message> {
        let m = self.msgs.iter_mut().find(|m| m.id == id)?;
        if !m.read {
            m.read = true;
            if let Ok(bytes) = serde_json::to_vec(&*m) {
                let _ = write_durable(&state.inbox_path(id), &bytes, 0o600);
            }
        }
        Some(m.clone())
    }

    pub fn delete(&mut self, state: &State, id: &str) -> bool {
        let Some(pos) = self.msgs.iter().position(|m| m.id == id) else {
            return false;
        };
        self.msgs.remove(pos);
        state.remove_file(&state.inbox_path(id));
        true
    }
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
        }
    }

    #[test]
    fn bounded_durable_and_quarantines_bad_files() {
        let dir = std::env::temp_dir().join(format!("meshpost-inbox-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let state = State::open(&dir).unwrap();
        let (mut inbox, problems) = Inbox::load(&state, 3);
        assert!(problems.is_empty());
        for i in 0..5 {
            inbox.add(&state, msg(i)).unwrap();
        }
        assert_eq!(inbox.len(), 3, "inbox_max holds");
        assert_eq!(inbox.list()[0].text, "m2", "oldest dropped first");
        assert_eq!(inbox.read(&state, &msg(3).id).unwrap().text, "m3");
        assert!(inbox.delete(&state, &msg(4).id));
        std::fs::write(state.inbox_path("garbage"), b"{not json").unwrap();
        let (back, problems) = Inbox::load(&state, 3);
        assert_eq!(back.len(), 2);
        assert_eq!(back.unread(), 1, "read flag persisted");
        assert_eq!(problems.len(), 1);
        assert!(dir.join("inbox/garbage.bad").exists(), "moved aside, not deleted");
        // Joined channel keys: a corrupt line keeps the whole file aside.
        let key = meshpost_proto::channel::ChannelKey::from_bytes([7; 32]);
        state.save_channels(&[("ok".into(), key.clone())]).unwrap();
        let good = std::fs::read_to_string(dir.join("channels")).unwrap();
        std::fs::write(dir.join("channels"), format!("{good}broken line\n")).unwrap();
        let loaded = state.channels();
        assert_eq!(loaded.len(), 1);
        assert_eq!(loaded[0].1, key);
        assert!(std::fs::read_to_string(dir.join("channels.bad")).unwrap().contains("broken line"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
