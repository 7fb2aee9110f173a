//! The bounded envelope store, and the bounded set of ids already seen.
//!
//! Limits: total bytes, total count, bytes per origin and bytes per
//! recipient. Admission and eviction order (docs/store.md):
//! 1. expired envelopes are dropped first;
//! 2. an envelope over its origin's or recipient's quota is refused;
//! 3. while the store is over its byte or count limit, relayed envelopes are
//!    evicted, soonest-expiring first; envelopes this node originated are
//!    never evicted to make room, so a full store refuses a new one instead.
//!
//! Memory: every entry keeps its [`Head`]; the bytes of a direct envelope
//! or an acknowledgement are let go once durable while the store holds
//! more than `max_hot_bytes` of bytes (the node asks the caller for them
//! when they must be sent, node/cold.rs). Channel envelopes and announces
//! always keep theirs.
//!
//! The store does no I/O; the node tells the daemon what to persist. It
//! does not decide where envelopes go.

use std::collections::{BTreeMap, BTreeSet};

use crate::envelope::{Envelope, EnvelopeId, Head, Kind};
use crate::expiring::ExpiringMap;
use crate::identity::NodeId;
use crate::session::SessionId;

/// Store limits; all configurable from UCI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreLimits {
    pub max_bytes: usize,
    pub max_count: usize,
    pub max_bytes_per_origin: usize,
    pub max_bytes_per_recipient: usize,
    /// Envelope bytes kept in memory; beyond it, durable direct envelopes
    /// and acknowledgements keep only their head, and their bytes are read
    /// back from the caller's disk when sent.
    pub max_hot_bytes: usize,
}

impl Default for StoreLimits {
    fn default() -> Self {
        StoreLimits {
            max_bytes: 8 << 20,
            max_count: 4096,
            max_bytes_per_origin: 2 << 20,
            max_bytes_per_recipient: 2 << 20,
            max_hot_bytes: DEFAULT_HOT_BYTES,
        }
    }
}

/// Default of [`StoreLimits::max_hot_bytes`]: 512 KiB, about 1,400 queued
/// 200-byte messages, keeps a person's backlog in memory; a larger one
/// is read back from the state log (docs/storage.md).
pub const DEFAULT_HOT_BYTES: usize = 512 << 10;

/// Why an envelope was not stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    OriginQuota,
    RecipientQuota,
    /// The share of the store for one federation peer is used up.
    ShareQuota,
    /// Full of envelopes that may not be evicted for this one.
    Full,
    /// Too many writes are waiting for the caller to confirm them.
    Busy,
}

impl core::fmt::Display for StoreError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            StoreError::OriginQuota => "store quota for this origin is used up",
            StoreError::Busy => "too many writes to the state directory are still unconfirmed",
            StoreError::RecipientQuota => "store quota for this recipient is used up",
            StoreError::ShareQuota => "store share for this federation peer is used up",
            StoreError::Full => "store is full",
        })
    }
}

/// One stored envelope and what the node knows about it.
#[derive(Debug, Clone)]
pub struct Entry {
    pub head: Head,
    /// The envelope's bytes, with byte 1 (hops-left) as in `head`; `None`
    /// once let go (cold): the caller's disk has them.
    bytes: Option<Box<[u8]>>,
    /// Originated by this node (never evicted for relayed traffic).
    pub local: bool,
    /// The federation domain it came in from, which has its own share.
    pub share: Option<Box<str>>,
    /// When it was stored, in admission order (offers go oldest first).
    pub seq: u64,
    /// The end-to-end session a direct message of ours is sealed in (read
    /// from the payload when stored, so it is known while cold).
    pub sid: Option<SessionId>,
    /// A direct message this node sent, as `meshpost outbox` reports them
    /// (not the start of a session sent again, `e2e::SUITE_SESSION_RESTATE`).
    pub sent: bool,
}

impl Entry {
    /// The bytes, if they are in memory.
    pub fn bytes(&self) -> Option<&[u8]> {
        self.bytes.as_deref()
    }
    /// The whole envelope, if its bytes are in memory.
    pub fn envelope(&self) -> Option<Envelope> {
        self.bytes.clone().map(|b| Envelope::from_parts(self.head.clone(), b))
    }
    pub fn is_cold(&self) -> bool {
        self.bytes.is_none()
    }
}

