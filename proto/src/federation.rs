//! Federation: links to gateways of other communities' meshes (domains).
//!
//! A federation link is a static peer with a pinned key and a policy: the
//! remote domain it serves, what may cross (direct messages and their
//! acknowledgements, and only the channels listed), and how much: envelope
//! and byte rates each way, and a share of the store for what came in over
//! it. The node applies the policy (`node.rs`); this module holds the policy,
//! the per-link meters and counters, and the outbound backlog that paces
//! what waits for `out_rate` tokens. It does no routing itself.

use std::collections::VecDeque;

use crate::envelope::EnvelopeId;
use crate::identity::NodeId;
use crate::store::Bucket;

/// Most entries waiting in one federation link's outbound backlog; beyond
/// it, envelopes wait in the store for the next sync round.
pub const MAX_BACKLOG: usize = 4096;

/// What waits for an outbound token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queued {
    /// A stored envelope.
    Envelope(EnvelopeId),
    /// The signed announce (card) of a node of our own domain.
    Card(NodeId),
}

/// What an admin configured for one federation peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// The remote community's domain.
    pub domain: String,
    /// Envelopes per second (and burst) accepted from the peer.
    pub in_rate: u32,
    pub in_burst: u32,
    /// Bytes per second (and burst) accepted from the peer.
    pub in_bytes: u32,
    /// Envelopes per second (and burst) sent to the peer.
    pub out_rate: u32,
    pub out_burst: u32,
    /// Bytes of the store that envelopes from this peer may occupy.
    pub store_share: usize,
    /// Direct messages and their acknowledgements may cross.
    pub direct: bool,
    /// Channel ids that may cross (only these).
    pub channels: Vec<[u8; 16]>,
}

impl Policy {
    /// A policy with the documented defaults for `domain`.
    pub fn new(domain: &str) -> Policy {
        Policy {
            domain: domain.to_string(),
            in_rate: 20,
            in_burst: 200,
            in_bytes: 256 * 1024,
            out_rate: 20,
            out_burst: 200,
            store_share: 1 << 20,
            direct: true,
            channels: Vec::new(),
        }
    }
}

/// Traffic counters of one federation link.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    pub envelopes_in: u64,
    pub bytes_in: u64,
    pub envelopes_out: u64,
    pub quota_drops: u64,
    pub refused_class: u64,
    pub refused_spoofed: u64,
    /// Envelopes that waited for an outbound token (paced at out_rate).
    pub delayed: u64,
}

impl Counters {
    /// Adds another link's counters (for totals).
    pub fn add(&mut self, o: &Counters) {
        self.envelopes_in += o.envelopes_in;
        self.bytes_in += o.bytes_in;
        self.envelopes_out += o.envelopes_out;
        self.quota_drops += o.quota_drops;
        self.refused_class += o.refused_class;
        self.refused_spoofed += o.refused_spoofed;
        self.delayed += o.delayed;
    }
}

/// Meters of one established federation link.
#[derive(Debug, Clone)]
pub struct Meter {
    pub policy: Policy,
    envelopes_in: Bucket,
    bytes_in: Bucket,
    envelopes_out: Bucket,
    pub counters: Counters,
    /// What waits for an outbound token, oldest first.
    backlog: VecDeque<Queued>,
    /// A "backlog started" line was logged and its "cleared" is owed.
    pub backlog_logged: bool,
}

impl Meter {
    pub fn new(policy: Policy, now_ms: u64) -> Meter {
        Meter {
            envelopes_in: Bucket::full(policy.in_burst, now_ms),
            bytes_in: Bucket::full(policy.in_bytes, now_ms),
            envelopes_out: Bucket::full(policy.out_burst, now_ms),
            policy,
            counters: Counters::default(),
            backlog: VecDeque::new(),
            backlog_logged: false,
        }
    }

    /// Entries waiting for an outbound token.
    pub fn backlog(&self) -> usize {
        self.backlog.len()
    }

    /// Queues `q` to go when a token is there; returns true if the backlog
    /// was empty (a backlog starts). A full backlog or a duplicate is not
    /// queued (the envelope stays in the store for sync).
    pub fn queue(&mut self, q: Queued) -> bool {
        let started = self.backlog.is_empty();
        if self.backlog.len() < MAX_BACKLOG && !self.backlog.contains(&q) {
            if matches!(q, Queued::Envelope(_)) {
                self.counters.delayed += 1;
            }
            self.backlog.push_back(q);
        }
        started && !self.backlog.is_empty()
    }

    /// The oldest waiting entry, if any.
    pub fn front(&self) -> Option<Queued> {
        self.backlog.front().copied()
    }

    pub fn pop_front(&mut self) -> Option<Queued> {
        self.backlog.pop_front()
    }

    /// When the next waiting entry can go (None: nothing waits).
    pub fn next_send_at(&self) -> Option<u64> {
        (!self.backlog.is_empty()).then(|| self.envelopes_out.next_token_at(self.policy.out_rate))
    }

    /// Charges one inbound envelope of `len` bytes; false if over quota.
    pub fn take_in(&mut self, len: usize, now_ms: u64) -> bool {
        let p = &self.policy;
        let ok = self.envelopes_in.take(p.in_rate, p.in_burst, now_ms)
            && self.bytes_in.take_n(len as u32, p.in_bytes, p.in_bytes, now_ms);
        if ok {
            self.counters.envelopes_in += 1;
            self.counters.bytes_in += len as u64;
        } else {
            self.counters.quota_drops += 1;
        }
        ok
    }

    /// Charges one outbound envelope; false if over quota (it waits).
    pub fn take_out(&mut self, now_ms: u64) -> bool {
        let ok = self.envelopes_out.take(self.policy.out_rate, self.policy.out_burst, now_ms);
        if ok {
            self.counters.envelopes_out += 1;
        }
        ok
    }
}
