//! The node: every protocol rule of meshpost behind one poll API.
//!
//! The caller (the daemon, a test, the simulator) feeds it events —
//! [`Node::handle_datagram`], [`Node::handle_timeout`], local commands — with
//! the current [`Timestamp`] (monotonic and unix clocks), then drains
//! [`Node::poll_action`] and sleeps until [`Node::poll_timeout`], which is
//! on the monotonic clock. Link timers never read the unix clock, so a
//! wall-clock step neither drops links nor stalls rekeys; envelope creation
//! and expiry use the unix clock. All randomness comes from the node's own
//! generator, seeded once by the caller.
//!
//! Durability is a protocol, not a drain order: every `Persist` and
//! `Deliver` is a write the caller must answer with [`Node::persisted`] or
//! [`Node::persist_failed`]. Everything that depends on the write (the
//! link-level `have`, the end-to-end acknowledgement, the forwarding of a
//! local send) waits inside the node until the write is confirmed, and is
//! dropped if it failed. Nothing is acknowledged that is not on disk.
//!
//! It performs no I/O and reads no clock. It does not resolve host names or
//! pick interfaces; addresses arrive already resolved.

use core::fmt;
use core::net::SocketAddr;
use std::collections::{BTreeMap, VecDeque};

use crate::SmallMap;

use rand_core::RngCore;

use crate::card::Card;
use crate::cardbook::{BeaconMatch, CardBook, Learned};
use crate::channel::{ChannelKey, MAX_CHANNEL_BODY};
use crate::delivered::Delivered;
use crate::e2e;
use crate::envelope::{DEFAULT_HOPS, Destination, Draft, Envelope, EnvelopeError, EnvelopeId, Head, Kind};
use crate::federation::{self, Meter, Queued};
use crate::fragment::{Reassembler, split};
use crate::hslimit::HandshakeLimiter;
use crate::identity::{Identity, NodeId, fingerprint};
use crate::link::frame::{Frame, IdList, id_frames, keepalive, want_better_frames};
use crate::link::handshake::{HandshakeError, Initiator, Responder, SessionKeys};
use crate::link::packet::Packet;
use crate::link::session::{OpenError, Session};
use crate::outbox::{Outbox, SentState};
use crate::owncards::OwnCards;
use crate::rng::NodeRng;
use crate::routing::Table;
use crate::store::{Bucket, SeenSet, Store, StoreError, StoreLimits};
use crate::time::Timestamp;

mod acks;
mod announce;
mod api;
mod cardfetch;
mod channels;
mod cold;
mod confirm;
mod contacts;
mod crossing;
mod durability;
mod flow;
mod forward;
mod graph;
mod links;
mod local;
mod metrics;
mod peers;
mod pushcheck;
mod receive;
mod refusals;
mod resend;
mod restate;
mod sessions;
mod status;
mod sync;
#[cfg(test)]
mod tests;
mod unknown;
mod wire;

pub use crate::peerbook::MAX_STATIC_PEERS;
pub use api::*;
pub use contacts::{ContactError, MAX_CONTACTS};
pub use metrics::Metrics;
pub use wire::{WireClass, WireStats};

use crate::peerbook::{Limits as PeerLimits, PeerBook};
use durability::{AfterWrite, WriteKind, Writes};
use flow::PaceKey;
use links::{BEACON_BURST, BEACON_RATE, Link, MAX_PEER_HAS, NEW_CARD_BURST, NEW_CARD_RATE, PendingInit, PendingResp};
use refusals::Refusals;

/// Most of our own domain's announces kept and handed to a federation peer
/// when its link comes up (paced at its out_rate like everything else).
pub const MAX_CARDS_EXCHANGED: usize = 256;

