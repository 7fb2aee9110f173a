//! Encrypted broadcast channels: joining, publishing, the per-origin
//! channel rate, and decrypting messages of joined channels. Relaying
//! channel envelopes is ordinary forwarding.

use super::*;

impl Node {
    /// Joins a channel; messages already in the store for it are delivered
    /// at once (this is how a late joiner gets the recent history).
    pub fn join_channel(&mut self, key: ChannelKey) -> [u8; 16] {
        let id = key.id();
        self.channels.insert(id, key);
        let stored: Vec<Envelope> = self
            .store
            .iter()
            .filter(|(_, e)| e.head.kind() == Kind::Channel && e.head.dest().id == id)
            // Channel copies keep their bytes in memory (store.rs).
            .filter_map(|(_, e)| e.envelope())
            .collect();
        for env in stored {
            self.deliver_channel(&env);
        }
        id
    }

    pub fn leave_channel(&mut self, id: &[u8; 16]) -> bool {
        self.channels.remove(id).is_some()
    }

    pub fn joined_channels(&self) -> impl Iterator<Item = &[u8; 16]> {
        self.channels.keys()
    }

    /// Encrypts, signs, stores and floods a message to a joined channel.
    pub fn publish(&mut self, now: Timestamp, channel: [u8; 16], body: &[u8]) -> Result<EnvelopeId, SendError> {
        let now_ms = self.tick(now);
        if body.len() > MAX_CHANNEL_BODY {
            return Err(SendError::TooLarge { len: body.len(), max: MAX_CHANNEL_BODY });
        }
        let key = self.channels.get(&channel).ok_or(SendError::NotJoined)?;
        let payload = key.seal(&mut self.rng, &self.identity.public_key(), e2e::CONTENT_TEXT, body);
        let env = Envelope::seal(
            &self.identity,
            &Draft {
                kind: Kind::Channel,
                // A channel is the community's: as far as beacons reach.
                max_hops: self.cfg.announce_hops.max(self.cfg.default_hops),
                created: self.unix_s(),
                ttl: self.cfg.channel_ttl,
                dest: Destination { id: channel, domain: String::new() },
                payload: &payload,
            },
        )
        .map_err(SendError::Envelope)?;
        let id = env.id();
        self.deliver_channel(&env);
        self.admit(env, true, now_ms, vec![AfterWrite::Forward]).map_err(SendError::Store)?;
        self.metrics.channel_published += 1;
        Ok(id)
    }

    /// Applies the per-origin, per-channel rate limit and, for joined
    /// channels, decrypts and delivers.
    pub(super) fn on_channel(&mut self, env: &Envelope, now_ms: u64) -> ChannelCheck {
        let key = (env.origin_id(), env.dest().id);
        let (rate, burst) = (self.cfg.channel_rate, self.cfg.channel_burst);
        if self.channel_buckets.len() >= self.cfg.max_cards && !self.channel_buckets.contains_key(&key) {
            let idle =
                self.channel_buckets.iter().max_by(|a, b| a.1.tokens().total_cmp(&b.1.tokens())).map(|(k, _)| *k);
            if let Some(k) = idle {
                self.channel_buckets.remove(&k);
            }
        }
        let bucket = self.channel_buckets.entry(key).or_insert_with(|| Bucket::full(burst, now_ms));
        if !bucket.take(rate, burst, now_ms) {
            self.metrics.channel_rate_limited += 1;
            return ChannelCheck::OverRate;
        }
        if self.channels.contains_key(&env.dest().id) && !self.deliver_channel(env) {
            return ChannelCheck::Undecryptable;
        }
        ChannelCheck::Pass
    }
}

/// What the channel rules make of an arriving channel message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ChannelCheck {
    /// Delivered if the channel is ours; stored and relayed.
    Pass,
    /// Its origin is over its rate on this channel: not taken now.
    OverRate,
    /// A channel we hold the key of, and the key does not open it:
    /// dropped, not relayed.
    Undecryptable,
}

impl Node {
    /// Decrypts a message of a joined channel and hands it to the caller.
    pub(super) fn deliver_channel(&mut self, env: &Envelope) -> bool {
        let Some(key) = self.channels.get(&env.dest().id) else { return false };
        match key.open(env.origin(), env.payload()) {
            Ok(opened) => {
                self.metrics.channel_delivered += 1;
                let message = self.delivery(env, opened);
                self.actions.push_back(Action::ChannelDeliver { channel: env.dest().id, message });
                true
            }
            Err(e) => {
                self.metrics.channel_undecryptable += 1;
                self.emit(Event::EnvelopeDropped { from: env.origin_id(), reason: e.to_string() });
                false
            }
        }
    }
}
