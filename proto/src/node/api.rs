//! The node's public vocabulary: tunables, what it hands the caller
//! (actions, deliveries, events), its errors and its status snapshots.
//! Plain data and their `Display`; no protocol logic lives here.

use super::*;

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
    /// Handshake first messages answered per second from all sources
    /// together (each address also has its own small budget; hslimit.rs).
    pub handshake_rate: u32,
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
    /// How soon this node floods its beacon again after a change; the
    /// interval then doubles while nothing changes.
    pub announce_interval_ms: u64,
    /// The longest interval between beacons.
    pub announce_max_interval_ms: u64,
    /// Hop limit of announces.
    pub announce_hops: u8,
    /// Announces from one origin arriving faster than this are dropped.
    pub announce_min_interval_ms: u64,
    /// A node not heard from within this time leaves the routing graph
    /// (routes themselves follow from the graph; this only forgets).
    pub route_timeout_ms: u64,
    /// Delay before delivered ids are acknowledged end to end (batching).
    pub ack_delay_ms: u64,
    /// Most peers remembered from discovery.
    pub max_discovered: usize,
    /// Discovered peers this node dials: the best-ranked this many, plus
    /// one a minute that routes do not reach (0: every discovered peer).
    /// Others may still link to it, up to `max_links`.
    pub link_target: usize,
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
            handshake_rate: 50,
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
            announce_max_interval_ms: 14_400_000,
            announce_hops: crate::envelope::MAX_HOPS,
            announce_min_interval_ms: 1_000,
            route_timeout_ms: 3 * 14_400_000,
            ack_delay_ms: 1_000,
            max_discovered: 256,
            link_target: 4,
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
    /// The sender's end-to-end sessions as the caller is to save them
    /// (under `from`, 0600) before it writes the message; if that fails the
    /// delivery fails too (call [`Node::sessions_save_failed`] and
    /// [`Node::persist_failed`]). `None`: nothing to save this time.
    pub sessions: Option<crate::session::SessionsFile>,
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
    /// A stored envelope whose bytes were on disk only could not be read
    /// back: it is lost here.
    StoredUnreadable {
        id: EnvelopeId,
        reason: String,
    },
    CardUpdated {
        node: NodeId,
        name: String,
    },
    /// Messages for us are being left with their senders for now.
    DeliveryDeferred {
        reason: String,
    },
    /// A federation link's outbound backlog started (`waiting`) or
    /// cleared: envelopes wait for `out_rate` tokens.
    FederationBacklog {
        node: NodeId,
        domain: String,
        waiting: bool,
        rate: u32,
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
            Event::StoredUnreadable { id, reason } => {
                write!(f, "stored envelope {id} could not be read back, lost: {reason}")
            }
            Event::CardUpdated { node, name } => write!(f, "learned keys of {node} ({name})"),
            Event::DeliveryDeferred { reason } => {
                write!(f, "messages for this node are left with their senders for now: {reason}")
            }
            Event::FederationBacklog { node, domain, waiting: true, rate } => write!(
                f,
                "federation: envelopes for {domain} (gateway {node}) now wait for the outbound rate ({rate}/s)"
            ),
            Event::FederationBacklog { node, domain, waiting: false, .. } => {
                write!(f, "federation: the backlog for {domain} (gateway {node}) is cleared")
            }
        }
    }
}

impl Event {
    /// True for events an admin should see at warning level.
    pub fn is_warning(&self) -> bool {
        matches!(
            self,
            Event::PeerRefused { .. }
                | Event::StoreEvicted { .. }
                | Event::StoredUnreadable { .. }
                | Event::DeliveryDeferred { .. }
        )
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
    /// Read the envelope `id` back from where its `Persist` put it (the
    /// store let its bytes go, store.rs), then call [`Node::loaded`] with
    /// them, or [`Node::load_failed`] if it cannot be read.
    Load {
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
    /// The card of `node` was forgotten (least recently heard, the card
    /// book is full): delete its saved announce.
    ForgetCard {
        node: NodeId,
    },
    /// Every end-to-end session received from `origin` is gone: delete
    /// its saved sessions.
    ForgetSessions {
        origin: NodeId,
    },
    /// This node started an end-to-end session with `to`: keep its start
    /// (`eph || kem ct`, public) in the same commit as the first message
    /// sealed in it, so that after a restart the session can still be sent
    /// again to a recipient that lost it (sessions.rs).
    SaveStart {
        sid: crate::session::SessionId,
        to: NodeId,
        header: Vec<u8>,
    },
    /// No stored message is sealed in session `sid` any more.
    ForgetStart {
        sid: crate::session::SessionId,
    },
    /// A verified announce carrying a node's card; keep it to restore keys.
    SaveCard {
        node: NodeId,
        envelope: Vec<u8>,
    },
    /// A message this node sent moved on: a neighbour holds a copy
    /// (`Forwarded`), the recipient's signed acknowledgement was verified
    /// (`Delivered`), or it `Expired` / was `Dropped` undelivered. Record
    /// it for `meshpost outbox`.
    Sent {
        id: EnvelopeId,
        to: NodeId,
        state: crate::outbox::SentState,
    },
    Event(Event),
}

/// Why a persisted envelope or card was not taken back at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestoreError {
    /// The bytes are not a valid envelope now (corrupt, forged, expired).
    Envelope(EnvelopeError),
    /// The store's limits refuse it.
    Store(StoreError),
    /// A card file that holds no valid announce.
    NotAnAnnounce,
    /// A kept session start of the wrong length, or whose bytes do not
    /// hash to the session id it was filed under.
    NotAStart,
}

impl RestoreError {
    /// Expired: nothing is wrong with the file, it is simply done.
    pub fn is_expired(&self) -> bool {
        matches!(self, RestoreError::Envelope(EnvelopeError::Expired { .. }))
    }
}

impl fmt::Display for RestoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RestoreError::Envelope(e) => write!(f, "{e}"),
            RestoreError::Store(e) => write!(f, "{e}"),
            RestoreError::NotAnAnnounce => f.write_str("not a valid announce"),
            RestoreError::NotAStart => f.write_str("not the start of the session it is filed under"),
        }
    }
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
    /// The peer confirmed the link (until then it carries nothing).
    pub confirmed: bool,
}

/// A snapshot of one federation link.
#[derive(Debug, Clone)]
pub struct FederationInfo {
    pub node: NodeId,
    pub domain: String,
    pub addr: SocketAddr,
    pub established_ms: u64,
    pub counters: federation::Counters,
    /// Entries waiting for an outbound token (envelopes and cards).
    pub backlog: usize,
    /// The peer confirmed the link (until then it carries nothing).
    pub confirmed: bool,
    /// The policy in force on the link.
    pub policy: federation::Policy,
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

/// A peer found by discovery, for status output.
#[derive(Debug, Clone)]
pub struct DiscoveredInfo {
    pub node: NodeId,
    pub addr: SocketAddr,
    pub age_ms: u64,
}