/// The whole protocol state of one meshpost node.
pub struct Node {
    identity: Identity,
    me: NodeId,
    cfg: Config,
    /// This node's current beacon (the short announce flooded every interval).
    announce: Option<Envelope>,
    /// This node's signed full card, and the card bytes it was made from
    /// (without sequence and neighbours) to tell when to sign a new one.
    full_card: Option<(Envelope, Vec<u8>)>,
    /// Beacons waiting for the card they name (cardfetch.rs).
    held: SmallMap<NodeId, cardfetch::Held>,
    /// Ids we sent a want of lately, until when (cardfetch.rs).
    asked: crate::expiring::ExpiringMap<u64>,
    announce_made_ms: u64,
    peers: PeerBook,
    initiators: SmallMap<u32, PendingInit>,
    responders: SmallMap<u32, PendingResp>,
    /// How many msg1 are answered (per source address and in total).
    hs_limit: HandshakeLimiter,
    /// Cookies loaded peers gave us, by their address, with when (links.rs).
    cookies_held: SmallMap<core::net::IpAddr, ([u8; crate::link::packet::COOKIE_LEN], u64)>,
    links: SmallMap<NodeId, Link>,
    by_index: SmallMap<u32, NodeId>,
    cards: CardBook,
    /// Our own domain's announces, handed to federation peers at link-up.
    cards_out: OwnCards,
    /// Direct messages this node sent, and what became of them.
    outbox: Outbox,
    /// Nodes added as contacts (their cards are never evicted).
    contacts: std::collections::BTreeSet<NodeId>,
    /// Nodes whose messages to us are dropped.
    blocked: std::collections::BTreeSet<NodeId>,
    origin_buckets: SmallMap<NodeId, Bucket>,
    store: Store,
    seen: SeenSet,
    delivered: Delivered,
    writes: Writes,
    /// False while the caller's inbox cannot take messages (see
    /// [`Node::set_inbox_open`]).
    inbox_open: bool,
    actions: VecDeque<Action>,
    metrics: Metrics,
    wire: WireStats,
    /// The class of the datagram being sent (wire.rs); handshake unless a
    /// frame is being sent.
    sending: WireClass,
    /// The class of the envelope whose fragments are being sent.
    fragments: WireClass,
    next_xfer: u32,
    next_index: u32,
    /// The latest monotonic time any entry point was called with (ms).
    clock: u64,
    /// The unix time given with it (ms).
    unix_ms: u64,
    /// Highest announce sequence number used (never goes back, even when
    /// the wall clock does).
    card_seq: u64,
    rng: NodeRng,
    /// Routes computed from beacons (graph.rs), and whether they are stale.
    routes: core::cell::RefCell<Table>,
    routes_stale: core::cell::Cell<bool>,
    /// When they were last computed, and whether a change of this node's
    /// own links wants them computed at once (graph.rs holds a search of
    /// the whole graph down in a large domain).
    routes_at: core::cell::Cell<u64>,
    routes_urgent: core::cell::Cell<bool>,
    /// Searches of the whole graph for routes so far (what they cost is
    /// what the simulator watches).
    route_searches: core::cell::Cell<u64>,
    /// Broadcast-tree neighbours by flood origin (graph.rs), emptied with
    /// every change of the graph.
    flood_trees: core::cell::RefCell<BTreeMap<NodeId, Vec<NodeId>>>,
    /// What the broadcast trees are computed from (flood.rs), emptied with
    /// them.
    flood_near: core::cell::RefCell<Option<crate::flood::Near>>,
    /// Whether the graph changed since they were computed, and when that
    /// was (graph.rs holds a recomputation down to once a second).
    flood_stale: core::cell::Cell<bool>,
    flood_at: core::cell::Cell<u64>,
    /// The current announce interval: from `announce_interval_ms`, doubling
    /// while nothing changes up to `announce_max_interval_ms` (announce.rs).
    announce_ivl: u64,
    /// When to look next for a discovered peer routes do not reach (peers.rs).
    bridge_check_at: u64,
    /// When the routes are next marked stale for ageing (handle_timeout).
    routes_aged_at: u64,
    /// Stranded copies (receive.rs) until their envelopes expire: 0 once
    /// found stranded, 1 once asked for. Bounded: full, the soonest to
    /// expire is forgotten.
    stranded_ids: crate::expiring::ExpiringMap<u64>,
    /// Cold envelopes asked of the caller, and the links waiting for each
    /// (cold.rs). Bounded by `cold::MAX_LOADING`; a list, not a map: the
    /// daemon answers within the tick, so it holds a few at most, and a
    /// B-tree of its own cost 2.7 KB of the mipsel binary.
    loading: Vec<(EnvelopeId, cold::Loading)>,
    /// When the last accepted announce of each origin arrived.
    /// Per origin: when its last beacon arrived, and the credit left for
    /// passing beacons on (announce.rs).
    announce_seen: SmallMap<NodeId, (u64, f32)>,
    next_announce: u64,
    pending_acks: SmallMap<NodeId, Vec<(EnvelopeId, u64)>>,
    /// Refusals to send: origin, id, expiry, reason (bounded, see acks.rs).
    pending_refusals: Vec<(NodeId, EnvelopeId, u64, u8)>,
    /// "Session unknown" hints sent (unknown.rs).
    hint_budget: Bucket,
    /// Signed refusals made, at most `REFUSAL_RATE` a second (acks.rs).
    refusal_budget: Bucket,
    next_ack_flush: Option<u64>,
    /// Peers refused recently (log once per cause, penalties).
    refusals: Refusals,
    /// When acks for each origin started waiting (for its card).
    ack_since: SmallMap<NodeId, u64>,
    channels: SmallMap<[u8; 16], ChannelKey>,
    channel_buckets: SmallMap<(NodeId, [u8; 16]), Bucket>,
    /// End-to-end sessions, both halves (sessions.rs).
    sessions: sessions::Sessions,
    /// The starts of our sessions, kept to send again (restate.rs).
    starts: restate::KeptStarts,
}

