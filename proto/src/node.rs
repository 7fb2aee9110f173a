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

use rand_core::RngCore;

use crate::card::Card;
use crate::channel::{ChannelKey, MAX_CHANNEL_BODY};
use crate::delivered::Delivered;
use crate::e2e;
use crate::envelope::{DEFAULT_HOPS, Destination, Draft, Envelope, EnvelopeError, EnvelopeId, Kind};
use crate::federation::{self, Meter};
use crate::fragment::{Reassembler, split};
use crate::identity::{Identity, NodeId, fingerprint};
use crate::link::frame::{Frame, IdList, id_frames, keepalive};
use crate::link::handshake::{HandshakeError, Initiator, Responder, SessionKeys};
use crate::link::packet::Packet;
use crate::link::session::{OpenError, Session};
use crate::rng::NodeRng;
use crate::routing::Table;
use crate::store::{Bucket, SeenSet, Store, StoreError, StoreLimits};
use crate::time::Timestamp;

/// Tunables; defaults are documented in docs/configuration.md.
#[derive(Debug, Clone)]
pub struct Config {
    pub name: String,
    pub domain: String,
    pub store: StoreLimits,
    /// Accept links from nodes that are not configured peers.
    pub accept_unknown: bool,
    pub default_ttl: u32,
    pub default_hops: u8,
    pub keepalive_ms: u64,
    pub dead_after_ms: u64,
    pub rekey_after_ms: u64,
    pub retry_min_ms: u64,
    pub retry_max_ms: u64,
    pub sync_interval_ms: u64,
    pub handshake_timeout_ms: u64,
    pub max_links: usize,
    pub max_pending_handshakes: usize,
    pub max_cards: usize,
    pub seen_capacity: usize,
    /// Most ids of delivered messages remembered (never evicted before
    /// they expire; when full, new deliveries wait).
    pub delivered_capacity: usize,
    pub reassembly_bytes_per_link: usize,
    pub reassembly_transfers_per_link: usize,
    pub reassembly_timeout_ms: u64,
    /// Envelopes per second accepted from one link (and burst).
    pub link_rate: u32,
    pub link_burst: u32,
    /// Envelopes per second accepted from one origin (and burst).
    pub origin_rate: u32,
    pub origin_burst: u32,
    /// Most ids offered to a link per sync round.
    pub offer_batch: usize,
    /// How often this node floods its announce.
    pub announce_interval_ms: u64,
    /// Hop limit of announces.
    pub announce_hops: u8,
    /// Announces from one origin arriving faster than this are dropped.
    pub announce_min_interval_ms: u64,
    /// Routes not refreshed by an announce within this time are dropped.
    pub route_timeout_ms: u64,
    /// Delay before delivered ids are acknowledged end to end (batching).
    pub ack_delay_ms: u64,
    /// Most peers remembered from discovery.
    pub max_discovered: usize,
    /// A discovered peer not heard of again within this time is forgotten.
    pub discovery_timeout_ms: u64,
    /// Channel messages per second accepted from one origin on one channel.
    pub channel_rate: u32,
    pub channel_burst: u32,
    /// Lifetime of published channel messages, seconds.
    pub channel_ttl: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            name: String::new(),
            domain: String::new(),
            store: StoreLimits::default(),
            accept_unknown: true,
            default_ttl: 7 * 24 * 3600,
            default_hops: DEFAULT_HOPS,
            keepalive_ms: 10_000,
            dead_after_ms: 35_000,
            rekey_after_ms: 600_000,
            retry_min_ms: 1_000,
            retry_max_ms: 30_000,
            sync_interval_ms: 15_000,
            handshake_timeout_ms: 5_000,
            max_links: 64,
            max_pending_handshakes: 64,
            max_cards: 4096,
            seen_capacity: 65_536,
            delivered_capacity: 65_536,
            reassembly_bytes_per_link: 256 * 1024,
            reassembly_transfers_per_link: 8,
            reassembly_timeout_ms: 15_000,
            link_rate: 200,
            link_burst: 1000,
            origin_rate: 50,
            origin_burst: 500,
            offer_batch: 1024,
            announce_interval_ms: 60_000,
            announce_hops: 8,
            announce_min_interval_ms: 1_000,
            route_timeout_ms: 180_000,
            ack_delay_ms: 1_000,
            max_discovered: 256,
            discovery_timeout_ms: 180_000,
            channel_rate: 5,
            channel_burst: 50,
            channel_ttl: 24 * 3600,
        }
    }
}

/// A statically configured peer: an address and optionally a pinned key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerSpec {
    pub addr: SocketAddr,
    pub pin: Option<[u8; 32]>,
    /// Set for a federation peer: the remote domain and what may cross.
    pub federation: Option<federation::Policy>,
}

/// A message delivered to this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub id: EnvelopeId,
    pub from: NodeId,
    pub from_name: String,
    pub created: u64,
    pub expires: u64,
    pub content_type: u8,
    pub body: Vec<u8>,
}

/// Something worth one log line for an admin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    LinkUp {
        node: NodeId,
        addr: SocketAddr,
        initiator: bool,
    },
    LinkDown {
        node: NodeId,
        reason: &'static str,
    },
    Rekeyed {
        node: NodeId,
    },
    PeerRefused {
        addr: SocketAddr,
        node: Option<NodeId>,
        reason: String,
    },
    HandshakeFailed {
        addr: SocketAddr,
        reason: String,
    },
    EnvelopeDropped {
        from: NodeId,
        reason: String,
    },
    StoreEvicted {
        id: EnvelopeId,
    },
    CardUpdated {
        node: NodeId,
        name: String,
    },
    /// Messages for us are being left with their senders for now.
    DeliveryDeferred {
        reason: String,
    },
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::LinkUp { node, addr, initiator } => {
                write!(f, "link up: {node} at {addr} ({})", if *initiator { "we initiated" } else { "they initiated" })
            }
            Event::LinkDown { node, reason } => write!(f, "link down: {node}: {reason}"),
            Event::Rekeyed { node } => write!(f, "link rekeyed: {node}"),
            Event::PeerRefused { addr, node, reason } => match node {
                Some(n) => write!(f, "peer refused: {n} at {addr}: {reason}"),
                None => write!(f, "peer refused: {addr}: {reason}"),
            },
            Event::HandshakeFailed { addr, reason } => {
                write!(f, "handshake failed with {addr}: {reason}")
            }
            Event::EnvelopeDropped { from, reason } => {
                write!(f, "envelope from link {from} dropped: {reason}")
            }
            Event::StoreEvicted { id } => write!(f, "store full: evicted envelope {id}"),
            Event::CardUpdated { node, name } => write!(f, "learned keys of {node} ({name})"),
            Event::DeliveryDeferred { reason } => {
                write!(f, "messages for this node are left with their senders for now: {reason}")
            }
        }
    }
}

impl Event {
    /// True for events an admin should see at warning level.
    pub fn is_warning(&self) -> bool {
        matches!(self, Event::PeerRefused { .. } | Event::StoreEvicted { .. } | Event::DeliveryDeferred { .. })
    }
}

/// What the caller must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Transmit {
        to: SocketAddr,
        data: Vec<u8>,
    },
    /// Make this envelope durable, then call [`Node::persisted`] (or
    /// [`Node::persist_failed`]) with its id.
    Persist {
        id: EnvelopeId,
        bytes: Vec<u8>,
    },
    /// The envelope left the store (delivered, expired, evicted).
    Unpersist {
        id: EnvelopeId,
    },
    /// Store in the inbox durably, then call [`Node::persisted`] with the
    /// message id; call [`Node::persist_failed`] if it cannot be stored
    /// (disk full, inbox full): the message is then not acknowledged and
    /// its sender offers it again later.
    Deliver(Delivery),
    /// A message on a joined channel (also for messages found in the store
    /// when a channel is joined, and for this node's own publications).
    ChannelDeliver {
        channel: [u8; 16],
        message: Delivery,
    },
    /// A verified announce carrying a node's card; keep it to restore keys.
    SaveCard {
        node: NodeId,
        envelope: Vec<u8>,
    },
    Event(Event),
}

/// Why a local send failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    UnknownRecipient(NodeId),
    ToSelf,
    Envelope(EnvelopeError),
    Store(StoreError),
    NotJoined,
    TooLarge { len: usize, max: usize },
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::UnknownRecipient(n) => {
                write!(f, "no keys known for {n} yet: it must have been linked or announced at least once")
            }
            SendError::ToSelf => f.write_str("recipient is this node"),
            SendError::Envelope(e) => write!(f, "{e}"),
            SendError::Store(e) => write!(f, "{e}"),
            SendError::NotJoined => f.write_str("this node has not joined that channel"),
            SendError::TooLarge { len, max } => {
                write!(f, "message of {len} bytes is larger than the channel maximum of {max} bytes")
            }
        }
    }
}

/// Counters exported as metrics; names match docs/metrics.md.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    pub datagrams_in: u64,
    pub datagrams_out: u64,
    pub datagrams_malformed: u64,
    pub datagrams_unknown_session: u64,
    pub datagrams_replayed: u64,
    pub datagrams_decrypt_failed: u64,
    pub handshakes_completed: u64,
    pub handshakes_failed: u64,
    pub peers_refused: u64,
    pub envelopes_in: u64,
    pub envelopes_duplicate: u64,
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
    pub envelopes_acked: u64,
    pub frames_invalid: u64,
    pub fragments_dropped: u64,
    pub announces_in: u64,
    pub announces_duplicate: u64,
    pub announces_forwarded: u64,
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
            ("datagrams_malformed", "datagrams that were not link packets", self.datagrams_malformed),
            ("datagrams_unknown_session", "transport datagrams for no known session", self.datagrams_unknown_session),
            ("datagrams_replayed", "transport datagrams refused by the replay window", self.datagrams_replayed),
            ("datagrams_decrypt_failed", "transport datagrams failing authentication", self.datagrams_decrypt_failed),
            ("handshakes_completed", "link handshakes completed", self.handshakes_completed),
            ("handshakes_failed", "link handshakes failed", self.handshakes_failed),
            ("peers_refused", "peers refused by pin or policy", self.peers_refused),
            ("envelopes_in", "envelopes received from links", self.envelopes_in),
            ("envelopes_duplicate", "data envelopes already seen", self.envelopes_duplicate),
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
            ("envelopes_acked", "stored envelopes released after the recipient confirmed", self.envelopes_acked),
            ("frames_invalid", "decrypted frames that were malformed", self.frames_invalid),
            ("announces_in", "announces received (new ones)", self.announces_in),
            ("announces_duplicate", "announce copies already seen (flooding redundancy)", self.announces_duplicate),
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

/// A snapshot of one link for status output.
#[derive(Debug, Clone)]
pub struct LinkInfo {
    pub node: NodeId,
    pub name: String,
    pub addr: SocketAddr,
    pub initiator: bool,
    pub established_ms: u64,
    pub last_rx_ms: u64,
    pub rx: u64,
    pub tx: u64,
}

