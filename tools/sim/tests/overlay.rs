//! A shared segment (batman-adv) where every node discovers every other:
//! each node dials only its preferred few (`link_target`), the overlay is
//! one connected graph of bounded degree, and the idle cost per node no
//! longer grows with a link to every other node.

use meshpost_proto::node::{Config, WireClass};
use meshpost_sim::engine::{Params, Report, Sim};
use meshpost_sim::topo;

const N: usize = 40;

fn run(link_target: usize) -> Report {
    Sim::new(Params {
        topology: topo::Kind::Segment,
        nodes: N,
        degree: 8.0,
        minutes: 8,
        warmup_minutes: 6,
        seed: 6,
        config: Config { link_target, ..Config::default() },
        ..Params::default()
    })
    .run()
}

#[test]
fn a_segment_of_forty_links_into_one_overlay_of_bounded_degree() {
    let few = run(4);
    // Four dialled, the others accepted from nodes that prefer this one.
    assert!(few.links_avg <= 10.0, "{:.1} links per node", few.links_avg);
    assert!(few.links_avg >= 4.0, "{:.1} links per node", few.links_avg);
    // One connected overlay: every node has a route to every other.
    let full = (N - 1) as f64 - 1e-9;
    assert!(few.routes_avg >= full && few.cards_avg >= full, "{few:?}");
    // Keepalives follow the links: about 150 bytes per link and minute,
    // where a link to each of the 39 others cost 39 times that.
    let keep = few.bytes_per_node_minute[WireClass::Keepalive as usize];
    assert!(keep < 12.0 * 150.0, "keepalives {keep:.0} B/node/min");
}
