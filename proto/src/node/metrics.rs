//! Counters the node keeps, exported by the daemon as Prometheus text.
//! Only counting: nothing here decides anything.

/// Counters exported as metrics; names match docs/metrics.md.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    pub datagrams_in: u64,
    pub datagrams_out: u64,
    pub bytes_out: u64,
    pub datagrams_malformed: u64,
    pub datagrams_unknown_session: u64,
    pub session_unknown_sent: u64,
    pub session_unknown_received: u64,
    pub datagrams_replayed: u64,
    pub datagrams_decrypt_failed: u64,
    pub handshakes_completed: u64,
    pub handshakes_failed: u64,
    pub handshakes_rate_limited: u64,
    pub handshake_cookies_sent: u64,
    pub handshake_messages_resent: u64,
    pub handshake_cookies_received: u64,
    pub handshake_proofs_invalid: u64,
    pub envelopes_blocked: u64,
    pub peers_refused: u64,
    pub envelopes_in: u64,
    pub envelopes_duplicate: u64,
    /// Of those, channel messages (a flood's extra copies).
    pub channel_duplicate: u64,
    /// Stored copies replaced by a copy with more hops left.
    pub envelopes_hops_raised: u64,
    /// Cold stored envelopes read back from the caller's disk to be sent.
    pub envelopes_read_back: u64,
    /// Cold stored envelopes the caller could not read back (lost).
    pub envelopes_unreadable: u64,
    /// Envelopes asked for a second time: the first answer did not come.
    pub envelopes_rewanted: u64,
    /// Pushed envelopes offered again: no "have" came within 1 s.
    pub pushes_offered_again: u64,
    pub offer_windows_unanswered: u64,
    pub envelopes_bad_signature: u64,
    pub envelopes_expired: u64,
    pub envelopes_invalid: u64,
    pub envelopes_rate_limited: u64,
    pub envelopes_stored: u64,
    pub envelopes_store_refused: u64,
    pub envelopes_evicted: u64,
    pub envelopes_expired_in_store: u64,
    pub envelopes_forwarded: u64,
    pub envelopes_delivered: u64,
    pub envelopes_undecryptable: u64,
    /// End-to-end sessions this node started as a sender.
    pub e2e_sessions_started: u64,
    /// End-to-end sessions other nodes started with this node.
    pub e2e_sessions_accepted: u64,
    /// Session starts sent again to a recipient that had lost the session.
    pub e2e_sessions_restated: u64,
    /// Deferred messages whose session start we asked their origin for.
    pub e2e_starts_asked: u64,
    /// Session messages deferred because their session's start had not
    /// arrived yet (suite 5).
    pub e2e_session_pending: u64,
    pub envelopes_acked: u64,
    pub frames_invalid: u64,
    pub fragments_dropped: u64,
    pub announces_in: u64,
    pub announces_duplicate: u64,
    pub announces_forwarded: u64,
    pub cards_requested: u64,
    pub cards_served: u64,
    pub acks_sent: u64,
    pub acks_in: u64,
    pub channel_published: u64,
    pub channel_delivered: u64,
    pub channel_undecryptable: u64,
    pub channel_rate_limited: u64,
    pub deliveries_deferred: u64,
    pub writes_failed: u64,
}

