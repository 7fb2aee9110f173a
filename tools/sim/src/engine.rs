//! The event loop: real proto `Node`s on one virtual clock, datagrams
//! carried between topology neighbours with delay and loss, mDNS modelled
//! as each node being told its neighbours every `mdns_interval`, a message
//! load, and churn (a node goes silent and returns with its state, as a
//! router whose radio or uplink drops).
//!
//! Deterministic by seed: identities, node generators, topology, loss,
//! load and churn all derive from it, and events at the same instant run in
//! the order they were scheduled.
//!
//! Signature checks are remembered across nodes (a pure function of the
//! bytes, identity::verify_memo); each node still runs its whole decode.
//!
//! In a `federated` topology each community has its own domain, and its
//! gateway (topo.rs) is configured with every other gateway as a pinned
//! federation peer (default policy: direct messages cross, 20/s); the
//! load's messages go between any two nodes, most of them across.
//!
//! Deliberately not here: disks (every write succeeds at once), reboots
//! that lose memory, and radio contention (a unicast datagram
//! costs one transmission, as on batman-adv's unicast path).

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use meshpost_proto::channel::ChannelKey;
use meshpost_proto::crypto::kdf;
use meshpost_proto::envelope::EnvelopeId;
use meshpost_proto::federation::Policy;

mod missed;
mod reach;
use meshpost_proto::identity::{Identity, NodeId, fingerprint};
use meshpost_proto::node::{Action, Config, Event, Node, PeerSpec, WireClass, WireStats};
use meshpost_proto::rng::NodeRng;
use meshpost_proto::time::Timestamp;
use rand_core::RngCore;

use crate::converge;
use crate::topo::{self, unit};

const UNIX0: u64 = 1_800_000_000_000;

/// One run's parameters.
#[derive(Debug, Clone)]
pub struct Params {
    pub topology: topo::Kind,
    pub nodes: usize,
    pub degree: f64,
    pub minutes: u64,
    /// Figures are taken after this (convergence).
    pub warmup_minutes: u64,
    pub seed: u64,
    /// Direct messages per minute, whole network.
    pub load_per_minute: f64,
    pub loss: f64,
    pub delay_ms: u64,
    /// How long a node's writes (stored envelopes, inbox entries) take to
    /// become durable; 0: at once. A router's flash takes milliseconds to
    /// tens of them, and what waits on a write (its have, its forward, an
    /// acknowledgement) waits that long.
    pub write_ms: u64,
    /// Share of nodes that leave (for 5 to 15 minutes) per hour.
    pub churn_per_hour: f64,
    /// Every node's configuration (its name is set per node).
    pub config: Config,
    /// How often mDNS tells a node about its neighbours.
    pub mdns_interval_ms: u64,
    /// At this minute one link fails (one whose loss keeps the topology
    /// connected), and the time until every route leads home is measured.
    pub cut_minute: Option<u64>,
    /// From this minute for this many minutes the network is split in two
    /// halves (every link between them fails), then heals.
    pub partition: Option<(u64, u64)>,
    /// Channel messages per minute, whole network; every node joins the
    /// channel, so each message should reach every other node once.
    pub channel_per_minute: f64,
    /// Print the simulated minute and events so far to stderr every five
    /// simulated minutes (long runs).
    pub progress: bool,
    /// Bytes of stored envelopes each node keeps in memory (the daemon's
    /// `store_memory`). `None`: all of them, and no disk is simulated.
    /// `Some(n)`: each node's writes are kept on a simulated disk, and an
    /// envelope beyond `n` is read back from it (at once) to be sent.
    pub store_memory: Option<usize>,
}

impl Default for Params {
    /// A 10-node segment for 30 minutes (10 of warm-up), idle, no loss,
    /// 5 ms links, mDNS every minute, the daemon's default configuration.
    fn default() -> Params {
        Params {
            topology: topo::Kind::Segment,
            nodes: 10,
            degree: 8.0,
            minutes: 30,
            warmup_minutes: 10,
            seed: 1,
            load_per_minute: 0.0,
            loss: 0.0,
            delay_ms: 5,
            write_ms: 0,
            churn_per_hour: 0.0,
            config: Config::default(),
            mdns_interval_ms: 60_000,
            cut_minute: None,
            partition: None,
            channel_per_minute: 0.0,
            progress: false,
            store_memory: None,
        }
    }
}

