//! The contact list (`STATE/contacts`): node ids this node's user added
//! from their cards, with the name the user gave each and whether the user
//! confirmed the safety number; and the block list (`STATE/blocked`). The
//! cards themselves are card files like any other (`cards/ID.ann`). One
//! line per contact, `NODEID FLAG NAME` (FLAG `v` verified, `-` not), and
//! one node id per line of the block list; each file is rewritten whole
//! (write_durable) on each change. It decides nothing about keys (the node
//! refuses key changes) or messages (the node drops blocked senders').

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use meshpost_proto::identity::NodeId;

use super::{read_limited, write_durable};

pub struct Contacts {
    path: PathBuf,
    names: meshpost_proto::SmallMap<NodeId, String>,
    verified: BTreeSet<NodeId>,
    blocked: BTreeSet<NodeId>,
}

impl Contacts {
    /// Reads the list; lines that do not parse are counted and dropped.
    pub fn load(dir: &Path) -> (Contacts, usize) {
        let path = dir.join("contacts");
        let bytes = read_limited(&path, 1 << 20).unwrap_or_default();
        let (mut names, mut verified, mut bad) = (meshpost_proto::SmallMap::new(), BTreeSet::new(), 0);
        for line in String::from_utf8_lossy(&bytes).lines().filter(|l| !l.trim().is_empty()) {
            let mut w = line.splitn(3, ' ');
            match (w.next().and_then(NodeId::parse), w.next()) {
                (Some(id), Some(flag @ ("v" | "-"))) => {
                    names.insert(id, w.next().unwrap_or("").trim().to_string());
                    if flag == "v" {
                        verified.insert(id);
                    }
                }
                _ => bad += 1,
            }
        }
        let blocked_bytes = read_limited(&dir.join("blocked"), 1 << 20).unwrap_or_default();
        let mut blocked = BTreeSet::new();
        for line in String::from_utf8_lossy(&blocked_bytes).lines().filter(|l| !l.trim().is_empty()) {
            match NodeId::parse(line.trim()) {
                Some(id) => {
                    blocked.insert(id);
                }
                None => bad += 1,
            }
        }
        (Contacts { path, names, verified, blocked }, bad)
    }

    fn save(&self) -> std::io::Result<()> {
        let text: String = self
            .names
            .iter()
            .map(|(id, n)| format!("{id} {} {n}\n", if self.verified.contains(id) { "v" } else { "-" }))
            .collect();
        write_durable(&self.path, text.as_bytes(), 0o600)
    }

    fn save_blocked(&self) -> std::io::Result<()> {
        let text: String = self.blocked.iter().map(|id| format!("{id}\n")).collect();
        write_durable(&self.path.with_file_name("blocked"), text.as_bytes(), 0o600)
    }

    /// Marks a contact's safety number as confirmed by the user.
    pub fn set_verified(&mut self, id: NodeId) -> std::io::Result<bool> {
        if !self.names.contains_key(&id) {
            return Ok(false);
        }
        self.verified.insert(id);
        self.save().map(|_| true)
    }

    pub fn is_verified(&self, id: &NodeId) -> bool {
        self.verified.contains(id)
    }

    pub fn set_blocked(&mut self, id: NodeId, blocked: bool) -> std::io::Result<()> {
        if blocked {
            self.blocked.insert(id)
        } else {
            self.blocked.remove(&id)
        };
        self.save_blocked()
    }

    pub fn blocked(&self) -> impl Iterator<Item = &NodeId> {
        self.blocked.iter()
    }

    pub fn is_blocked(&self, id: &NodeId) -> bool {
        self.blocked.contains(id)
    }

    pub fn set(&mut self, id: NodeId, name: &str) -> std::io::Result<()> {
        // One line per contact: no line breaks or control characters.
        let name: String = name.chars().filter(|c| !c.is_control()).take(64).collect();
        self.names.insert(id, name);
        self.save()
    }

    pub fn remove(&mut self, id: &NodeId) -> std::io::Result<bool> {
        self.verified.remove(id);
        let had = self.names.remove(id).is_some();
        if had {
            self.save()?;
        }
        Ok(had)
    }

    pub fn name(&self, id: &NodeId) -> Option<&str> {
        self.names.get(id).map(String::as_str)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&NodeId, &String)> {
        self.names.iter()
    }

    /// The contact the user named `name`, if exactly one.
    pub fn by_name(&self, name: &str) -> Vec<NodeId> {
        self.names.iter().filter(|(_, n)| n.as_str() == name).map(|(id, _)| *id).collect()
    }
}