impl Node {
    /// A node with its identity, tunables, the seed of its random number
    /// generator (from the OS in the daemon, fixed in simulations), and
    /// the time.
    pub fn new(identity: Identity, cfg: Config, seed: [u8; 32], now: Timestamp) -> Node {
        let now_ms = now.mono_ms;
        let mut rng = NodeRng::from_seed(seed);
        let me = identity.node_id();
        let store = Store::new(cfg.store);
        let seen = SeenSet::new(cfg.seen_capacity);
        let peers = PeerBook::new(Node::peer_limits(&cfg));
        let delivered = Delivered::new(cfg.delivered_capacity);
        let hs_limit = HandshakeLimiter::new(cfg.handshake_rate, now_ms, &mut rng);
        let max_cards = cfg.max_cards;
        let mut n = Node {
            identity,
            me,
            cfg,
            announce: None,
            full_card: None,
            held: SmallMap::new(),
            asked: crate::expiring::ExpiringMap::default(),
            announce_made_ms: 0,
            peers,
            initiators: SmallMap::new(),
            responders: SmallMap::new(),
            hs_limit,
            cookies_held: SmallMap::new(),
            links: SmallMap::new(),
            by_index: SmallMap::new(),
            cards: CardBook::new(max_cards),
            cards_out: OwnCards::new(MAX_CARDS_EXCHANGED),
            outbox: Outbox::default(),
            contacts: std::collections::BTreeSet::new(),
            blocked: std::collections::BTreeSet::new(),
            origin_buckets: SmallMap::new(),
            store,
            seen,
            delivered,
            writes: Writes::default(),
            inbox_open: true,
            actions: VecDeque::new(),
            metrics: Metrics::default(),
            wire: WireStats::default(),
            sending: WireClass::Handshake,
            fragments: WireClass::Direct,
            next_index: rng.next_u32() | 1,
            // Random, not 0: a peer keeps its reassembly buffers across
            // our restart, and transfers numbered from 0 again would meet
            // its unfinished ones of our last life (mixed into an envelope
            // that failed its signature check, seen in tests/durability.rs).
            next_xfer: rng.next_u32(),
            clock: now_ms,
            unix_ms: now.unix_ms,
            card_seq: 0,
            rng,
            routes: core::cell::RefCell::new(Table::new()),
            routes_stale: core::cell::Cell::new(false),
            routes_at: core::cell::Cell::new(0),
            routes_urgent: core::cell::Cell::new(false),
            route_searches: core::cell::Cell::new(0),
            flood_trees: core::cell::RefCell::new(BTreeMap::new()),
            flood_near: core::cell::RefCell::new(None),
            flood_stale: core::cell::Cell::new(false),
            flood_at: core::cell::Cell::new(0),
            announce_ivl: 0,
            bridge_check_at: now_ms,
            routes_aged_at: now_ms,
            stranded_ids: crate::expiring::ExpiringMap::default(),
            loading: Vec::new(),
            announce_seen: SmallMap::new(),
            next_announce: now_ms,
            pending_acks: SmallMap::new(),
            pending_refusals: Vec::new(),
            refusal_budget: Bucket::full(acks::REFUSAL_BURST, now_ms),
            hint_budget: Bucket::full(unknown::HINT_RATE, now_ms),
            next_ack_flush: None,
            ack_since: SmallMap::new(),
            refusals: Refusals::default(),
            channels: SmallMap::new(),
            channel_buckets: SmallMap::new(),
            sessions: sessions::Sessions::default(),
            starts: restate::KeptStarts::default(),
        };
        n.refresh_announce(now_ms);
        n
    }