/// Bounded in-memory envelope store with quotas and an expiry index.
#[derive(Debug, Default)]
pub struct Store {
    limits: StoreLimits,
    /// Boxed: a B-tree node holds eleven slots and is about two thirds
    /// full under random ids, so a slot of 24 bytes instead of 168 saves
    /// about 55 bytes an entry (10,000 queued: 11.2 -> 10.65 MB resident).
    entries: BTreeMap<EnvelopeId, Box<Entry>>,
    by_expiry: BTreeSet<(u64, EnvelopeId)>,
    /// Ids in admission order.
    by_seq: BTreeMap<u64, EnvelopeId>,
    next_seq: u64,
    origin_bytes: BTreeMap<NodeId, usize>,
    /// Keyed like `origin_bytes`, so both share one B-tree's code.
    recipient_bytes: BTreeMap<NodeId, usize>,
    share_bytes: BTreeMap<String, usize>,
    bytes: usize,
    /// Bytes of the entries whose bytes are in memory.
    hot: usize,
}

impl Store {
    pub fn new(limits: StoreLimits) -> Store {
        Store { limits, ..Store::default() }
    }

    pub fn limits(&self) -> StoreLimits {
        self.limits
    }

    /// Applies new limits; envelopes already stored stay until they expire
    /// or are evicted by later admissions.
    pub fn set_limits(&mut self, limits: StoreLimits) {
        self.limits = limits;
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
    pub fn bytes(&self) -> usize {
        self.bytes
    }
    /// Envelope bytes held in memory.
    pub fn hot_bytes(&self) -> usize {
        self.hot
    }
    /// Lets the bytes of `id` go if the store holds more than its memory
    /// limit and `id` is a direct envelope or acknowledgement (channel
    /// copies and announces are read by rules that cannot wait for a disk).
    /// The caller has made them durable. True if they went.
    pub fn cool(&mut self, id: &EnvelopeId) -> bool {
        let over = self.hot > self.limits.max_hot_bytes;
        match self.entries.get_mut(id) {
            Some(e) if over && e.bytes.is_some() && matches!(e.head.kind(), Kind::Direct | Kind::Ack) => {
                e.bytes = None;
                self.hot -= e.head.len();
                true
            }
            _ => false,
        }
    }
    pub fn contains(&self, id: &EnvelopeId) -> bool {
        self.entries.contains_key(id)
    }
    pub fn get(&self, id: &EnvelopeId) -> Option<&Entry> {
        self.entries.get(id).map(|e| &**e)
    }
    pub fn iter(&self) -> impl Iterator<Item = (&EnvelopeId, &Entry)> {
        self.entries.iter().map(|(id, e)| (id, &**e))
    }
    /// Keeps `env`'s hop limit for the stored copy of the same envelope
    /// when it has more hops left (hops are outside the id and the
    /// signature; the size, and so every quota, stays). True if raised.
    pub fn raise_hops(&mut self, env: &Envelope) -> bool {
        match self.entries.get_mut(&env.id()) {
            Some(e) if e.head.hops_left() < env.hops_left() => {
                e.head = env.head().clone();
                if let Some(b) = &mut e.bytes {
                    b[1] = env.hops_left();
                }
                true
            }
            _ => false,
        }
    }
    /// Ids of admission number `floor` or later stored after the one of
    /// admission number `cursor`, oldest first, wrapping around once (to
    /// `floor`); each with its admission number. In admission order, so
    /// the messages of one sender leave in the order they were sent (and a
    /// receiver's end-to-end session rarely has to keep keys for skipped
    /// counters).
    pub fn ids_after(&self, floor: u64, cursor: Option<u64>, n: usize) -> Vec<(u64, EnvelopeId)> {
        use core::ops::Bound::{Excluded, Included, Unbounded};
        let start = cursor.filter(|c| *c >= floor).map_or(Included(floor), Excluded);
        let mut out: Vec<(u64, EnvelopeId)> =
            self.by_seq.range((start, Unbounded)).map(|(s, k)| (*s, *k)).take(n).collect();
        if out.len() < n
            && let Some(c) = cursor.filter(|c| *c >= floor)
        {
            out.extend(self.by_seq.range(floor..=c).map(|(s, k)| (*s, *k)).take(n - out.len()));
        }
        out
    }
    /// How many stored ids have admission number `floor` or later.
    pub fn count_from(&self, floor: u64) -> usize {
        if floor == 0 { self.by_seq.len() } else { self.by_seq.range(floor..).count() }
    }
    /// Earliest expiry among stored envelopes.
    pub fn next_expiry(&self) -> Option<u64> {
        self.by_expiry.first().map(|(t, _)| *t)
    }

    /// Stores `env`. Returns the ids evicted to make room.
    pub fn insert(&mut self, env: Envelope, local: bool, now: u64) -> Result<Vec<EnvelopeId>, StoreError> {
        self.insert_shared(env, local, None, now)
    }

    /// Like [`insert`](Self::insert), charging `share` (a federation
    /// domain and its byte limit) as well.
    pub fn insert_shared(
        &mut self,
        env: Envelope,
        local: bool,
        share: Option<(&str, usize)>,
        now: u64,
    ) -> Result<Vec<EnvelopeId>, StoreError> {
        if self.entries.contains_key(&env.id()) {
            return Ok(Vec::new());
        }
        let mut evicted = self.expire(now);
        let len = env.len();
        let origin = env.origin_id();
        let recipient = NodeId(env.dest().id);
        if self.origin_bytes.get(&origin).copied().unwrap_or(0) + len > self.limits.max_bytes_per_origin {
            return Err(StoreError::OriginQuota);
        }
        if self.recipient_bytes.get(&recipient).copied().unwrap_or(0) + len > self.limits.max_bytes_per_recipient {
            return Err(StoreError::RecipientQuota);
        }
        if let Some((tag, limit)) = share
            && self.share_bytes.get(tag).copied().unwrap_or(0) + len > limit
        {
            return Err(StoreError::ShareQuota);
        }
        // Pick victims first, so a refusal leaves the store untouched.
        let mut need_bytes = (self.bytes + len).saturating_sub(self.limits.max_bytes);
        let mut need_count = (self.entries.len() + 1).saturating_sub(self.limits.max_count);
        let mut victims = Vec::new();
        for (_, id) in &self.by_expiry {
            if need_bytes == 0 && need_count == 0 {
                break;
            }
            let Some(e) = self.entries.get(id) else {
                continue;
            };
            if e.local {
                continue;
            }
            need_bytes = need_bytes.saturating_sub(e.head.len());
            need_count = need_count.saturating_sub(1);
            victims.push(*id);
        }
        if need_bytes > 0 || need_count > 0 || len > self.limits.max_bytes {
            return Err(StoreError::Full);
        }
        for id in victims {
            self.remove(&id);
            evicted.push(id);
        }
        self.bytes += len;
        *self.origin_bytes.entry(origin).or_insert(0) += len;
        *self.recipient_bytes.entry(recipient).or_insert(0) += len;
        if let Some((tag, _)) = share {
            *self.share_bytes.entry(tag.to_string()).or_insert(0) += len;
        }
        self.by_expiry.insert((env.expires_at(), env.id()));
        let seq = self.next_seq;
        self.next_seq += 1;
        self.by_seq.insert(seq, env.id());
        self.hot += len;
        let ours = local && env.kind() == Kind::Direct;
        let sid = ours.then(|| crate::e2e::session_of(env.payload())).flatten();
        let sent = ours && env.payload().first() != Some(&crate::e2e::SUITE_SESSION_RESTATE);
        let (head, bytes) = env.into_parts();
        let share = share.map(|(t, _)| t.into());
        let entry = Entry { head, bytes: Some(bytes), local, share, seq, sid, sent };
        self.entries.insert(entry.head.id(), Box::new(entry));
        Ok(evicted)
    }

    /// Whether `count` local envelopes of `bytes` in total, from `origin` to
    /// `recipient`, would all be taken now (relayed envelopes may be evicted
    /// for them), so a multi-envelope send is refused whole, not in part.
    pub fn check_room(
        &self,
        origin: NodeId,
        recipient: [u8; 16],
        bytes: usize,
        count: usize,
    ) -> Result<(), StoreError> {
        if self.origin_bytes.get(&origin).copied().unwrap_or(0) + bytes > self.limits.max_bytes_per_origin {
            return Err(StoreError::OriginQuota);
        }
        if self.recipient_bytes.get(&NodeId(recipient)).copied().unwrap_or(0) + bytes
            > self.limits.max_bytes_per_recipient
        {
            return Err(StoreError::RecipientQuota);
        }
        let (local_bytes, local_count) =
            self.entries.values().filter(|e| e.local).fold((0, 0), |(b, n), e| (b + e.head.len(), n + 1));
        if local_bytes + bytes > self.limits.max_bytes || local_count + count > self.limits.max_count {
            return Err(StoreError::Full);
        }
        Ok(())
    }

    pub fn remove(&mut self, id: &EnvelopeId) -> Option<Entry> {
        let e = *self.entries.remove(id)?;
        let len = e.head.len();
        self.bytes -= len;
        if e.bytes.is_some() {
            self.hot -= len;
        }
        self.by_expiry.remove(&(e.head.expires_at(), *id));
        self.by_seq.remove(&e.seq);
        dec(&mut self.origin_bytes, &e.head.origin_id(), len);
        dec(&mut self.recipient_bytes, &NodeId(e.head.dest().id), len);
        if let Some(tag) = &e.share {
            dec(&mut self.share_bytes, &**tag, len);
        }
        Some(e)
    }

    /// Drops every envelope expired at `now`; returns their ids.
    pub fn expire(&mut self, now: u64) -> Vec<EnvelopeId> {
        let mut out = Vec::new();
        while let Some(&(t, id)) = self.by_expiry.first() {
            if t > now {
                break;
            }
            self.remove(&id);
            out.push(id);
        }
        out
    }
}

fn dec<K: Ord + std::borrow::Borrow<Q>, Q: Ord + ?Sized>(map: &mut BTreeMap<K, usize>, k: &Q, by: usize) {
    if let Some(v) = map.get_mut(k) {
        *v = v.saturating_sub(by);
        if *v == 0 {
            map.remove(k);
        }
    }
}

/// A bounded set of envelope ids with expiry: what this node has already
/// relayed, dropped or released, so it is not processed twice. When full,
/// the id that expires soonest is forgotten first. Ids of messages
/// delivered here are not kept in it (see [`crate::delivered`]), so no
/// neighbour can evict them.
#[derive(Debug)]
pub struct SeenSet {
    cap: usize,
    ids: ExpiringMap<()>,
}

impl SeenSet {
    pub fn new(cap: usize) -> SeenSet {
        SeenSet { cap: cap.max(1), ids: ExpiringMap::default() }
    }
    pub fn contains(&self, id: &EnvelopeId) -> bool {
        self.ids.contains(id)
    }
    pub fn len(&self) -> usize {
        self.ids.len()
    }
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
    pub fn insert(&mut self, id: EnvelopeId, expires: u64) {
        self.ids.insert(id, expires, ());
        while self.ids.len() > self.cap {
            self.ids.pop_soonest();
        }
    }
    pub fn expire(&mut self, now: u64) {
        self.ids.expire(now);
    }
}

/// A token bucket: `rate` tokens per second, at most `burst` saved.
#[derive(Debug, Clone, Copy)]
pub struct Bucket {
    tokens: f32,
    last_ms: u64,
}

impl Bucket {
    pub fn full(burst: u32, now_ms: u64) -> Bucket {
        Bucket { tokens: burst as f32, last_ms: now_ms }
    }
    /// Tokens saved at the last update.
    pub fn tokens(&self) -> f32 {
        self.tokens
    }
    /// When (ms) one token will be there, counted from the last update.
    pub fn next_token_at(&self, rate: u32) -> u64 {
        if self.tokens >= 1.0 || rate == 0 {
            return self.last_ms;
        }
        self.last_ms + ((1.0 - self.tokens) * 1000.0 / rate as f32).ceil() as u64
    }

