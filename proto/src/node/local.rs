//! Local commands and start-up restore: sending a direct message, and
//! taking back persisted envelopes, cards and delivered ids. Channel
//! publishing lives in channels.rs.

use super::*;

impl Node {
    /// Re-admits a persisted envelope at start-up. Expired or invalid ones are
    /// refused with the reason ([`RestoreError::is_expired`] tells the caller
    /// to delete rather than quarantine).
    pub fn restore_envelope(&mut self, bytes: &[u8], now: Timestamp) -> Result<EnvelopeId, RestoreError> {
        self.tick(now);
        let env = Envelope::decode(bytes, now.unix_s()).map_err(RestoreError::Envelope)?;
        let id = env.id();
        let local = env.origin() == &self.identity.public_key();
        self.store.insert(env, local, now.unix_s()).map_err(RestoreError::Store)?;
        Ok(id)
    }

    /// Restores a delivered id so it is never delivered again.
    pub fn restore_delivered(&mut self, id: EnvelopeId, origin: NodeId, expires: u64) {
        self.delivered.restore(id, origin, expires);
    }

    /// Ids of messages delivered here (durable or being written).
    pub fn delivered_ids(&self) -> &Delivered {
        &self.delivered
    }

    /// Restores a saved announce; its age does not matter, keys do not expire.
    pub fn restore_card(&mut self, bytes: &[u8]) -> Result<NodeId, RestoreError> {
        let env = Envelope::decode_ignoring_time(bytes).map_err(RestoreError::Envelope)?;
        self.learn_card(&env, false).ok_or(RestoreError::NotAnAnnounce)
    }

    /// Encrypts, signs and stores a direct message; it is sent at once if the
    /// recipient is linked, otherwise when a path appears. The returned id is
    /// final once the caller has carried out the `Persist` action.
    pub fn send_direct(
        &mut self,
        now: Timestamp,
        to: NodeId,
        body: &[u8],
        ttl: Option<u32>,
        hops: Option<u8>,
    ) -> Result<EnvelopeId, SendError> {
        let now_ms = self.tick(now);
        if to == self.me {
            return Err(SendError::ToSelf);
        }
        let card = self.cards.get(&to).ok_or(SendError::UnknownRecipient(to))?;
        // A node of another community is addressed as node@domain.
        let domain = if card.domain != self.cfg.domain { card.domain.clone() } else { String::new() };
        let payload = e2e::seal(&mut self.rng, card, &self.identity.public_key(), &to.0, e2e::CONTENT_TEXT, body);
        let env = Envelope::seal(
            &self.identity,
            &Draft {
                kind: Kind::Direct,
                max_hops: hops.unwrap_or(self.cfg.default_hops),
                created: self.unix_s(),
                ttl: ttl.unwrap_or(self.cfg.default_ttl),
                dest: Destination { id: to.0, domain },
                payload: &payload,
            },
        )
        .map_err(SendError::Envelope)?;
        let id = env.id();
        self.admit(env, true, now_ms, vec![AfterWrite::Forward { from: None }]).map_err(SendError::Store)?;
        self.outbox.track(id, to, SentState::Queued);
        Ok(id)
    }

    /// Sends raw envelope bytes to a linked node as they are, without any
    /// check: for tools and tests that exercise a peer's validation.
    pub fn send_raw_envelope(&mut self, to: NodeId, bytes: &[u8]) -> bool {
        if !self.links.contains_key(&to) {
            return false;
        }
        self.send_envelope_bytes(to, bytes);
        true
    }

    /// Seals `frame` (any bytes) on the link to `to` and sends it: for
    /// fuzzers and tests that exercise a peer's frame parsing.
    pub fn send_raw_frame(&mut self, to: NodeId, frame: &[u8]) -> bool {
        if !self.links.contains_key(&to) {
            return false;
        }
        let now = self.clock;
        self.send_frame(to, frame, now);
        true
    }
}