/// A message counts as deliverable when its origin and destination were
/// both up, the partition healed, and the radio graph of nodes up joining
/// them (`engine/reach.rs`), for this long before the run ended.
pub const DELIVERABLE_MS: u64 = 5 * 60_000;

/// What one run measured.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub sent: u64,
    pub delivered: u64,
    pub latencies_ms: Vec<u64>,
    /// Per node and minute over the measured window.
    pub bytes_per_node_minute: [f64; 7],
    pub datagrams_per_node_minute: f64,
    pub announce_duplicates_per_accepted: f64,
    pub data_duplicates_per_delivered: f64,
    pub links_avg: f64,
    pub routes_avg: f64,
    pub routes_max: usize,
    pub cards_avg: f64,
    pub store_avg: f64,
    /// Envelope ids remembered as seen, per node.
    pub seen_avg: f64,
    pub seen_max: usize,
    pub events: u64,
    /// Every node counter (Metrics::list), summed over all nodes.
    pub counters: Vec<(&'static str, u64)>,
    /// Events an admin would see in the log, by kind and reason, all nodes.
    pub log_events: std::collections::BTreeMap<String, u64>,
    /// With `cut_minute`: whether every route led home just before the cut,
    /// and how long after it they all did again (None: not within the run,
    /// or no link could go without splitting the topology).
    pub routes_settled_before_cut: bool,
    pub convergence_ms: Option<u64>,
    /// Messages not delivered by the end although deliverable
    /// ([`DELIVERABLE_MS`]): the ones issue 13 says must be zero.
    pub missed: u64,
    /// Channel messages published, and how many nodes received each
    /// (summed; the most is posts x (nodes - 1)), with their latencies.
    pub channel_posts: u64,
    pub channel_received: u64,
    pub channel_latencies_ms: Vec<u64>,
    /// Channel datagrams sent (eager copies and copies a sync round
    /// fetched) per node that received a message: 1.0 is the minimum, one
    /// transmission per receiver.
    pub channel_copies_per_receiver: f64,
    /// Channel messages not received by a node although deliverable (as
    /// for `missed`: published, the origin and the node up, and the network
    /// whole, for [`DELIVERABLE_MS`] before the end), counted per node. A
    /// post whose origin left at once and is still away counts for nobody:
    /// no copy may have left it.
    pub channel_missed: u64,
}

enum Ev {
    Wake(u32),
    Datagram {
        from: u32,
        to: u32,
        data: Vec<u8>,
    },
    /// A node's write of `id` is durable now.
    Written(u32, EnvelopeId),
    Discover(u32),
    Load,
    Post,
    Churn,
    Return(u32),
    Cut,
    CheckRoutes,
    Partition,
    Heal,
}

struct Item {
    t: u64,
    seq: u64,
    ev: Ev,
}

impl PartialEq for Item {
    fn eq(&self, o: &Self) -> bool {
        (self.t, self.seq) == (o.t, o.seq)
    }
}
impl Eq for Item {}
impl PartialOrd for Item {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Item {
    /// Reversed: the heap pops the earliest first.
    fn cmp(&self, o: &Self) -> Ordering {
        (o.t, o.seq).cmp(&(self.t, self.seq))
    }
}

fn addr(i: u32) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::from(0x0a00_0001 + i)), 4849)
}

fn index(a: &SocketAddr) -> Option<u32> {
    match a.ip() {
        IpAddr::V4(v) => u32::from(v).checked_sub(0x0a00_0001),
        IpAddr::V6(_) => None,
    }
}

