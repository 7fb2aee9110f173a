//! End-to-end sessions: the symmetric ratchet under direct messages.
//!
//! A session starts with one hybrid key exchange (X25519 + ML-KEM-768 to
//! the recipient's card, as a one-shot message did before) and then derives
//! a chain: message key n comes from chain key n, and chain key n + 1
//! replaces chain key n, so a key once used or skipped past cannot be
//! recomputed from what the sender keeps (forward secrecy per message).
//! The receiver keeps the keys of counters it skipped past, bounded, so
//! late, reordered and duplicated messages of a store-and-forward mesh
//! still open.
//!
//! This module holds the key schedule, the two halves of a session, the
//! receiver's book of sessions per origin, and the encoding of one
//! origin's sessions for the state dir. It deliberately does not seal or
//! open payloads (e2e.rs), decide when a session is confirmed or retired
//! (node/sessions.rs), or touch the disk.

use core::fmt;
use std::collections::BTreeMap;

use zeroize::{Zeroize, Zeroizing};

use crate::crypto::kdf;
use crate::identity::NodeId;
use crate::wire::{Put, Reader};

/// Bytes of a session id: `kdf("mp-sid", eph || kem ct)` truncated.
pub const SID_LEN: usize = 8;
/// A session id.
pub type SessionId = [u8; SID_LEN];
/// A sender starts a new session rather than have more than this many
/// messages of one session unacknowledged: the receiver then never needs
/// more skipped keys, or a longer jump, than this for an honest sender,
/// whatever order a backlog arrives in. (A live stream has about its rate
/// times the acknowledgement delay, 1 s by default, unacknowledged.)
pub const MAX_UNACKED: usize = 4096;
/// Skipped message keys a receiver keeps per session (the oldest go first).
pub const MAX_SKIPPED: usize = 4096;
/// Skipped message keys a receiver keeps in all (about 1.5 MB): past it,
/// the oldest keys of the session holding most go first.
pub const TOTAL_SKIPPED: usize = 32 * 1024;
/// The furthest a counter may jump ahead of the receiver's chain: bounds
/// the key derivations one message can cost (8,192 KDF calls, about 3 ms).
pub const MAX_JUMP: u32 = 4096;
/// A sender retires a session after this many messages...
pub const SESSION_MESSAGES: u32 = 10_000;
/// ...or this many seconds, and starts a fresh hybrid exchange.
pub const SESSION_AGE_S: u64 = 24 * 3600;
/// Until a session is confirmed, its start (suite 3) rides in counter 0
/// and in each power of two from this one on (16, 32, 64, ...: 11 of a
/// session's 10,000 messages); the others only name it (suite 5). A
/// follower whose start was lost asks for it (node/restate.rs).
pub const START_FIRST_REPEAT: u32 = 16;

/// Whether counter `n` of an unconfirmed session carries its start
/// ([`START_FIRST_REPEAT`]).
pub fn carries_start(n: u32) -> bool {
    n == 0 || (n >= START_FIRST_REPEAT && n.is_power_of_two())
}
/// ...and so does any message that would outlive every start sent so far
/// by more than this (a follower whose start expired could never open).
pub const START_GRACE_S: u64 = 3600;
/// Sessions a receiver keeps per origin (least recently used go first):
/// a backlog as large as a recipient's share of the default store
/// (2 MiB, about 4,600 messages) needs 5.
pub const MAX_SESSIONS_PER_ORIGIN: usize = 16;
/// Origins a receiver keeps sessions for (least recently used go first).
pub const MAX_ORIGINS: usize = 4096;
/// The largest sessions file: every session of one origin, and every
/// skipped key the book may hold.
pub const MAX_FILE_LEN: usize = 21 + MAX_SESSIONS_PER_ORIGIN * 54 + TOTAL_SKIPPED * 36;

