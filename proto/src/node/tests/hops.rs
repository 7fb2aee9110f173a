//! Hop limits of stored copies: a copy that spent its hops on a detour is
//! replaced by a better one, asked for when a peer offers it, and only a
//! better one comes.

use super::*;
use crate::link::frame::{IdList, id_frames, want_better_frames};

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
    assert_eq!(p.b.store().get(&id).map(|e| e.head.hops_left()), Some(0));
    // A offers it: B, whose copy is spent, asks for A's (a want-better,
    // the next test) instead of saying it has it. (What A knew B holds is
    // forgotten first: B offered its new copy to A.)
    let offer = |p: &mut Pair| {
        p.a.links.get_mut(&bid).expect("linked").peer_has.clear();
        let out = p.b.metrics().datagrams_out;
        for f in id_frames(IdList::Offer, &[id]) {
            assert!(p.a.send_raw_frame(bid, &f));
        }
        p.run(0, 1);
        (p.b.metrics().datagrams_out - out, p.a.links.get(&bid).is_some_and(|l| l.peer_has.contains(&id)))
    };
    assert_eq!(offer(&mut p), (1, false), "B asked for the offered copy");
    // A copy with six hops left replaces it (five after B's hop)...
    assert!(p.a.send_raw_envelope(bid, &with_hops(&env, 6)));
    p.run(0, 1);
    assert_eq!(p.b.store().get(&id).map(|e| e.head.hops_left()), Some(5));
    assert_eq!(p.b.metrics().envelopes_hops_raised, 1);
    // ...and one with fewer hops does not.
    assert!(p.a.send_raw_envelope(bid, &with_hops(&env, 3)));
    p.run(0, 1);
    assert_eq!(p.b.store().get(&id).map(|e| e.head.hops_left()), Some(5));
    assert_eq!(p.b.metrics().envelopes_hops_raised, 1);
    // Offered again, B now says it has it: nothing is fetched twice.
    assert_eq!(offer(&mut p), (1, true), "a copy that can go on is not asked for again");
}

#[test]
fn a_spent_copy_asks_only_for_a_better_one_and_gets_none_that_is_not() {
    let mut p = Pair::new(None);
    p.run(2_000, 100);
    let (aid, bid) = (p.a.node_id(), p.b.node_id());
    let env = stranger_envelope(p.now);
    let id = env.id();
    // B's copy is spent; A's has one hop left, so it would reach B with
    // none: no better than B's.
    assert!(p.a.send_raw_envelope(bid, &with_hops(&env, 1)));
    assert!(p.b.send_raw_envelope(aid, &with_hops(&env, 2)));
    p.run(0, 1);
    assert_eq!(p.b.store().get(&id).map(|e| e.head.hops_left()), Some(0));
    assert_eq!(p.a.store().get(&id).map(|e| e.head.hops_left()), Some(1));
    let offer = |p: &mut Pair| {
        for f in id_frames(IdList::Offer, &[id]) {
            assert!(p.a.send_raw_frame(bid, &f));
        }
        p.run(0, 1);
    };
    // A offers it: B asks for a better copy, and A, which has none, sends
    // nothing (before, B asked for A's copy and got a duplicate).
    let dup = p.b.metrics().envelopes_duplicate;
    offer(&mut p);
    assert_eq!(p.b.metrics().envelopes_duplicate, dup, "no copy came");
    assert_eq!(p.b.store().get(&id).map(|e| e.head.hops_left()), Some(0));
    // Once A holds a copy with five hops left, the same offer and ask
    // bring it: B's copy is raised to four.
    assert!(p.b.send_raw_envelope(aid, &with_hops(&env, 6)));
    p.run(0, 1);
    assert_eq!(p.a.store().get(&id).map(|e| e.head.hops_left()), Some(5));
    offer(&mut p);
    assert_eq!(p.b.store().get(&id).map(|e| e.head.hops_left()), Some(4));
    assert_eq!(p.b.metrics().envelopes_hops_raised, 1);
    // Offered again, nothing comes: B's copy can go on now.
    let dup = p.b.metrics().envelopes_duplicate;
    offer(&mut p);
    assert_eq!(p.b.metrics().envelopes_duplicate, dup);
    // A want-better for a hop count A's copy does not beat is not
    // answered either, whoever sends it.
    for f in want_better_frames(4, &[id]) {
        assert!(p.b.send_raw_frame(aid, &f));
    }
    p.run(0, 1);
    assert_eq!(p.b.metrics().envelopes_duplicate, dup, "4 after the hop is not more than 4");
    for f in want_better_frames(3, &[id]) {
        assert!(p.b.send_raw_frame(aid, &f));
    }
    p.run(0, 1);
    assert_eq!(p.b.metrics().envelopes_duplicate, dup + 1, "4 is more than 3: sent");
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
    let env = p.a.store().get(&id).expect("A keeps its post").envelope().expect("in memory");
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
    assert_eq!(p.b.store().get(&id).map(|e| e.head.hops_left()), Some(env.max_hops() - 1));
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
    assert_ne!(p.b.store().get(&id).map(|e| e.head.hops_left()), Some(env.max_hops() - 1));
    assert!(p.b.store().get(&id).is_none_or(|e| e.head.hops_left() == 0), "not passed on");
}
