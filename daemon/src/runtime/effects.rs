//! Carrying out the node's actions: datagrams out, envelope files written
//! and removed, deliveries written to the inbox, channel messages to
//! their subscribers, events to the log. Every write is reported back to
//! the node (`persisted` / `persist_failed`); nothing here decides what
//! is acknowledged.

use super::*;

impl Daemon {
    /// Carries out the node's actions in order.
    pub(super) fn drain(&mut self) {
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
                Action::Persist { id, bytes } => match self.state.write_envelope(&id, &bytes) {
                    Ok(()) => self.node.persisted(id),
                    Err(e) => {
                        self.persist_errors += 1;
                        self.failed_writes.push(id);
                        self.state.remove_envelope(&id);
                        self.node.persist_failed(id);
                        error!("cannot persist envelope {id}: {e}");
                    }
                },
                Action::Unpersist { id } => self.state.remove_envelope(&id),
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
                // stored, so it is delivered.
                self.delivered_durably(&d.id, d.expires, &d.from);
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
        let state = &self.state;
        // A read message that makes room keeps its delivered.log line.
        let forget = |m: &Message| record_delivered(state, m);
        match self.inbox.add(&self.state, msg.clone(), &body, forget) {
            Ok(dropped) => {
                for id in dropped {
                    debug!("inbox: removed read message {id} to make room");
                }
                if self.inbox_full_since.take().is_some() {
                    notice!("inbox writable and with room again; messages left with senders will now arrive");
                }
                self.delivered_durably(&d.id, d.expires, &d.from);
                debug!("message {} from {} delivered ({} bytes)", d.id, d.from, body.len());
                match &msg.part {
                    Some(p) => self.file_part_stored(&p.file),
                    None => {
                        let mut ev = serde_json::to_value(&msg).unwrap_or(Value::Null);
                        if let Some(o) = ev.as_object_mut() {
                            o.insert("event".into(), json!("message"));
                        }
                        let _ = self.events.send(Arc::from(ev.to_string()));
                    }
                }
            }
            Err(e) => {
                self.state.remove_file(&self.state.inbox_path(&msg.id));
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

    /// The inbox file is the delivery record; the delivered.log line lets
    /// the id outlive the file. If that fails, the file still counts.
    fn delivered_durably(&mut self, id: &EnvelopeId, expires: u64, from: &NodeId) {
        if let Err(e) = self.state.append_delivered(id, expires, from) {
            self.persist_errors += 1;
            warn!("cannot append to delivered.log ({e}); the inbox file records message {id}");
        }
        self.node.persisted(*id);
    }

    /// A part of a file is stored: tell subscribers how far it is, and when
    /// it is complete, check the whole file's hash (a mismatch discards it).
    fn file_part_stored(&mut self, key: &str) {
        let Some(f) = self.inbox.file(key) else { return };
        if f.complete {
            match self.inbox.verify_file(&self.state, key) {
                Ok(true) => debug!("file {key} '{}' from {} complete ({} bytes)", f.name, f.from, f.size),
                Ok(false) | Err(_) => {
                    let state = &self.state;
                    let _ = self.inbox.remove_file(state, key, |m| record_delivered(state, m));
                    self.files_failed += 1;
                    warn!("file '{}' from {} does not match its hash; discarded", f.name, f.from);
                    let ev = json!({"event": "file_failed", "id": key, "from": f.from, "name": f.name});
                    let _ = self.events.send(Arc::from(ev.to_string()));
                    return;
                }
            }
        }
        let mut ev = serde_json::to_value(&f).unwrap_or(Value::Null);
        if let Some(o) = ev.as_object_mut() {
            o.insert("event".into(), json!(if f.complete { "file" } else { "file_progress" }));
        }
        let _ = self.events.send(Arc::from(ev.to_string()));
    }

    /// Removes files that can no longer complete (their newest part has
    /// expired, so no sender still holds the rest).
    pub(super) fn drop_stale_files(&mut self, now_s: u64) {
        for key in self.inbox.stale_files(now_s) {
            let state = &self.state;
            let name = self.inbox.file(&key).map(|f| f.name).unwrap_or_default();
            match self.inbox.remove_file(state, &key, |m| record_delivered(state, m)) {
                Ok(n) => info!("file {key} '{name}' expired with parts missing; removed its {n} parts"),
                Err(e) => warn!("cannot remove the stale file {key}: {e}"),
            }
        }
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

    /// Carries out the actions of a local send or publish, whose `Persist`
    /// comes first, and says whether the envelope is durable. If not, it is
    /// taken back, so nothing is acknowledged that a crash could lose.
    pub(super) fn make_durable(&mut self, id: &EnvelopeId) -> bool {
        self.failed_writes.clear();
        self.drain();
        // The node forwards nothing before `persisted`, and took the
        // envelope back on `persist_failed`: a retry makes no duplicate.
        !self.failed_writes.contains(id) && !self.node.is_pending_write(id)
    }
}