    pub fn node_id(&self) -> NodeId {
        self.me
    }

    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Datagrams and bytes sent, by what they carried.
    pub fn wire_stats(&self) -> &WireStats {
        &self.wire
    }

    /// How many envelope ids this node remembers as seen (bounded by
    /// `seen_capacity`).
    pub fn seen_ids(&self) -> usize {
        self.seen.len()
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn cards(&self) -> impl Iterator<Item = &Card> {
        self.cards.values()
    }

    pub fn card(&self, id: &NodeId) -> Option<&Card> {
        self.cards.get(id)
    }

    /// Replaces tunables (on reload). Links, store contents and peers stay.
    pub fn set_config(&mut self, cfg: Config, now: Timestamp) {
        let now_ms = self.tick(now);
        let renamed = cfg.name != self.cfg.name || cfg.domain != self.cfg.domain;
        self.store.set_limits(cfg.store);
        self.cool_durable();
        self.delivered.set_capacity(cfg.delivered_capacity);
        self.peers.set_limits(Node::peer_limits(&cfg));
        self.cards.set_capacity(cfg.max_cards);
        self.hs_limit.set_rate(cfg.handshake_rate);
        self.cfg = cfg;
        if renamed {
            // A new full card is signed; the beacon names it and neighbours
            // fetch it.
            self.announce_ivl = 0;
            self.announce_now(now_ms);
        }
    }

    /// Whether a link to `id` is up: established and confirmed by the peer.
    pub fn is_linked(&self, id: &NodeId) -> bool {
        self.links.get(id).is_some_and(|l| l.confirmed)
    }

    /// Reports a transition of a message this node sent, if it is news.
    pub(super) fn sent_moved(&mut self, id: EnvelopeId, state: SentState) {
        if let Some(to) = self.outbox.advance(&id, state) {
            self.session_moved(id, to, state);
            self.actions.push_back(Action::Sent { id, to, state });
        }
    }

    /// Tracks a message this node sent before a restart (the caller's
    /// record says `state`), so later acknowledgements are reported.
    pub fn track_sent(&mut self, id: EnvelopeId, to: NodeId, state: SentState) {
        self.outbox.track(id, to, state);
    }

    /// Next action to carry out, in order.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    fn emit(&mut self, e: Event) {
        self.actions.push_back(Action::Event(e));
    }

    /// Takes the caller's time: the monotonic clock never goes back here,
    /// the unix clock is taken as given. Returns the monotonic ms.
    fn tick(&mut self, now: Timestamp) -> u64 {
        self.clock = self.clock.max(now.mono_ms);
        self.unix_ms = now.unix_ms;
        self.clock
    }

    /// The caller's unix time in seconds, as envelopes carry it.
    fn unix_s(&self) -> u64 {
        self.unix_ms / 1000
    }

    fn fresh_index(&mut self) -> u32 {
        loop {
            let i = self.rng.next_u32();
            if i != 0
                && !self.by_index.contains_key(&i)
                && !self.initiators.contains_key(&i)
                && !self.responders.contains_key(&i)
            {
                self.next_index = i;
                return i;
            }
        }
    }

