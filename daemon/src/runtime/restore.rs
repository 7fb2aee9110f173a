//! Start-up: taking back stored envelopes, cards, sessions and delivered
//! ids from the state directory and its log. Unreadable files are
//! quarantined and unreadable records set aside, never deleted.

use super::*;
use crate::persist::record::parse_delivered;

/// Loads envelopes, delivered ids, cards and sessions. The delivered ids
/// are the log's delivered records and the inbox's entries. Buffers
/// deletions in `log` (expired envelopes, set-aside records); the caller
/// commits.
pub(crate) fn restore(node: &mut Node, log: &mut Log, state: &State, inbox: &Inbox, now: Timestamp) -> usize {
    let now_s = now.unix_s();
    let mut n = 0;
    for key in log.keys(Table::Delivered) {
        match log.get(Table::Delivered, &key).ok().flatten().as_deref().and_then(parse_delivered) {
            Some((expires, origin)) if expires > now_s => {
                node.restore_delivered(EnvelopeId(key), NodeId(origin), expires)
            }
            // Expired: dropped when its segment is compacted.
            Some(_) => {}
            None => warn!("delivered id {}: {}", EnvelopeId(key), log.set_aside(Table::Delivered, key)),
        }
    }
    for m in inbox.list() {
        if let Some(id) = EnvelopeId::parse(&m.id)
            && m.expires > now_s
        {
            node.restore_delivered(id, NodeId::parse(&m.from).unwrap_or(NodeId([0; 16])), m.expires);
        }
    }
    for (path, bytes) in state.cards() {
        match bytes.map_err(|e| e.to_string()).and_then(|b| node.restore_card(&b).map_err(|e| e.to_string())) {
            Ok(_) => {}
            Err(e) => {
                warn!("card {} unreadable ({e}); moved aside as .bad", path.display());
                state.quarantine(&path);
            }
        }
    }
    for (path, bytes) in state.sessions() {
        // Secret keys: the bytes read are zeroized once taken back.
        let restored = bytes
            .map(zeroize::Zeroizing::new)
            .map_err(|e| e.to_string())
            .and_then(|b| node.restore_sessions(&b).map_err(|e| e.to_string()));
        match restored {
            Ok(origin) if path.file_stem().and_then(|s| s.to_str()) == Some(&origin.to_string()) => {}
            Ok(origin) => warn!("sessions file {} holds the sessions of {origin}; kept as it is", path.display()),
            Err(e) => {
                // Their messages wait while we ask their senders for the
                // sessions' starts (restate.rs in the node).
                warn!("sessions file {} unreadable ({e}); moved aside as .bad", path.display());
                state.quarantine(&path);
            }
        }
    }
    for key in log.keys(Table::Start) {
        let mut sid = [0u8; 8];
        sid.copy_from_slice(&key[..8]);
        let restored = match log.get(Table::Start, &key) {
            Ok(Some(p)) if p.len() > 16 => {
                let mut to = [0u8; 16];
                to.copy_from_slice(&p[..16]);
                node.restore_start(sid, NodeId(to), p[16..].to_vec()).map_err(|e| e.to_string())
            }
            Ok(Some(_)) => Err("shorter than a recipient id".to_string()),
            Ok(None) => continue,
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = restored {
            let sid = meshpost_proto::crypto::to_hex(&sid);
            warn!("session start {sid} refused ({e}); {}", log.set_aside(Table::Start, key));
        }
    }
    for key in log.keys(Table::Envelope) {
        let id = EnvelopeId(key);
        let bytes = match log.get(Table::Envelope, &key) {
            Ok(Some(b)) => b,
            Ok(None) => continue,
            Err(e) => {
                warn!("stored envelope {id} unreadable ({e}); {}", log.set_aside(Table::Envelope, key));
                continue;
            }
        };
        match node.restore_envelope(&bytes, now) {
            Ok(got) if got == id => n += 1,
            Ok(got) => {
                // Filed under another id: file it under its own.
                n += 1;
                let _ = log.put(Table::Envelope, got.0, &bytes);
                log.del(Table::Envelope, key);
            }
            Err(e) if e.is_expired() => log.del(Table::Envelope, key),
            Err(e) => warn!("stored envelope {id} refused ({e}); {}", log.set_aside(Table::Envelope, key)),
        }
    }
    // Starts of sessions no stored message of ours is sealed in go.
    node.forget_unused_starts();
    n
}