pub struct Sim {
    p: Params,
    nodes: Vec<Node>,
    ids: Vec<NodeId>,
    fps: Vec<[u8; 8]>,
    adj: Vec<Vec<u32>>,
    /// Gateways of a federated topology (one per community), which reach
    /// each other beyond `adj`.
    gateways: Vec<u32>,
    up: Vec<bool>,
    wake_at: Vec<u64>,
    heap: BinaryHeap<Item>,
    seq: u64,
    now: u64,
    rng: NodeRng,
    /// Messages not yet delivered: when sent, from, to.
    sent: HashMap<EnvelopeId, (u64, u32, u32)>,
    /// Channel messages: when published, by whom, and which nodes have it.
    posted: HashMap<EnvelopeId, (u64, u32, Vec<bool>)>,
    channel: [u8; 16],
    report: Report,
    cut_at: Option<u64>,
    /// When each node last came back (0: up from the start).
    up_since: Vec<u64>,
    /// Links cut by the partition, and when it healed.
    split: Vec<(u32, u32)>,
    healed_at: u64,
    /// Component labels of the radio graph over the settling window
    /// (`reach.rs`).
    late_components: Vec<Vec<u32>>,
    /// Each node's written envelopes, when `store_memory` is set.
    disks: Vec<HashMap<EnvelopeId, Vec<u8>>>,
}

impl Sim {
    pub fn new(p: Params) -> Sim {
        // Every node checks every beacon's signature; on one thread the
        // same check need not run a thousand times (identity.rs).
        meshpost_proto::identity::verify_memo::enable();
        let seed = kdf(b"mp-simsd", &[], &[&p.seed.to_be_bytes()]);
        let mut rng = NodeRng::from_seed(seed);
        let adj = topo::build(p.topology, p.nodes, p.degree, &mut rng);
        let mut nodes = Vec::with_capacity(p.nodes);
        let (mut ids, mut fps, mut keys) = (Vec::new(), Vec::new(), Vec::new());
        let comm = p.topology.communities(p.nodes);
        let federated = p.topology == topo::Kind::Federated;
        let domain = |c: usize| format!("c{c}");
        for i in 0..p.nodes as u32 {
            let id_seed = kdf(b"mp-simid", &seed, &[&i.to_be_bytes()]);
            let identity = Identity::from_seed(&id_seed);
            ids.push(identity.node_id());
            fps.push(fingerprint(&identity.public_key()));
            keys.push(identity.public_key());
            let mut cfg = Config { name: format!("n{i}"), ..p.config.clone() };
            // Without a simulated disk every stored envelope keeps its
            // bytes in memory, so no node ever asks to read one back (Load).
            cfg.store.max_hot_bytes = p.store_memory.unwrap_or(usize::MAX);
            if federated {
                cfg.domain = domain(comm[i as usize]);
            }
            let node_seed = kdf(b"mp-simrn", &seed, &[&i.to_be_bytes()]);
            nodes.push(Node::new(identity, cfg, node_seed, Timestamp::new(0, UNIX0)));
        }
        let n = p.nodes;
        // The first node of each community is its gateway.
        let gateways: Vec<u32> = if federated {
            (0..n).filter(|i| *i == 0 || comm[*i] != comm[i - 1]).map(|i| i as u32).collect()
        } else {
            vec![]
        };
        for &g in &gateways {
            for &o in gateways.iter().filter(|o| **o != g) {
                let policy = Policy::new(&domain(comm[o as usize]));
                let spec = PeerSpec { addr: addr(o), pin: Some(keys[o as usize]), federation: Some(policy) };
                nodes[g as usize].add_peer(spec, Timestamp::new(0, UNIX0));
            }
        }
        let key = ChannelKey::from_bytes(kdf(b"mp-simch", &seed, &[]));
        let channel = key.id();
        if p.channel_per_minute > 0.0 {
            for node in &mut nodes {
                node.join_channel(key.clone());
            }
        }
        let disks = if p.store_memory.is_some() { vec![HashMap::new(); n] } else { Vec::new() };
        let mut sim = Sim {
            p,
            nodes,
            ids,
            fps,
            adj,
            gateways,
            up: vec![true; n],
            wake_at: vec![u64::MAX; n],
            heap: BinaryHeap::new(),
            seq: 0,
            now: 0,
            rng,
            sent: HashMap::new(),
            posted: HashMap::new(),
            channel,
            report: Report::default(),
            cut_at: None,
            up_since: vec![0; n],
            split: Vec::new(),
            healed_at: 0,
            late_components: Vec::new(),
            disks,
        };
        for i in 0..n as u32 {
            // Routers boot within the first 10 s.
            let t = (unit(&mut sim.rng) * 10_000.0) as u64;
            sim.push(t, Ev::Discover(i));
        }
        if sim.p.load_per_minute > 0.0 {
            let t = sim.warmup_end() + sim.next_gap(sim.p.load_per_minute);
            sim.push(t, Ev::Load);
        }
        if sim.p.channel_per_minute > 0.0 {
            let t = sim.warmup_end() + sim.next_gap(sim.p.channel_per_minute);
            sim.push(t, Ev::Post);
        }
        if let Some(m) = sim.p.cut_minute {
            sim.push(m * 60_000, Ev::Cut);
        }
        if let Some((at, minutes)) = sim.p.partition {
            sim.push(at * 60_000, Ev::Partition);
            sim.push((at + minutes) * 60_000, Ev::Heal);
        }
        if sim.p.churn_per_hour > 0.0 {
            let per_minute = sim.p.churn_per_hour * n as f64 / 60.0;
            let t = sim.warmup_end() + sim.next_gap(per_minute);
            sim.push(t, Ev::Churn);
        }
        sim
    }