/// A snapshot of one federation link.
#[derive(Debug, Clone)]
pub struct FederationInfo {
    pub node: NodeId,
    pub domain: String,
    pub addr: SocketAddr,
    pub established_ms: u64,
    pub counters: federation::Counters,
}

/// Whether `env` may cross a federation link with `policy`.
fn may_cross(env: &Envelope, policy: &federation::Policy) -> bool {
    match env.kind() {
        Kind::Direct | Kind::Ack => policy.direct && env.dest().domain == policy.domain,
        Kind::Channel => policy.channels.contains(&env.dest().id),
        Kind::Announce => false,
    }
}

/// A snapshot of one route for `meshpost routes`.
#[derive(Debug, Clone)]
pub struct RouteInfo {
    pub dest: NodeId,
    pub name: String,
    pub via: NodeId,
    pub hops: u8,
    pub age_ms: u64,
}

/// A snapshot of one configured peer for status output.
#[derive(Debug, Clone)]
pub struct PeerInfo {
    pub addr: SocketAddr,
    pub pin: Option<NodeId>,
    pub linked: Option<NodeId>,
    pub next_attempt_ms: u64,
}

struct Link {
    addr: SocketAddr,
    current: Session,
    previous: Option<Session>,
    last_rx: u64,
    last_tx: u64,
    next_sync: u64,
    offer_cursor: Option<EnvelopeId>,
    reasm: Reassembler,
    bucket: Bucket,
    /// When the initiator of this session starts the next rekey (retried
    /// if the new handshake is lost).
    rekey_at: u64,
    rx: u64,
    tx: u64,
    /// Ids the peer said it has; not offered to it again. Cleared when full.
    peer_has: std::collections::BTreeSet<EnvelopeId>,
    /// Set when this is a federation link.
    fed: Option<Meter>,
}

/// Most ids remembered per link as already held by the peer.
const MAX_PEER_HAS: usize = 8192;

/// What waits for a write to be confirmed durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AfterWrite {
    /// Send the stored envelope on (a local send, our own acknowledgement,
    /// a relayed envelope), except back to `from`.
    Forward { from: Option<NodeId> },
    /// Tell the link it came from that we hold it.
    Have { link: NodeId },
    /// Acknowledge a delivery to its origin, end to end.
    Ack { origin: NodeId, expires: u64 },
}

/// Which write an id is waiting for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WriteKind {
    Store,
    Inbox,
}

/// A write the caller has not confirmed yet, and what depends on it.
#[derive(Debug)]
struct PendingWrite {
    kind: WriteKind,
    then: Vec<AfterWrite>,
}

/// Most writes awaiting confirmation; the daemon confirms each in the same
/// loop turn, so reaching this means the caller stopped answering.
const MAX_PENDING_WRITES: usize = 4096;

struct StaticPeer {
    spec: PeerSpec,
    linked: Option<NodeId>,
    next_attempt: u64,
    backoff: u64,
}

struct PendingInit {
    hs: Initiator,
    addr: SocketAddr,
    started: u64,
    /// Key the peer must prove (pin, or the key of the link being rekeyed).
    expect: Option<[u8; 32]>,
    /// Node id and key fingerprint the peer announced over mDNS.
    expect_node: Option<(NodeId, [u8; 8])>,
}

/// A peer found by discovery, not necessarily linked.
struct Discovered {
    addr: SocketAddr,
    fp: [u8; 8],
    last_seen: u64,
    next_attempt: u64,
    backoff: u64,
}

/// A peer found by discovery, for status output.
#[derive(Debug, Clone)]
pub struct DiscoveredInfo {
    pub node: NodeId,
    pub addr: SocketAddr,
    pub age_ms: u64,
}

struct PendingResp {
    hs: Responder,
    addr: SocketAddr,
    started: u64,
}

/// The whole protocol state of one meshpost node.
pub struct Node {
    identity: Identity,
    me: NodeId,
    cfg: Config,
    announce: Option<Envelope>,
    announce_made_ms: u64,
    peers: Vec<StaticPeer>,
    initiators: BTreeMap<u32, PendingInit>,
    responders: BTreeMap<u32, PendingResp>,
    links: BTreeMap<NodeId, Link>,
    by_index: BTreeMap<u32, NodeId>,
    cards: BTreeMap<NodeId, Card>,
    origin_buckets: BTreeMap<NodeId, Bucket>,
    store: Store,
    seen: SeenSet,
    delivered: Delivered,
    writes: BTreeMap<EnvelopeId, PendingWrite>,
    /// False while the caller's inbox cannot take messages (see
    /// [`Node::set_inbox_open`]).
    inbox_open: bool,
    actions: VecDeque<Action>,
    metrics: Metrics,
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
    routes: Table,
    /// When the last accepted announce of each origin arrived.
    announce_seen: BTreeMap<NodeId, u64>,
    next_announce: u64,
    pending_acks: BTreeMap<NodeId, Vec<(EnvelopeId, u64)>>,
    next_ack_flush: Option<u64>,
    discovered: BTreeMap<NodeId, Discovered>,
    channels: BTreeMap<[u8; 16], ChannelKey>,
    channel_buckets: BTreeMap<(NodeId, [u8; 16]), Bucket>,
}

const ANNOUNCE_TTL: u32 = 24 * 3600;
/// Most delivered ids waiting to be acknowledged.
const MAX_PENDING_ACKS: usize = 4096;
/// Most static and federation peers a node keeps.
pub const MAX_STATIC_PEERS: usize = 256;
/// Soonest re-announce after a link change (debounce).
const ANNOUNCE_SOON_MS: u64 = 1_000;