/// One origin's sessions as the state dir keeps them: secret keys, so
/// zeroized when dropped and never printed (Debug shows the length).
#[derive(Clone, PartialEq, Eq)]
pub struct SessionsFile(Zeroizing<Vec<u8>>);

impl SessionsFile {
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for SessionsFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionsFile({} bytes)", self.0.len())
    }
}

/// Why a session message cannot be opened with the session state held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionError {
    /// No session with this id from this origin (expired, evicted, or the
    /// receiver lost its state).
    Unknown,
    /// The counter's key is gone: used already, or skipped too long ago.
    KeyGone,
    /// The counter is further ahead than [`MAX_JUMP`].
    TooFar,
}

impl fmt::Display for SessionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SessionError::Unknown => "no session with this id from this origin",
            SessionError::KeyGone => "the key of this message counter is gone (used or skipped long ago)",
            SessionError::TooFar => "the message counter jumps too far ahead",
        })
    }
}

/// The public id of the session a hybrid header starts.
pub fn session_id(eph: &[u8; 32], kem_ct: &[u8]) -> SessionId {
    let h = kdf(b"mp-sid\0\0", &[], &[eph, kem_ct]);
    let mut sid = [0u8; SID_LEN];
    sid.copy_from_slice(&h[..SID_LEN]);
    sid
}

/// The first chain key, from the hybrid exchange's secrets and transcript.
pub fn first_chain_key(dh: &[u8], kem_ss: &[u8], eph: &[u8], recip_x: &[u8], kem_ct: &[u8]) -> Zeroizing<[u8; 32]> {
    let root = Zeroizing::new(kdf(b"mp-e2s\0\0", &[], &[dh, kem_ss, eph, recip_x, kem_ct]));
    Zeroizing::new(kdf(b"mp-ck0\0\0", &root[..], &[]))
}

/// A chain at counter `next`: the key of message `next` and everything
/// after it can be derived, nothing before.
pub struct Chain {
    key: Zeroizing<[u8; 32]>,
    next: u32,
}

impl Chain {
    pub fn new(key: Zeroizing<[u8; 32]>) -> Chain {
        Chain { key, next: 0 }
    }

    pub fn next(&self) -> u32 {
        self.next
    }

    /// The message key of counter `next`; the chain moves on and forgets it.
    pub fn step(&mut self) -> (u32, Zeroizing<[u8; 32]>) {
        let mk = Zeroizing::new(kdf(b"mp-mk\0\0\0", &self.key[..], &[]));
        self.key = Zeroizing::new(kdf(b"mp-ck\0\0\0", &self.key[..], &[]));
        let n = self.next;
        self.next = self.next.saturating_add(1);
        (n, mk)
    }

    fn copy(&self) -> Chain {
        Chain { key: self.key.clone(), next: self.next }
    }
}

/// The sender's half: the header that starts the session, the chain, and
/// whether the recipient has acknowledged a message of it (then the
/// header is no longer repeated).
pub struct SendSession {
    pub sid: SessionId,
    /// `eph || kem ct`, repeated in every message until confirmed.
    pub header: Vec<u8>,
    /// The recipient X25519 key it was made for (a new card, a new session).
    pub recip_x: [u8; 32],
    pub chain: Chain,
    pub confirmed: bool,
    pub created_s: u64,
    /// The latest expiry (unix seconds) of a message that carried the start.
    pub start_until: u64,
    /// Messages carrying the start that may still arrive (the node drops
    /// one once it is final or its write failed). None left: the next
    /// message carries the start again.
    pub starts: std::collections::BTreeSet<[u8; 16]>,
    /// Envelope ids sealed in it and not yet acknowledged, refused or gone.
    pub unacked: std::collections::BTreeSet<[u8; 16]>,
}

impl SendSession {
    /// True when the next message should start a new session instead.
    pub fn spent(&self, now_s: u64) -> bool {
        self.chain.next() >= SESSION_MESSAGES
            || now_s.saturating_sub(self.created_s) >= SESSION_AGE_S
            || self.unacked.len() >= MAX_UNACKED
    }
}

