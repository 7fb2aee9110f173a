//! Hop limits of stored copies: a copy that spent its hops on a detour is
//! replaced by a better one, and asked for when a peer offers it.

use super::*;
use crate::link::frame::{IdList, id_frames};

/// An envelope from a third node to a node nobody knows (8 hops signed).
fn stranger_envelope(now_ms: u64) -> Envelope {
    let origin = Identity::from_seed(&[9; 32]);
    let draft = Draft {
        kind: Kind::Direct,
        max_hops: 8,
        created: now_ms / 1000,
        ttl: 3600,
        dest: Destination { id: [7; 16], domain: String::new() },
        payload: b"far away",
    };
    Envelope::seal(&origin, &draft).unwrap()
}

fn with_hops(env: &Envelope, hops: u8) -> Vec<u8> {
    let mut b = env.bytes().to_vec();
    b[1] = hops;
    b
}

#[test]
fn a_copy_with_more_hops_left_replaces_a_spent_one_and_is_asked_for() {
    let mut p = Pair::new(None);
    p.run(2_000, 100);
    let bid = p.b.node_id();
    let env = stranger_envelope(p.now);
    let id = env.id();
    // B takes the copy with its last hop: stored, but it can go nowhere.
    assert!(p.a.send_raw_envelope(bid, &with_hops(&env, 1)));
    p.run(0, 1);
    assert_eq!(p.b.store().get(&id).map(|e| e.env.hops_left()), Some(0));
    // A offers it: B, whose copy is spent, asks for A's instead of saying
    // it has it.
    for f in id_frames(IdList::Offer, &[id]) {
        assert!(p.a.send_raw_frame(bid, &f));
    }
    p.run(0, 1);
    assert!(p.b.asked.get(&id).is_some(), "B asked for the offered copy");
    // A copy with six hops left replaces it (five after B's hop)...
    assert!(p.a.send_raw_envelope(bid, &with_hops(&env, 6)));
    p.run(0, 1);
    assert_eq!(p.b.store().get(&id).map(|e| e.env.hops_left()), Some(5));
    assert_eq!(p.b.metrics().envelopes_hops_raised, 1);
    // ...and one with fewer hops does not.
    assert!(p.a.send_raw_envelope(bid, &with_hops(&env, 3)));
    p.run(0, 1);
    assert_eq!(p.b.store().get(&id).map(|e| e.env.hops_left()), Some(5));
    assert_eq!(p.b.metrics().envelopes_hops_raised, 1);
    // Offered again, B now says it has it: nothing is fetched twice.
    p.b.asked = Default::default();
    for f in id_frames(IdList::Offer, &[id]) {
        assert!(p.a.send_raw_frame(bid, &f));
    }
    p.run(0, 1);
    assert!(p.b.asked.get(&id).is_none(), "a copy that can go on is not asked for again");
}

/// A and B on one channel; A posts while B is away, so A's own copy is
/// lost on the way to B. Returns the pair and A's stored post.
fn post_lost_on_the_way() -> (Pair, Envelope) {
    let mut p = Pair::new(None);
    let key = crate::channel::ChannelKey::from_bytes([5; 32]);
    let ch = p.a.join_channel(key.clone());
    p.b.join_channel(key);
    p.run(5_000, 100);
    p.b_up = false;
    let id = p.a.publish(Timestamp::from(p.now), ch, b"post").unwrap();
    p.run(10, 10);
    p.b_up = true;
    let env = p.a.store().get(&id).expect("A keeps its post").env.clone();
    (p, env)
}

#[test]
fn a_channel_copy_that_came_the_long_way_round_gets_the_hops_of_the_shortest_path() {
    let (mut p, env) = post_lost_on_the_way();
    let (bid, id) = (p.b.node_id(), env.id());
    // A copy that spent every hop on a detour reaches B: B is one hop from
    // the origin, so it keeps the copy with the hops a copy by the
    // shortest path leaves, and passes it on. Dropped before, as spent,
    // the nodes beyond B never got the post.
    assert!(p.a.send_raw_envelope(bid, &with_hops(&env, 0)));
    p.run(0, 1);
    assert_eq!(p.b.store().get(&id).map(|e| e.env.hops_left()), Some(env.max_hops() - 1));
    assert_eq!(p.b.metrics().channel_delivered, 1);
}

#[test]
fn a_channel_copy_from_another_community_keeps_the_hops_it_came_with() {
    let (mut p, env) = post_lost_on_the_way();
    let (bid, id) = (p.b.node_id(), env.id());
    // B now belongs to another community than A's card names: A's copies
    // keep the limit a gateway gave them, so a spent one is not lifted.
    p.b.cfg.domain = "elsewhere".into();
    assert!(p.a.send_raw_envelope(bid, &with_hops(&env, 0)));
    p.run(0, 1);
    assert_ne!(p.b.store().get(&id).map(|e| e.env.hops_left()), Some(env.max_hops() - 1));
    assert!(p.b.store().get(&id).is_none_or(|e| e.env.hops_left() == 0), "not passed on");
}