impl Node {
    /// A node with its identity, tunables, the seed of its random number
    /// generator (from the OS in the daemon, fixed in simulations), and
    /// the time.
    pub fn new(identity: Identity, cfg: Config, seed: [u8; 32], now: Timestamp) -> Node {
        let now_ms = now.mono_ms;
        let mut rng = NodeRng::from_seed(seed);
        let me = identity.node_id();
        let store = Store::new(cfg.store);
        let max_routes = cfg.max_cards;
        let seen = SeenSet::new(cfg.seen_capacity);
        let delivered = Delivered::new(cfg.delivered_capacity);
        let mut n = Node {
            identity,
            me,
            cfg,
            announce: None,
            announce_made_ms: 0,
            peers: Vec::new(),
            initiators: BTreeMap::new(),
            responders: BTreeMap::new(),
            links: BTreeMap::new(),
            by_index: BTreeMap::new(),
            cards: BTreeMap::new(),
            origin_buckets: BTreeMap::new(),
            store,
            seen,
            delivered,
            writes: BTreeMap::new(),
            inbox_open: true,
            actions: VecDeque::new(),
            metrics: Metrics::default(),
            next_xfer: 0,
            next_index: rng.next_u32() | 1,
            clock: now_ms,
            unix_ms: now.unix_ms,
            card_seq: 0,
            rng,
            routes: Table::new(max_routes),
            announce_seen: BTreeMap::new(),
            next_announce: now_ms,
            pending_acks: BTreeMap::new(),
            next_ack_flush: None,
            discovered: BTreeMap::new(),
            channels: BTreeMap::new(),
            channel_buckets: BTreeMap::new(),
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
        self.delivered.set_capacity(cfg.delivered_capacity);
        self.cfg = cfg;
        if renamed {
            self.refresh_announce(now_ms);
            let bytes = self.announce.as_ref().map(|e| e.bytes().to_vec());
            if let Some(bytes) = bytes {
                let ids: Vec<NodeId> = self.links.keys().copied().collect();
                for id in ids {
                    self.send_envelope_bytes(id, &bytes);
                }
            }
        }
    }

    pub fn links(&self) -> Vec<LinkInfo> {
        self.links
            .iter()
            .map(|(id, l)| LinkInfo {
                node: *id,
                name: self.cards.get(id).map(|c| c.name.clone()).unwrap_or_default(),
                addr: l.addr,
                initiator: l.current.initiator,
                established_ms: l.current.established_at,
                last_rx_ms: l.last_rx,
                rx: l.rx,
                tx: l.tx,
            })
            .collect()
    }

    pub fn peers(&self) -> Vec<PeerInfo> {
        self.peers
            .iter()
            .map(|p| PeerInfo {
                addr: p.spec.addr,
                pin: p.spec.pin.map(|k| NodeId::from_public_key(&k)),
                linked: p.linked,
                next_attempt_ms: p.next_attempt,
            })
            .collect()
    }

    pub fn is_linked(&self, id: &NodeId) -> bool {
        self.links.contains_key(id)
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

    // ---- configuration of peers -------------------------------------------

    /// Adds (or updates the pin of) a static peer.
    /// Returns false if [`MAX_STATIC_PEERS`] are configured already.
    pub fn add_peer(&mut self, spec: PeerSpec, now: Timestamp) -> bool {
        let now_ms = self.tick(now);
        if let Some(p) = self.peers.iter_mut().find(|p| p.spec.addr == spec.addr) {
            if p.spec.pin != spec.pin {
                p.spec.pin = spec.pin;
                p.next_attempt = now_ms;
            }
            return true;
        }
        if self.peers.len() >= MAX_STATIC_PEERS {
            return false;
        }
        self.peers.push(StaticPeer { spec, linked: None, next_attempt: now_ms, backoff: self.cfg.retry_min_ms });
        true
    }

    /// Removes a static peer and closes its link.
    pub fn remove_peer(&mut self, addr: SocketAddr) -> bool {
        let Some(pos) = self.peers.iter().position(|p| p.spec.addr == addr) else {
            return false;
        };
        let p = self.peers.remove(pos);
        if let Some(id) = p.linked {
            self.drop_link(id, "peer removed from configuration");
        }
        true
    }

    /// Makes the static peer list equal to `specs` (reload), keeping links
    /// to peers that are still configured with the same pin.
    pub fn set_peers(&mut self, specs: &[PeerSpec], now: Timestamp) {
        self.tick(now);
        let gone: Vec<SocketAddr> =
            self.peers.iter().filter(|p| !specs.iter().any(|s| s == &p.spec)).map(|p| p.spec.addr).collect();
        for addr in gone {
            self.remove_peer(addr);
        }
        for s in specs {
            if !self.add_peer(s.clone(), now) {
                self.emit(Event::PeerRefused {
                    addr: s.addr,
                    node: None,
                    reason: format!("more than {MAX_STATIC_PEERS} peers configured"),
                });
            }
        }
    }

    // ---- restoring persisted state ----------------------------------------

    /// Re-admits a persisted envelope at start-up. Expired or invalid ones are
    /// refused with the reason, and the caller deletes or quarantines them.
    pub fn restore_envelope(&mut self, bytes: &[u8], now: Timestamp) -> Result<EnvelopeId, String> {
        self.tick(now);
        let env = Envelope::decode(bytes, now.unix_s()).map_err(|e| e.to_string())?;
        let id = env.id();
        let local = env.origin() == &self.identity.public_key();
        self.store.insert(env, local, now.unix_s()).map_err(|e| e.to_string())?;
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

    // ---- durability ---------------------------------------------------------

    /// The caller made the write for `id` (a `Persist` or a `Deliver`)
    /// durable: what waited on it goes out now.
    pub fn persisted(&mut self, id: EnvelopeId) {
        let Some(w) = self.writes.remove(&id) else { return };
        if w.kind == WriteKind::Inbox {
            self.delivered.confirm(&id);
        }
        let now = self.clock;
        for then in w.then {
            match then {
                AfterWrite::Forward { from } => {
                    if let Some(env) = self.store.get(&id).map(|e| e.env.clone()) {
                        self.forward(&env, from);
                    }
                }
                AfterWrite::Have { link } => self.ack(link, id, now),
                AfterWrite::Ack { origin, expires } => self.queue_ack(origin, id, expires, now),
            }
        }
    }

    /// The write for `id` failed: nothing that waited on it is sent. A
    /// stored envelope is taken out of the store (a local sender is told it
    /// was not sent; a relayed copy is offered to us again later); a
    /// delivery is forgotten, so the sender keeps its copy and retries.
    pub fn persist_failed(&mut self, id: EnvelopeId) {
        let Some(w) = self.writes.remove(&id) else { return };
        self.metrics.writes_failed += 1;
        match w.kind {
            WriteKind::Store => {
                self.store.remove(&id);
            }
            WriteKind::Inbox => {
                self.metrics.envelopes_delivered = self.metrics.envelopes_delivered.saturating_sub(1);
                self.metrics.deliveries_deferred += 1;
                self.delivered.abort(&id);
            }
        }
    }

    /// The caller's inbox is full (`false`) or has room again (`true`).
    /// While it is full, messages for this node are left with their
    /// senders before any decryption work is spent on them.
    pub fn set_inbox_open(&mut self, open: bool) {
        self.inbox_open = open;
    }

    /// Whether a write for `id` is still waiting for the caller.
    pub fn is_pending_write(&self, id: &EnvelopeId) -> bool {
        self.writes.contains_key(id)
    }

    fn await_write(&mut self, id: EnvelopeId, kind: WriteKind, then: Vec<AfterWrite>) {
        self.writes.entry(id).or_insert(PendingWrite { kind, then: Vec::new() }).then.extend(then);
    }

    /// Restores a saved announce; its age does not matter, keys do not expire.
    pub fn restore_card(&mut self, bytes: &[u8]) -> Result<NodeId, String> {
        let env = Envelope::decode_ignoring_time(bytes).map_err(|e| e.to_string())?;
        self.learn_card(&env, false).ok_or_else(|| "not a valid announce".to_string())
    }

    // ---- local commands ---------------------------------------------------

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

    // ---- announce ---------------------------------------------------------

    fn my_card(&self, seq: u64) -> Card {
        Card {
            ed_pk: self.identity.public_key(),
            x25519: self.identity.e2e_public(),
            kem_ek: Some(Box::new(*self.identity.kem_public())),
            name: self.cfg.name.clone(),
            domain: self.cfg.domain.clone(),
            seq,
            neighbours: self.links.keys().take(crate::card::MAX_NEIGHBOURS).copied().collect(),
            gateway_for: self.gateway_domains(),
        }
    }

    fn refresh_announce(&mut self, now_ms: u64) {
        // Sequence numbers follow the wall clock across restarts, but never
        // go back within a run when the clock is stepped back.
        self.card_seq = self.unix_ms.max(self.card_seq + 1);
        let payload = self.my_card(self.card_seq).encode();
        self.announce = Envelope::seal(
            &self.identity,
            &Draft {
                kind: Kind::Announce,
                max_hops: self.cfg.announce_hops,
                created: self.unix_s(),
                ttl: ANNOUNCE_TTL,
                dest: Destination { id: [0; 16], domain: String::new() },
                payload: &payload,
            },
        )
        .ok();
        self.announce_made_ms = now_ms;
    }

    /// Learns the card in a verified announce; returns its node id if valid.
    fn learn_card(&mut self, env: &Envelope, save: bool) -> Option<NodeId> {
        let card = Card::decode(*env.origin(), env.payload()).ok()?;
        let node = card.node_id();
        if node == self.me {
            return Some(node);
        }
        let mut changed = true;
        if let Some(old) = self.cards.get(&node) {
            if old.seq >= card.seq {
                return Some(node);
            }
            changed = old.x25519 != card.x25519
                || old.kem_ek != card.kem_ek
                || old.name != card.name
                || old.domain != card.domain;
        } else if self.cards.len() >= self.cfg.max_cards {
            // Forget a card of a node we have no link to.
            let victim = self.cards.keys().find(|k| !self.links.contains_key(*k)).copied();
            match victim {
                Some(v) => {
                    self.cards.remove(&v);
                }
                None => return None,
            }
        }
        let name = card.name.clone();
        self.cards.insert(node, card);
        if save && changed {
            self.actions.push_back(Action::SaveCard { node, envelope: env.bytes().to_vec() });
            self.emit(Event::CardUpdated { node, name });
        }
        Some(node)
    }

    // ---- time -------------------------------------------------------------

    /// When the caller should call [`handle_timeout`](Self::handle_timeout) next.
    pub fn poll_timeout(&self) -> Option<u64> {
        let mut t: Option<u64> = None;
        let mut at = |x: u64| t = Some(t.map_or(x, |y| y.min(x)));
        for p in &self.peers {
            if p.linked.is_none() {
                at(p.next_attempt);
            }
        }
        for l in self.links.values() {
            at(l.last_tx + self.cfg.keepalive_ms);
            at(l.last_rx + self.cfg.dead_after_ms);
            at(l.next_sync);
            if l.current.initiator {
                at(l.rekey_at);
            }
        }
        for p in self.initiators.values() {
            at(p.started + self.cfg.handshake_timeout_ms);
        }
        for p in self.responders.values() {
            at(p.started + self.cfg.handshake_timeout_ms);
        }
        if let Some(e) = self.store.next_expiry() {
            // Expiry is unix time; wake on the monotonic clock when the
            // wall clock will read it (a later step is caught at the next
            // wake-up, see handle_timeout).
            let now = Timestamp::new(self.clock, self.unix_ms);
            at(now.mono_at(e.saturating_mul(1000)).max(self.clock + 1));
        }
        at(self.next_announce);
        if let Some(f) = self.next_ack_flush {
            at(f);
        }
        // Only unlinked discoveries have a dial pending: a linked one keeps
        // its old `next_attempt`, which would be a timer in the past.
        for (n, d) in &self.discovered {
            if !self.links.contains_key(n) {
                at(d.next_attempt);
            }
        }
        t
    }

    /// Runs every timer that is due at `now_ms`.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        let now_ms = self.tick(now);
        let now_s = self.unix_s();
        for id in self.store.expire(now_s) {
            self.writes.remove(&id);
            self.metrics.envelopes_expired_in_store += 1;
            self.actions.push_back(Action::Unpersist { id });
        }
        self.seen.expire(now_s);
        self.delivered.expire(now_s);
        self.routes.expire(now_ms, self.cfg.route_timeout_ms);
        if now_ms >= self.next_announce {
            self.announce_now(now_ms);
        }
        if self.next_ack_flush.is_some_and(|t| now_ms >= t) {
            self.flush_acks(now_ms);
        }
        self.discovery_timers(now_ms);
        let timeout = self.cfg.handshake_timeout_ms;
        self.initiators.retain(|_, p| now_ms < p.started + timeout);
        self.responders.retain(|_, p| now_ms < p.started + timeout);

        // Dead links.
        let dead: Vec<NodeId> = self
            .links
            .iter()
            .filter(|(_, l)| now_ms >= l.last_rx + self.cfg.dead_after_ms)
            .map(|(id, _)| *id)
            .collect();
        for id in dead {
            self.drop_link(id, "peer silent past the dead-peer timeout");
        }

        // Keepalives, syncs and rekeys on live links.
        let ids: Vec<NodeId> = self.links.keys().copied().collect();
        for id in ids {
            let Some(l) = self.links.get(&id) else {
                continue;
            };
            let (rekey, addr, remote_ed) = (l.current.initiator && now_ms >= l.rekey_at, l.addr, l.current.remote_ed);
            if now_ms >= l.next_sync {
                self.offer(id, now_ms);
            }
            if rekey {
                // If this handshake is lost, try again after a while.
                let retry = now_ms + self.cfg.retry_max_ms.max(2 * self.cfg.handshake_timeout_ms);
                if let Some(l) = self.links.get_mut(&id) {
                    l.rekey_at = retry;
                }
                self.initiate(addr, Some(remote_ed), None, now_ms);
            }
            if let Some(l) = self.links.get(&id)
                && now_ms >= l.last_tx + self.cfg.keepalive_ms
            {
                self.send_frame(id, &keepalive(), now_ms);
            }
        }

        // Static peers without a link.
        for i in 0..self.peers.len() {
            let p = &self.peers[i];
            if p.linked.is_some() || now_ms < p.next_attempt {
                continue;
            }
            let (addr, pin) = (p.spec.addr, p.spec.pin);
            let backoff = p.backoff;
            self.peers[i].next_attempt = now_ms + backoff;
            self.peers[i].backoff = (backoff * 2).min(self.cfg.retry_max_ms);
            // A retry replaces an unanswered attempt to the same address.
            self.initiators.retain(|_, x| x.addr != addr || x.expect != pin);
            self.initiate(addr, pin, None, now_ms);
        }
    }

    fn initiate(
        &mut self,
        addr: SocketAddr,
        expect: Option<[u8; 32]>,
        expect_node: Option<(NodeId, [u8; 8])>,
        now_ms: u64,
    ) {
        if self.initiators.len() >= self.cfg.max_pending_handshakes {
            return;
        }
        let idx = self.fresh_index();
        match Initiator::start(&self.identity, &mut self.rng, idx) {
            Ok((hs, data)) => {
                self.initiators.insert(idx, PendingInit { hs, addr, started: now_ms, expect, expect_node });
                self.transmit(addr, data);
            }
            Err(e) => self.emit(Event::HandshakeFailed { addr, reason: e.to_string() }),
        }
    }

    fn transmit(&mut self, to: SocketAddr, data: Vec<u8>) {
        self.metrics.datagrams_out += 1;
        self.actions.push_back(Action::Transmit { to, data });
    }

    // ---- datagrams --------------------------------------------------------

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
            Packet::Init { sender, noise } => self.on_init(now_ms, from, sender, noise),
            Packet::Resp { sender, receiver, noise } => self.on_resp(now_ms, from, sender, receiver, noise),
            Packet::Final { receiver, noise } => self.on_final(now_ms, from, receiver, noise),
            Packet::Data { receiver, counter, header, ciphertext } => {
                self.on_data(now_ms, from, receiver, counter, header, ciphertext)
            }
        }
    }

