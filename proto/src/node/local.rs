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
        // Read from the caller's disk: durable, so its bytes may go.
        self.store.cool(&id);
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
        let env = self.seal_direct(to, e2e::CONTENT_TEXT, body, ttl, hops)?;
        let id = env.id();
        self.admit(env, true, now_ms, vec![AfterWrite::Forward]).map_err(SendError::Store)?;
        self.outbox.track(id, to, SentState::Queued);
        Ok(id)
    }

    /// Sends a file as direct messages, one per part body from
    /// [`crate::filepart::split`], in order. All parts are sealed and the
    /// store is checked for room for all of them before any is stored, so
    /// a refusal leaves nothing half sent. Returns the ids in part order;
    /// each is final once the caller has carried out its `Persist`.
    pub fn send_file(
        &mut self,
        now: Timestamp,
        to: NodeId,
        parts: &[Vec<u8>],
        ttl: Option<u32>,
        hops: Option<u8>,
    ) -> Result<Vec<EnvelopeId>, SendError> {
        let now_ms = self.tick(now);
        let mut envs = Vec::with_capacity(parts.len());
        for p in parts {
            envs.push(self.seal_direct(to, crate::filepart::CONTENT_FILE, p, ttl, hops)?);
        }
        let bytes = envs.iter().map(|e| e.len()).sum();
        if self.writes.pending_room() < envs.len() {
            return Err(SendError::Store(StoreError::Busy));
        }
        self.store.check_room(self.me, to.0, bytes, envs.len()).map_err(SendError::Store)?;
        let mut ids = Vec::with_capacity(envs.len());
        for env in envs {
            let id = env.id();
            self.admit(env, true, now_ms, vec![AfterWrite::Forward]).map_err(SendError::Store)?;
            self.outbox.track(id, to, SentState::Queued);
            ids.push(id);
        }
        Ok(ids)
    }

    /// Takes back a local envelope whose write succeeded but whose file
    /// send failed as a whole: out of the store (the caller is told to
    /// delete it) and out of the outbox.
    pub fn withdraw(&mut self, id: EnvelopeId) {
        self.writes.take(&id);
        if self.store.get(&id).is_some_and(|e| e.local) {
            self.store.remove(&id);
            self.actions.push_back(Action::Unpersist { id });
        }
        self.outbox.forget(&id);
    }

    fn seal_direct(
        &mut self,
        to: NodeId,
        content_type: u8,
        body: &[u8],
        ttl: Option<u32>,
        hops: Option<u8>,
    ) -> Result<Envelope, SendError> {
        if to == self.me {
            return Err(SendError::ToSelf);
        }
        let (created, ttl) = (self.unix_s(), ttl.unwrap_or(self.cfg.default_ttl));
        let payload = self
            .seal_payload(to, content_type, body, created + u64::from(ttl))
            .ok_or(SendError::UnknownRecipient(to))?;
        let env = self.seal_direct_envelope(to, &payload, ttl, hops)?;
        // Counted against the session from here: a session never has more
        // than MAX_UNACKED messages out (a file's parts included).
        self.session_sealed(to, &env);
        Ok(env)
    }

    /// Signs a direct envelope of ours to `to` around a payload already
    /// encrypted for it, created now: the one place that addresses a node
    /// of another community as node@domain and picks the hop limit.
    pub(super) fn seal_direct_envelope(
        &self,
        to: NodeId,
        payload: &[u8],
        ttl: u32,
        hops: Option<u8>,
    ) -> Result<Envelope, SendError> {
        let card = self.cards.get(&to).ok_or(SendError::UnknownRecipient(to))?;
        let domain = if card.domain != self.cfg.domain { card.domain.clone() } else { String::new() };
        Envelope::seal(
            &self.identity,
            &Draft {
                kind: Kind::Direct,
                max_hops: hops.unwrap_or_else(|| self.hops_to(&to)),
                created: self.unix_s(),
                ttl,
                dest: Destination { id: to.0, domain },
                payload,
            },
        )
        .map_err(SendError::Envelope)
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
