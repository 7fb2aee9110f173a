//! Running counts of the inbox (entries, unread, read bytes, ids), kept
//! beside its records so that taking a delivery costs no walk over the
//! whole inbox. It deliberately holds no messages and writes nothing; the
//! inbox updates it on each add and recounts after the rarer changes
//! (reading, deleting, making room).

use std::collections::{BTreeMap, BTreeSet};

use super::inbox::Message;

#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Tally {
    texts: usize,
    unread_texts: usize,
    /// Per file: its parts held, and how many are unread.
    files: BTreeMap<String, (usize, usize)>,
    unread_files: usize,
    read_bytes: usize,
    ids: BTreeSet<String>,
}

impl Tally {
    pub(super) fn of(msgs: &[(Message, usize)]) -> Tally {
        let mut t = Tally::default();
        for (m, n) in msgs {
            t.add(m, *n);
        }
        t
    }

    pub(super) fn add(&mut self, m: &Message, n: usize) {
        self.ids.insert(m.id.clone());
        if m.read {
            self.read_bytes += n;
        }
        match &m.part {
            None => {
                self.texts += 1;
                self.unread_texts += usize::from(!m.read);
            }
            Some(p) => {
                let f = self.files.entry(p.file.clone()).or_insert((0, 0));
                f.0 += 1;
                if !m.read {
                    f.1 += 1;
                    self.unread_files += usize::from(f.1 == 1);
                }
            }
        }
    }

    /// `m` (unread, `n` body bytes) is being marked read.
    pub(super) fn mark_read(&mut self, m: &Message, n: usize) {
        if m.read {
            return;
        }
        self.read_bytes += n;
        match &m.part {
            None => self.unread_texts = self.unread_texts.saturating_sub(1),
            Some(p) => {
                if let Some(f) = self.files.get_mut(&p.file) {
                    f.1 = f.1.saturating_sub(1);
                    if f.1 == 0 {
                        self.unread_files = self.unread_files.saturating_sub(1);
                    }
                }
            }
        }
    }

    /// Messages held, a file counting as one.
    pub(super) fn entries(&self) -> usize {
        self.texts + self.files.len()
    }

    /// Unread messages, a file with any unread part counting as one.
    pub(super) fn unread(&self) -> usize {
        self.unread_texts + self.unread_files
    }

    pub(super) fn read_bytes(&self) -> usize {
        self.read_bytes
    }

    pub(super) fn contains(&self, id: &str) -> bool {
        self.ids.contains(id)
    }

    pub(super) fn has_file(&self, file: &str) -> bool {
        self.files.contains_key(file)
    }
}