impl Metrics {
    /// (name, help, value) for every counter.
    pub fn list(&self) -> Vec<(&'static str, &'static str, u64)> {
        vec![
            ("datagrams_in", "UDP datagrams received", self.datagrams_in),
            ("datagrams_out", "UDP datagrams sent", self.datagrams_out),
            ("bytes_out", "UDP payload bytes sent on the link port", self.bytes_out),
            ("datagrams_malformed", "datagrams that were not link packets", self.datagrams_malformed),
            ("datagrams_unknown_session", "transport datagrams for no known session", self.datagrams_unknown_session),
            ("session_unknown_sent", "hints sent that a peer's session is unknown here", self.session_unknown_sent),
            (
                "session_unknown_received",
                "hints from a peer that forgot our session, answered with a new handshake",
                self.session_unknown_received,
            ),
            ("datagrams_replayed", "transport datagrams refused by the replay window", self.datagrams_replayed),
            ("datagrams_decrypt_failed", "transport datagrams failing authentication", self.datagrams_decrypt_failed),
            ("handshakes_completed", "link handshakes completed", self.handshakes_completed),
            ("handshakes_failed", "link handshakes failed", self.handshakes_failed),
            ("envelopes_blocked", "messages to this node from blocked senders, dropped", self.envelopes_blocked),
            (
                "handshakes_rate_limited",
                "handshake first messages dropped by the per-address or total handshake rate",
                self.handshakes_rate_limited,
            ),
            (
                "handshake_cookies_sent",
                "cookie replies sent instead of answering a handshake under load",
                self.handshake_cookies_sent,
            ),
            ("handshake_messages_resent", "handshake first messages sent again", self.handshake_messages_resent),
            (
                "handshake_cookies_received",
                "cookie replies taken from a loaded peer for our own handshake",
                self.handshake_cookies_received,
            ),
            (
                "handshake_proofs_invalid",
                "handshakes carrying a stale or forged cookie proof (treated as none)",
                self.handshake_proofs_invalid,
            ),
            ("peers_refused", "peers refused by pin or policy", self.peers_refused),
            ("envelopes_in", "envelopes received from links", self.envelopes_in),
            ("envelopes_duplicate", "data envelopes already seen", self.envelopes_duplicate),
            ("channel_duplicate", "channel messages already seen", self.channel_duplicate),
            ("envelopes_hops_raised", "stored copies given a copy's larger hop limit", self.envelopes_hops_raised),
            (
                "envelopes_read_back",
                "stored envelopes read back from the state log to be sent",
                self.envelopes_read_back,
            ),
            (
                "envelopes_unreadable",
                "stored envelopes that could not be read back from the state log (lost)",
                self.envelopes_unreadable,
            ),
            ("envelopes_rewanted", "envelopes asked for again after a lost answer", self.envelopes_rewanted),
            (
                "pushes_offered_again",
                "pushed envelopes offered again when no have came within 1 s",
                self.pushes_offered_again,
            ),
            (
                "offer_windows_unanswered",
                "offer windows followed by the next before the peer answered every id",
                self.offer_windows_unanswered,
            ),
            ("envelopes_bad_signature", "envelopes with a bad origin signature", self.envelopes_bad_signature),
            ("envelopes_expired", "envelopes received already expired", self.envelopes_expired),
            ("envelopes_invalid", "envelopes malformed in other ways", self.envelopes_invalid),
            (
                "envelopes_rate_limited",
                "envelopes dropped by per-link or per-origin rate limits",
                self.envelopes_rate_limited,
            ),
            ("envelopes_stored", "envelopes admitted to the store", self.envelopes_stored),
            ("envelopes_store_refused", "envelopes refused by store limits", self.envelopes_store_refused),
            ("envelopes_evicted", "envelopes evicted from a full store", self.envelopes_evicted),
            ("envelopes_expired_in_store", "envelopes that expired in the store", self.envelopes_expired_in_store),
            ("envelopes_forwarded", "data envelopes sent on a link (announces not counted)", self.envelopes_forwarded),
            ("envelopes_delivered", "envelopes delivered to the local inbox", self.envelopes_delivered),
            ("envelopes_undecryptable", "envelopes for us that failed to decrypt", self.envelopes_undecryptable),
            ("e2e_sessions_started", "end-to-end sessions started as a sender", self.e2e_sessions_started),
            ("e2e_sessions_accepted", "end-to-end sessions other nodes started here", self.e2e_sessions_accepted),
            (
                "e2e_sessions_restated",
                "session starts sent again to a recipient that no longer held the session",
                self.e2e_sessions_restated,
            ),
            (
                "e2e_starts_asked",
                "deferred messages whose session start was asked of their origin",
                self.e2e_starts_asked,
            ),
            (
                "e2e_session_pending",
                "session messages deferred until their session's start arrives",
                self.e2e_session_pending,
            ),
            ("envelopes_acked", "stored envelopes released after the recipient confirmed", self.envelopes_acked),
            ("frames_invalid", "decrypted frames that were malformed", self.frames_invalid),
            ("announces_in", "announces received (new ones)", self.announces_in),
            ("announces_duplicate", "announce copies already seen (flooding redundancy)", self.announces_duplicate),
            (
                "cards_requested",
                "full cards asked of a neighbour for a beacon naming an unknown card",
                self.cards_requested,
            ),
            ("cards_served", "full cards sent to a neighbour that asked for one", self.cards_served),
            ("announces_forwarded", "announces passed on to other links", self.announces_forwarded),
            ("acks_sent", "end-to-end acknowledgements originated", self.acks_sent),
            ("acks_in", "end-to-end acknowledgements received", self.acks_in),
            ("channel_published", "channel messages published here", self.channel_published),
            ("channel_delivered", "channel messages delivered to joined channels", self.channel_delivered),
            (
                "channel_undecryptable",
                "messages on joined channels that failed to decrypt (dropped)",
                self.channel_undecryptable,
            ),
            (
                "channel_rate_limited",
                "channel messages over the per-origin, per-channel rate",
                self.channel_rate_limited,
            ),
            ("fragments_dropped", "fragments dropped by reassembly limits", self.fragments_dropped),
            (
                "deliveries_deferred",
                "messages for us not taken yet (inbox or delivered-id table full); the sender keeps them",
                self.deliveries_deferred,
            ),
            ("writes_failed", "store or inbox writes the caller reported as failed", self.writes_failed),
        ]
    }
}
