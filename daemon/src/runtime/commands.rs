//! Control requests: one answer per request. Reading views lives in
//! views.rs, channel commands in channels.rs.

use super::*;

impl Daemon {
    /// A recipient: a node id, or a unique announced name, either optionally
    /// followed by `@domain`, which must be the domain the node announced.
    pub(super) fn resolve_to(&self, to: &str) -> Result<NodeId, String> {
        if let Some((who, domain)) = to.split_once('@') {
            let foreign = !domain.is_empty() && domain != self.node.config().domain;
            let id = match self.resolve_to(who) {
                Ok(id) => id,
                Err(_) if foreign => {
                    let gateway = if self.node.federation_links().iter().any(|l| l.domain == domain) {
                        format!("this node's federation link to {domain} is up")
                    } else {
                        format!("no federation link to {domain} is up here; a gateway of ours must have one")
                    };
                    return Err(format!(
                        "no keys known for {who}@{domain} yet: its announce has not crossed from {domain} ({gateway}); use its node id once it has, or retry"
                    ));
                }
                Err(e) => return Err(e),
            };
            let announced = self.node.card(&id).map(|c| c.domain.clone());
            return match announced {
                Some(d) if d == domain || (domain == self.node.config().domain && d.is_empty()) => Ok(id),
                Some(d) => Err(format!("{who} announced domain '{d}', not '{domain}'")),
                None => {
                    Err(format!("no keys known for {who}@{domain} yet: its gateway has not passed on its announce"))
                }
            };
        }
        if let Some(id) = NodeId::parse(to) {
            return Ok(id);
        }
        // A name the user gave a contact comes first.
        if let [one] = self.contacts.by_name(to).as_slice() {
            return Ok(*one);
        }
        let matches: Vec<NodeId> = self.node.cards().filter(|c| c.name == to).map(|c| c.node_id()).collect();
        match matches.as_slice() {
            [one] => Ok(*one),
            [] => Err(format!("'{to}' is neither a 32-hex-digit node id nor the name of a known node")),
            _ => Err(format!("the name '{to}' is used by {} nodes; use the node id", matches.len())),
        }
    }

    /// Answers one control request.
    pub(super) fn handle(&mut self, req: Request) -> Reply {
        let now = timestamp();
        let v = match req {
            Request::Status => self.status(),
            Request::Identity => {
                let c = self.node.config();
                let mut v = identity_json(self.node.identity(), &c.name, &c.domain);
                if let Some(card) = self.node.own_card() {
                    v["card"] = json!(format!("{CARD_PREFIX}{}", meshpost_proto::crypto::to_hex(card)));
                }
                v
            }
            Request::Peers => self.peers(now),
            Request::Routes => self.routes(),
            Request::Graph => self.graph(),
            Request::Federation => self.federation(now),
            Request::Send { to, text, ttl, hops } => self.send(&to, &text, ttl, hops, now),
            Request::Inbox { action: InboxAction::List, offset, limit, .. } => {
                let (messages, total, next) = page(self.inbox_items(), offset, limit);
                json!({"ok": true, "messages": messages, "total": total, "next": next})
            }
            Request::Inbox { action: InboxAction::Read, id: Some(id), offset, limit }
                if self.inbox.file(&id).is_some() =>
            {
                let v = self.read_file(&id, offset, limit);
                self.reopen_inbox();
                v
            }
            Request::Inbox { action, id, .. } => self.inbox_cmd(action, id.as_deref()),
            Request::SendFile { .. } | Request::FileData { .. } => {
                error("send_file and file_data are read by the socket")
            }
            Request::Upload(up) => self.send_file(up, now),
            Request::Contact { action, card, name, id } => self.contact_cmd(action, card, name, id),
            Request::Verify { id, confirm } => self.verify_cmd(&id, confirm),
            Request::Selftest => self.selftest(),
            Request::Block { id } => self.block_cmd(&id, true),
            Request::Unblock { id } => self.block_cmd(&id, false),
            Request::Outbox { id: Some(id), .. } => {
                let key = meshpost_proto::crypto::from_hex_bytes(&id, 16).and_then(|k| <[u8; 16]>::try_from(k).ok());
                match EnvelopeId::parse(&id).and_then(|i| self.outbox.get(&i).copied()) {
                    Some(r) => json!({"ok": true, "message": self.sent_json(&r)}),
                    None if let Some(v) = key.and_then(|k| self.sent_file_json(&k)) => {
                        json!({"ok": true, "message": v})
                    }
                    None => error(format!(
                        "no message {id} in the outbox (it keeps the last {})",
                        crate::persist::outbox::MAX_RECORDS
                    )),
                }
            }
            Request::Outbox { id: None, offset, limit } => {
                let (messages, total, next) = page(self.outbox_items(), offset, limit);
                json!({"ok": true, "messages": messages, "total": total, "next": next})
            }
            Request::Subscribe { channel: None } => {
                return Reply::Stream(json!({"ok": true, "subscribed": "messages"}), self.events.subscribe());
            }
            Request::Subscribe { channel: Some(name) } => match self.channels.iter().find(|c| c.name == name) {
                Some(c) => return Reply::Stream(json!({"ok": true, "subscribed": name}), c.tx.subscribe()),
                None => error(format!("not in a channel '{name}'")),
            },
            Request::Channel { action, name, key, offset, limit } => {
                self.channel_cmd(action, name.unwrap_or_default(), key, (offset, limit), now)
            }
            Request::Publish { channel, text } => self.publish(&channel, &text, now),
            Request::Store { action: Some(StoreAction::List) } => self.store_list(),
            Request::Store { action: None } => self.store_summary(),
            Request::Peer { action, address, key } => self.peer_cmd(action, &address, key.as_deref(), now),
            Request::Reload => match self.reload() {
                Ok(()) => json!({"ok": true, "reloaded": true}),
                Err(e) => error(format!("reload failed, running configuration kept: {e}")),
            },
            Request::Metrics => json!({"ok": true, "text": self.metrics()}),
        };
        Reply::Json(v)
    }

