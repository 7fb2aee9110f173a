//! No timer is left in the past: whatever state a link is in, a node that
//! has handled its timeout asks to be woken later, not at once (a caller
//! that obeys `poll_timeout` would otherwise spin).

use super::*;
use crate::federation::Policy;

fn federated(name: &str, domain: &str) -> Node {
    let cfg = Config { name: name.into(), domain: domain.into(), ..Config::default() };
    Node::new(Identity::generate(&mut OsRng), cfg, [name.as_bytes()[0]; 32], Timestamp::from(T0))
}

/// A gateway (A, which knows its neighbour B's card, so it has a card to
/// hand over) and a remote gateway G pinned to each other. Each datagram
/// between A and G is handed over on its own, 2 ms after it was sent, and
/// after every step both must want their next wake-up in the future: the
/// federation link is unconfirmed for a round trip with a backlog of cards
/// to hand over (found by the simulator, where such a link woke its node
/// at the same instant forever).
#[test]
fn a_federation_link_waiting_for_confirmation_does_not_wake_its_node_at_once() {
    let mut p = Pair::new(None);
    p.run(2_000, 100);
    let bid = p.b.node_id();
    assert!(p.a.card(&bid).is_some(), "A knows B's card");
    let (mut a, mut g) = (p.a, federated("g", "ffg"));
    let (ka, kg) = (a.identity.public_key(), g.identity.public_key());
    let mut t = p.now;
    let now = Timestamp::from(t);
    a.add_peer(PeerSpec { addr: addr(3), pin: Some(kg), federation: Some(Policy::new("ffg")) }, now);
    g.add_peer(PeerSpec { addr: addr(1), pin: Some(ka), federation: Some(Policy::new("")) }, now);
    let mut in_flight: VecDeque<(bool, Vec<u8>)> = VecDeque::new();
    for _ in 0..200 {
        for (to_g, n) in [(true, &mut a), (false, &mut g)] {
            n.handle_timeout(Timestamp::from(t));
            for act in take_actions(n) {
                match act {
                    Action::Transmit { to, data } if !to_g || to == addr(3) => in_flight.push_back((to_g, data)),
                    Action::Persist { id, .. } => n.persisted(id),
                    _ => {}
                }
            }
            let next = n.poll_timeout().expect("a node always has a timer");
            assert!(next > t, "woken again at once ({next} <= {t}) with links {:?}", n.federation_links());
        }
        t += 2;
        if let Some((to_g, data)) = in_flight.pop_front() {
            let (n, from) = if to_g { (&mut g, addr(1)) } else { (&mut a, addr(3)) };
            n.handle_datagram(Timestamp::from(t), from, &data);
        }
    }
    assert_eq!(a.federation_links().len(), 1, "the link came up");
    assert!(g.card(&bid).is_some(), "G got A's community's cards");
}
