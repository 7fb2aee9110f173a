//! A start sent again across a relay: the recipient's request for the
//! start (a refusal with reason 4) passes a relay that holds copies of the
//! waiting messages, and the relay must keep them (the request is not a
//! final refusal); once the origin answers, every message arrives once.
//! Follows proto/src/node/restate.rs and acks.rs; does not cover loss or
//! the daemon's persistence (tests/durability.rs does).
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

use meshpost_proto::envelope::{EnvelopeId, Kind};
use meshpost_proto::identity::Identity;
use meshpost_proto::node::Node;
use meshpost_proto::time::Timestamp;

mod common;
use common::sim::Sim;

/// Node `i` starts again with its identity, configuration and delivered
/// ids, and without its end-to-end sessions (a lost sessions file).
fn restart_without_sessions(s: &mut Sim, i: usize) {
    let id = Identity::from_file_bytes(&s.nodes[i].identity().to_file_bytes()).expect("own identity");
    let cfg = s.nodes[i].config().clone();
    let mut n = Node::new(id, cfg, [77; 32], Timestamp::from(s.now));
    for d in &s.delivered[i] {
        n.restore_delivered(d.id, d.from, d.expires);
    }
    s.nodes[i] = n;
}

fn holds(s: &Sim, i: usize, id: &EnvelopeId) -> bool {
    s.nodes[i].store().get(id).is_some_and(|e| e.head.kind() == Kind::Direct)
}

#[test]
fn a_relay_keeps_its_copies_when_a_request_for_a_start_passes_and_all_arrive_once_answered() {
    let (a, r, z) = (0, 1, 2);
    let mut s = Sim::new(3, &[(a, r), (r, z)]);
    s.run(20_000);
    let first = s.send(a, z, "confirms the session", None);
    s.run(5_000);
    assert_eq!(s.delivered[z].iter().map(|d| d.id).collect::<Vec<_>>(), vec![first]);

    // Z goes away; three messages of the confirmed session wait at R.
    s.cut(r, z);
    let backlog: Vec<EnvelopeId> = (0..3).map(|i| s.send(a, z, &format!("waiting {i}"), None)).collect();
    s.run(3_000);
    assert!(backlog.iter().all(|id| holds(&s, r, id)), "R holds the backlog");

    // Z comes back without its sessions while A is out of R's reach: Z
    // asks for the start, the request reaches R and stops there.
    restart_without_sessions(&mut s, z);
    s.cut(a, r);
    s.connect(r, z);
    s.run(10_000);
    assert!(s.nodes[z].metrics().e2e_starts_asked >= 1, "Z asked for the start");
    assert_eq!(s.delivered[z].len(), 1, "nothing of the backlog opened yet");
    for id in &backlog {
        assert!(holds(&s, r, id), "R still holds {id} after the request passed");
    }

    // A is back: it sends the start again once, Z opens all three, once.
    s.connect(a, r);
    s.run(20_000);
    for id in &backlog {
        assert_eq!(s.delivered[z].iter().filter(|d| d.id == *id).count(), 1, "{id} arrived once");
        assert!(!holds(&s, r, id), "R freed {id} on Z's acknowledgement");
    }
    assert_eq!(s.nodes[a].metrics().e2e_sessions_restated, 1);
}
