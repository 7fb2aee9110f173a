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

    /// Writes a delivered message to the inbox and tells the node whether
    /// it is durable; only then does the node acknowledge it.
    pub(super) fn deliver(&mut self, d: meshpost_proto::node::Delivery) {
        let msg = Message {
            id: d.id.to_string(),
            from: d.from.to_string(),
            from_name: d.from_name.clone(),
            created: d.created,
            received: now_ms() / 1000,
            expires: d.expires,
            text: String::from_utf8_lossy(&d.body).into_owned(),
            read: false,
        };
        let state = &self.state;
        // A read message that makes room keeps its delivered.log line.
        let forget = |m: &Message| record_delivered(state, m);
        match self.inbox.add(&self.state, msg.clone(), &d.body, forget) {
            Ok(dropped) => {
                for id in dropped {
                    debug!("inbox: removed read message {id} to make room");
                }
                if self.inbox_full_since.take().is_some() {
                    notice!("inbox writable and with room again; messages left with senders will now arrive");
                }
                // The inbox file is the delivery record; this line lets the
                // id outlive the file. If it fails, the file still counts.
                if let Err(e) = self.state.append_delivered(&d.id, d.expires, &d.from) {
                    self.persist_errors += 1;
                    warn!("cannot append to delivered.log ({e}); the inbox file records message {}", d.id);
                }
                self.node.persisted(d.id);
                debug!("message {} from {} delivered ({} bytes)", d.id, d.from, d.body.len());
                let mut ev = serde_json::to_value(&msg).unwrap_or(Value::Null);
                if let Some(o) = ev.as_object_mut() {
                    o.insert("event".into(), json!("message"));
                }
                let _ = self.events.send(Arc::from(ev.to_string()));
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

    /// After a read or delete: if the inbox has room again, take messages.
    pub(super) fn reopen_inbox(&mut self) {
        if self.inbox_full_since.is_some() && !self.inbox.is_full_for(0) {
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
