//! Channels as the daemon keeps them: names, keys (config or joined at
//! run time, saved 0600), bounded history and subscriber streams. The
//! protocol side is `meshpost_proto::node` (channels.rs there).

use super::*;

/// A joined channel as the daemon keeps it: bounded history and a stream
/// for subscribers.
pub(crate) struct Channel {
    pub(crate) name: String,
    pub(crate) id: [u8; 16],
    pub(crate) key: meshpost_proto::channel::ChannelKey,
    pub(crate) from_config: bool,
    pub(crate) history: std::collections::VecDeque<Value>,
    pub(crate) tx: broadcast::Sender<Arc<str>>,
}

/// Keeps at most `max` history entries, none created before `now - age`.
pub(crate) fn prune(h: &mut std::collections::VecDeque<Value>, max: usize, age: u64, now: u64) {
    h.retain(|m| m["created"].as_u64().unwrap_or(0) + age > now);
    while h.len() > max {
        h.pop_front();
    }
}
impl Daemon {
    /// Joins the channels from the config file and the state directory;
    /// leaves config channels that are no longer configured.
    pub(super) fn apply_channels(&mut self) {
        if let Some(f) = &self.settings.file {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(f).map(|m| m.permissions().mode() & 0o777).unwrap_or(0);
            if !self.settings.channels.is_empty() && mode & 0o044 != 0 {
                warn!(
                    "{} holds channel keys and has mode {mode:04o}: other local users can read them; run: chmod 600 {}",
                    f.display(),
                    f.display()
                );
            }
        }
        let configured: Vec<String> = self.settings.channels.iter().map(|c| c.name.clone()).collect();
        let gone: Vec<String> = self
            .channels
            .iter()
            .filter(|c| c.from_config && !configured.contains(&c.name))
            .map(|c| c.name.clone())
            .collect();
        for name in gone {
            let _ = self.leave(&name);
        }
        for c in self.settings.channels.clone() {
            if let Err(e) = self.join(&c.name, c.key, true) {
                warn!("channel {} (config line {}): {e}", c.name, c.line);
            }
        }
        for (name, key) in self.state.channels() {
            if let Err(e) = self.join(&name, key, false) {
                warn!("channel {name} from the state directory: {e}");
            }
        }
    }

    pub(super) fn join(
        &mut self,
        name: &str,
        key: meshpost_proto::channel::ChannelKey,
        from_config: bool,
    ) -> Result<bool, String> {
        let id = key.id();
        if let Some(c) = self.channels.iter_mut().find(|c| c.name == name) {
            if c.id != id {
                return Err(format!("a different channel is already called '{name}'"));
            }
            c.from_config |= from_config;
            return Ok(false);
        }
        if let Some(c) = self.channels.iter().find(|c| c.id == id) {
            return Err(format!("already joined under the name '{}'", c.name));
        }
        if self.channels.len() >= MAX_CHANNELS {
            return Err(format!("at most {MAX_CHANNELS} channels"));
        }
        let (tx, _) = broadcast::channel(CHANNEL_SUBSCRIBER_BUFFER);
        self.channels.push(Channel {
            name: name.to_string(),
            id,
            key: key.clone(),
            from_config,
            history: Default::default(),
            tx,
        });
        self.node.join_channel(key);
        self.drain();
        info!("joined channel {name}");
        Ok(true)
    }

    pub(super) fn leave(&mut self, name: &str) -> Result<(), String> {
        let pos =
            self.channels.iter().position(|c| c.name == name).ok_or_else(|| format!("not in a channel '{name}'"))?;
        let c = self.channels.remove(pos);
        self.node.leave_channel(&c.id);
        self.save_joined()?;
        info!("left channel {name}");
        Ok(())
    }

    /// Writes the channels joined at run time (not from config), 0600.
    pub(super) fn save_joined(&self) -> Result<(), String> {
        let list: Vec<(String, meshpost_proto::channel::ChannelKey)> =
            self.channels.iter().filter(|c| !c.from_config).map(|c| (c.name.clone(), c.key.clone())).collect();
        self.state.save_channels(&list).map_err(|e| format!("cannot save joined channels: {e}"))
    }

    pub(super) fn channel_cmd(
        &mut self,
        action: ChannelAction,
        name: String,
        key: Option<String>,
        (offset, limit): (Option<usize>, Option<usize>),
        now: Timestamp,
    ) -> Value {
        match action {
            ChannelAction::List => {
                let list: Vec<Value> = self
                    .channels
                    .iter()
                    .map(|c| {
                        json!({"name": c.name, "id": meshpost_proto::crypto::to_hex(&c.id),
                        "source": if c.from_config { "config" } else { "joined" }, "history": c.history.len(),
                        "subscribers": c.tx.receiver_count()})
                    })
                    .collect();
                json!({"ok": true, "channels": list})
            }
            ChannelAction::Create | ChannelAction::Join if !crate::config::valid_channel_name(&name) => {
                error("a channel name is 1-32 characters of A-Z a-z 0-9 _ - .")
            }
            ChannelAction::Create => {
                let key = meshpost_proto::channel::ChannelKey::generate(&mut OsRng);
                let share = key.to_share_string();
                match self.join(&name, key, false).and_then(|_| self.save_joined().map(|_| true)) {
                    Ok(_) => json!({"ok": true, "name": name, "key": share.as_str()}),
                    Err(e) => error(e),
                }
            }
            ChannelAction::Join => {
                let Some(key) = key.as_deref().and_then(meshpost_proto::channel::ChannelKey::parse) else {
                    return error("join needs the channel key (mpch1- and 64 hex digits)");
                };
                match self.join(&name, key, false).and_then(|_| self.save_joined().map(|_| true)) {
                    Ok(_) => json!({"ok": true, "joined": name}),
                    Err(e) => error(e),
                }
            }
            ChannelAction::Leave => match self.channels.iter().find(|c| c.name == name).map(|c| c.from_config) {
                Some(true) => error(format!("'{name}' comes from the config file; remove it there")),
                Some(false) => match self.leave(&name) {
                    Ok(()) => json!({"ok": true, "left": name}),
                    Err(e) => error(e),
                },
                None => error(format!("not in a channel '{name}'")),
            },
            ChannelAction::History => {
                let age = self.settings.channel_history_age;
                match self.channels.iter_mut().find(|c| c.name == name) {
                    Some(c) => {
                        prune(&mut c.history, usize::MAX, age, now.unix_s());
                        let (messages, total, next) = page(c.history.iter().cloned().collect(), offset, limit);
                        json!({"ok": true, "channel": name, "messages": messages, "total": total, "next": next})
                    }
                    None => error(format!("not in a channel '{name}'")),
                }
            }
        }
    }

    pub(super) fn publish(&mut self, name: &str, text: &str, now: Timestamp) -> Value {
        let Some(id) = self.channels.iter().find(|c| c.name == name).map(|c| c.id) else {
            return error(format!("not in a channel '{name}' (meshpost channel join NAME KEY)"));
        };
        match self.node.publish(now, id, text.as_bytes()) {
            Ok(eid) => {
                if !self.make_durable(&eid) {
                    return error("could not write the message to the state directory; not published");
                }
                json!({"ok": true, "id": eid.to_string(), "channel": name})
            }
            Err(e) => error(e.to_string()),
        }
    }
}
