//! A channel copy that reached a relay with its hops spent while the
//! origin was beyond a partition is lifted once a route to the origin
//! appears, and reaches the members behind that relay. Follows
//! proto/src/node/receive.rs (`lift_spent_channel_copies`); the
//! simulator's mesh of 1000 under churn and a partition missed 7
//! node-messages this way (docs/scale.md). It does not cover direct
//! messages, whose copies are raised by better copies (mesh_sim.rs).
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

use meshpost_proto::channel::ChannelKey;
use meshpost_proto::time::Timestamp;
use rand_core::OsRng;

mod common;
use common::sim::Sim;

#[test]
fn a_spent_channel_copy_is_lifted_when_a_route_to_its_origin_appears_and_reaches_the_members_behind() {
    // A line: origin O (0), relays R1 (1) and R2 (2), member M (3).
    let (o, r1, r2, m) = (0, 1, 2, 3);
    let mut s = Sim::new(4, &[(o, r1), (r1, r2), (r2, m)]);
    let key = ChannelKey::generate(&mut OsRng);
    for i in [o, m] {
        s.nodes[i].join_channel(key.clone());
    }
    s.run(20_000);
    // O is cut off, and R2's route to it goes once R1's beacon drops it.
    s.cut(o, r1);
    let oid = s.id(o);
    let t0 = s.now;
    while s.nodes[r2].routes().iter().any(|r| r.dest == oid) {
        assert!(s.now < t0 + 600_000, "R2 still routes to O");
        s.run(1_000);
    }
    // O posts; a copy reaches R2 with one hop left (a detour spent the
    // rest), so R2 stores it with none and may not pass it on.
    let id = s.nodes[o].publish(Timestamp::from(s.now), key.id(), b"across the split").unwrap();
    let mut bytes = s.nodes[o].store().get(&id).unwrap().bytes().expect("in memory").to_vec();
    bytes[1] = 1;
    let r2id = s.id(r2);
    assert!(s.nodes[r1].send_raw_envelope(r2id, &bytes));
    s.run(5_000);
    assert_eq!(s.nodes[r2].store().get(&id).map(|e| e.head.hops_left()), Some(0), "R2 holds it spent");
    assert!(s.channel[m].is_empty(), "M cannot get it yet");
    // The split heals: R2 gets a route to O, lifts its copy within a
    // minute, and M reads the post, once.
    s.connect(o, r1);
    s.run(90_000);
    let got: Vec<&[u8]> = s.channel[m].iter().map(|d| d.body.as_slice()).collect();
    assert_eq!(got, vec![b"across the split".as_slice()]);
    assert!(s.nodes[r2].metrics().envelopes_hops_raised >= 1);
}
