//! The in-memory network the mesh tests run on: nodes on virtual time,
//! wired by links that can be cut, driven only through the public poll
//! API, optionally losing a seeded share of datagrams. It does not model
//! delay or capacity (tools/sim does).
#![allow(dead_code)] // each test binary uses part of it

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use meshpost_proto::envelope::EnvelopeId;
use meshpost_proto::identity::{Identity, NodeId, fingerprint};
use meshpost_proto::node::{Action, Config, Delivery, Event, Node};
use meshpost_proto::time::Timestamp;

pub const T0: u64 = 1_800_000_000_000;

pub fn addr(i: usize) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, i as u8 + 1)), 4849)
}

pub struct Sim {
    pub nodes: Vec<Node>,
    pub keys: Vec<[u8; 32]>,
    pub up: BTreeSet<(usize, usize)>,
    /// Links that carry datagrams but are not found by discovery (federation).
    pub wan: BTreeSet<(usize, usize)>,
    pub now: u64,
    pub delivered: Vec<Vec<Delivery>>,
    pub channel: Vec<Vec<Delivery>>,
    /// Every datagram sent, for replay tests.
    pub wire: Vec<(usize, usize, Vec<u8>)>,
    /// How far the nodes' wall clocks are from the monotonic one (ms): a
    /// step of this models NTP setting the clock of an RTC-less router.
    pub unix_offset: i64,
    /// Link-down events seen, all nodes together.
    pub link_downs: usize,
    /// Refusals logged (one log line each), per node.
    pub refusals_logged: Vec<usize>,
    /// Envelopes in each node's store as persisted (Persist minus
    /// Unpersist), with their bytes, read back when a node asks (Load).
    pub persisted: Vec<BTreeMap<String, Vec<u8>>>,
    /// Card files each node keeps (SaveCard minus ForgetCard).
    pub card_files: Vec<BTreeSet<NodeId>>,
    /// Share of datagrams each link drops (0 by default), drawn from
    /// `loss_rng`, so a seed gives the same losses every run.
    pub loss: f64,
    pub loss_rng: u64,
}

impl Sim {
    pub fn new(n: usize, edges: &[(usize, usize)]) -> Sim {
        Sim::seeded(n, edges, 0)
    }

    /// Node identities and generators derive from `seed` and the index, so
    /// two runs with the same seed are the same run.
    pub fn seeded(n: usize, edges: &[(usize, usize)], seed: u8) -> Sim {
        let cfg = Config {
            announce_interval_ms: 5_000,
            announce_max_interval_ms: 40_000,
            sync_interval_ms: 2_000,
            keepalive_ms: 2_000,
            dead_after_ms: 6_000,
            route_timeout_ms: 120_000,
            ..Config::default()
        };
        let mut nodes = Vec::new();
        let mut keys = Vec::new();
        for i in 0..n {
            // Keys and generators from the index: every run is the same.
            let mut key_seed = [i as u8 + 1; 32];
            key_seed[0] = seed;
            let id = Identity::from_seed(&key_seed);
            keys.push(id.public_key());
            nodes.push(Node::new(
                id,
                Config { name: format!("n{i}"), ..cfg.clone() },
                {
                    let mut rng_seed = [i as u8 + 101; 32];
                    rng_seed[0] = seed;
                    rng_seed
                },
                Timestamp::from(T0),
            ));
        }
        let mut sim = Sim {
            nodes,
            keys,
            up: BTreeSet::new(),
            wan: BTreeSet::new(),
            now: T0,
            delivered: vec![Vec::new(); n],
            channel: vec![Vec::new(); n],
            wire: Vec::new(),
            unix_offset: 0,
            link_downs: 0,
            refusals_logged: vec![0; n],
            persisted: vec![BTreeMap::new(); n],
            card_files: vec![BTreeSet::new(); n],
            loss: 0.0,
            loss_rng: 0x9e37_79b9_7f4a_7c15 ^ u64::from(seed),
        };
        for &(a, b) in edges {
            sim.connect(a, b);
        }
        sim
    }

    pub fn id(&self, i: usize) -> NodeId {
        self.nodes[i].node_id()
    }