/// A message key and its counter.
type Keyed = (u32, Zeroizing<[u8; 32]>);

/// Overwrites the first `k` slots past the end of `v`. A shift (remove,
/// drain) or a move out of a vector leaves bitwise copies of keys there,
/// which no `Zeroizing` drop sees.
fn wipe_spare(v: &mut Vec<Keyed>, k: usize) {
    let spare = v.spare_capacity_mut();
    let k = k.min(spare.len());
    if let Some(s) = spare.get_mut(..k) {
        s.zeroize();
    }
}

/// The keys of counters a chain stepped past, ascending by counter (at
/// most `MAX_SKIPPED` per session): a sorted vector searched by halving. A
/// B-tree map of them cost about 6 KB of MIPS code and nothing in speed
/// at this size (keys usually come in order and few are ever skipped).
/// Key bytes a shift or a growth leaves behind are wiped (`wipe_spare`).
#[derive(Default)]
struct Skipped(Vec<Keyed>);

impl Skipped {
    fn get(&self, n: u32) -> Option<&Zeroizing<[u8; 32]>> {
        let i = self.0.binary_search_by_key(&n, |e| e.0).ok()?;
        self.0.get(i).map(|e| &e.1)
    }

    /// Forgets the key of `n`; false if it was not held.
    fn remove(&mut self, n: u32) -> bool {
        let Ok(i) = self.0.binary_search_by_key(&n, |e| e.0) else { return false };
        self.0.remove(i);
        wipe_spare(&mut self.0, 1);
        true
    }

    /// Forgets the `k` lowest counters' keys.
    fn drop_oldest(&mut self, k: usize) {
        let k = k.min(self.0.len());
        self.0.drain(..k);
        wipe_spare(&mut self.0, k);
    }