    fn inbox_cmd(&mut self, action: InboxAction, id: Option<&str>) -> Value {
        match (action, id) {
            (InboxAction::Read, Some(id)) => match self.inbox.read(&mut self.log, id) {
                Some(m) => {
                    // The read flag is kept if the commit fails; it is
                    // set again at the next read.
                    self.commit();
                    self.reopen_inbox();
                    let verified = NodeId::parse(&m.from).is_some_and(|f| self.contacts.is_verified(&f));
                    let mut v = json!(m);
                    v["verified"] = json!(verified);
                    json!({"ok": true, "message": v})
                }
                None => error("no such message in the inbox"),
            },
            (InboxAction::Delete, Some(id)) => match self.inbox.delete(&mut self.log, id) {
                Ok(true) if self.commit() => {
                    self.reopen_inbox();
                    json!({"ok": true, "deleted": id})
                }
                Ok(true) => error("cannot write the state log; the message is kept"),
                Ok(false) => error("no such message in the inbox"),
                Err(e) => error(format!("cannot record the message as delivered ({e}); kept")),
            },
            (InboxAction::List, _) | (_, None) => error("inbox read and delete need \"id\""),
        }
    }

    pub(super) fn send(&mut self, to: &str, text: &str, ttl: Option<u64>, hops: Option<u64>, now: Timestamp) -> Value {
        if text.len() > MAX_TEXT {
            return error(format!("message of {} bytes is larger than the maximum of {MAX_TEXT}", text.len()));
        }
        let ttl = ttl.map(|t| t.min(u32::MAX as u64) as u32);
        let hops = hops.map(|h| h.min(255) as u8);
        let to = match self.resolve_to(to) {
            Ok(t) => t,
            Err(e) => return error(e),
        };
        match self.node.send_direct(now, to, text.as_bytes(), ttl, hops) {
            Ok(id) => {
                if !self.make_durable(&id) {
                    return error("could not write the message to the state directory; not sent");
                }
                debug!("queued message {id} to {to}");
                self.messages_sent += 1;
                self.record_sent(id, to, SentState::Queued);
                json!({"ok": true, "id": id.to_string(), "to": to.to_string(), "linked": self.node.is_linked(&to)})
            }
            Err(e) => error(e.to_string()),
        }
    }