    pub fn connect(&mut self, a: usize, b: usize) {
        self.up.insert((a.min(b), a.max(b)));
    }

    pub fn cut(&mut self, a: usize, b: usize) {
        self.up.remove(&(a.min(b), a.max(b)));
    }

    pub fn linked(&self, a: usize, b: usize) -> bool {
        self.up.contains(&(a.min(b), a.max(b)))
    }

    pub fn reachable(&self, a: usize, b: usize) -> bool {
        self.linked(a, b) || self.wan.contains(&(a.min(b), a.max(b)))
    }

    /// One tick: "mDNS" tells each node about its reachable neighbours, timers
    /// run, and datagrams flow until the network is quiet.
    /// Both clocks of every node now.
    pub fn ts(&self) -> Timestamp {
        Timestamp::new(self.now, self.now.saturating_add_signed(self.unix_offset))
    }

    pub fn step(&mut self, ms: u64) {
        self.now += ms;
        let ts = self.ts();
        let n = self.nodes.len();
        for i in 0..n {
            for j in 0..n {
                if i != j && self.linked(i, j) {
                    let (id, fp) = (self.id(j), fingerprint(&self.keys[j]));
                    self.nodes[i].discovered(addr(j), id, fp, ts);
                }
            }
            self.nodes[i].handle_timeout(ts);
        }
        for _ in 0..10_000 {
            let mut moved = false;
            for i in 0..n {
                while let Some(a) = self.nodes[i].poll_action() {
                    moved = true;
                    match a {
                        Action::Transmit { to, data } => {
                            if let Some(j) = (0..n).find(|&j| addr(j) == to)
                                && self.reachable(i, j)
                                && !self.lost()
                            {
                                self.nodes[j].handle_datagram(ts, addr(i), &data);
                                self.wire.push((i, j, data));
                            }
                        }
                        Action::Deliver(d) => {
                            self.nodes[i].persisted(d.id);
                            self.delivered[i].push(d);
                        }
                        Action::ChannelDeliver { message, .. } => self.channel[i].push(message),
                        Action::Persist { id, bytes } => {
                            self.persisted[i].insert(id.to_string(), bytes);
                            self.nodes[i].persisted(id);
                        }
                        Action::Load { id } => match self.persisted[i].get(&id.to_string()).cloned() {
                            Some(b) => self.nodes[i].loaded(id, &b),
                            None => self.nodes[i].load_failed(id, "not persisted"),
                        },
                        Action::Event(Event::LinkDown { .. }) => self.link_downs += 1,
                        Action::Event(Event::PeerRefused { .. }) => self.refusals_logged[i] += 1,
                        Action::Unpersist { id } => {
                            self.persisted[i].remove(&id.to_string());
                        }
                        Action::SaveCard { node, .. } => {
                            self.card_files[i].insert(node);
                        }
                        Action::ForgetCard { node } => {
                            self.card_files[i].remove(&node);
                        }
                        _ => {}
                    }
                }
            }
            if !moved {
                break;
            }
        }
        // Whatever happened, no node asks to be woken in the past (a timer
        // left behind once made an idle daemon spin).
        for (i, n) in self.nodes.iter().enumerate() {
            assert!(n.poll_timeout().is_none_or(|t| t > self.now), "node {i} has a timer in the past");
        }
    }

    pub fn run(&mut self, ms: u64) {
        let steps = ms / 250;
        for _ in 0..steps {
            self.step(250);
        }
    }

    /// Whether the next datagram is dropped (xorshift64 against `loss`).
    fn lost(&mut self) -> bool {
        if self.loss <= 0.0 {
            return false;
        }
        let mut x = self.loss_rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.loss_rng = x;
        (x >> 11) as f64 / (1u64 << 53) as f64 <= self.loss
    }

    pub fn forwarded(&self) -> u64 {
        self.nodes.iter().map(|n| n.metrics().envelopes_forwarded).sum()
    }

    pub fn send(&mut self, from: usize, to: usize, text: &str, ttl: Option<u32>) -> EnvelopeId {
        let dest = self.id(to);
        let ts = self.ts();
        self.nodes[from].send_direct(ts, dest, text.as_bytes(), ttl, None).unwrap()
    }
}
