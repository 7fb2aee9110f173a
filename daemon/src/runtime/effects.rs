//! Carrying out the node's actions: datagrams out, envelopes put into and
//! taken out of the state log, deliveries written to the inbox, channel
//! messages to their subscribers, events to the log. The writes of one
//! turn share one commit (group commit); only after it is every write
//! reported back to the node (`persisted` / `persist_failed`) and are
//! subscribers told of new messages. Nothing here decides what is
//! acknowledged.

use super::*;

impl Daemon {
    /// Carries out the node's actions, committing their writes together,
    /// until the node has nothing more to do.
    pub(super) fn drain(&mut self) {
        loop {
            self.carry_out();
            if self.uncommitted.is_empty()
                && !self.log.has_pending()
                && self.after_commit.is_empty()
                && self.delivered_lines.is_empty()
            {
                break;
            }
            self.commit();
        }
        if let Err(e) = self.outbox.flush() {
            self.persist_errors += 1;
            warn!("cannot append to outbox.log ({e}); `meshpost outbox` may show older states after a restart");
        }
    }

    /// Commits the state log: one fsync for every write since the last
    /// commit. Then the node learns which writes are durable, and
    /// subscribers hear of the messages. Returns whether it succeeded.
    pub(super) fn commit(&mut self) -> bool {
        let ids = std::mem::take(&mut self.uncommitted);
        let events = std::mem::take(&mut self.after_commit);
        let inbox_changed = std::mem::take(&mut self.inbox_changed);
        let lines = std::mem::take(&mut self.delivered_lines);
        match self.log.commit() {
            Ok(()) => {
                for l in lines {
                    debug!("{l}");
                }
                if self.log_failing.take().is_some() {
                    notice!("the state log is writable again");
                }
                if inbox_changed && self.inbox_full_since.take().is_some() {
                    notice!("inbox writable and with room again; messages left with senders will now arrive");
                }
                for id in ids {
                    self.node.persisted(id);
                }
                for e in events {
                    let _ = self.events.send(e);
                }
                match self.log.maintain(now_ms() / 1000) {
                    Ok(true) => debug!("state log: oldest segment compacted, {:?}", self.log.sizes()),
                    Ok(false) => {}
                    Err(e) => debug!("state log: compaction deferred ({e})"),
                }
                true
            }
            Err(e) => {
                self.persist_errors += 1;
                if self.log_failing.is_none() {
                    self.log_failing = Some(now_ms());
                    error!(
                        "cannot write the state log in {} ({e}); {} writes not made and none acknowledged: messages for this node stay with their senders, local sends fail",
                        self.state.dir().join("log").display(),
                        ids.len()
                    );
                } else {
                    debug!("state log still not writable ({e})");
                }
                for id in ids {
                    self.failed_writes.push(id);
                    self.node.persist_failed(id);
                }
                if inbox_changed {
                    // The inbox in memory went ahead of the log: read it back.
                    let (inbox, _) = Inbox::load(&mut self.log, self.settings.inbox_max, self.settings.inbox_max_bytes);
                    self.inbox = inbox;
                    self.inbox_full_since.get_or_insert(now_ms());
                }
                false
            }
        }
    }

