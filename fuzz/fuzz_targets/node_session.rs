//! The node state machine past the handshake: two seeded nodes link in
//! memory, then the fuzzer drives what the linked peer sends — raw frames
//! sealed on the live session (sync offers, wants, haves, fragments),
//! raw envelope bytes, and envelopes of every kind that are validly signed
//! by the peer or by other origins — with timer ticks in between. Every
//! write is confirmed, or failed when the fuzzer says so, as a shell would.
//! So frame parsing, reassembly, sync, acknowledgements, announces and
//! envelope admission are all reached through the real `Node`.
#![no_main]
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use libfuzzer_sys::fuzz_target;
use meshpost_proto::envelope::{Destination, Draft, Envelope, Kind};
use meshpost_proto::identity::Identity;
use meshpost_proto::node::{Action, Config, Node, PeerSpec};
use meshpost_proto::time::Timestamp;

const T0: u64 = 1_800_000_000_000;

fn addr(i: u8) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, i)), 4849)
}

/// Carries datagrams both ways and confirms writes until quiet; a write of
/// the victim fails when `fail` says so (disk full, inbox full).
fn pump(a: &mut Node, b: &mut Node, now: u64, fail: &mut impl FnMut() -> bool) {
    for _ in 0..64 {
        let mut moved = false;
        while let Some(act) = a.poll_action() {
            moved = true;
            match act {
                Action::Transmit { data, .. } => b.handle_datagram(Timestamp::from(now), addr(1), &data),
                Action::Persist { id, .. } if fail() => a.persist_failed(id),
                Action::Persist { id, .. } => a.persisted(id),
                Action::Deliver(d) if fail() => a.persist_failed(d.id),
                Action::Deliver(d) => a.persisted(d.id),
                _ => {}
            }
        }
        while let Some(act) = b.poll_action() {
            moved = true;
            match act {
                Action::Transmit { data, .. } => a.handle_datagram(Timestamp::from(now), addr(2), &data),
                Action::Persist { id, .. } => b.persisted(id),
                Action::Deliver(d) => b.persisted(d.id),
                _ => {}
            }
        }
        if !moved {
            return;
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let cfg = Config { name: "victim".into(), ..Config::default() };
    let mut a = Node::new(Identity::from_seed(&[1; 32]), cfg, [11; 32], Timestamp::from(T0));
    let mut b = Node::new(Identity::from_seed(&[2; 32]), Config { name: "peer".into(), ..Config::default() }, [12; 32], Timestamp::from(T0));
    b.add_peer(PeerSpec { addr: addr(1), pin: None, federation: None }, Timestamp::from(T0));
    let mut now = T0;
    let mut never = || false;
    for _ in 0..10 {
        a.handle_timeout(Timestamp::from(now));
        b.handle_timeout(Timestamp::from(now));
        pump(&mut a, &mut b, now, &mut never);
        now += 200;
    }
    let (aid, bid) = (a.node_id(), b.node_id());
    assert!(a.is_linked(&bid) && b.is_linked(&aid), "the seeded pair links");
    // Origins of signed envelopes: a stranger, and the peer itself (made
    // once: deriving keys is most of the cost of an input).
    static OTHERS: std::sync::OnceLock<[Identity; 2]> = std::sync::OnceLock::new();
    let others = OTHERS.get_or_init(|| [Identity::from_seed(&[3; 32]), Identity::from_seed(&[2; 32])]);

    let mut rest = data;
    let mut fail_bits = 0u8;
    while let Some((&op, tail)) = rest.split_first() {
        let len = tail.first().map_or(0, |l| *l as usize * 4).min(tail.len().saturating_sub(1));
        let body = tail.get(1..1 + len).unwrap_or(&[]);
        rest = tail.get(1 + len..).unwrap_or(&[]);
        match op % 6 {
            0 => {
                b.send_raw_frame(aid, body);
            }
            1 => {
                b.send_raw_envelope(aid, body);
            }
            2 | 3 => {
                // A validly signed envelope: kind, hops, ttl, destination
                // and payload come from the input.
                let h = |i: usize| body.get(i).copied().unwrap_or(0);
                let kind = match h(0) % 4 {
                    0 => Kind::Direct,
                    1 => Kind::Channel,
                    2 => Kind::Announce,
                    _ => Kind::Ack,
                };
                let mut dest = [0u8; 16];
                if h(1) & 1 == 0 {
                    dest = aid.0;
                } else {
                    dest[..body.len().min(16)].copy_from_slice(&body[..body.len().min(16)]);
                }
                let draft = Draft {
                    kind,
                    max_hops: h(2) % 10,
                    created: now / 1000 - u64::from(h(3)),
                    ttl: 1 + u32::from(h(4)) * 3600,
                    dest: Destination { id: dest, domain: String::new() },
                    payload: body.get(5..).unwrap_or(&[]),
                };
                if let Ok(env) = Envelope::seal(&others[usize::from(op & 1)], &draft) {
                    b.send_raw_envelope(aid, env.bytes());
                }
            }
            4 => {
                now += u64::from(body.first().copied().unwrap_or(1)) * 250;
                a.handle_timeout(Timestamp::from(now));
                b.handle_timeout(Timestamp::from(now));
            }
            _ => fail_bits = body.first().copied().unwrap_or(0),
        }
        let mut bit = 0u8;
        let mut fail = || {
            bit = bit.wrapping_add(1) % 8;
            fail_bits >> bit & 1 == 1
        };
        pump(&mut a, &mut b, now, &mut fail);
    }
});
