//! Ten communities, each its own domain and mesh, joined by gateways that
//! each federate with the nine others (topo.rs `federated`): messages
//! between any two nodes, most of them across two gateways, all arrive.
//! With a card listing at most 8 gateway domains, the ninth community was
//! unreachable from every other and this test missed about one in ten.

use meshpost_sim::engine::{Params, Sim};
use meshpost_sim::topo;

#[test]
fn messages_between_ten_federated_communities_all_arrive() {
    let r = Sim::new(Params {
        topology: topo::Kind::Federated,
        nodes: 60,
        degree: 4.0,
        minutes: 14,
        warmup_minutes: 3,
        seed: 13,
        load_per_minute: 30.0,
        loss: 0.02,
        delay_ms: 20,
        ..Params::default()
    })
    .run();
    assert!(r.sent >= 250, "{} sent", r.sent);
    assert_eq!(r.missed, 0, "{} of {} delivered", r.delivered, r.sent);
    // Each node knows every node's card, its own community's and the others'.
    assert!(r.cards_avg >= 59.0 - 1e-9, "{:.1} cards per node", r.cards_avg);
}