    /// Carries out the node's actions in order.
    fn carry_out(&mut self) {
        while let Some(a) = self.node.poll_action() {
            match a {
                Action::Transmit { to, data } => {
                    let to = match (to, self.udp_v6) {
                        (SocketAddr::V4(v4), true) => SocketAddr::new(IpAddr::V6(v4.ip().to_ipv6_mapped()), v4.port()),
                        (a, _) => a,
                    };
                    // UDP is lossy anyway: a full socket buffer drops the
                    // datagram and the sync protocol resends what matters.
                    if self.udp_send.send_to(&data, to).is_err() {
                        self.send_errors += 1;
                    }
                }
                Action::Persist { id, bytes } => match self.log.put(Table::Envelope, id.0, &bytes) {
                    Ok(()) => self.uncommitted.push(id),
                    Err(e) => {
                        self.persist_errors += 1;
                        self.failed_writes.push(id);
                        self.node.persist_failed(id);
                        error!("cannot store envelope {id}: {e}");
                    }
                },
                Action::Unpersist { id } => self.log.del(Table::Envelope, id.0),
                Action::Load { id } => self.read_back(id),
                Action::SaveStart { sid, to, header } => {
                    // In the commit of the first message sealed in it.
                    let mut payload = to.0.to_vec();
                    payload.extend_from_slice(&header);
                    if let Err(e) = self.log.put(Table::Start, start_key(&sid), &payload) {
                        warn!("cannot keep the start of a session with {to}: {e}");
                    }
                }
                Action::ForgetStart { sid } => self.log.del(Table::Start, start_key(&sid)),
                Action::Deliver(d) => self.deliver(d),
                Action::SaveCard { node, envelope } => self.state.save_card(&node, &envelope),
                Action::ForgetCard { node } => self.state.remove_card(&node),
                Action::ForgetSessions { origin } => self.state.remove_sessions(&origin),
                Action::Sent { id, to, state } => self.record_sent(id, to, state),
                Action::ChannelDeliver { channel, message: d } => {
                    let (max, age) = (self.settings.channel_history, self.settings.channel_history_age);
                    let Some(c) = self.channels.iter_mut().find(|c| c.id == channel) else { continue };
                    let msg = json!({"event": "channel", "channel": c.name, "id": d.id.to_string(),
                        "from": d.from.to_string(), "from_name": d.from_name, "created": d.created,
                        "text": String::from_utf8_lossy(&d.body)});
                    debug!("channel {}: message {} from {}", c.name, d.id, d.from);
                    c.history.push_back(msg.clone());
                    prune(&mut c.history, max, age, now_ms() / 1000);
                    let _ = c.tx.send(Arc::from(msg.to_string()));
                }
                Action::Event(e) => {
                    if e.is_warning() {
                        warn!("{e}");
                    } else if matches!(
                        e,
                        meshpost_proto::node::Event::EnvelopeDropped { .. }
                            | meshpost_proto::node::Event::HandshakeFailed { .. }
                            // One per node of the mesh: the hourly summary counts them.
                            | meshpost_proto::node::Event::CardUpdated { .. }
                    ) {
                        debug!("{e}");
                    } else {
                        info!("{e}");
                    }
                }
            }
        }
    }