    fn on_init(&mut self, now_ms: u64, from: SocketAddr, sender: u32, noise: &[u8]) {
        // One pending response per address, and a bounded total: message 1
        // is unauthenticated, so this is all a stranger can make us hold.
        self.responders.retain(|_, p| p.addr != from);
        if self.responders.len() >= self.cfg.max_pending_handshakes {
            let oldest = self.responders.iter().min_by_key(|(_, p)| p.started).map(|(k, _)| *k);
            if let Some(k) = oldest {
                self.responders.remove(&k);
            }
        }
        let idx = self.fresh_index();
        match Responder::respond(&self.identity, &mut self.rng, idx, sender, noise) {
            Ok((hs, data)) => {
                self.responders.insert(idx, PendingResp { hs, addr: from, started: now_ms });
                self.transmit(from, data);
            }
            Err(e) => self.handshake_failed(from, e),
        }
    }

    fn handshake_failed(&mut self, addr: SocketAddr, e: HandshakeError) {
        self.metrics.handshakes_failed += 1;
        self.emit(Event::HandshakeFailed { addr, reason: e.to_string() });
    }

    fn on_resp(&mut self, now_ms: u64, from: SocketAddr, sender: u32, receiver: u32, noise: &[u8]) {
        let Some(p) = self.initiators.remove(&receiver) else {
            self.metrics.datagrams_unknown_session += 1;
            return;
        };
        if p.addr != from {
            // Not from where we sent it: keep waiting for the real answer.
            self.initiators.insert(receiver, p);
            self.metrics.datagrams_unknown_session += 1;
            return;
        }
        match p.hs.finish(&self.identity, sender, noise) {
            Ok((keys, data)) => {
                let announced = match p.expect_node {
                    Some((id, fp))
                        if NodeId::from_public_key(&keys.remote_ed) != id || fingerprint(&keys.remote_ed) != fp =>
                    {
                        Err(format!(
                            "proved a key that does not match node {id} / fingerprint {} it announced over mDNS",
                            crate::crypto::to_hex(&fp)
                        ))
                    }
                    _ => Ok(()),
                };
                if let Err(reason) = announced.and_then(|_| self.check_policy(&keys, from, p.expect)) {
                    self.refuse(from, &keys, reason);
                    return;
                }
                self.transmit(from, data);
                self.establish(keys, from, now_ms);
            }
            Err(e) => self.handshake_failed(from, e),
        }
    }

    fn on_final(&mut self, now_ms: u64, from: SocketAddr, receiver: u32, noise: &[u8]) {
        let Some(p) = self.responders.remove(&receiver) else {
            self.metrics.datagrams_unknown_session += 1;
            return;
        };
        if p.addr != from {
            self.responders.insert(receiver, p);
            self.metrics.datagrams_unknown_session += 1;
            return;
        }
        match p.hs.finish(noise) {
            Ok(keys) => {
                let expect = self.peers.iter().find(|s| s.spec.addr == from).and_then(|s| s.spec.pin);
                if let Err(reason) = self.check_policy(&keys, from, expect) {
                    self.refuse(from, &keys, reason);
                    return;
                }
                let node = NodeId::from_public_key(&keys.remote_ed);
                self.establish(keys, from, now_ms);
                // Confirm at once so the initiator sees the session is live.
                self.send_frame(node, &keepalive(), now_ms);
            }
            Err(e) => self.handshake_failed(from, e),
        }
    }

    fn check_policy(&self, keys: &SessionKeys, from: SocketAddr, expect: Option<[u8; 32]>) -> Result<(), String> {
        let node = NodeId::from_public_key(&keys.remote_ed);
        if node == self.me {
            return Err("that is this node itself".into());
        }
        if let Some(pin) = expect
            && !crate::crypto::ct_eq(&pin, &keys.remote_ed)
        {
            return Err(format!("key does not match the pinned key of {}", NodeId::from_public_key(&pin)));
        }
        let configured = self.peers.iter().any(|p| p.spec.addr == from || p.spec.pin == Some(keys.remote_ed));
        if !self.cfg.accept_unknown && !configured {
            return Err("not a configured peer and accept_unknown is off".into());
        }
        if !self.links.contains_key(&node) && self.links.len() >= self.cfg.max_links {
            return Err(format!("link limit of {} reached", self.cfg.max_links));
        }
        Ok(())
    }

    fn refuse(&mut self, addr: SocketAddr, keys: &SessionKeys, reason: String) {
        self.metrics.peers_refused += 1;
        let node = Some(NodeId::from_public_key(&keys.remote_ed));
        self.emit(Event::PeerRefused { addr, node, reason });
    }

    fn establish(&mut self, keys: SessionKeys, addr: SocketAddr, now_ms: u64) {
        self.metrics.handshakes_completed += 1;
        let node = NodeId::from_public_key(&keys.remote_ed);
        let initiator = keys.initiator;
        let session = Session::new(keys, now_ms);
        self.by_index.insert(session.local_idx, node);
        let is_new = !self.links.contains_key(&node);
        match self.links.get_mut(&node) {
            Some(l) => {
                let old = core::mem::replace(&mut l.current, session);
                if let Some(prev) = l.previous.replace(old) {
                    self.by_index.remove(&prev.local_idx);
                }
                l.addr = addr;
                l.last_rx = now_ms;
                l.rekey_at = now_ms + self.cfg.rekey_after_ms;
                l.next_sync = now_ms;
                // A new session may mean the peer restarted with an empty
                // (RAM) store: what it had before proves nothing now.
                l.peer_has.clear();
                l.offer_cursor = None;
                self.emit(Event::Rekeyed { node });
            }
            None => {
                self.links.insert(
                    node,
                    Link {
                        addr,
                        current: session,
                        previous: None,
                        last_rx: now_ms,
                        last_tx: now_ms,
                        next_sync: now_ms,
                        offer_cursor: None,
                        reasm: Reassembler::new(
                            self.cfg.reassembly_transfers_per_link,
                            self.cfg.reassembly_bytes_per_link,
                            self.cfg.reassembly_timeout_ms,
                        ),
                        bucket: Bucket::full(self.cfg.link_burst, now_ms),
                        rekey_at: now_ms + self.cfg.rekey_after_ms,
                        rx: 0,
                        tx: 0,
                        peer_has: std::collections::BTreeSet::new(),
                        fed: None,
                    },
                );
                self.emit(Event::LinkUp { node, addr, initiator });
            }
        }
        for p in &mut self.peers {
            if p.spec.addr == addr || p.spec.pin.map(|k| NodeId::from_public_key(&k)) == Some(node) {
                p.linked = Some(node);
                p.backoff = self.cfg.retry_min_ms;
            }
        }
        if is_new {
            if let Some(a) = self.announce.as_ref().map(|e| e.bytes().to_vec()) {
                self.send_envelope_bytes(node, &a);
            }
            self.announce_soon();
        }
        if let Some(d) = self.discovered.get_mut(&node) {
            d.backoff = self.cfg.retry_min_ms;
        }
        // A federation link is a configured peer with a policy and a pin.
        let policy = self
            .peers
            .iter()
            .find(|p| p.spec.pin.map(|k| NodeId::from_public_key(&k)) == Some(node))
            .and_then(|p| p.spec.federation.clone());
        if let Some(l) = self.links.get_mut(&node) {
            match (&mut l.fed, policy) {
                (Some(m), Some(p)) => m.policy = p,
                (slot, p) => *slot = p.map(|p| Meter::new(p, now_ms)),
            }
        }
        self.offer(node, now_ms);
    }

    fn drop_link(&mut self, node: NodeId, reason: &'static str) {
        if let Some(l) = self.links.remove(&node) {
            self.by_index.remove(&l.current.local_idx);
            if let Some(p) = l.previous {
                self.by_index.remove(&p.local_idx);
            }
            for p in &mut self.peers {
                if p.linked == Some(node) {
                    p.linked = None;
                }
            }
            self.routes.withdraw_via(&node);
            self.announce_soon();
            self.emit(Event::LinkDown { node, reason });
        }
    }

    fn on_data(&mut self, now_ms: u64, from: SocketAddr, receiver: u32, counter: u64, header: &[u8], ct: &[u8]) {
        let Some(&node) = self.by_index.get(&receiver) else {
            self.metrics.datagrams_unknown_session += 1;
            return;
        };
        let Some(l) = self.links.get_mut(&node) else {
            self.metrics.datagrams_unknown_session += 1;
            return;
        };
        let session = if l.current.local_idx == receiver {
            &mut l.current
        } else {
            match l.previous.as_mut() {
                Some(p) if p.local_idx == receiver => p,
                _ => {
                    self.metrics.datagrams_unknown_session += 1;
                    return;
                }
            }
        };
        let plain = match session.open(counter, header, ct) {
            Ok(p) => p,
            Err(OpenError::Replayed) => {
                self.metrics.datagrams_replayed += 1;
                return;
            }
            Err(OpenError::Decrypt) => {
                self.metrics.datagrams_decrypt_failed += 1;
                return;
            }
        };
        // Authenticated: the peer may have moved (roaming).
        l.addr = from;
        l.last_rx = now_ms;
        l.rx += 1;
        match Frame::parse(&plain) {
            Ok(Frame::Keepalive) => {}
            Ok(Frame::Fragment { xfer, index, count, data }) => {
                match l.reasm.insert(now_ms, xfer, index, count, data) {
                    Ok(Some(bytes)) => self.on_envelope(now_ms, node, &bytes),
                    Ok(None) => {}
                    Err(_) => self.metrics.fragments_dropped += 1,
                }
            }
            Ok(Frame::Ids { list, ids }) => self.on_ids(now_ms, node, list, ids),
            Err(_) => self.metrics.frames_invalid += 1,
        }
    }

    // ---- inventory sync ---------------------------------------------------

    fn offer(&mut self, node: NodeId, now_ms: u64) {
        let Some(cursor) = self.links.get(&node).map(|l| l.offer_cursor) else {
            return;
        };
        let batch = self.store.ids_after(cursor, self.cfg.offer_batch);
        // A short batch covered the whole store: start from the top next time.
        let next_cursor = if batch.len() < self.cfg.offer_batch { None } else { batch.last().copied() };
        // Only offer what this link should carry (see should_offer).
        let has = self.links.get(&node).map(|l| &l.peer_has);
        let ids: Vec<EnvelopeId> = batch
            .into_iter()
            .filter(|id| !has.is_some_and(|h| h.contains(id)))
            .filter(|id| self.store.get(id).is_some_and(|e| self.should_offer(&e.env, node)))
            .collect();
        if let Some(l) = self.links.get_mut(&node) {
            l.next_sync = now_ms + self.cfg.sync_interval_ms;
            l.offer_cursor = next_cursor;
        }
        for f in id_frames(IdList::Offer, &ids) {
            self.send_frame(node, &f, now_ms);
        }
    }

