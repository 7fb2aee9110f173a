//! Hot paths of a relay, measured: `cargo bench -p meshpost-proto`.
//! Numbers and the machine they came from are in docs/performance.md.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)] // tests may use the OS generator

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use meshpost_proto::card::Card;
use meshpost_proto::e2e;
use meshpost_proto::envelope::{Destination, Draft, Envelope, Kind};
use meshpost_proto::identity::Identity;
use meshpost_proto::link::handshake::SessionKeys;
use meshpost_proto::link::handshake::{Initiator, Responder};
use meshpost_proto::link::packet::Packet;
use meshpost_proto::link::session::Session;
use meshpost_proto::node::{Action, Config, Node, PeerSpec};
use meshpost_proto::rng::NodeRng;
use meshpost_proto::store::{Store, StoreLimits};
use meshpost_proto::time::Timestamp;
use rand_core::OsRng;

const NOW: u64 = 1_800_000_000;

fn draft(payload: &[u8]) -> Draft<'_> {
    Draft {
        kind: Kind::Direct,
        max_hops: 8,
        created: NOW,
        ttl: 3600,
        dest: Destination { id: [7; 16], domain: String::new() },
        payload,
    }
}

fn card(id: &Identity) -> Card {
    Card {
        ed_pk: id.public_key(),
        x25519: id.e2e_public(),
        kem_ek: Some(meshpost_proto::card::KemKey::new(id.kem_public())),
        name: String::new(),
        domain: String::new(),
        seq: 1,
        neighbours: Vec::new(),
        gateway_for: Vec::new(),
    }
}

fn noise(d: &[u8]) -> Vec<u8> {
    match Packet::parse(d) {
        Ok(Packet::Init { noise, .. } | Packet::Resp { noise, .. } | Packet::Final { noise, .. }) => noise.to_vec(),
        _ => Vec::new(),
    }
}

fn envelopes(c: &mut Criterion) {
    let id = Identity::generate(&mut OsRng);
    let payload = vec![0u8; 300];
    let env = Envelope::seal(&id, &draft(&payload)).unwrap();
    c.bench_function("envelope seal (300 B payload)", |b| b.iter(|| Envelope::seal(&id, &draft(black_box(&payload)))));
    c.bench_function("envelope decode+verify (300 B payload)", |b| {
        b.iter(|| Envelope::decode(black_box(env.bytes()), NOW))
    });
    let bob = Identity::generate(&mut OsRng);
    let bob_card = card(&bob);
    let ct = e2e::seal(&mut OsRng, &bob_card, &[1; 32], &[2; 16], 1, &[b'x'; 200]);
    c.bench_function("e2e seal, X25519+ML-KEM-768 (200 B)", |b| {
        b.iter(|| e2e::seal(&mut OsRng, &bob_card, &[1; 32], &[2; 16], 1, black_box(&[b'x'; 200])))
    });
    c.bench_function("e2e open, X25519+ML-KEM-768 (200 B)", |b| {
        b.iter(|| e2e::open(&bob, &[1; 32], &[2; 16], black_box(&ct)))
    });
    // A confirmed session (protocol.md 7.2.1): what every later message costs.
    let mut session = e2e::start_session(&mut OsRng, &bob_card, NOW).unwrap();
    let first = e2e::seal_in(&mut session, &[1; 32], &[2; 16], 1, b"start", NOW + 3600).0;
    let mut book = meshpost_proto::session::Inbound::default();
    let alice = meshpost_proto::identity::NodeId([1; 16]);
    e2e::open_any(&bob, &mut book, alice, &[1; 32], &[2; 16], &first, NOW).unwrap();
    session.confirmed = true;
    c.bench_function("e2e session seal, suite 4 (200 B)", |b| {
        b.iter(|| e2e::seal_in(&mut session, &[1; 32], &[2; 16], 1, black_box(&[b'x'; 200]), NOW + 3600))
    });
    // A second session, so the open starts where its book is.
    let mut session = e2e::start_session(&mut OsRng, &bob_card, NOW).unwrap();
    let first = e2e::seal_in(&mut session, &[1; 32], &[2; 16], 1, b"start", NOW + 3600).0;
    e2e::open_any(&bob, &mut book, alice, &[1; 32], &[2; 16], &first, NOW).unwrap();
    session.confirmed = true;
    c.bench_function("e2e session open, suite 4, next counter (200 B)", |b| {
        b.iter_batched(
            || e2e::seal_in(&mut session, &[1; 32], &[2; 16], 1, &[b'x'; 200], NOW + 3600).0,
            |p| e2e::open_any(&bob, &mut book, alice, &[1; 32], &[2; 16], black_box(&p), NOW).unwrap(),
            BatchSize::SmallInput,
        )
    });
}

/// One transport datagram of a 400-byte frame (about what a stored 200-byte
/// message takes) sealed by one side and opened by the other: the link's
/// ChaCha20-Poly1305 both ways, which a relay pays for each envelope.
fn link_datagram(c: &mut Criterion) {
    let keys = |send: u8, recv: u8, initiator| SessionKeys {
        send: [send; 32].into(),
        recv: [recv; 32].into(),
        remote_ed: [0; 32],
        local_idx: u32::from(send),
        remote_idx: u32::from(recv),
        initiator,
    };
    let mut a = Session::new(keys(1, 2, true), 0);
    let mut b = Session::new(keys(2, 1, false), 0);
    let frame = [7u8; 400];
    c.bench_function("link datagram seal + open (400 B frame)", |bch| {
        bch.iter(|| {
            let d = a.seal(black_box(&frame)).unwrap();
            let Ok(Packet::Data { counter, header, ciphertext, .. }) = Packet::parse(&d) else { panic!() };
            b.open(counter, header, ciphertext).unwrap()
        })
    });
}

