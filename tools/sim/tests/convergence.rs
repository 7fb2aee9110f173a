//! A link of a multi-hop mesh fails: every route leads home again within
//! three announce intervals (issue 13), measured by following next hops,
//! also when beacons had backed off to sixteen times that interval.

use meshpost_proto::node::Config;
use meshpost_sim::engine::{Params, Sim};
use meshpost_sim::topo;

#[test]
fn routes_lead_home_again_within_three_announce_intervals_after_a_link_fails() {
    let interval = 10_000;
    let r = Sim::new(Params {
        topology: topo::Kind::Mesh,
        nodes: 12,
        degree: 4.0,
        minutes: 6,
        warmup_minutes: 5,
        seed: 5,
        delay_ms: 10,
        config: Config {
            announce_interval_ms: interval,
            // By the cut (minute 3) beacons come every 80 s.
            announce_max_interval_ms: 16 * interval,
            route_timeout_ms: 3 * 16 * interval,
            keepalive_ms: 2_000,
            dead_after_ms: 6_000,
            ..Config::default()
        },
        cut_minute: Some(3),
        ..Params::default()
    })
    .run();
    assert!(r.routes_settled_before_cut, "routes had not settled before the cut");
    let took = r.convergence_ms.expect("routes never settled after the cut");
    assert!(took <= 3 * interval, "routes settled {took} ms after the cut");
}