    fn on_ids(&mut self, now_ms: u64, node: NodeId, list: IdList, ids: Vec<EnvelopeId>) {
        match list {
            IdList::Offer => {
                let (mut want, mut have) = (Vec::new(), Vec::new());
                for id in ids {
                    if let Some(d) = self.delivered.get(&id).copied() {
                        // Delivered here: say so once it is durable, and
                        // remind the origin, which may have missed our ack.
                        if d.durable {
                            have.push(id);
                            self.queue_ack(d.origin, id, d.expires, now_ms);
                        }
                    } else if self.seen.contains(&id) || self.store.contains(&id) {
                        have.push(id);
                    } else if !self.writes.contains_key(&id) {
                        want.push(id);
                    }
                }
                for f in id_frames(IdList::Want, &want).into_iter().chain(id_frames(IdList::Have, &have)) {
                    self.send_frame(node, &f, now_ms);
                }
            }
            IdList::Want => {
                for id in ids {
                    let bytes = self.store.get(&id).map(|e| e.env.bytes().to_vec());
                    if let Some(b) = bytes
                        && self.take_out(node)
                    {
                        self.metrics.envelopes_forwarded += 1;
                        self.send_envelope_bytes(node, &b);
                    }
                }
            }
            IdList::Have => {
                if let Some(l) = self.links.get_mut(&node) {
                    if l.peer_has.len() + ids.len() > MAX_PEER_HAS {
                        l.peer_has.clear();
                    }
                    l.peer_has.extend(ids.iter().copied());
                }
                for id in ids {
                    // The recipient itself confirms: our copy has done its job.
                    let delivered = self
                        .store
                        .get(&id)
                        .is_some_and(|e| matches!(e.env.kind(), Kind::Direct | Kind::Ack) && e.env.dest().id == node.0);
                    if delivered {
                        self.release(&id);
                    }
                }
            }
        }
    }

    // ---- envelopes --------------------------------------------------------

    fn on_envelope(&mut self, now_ms: u64, link: NodeId, bytes: &[u8]) {
        self.metrics.envelopes_in += 1;
        let allowed =
            self.links.get_mut(&link).is_some_and(|l| l.bucket.take(self.cfg.link_rate, self.cfg.link_burst, now_ms));
        if !allowed {
            self.metrics.envelopes_rate_limited += 1;
            return;
        }
        let env = match Envelope::decode(bytes, self.unix_s()) {
            Ok(e) => e,
            Err(e) => {
                match e {
                    EnvelopeError::BadSignature => self.metrics.envelopes_bad_signature += 1,
                    EnvelopeError::Expired { .. } => self.metrics.envelopes_expired += 1,
                    _ => self.metrics.envelopes_invalid += 1,
                }
                self.emit(Event::EnvelopeDropped { from: link, reason: e.to_string() });
                return;
            }
        };
        let mut env = env;
        let mut share: Option<(String, usize)> = None;
        if self.links.get(&link).is_some_and(|l| l.fed.is_some()) {
            match self.federation_inbound(now_ms, link, &mut env) {
                Some(s) => share = Some(s),
                None => return,
            }
        }
        if env.kind() == Kind::Announce {
            self.on_announce(now_ms, link, env);
            return;
        }
        let id = env.id();
        if let Some(d) = self.delivered.get(&id).copied() {
            self.metrics.envelopes_duplicate += 1;
            if d.durable {
                self.ack(link, id, now_ms);
                // The origin may have missed our acknowledgement.
                self.queue_ack(d.origin, id, d.expires, now_ms);
            }
            return;
        }
        if self.seen.contains(&id) || self.store.contains(&id) || self.writes.contains_key(&id) {
            self.metrics.envelopes_duplicate += 1;
            if !self.writes.contains_key(&id) {
                self.ack(link, id, now_ms);
            }
            return;
        }
        let origin = env.origin_id();
        let (rate, burst) = (self.cfg.origin_rate, self.cfg.origin_burst);
        if self.origin_buckets.len() >= self.cfg.max_cards && !self.origin_buckets.contains_key(&origin) {
            // Bounded: forget the fullest (most idle) bucket first.
            let idle = self.origin_buckets.iter().max_by(|a, b| a.1.tokens().total_cmp(&b.1.tokens())).map(|(k, _)| *k);
            if let Some(k) = idle {
                self.origin_buckets.remove(&k);
            }
        }
        let bucket = self.origin_buckets.entry(origin).or_insert_with(|| Bucket::full(burst, now_ms));
        if !bucket.take(rate, burst, now_ms) {
            self.metrics.envelopes_rate_limited += 1;
            return;
        }
        let for_me = env.dest().id == self.me.0 && self.for_my_domain(&env);
        match env.kind() {
            Kind::Announce => {}
            Kind::Direct if for_me => self.deliver(&env, link),
            Kind::Ack if for_me => {
                self.on_ack(&env);
                self.seen.insert(id, env.expires_at());
                self.ack(link, id, now_ms);
            }
            Kind::Channel if !self.on_channel(&env, now_ms) => {
                // Undecryptable on a channel we hold the key for, or over the
                // rate: dropped, not relayed.
                self.seen.insert(id, env.expires_at());
            }
            Kind::Direct | Kind::Channel | Kind::Ack => {
                if env.kind() == Kind::Ack {
                    // Relays free their copies as the acknowledgement passes.
                    self.on_ack(&env);
                }
                let mut env = env;
                if !env.take_hop() {
                    // No hops left: we may not pass it on, nothing to keep.
                    self.seen.insert(id, env.expires_at());
                    return;
                }
                let share = share.as_ref().map(|(d, n)| (d.as_str(), *n));
                let then = vec![AfterWrite::Have { link }, AfterWrite::Forward { from: Some(link) }];
                let _ = self.admit_shared(env, false, share, now_ms, then);
            }
        }
    }

    // ---- announces, routing and forwarding ----------------------------------

    /// Re-announce shortly after a link change, debounced.
    fn announce_soon(&mut self) {
        self.next_announce = self.next_announce.min(self.clock + ANNOUNCE_SOON_MS);
    }

    /// Signs a fresh announce and floods it to every link.
    fn announce_now(&mut self, now_ms: u64) {
        self.refresh_announce(now_ms);
        self.next_announce = now_ms + self.cfg.announce_interval_ms;
        let Some(bytes) = self.announce.as_ref().map(|e| e.bytes().to_vec()) else {
            return;
        };
        let ids: Vec<NodeId> = self.links.keys().copied().collect();
        for id in ids {
            self.send_envelope_bytes(id, &bytes);
        }
    }

    /// Learns a route and the card from an announce, and floods it on.
    fn on_announce(&mut self, now_ms: u64, link: NodeId, env: Envelope) {
        let origin = env.origin_id();
        let id = env.id();
        if origin == self.me {
            self.seen.insert(id, env.expires_at());
            return;
        }
        let Ok(card) = Card::decode(*env.origin(), env.payload()) else {
            self.metrics.envelopes_invalid += 1;
            return;
        };
        // Only federation links join two communities: a neighbour of another
        // domain on a plain mesh link is dropped, so its announces do not
        // flood ours.
        let federated = self.links.get(&link).is_some_and(|l| l.fed.is_some());
        if origin == link
            && !federated
            && !card.domain.is_empty()
            && !self.cfg.domain.is_empty()
            && card.domain != self.cfg.domain
        {
            self.metrics.peers_refused += 1;
            let addr = self.links.get(&link).map_or(SocketAddr::from(([0, 0, 0, 0], 0)), |l| l.addr);
            let reason = format!(
                "announces domain '{}', not ours ('{}'): other communities link only as configured federation peers",
                card.domain, self.cfg.domain
            );
            self.emit(Event::PeerRefused { addr, node: Some(link), reason });
            self.drop_link(link, "neighbour of another domain on a mesh link");
            return;
        }
        // Every copy teaches a route, also duplicates over other paths.
        let hops = env.max_hops().saturating_sub(env.hops_left()).saturating_add(1);
        self.routes.learn(origin, link, hops, card.seq, now_ms);
        if self.seen.contains(&id) {
            self.metrics.announces_duplicate += 1;
            return;
        }
        self.seen.insert(id, env.expires_at());
        if let Some(&t) = self.announce_seen.get(&origin)
            && now_ms < t + self.cfg.announce_min_interval_ms
        {
            self.metrics.envelopes_rate_limited += 1;
            return;
        }
        if self.announce_seen.len() >= self.cfg.max_cards * 2 {
            let cutoff = now_ms.saturating_sub(self.cfg.route_timeout_ms);
            self.announce_seen.retain(|_, t| *t >= cutoff);
            // Still full of recent origins: forget the one heard longest ago.
            while self.announce_seen.len() >= self.cfg.max_cards * 2 {
                let Some(oldest) = self.announce_seen.iter().min_by_key(|(_, t)| **t).map(|(k, _)| *k) else { break };
                self.announce_seen.remove(&oldest);
            }
        }
        self.announce_seen.insert(origin, now_ms);
        self.metrics.announces_in += 1;
        self.learn_card(&env, true);
        let mut env = env;
        if env.take_hop() {
            // Over federation links only our own community's announces go.
            let ours = card.domain == self.cfg.domain;
            let targets: Vec<NodeId> = self
                .links
                .iter()
                .filter(|(k, l)| **k != link && **k != origin && (l.fed.is_none() || ours))
                .map(|(k, _)| *k)
                .collect();
            for t in targets {
                if !self.take_out(t) {
                    continue;
                }
                self.metrics.announces_forwarded += 1;
                self.send_envelope_bytes(t, env.bytes());
            }
        }
    }

    /// Whether the stored `env` should go to link `to`: a direct envelope
    /// goes only to its recipient when linked, else only along the best
    /// route, else (no route) to every link; channel envelopes go everywhere.
    /// Nothing goes back to its origin, and nothing with no hops left goes to
    /// anyone but its recipient.
    fn should_offer(&self, env: &Envelope, to: NodeId) -> bool {
        if env.origin_id() == to {
            return false;
        }
        if let Some(m) = self.links.get(&to).and_then(|l| l.fed.as_ref()) {
            return may_cross(env, &m.policy);
        }
        if let Some(domain) = self.foreign_domain(env) {
            // Another community's: only towards a gateway for it.
            if self.is_gateway_for(domain) {
                return false; // it leaves here over federation, or waits here
            }
            return match self.best_gateway(domain) {
                Some(gw) if gw == to => true,
                Some(gw) => self.routes.best(&gw).is_some_and(|r| r.via == to && self.links.contains_key(&r.via)),
                None => false,
            };
        }
        match env.kind() {
            Kind::Direct | Kind::Ack => {
                let dest = NodeId(env.dest().id);
                if dest == to {
                    return true;
                }
                if env.hops_left() == 0 || self.links.contains_key(&dest) {
                    return false;
                }
                match self.routes.best(&dest) {
                    Some(r) if self.links.contains_key(&r.via) => r.via == to,
                    _ => true,
                }
            }
            Kind::Channel => env.hops_left() > 0,
            Kind::Announce => false,
        }
    }