    fn warmup_end(&self) -> u64 {
        self.p.warmup_minutes * 60_000
    }

    /// An exponential gap (ms) for `per_minute` events a minute.
    fn next_gap(&mut self, per_minute: f64) -> u64 {
        let u = unit(&mut self.rng).max(1e-12);
        (-u.ln() * 60_000.0 / per_minute) as u64 + 1
    }

    fn push(&mut self, t: u64, ev: Ev) {
        self.seq += 1;
        self.heap.push(Item { t, seq: self.seq, ev });
    }

    fn ts(&self) -> Timestamp {
        Timestamp::new(self.now, UNIX0 + self.now)
    }

    fn neighbours(&self, a: u32, b: u32) -> bool {
        let wan = || self.gateways.contains(&a) && self.gateways.contains(&b);
        self.adj[a as usize].binary_search(&b).is_ok() || wan()
    }

    /// Runs to the end and reports.
    pub fn run(mut self) -> Report {
        let end = self.p.minutes * 60_000;
        let mut start_stats: Option<Vec<WireStats>> = None;
        let mut start_metrics = Vec::new();
        let mut next_progress = 5 * 60_000;
        while let Some(item) = self.heap.pop() {
            if item.t > end {
                break;
            }
            if self.p.progress && item.t >= next_progress {
                eprintln!("minute {}: {} events", next_progress / 60_000, self.report.events);
                next_progress += 5 * 60_000;
            }
            if start_stats.is_none() && item.t >= self.warmup_end() {
                start_stats = Some(self.nodes.iter().map(|n| n.wire_stats().clone()).collect());
                start_metrics = self.nodes.iter().map(|n| n.metrics().clone()).collect();
            }
            self.now = item.t;
            self.report.events += 1;
            self.handle(item.ev);
        }
        self.now = end;
        let start = start_stats.unwrap_or_else(|| vec![WireStats::default(); self.nodes.len()]);
        if start_metrics.is_empty() {
            start_metrics = vec![Default::default(); self.nodes.len()];
        }
        self.finish(&start, &start_metrics)
    }