fn handshake(c: &mut Criterion) {
    let (a, b) = (Identity::generate(&mut OsRng), Identity::generate(&mut OsRng));
    c.bench_function("hybrid handshake, both sides", |bch| {
        bch.iter(|| {
            let (init, d1) = Initiator::start(&a, &mut NodeRng::from_seed([1; 32]), 1).unwrap();
            let (resp, d2) = Responder::respond(&b, &mut NodeRng::from_seed([2; 32]), 2, 1, &noise(&d1)).unwrap();
            let (_, d3) = init.finish(&a, 2, &noise(&d2)).unwrap();
            resp.finish(&noise(&d3)).unwrap()
        })
    });
}

fn store(c: &mut Criterion) {
    let id = Identity::generate(&mut OsRng);
    let envs: Vec<Envelope> = (0..4096u32)
        .map(|i| {
            let p = i.to_be_bytes();
            Envelope::seal(&id, &draft(&p)).unwrap()
        })
        .collect();
    let limits = StoreLimits {
        max_bytes: 1 << 30,
        max_count: 2048,
        max_bytes_per_origin: 1 << 30,
        max_bytes_per_recipient: 1 << 30,
        ..Default::default()
    };
    c.bench_function("store: admit 4096 into a 2048-slot store (evicting)", |b| {
        b.iter(|| {
            let mut s = Store::new(limits);
            for e in &envs {
                let _ = s.insert(e.clone(), false, NOW);
            }
            s.len()
        })
    });
}

/// A relay between two linked nodes: how many direct envelopes per second
/// it takes in, verifies, stores and passes on, through the Node API.
fn relay(c: &mut Criterion) {
    let addr = |i: u8| SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, i)), 4849);
    let t0 = NOW * 1000;
    // Rate limits off: this measures the work per envelope, not the limiter.
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
    let (mut a, mut r, mut z) = (mk("a"), mk("r"), mk("z"));
    a.add_peer(PeerSpec { addr: addr(2), pin: None, federation: None }, Timestamp::from(t0));
    z.add_peer(PeerSpec { addr: addr(2), pin: None, federation: None }, Timestamp::from(t0));
    // Wire a-r-z until quiet.
    /// Returns how many messages were delivered to an inbox.
    fn pump(nodes: &mut [&mut Node; 3], now: u64, addr: &dyn Fn(u8) -> SocketAddr) -> usize {
        let mut delivered = 0;
        for _ in 0..200 {
            let mut any = false;
            for i in 0..3 {
                while let Some(act) = nodes[i].poll_action() {
                    match act {
                        Action::Transmit { to, data } => {
                            any = true;
                            let j = (0..3).find(|&j| addr(j as u8 + 1) == to);
                            if let Some(j) = j {
                                nodes[j].handle_datagram(Timestamp::from(now), addr(i as u8 + 1), &data);
                            }
                        }
                        Action::Deliver(d) => {
                            any = true;
                            delivered += 1;
                            nodes[i].persisted(d.id);
                        }
                        Action::Persist { id, .. } => {
                            any = true;
                            nodes[i].persisted(id);
                        }
                        _ => {}
                    }
                }
            }
            if !any {
                break;
            }
        }
        delivered
    }
    let mut now = t0;
    for _ in 0..20 {
        now += 500;
        for n in [&mut a, &mut r, &mut z] {
            n.handle_timeout(Timestamp::from(now));
        }
        pump(&mut [&mut a, &mut r, &mut z], now, &addr);
    }
    let zid = z.node_id();
    let rid = r.node_id();
    let nodes = std::cell::RefCell::new((a, r, z, now));
    let mut group = c.benchmark_group("relay");
    group.sample_size(10);
    group.bench_function("200 envelopes a -> relay -> z (link crypto, verify, store, forward, deliver)", |b| {
        b.iter_batched(
            // Fresh envelopes each time (not timed), so none is a duplicate.
            || {
                let mut g = nodes.borrow_mut();
                let (a, _, _, now) = &mut *g;
                let envs: Vec<Vec<u8>> = (0..200)
                    .map(|i| {
                        let id =
                            a.send_direct(Timestamp::from(*now), zid, format!("m{i}").as_bytes(), None, None).unwrap();
                        let bytes = a.store().get(&id).unwrap().bytes().expect("in memory").to_vec();
                        a.persist_failed(id);
                        bytes
                    })
                    .collect();
                while a.poll_action().is_some() {}
                envs
            },
            |envs| {
                let mut g = nodes.borrow_mut();
                let (a, r, z, now) = &mut *g;
                for e in &envs {
                    a.send_raw_envelope(rid, e);
                }
                *now += 1;
                let mut delivered = pump(&mut [a, r, z], *now, &addr);
                // The relay forwards a window of envelopes at a time and the
                // next when the window is confirmed or its timer runs out.
                for _ in 0..200 {
                    if delivered == 200 {
                        break;
                    }
                    *now += 20;
                    for n in [&mut *a, &mut *r, &mut *z] {
                        n.handle_timeout(Timestamp::from(*now));
                    }
                    delivered += pump(&mut [a, r, z], *now, &addr);
                }
                assert_eq!(delivered, 200, "every envelope crossed the relay");
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(benches, envelopes, link_datagram, handshake, store, relay);
criterion_main!(benches);