    pub(super) fn peer_cmd(&mut self, action: PeerAction, address: &str, key: Option<&str>, now: Timestamp) -> Value {
        // Host names are looked up off the event loop (net/names.rs).
        let addr = match self.names.lookup(address) {
            Lookup::Ready(a) => Some(a),
            Lookup::Pending => None,
            Lookup::Failed(e) => return error(e),
        };
        match action {
            PeerAction::Add => {
                let pin = match key {
                    None | Some("") => None,
                    Some(k) => match crate::config::parse_key(k) {
                        Some(k) => Some(k),
                        None => return error("key must be the peer's 64-hex-digit public key"),
                    },
                };
                if self.extra_peers.len() >= meshpost_proto::node::MAX_STATIC_PEERS
                    && !self.extra_peers.iter().any(|(a, _)| a == address)
                {
                    return error(format!(
                        "at most {} peers; remove one first",
                        meshpost_proto::node::MAX_STATIC_PEERS
                    ));
                }
                let Some(addr) = addr else {
                    // Used as soon as the name resolves.
                    self.extra_peers.retain(|(a, _)| a != address);
                    self.extra_peers.push((address.to_string(), pin));
                    info!("peer {address} added at runtime; resolving its name");
                    return json!({"ok": true, "added": address, "resolving": true});
                };
                let spec = PeerSpec { addr, pin, federation: None };
                if !self.node.add_peer(spec, now) {
                    return error(format!(
                        "at most {} peers; remove one first",
                        meshpost_proto::node::MAX_STATIC_PEERS
                    ));
                }
                self.extra_peers.retain(|(a, _)| a != address);
                self.extra_peers.push((address.to_string(), pin));
                info!("peer {addr} added at runtime");
                json!({"ok": true, "added": addr.to_string()})
            }
            PeerAction::Remove => {
                // Also an entry added under another spelling of the address.
                let mut same = Vec::new();
                for (a, _) in self.extra_peers.clone() {
                    if a == address || addr.is_some_and(|x| self.names.lookup(&a) == Lookup::Ready(x)) {
                        same.push(a);
                    }
                }
                self.extra_peers.retain(|(a, _)| !same.contains(a));
                let Some(addr) = addr else {
                    return json!({"ok": true, "removed": address});
                };
                if self.node.remove_peer(addr) {
                    info!("peer {addr} removed at runtime");
                    json!({"ok": true, "removed": addr.to_string()})
                } else {
                    error(format!("{addr} is not a configured peer"))
                }
            }
        }
    }

    /// Records a state of a message this node sent and tells subscribers.
    pub(super) fn record_sent(&mut self, id: EnvelopeId, to: NodeId, state: SentState) {
        let since = now_ms() / 1000;
        let r = crate::persist::outbox::Record { id, to, state, since, file: None };
        if let Err(e) = self.outbox.record(r) {
            self.persist_errors += 1;
            warn!("cannot record message {id} as {} in outbox.log: {e}", state.name());
        }
        if state != SentState::Queued {
            debug!("message {id} to {to}: {}", state.name());
            let ev = json!({"event": state.name(), "id": id.to_string(), "to": to.to_string(), "since": since,
                "reason": state.reason()});
            let _ = self.events.send(Arc::from(ev.to_string()));
            // The last part of a file delivered: the file is.
            if let Some(f) = self.outbox.get(&id).and_then(|r| r.file)
                && let Some(v) = self.sent_file_json(&f.key)
                && matches!(state, SentState::Delivered | SentState::Forwarded)
                && v["state"] == state.name()
                && (state != SentState::Delivered || v["file"]["delivered"] == v["file"]["parts"])
                && (state != SentState::Forwarded || v["file"]["forwarded"] == v["file"]["parts"])
            {
                let mut ev = v;
                ev["event"] = json!(state.name());
                let _ = self.events.send(Arc::from(ev.to_string()));
            }
        }
    }

    pub(super) fn sent_json(&self, r: &crate::persist::outbox::Record) -> Value {
        json!({"id": r.id.to_string(), "to": r.to.to_string(), "to_name": self.node.card(&r.to).map(|c| c.name.clone()),
            "state": r.state.name(), "reason": r.state.reason(), "since": r.since,
            "verified": self.contacts.is_verified(&r.to)})
    }