    /// Tokens there at `now_ms`, without taking any.
    pub fn available(&self, rate: u32, burst: u32, now_ms: u64) -> f32 {
        let dt = now_ms.saturating_sub(self.last_ms) as f32 / 1000.0;
        (self.tokens + dt * rate as f32).min(burst as f32)
    }

    /// Takes one token if available.
    pub fn take(&mut self, rate: u32, burst: u32, now_ms: u64) -> bool {
        self.take_n(1, rate, burst, now_ms)
    }

    /// Takes as many of `n` tokens as are available beyond `keep`, and
    /// says how many.
    pub fn take_up_to(&mut self, n: u32, keep: u32, rate: u32, burst: u32, now_ms: u64) -> u32 {
        let _ = self.take_n(0, rate, burst, now_ms);
        let k = n.min((self.tokens - keep as f32).max(0.0) as u32);
        self.tokens -= k as f32;
        k
    }

    /// Takes `n` tokens if available (for byte budgets).
    pub fn take_n(&mut self, n: u32, rate: u32, burst: u32, now_ms: u64) -> bool {
        self.tokens = self.available(rate, burst, now_ms);
        self.last_ms = self.last_ms.max(now_ms);
        if self.tokens >= n as f32 {
            self.tokens -= n as f32;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::{Destination, Draft, Kind};
    use crate::identity::Identity;
    use rand_core::OsRng;

    fn env(id: &Identity, to: u8, ttl: u32, size: usize) -> Envelope {
        let payload = vec![0u8; size];
        Envelope::seal(
            id,
            &Draft {
                kind: Kind::Direct,
                max_hops: 4,
                created: 1000,
                ttl,
                dest: Destination { id: [to; 16], domain: String::new() },
                payload: &payload,
            },
        )
        .unwrap()
    }

    fn limits(bytes: usize, count: usize) -> StoreLimits {
        StoreLimits {
            max_bytes: bytes,
            max_count: count,
            max_bytes_per_origin: bytes,
            max_bytes_per_recipient: bytes,
            max_hot_bytes: bytes,
        }
    }

    #[test]
    #[cfg(target_pointer_width = "64")]
    fn a_stored_message_costs_no_more_memory_than_measured() {
        // Each queued message keeps a boxed Entry (docs/performance.md,
        // "Memory with 10,000 queued": 200 -> 152 bytes since the origin is
        // read from the envelope's bytes; the signature's check that lets
        // the bytes stay on disk took the place of the payload's range). A field added later would give
        // that memory back unnoticed.
        assert!(size_of::<Envelope>() <= 112, "Envelope is {} bytes", size_of::<Envelope>());
        // 152 + musl's 4-byte header fits its 160-byte size class; 160
        // would take 192 (measured: 10,000 queued, 7.2 -> 7.5 MB).
        assert!(size_of::<Entry>() <= 152, "store Entry is {} bytes", size_of::<Entry>());
    }

    #[test]
    fn count_limit_evicts_soonest_expiring_relayed_first() {
        let a = Identity::generate(&mut OsRng);
        let mut s = Store::new(limits(1 << 20, 2));
        let e1 = env(&a, 1, 500, 10);
        let e2 = env(&a, 1, 100, 10);
        let e3 = env(&a, 1, 900, 10);
        s.insert(e1.clone(), false, 1000).unwrap();
        s.insert(e2.clone(), false, 1000).unwrap();
        assert_eq!(s.insert(e3.clone(), false, 1000).unwrap(), vec![e2.id()]);
        assert!(s.contains(&e1.id()) && s.contains(&e3.id()) && !s.contains(&e2.id()));
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn local_envelopes_are_never_evicted() {
        let a = Identity::generate(&mut OsRng);
        let mut s = Store::new(limits(1 << 20, 1));
        s.insert(env(&a, 1, 500, 10), true, 1000).unwrap();
        assert_eq!(s.insert(env(&a, 1, 600, 10), false, 1000), Err(StoreError::Full));
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn byte_limit_and_quotas_are_enforced() {
        let a = Identity::generate(&mut OsRng);
        let b = Identity::generate(&mut OsRng);
        let one = env(&a, 1, 500, 400).len();
        let mut s = Store::new(StoreLimits {
            max_bytes: one * 10,
            max_count: 100,
            max_bytes_per_origin: one * 2,
            max_bytes_per_recipient: one * 3,
            max_hot_bytes: one * 10,
        });
        s.insert(env(&a, 1, 500, 400), false, 1000).unwrap();
        s.insert(env(&a, 1, 501, 400), false, 1000).unwrap();
        assert_eq!(s.insert(env(&a, 2, 502, 400), false, 1000), Err(StoreError::OriginQuota));
        s.insert(env(&b, 1, 503, 400), false, 1000).unwrap();
        assert_eq!(s.insert(env(&b, 1, 504, 400), false, 1000), Err(StoreError::RecipientQuota));
        assert_eq!(s.bytes(), one * 3);
        // Removing frees the quota again.
        let first = *s.iter().next().unwrap().0;
        s.remove(&first);
        assert_eq!(s.bytes(), one * 2);
    }

    #[test]
    fn a_federation_share_is_enforced_and_freed() {
        let a = Identity::generate(&mut OsRng);
        let mut s = Store::new(limits(1 << 20, 100));
        let e1 = env(&a, 1, 500, 100);
        let one = e1.len();
        s.insert_shared(e1.clone(), false, Some(("ffb", one * 2)), 1000).unwrap();
        s.insert_shared(env(&a, 1, 501, 100), false, Some(("ffb", one * 2)), 1000).unwrap();
        assert_eq!(
            s.insert_shared(env(&a, 1, 502, 100), false, Some(("ffb", one * 2)), 1000),
            Err(StoreError::ShareQuota)
        );
        // Other traffic is not charged to the share.
        s.insert(env(&a, 1, 503, 100), false, 1000).unwrap();
        s.remove(&e1.id());
        s.insert_shared(env(&a, 1, 504, 100), false, Some(("ffb", one * 2)), 1000).unwrap();
    }

    #[test]
    fn expired_envelopes_go_first_and_are_reported() {
        let a = Identity::generate(&mut OsRng);
        let mut s = Store::new(limits(1 << 20, 10));
        let e = env(&a, 1, 50, 10);
        s.insert(e.clone(), true, 1000).unwrap();
        assert_eq!(s.next_expiry(), Some(1050));
        assert!(s.expire(1049).is_empty());
        assert_eq!(s.expire(1050), vec![e.id()]);
        assert!(s.is_empty());
        assert_eq!(s.bytes(), 0);
    }

    #[test]
    fn ids_after_go_oldest_first_and_wrap_around() {
        let a = Identity::generate(&mut OsRng);
        let mut s = Store::new(limits(1 << 20, 10));
        let mut stored = Vec::new();
        for i in 0..5 {
            let e = env(&a, 1, 100 + i, 1);
            stored.push(e.id());
            s.insert(e, false, 1000).unwrap();
        }
        let all = s.ids_after(0, None, 10);
        assert_eq!(all.iter().map(|(_, id)| *id).collect::<Vec<_>>(), stored, "in the order stored, not by id");
        let tail = s.ids_after(0, Some(all[3].0), 3);
        assert_eq!(tail, vec![all[4], all[0], all[1]]);
        // Above a floor, the wrap stops at the floor.
        let floor = all[2].0;
        assert_eq!(s.ids_after(floor, Some(all[3].0), 5), vec![all[4], all[2], all[3]]);
        assert_eq!(s.ids_after(floor, None, 5), vec![all[2], all[3], all[4]]);
        assert_eq!((s.count_from(0), s.count_from(floor), s.count_from(all[4].0 + 1)), (5, 3, 0));
        // One removed and one added: the newest comes last.
        s.remove(&stored[1]);
        let e = env(&a, 1, 200, 1);
        let newest = e.id();
        s.insert(e, false, 1000).unwrap();
        let ids: Vec<_> = s.ids_after(0, None, 10).into_iter().map(|(_, id)| id).collect();
        assert_eq!(ids, vec![stored[0], stored[2], stored[3], stored[4], newest]);
    }

    #[test]
    fn seen_set_is_bounded_and_expires() {
        let mut seen = SeenSet::new(3);
        for i in 0..5u8 {
            seen.insert(EnvelopeId([i; 16]), 100 + i as u64);
        }
        assert_eq!(seen.len(), 3);
        assert!(!seen.contains(&EnvelopeId([0; 16])));
        assert!(seen.contains(&EnvelopeId([4; 16])));
        seen.expire(103);
        assert_eq!(seen.len(), 1);
    }

    #[test]
    fn bucket_limits_rate() {
        let mut b = Bucket::full(2, 0);
        assert!(b.take(1, 2, 0));
        assert!(b.take(1, 2, 0));
        assert!(!b.take(1, 2, 0));
        assert!(b.take(1, 2, 1000));
        assert!(!b.take(1, 2, 1000));
    }
}
