//! Beacons back off while nothing changes (Trickle's doubling interval),
//! and routes stay whole without them: they follow from the neighbour
//! lists beacons carried (routing.rs), not from beacons passing lately.

use meshpost_proto::node::Config;
use meshpost_sim::engine::{Params, Report, Sim};
use meshpost_sim::topo;

const N: usize = 12;
const MIN_MS: u64 = 10_000;
const MAX_MS: u64 = 160_000;

fn run(minutes: u64, max_ms: u64) -> Report {
    Sim::new(Params {
        topology: topo::Kind::Mesh,
        nodes: N,
        degree: 4.0,
        minutes,
        warmup_minutes: minutes - 1,
        seed: 4,
        delay_ms: 10,
        config: Config {
            announce_interval_ms: MIN_MS,
            announce_max_interval_ms: max_ms,
            route_timeout_ms: 3 * max_ms,
            ..Config::default()
        },
        ..Params::default()
    })
    .run()
}

fn accepted(r: &Report) -> u64 {
    r.counters.iter().find(|(n, _)| *n == "announces_in").map_or(0, |(_, v)| *v)
}

#[test]
fn a_quiet_mesh_backs_off_to_the_longest_interval_and_keeps_every_route() {
    // The same seed: the longer run is the shorter one and 20 minutes more.
    let (short, long) = (run(10, MAX_MS), run(30, MAX_MS));
    let per_pair = (accepted(&long) - accepted(&short)) as f64 / (N * (N - 1)) as f64;
    // 20 minutes at 160 s: 7.5 beacons of each node at each other node
    // (120 at the shortest interval); a link's rekey may reset a few.
    assert!(per_pair <= 10.0, "{per_pair:.1} beacons per origin and node in 20 quiet minutes");
    let full = (N - 1) as f64 - 1e-9;
    assert!(long.routes_avg >= full && long.cards_avg >= full, "{long:?}");
    // Against a fixed interval in the same 20 minutes.
    let (short, long) = (run(10, MIN_MS), run(30, MIN_MS));
    let fixed = (accepted(&long) - accepted(&short)) as f64 / (N * (N - 1)) as f64;
    assert!(fixed >= 100.0, "{fixed:.1} beacons per pair at a fixed interval");
}
