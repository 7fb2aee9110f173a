//! Route searches and broadcast trees in a large graph: a remote change is
//! taken in at most once per hold, a change of the node's own links at once.

use super::*;
use crate::card::Card;

/// A made-up node `i` of a chain the test writes into B's card book.
fn chain_card(i: usize, neighbours: Vec<NodeId>, seq: u64) -> Card {
    let mut ed_pk = [0u8; 32];
    ed_pk[..8].copy_from_slice(&(i as u64 + 1).to_le_bytes());
    Card {
        ed_pk,
        x25519: [0; 32],
        kem_ek: None,
        name: format!("c{i}"),
        domain: String::new(),
        seq,
        neighbours,
        gateway_for: vec![],
    }
}

fn id_of(i: usize) -> NodeId {
    chain_card(i, vec![], 0).node_id()
}

/// Puts `card` into B's book as if a newer card had arrived.
fn learn(b: &mut Node, card: Card, now: u64) {
    let id = EnvelopeId(card.node_id().0);
    b.cards.learn(card, (id, &[][..]), now, |_| true);
    b.routes_changed();
}

/// Nodes in the chain B's book gets behind A.
const LEN: usize = 150;

/// Writes into B's book A - c0 - c1 - ... - c149 (A's card now lists c0).
fn chain_behind_a(p: &mut Pair, now: u64) {
    let (aid, bid) = (p.a.node_id(), p.b.node_id());
    let mut a_card = p.b.card(&aid).expect("A's card").clone();
    a_card.seq += 1_000_000;
    a_card.neighbours = vec![bid, id_of(0)];
    learn(&mut p.b, a_card, now);
    for i in 0..LEN {
        let mut n = vec![if i == 0 { aid } else { id_of(i - 1) }];
        if i + 1 < LEN {
            n.push(id_of(i + 1));
        }
        learn(&mut p.b, chain_card(i, n, 1), now);
    }
}

#[test]
fn in_a_graph_of_hundreds_a_remote_change_is_searched_once_per_hold_and_an_own_link_change_at_once() {
    let mut p = Pair::new(None);
    p.run(3_000, 100);
    let aid = p.a.node_id();
    assert!(p.b.best_route(&aid).is_some(), "B routes to A");
    // Behind A, a chain of 150 nodes: A - c0 - c1 - ... - c149.
    let now = p.now;
    chain_behind_a(&mut p, now);
    // Below 100 nodes nothing is held: the chain is searched at once.
    let far = id_of(LEN - 1);
    assert_eq!(p.b.best_route(&far).map(|r| (r.via, r.hops)), Some((aid, LEN as u8 + 1)));
    let searches = p.b.route_searches();
    // c100 loses its link to c101: with 150 nodes the table is held for a
    // second, however often it is asked.
    learn(&mut p.b, chain_card(100, vec![id_of(99)], 2), now);
    for _ in 0..100 {
        assert!(p.b.best_route(&far).is_some(), "held: the old route stays for the hold");
    }
    assert_eq!(p.b.route_searches(), searches, "no search within the hold");
    p.b.handle_timeout(Timestamp::from(now + 1_000));
    assert!(p.b.best_route(&far).is_none(), "after the hold the cut is seen");
    assert!(p.b.best_route(&id_of(100)).is_some());
    assert_eq!(p.b.route_searches(), searches + 1, "one search for the change and a hundred look-ups");
    // Another remote change within the next second is held again...
    learn(&mut p.b, chain_card(50, vec![id_of(49)], 2), now + 1_000);
    assert!(p.b.best_route(&id_of(60)).is_some());
    // ...but a change of B's own links is not (a route must not lead over
    // a link that is gone): the search runs at once, and sees c50's cut.
    p.b.links_changed();
    assert!(p.b.best_route(&id_of(60)).is_none(), "own link change searched at once");
    assert_eq!(p.b.route_searches(), searches + 2);
}

#[test]
fn the_broadcast_trees_follow_a_remote_change_after_their_hold_and_an_own_link_change_at_once() {
    let mut p = Pair::new(None);
    p.run(3_000, 100);
    let now = p.now;
    chain_behind_a(&mut p, now);
    let far = id_of(LEN - 1);
    p.b.handle_timeout(Timestamp::from(now));
    assert!(!p.b.beyond_trees(far), "the trees place the end of the chain");
    // The chain is cut at c100: with 152 nodes in the graph the trees are
    // computed again after 2 s, not at every beacon.
    learn(&mut p.b, chain_card(100, vec![id_of(99)], 2), now);
    p.b.handle_timeout(Timestamp::from(now + 1_999));
    assert!(!p.b.beyond_trees(far), "within the hold the old trees stay");
    p.b.handle_timeout(Timestamp::from(now + 2_000));
    assert!(p.b.beyond_trees(far), "after the hold c149 is beyond the cut");
    // The cut heals, and within the next hold B's own link changes: the
    // trees are computed at once.
    learn(&mut p.b, chain_card(100, vec![id_of(99), id_of(101)], 3), now + 2_000);
    assert!(p.b.beyond_trees(far), "held");
    p.b.links_changed();
    assert!(!p.b.beyond_trees(far), "an own link change is not held");
}