    /// Appends keys of counters above every one held (the chain only moves
    /// forward), growing into a new buffer only after the old one's keys
    /// are wiped.
    fn append(&mut self, mut passed: Vec<Keyed>) {
        let need = self.0.len() + passed.len();
        if need > self.0.capacity() {
            let mut grown = Vec::with_capacity(need.max(self.0.capacity() * 2));
            let k = self.0.len();
            grown.append(&mut self.0);
            wipe_spare(&mut self.0, k);
            self.0 = grown;
        }
        let m = passed.len();
        self.0.append(&mut passed);
        wipe_spare(&mut passed, m);
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The receiver's half of one session.
pub struct RecvSession {
    pub sid: SessionId,
    chain: Chain,
    skipped: Skipped,
    pub last_s: u64,
    /// When the book last used it, in book operations (finer than
    /// seconds, for least-recently-used eviction; not saved).
    touched: u64,
}

impl RecvSession {
    pub fn new(sid: SessionId, first: Zeroizing<[u8; 32]>, now_s: u64) -> RecvSession {
        RecvSession { sid, chain: Chain::new(first), skipped: Skipped::default(), last_s: now_s, touched: 0 }
    }

    /// Opens counter `n` with `f` given its key. Only if `f` succeeds does
    /// the state move on: the chain passes `n` (keeping the keys it skips)
    /// and the key of `n` is kept too, as pending, until the caller calls
    /// [`RecvSession::forget`] once the message is durable; so a crash before
    /// that can open the same message again.
    pub fn open<T, E>(
        &mut self,
        n: u32,
        now_s: u64,
        f: impl FnOnce(&[u8; 32]) -> Result<T, E>,
    ) -> Result<Result<T, E>, SessionError> {
        if n < self.chain.next() {
            let key = self.skipped.get(n).ok_or(SessionError::KeyGone)?;
            let r = f(key);
            if r.is_ok() {
                self.last_s = now_s;
            }
            return Ok(r);
        }
        if n - self.chain.next() > MAX_JUMP {
            return Err(SessionError::TooFar);
        }
        let mut c = self.chain.copy();
        // Sized for the whole jump: a growing vector would leave copies of
        // keys in the buffers it gives up.
        let mut passed = Vec::with_capacity((n - self.chain.next()) as usize + 1);
        loop {
            let (i, mk) = c.step();
            if i == n {
                let r = f(&mk);
                if r.is_ok() {
                    passed.push((i, mk));
                    self.chain = c;
                    self.skipped.append(passed);
                    self.skipped.drop_oldest(self.skipped.len().saturating_sub(MAX_SKIPPED));
                    self.last_s = now_s;
                }
                return Ok(r);
            }
            passed.push((i, mk));
        }
    }

    pub fn skipped(&self) -> usize {
        self.skipped.len()
    }

    pub fn next(&self) -> u32 {
        self.chain.next()
    }
}

/// The receiver's sessions, per origin, bounded twice (per origin and in
/// origins), least recently used evicted first.
#[derive(Default)]
pub struct Inbound {
    by_origin: BTreeMap<NodeId, Vec<RecvSession>>,
    /// Origins left with no session since [`Inbound::take_gone`].
    gone: Vec<NodeId>,
    /// Skipped keys held in all sessions.
    skipped_total: usize,
    /// Book operations so far (for [`RecvSession`]'s `touched`).
    ticks: u64,
}

impl Inbound {
    pub fn get_mut(&mut self, origin: &NodeId, sid: &SessionId) -> Option<&mut RecvSession> {
        self.by_origin.get_mut(origin)?.iter_mut().find(|s| &s.sid == sid)
    }

    pub fn contains(&self, origin: &NodeId, sid: &SessionId) -> bool {
        self.by_origin.get(origin).is_some_and(|v| v.iter().any(|s| &s.sid == sid))
    }

    /// [`RecvSession::open`] on a held session, keeping the total of
    /// skipped keys within [`TOTAL_SKIPPED`].
    pub fn open<T, E>(
        &mut self,
        origin: &NodeId,
        sid: &SessionId,
        n: u32,
        now_s: u64,
        f: impl FnOnce(&[u8; 32]) -> Result<T, E>,
    ) -> Result<Result<T, E>, SessionError> {
        self.ticks += 1;
        let tick = self.ticks;
        let s = self.get_mut(origin, sid).ok_or(SessionError::Unknown)?;
        s.touched = tick;
        let before = s.skipped.len();
        let r = s.open(n, now_s, f);
        let after = s.skipped.len();
        self.skipped_total = (self.skipped_total + after).saturating_sub(before);
        if self.skipped_total > TOTAL_SKIPPED {
            self.shed_skipped();
        }
        r
    }

    /// Drops the oldest skipped keys of the sessions holding most, down to
    /// seven eighths of the total allowed (so this runs rarely).
    fn shed_skipped(&mut self) {
        let target = TOTAL_SKIPPED / 8 * 7;
        while self.skipped_total > target {
            let most = self.by_origin.values_mut().flat_map(|v| v.iter_mut()).max_by_key(|s| s.skipped.len());
            let Some(s) = most.filter(|s| !s.skipped.is_empty()) else {
                self.recount();
                return;
            };
            let drop = (self.skipped_total - target).min(s.skipped.len().div_ceil(2)).max(1);
            s.skipped.drop_oldest(drop);
            self.skipped_total -= drop.min(self.skipped_total);
        }
    }

    fn recount(&mut self) {
        self.skipped_total = self.by_origin.values().flatten().map(|s| s.skipped.len()).sum();
    }

    /// Forgets the key of counter `n` of a session (its message is durable).
    pub fn forget(&mut self, origin: &NodeId, sid: &SessionId, n: u32) {
        if let Some(s) = self.get_mut(origin, sid)
            && s.skipped.remove(n)
        {
            self.skipped_total = self.skipped_total.saturating_sub(1);
        }
    }

    pub fn skipped_total(&self) -> usize {
        self.skipped_total
    }

    /// Bytes [`Inbound::encode`] would write for `origin`.
    pub fn encoded_len(&self, origin: &NodeId) -> usize {
        self.by_origin.get(origin).map_or(0, |v| 21 + v.iter().map(|s| 54 + 36 * s.skipped.len()).sum::<usize>())
    }

    /// Adds a session; an origin whose sessions were all evicted for it
    /// is reported by [`Inbound::take_gone`].
    pub fn insert(&mut self, origin: NodeId, mut s: RecvSession) {
        self.ticks += 1;
        s.touched = self.ticks;
        if !self.by_origin.contains_key(&origin) && self.by_origin.len() >= MAX_ORIGINS {
            let lru = self
                .by_origin
                .iter()
                .min_by_key(|(_, v)| v.iter().map(|s| (s.last_s, s.touched)).max().unwrap_or((0, 0)))
                .map(|(k, _)| *k);
            if let Some(k) = lru
                && let Some(v) = self.by_origin.remove(&k)
            {
                self.skipped_total -= v.iter().map(|x| x.skipped.len()).sum::<usize>().min(self.skipped_total);
                self.gone.push(k);
            }
        }
        // The total follows what leaves and what comes, without a walk
        // over every session held.
        let mut left = 0;
        let v = self.by_origin.entry(origin).or_default();
        if let Some(i) = v.iter().position(|x| x.sid == s.sid) {
            left += v.remove(i).skipped.len();
        }
        if v.len() >= MAX_SESSIONS_PER_ORIGIN
            && let Some(i) = v.iter().enumerate().min_by_key(|(_, x)| (x.last_s, x.touched)).map(|(i, _)| i)
        {
            left += v.remove(i).skipped.len();
        }
        let came = s.skipped.len();
        v.push(s);
        self.skipped_total = (self.skipped_total + came).saturating_sub(left);
        if self.skipped_total > TOTAL_SKIPPED {
            self.shed_skipped();
        }
    }

    /// Drops sessions unused since `before_s`; origins left with none are
    /// reported by [`Inbound::take_gone`].
    pub fn expire(&mut self, before_s: u64) {
        let gone = &mut self.gone;
        self.by_origin.retain(|o, v| {
            v.retain(|s| s.last_s >= before_s);
            if v.is_empty() {
                gone.push(*o);
            }
            !v.is_empty()
        });
        self.recount();
    }

    /// Origins whose sessions all went since the last call (their saved
    /// files are to be deleted).
    pub fn take_gone(&mut self) -> Vec<NodeId> {
        core::mem::take(&mut self.gone)
    }

    pub fn origins(&self) -> usize {
        self.by_origin.len()
    }

    pub fn sessions(&self) -> usize {
        self.by_origin.values().map(Vec::len).sum()
    }

    /// One origin's sessions as the state dir keeps them.
    pub fn encode(&self, origin: &NodeId) -> Option<SessionsFile> {
        Some(SessionsFile(Zeroizing::new(encode(origin, self.by_origin.get(origin)?))))
    }

    /// Takes back one origin's sessions from the state dir.
    pub fn restore(&mut self, bytes: &[u8]) -> Result<NodeId, FileError> {
        let (origin, sessions) = decode(bytes)?;
        for s in sessions {
            self.insert(origin, s);
        }
        Ok(origin)
    }
}

const MAGIC: &[u8; 4] = b"MPS1";

/// Why a sessions file was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileError {
    BadMagic,
    Truncated(&'static str),
    TooMany {
        what: &'static str,
        count: usize,
    },
    /// A skipped counter at or beyond the chain, or out of order.
    BadCounter(u32),
    /// Two sessions with the same id.
    DuplicateSession,
    /// No session at all (an origin without sessions has no file).
    Empty,
    TrailingBytes(usize),
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FileError::BadMagic => f.write_str("not a meshpost sessions file (magic)"),
            FileError::Truncated(w) => write!(f, "truncated at {w}"),
            FileError::TooMany { what, count } => write!(f, "{count} {what}, more than allowed"),
            FileError::BadCounter(n) => write!(f, "skipped counter {n} out of order or not behind the chain"),
            FileError::TrailingBytes(n) => write!(f, "{n} bytes after the last session"),
            FileError::DuplicateSession => f.write_str("two sessions with the same id"),
            FileError::Empty => f.write_str("no session in it"),
        }
    }
}