    /// Sends an envelope on at once to every link [`should_offer`] picks,
    /// except the one it came from.
    fn forward(&mut self, env: &Envelope, from: Option<NodeId>) {
        let targets: Vec<NodeId> =
            self.links.keys().filter(|k| Some(**k) != from && self.should_offer(env, **k)).copied().collect();
        for t in targets {
            if !self.take_out(t) {
                continue;
            }
            self.metrics.envelopes_forwarded += 1;
            self.send_envelope_bytes(t, env.bytes());
        }
    }

    /// Charges the out-quota of a federation link; true for mesh links.
    /// An envelope over quota stays in the store and is offered again.
    fn take_out(&mut self, to: NodeId) -> bool {
        let now = self.clock;
        match self.links.get_mut(&to).and_then(|l| l.fed.as_mut()) {
            Some(m) => m.take_out(now),
            None => true,
        }
    }

    /// The destination domain of `env` if it is another community's.
    fn foreign_domain<'e>(&self, env: &'e Envelope) -> Option<&'e str> {
        let d = env.dest().domain.as_str();
        (!d.is_empty() && d != self.cfg.domain).then_some(d)
    }

    /// Domains this node has federation peers for.
    fn gateway_domains(&self) -> Vec<String> {
        let mut v: Vec<String> =
            self.peers.iter().filter_map(|p| p.spec.federation.as_ref().map(|f| f.domain.clone())).collect();
        v.sort();
        v.dedup();
        v
    }

    fn is_gateway_for(&self, domain: &str) -> bool {
        self.peers.iter().any(|p| p.spec.federation.as_ref().is_some_and(|f| f.domain == domain))
    }

    /// The nearest node of our own domain that announces itself as a
    /// gateway for `domain`.
    fn best_gateway(&self, domain: &str) -> Option<NodeId> {
        self.cards
            .iter()
            .filter(|(_, c)| c.domain == self.cfg.domain && c.gateway_for.iter().any(|d| d == domain))
            .filter_map(|(id, _)| {
                if self.links.contains_key(id) {
                    return Some((1, *id));
                }
                self.routes.best(id).filter(|r| self.links.contains_key(&r.via)).map(|r| (r.hops, *id))
            })
            .min()
            .map(|(_, id)| id)
    }

    /// Federation links, for `meshpost federation`.
    pub fn federation_links(&self) -> Vec<FederationInfo> {
        self.links
            .iter()
            .filter_map(|(id, l)| {
                l.fed.as_ref().map(|m| FederationInfo {
                    node: *id,
                    domain: m.policy.domain.clone(),
                    addr: l.addr,
                    established_ms: l.current.established_at,
                    counters: m.counters.clone(),
                })
            })
            .collect()
    }

    /// Routes for `meshpost routes`: neighbours, then learned routes.
    pub fn routes(&self) -> Vec<RouteInfo> {
        let now = self.clock;
        let mut out: Vec<RouteInfo> = self
            .links
            .iter()
            .map(|(n, l)| RouteInfo {
                dest: *n,
                name: self.name_of(n),
                via: *n,
                hops: 1,
                age_ms: now.saturating_sub(l.last_rx),
            })
            .collect();
        for (dest, r) in self.routes.iter() {
            if self.links.contains_key(dest) || !self.links.contains_key(&r.via) {
                continue;
            }
            out.push(RouteInfo {
                dest: *dest,
                name: self.name_of(dest),
                via: r.via,
                hops: r.hops,
                age_ms: now.saturating_sub(r.updated),
            });
        }
        out
    }

    fn name_of(&self, n: &NodeId) -> String {
        self.cards.get(n).map(|c| c.name.clone()).unwrap_or_default()
    }

    // ---- end-to-end acknowledgements ----------------------------------------

    /// Drops a stored envelope whose recipient confirmed it, and remembers
    /// its id so it is not taken in again.
    fn release(&mut self, id: &EnvelopeId) {
        self.writes.remove(id);
        if let Some(e) = self.store.remove(id) {
            self.seen.insert(*id, e.env.expires_at());
            self.metrics.envelopes_acked += 1;
            self.actions.push_back(Action::Unpersist { id: *id });
        }
    }

    fn queue_ack(&mut self, origin: NodeId, id: EnvelopeId, expires: u64, now_ms: u64) {
        let total: usize = self.pending_acks.values().map(Vec::len).sum();
        if total >= MAX_PENDING_ACKS || origin == self.me {
            return;
        }
        let q = self.pending_acks.entry(origin).or_default();
        if !q.iter().any(|(x, _)| *x == id) {
            q.push((id, expires));
        }
        if self.next_ack_flush.is_none() {
            self.next_ack_flush = Some(now_ms + self.cfg.ack_delay_ms);
        }
    }

    /// Sends one signed acknowledgement per origin for what was delivered.
    fn flush_acks(&mut self, now_ms: u64) {
        self.next_ack_flush = None;
        let pending = core::mem::take(&mut self.pending_acks);
        let now_s = self.unix_s();
        for (origin, ids) in pending {
            for chunk in ids.chunks(crate::ack::MAX_ACK_IDS) {
                let list: Vec<EnvelopeId> = chunk.iter().map(|(id, _)| *id).collect();
                let payload = crate::ack::encode(&list);
                // It lives as long as the longest-lived envelope it confirms.
                let expires = chunk.iter().map(|(_, e)| *e).max().unwrap_or(now_s);
                let ttl = expires.saturating_sub(now_s).clamp(60, crate::envelope::MAX_TTL as u64) as u32;
                let Ok(env) = Envelope::seal(
                    &self.identity,
                    &Draft {
                        kind: Kind::Ack,
                        max_hops: self.cfg.default_hops,
                        created: now_s,
                        ttl,
                        dest: Destination { id: origin.0, domain: String::new() },
                        payload: &payload,
                    },
                ) else {
                    continue;
                };
                if self.admit(env, true, now_ms, vec![AfterWrite::Forward { from: None }]).is_ok() {
                    self.metrics.acks_sent += 1;
                }
            }
        }
    }

    /// Frees stored copies of what an acknowledgement lists, but only of
    /// envelopes addressed to the acknowledgement's signer.
    fn on_ack(&mut self, ack: &Envelope) {
        self.metrics.acks_in += 1;
        let Ok(ids) = crate::ack::decode(ack.payload()) else {
            self.metrics.envelopes_invalid += 1;
            return;
        };
        let recipient = ack.origin_id();
        for id in ids {
            let addressed =
                self.store.get(&id).is_some_and(|e| e.env.kind() == Kind::Direct && e.env.dest().id == recipient.0);
            if addressed {
                self.release(&id);
            }
        }
    }

    // ---- federation ---------------------------------------------------------

    /// Applies a federation link's policy to an envelope that came over it:
    /// quotas, what may cross, and no re-injection of our own domain. It
    /// also lowers the hop limit to this mesh's. Returns the store share to
    /// charge, or None to drop the envelope.
    fn federation_inbound(&mut self, now_ms: u64, link: NodeId, env: &mut Envelope) -> Option<(String, usize)> {
        let my_domain = self.cfg.domain.clone();
        let origin_domain = match env.kind() {
            Kind::Announce => Card::decode(*env.origin(), env.payload()).ok().map(|c| c.domain),
            _ => self.cards.get(&env.origin_id()).map(|c| c.domain.clone()),
        };
        let addr = self.links.get(&link).map(|l| l.addr)?;
        let m = self.links.get_mut(&link).and_then(|l| l.fed.as_mut())?;
        let remote = m.policy.domain.clone();
        if !m.take_in(env.len(), now_ms) {
            // One log line per thousand drops, not one per envelope.
            if m.counters.quota_drops % 1000 == 1 {
                let reason = format!(
                    "federation peer for {remote} is over its inbound quota ({} dropped so far)",
                    m.counters.quota_drops
                );
                self.emit(Event::PeerRefused { addr, node: Some(link), reason });
            }
            return None;
        }
        // Nothing that claims to come from our own domain may come back in.
        if origin_domain.as_deref() == Some(my_domain.as_str()) {
            m.counters.refused_spoofed += 1;
            let reason = format!("federation peer for {remote} sent an envelope claiming to come from our domain");
            self.emit(Event::EnvelopeDropped { from: link, reason });
            return None;
        }
        let allowed = match env.kind() {
            // Announces of the remote community only: they carry its keys.
            Kind::Announce => origin_domain.as_deref() == Some(remote.as_str()),
            Kind::Direct | Kind::Ack => m.policy.direct && env.dest().domain == my_domain,
            Kind::Channel => m.policy.channels.contains(&env.dest().id),
        };
        if !allowed {
            m.counters.refused_class += 1;
            return None;
        }
        let share = (remote, m.policy.store_share);
        env.clamp_hops(self.cfg.default_hops.max(self.cfg.announce_hops));
        Some(share)
    }

    // ---- channels -----------------------------------------------------------

    /// Joins a channel; messages already in the store for it are delivered
    /// at once (this is how a late joiner gets the recent history).
    pub fn join_channel(&mut self, key: ChannelKey) -> [u8; 16] {
        let id = key.id();
        self.channels.insert(id, key);
        let stored: Vec<Envelope> = self
            .store
            .iter()
            .filter(|(_, e)| e.env.kind() == Kind::Channel && e.env.dest().id == id)
            .map(|(_, e)| e.env.clone())
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
                max_hops: self.cfg.default_hops,
                created: self.unix_s(),
                ttl: self.cfg.channel_ttl,
                dest: Destination { id: channel, domain: String::new() },
                payload: &payload,
            },
        )
        .map_err(SendError::Envelope)?;
        let id = env.id();
        self.deliver_channel(&env);
        self.admit(env, true, now_ms, vec![AfterWrite::Forward { from: None }]).map_err(SendError::Store)?;
        self.metrics.channel_published += 1;
        Ok(id)
    }

    /// Applies the per-origin, per-channel rate limit and, for joined
    /// channels, decrypts and delivers. False means: drop, do not relay.
    fn on_channel(&mut self, env: &Envelope, now_ms: u64) -> bool {
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
            return false;
        }
        if self.channels.contains_key(&env.dest().id) {
            return self.deliver_channel(env);
        }
        true
    }

    /// Decrypts a message of a joined channel and hands it to the caller.
    fn deliver_channel(&mut self, env: &Envelope) -> bool {
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

    // ---- discovery ----------------------------------------------------------

    /// Records a peer that discovery (mDNS) found at `addr`, announcing node
    /// id `node` and key fingerprint `fp`; the node links to it unless it is
    /// linked already. Call again whenever it is seen, to keep it fresh.
    pub fn discovered(&mut self, addr: SocketAddr, node: NodeId, fp: [u8; 8], now: Timestamp) {
        let now_ms = self.tick(now);
        if node == self.me {
            return;
        }
        if let Some(d) = self.discovered.get_mut(&node) {
            d.last_seen = now_ms;
            // A node seen over IPv6 and IPv4 keeps its IPv6 address, so the
            // address does not flap between the two.
            let downgrade = d.addr.is_ipv6() && addr.is_ipv4();
            if (d.addr != addr && !downgrade) || d.fp != fp {
                d.addr = addr;
                d.fp = fp;
                d.next_attempt = d.next_attempt.min(now_ms + self.cfg.retry_min_ms);
            }
            return;
        }
        if self.discovered.len() >= self.cfg.max_discovered {
            let oldest = self.discovered.iter().min_by_key(|(_, d)| d.last_seen).map(|(k, _)| *k);
            if let Some(k) = oldest {
                self.discovered.remove(&k);
            }
        }
        // Of two nodes that find each other, the lower id dials at once and
        // the other a little later, so that they rarely both dial.
        let wait = if self.me < node { 0 } else { 2 * self.cfg.retry_min_ms };
        self.discovered.insert(
            node,
            Discovered { addr, fp, last_seen: now_ms, next_attempt: now_ms + wait, backoff: self.cfg.retry_min_ms },
        );
    }

    /// Peers found by discovery, for status output.
    pub fn discovered_peers(&self) -> Vec<DiscoveredInfo> {
        self.discovered
            .iter()
            .map(|(n, d)| DiscoveredInfo { node: *n, addr: d.addr, age_ms: self.clock.saturating_sub(d.last_seen) })
            .collect()
    }

    fn discovery_timers(&mut self, now_ms: u64) {
        let timeout = self.cfg.discovery_timeout_ms;
        self.discovered.retain(|_, d| d.last_seen + timeout > now_ms);
        let due: Vec<(NodeId, SocketAddr, [u8; 8])> = self
            .discovered
            .iter()
            .filter(|(n, d)| !self.links.contains_key(*n) && now_ms >= d.next_attempt)
            .map(|(n, d)| (*n, d.addr, d.fp))
            .collect();
        for (node, addr, fp) in due {
            if let Some(d) = self.discovered.get_mut(&node) {
                d.next_attempt = now_ms + d.backoff;
                d.backoff = (d.backoff * 2).min(self.cfg.retry_max_ms);
            }
            self.initiators.retain(|_, x| x.addr != addr);
            self.initiate(addr, None, Some((node, fp)), now_ms);
        }
    }

    /// What the caller gets for a decrypted envelope.
    fn delivery(&self, env: &Envelope, opened: e2e::Opened) -> Delivery {
        let from = env.origin_id();
        Delivery {
            id: env.id(),
            from,
            from_name: self.name_of(&from),
            created: env.created(),
            expires: env.expires_at(),
            content_type: opened.content_type,
            body: opened.body,
        }
    }

    fn for_my_domain(&self, env: &Envelope) -> bool {
        env.dest().domain.is_empty() || env.dest().domain == self.cfg.domain
    }

    /// Decrypts a message for us and asks the caller to write it to the
    /// inbox. The link `have` and the end-to-end ack wait for the write.
    fn deliver(&mut self, env: &Envelope, link: NodeId) {
        let (id, origin, expires) = (env.id(), env.origin_id(), env.expires_at());
        if !self.inbox_open || self.writes.len() >= MAX_PENDING_WRITES {
            self.metrics.deliveries_deferred += 1;
            return;
        }
        let opened = match e2e::open(&self.identity, env.origin(), &env.dest().id, env.payload()) {
            Ok(o) => o,
            Err(e) => {
                // Nobody else can read it either: remember it as seen.
                self.seen.insert(id, expires);
                self.metrics.envelopes_undecryptable += 1;
                self.emit(Event::EnvelopeDropped { from: origin, reason: e.to_string() });
                return;
            }
        };
        if let Err(e) = self.delivered.begin(id, origin, expires) {
            // Not acknowledged: the sender keeps it and offers it again.
            self.metrics.deliveries_deferred += 1;
            if self.metrics.deliveries_deferred % 1000 == 1 {
                self.emit(Event::DeliveryDeferred { reason: e.to_string() });
            }
            return;
        }
        self.metrics.envelopes_delivered += 1;
        let message = self.delivery(env, opened);
        self.await_write(id, WriteKind::Inbox, vec![AfterWrite::Have { link }, AfterWrite::Ack { origin, expires }]);
        self.actions.push_back(Action::Deliver(message));
    }

    fn ack(&mut self, link: NodeId, id: EnvelopeId, now_ms: u64) {
        for f in id_frames(IdList::Have, &[id]) {
            self.send_frame(link, &f, now_ms);
        }
    }

    /// Puts an envelope in the store and asks the caller to persist it;
    /// `then` happens once the caller confirms the write.
    fn admit(&mut self, env: Envelope, local: bool, now_ms: u64, then: Vec<AfterWrite>) -> Result<(), StoreError> {
        self.admit_shared(env, local, None, now_ms, then)
    }

    fn admit_shared(
        &mut self,
        env: Envelope,
        local: bool,
        share: Option<(&str, usize)>,
        now_ms: u64,
        then: Vec<AfterWrite>,
    ) -> Result<(), StoreError> {
        if self.writes.len() >= MAX_PENDING_WRITES {
            self.metrics.envelopes_store_refused += 1;
            return Err(StoreError::Busy);
        }
        let id = env.id();
        let bytes = env.bytes().to_vec();
        let _ = now_ms;
        match self.store.insert_shared(env, local, share, self.unix_s()) {
            Ok(evicted) => {
                for victim in evicted {
                    self.metrics.envelopes_evicted += 1;
                    self.writes.remove(&victim);
                    self.actions.push_back(Action::Unpersist { id: victim });
                    self.emit(Event::StoreEvicted { id: victim });
                }
                self.metrics.envelopes_stored += 1;
                self.await_write(id, WriteKind::Store, then);
                self.actions.push_back(Action::Persist { id, bytes });
                Ok(())
            }
            Err(e) => {
                self.metrics.envelopes_store_refused += 1;
                Err(e)
            }
        }
    }

    fn send_envelope_bytes(&mut self, node: NodeId, bytes: &[u8]) {
        let xfer = self.next_xfer;
        self.next_xfer = self.next_xfer.wrapping_add(1);
        let now = self.clock;
        for f in split(xfer, bytes) {
            self.send_frame(node, &f, now);
        }
    }

    fn send_frame(&mut self, node: NodeId, frame: &[u8], now_ms: u64) {
        let Some(l) = self.links.get_mut(&node) else {
            return;
        };
        let Some(d) = l.current.seal(frame) else {
            return;
        };
        l.last_tx = l.last_tx.max(now_ms);
        l.tx += 1;
        let addr = l.addr;
        self.transmit(addr, d);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::{IpAddr, Ipv4Addr};
    use rand_core::OsRng;

    const T0: u64 = 1_800_000_000_000;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)
    }

    /// Two nodes wired together on virtual time; `up` says whether B exists.
    struct Pair {
        a: Node,
        b: Node,
        now: u64,
        b_up: bool,
        delivered_b: Vec<Delivery>,
        events: Vec<Event>,
        persisted_a: usize,
        captured: Vec<(SocketAddr, Vec<u8>)>,
        /// B's inbox refuses every delivery (disk full, inbox full).
        b_inbox_fails: bool,
    }

    impl Pair {
        fn new(pin_a_to: Option<[u8; 32]>) -> Pair {
            let ia = Identity::generate(&mut OsRng);
            let ib = Identity::generate(&mut OsRng);
            let mut a = Node::new(ia, Config { name: "a".into(), ..Config::default() }, [1; 32], Timestamp::from(T0));
            let b = Node::new(ib, Config { name: "b".into(), ..Config::default() }, [2; 32], Timestamp::from(T0));
            a.add_peer(PeerSpec { addr: addr(2), pin: pin_a_to, federation: None }, Timestamp::from(T0));
            Pair {
                a,
                b,
                now: T0,
                b_up: true,
                delivered_b: vec![],
                events: vec![],
                persisted_a: 0,
                captured: vec![],
                b_inbox_fails: false,
            }
        }

        /// Runs both nodes until quiet, advancing time in `step` ms up to `ms`.
        fn run(&mut self, ms: u64, step: u64) {
            let end = self.now + ms;
            while self.now <= end {
                self.a.handle_timeout(Timestamp::from(self.now));
                if self.b_up {
                    self.b.handle_timeout(Timestamp::from(self.now));
                }
                for _ in 0..1000 {
                    let mut moved = false;
                    while let Some(act) = self.a.poll_action() {
                        moved = true;
                        match act {
                            Action::Transmit { to, data } if to == addr(2) => {
                                self.captured.push((to, data.clone()));
                                if self.b_up {
                                    self.b.handle_datagram(Timestamp::from(self.now), addr(1), &data);
                                }
                            }
                            Action::Persist { id, .. } => {
                                self.persisted_a += 1;
                                self.a.persisted(id);
                            }
                            Action::Event(e) => self.events.push(e),
                            _ => {}
                        }
                    }
                    while let Some(act) = self.b.poll_action() {
                        moved = true;
                        match act {
                            Action::Transmit { data, .. } if self.b_up => {
                                self.a.handle_datagram(Timestamp::from(self.now), addr(2), &data)
                            }
                            Action::Deliver(d) => {
                                if self.b_inbox_fails {
                                    self.b.persist_failed(d.id);
                                } else {
                                    self.b.persisted(d.id);
                                    self.delivered_b.push(d);
                                }
                            }
                            Action::Persist { id, .. } => self.b.persisted(id),
                            Action::Event(e) => self.events.push(e),
                            _ => {}
                        }
                    }
                    if !moved {
                        break;
                    }
                }
                self.now += step;
            }
        }
    }

    #[test]
    fn static_peers_link_learn_keys_and_deliver_exactly_once() {
        let mut p = Pair::new(None);
        p.run(2000, 100);
        let bid = p.b.node_id();
        assert!(p.a.is_linked(&bid) && p.b.is_linked(&p.a.node_id()));
        assert!(p.a.card(&bid).is_some(), "A learned B's keys from its announce");
        let id = p.a.send_direct(Timestamp::from(p.now), bid, b"hello b", None, None).unwrap();
        p.run(1000, 100);
        assert_eq!(p.delivered_b.len(), 1);
        assert_eq!(p.delivered_b[0].body, b"hello b");
        assert_eq!(p.delivered_b[0].from, p.a.node_id());
        assert_eq!(p.delivered_b[0].from_name, "a");
        assert_eq!(p.delivered_b[0].id, id);
        assert!(!p.a.store().contains(&id), "B's ack released A's copy");
        // A later sync round re-offers nothing and delivers nothing twice.
        p.run(40_000, 1000);
        assert_eq!(p.delivered_b.len(), 1);
    }

    #[test]
    fn messages_wait_while_the_peer_is_away() {
        let mut p = Pair::new(None);
        p.run(2000, 100);
        let bid = p.b.node_id();
        p.b_up = false;
        let ids: Vec<_> = (0..20)
            .map(|i| p.a.send_direct(Timestamp::from(p.now), bid, format!("m{i}").as_bytes(), None, None).unwrap())
            .collect();
        p.run(60_000, 1000);
        assert!(!p.a.is_linked(&bid), "dead-peer detection dropped the link");
        assert_eq!(p.a.store().len(), 20);
        assert!(p.events.iter().any(|e| matches!(e, Event::LinkDown { .. })));
        // B returns (same process state here, but its session is gone for A).
        p.b_up = true;
        p.run(40_000, 500);
        assert!(p.a.is_linked(&bid));
        let mut got: Vec<_> = p.delivered_b.iter().map(|d| d.id).collect();
        got.sort();
        let mut want = ids.clone();
        want.sort();
        assert_eq!(got, want, "each message exactly once");
        assert!(p.a.store().is_empty());
    }

    #[test]
    fn wrong_pinned_key_is_refused_and_logged() {
        let wrong = Identity::generate(&mut OsRng).public_key();
        let mut p = Pair::new(Some(wrong));
        p.run(3000, 100);
        assert!(!p.a.is_linked(&p.b.node_id()));
        assert!(p.a.metrics().peers_refused >= 1);
        assert!(p.events.iter().any(|e| matches!(e, Event::PeerRefused { reason, .. } if reason.contains("pinned"))));
    }

    #[test]
    fn right_pinned_key_links() {
        let ib = Identity::generate(&mut OsRng);
        let pin = ib.public_key();
        let mut p = Pair::new(Some(pin));
        p.b = Node::new(ib, Config::default(), [2; 32], Timestamp::from(T0));
        p.run(2000, 100);
        assert!(p.a.is_linked(&p.b.node_id()));
    }

    #[test]
    fn replayed_and_garbage_datagrams_are_dropped() {
        let mut p = Pair::new(None);
        p.run(2000, 100);
        let bid = p.b.node_id();
        p.captured.clear();
        p.a.send_direct(Timestamp::from(p.now), bid, b"once", None, None).unwrap();
        p.run(500, 100);
        assert_eq!(p.delivered_b.len(), 1);
        let replay: Vec<_> = p.captured.clone();
        for (_, d) in &replay {
            p.b.handle_datagram(Timestamp::from(p.now), addr(1), d);
        }
        assert!(p.b.metrics().datagrams_replayed >= replay.len() as u64 - 1);
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for i in 0..2000 {
            let len = i % 1300;
            let d: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 7;
                    x ^= x >> 9;
                    x as u8
                })
                .collect();
            p.b.handle_datagram(Timestamp::from(p.now), addr(9), &d);
        }
        p.run(500, 100);
        assert_eq!(p.delivered_b.len(), 1);
        assert!(p.b.is_linked(&p.a.node_id()));
    }

    #[test]
    fn forged_envelopes_are_dropped_before_storing() {
        let mut p = Pair::new(None);
        p.run(2000, 100);
        let bid = p.b.node_id();
        // A builds a valid envelope to B, then corrupts its signature.
        let id = p.a.send_direct(Timestamp::from(p.now), bid, b"real", None, None).unwrap();
        let bytes = p.a.store().get(&id).unwrap().env.bytes().to_vec();
        p.run(500, 100);
        let mut forged = bytes.clone();
        let n = forged.len();
        forged[n - 5] ^= 0x40;
        assert!(p.a.send_raw_envelope(bid, &forged));
        p.run(500, 100);
        assert_eq!(p.b.metrics().envelopes_bad_signature, 1);
        assert_eq!(p.delivered_b.len(), 1);
    }

    #[test]
    fn rekey_replaces_the_session_without_losing_the_link() {
        let mut p = Pair::new(None);
        p.a.cfg.rekey_after_ms = 5_000;
        p.run(12_000, 500);
        assert!(p.events.iter().any(|e| matches!(e, Event::Rekeyed { .. })));
        let bid = p.b.node_id();
        p.a.send_direct(Timestamp::from(p.now), bid, b"after rekey", None, None).unwrap();
        p.run(1000, 100);
        assert_eq!(p.delivered_b.len(), 1);
        assert_eq!(p.events.iter().filter(|e| matches!(e, Event::LinkDown { .. })).count(), 0);
    }

    #[test]
    fn static_peers_are_bounded() {
        let mut p = Pair::new(None);
        let mut kept = 0;
        for i in 0..300u16 {
            let spec = PeerSpec { addr: addr(1000 + i), pin: None, federation: None };
            if p.a.add_peer(spec, Timestamp::from(T0)) {
                kept += 1;
            }
        }
        assert_eq!(p.a.peers().len(), MAX_STATIC_PEERS);
        assert_eq!(kept, MAX_STATIC_PEERS - 1, "one slot was taken by B");
    }

    /// Drains A's actions without carrying them out.
    fn take_actions(n: &mut Node) -> Vec<Action> {
        core::iter::from_fn(|| n.poll_action()).collect()
    }

    #[test]
    fn a_local_send_goes_out_only_after_its_write_is_confirmed() {
        let mut p = Pair::new(None);
        p.run(2000, 100);
        let bid = p.b.node_id();
        let id = p.a.send_direct(Timestamp::from(p.now), bid, b"durable first", None, None).unwrap();
        let acts = take_actions(&mut p.a);
        assert!(matches!(acts.as_slice(), [Action::Persist { id: x, .. }] if *x == id), "only the write: {acts:?}");
        // The disk is full: the write fails, nothing goes out, and the
        // envelope is taken back, so a retry cannot make a duplicate.
        p.a.persist_failed(id);
        assert!(take_actions(&mut p.a).iter().all(|a| !matches!(a, Action::Transmit { .. })));
        assert!(!p.a.store().contains(&id));
        p.run(20_000, 1000);
        assert!(p.delivered_b.is_empty(), "a failed send never reaches anyone");
        // The retry is a new envelope, sent once its write is confirmed.
        let id2 = p.a.send_direct(Timestamp::from(p.now), bid, b"durable first", None, None).unwrap();
        let acts = take_actions(&mut p.a);
        assert_eq!(acts.len(), 1);
        p.a.persisted(id2);
        let mut sent = 0;
        for a in take_actions(&mut p.a) {
            if let Action::Transmit { data, .. } = a {
                sent += 1;
                p.b.handle_datagram(Timestamp::from(p.now), addr(1), &data);
            }
        }
        assert!(sent > 0, "confirmed: now it goes out");
        p.run(1000, 100);
        assert_eq!(p.delivered_b.iter().map(|d| d.id).collect::<Vec<_>>(), vec![id2]);
    }

    #[test]
    fn a_delivery_that_cannot_be_stored_is_not_acknowledged_and_arrives_later() {
        let mut p = Pair::new(None);
        p.run(2000, 100);
        let bid = p.b.node_id();
        p.b_inbox_fails = true;
        let id = p.a.send_direct(Timestamp::from(p.now), bid, b"wait for room", None, None).unwrap();
        p.run(40_000, 1000);
        assert!(p.delivered_b.is_empty());
        assert!(p.a.store().contains(&id), "the sender keeps what was not acknowledged");
        assert_eq!(p.a.metrics().acks_in, 0, "no end-to-end ack for an unstored message");
        assert!(p.b.metrics().deliveries_deferred >= 2, "offered again by every sync round");
        p.b_inbox_fails = false;
        p.run(20_000, 1000);
        assert_eq!(p.delivered_b.iter().map(|d| d.id).collect::<Vec<_>>(), vec![id], "exactly once");
        assert!(!p.a.store().contains(&id), "released once it was stored and acknowledged");
    }

    #[test]
    fn a_flood_of_relay_ids_cannot_evict_a_delivered_one() {
        let mut p = Pair::new(None);
        p.run(2000, 100);
        let bid = p.b.node_id();
        let id = p.a.send_direct(Timestamp::from(p.now), bid, b"only once", None, None).unwrap();
        let original = p.a.store().get(&id).unwrap().env.bytes().to_vec();
        p.run(2000, 100);
        assert_eq!(p.delivered_b.len(), 1);
        // 70,000 valid envelopes with no hops left, 30-day TTL, from many
        // origins: more than the whole relay seen set holds.
        p.b.cfg.link_rate = u32::MAX;
        p.b.cfg.link_burst = u32::MAX;
        let origins: Vec<Identity> = (0..64u8).map(|i| Identity::from_seed(&[i; 32])).collect();
        let flood = 70_000;
        for i in 0..flood {
            let env = Envelope::seal(
                &origins[i % origins.len()],
                &Draft {
                    kind: Kind::Direct,
                    max_hops: 0,
                    created: p.now / 1000,
                    ttl: crate::envelope::MAX_TTL,
                    dest: Destination { id: (i as u128).to_le_bytes(), domain: String::new() },
                    payload: b"x",
                },
            )
            .unwrap();
            p.a.send_raw_envelope(bid, env.bytes());
            if i % 500 == 499 {
                p.run(0, 1);
                p.now += 1000;
            }
        }
        p.run(0, 1);
        assert!(p.b.metrics().envelopes_in >= flood as u64);
        assert!(p.b.seen.len() <= p.b.cfg.seen_capacity, "the relay set stays bounded");
        assert!(p.b.seen.len() == p.b.cfg.seen_capacity, "and it was flooded to the brim");
        p.a.send_raw_envelope(bid, &original);
        p.run(1000, 100);
        assert_eq!(p.delivered_b.len(), 1, "the replayed message is not delivered again");
    }

    #[test]
    fn a_full_delivered_table_defers_instead_of_forgetting() {
        let mut p = Pair::new(None);
        p.b.cfg.delivered_capacity = 2;
        p.b.delivered.set_capacity(2);
        p.run(2000, 100);
        let bid = p.b.node_id();
        for i in 0..3 {
            p.a.send_direct(Timestamp::from(p.now), bid, format!("m{i}").as_bytes(), None, None).unwrap();
        }
        p.run(2000, 100);
        assert_eq!(p.delivered_b.len(), 2);
        assert_eq!(p.a.store().len(), 1, "the third waits with its sender");
        assert!(p.events.iter().any(|e| matches!(e, Event::DeliveryDeferred { .. })));
    }

    #[test]
    fn no_timer_is_left_in_the_past_once_linked_by_discovery() {
        let mut p = Pair::new(None);
        p.a.remove_peer(addr(2));
        let (aid, bid) = (p.a.node_id(), p.b.node_id());
        let (afp, bfp) = (fingerprint(&p.a.identity.public_key()), fingerprint(&p.b.identity.public_key()));
        for _ in 0..20 {
            p.a.discovered(addr(2), bid, bfp, Timestamp::from(p.now));
            p.b.discovered(addr(1), aid, afp, Timestamp::from(p.now));
            p.run(500, 100);
        }
        assert!(p.a.is_linked(&bid));
        let now = p.now;
        p.a.handle_timeout(Timestamp::from(now));
        p.b.handle_timeout(Timestamp::from(now));
        assert!(p.a.poll_timeout().unwrap() > now, "a linked discovery must not wake the caller at once");
        assert!(p.b.poll_timeout().unwrap() > now);
    }

    #[test]
    fn unknown_recipient_is_a_clear_error() {
        let mut p = Pair::new(None);
        let err = p.a.send_direct(Timestamp::from(p.now), NodeId([5; 16]), b"x", None, None).unwrap_err();
        assert!(err.to_string().contains("no keys known"));
    }
}
