//! File commands: sending a file that arrived over the control socket,
//! reading a received file piece by piece, and the one-entry-per-file
//! views of `inbox` and `outbox`.
//!
//! It does not carry the upload itself (control/upload.rs reads it in
//! bounded pieces) nor store parts (persist/inbox_files.rs).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use meshpost_proto::crypto::to_hex;
use rand_core::RngCore;

use super::*;
use crate::control::protocol::Upload;
use crate::persist::inbox_files::file_key;
use crate::persist::outbox::{FileTag, Record};

/// Most file bytes in one `inbox read` answer (base64 makes it 4/3).
pub const FILE_CHUNK: usize = 48 * 1024;

impl Daemon {
    /// Splits, seals and stores a file as parts for `to`: all parts are
    /// durable before the answer, or none is kept.
    pub(super) fn send_file(&mut self, up: Upload, now: Timestamp) -> Value {
        let max = self.settings.file_max;
        if max == 0 {
            return error("sending files is switched off here (file_max 0)");
        }
        if up.data.len() > max {
            return error(format!("file of {} bytes is larger than file_max ({max} bytes)", up.data.len()));
        }
        let to = match self.resolve_to(&up.to) {
            Ok(t) => t,
            Err(e) => return error(e),
        };
        let mut file_id = [0u8; 16];
        OsRng.fill_bytes(&mut file_id);
        let parts = match filepart::split(file_id, &up.name, &up.media_type, &up.data) {
            Ok(p) => p,
            Err(e) => return error(e.to_string()),
        };
        let ttl = up.ttl.map(|t| t.min(u32::MAX as u64) as u32);
        let hops = up.hops.map(|h| h.min(255) as u8);
        let ids = match self.node.send_file(now, to, &parts, ttl, hops) {
            Ok(ids) => ids,
            Err(e) => return error(format!("file not sent: {e}")),
        };
        self.failed_writes.clear();
        self.drain();
        if ids.iter().any(|id| self.failed_writes.contains(id) || self.node.is_pending_write(id)) {
            for id in &ids {
                self.node.withdraw(*id);
            }
            self.drain();
            return error("could not write the file's parts to the state directory; not sent");
        }
        let key_hex = file_key(&self.node.node_id().0, &file_id);
        let mut key = [0u8; 16];
        if let Some(k) = meshpost_proto::crypto::from_hex_bytes(&key_hex, 16) {
            key.copy_from_slice(&k);
        }
        let since = now.unix_s();
        let count = ids.len() as u16;
        let records: Vec<Record> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| Record {
                id: *id,
                to,
                state: SentState::Queued,
                since,
                file: Some(FileTag { key, index: i as u16, count }),
            })
            .collect();
        if let Err(e) = self.outbox.record_file(&up.name, &records) {
            self.persist_errors += 1;
            warn!("cannot record file {key_hex} in outbox.log: {e}");
        }
        self.messages_sent += 1;
        debug!("queued file {key_hex} '{}' to {to}: {} bytes in {count} parts", up.name, up.data.len());
        json!({"ok": true, "id": key_hex, "to": to.to_string(), "parts": count, "size": up.data.len(),
            "hash": to_hex(&filepart::file_hash(&up.data)), "linked": self.node.is_linked(&to)})
    }

    /// A sent file as one outbox entry: `delivered` once every part is,
    /// `expired`/`dropped`/`refused` if any part is, else `forwarded` once every part
    /// is, else `queued`.
    pub(super) fn sent_file_json(&self, key: &[u8; 16]) -> Option<Value> {
        let parts = self.outbox.file_parts(key);
        let first = parts.first()?;
        let count = first.file.map_or(0, |f| f.count) as usize;
        let n = |f: &dyn Fn(SentState) -> bool| parts.iter().filter(|r| f(r.state)).count();
        let delivered = n(&|s| s == SentState::Delivered);
        let forwarded = n(&|s| matches!(s, SentState::Forwarded | SentState::Delivered));
        let state = if delivered == count {
            SentState::Delivered
        } else if let Some(bad) = parts.iter().find(|r| r.state.is_final() && r.state != SentState::Delivered) {
            bad.state
        } else if forwarded == count {
            SentState::Forwarded
        } else {
            SentState::Queued
        };
        let since = parts.iter().map(|r| r.since).max().unwrap_or(0);
        Some(json!({"id": to_hex(key), "to": first.to.to_string(),
            "to_name": self.node.card(&first.to).map(|c| c.name.clone()),
            "state": state.name(), "reason": state.reason(), "since": since, "verified": self.contacts.is_verified(&first.to),
            "file": {"name": self.outbox.file_name(key).unwrap_or(""), "parts": count,
                "forwarded": forwarded, "delivered": delivered}}))
    }

    /// Outbox entries newest first, a file once (where its newest part is).
    pub(super) fn outbox_items(&self) -> Vec<Value> {
        let mut seen = std::collections::BTreeSet::new();
        let mut out = Vec::new();
        for r in self.outbox.newest_first() {
            match r.file {
                None => out.push(self.sent_json(r)),
                Some(f) => {
                    if seen.insert(f.key)
                        && let Some(v) = self.sent_file_json(&f.key)
                    {
                        out.push(v);
                    }
                }
            }
        }
        out
    }

    /// Inbox entries in arrival order: text messages, and each file once.
    pub(super) fn inbox_items(&self) -> Vec<Value> {
        let verified = |from: &str| NodeId::parse(from).is_some_and(|f| self.contacts.is_verified(&f));
        let mut items: Vec<(u64, Value)> = self
            .inbox
            .texts()
            .map(|m| {
                let mut v = json!(m);
                v["verified"] = json!(verified(&m.from));
                v["kind"] = json!("text");
                (m.received, v)
            })
            .collect();
        for f in self.inbox.files() {
            let mut v = json!(f);
            v["verified"] = json!(verified(&f.from));
            v["kind"] = json!("file");
            items.push((f.received, v));
        }
        // Unstable sort on (time, position): the same order as a stable one.
        let mut keyed: Vec<(u64, usize, Value)> = items.into_iter().enumerate().map(|(i, (t, v))| (t, i, v)).collect();
        keyed.sort_unstable_by_key(|(t, i, _)| (*t, *i));
        keyed.into_iter().map(|(_, _, v)| v).collect()
    }

    /// `inbox read` of a file: its entry, marked read, and with `offset`
    /// up to `limit` bytes (at most [`FILE_CHUNK`]) of it in base64.
    pub(super) fn read_file(&mut self, key: &str, offset: Option<usize>, limit: Option<usize>) -> Value {
        let Some(f) = self.inbox.file(key) else {
            return error("no such message in the inbox");
        };
        if f.complete {
            self.inbox.mark_file_read(&mut self.log, key);
            self.commit();
        }
        let verified = NodeId::parse(&f.from).is_some_and(|n| self.contacts.is_verified(&n));
        let mut entry = json!(self.inbox.file(key).unwrap_or(f));
        entry["verified"] = json!(verified);
        entry["kind"] = json!("file");
        let Some(offset) = offset else {
            return json!({"ok": true, "message": entry});
        };
        let len = limit.unwrap_or(FILE_CHUNK).clamp(1, FILE_CHUNK);
        match self.inbox.read_file(&self.log, key, offset as u64, len) {
            Ok(Some(data)) => {
                let end = offset as u64 + data.len() as u64;
                let size = entry["size"].as_u64().unwrap_or(0);
                json!({"ok": true, "message": entry, "offset": offset, "data": B64.encode(&data),
                    "next": (end < size).then_some(end)})
            }
            Ok(None) => error("that part of the file has not arrived yet"),
            Err(e) => error(format!("cannot read the file: {e}")),
        }
    }
}