/// Layout: `"MPS1"`, `[16] origin`, `u8 sessions`, then per session
/// `[8] sid`, `[32] chain key`, `u32 next`, `u64 last used`, `u16 skipped`,
/// and per skipped key `u32 counter`, `[32] key`, counters ascending.
fn encode(origin: &NodeId, sessions: &[RecvSession]) -> Vec<u8> {
    let mut out = Vec::with_capacity(21 + sessions.len() * 54);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&origin.0);
    out.put_u8(sessions.len() as u8);
    for s in sessions {
        out.extend_from_slice(&s.sid);
        out.extend_from_slice(&s.chain.key[..]);
        out.put_u32(s.chain.next);
        out.put_u64(s.last_s);
        out.put_u16(s.skipped.len() as u16);
        for (n, k) in &s.skipped.0 {
            out.put_u32(*n);
            out.extend_from_slice(&k[..]);
        }
    }
    out
}

/// Parses a sessions file; a pure function of its bytes.
pub fn decode(bytes: &[u8]) -> Result<(NodeId, Vec<RecvSession>), FileError> {
    let mut r = Reader::new(bytes);
    let t = FileError::Truncated;
    if r.array::<4>("magic").map_err(|_| FileError::BadMagic)? != *MAGIC {
        return Err(FileError::BadMagic);
    }
    let origin = NodeId(r.array::<16>("origin").map_err(|_| t("origin"))?);
    let count = r.u8("count").map_err(|_| t("count"))? as usize;
    if count == 0 {
        return Err(FileError::Empty);
    }
    if count > MAX_SESSIONS_PER_ORIGIN {
        return Err(FileError::TooMany { what: "sessions", count });
    }
    let mut sessions = Vec::with_capacity(count);
    for _ in 0..count {
        let sid = r.array::<SID_LEN>("sid").map_err(|_| t("sid"))?;
        if sessions.iter().any(|s: &RecvSession| s.sid == sid) {
            return Err(FileError::DuplicateSession);
        }
        let key = Zeroizing::new(r.array::<32>("chain").map_err(|_| t("chain key"))?);
        let next = r.u32("next").map_err(|_| t("next"))?;
        let last_s = r.u64("last").map_err(|_| t("last used"))?;
        let n = r.u16("skipped").map_err(|_| t("skipped count"))? as usize;
        if n > MAX_SKIPPED {
            return Err(FileError::TooMany { what: "skipped keys", count: n });
        }
        let mut skipped = Skipped(Vec::with_capacity(n));
        let mut prev: Option<u32> = None;
        for _ in 0..n {
            let c = r.u32("counter").map_err(|_| t("skipped counter"))?;
            let k = Zeroizing::new(r.array::<32>("key").map_err(|_| t("skipped key"))?);
            if c >= next || prev.is_some_and(|p| c <= p) {
                return Err(FileError::BadCounter(c));
            }
            prev = Some(c);
            skipped.0.push((c, k)); // ascending, checked above
        }
        sessions.push(RecvSession { sid, chain: Chain { key, next }, skipped, last_s, touched: 0 });
    }
    match r.rest().len() {
        0 => Ok((origin, sessions)),
        n => Err(FileError::TrailingBytes(n)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (Chain, RecvSession) {
        let k = Zeroizing::new([7u8; 32]);
        (Chain::new(k.clone()), RecvSession::new([1; 8], k, 100))
    }

    fn opens(r: &mut RecvSession, n: u32, mk: &[u8; 32]) -> Result<bool, SessionError> {
        r.open(n, 200, |k| if k == mk { Ok(()) } else { Err(()) }).map(|x| x.is_ok())
    }

    /// The vectors in docs/protocol.md section 7.2.1.
    #[test]
    fn an_unconfirmed_session_repeats_its_start_at_doubling_counters() {
        let starts: Vec<u32> = (0..SESSION_MESSAGES).filter(|&n| carries_start(n)).collect();
        assert_eq!(starts, [0, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192]);
    }

    #[test]
    fn key_schedule_vectors() {
        let k: [u8; 32] = core::array::from_fn(|i| i as u8);
        let hex = crate::crypto::to_hex;
        assert_eq!(hex(&session_id(&k, &[0x5a; 1088])), "0e3c207cf38deeef");
        assert_eq!(
            hex(&kdf(b"mp-ck0\0\0", &k, &[])),
            "e08d98da3a045516d09cac31be894682c95a80a5410a9d9590532660c7aad22e"
        );
        let mut c = Chain::new(Zeroizing::new(k));
        let (n, mk) = c.step();
        assert_eq!((n, hex(&mk[..])), (0, "fc11e1349d03cd7f2a1bc0ada12dc2704fb55742232d3aaf1aa30ee9d8725728".into()));
        assert_eq!(hex(&c.key[..]), "57dceec5f330d93801e2bba36bbac044fdfd6c2a9e6e00d9629ec1cfc169b946");
    }

    #[test]
    fn late_reordered_and_duplicated_messages_open_and_used_keys_go() {
        let (mut send, mut recv) = pair();
        let keys: Vec<_> = (0..10).map(|_| send.step().1).collect();
        // 5 first: 0..5 are kept as skipped, 5 as pending.
        assert_eq!(opens(&mut recv, 5, &keys[5]), Ok(true));
        assert_eq!(recv.skipped(), 6);
        assert_eq!(opens(&mut recv, 2, &keys[2]), Ok(true));
        // A duplicate before the message is durable still opens...
        assert_eq!(opens(&mut recv, 2, &keys[2]), Ok(true));
        recv.skipped.remove(2);
        // ...after, its key is gone.
        assert_eq!(opens(&mut recv, 2, &keys[2]), Err(SessionError::KeyGone));
        // A wrong key (tampered message) changes nothing.
        assert_eq!(opens(&mut recv, 9, &keys[8]), Ok(false));
        assert_eq!(recv.next(), 6);
        assert_eq!(opens(&mut recv, 9, &keys[9]), Ok(true));
        assert_eq!(recv.next(), 10);
    }

    #[test]
    fn jumps_and_skipped_keys_are_bounded() {
        let (_, mut recv) = pair();
        assert_eq!(opens(&mut recv, MAX_JUMP + 1, &[0; 32]), Err(SessionError::TooFar));
        let (mut send, mut recv) = pair();
        let last = 2 * MAX_JUMP;
        let keys: Vec<_> = (0..=last).map(|_| send.step().1).collect();
        for n in [MAX_JUMP - 1, last] {
            assert_eq!(opens(&mut recv, n, &keys[n as usize]), Ok(true));
        }
        assert_eq!(recv.skipped(), MAX_SKIPPED);
        // The oldest went first.
        assert_eq!(opens(&mut recv, 3, &keys[3]), Err(SessionError::KeyGone));
        assert_eq!(opens(&mut recv, last - 1, &keys[last as usize - 1]), Ok(true));
    }

    #[test]
    fn skipped_keys_are_bounded_across_the_whole_book() {
        let mut book = Inbound::default();
        let origins = TOTAL_SKIPPED / MAX_SKIPPED + 4;
        for i in 0..origins {
            let o = NodeId([i as u8; 16]);
            book.insert(o, RecvSession::new([1; 8], Zeroizing::new([i as u8; 32]), 0));
            let r = book.open(&o, &[1; 8], MAX_JUMP - 1, 1, |_| Ok::<(), ()>(()));
            assert_eq!(r, Ok(Ok(())));
            assert!(book.skipped_total() <= TOTAL_SKIPPED, "{}", book.skipped_total());
        }
        let counted: usize = book.by_origin.values().flatten().map(|s| s.skipped()).sum();
        assert_eq!(counted, book.skipped_total());
        assert!(counted > TOTAL_SKIPPED / 2, "{counted}: shed only what was over");
    }

    #[test]
    fn a_sessions_file_round_trips_and_bad_ones_are_refused() {
        let (mut send, mut recv) = pair();
        let keys: Vec<_> = (0..4).map(|_| send.step().1).collect();
        assert_eq!(opens(&mut recv, 3, &keys[3]), Ok(true));
        let mut book = Inbound::default();
        let origin = NodeId([9; 16]);
        book.insert(origin, recv);
        let bytes = book.encode(&origin).unwrap().as_bytes().to_vec();
        assert_eq!(format!("{:?}", book.encode(&origin).unwrap()), format!("SessionsFile({} bytes)", bytes.len()));
        let mut back = Inbound::default();
        assert_eq!(back.restore(&bytes), Ok(origin));
        assert_eq!(back.skipped_total(), 4);
        // Taken back again (the same session replaced): still counted once.
        back.restore(&bytes).unwrap();
        assert_eq!(back.skipped_total(), 4);
        let s = back.get_mut(&origin, &[1; 8]).unwrap();
        assert_eq!((s.next(), s.skipped()), (4, 4));
        assert_eq!(opens(s, 1, &keys[1]), Ok(true));
        assert_eq!(decode(&bytes[..bytes.len() - 1]).err(), Some(FileError::Truncated("skipped key")));
        let mut long = bytes.clone();
        long.push(0);
        assert_eq!(decode(&long).err(), Some(FileError::TrailingBytes(1)));
        let mut none = bytes[..21].to_vec();
        none[20] = 0;
        assert_eq!(decode(&none).err(), Some(FileError::Empty), "an origin without sessions has no file");
        let mut bad = bytes.clone();
        bad[0] = b'X';
        assert_eq!(decode(&bad).err(), Some(FileError::BadMagic));
        // A skipped counter at the chain's position is refused.
        let mut at = bytes;
        let first_counter = 4 + 16 + 1 + 8 + 32 + 4 + 8 + 2;
        at[first_counter..first_counter + 4].copy_from_slice(&4u32.to_be_bytes());
        assert_eq!(decode(&at).err(), Some(FileError::BadCounter(4)));
    }

    #[test]
    fn the_book_is_bounded_per_origin_and_in_origins() {
        let mut book = Inbound::default();
        for i in 0..(MAX_SESSIONS_PER_ORIGIN as u64 + 3) {
            book.insert(NodeId([1; 16]), RecvSession::new([i as u8; 8], Zeroizing::new([0; 32]), i));
        }
        assert_eq!(book.sessions(), MAX_SESSIONS_PER_ORIGIN);
        assert!(book.get_mut(&NodeId([1; 16]), &[0; 8]).is_none(), "the least recently used went");
        for i in 0..(MAX_ORIGINS as u32 + 5) {
            let mut id = [0u8; 16];
            id[..4].copy_from_slice(&(i + 1000).to_be_bytes());
            book.insert(NodeId(id), RecvSession::new([0; 8], Zeroizing::new([0; 32]), 1000 + i as u64));
        }
        assert_eq!(book.origins(), MAX_ORIGINS);
        assert_eq!(book.take_gone().len(), 6);
        let counted: usize = book.by_origin.values().flatten().map(|s| s.skipped()).sum();
        assert_eq!(counted, book.skipped_total());
        book.expire(1000 + MAX_ORIGINS as u64);
        assert_eq!(book.take_gone().len(), MAX_ORIGINS - 5);
    }
}
