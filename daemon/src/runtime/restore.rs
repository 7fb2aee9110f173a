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
    // In the order written, so a backlog goes on in the order it was sent
    // (offers go by admission): in key order it left in a random one, and
    // its recipient's sessions kept a skipped key for most messages.
    for key in log.keys_in_write_order(Table::Envelope) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use meshpost_proto::identity::{Identity, KEM_CT_LEN};
    use meshpost_proto::node::Config;

    #[test]
    fn damaged_session_starts_are_set_aside_and_a_sound_one_taken_back() {
        let dir = std::env::temp_dir().join(format!("meshpost-restore-starts-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let state = State::open(&dir).unwrap();
        let (mut log, _) = Log::open(&dir.join("log")).unwrap();
        let key = |sid: [u8; 8]| {
            let mut k = [0u8; 16];
            k[..8].copy_from_slice(&sid);
            k
        };
        // A start is the ephemeral key and the KEM ciphertext; its session
        // id is their hash. Record: recipient (16 bytes), then the start.
        let start: Vec<u8> = (0..32 + KEM_CT_LEN).map(|i| i as u8).collect();
        let sid = meshpost_proto::session::session_id(start[..32].try_into().unwrap(), &start[32..]);
        let record = |s: &[u8]| [&[7u8; 16][..], s].concat();
        let misfiled = [sid[0] ^ 1, sid[1], sid[2], sid[3], sid[4], sid[5], sid[6], sid[7]];
        log.put(Table::Start, key(sid), &record(&start)).unwrap();
        log.put(Table::Start, key([1; 8]), &record(&start[..100])).unwrap();
        log.put(Table::Start, key(misfiled), &record(&start)).unwrap();
        log.put(Table::Start, key([2; 8]), &[7u8; 10]).unwrap();
        log.commit().unwrap();
        let (inbox, _) = Inbox::load(&mut log, 100, 1 << 20);
        let now = Timestamp::from(1_800_000_000_000);
        let mut node = Node::new(Identity::from_seed(&[3; 32]), Config::default(), [4; 32], now);
        restore(&mut node, &mut log, &state, &inbox, now);
        log.commit().unwrap();
        // The sound one was taken back (and, with no message needing it,
        // let go at once); the three others are copied out and gone.
        assert_eq!(log.keys(Table::Start), vec![key(sid)]);
        let forgotten: Vec<_> = std::iter::from_fn(|| node.poll_action())
            .filter_map(|a| match a {
                Action::ForgetStart { sid } => Some(sid),
                _ => None,
            })
            .collect();
        assert_eq!(forgotten, vec![sid]);
        for bad in [key([1; 8]), key(misfiled), key([2; 8])] {
            let name = format!("{}.start.bad", meshpost_proto::crypto::to_hex(&bad));
            assert!(dir.join("log").join(&name).exists(), "{name} set aside");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