    fn handle(&mut self, ev: Ev) {
        let ts = self.ts();
        match ev {
            Ev::Wake(i) => {
                if self.up[i as usize] && self.wake_at[i as usize] == self.now {
                    self.wake_at[i as usize] = u64::MAX;
                    self.nodes[i as usize].handle_timeout(ts);
                    self.drain(i);
                }
            }
            Ev::Datagram { from, to, data } => {
                if self.up[to as usize] && self.up[from as usize] {
                    self.nodes[to as usize].handle_datagram(ts, addr(from), &data);
                    self.drain(to);
                }
            }
            Ev::Written(i, id) => {
                // A node that went silent meanwhile still finishes its
                // write (churn keeps a node's memory, as a radio that drops).
                self.nodes[i as usize].persisted(id);
                self.drain(i);
            }
            Ev::Discover(i) => {
                if self.up[i as usize] {
                    for k in 0..self.adj[i as usize].len() {
                        let j = self.adj[i as usize][k];
                        if self.up[j as usize] {
                            let (id, fp) = (self.ids[j as usize], self.fps[j as usize]);
                            self.nodes[i as usize].discovered(addr(j), id, fp, ts);
                        }
                    }
                    self.drain(i);
                }
                self.push(self.now + self.p.mdns_interval_ms, Ev::Discover(i));
            }
            Ev::Load => {
                let n = self.nodes.len() as u64;
                let src = (self.rng.next_u64() % n) as u32;
                let dst = ((src as u64 + 1 + self.rng.next_u64() % (n - 1)) % n) as u32;
                if self.up[src as usize] {
                    let body = [b'x'; 200];
                    let to = self.ids[dst as usize];
                    if let Ok(id) = self.nodes[src as usize].send_direct(ts, to, &body, None, None) {
                        self.sent.insert(id, (self.now, src, dst));
                        self.report.sent += 1;
                    }
                    self.drain(src);
                }
                let t = self.now + self.next_gap(self.p.load_per_minute);
                self.push(t, Ev::Load);
            }
            Ev::Post => {
                let src = (self.rng.next_u64() % self.nodes.len() as u64) as u32;
                if self.up[src as usize] {
                    let body = [b'c'; 100];
                    if let Ok(id) = self.nodes[src as usize].publish(ts, self.channel, &body) {
                        self.posted.insert(id, (self.now, src, vec![false; self.nodes.len()]));
                        self.report.channel_posts += 1;
                    }
                    self.drain(src);
                }
                let t = self.now + self.next_gap(self.p.channel_per_minute);
                self.push(t, Ev::Post);
            }
            Ev::Churn => {
                let i = (self.rng.next_u64() % self.nodes.len() as u64) as u32;
                if self.up[i as usize] {
                    self.note_graph_change();
                    self.up[i as usize] = false;
                    let away = 300_000 + (unit(&mut self.rng) * 600_000.0) as u64;
                    self.push(self.now + away, Ev::Return(i));
                }
                let per_minute = self.p.churn_per_hour * self.nodes.len() as f64 / 60.0;
                let t = self.now + self.next_gap(per_minute);
                self.push(t, Ev::Churn);
            }
            Ev::Return(i) => {
                self.note_graph_change();
                self.up[i as usize] = true;
                self.up_since[i as usize] = self.now;
                self.wake_at[i as usize] = self.now;
                self.push(self.now, Ev::Wake(i));
            }
            Ev::Cut => {
                self.report.routes_settled_before_cut = self.routes_settled();
                // A radio link that carries a meshpost link (nodes link to
                // their preferred few, not to every radio neighbour).
                let (nodes, ids) = (&self.nodes, &self.ids);
                let used = |a: u32, b: u32| nodes[a as usize].is_linked(&ids[b as usize]);
                if let Some((a, b)) = converge::removable_edge(&self.adj, &mut self.rng, used) {
                    self.note_graph_change();
                    converge::remove_edge(&mut self.adj, a, b);
                    self.cut_at = Some(self.now);
                    self.push(self.now + 1_000, Ev::CheckRoutes);
                }
            }
            Ev::Partition => {
                self.note_graph_change();
                self.split = converge::split_in_half(&self.adj);
                for &(a, b) in &self.split {
                    converge::remove_edge(&mut self.adj, a, b);
                }
            }
            Ev::Heal => {
                self.note_graph_change();
                for (a, b) in std::mem::take(&mut self.split) {
                    converge::add_edge(&mut self.adj, a, b);
                }
                self.healed_at = self.now;
            }
            Ev::CheckRoutes => {
                let Some(cut) = self.cut_at else { return };
                if self.routes_settled() {
                    self.report.convergence_ms = Some(self.now - cut);
                } else {
                    self.push(self.now + 1_000, Ev::CheckRoutes);
                }
            }
        }
    }