    pub(super) fn verify_cmd(&mut self, who: &str, confirm: bool) -> Value {
        let node = match self.resolve_to(who) {
            Ok(n) => n,
            Err(e) => return error(e),
        };
        let Some(card) = self.node.card(&node) else {
            return error(format!("no keys known for {node}: add its card or wait until it is heard"));
        };
        let number = meshpost_proto::identity::safety_number(&self.node.identity().public_key(), &card.ed_pk);
        if confirm {
            match self.contacts.set_verified(node) {
                Ok(true) => info!("contact {node} verified"),
                Ok(false) => return error(format!("{node} is not a contact: add its card first")),
                Err(e) => return error(format!("cannot save the contact list: {e}")),
            }
        }
        json!({"ok": true, "id": node.to_string(), "safety_number": number, "verified": self.contacts.is_verified(&node)})
    }

    pub(super) fn block_cmd(&mut self, who: &str, block: bool) -> Value {
        let node = match self.resolve_to(who) {
            Ok(n) => n,
            Err(e) => return error(e),
        };
        if !self.node.set_blocked(node, block) {
            return error(format!("at most {} blocked nodes", meshpost_proto::node::MAX_CONTACTS));
        }
        if let Err(e) = self.contacts.set_blocked(node, block) {
            return error(format!("cannot save the block list: {e}"));
        }
        info!("{node} {}", if block { "blocked" } else { "unblocked" });
        json!({"ok": true, "id": node.to_string(), "blocked": block})
    }

    pub(super) fn contact_cmd(
        &mut self,
        action: ContactAction,
        card: Option<String>,
        name: Option<String>,
        id: Option<String>,
    ) -> Value {
        match action {
            ContactAction::List => {
                let list: Vec<Value> = self
                    .contacts
                    .iter()
                    .map(|(id, name)| {
                        let card = self.node.card(id);
                        json!({"id": id.to_string(), "name": name, "card_name": card.map(|c| c.name.clone()),
                            "domain": card.map(|c| c.domain.clone()), "linked": self.node.is_linked(id),
                            "has_keys": card.is_some(), "verified": self.contacts.is_verified(id),
                            "blocked": self.contacts.is_blocked(id)})
                    })
                    .collect();
                let blocked: Vec<String> = self.contacts.blocked().map(|b| b.to_string()).collect();
                json!({"ok": true, "contacts": list, "blocked": blocked})
            }
            ContactAction::Add => {
                let Some(text) = card else {
                    return error("contact add needs \"card\" (from 'meshpost identity --card')");
                };
                // The QR code carries the same text in capitals (QR's compact
                // alphanumeric mode): the prefix and hex are read either way.
                let text = text.trim();
                let hex = match text.get(..CARD_PREFIX.len()) {
                    Some(p) if p.eq_ignore_ascii_case(CARD_PREFIX) => &text[CARD_PREFIX.len()..],
                    _ => text,
                };
                let bytes = meshpost_proto::crypto::from_hex_bytes(hex, meshpost_proto::envelope::MAX_ENVELOPE_LEN);
                let Some(bytes) = bytes else { return error("a contact card is mpcard1: and hex digits") };
                match self.node.add_contact(&bytes) {
                    Ok(node) => {
                        let given =
                            name.unwrap_or_else(|| self.node.card(&node).map(|c| c.name.clone()).unwrap_or_default());
                        if let Err(e) = self.contacts.set(node, &given) {
                            return error(format!("cannot save the contact list: {e}"));
                        }
                        info!("contact {node} ({given}) added");
                        json!({"ok": true, "added": node.to_string(), "name": given})
                    }
                    Err(e) => {
                        if matches!(e, meshpost_proto::node::ContactError::KeyChanged(_)) {
                            warn!("{e}");
                        }
                        error(e.to_string())
                    }
                }
            }
            ContactAction::Remove => {
                let Some(node) = id.as_deref().and_then(|i| self.resolve_to(i).ok()) else {
                    return error("contact remove needs \"id\": a node id or a contact's name");
                };
                self.node.remove_contact(&node);
                match self.contacts.remove(&node) {
                    Ok(true) => json!({"ok": true, "removed": node.to_string()}),
                    Ok(false) => error(format!("{node} is not a contact")),
                    Err(e) => error(format!("cannot save the contact list: {e}")),
                }
            }
        }
    }
}

/// How a contact card starts (then the signed announce in hex).
pub const CARD_PREFIX: &str = "mpcard1:";
