//! The contact list (`STATE/contacts`): node ids this node's user added
//! from their cards, with the name the user gave each. The cards
//! themselves are card files like any other (`cards/ID.ann`). One line per
//! contact, `NODEID NAME`, rewritten whole (write_durable) on each change.
//! It decides nothing about keys (the node refuses key changes).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use meshpost_proto::identity::NodeId;

use super::{read_limited, write_durable};

pub struct Contacts {
    path: PathBuf,
    names: BTreeMap<NodeId, String>,
}

impl Contacts {
    /// Reads the list; lines that do not parse are counted and dropped.
    pub fn load(dir: &Path) -> (Contacts, usize) {
        let path = dir.join("contacts");
        let bytes = read_limited(&path, 1 << 20).unwrap_or_default();
        let (mut names, mut bad) = (BTreeMap::new(), 0);
        for line in String::from_utf8_lossy(&bytes).lines().filter(|l| !l.trim().is_empty()) {
            let (id, name) = line.split_once(' ').unwrap_or((line, ""));
            match NodeId::parse(id) {
                Some(id) => {
                    names.insert(id, name.trim().to_string());
                }
                None => bad += 1,
            }
        }
        (Contacts { path, names }, bad)
    }

    fn save(&self) -> std::io::Result<()> {
        let text: String = self.names.iter().map(|(id, n)| format!("{id} {n}\n")).collect();
        write_durable(&self.path, text.as_bytes(), 0o600)
    }

    pub fn set(&mut self, id: NodeId, name: &str) -> std::io::Result<()> {
        // One line per contact: no line breaks or control characters.
        let name: String = name.chars().filter(|c| !c.is_control()).take(64).collect();
        self.names.insert(id, name);
        self.save()
    }

    pub fn remove(&mut self, id: &NodeId) -> std::io::Result<bool> {
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