    /// Reads a stored envelope whose bytes the node let go back from the
    /// state log. A record that no longer reads as what was written is set
    /// aside and the envelope is lost (the node says so); any other error
    /// (out of file handles, say) skips this send only: the peer asks again.
    fn read_back(&mut self, id: EnvelopeId) {
        match self.log.get(Table::Envelope, &id.0) {
            Ok(Some(bytes)) => {
                self.read_back_failing = false;
                self.node.loaded(id, &bytes)
            }
            Ok(None) => self.node.load_failed(id, "not in the state log"),
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                let kept = self.log.set_aside(Table::Envelope, id.0);
                self.node.load_failed(id, &format!("{e}; {kept}"));
            }
            Err(e) => {
                if core::mem::replace(&mut self.read_back_failing, true) {
                    debug!("still cannot read envelope {id} back from the state log ({e})");
                } else {
                    warn!(
                        "cannot read envelope {id} back from the state log ({e}); it stays stored and is sent when a read works"
                    );
                }
                self.node.load_later(id);
            }
        }
    }

    /// Writes a delivered message (or file part) to the inbox and tells
    /// the node whether it is durable; only then does the node acknowledge it.
    pub(super) fn deliver(&mut self, d: meshpost_proto::node::Delivery) {
        // The sender's sessions first: the message key stays in them until
        // the inbox entry is durable, so a crash between the two writes
        // loses nothing.
        if let Some(bytes) = &d.sessions
            && let Err(e) = self.state.save_sessions(&d.from, bytes.as_bytes())
        {
            self.persist_errors += 1;
            // One line per episode (a full or read-only state dir), as for
            // the inbox write; the next stored message ends it.
            if self.inbox_full_since.is_none() {
                self.inbox_full_since = Some(now_ms());
                error!(
                    "cannot save the end-to-end sessions of {} ({e}); message {} not acknowledged, the sender keeps it",
                    d.from, d.id
                );
            } else {
                debug!("sessions of {} still cannot be saved ({e})", d.from);
            }
            self.node.sessions_save_failed(d.from);
            self.node.persist_failed(d.id);
            return;
        }
        let (part, body) = if d.content_type == filepart::CONTENT_FILE {
            // The node only delivers parts that decode (e2e::unpad_direct).
            match filepart::decode(&d.body) {
                Ok(p) => (Some(PartInfo::of(&d.from.0, &p)), p.data),
                Err(e) => {
                    warn!("message {} from {}: {e}; not stored", d.id, d.from);
                    self.node.delivery_refused(d.id, d.from, d.expires, meshpost_proto::ack::REFUSED_UNSUPPORTED);
                    return;
                }
            }
        } else {
            (None, d.body)
        };
        if let Some(p) = &part {
            if p.size as usize > self.settings.inbox_max_bytes {
                // It could never fit: refused for good, and the sender told.
                if !self.refused_files.contains(&p.file) {
                    if self.refused_files.len() >= MAX_REFUSED_FILES {
                        self.refused_files.clear();
                    }
                    self.refused_files.insert(p.file.clone());
                    warn!(
                        "file '{}' ({} bytes) from {} is larger than inbox_max_bytes ({}); refused",
                        p.name, p.size, d.from, self.settings.inbox_max_bytes
                    );
                }
                self.node.delivery_refused(d.id, d.from, d.expires, meshpost_proto::ack::REFUSED_TOO_LARGE);
                return;
            }
            if self.inbox.has_part(&p.file, p.index) {
                // The same part again under another envelope id: already
                // stored, so it is delivered (its id recorded as such).
                let p = delivered_payload(d.expires, &d.from.0);
                match self.log.put(Table::Delivered, d.id.0, &p) {
                    Ok(()) => self.uncommitted.push(d.id),
                    Err(_) => self.node.persist_failed(d.id),
                }
                return;
            }
        }
        let msg = Message {
            id: d.id.to_string(),
            from: d.from.to_string(),
            from_name: d.from_name.clone(),
            created: d.created,
            received: now_ms() / 1000,
            expires: d.expires,
            text: if part.is_some() { String::new() } else { String::from_utf8_lossy(&body).into_owned() },
            read: false,
            part,
        };
        match self.inbox.add(&mut self.log, msg.clone(), &body) {
            Ok(dropped) => {
                self.inbox_changed = true;
                for id in dropped {
                    debug!("inbox: removed read message {id} to make room");
                }
                // The inbox entry is the delivery record: acknowledged
                // once the commit has it.
                self.uncommitted.push(d.id);
                // Logged once durable: one line per delivery, ever.
                self.delivered_lines.push(format!("message {} from {} delivered ({} bytes)", d.id, d.from, body.len()));
                match &msg.part {
                    Some(p) => self.file_part_stored(&p.file),
                    None => {
                        let mut ev = serde_json::to_value(&msg).unwrap_or(Value::Null);
                        if let Some(o) = ev.as_object_mut() {
                            o.insert("event".into(), json!("message"));
                        }
                        self.after_commit.push(Arc::from(ev.to_string()));
                    }
                }
            }
            Err(e) => {
                self.node.persist_failed(d.id);
                match e {
                    InboxError::Io(_) => self.persist_errors += 1,
                    // Nothing for us is decrypted until a message is read
                    // or deleted (see reopen_inbox).
                    InboxError::Full { .. } => self.node.set_inbox_open(false),
                }
                // One line per episode, not one per retry of each message.
                if self.inbox_full_since.is_none() {
                    self.inbox_full_since = Some(now_ms());
                    error!("cannot store delivered message {} ({e}); not acknowledged, the sender keeps it", d.id);
                } else {
                    debug!("message {} still cannot be stored ({e})", d.id);
                }
            }
        }
    }

    /// A part of a file is stored: tell subscribers how far it is, and when
    /// it is complete, check the whole file's hash (a mismatch discards it).
    fn file_part_stored(&mut self, key: &str) {
        let Some(f) = self.inbox.file(key) else { return };
        if f.complete {
            match self.inbox.verify_file(&self.log, key) {
                Ok(true) => debug!("file {key} '{}' from {} complete ({} bytes)", f.name, f.from, f.size),
                Ok(false) | Err(_) => {
                    let _ = self.inbox.remove_file(&mut self.log, key);
                    self.files_failed += 1;
                    warn!("file '{}' from {} does not match its hash; discarded", f.name, f.from);
                    let ev = json!({"event": "file_failed", "id": key, "from": f.from, "name": f.name});
                    self.after_commit.push(Arc::from(ev.to_string()));
                    return;
                }
            }
        }
        let mut ev = serde_json::to_value(&f).unwrap_or(Value::Null);
        if let Some(o) = ev.as_object_mut() {
            o.insert("event".into(), json!(if f.complete { "file" } else { "file_progress" }));
        }
        self.after_commit.push(Arc::from(ev.to_string()));
    }

    /// Removes files that can no longer complete (their newest part has
    /// expired, so no sender still holds the rest).
    pub(super) fn drop_stale_files(&mut self, now_s: u64) {
        for key in self.inbox.stale_files(now_s) {
            let name = self.inbox.file(&key).map(|f| f.name).unwrap_or_default();
            match self.inbox.remove_file(&mut self.log, &key) {
                Ok(n) => info!("file {key} '{name}' expired with parts missing; removed its {n} parts"),
                Err(e) => warn!("cannot remove the stale file {key}: {e}"),
            }
        }
        self.commit();
        self.reopen_inbox();
    }

    /// After a read or delete: if the inbox has room again, take messages.
    pub(super) fn reopen_inbox(&mut self) {
        if self.inbox_full_since.is_some() && !self.inbox.is_full_for(0, true) {
            self.inbox_full_since = None;
            self.node.set_inbox_open(true);
            notice!("inbox has room again; messages left with senders will arrive at their next offer");
        }
    }

    /// Handles control requests that arrived together. Plain sends share
    /// one commit and are answered after it; one whose write failed is
    /// answered with an error instead (and shows as dropped in the outbox).
    pub(super) fn answer(&mut self, batch: Vec<crate::control::Incoming>) {
        let mut replies = Vec::with_capacity(batch.len());
        let (sends, others): (Vec<_>, Vec<_>) =
            batch.into_iter().partition(|r| matches!(r.request, crate::control::protocol::Request::Send { .. }));
        self.failed_writes.clear();
        for req in sends {
            self.batch_sent = Some(Vec::new());
            let reply = self.handle(req.request);
            let ids = self.batch_sent.take().unwrap_or_default();
            replies.push((req.reply, reply, ids));
        }
        self.drain();
        for (tx, reply, ids) in replies {
            let lost: Vec<EnvelopeId> = ids
                .into_iter()
                .filter(|id| self.failed_writes.contains(id) || self.node.is_pending_write(id))
                .collect();
            let reply = if lost.is_empty() {
                reply
            } else {
                for id in lost {
                    if let Some(to) = self.outbox.get(&id).map(|r| r.to) {
                        self.record_sent(id, to, SentState::Dropped);
                    }
                    self.messages_sent = self.messages_sent.saturating_sub(1);
                }
                crate::control::Reply::Json(crate::control::error(
                    "could not write the message to the state directory; not sent",
                ))
            };
            let _ = tx.send(reply);
        }
        // Anything else one by one, after the sends' commit.
        for req in others {
            let reply = self.handle(req.request);
            let _ = req.reply.send(reply);
            self.drain();
        }
    }

    /// Carries out the actions of a local send or publish, whose `Persist`
    /// comes first, and says whether the envelope is durable. If not, it is
    /// taken back, so nothing is acknowledged that a crash could lose.
    pub(super) fn make_durable(&mut self, id: &EnvelopeId) -> bool {
        if let Some(ids) = &mut self.batch_sent {
            // Answered after the batch's commit (`answer`).
            ids.push(*id);
            self.carry_out();
            return !self.failed_writes.contains(id);
        }
        self.failed_writes.clear();
        self.drain();
        // The node forwards nothing before `persisted`, and took the
        // envelope back on `persist_failed`: a retry makes no duplicate.
        !self.failed_writes.contains(id) && !self.node.is_pending_write(id)
    }
}

/// The state log key of a session start: its id, then zeros.
fn start_key(sid: &meshpost_proto::session::SessionId) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..sid.len()].copy_from_slice(sid);
    k
}