    fn routes_settled(&self) -> bool {
        let next: Vec<HashMap<NodeId, NodeId>> =
            self.nodes.iter().map(|n| n.routes().into_iter().map(|r| (r.dest, r.via)).collect()).collect();
        converge::routes_lead_everywhere(&self.adj, &self.up, &self.ids, &next)
    }

    /// Carries out what node `i` asked for, then schedules its next wake.
    fn drain(&mut self, i: u32) {
        while let Some(a) = self.nodes[i as usize].poll_action() {
            match a {
                Action::Transmit { to, data } => {
                    let Some(j) = index(&to).filter(|j| (*j as usize) < self.nodes.len()) else { continue };
                    if !self.neighbours(i, j) || unit(&mut self.rng) < self.p.loss {
                        continue;
                    }
                    let jitter = (unit(&mut self.rng) * self.p.delay_ms as f64 * 0.2) as u64;
                    self.push(self.now + self.p.delay_ms + jitter, Ev::Datagram { from: i, to: j, data });
                }
                Action::Persist { id, bytes } => {
                    if let Some(disk) = self.disks.get_mut(i as usize) {
                        disk.insert(id, bytes);
                    }
                    if self.p.write_ms > 0 {
                        self.push(self.now + self.p.write_ms, Ev::Written(i, id))
                    } else {
                        self.nodes[i as usize].persisted(id)
                    }
                }
                Action::Unpersist { id } => {
                    if let Some(disk) = self.disks.get_mut(i as usize) {
                        disk.remove(&id);
                    }
                }
                // Asked for only with a simulated disk (`store_memory`).
                Action::Load { id } => match self.disks.get(i as usize).map(|d| d.get(&id).cloned()) {
                    Some(Some(b)) => self.nodes[i as usize].loaded(id, &b),
                    Some(None) => self.nodes[i as usize].load_failed(id, "not on the simulated disk"),
                    None => self.nodes[i as usize].load_later(id),
                },
                Action::Deliver(d) => {
                    if self.p.write_ms > 0 {
                        self.push(self.now + self.p.write_ms, Ev::Written(i, d.id));
                    } else {
                        self.nodes[i as usize].persisted(d.id);
                    }
                    if let Some((t, _, dst)) = self.sent.get(&d.id)
                        && *dst == i
                    {
                        self.report.delivered += 1;
                        self.report.latencies_ms.push(self.now - t);
                        self.sent.remove(&d.id);
                    }
                }
                Action::ChannelDeliver { message, .. } => {
                    if let Some((t, _, got)) = self.posted.get_mut(&message.id).filter(|(_, src, _)| *src != i)
                        && !got[i as usize]
                    {
                        got[i as usize] = true;
                        self.report.channel_received += 1;
                        self.report.channel_latencies_ms.push(self.now - *t);
                    }
                }
                Action::Event(e) => {
                    let key = match &e {
                        Event::LinkDown { reason, .. } => format!("link down: {reason}"),
                        Event::PeerRefused { reason, .. } => format!("peer refused: {reason}"),
                        Event::HandshakeFailed { reason, .. } => format!("handshake failed: {reason}"),
                        Event::EnvelopeDropped { reason, .. } => format!("envelope dropped: {reason}"),
                        other => format!("{other:?}").split([' ', '{', '(']).next().unwrap_or_default().to_string(),
                    };
                    *self.report.log_events.entry(key).or_default() += 1;
                }
                _ => {}
            }
        }
        if let Some(t) = self.nodes[i as usize].poll_timeout() {
            let t = t.max(self.now);
            if t < self.wake_at[i as usize] {
                self.wake_at[i as usize] = t;
                self.push(t, Ev::Wake(i));
            }
        }
    }

