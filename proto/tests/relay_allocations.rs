//! How many heap allocations a relay makes per direct envelope it passes
//! on, counted by a global allocator around the relay's own calls only
//! (issue 12 asks for none on the hot path; docs/performance.md lists
//! where they are made). It guards against new ones creeping in; it does
//! not time anything.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)] // tests may use the OS generator

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};

use meshpost_proto::identity::Identity;
use meshpost_proto::node::{Action, Config, Node, PeerSpec};
use meshpost_proto::time::Timestamp;
use rand_core::OsRng;

struct Counting;
static COUNT: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);
thread_local!(static ON: Cell<bool> = const { Cell::new(false) });

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if ON.with(Cell::get) {
            COUNT.fetch_add(1, Ordering::Relaxed);
            BYTES.fetch_add(l.size() as u64, Ordering::Relaxed);
        }
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        if ON.with(Cell::get) {
            COUNT.fetch_add(1, Ordering::Relaxed);
            BYTES.fetch_add(n as u64, Ordering::Relaxed);
        }
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static A: Counting = Counting;

fn counted<T>(f: impl FnOnce() -> T) -> T {
    ON.with(|c| c.set(true));
    let t = f();
    ON.with(|c| c.set(false));
    t
}

const NOW: u64 = 1_800_000_000;

#[test]
fn a_relay_allocates_a_bounded_number_of_buffers_per_envelope() {
    let addr = |i: u8| SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, i)), 4849);
    let t0 = NOW * 1000;
    let cfg = Config {
        link_rate: 10_000_000,
        link_burst: 10_000_000,
        origin_rate: 10_000_000,
        origin_burst: 10_000_000,
        ..Config::default()
    };
    let mk = |n: &str| {
        Node::new(
            Identity::generate(&mut OsRng),
            Config { name: n.into(), ..cfg.clone() },
            [n.len() as u8; 32],
            Timestamp::from(t0),
        )
    };
    let mut nodes = [mk("a"), mk("rr"), mk("zzz")];
    nodes[0].add_peer(PeerSpec { addr: addr(2), pin: None, federation: None }, Timestamp::from(t0));
    nodes[2].add_peer(PeerSpec { addr: addr(2), pin: None, federation: None }, Timestamp::from(t0));
    fn pump(nodes: &mut [Node; 3], now: u64, addr: &dyn Fn(u8) -> SocketAddr) -> usize {
        let mut delivered = 0;
        loop {
            let mut any = false;
            for i in 0..3 {
                loop {
                    let act = if i == 1 { counted(|| nodes[1].poll_action()) } else { nodes[i].poll_action() };
                    let Some(act) = act else { break };
                    any = true;
                    match act {
                        Action::Transmit { to, data } => {
                            if let Some(j) = (0..3).find(|&j| addr(j as u8 + 1) == to) {
                                let from = addr(i as u8 + 1);
                                if j == 1 {
                                    counted(|| nodes[1].handle_datagram(Timestamp::from(now), from, &data));
                                } else {
                                    nodes[j].handle_datagram(Timestamp::from(now), from, &data);
                                }
                            }
                        }
                        Action::Deliver(d) => {
                            delivered += 1;
                            nodes[i].persisted(d.id);
                        }
                        Action::Persist { id, .. } => {
                            if i == 1 {
                                counted(|| nodes[1].persisted(id));
                            } else {
                                nodes[i].persisted(id);
                            }
                        }
                        _ => {}
                    }
                }
            }
            if !any {
                return delivered;
            }
        }
    }
    let mut now = t0;
    for _ in 0..20 {
        now += 500;
        for n in nodes.iter_mut() {
            n.handle_timeout(Timestamp::from(now));
        }
        pump(&mut nodes, now, &addr);
    }
    let zid = nodes[2].node_id();
    let rid = nodes[1].node_id();
    let n = 400;
    let envs: Vec<Vec<u8>> = (0..n)
        .map(|i| {
            let id = nodes[0]
                .send_direct(Timestamp::from(now), zid, format!("message {i} ").repeat(12).as_bytes(), None, None)
                .unwrap();
            let bytes = nodes[0].store().get(&id).unwrap().bytes().expect("in memory").to_vec();
            nodes[0].persist_failed(id);
            bytes
        })
        .collect();
    while nodes[0].poll_action().is_some() {}
    COUNT.store(0, Ordering::Relaxed);
    BYTES.store(0, Ordering::Relaxed);
    let mut delivered = 0;
    for (k, chunk) in envs.chunks(50).enumerate() {
        for e in chunk {
            nodes[0].send_raw_envelope(rid, e);
        }
        now += 1;
        delivered += pump(&mut nodes, now, &addr);
        for _ in 0..100 {
            if delivered >= (k + 1) * 50 {
                break;
            }
            now += 20;
            for (i, node) in nodes.iter_mut().enumerate() {
                if i == 1 {
                    counted(|| node.handle_timeout(Timestamp::from(now)));
                } else {
                    node.handle_timeout(Timestamp::from(now));
                }
            }
            delivered += pump(&mut nodes, now, &addr);
        }
    }
    assert_eq!(delivered, n);
    let c = COUNT.load(Ordering::Relaxed);
    let b = BYTES.load(Ordering::Relaxed);
    let (per, bytes) = (c as f64 / n as f64, b as f64 / n as f64);
    eprintln!("relay: {per:.1} allocations, {bytes:.0} bytes allocated per envelope");
    // 24.6 and 15.7 KB on 2026-12-06: the link's decrypted and sealed
    // datagrams, the fragments, the reassembled and stored copies, the
    // write request, the acknowledgement frame (docs/performance.md).
    assert!(per <= 26.0, "{per:.1} allocations per relayed envelope");
}