    /// When the caller should call [`handle_timeout`](Self::handle_timeout) next.
    pub fn poll_timeout(&self) -> Option<u64> {
        // A first message that goes again (resend.rs) wakes us before its
        // handshake times out.
        let timeout = self.cfg.handshake_timeout_ms;
        let handshakes = self
            .initiators
            .values()
            .map(|p| p.resend_at().map_or(p.started + timeout, |r| r.min(p.started + timeout)))
            .chain(self.responders.values().map(|p| p.started + timeout));
        let links = self.links.values().flat_map(|l| l.timers(&self.cfg).map(|(_, t)| t));
        // Expiry is unix time; wake on the monotonic clock when the wall
        // clock will read it (a later step is caught at the next wake-up).
        let now = Timestamp::new(self.clock, self.unix_ms);
        let expiry = self.store.next_expiry().map(|e| now.mono_at(e.saturating_mul(1000)).max(self.clock + 1));
        links
            .chain(handshakes)
            .chain(self.next_dial())
            .chain(expiry)
            .chain([self.next_announce, self.bridge_check_at])
            .chain(self.next_ack_flush)
            .min()
    }

    /// Runs every timer that is due at `now_ms`.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        let now_ms = self.tick(now);
        let now_s = self.unix_s();
        for id in self.store.expire(now_s) {
            self.writes.take(&id);
            self.metrics.envelopes_expired_in_store += 1;
            self.actions.push_back(Action::Unpersist { id });
            self.sent_moved(id, SentState::Expired);
        }
        self.seen.expire(now_s);
        self.delivered.expire(now_s);
        self.expire_sessions(now_ms);
        // Beacons age out of the graph (graph.rs) after hours: looking once
        // a minute is enough, and keeps keepalive wake-ups from making the
        // next route lookup compute the whole graph again.
        if now_ms >= self.routes_aged_at {
            self.routes_aged_at = now_ms + 60_000;
            self.routes_refreshed();
            self.lift_spent_channel_copies();
            self.ask_for_stranded_copies(now_ms);
        }
        if now_ms >= self.next_announce {
            self.announce_now(now_ms);
        }
        if self.next_ack_flush.is_some_and(|t| now_ms >= t) {
            self.flush_acks(now_ms);
        }
        self.link_timers(now_ms);
        self.bridge_timer(now_ms);
        self.peer_timers(now_ms);
    }

    fn transmit(&mut self, to: SocketAddr, data: Vec<u8>) {
        self.metrics.datagrams_out += 1;
        self.metrics.bytes_out += data.len() as u64;
        let class = core::mem::replace(&mut self.sending, WireClass::Handshake);
        self.wire.add(class, data.len());
        self.actions.push_back(Action::Transmit { to, data });
    }

    /// Handles one UDP datagram from `from`. Never panics on any input.
    pub fn handle_datagram(&mut self, now: Timestamp, from: SocketAddr, data: &[u8]) {
        self.metrics.datagrams_in += 1;
        let now_ms = self.tick(now);
        let packet = match Packet::parse(data) {
            Ok(p) => p,
            Err(_) => {
                self.metrics.datagrams_malformed += 1;
                return;
            }
        };
        match packet {
            Packet::Init { sender, noise } => self.on_init(now_ms, from, sender, noise, None),
            Packet::InitCookie { sender, mac2, noise } => self.on_init(now_ms, from, sender, noise, Some(mac2)),
            Packet::Cookie { receiver, cookie } => self.on_cookie(now_ms, from, receiver, cookie),
            Packet::Unknown { receiver } => self.on_unknown(now_ms, from, receiver),
            Packet::Resp { sender, receiver, noise } => self.on_resp(now_ms, from, sender, receiver, noise),
            Packet::Final { receiver, noise } => self.on_final(now_ms, from, receiver, noise),
            Packet::Data { receiver, counter, header, ciphertext } => {
                self.on_data(now_ms, from, receiver, counter, header, ciphertext)
            }
        }
    }
}