    fn finish(mut self, start: &[WireStats], start_m: &[meshpost_proto::node::Metrics]) -> Report {
        let n = self.nodes.len() as f64;
        let minutes = (self.p.minutes - self.p.warmup_minutes).max(1) as f64;
        let mut r = std::mem::take(&mut self.report);
        let (mut dgrams, mut ann_dup, mut ann_in, mut env_dup) = (0u64, 0u64, 0u64, 0u64);
        for (k, node) in self.nodes.iter().enumerate() {
            let w = node.wire_stats();
            for c in WireClass::ALL {
                r.bytes_per_node_minute[c as usize] += (w.bytes[c as usize] - start[k].bytes[c as usize]) as f64;
                dgrams += w.datagrams[c as usize] - start[k].datagrams[c as usize];
            }
            let m = node.metrics();
            ann_dup += m.announces_duplicate - start_m[k].announces_duplicate;
            ann_in += m.announces_in - start_m[k].announces_in;
            // Direct messages and acknowledgements: a channel's copies are
            // counted per receiver (channel_copies_per_receiver).
            env_dup += (m.envelopes_duplicate - m.channel_duplicate)
                - (start_m[k].envelopes_duplicate - start_m[k].channel_duplicate);
            let routes = node.routes().len();
            r.routes_avg += routes as f64 / n;
            r.routes_max = r.routes_max.max(routes);
            r.links_avg += node.links().len() as f64 / n;
            r.cards_avg += node.cards().count() as f64 / n;
            r.store_avg += node.store().len() as f64 / n;
            r.seen_avg += node.seen_ids() as f64 / n;
            r.seen_max = r.seen_max.max(node.seen_ids());
        }
        for node in &self.nodes {
            let searches = ("route_searches", node.route_searches());
            for (k, (name, v)) in
                node.metrics().list().into_iter().map(|(n, _, v)| (n, v)).chain([searches]).enumerate()
            {
                match r.counters.get_mut(k) {
                    Some(c) => c.1 += v,
                    None => r.counters.push((name, v)),
                }
            }
        }
        for b in &mut r.bytes_per_node_minute {
            *b /= n * minutes;
        }
        r.datagrams_per_node_minute = dgrams as f64 / (n * minutes);
        r.announce_duplicates_per_accepted = ann_dup as f64 / ann_in.max(1) as f64;
        r.data_duplicates_per_delivered = env_dup as f64 / r.delivered.max(1) as f64;
        r.latencies_ms.sort_unstable();
        r.channel_latencies_ms.sort_unstable();
        let channel_dgrams: u64 = self
            .nodes
            .iter()
            .zip(start)
            .map(|(node, s)| {
                let c = WireClass::Channel as usize;
                node.wire_stats().datagrams[c] - s.datagrams[c]
            })
            .sum();
        r.channel_copies_per_receiver = channel_dgrams as f64 / r.channel_received.max(1) as f64;
        // What is still in `sent` was not delivered.
        let end = self.p.minutes * 60_000;
        let settled = |since: u64| since + DELIVERABLE_MS <= end;
        let now = self.components();
        self.late_components.push(now);
        r.missed = self
            .sent
            .values()
            .filter(|(t, src, dst)| {
                settled(*t)
                    && settled(self.healed_at)
                    && [src, dst].iter().all(|&&k| self.up[k as usize] && settled(self.up_since[k as usize]))
                    && self.joined_late(*src, *dst)
            })
            .count() as u64;
        if std::env::var_os("SIM_DEBUG_MISSED").is_some() {
            self.explain_missed(settled);
            self.explain_channel_missed(settled);
        }
        let up_long = |k: usize| self.up[k] && settled(self.up_since[k]);
        r.channel_missed = self
            .posted
            .values()
            .filter(|(t, src, _)| settled(*t) && settled(self.healed_at) && up_long(*src as usize))
            .map(|(_, src, got)| {
                let missed = |(k, g): &(usize, &bool)| {
                    *k != *src as usize && !**g && up_long(*k) && self.joined_late(*src, *k as u32)
                };
                got.iter().enumerate().filter(missed).count() as u64
            })
            .sum();
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(nodes: usize, load: f64) -> Params {
        Params {
            topology: topo::Kind::Mesh,
            nodes,
            degree: 3.0,
            minutes: 6,
            warmup_minutes: 2,
            seed: 7,
            load_per_minute: load,
            delay_ms: 10,
            ..Params::default()
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_run_and_another_seed_another() {
        let a = Sim::new(params(8, 30.0)).run();
        let b = Sim::new(params(8, 30.0)).run();
        assert_eq!(a.latencies_ms, b.latencies_ms);
        assert_eq!(a.bytes_per_node_minute, b.bytes_per_node_minute);
        assert_eq!(a.events, b.events);
        let c = Sim::new(Params { seed: 8, ..params(8, 30.0) }).run();
        assert_ne!((a.events, a.latencies_ms), (c.events, c.latencies_ms));
    }

    #[test]
    fn a_small_multi_hop_mesh_delivers_its_messages_and_counts_its_traffic() {
        let r = Sim::new(params(8, 30.0)).run();
        // Sent over four minutes; only those of the last seconds may still
        // be on their way when the run ends.
        assert!(r.sent >= 80, "{} sent", r.sent);
        assert!(r.delivered + 3 >= r.sent, "{} of {} delivered", r.delivered, r.sent);
        assert!(r.latencies_ms[r.latencies_ms.len() / 2] < 1_000, "median latency {:?}", r.latencies_ms);
        assert!(r.routes_max == 7, "every node learned a route to every other: {}", r.routes_max);
        let b = r.bytes_per_node_minute;
        assert!(b[WireClass::Announce as usize] > 0.0 && b[WireClass::Direct as usize] > 0.0);
        assert!(b[WireClass::Ack as usize] > 0.0 && b[WireClass::Keepalive as usize] >= 0.0);
    }

    #[test]
    fn a_mesh_on_slow_disks_delivers_every_message_paying_for_one_write_not_one_per_hop() {
        // Writes that take 200 ms: an origin's message leaves only once its
        // write is durable, and a relay passes a copy on at once, saying
        // "have" only once its own write is (protocol.md, Durability).
        let fast = Sim::new(params(8, 30.0)).run();
        let r = Sim::new(Params { write_ms: 200, ..params(8, 30.0) }).run();
        assert!(r.sent >= 80, "{} sent", r.sent);
        assert!(r.delivered + 3 >= r.sent, "{} of {} delivered", r.delivered, r.sent);
        assert_eq!(r.missed, 0);
        // Sorted: the quickest and the slowest delivery.
        let (Some(&first), Some(&slowest), Some(&slowest_fast)) =
            (r.latencies_ms.first(), r.latencies_ms.last(), fast.latencies_ms.last())
        else {
            panic!("deliveries in both runs");
        };
        assert!(first >= 200, "nothing left before the origin's write: {first} ms");
        assert!(slowest_fast >= 30, "some paths have relays: {slowest_fast} ms at most at 10 ms a hop");
        // Relays waiting for their writes made a path of h hops pay h
        // writes (four hops: over 800 ms); now it pays the origin's one.
        assert!(slowest <= slowest_fast + 200 + 20, "{slowest} ms against {slowest_fast} ms on fast disks");
    }

    #[test]
    fn a_node_cut_off_by_churn_in_the_settling_time_is_not_counted_as_reachable() {
        let mut sim = Sim::new(params(12, 0.0));
        sim.now = 5 * 60_000; // within the last five minutes of six
        let lone = 0u32;
        let others: Vec<u32> = (1..12).filter(|k| !sim.adj[lone as usize].contains(k)).collect();
        let (a, b) = (others[0], others[1]);
        assert!(sim.joined(a, b) && sim.joined(lone, a), "the mesh is joined at first");
        for n in sim.adj[lone as usize].clone() {
            sim.note_graph_change();
            sim.up[n as usize] = false;
        }
        // Its neighbours come back before the end: it was cut off all the same.
        for n in sim.adj[lone as usize].clone() {
            sim.note_graph_change();
            sim.up[n as usize] = true;
        }
        let end = sim.components();
        sim.late_components.push(end);
        assert!(!sim.joined_late(lone, a), "cut off for a while in the settling time");
        assert!(sim.joined(lone, a), "and joined again at the end");
        // Two nodes that the neighbours' absence did not separate.
        let still = others.iter().flat_map(|&x| others.iter().map(move |&y| (x, y))).find(|&(x, y)| {
            x != y && sim.late_components.iter().all(|c| c[x as usize] == c[y as usize] && c[x as usize] != u32::MAX)
        });
        let (x, y) = still.expect("some pair stayed joined");
        assert!(sim.joined_late(x, y));
    }
}
