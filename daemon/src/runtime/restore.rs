//! Start-up: taking back stored envelopes, cards and delivered ids from the
//! state directory, and recording delivered ids that outlive inbox files.
//! Unreadable files are quarantined, never deleted.

use super::*;

/// Appends a message's id to delivered.log, so it stays a delivery after
/// its inbox file is gone.
pub(crate) fn record_delivered(state: &State, m: &Message) -> std::io::Result<()> {
    let id = EnvelopeId::parse(&m.id).ok_or_else(|| std::io::Error::other("inbox message id is not an envelope id"))?;
    let from = NodeId::parse(&m.from).unwrap_or(NodeId([0; 16]));
    state.append_delivered(&id, m.expires, &from)
}

/// Loads envelopes, delivered ids and cards from the state directory. The
/// delivered ids are those in delivered.log and those in the inbox.
pub(crate) fn restore(node: &mut Node, state: &State, inbox: &Inbox, now: Timestamp) -> usize {
    let now_s = now.unix_s();
    let mut n = 0;
    let (delivered, problem) = state.delivered(now_s);
    if let Some(p) = problem {
        warn!("{p}");
    }
    for (id, exp, origin) in delivered {
        node.restore_delivered(id, origin, exp);
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
                // Its messages are refused as "no session": the senders
                // start new sessions.
                warn!("sessions file {} unreadable ({e}); moved aside as .bad", path.display());
                state.quarantine(&path);
            }
        }
    }
    for (path, bytes) in state.envelopes() {
        let bytes = match bytes {
            Ok(b) => b,
            Err(e) => {
                warn!("stored envelope {} unreadable ({e}); moved aside as .bad", path.display());
                state.quarantine(&path);
                continue;
            }
        };
        match node.restore_envelope(&bytes, now) {
            Ok(id) => {
                n += 1;
                let expected = path.file_stem().and_then(|s| s.to_str()).and_then(EnvelopeId::parse);
                if expected != Some(id) {
                    let _ = state.write_envelope(&id, &bytes);
                    state.remove_file(&path);
                }
            }
            Err(e) if e.is_expired() => state.remove_file(&path),
            Err(e) => {
                warn!("stored envelope {} refused ({e}); moved aside as .bad", path.display());
                state.quarantine(&path);
            }
        }
    }
    n
}
