//! A mesh split in two halves for three minutes under load, then healed:
//! every message whose ends were up is delivered, messages across the
//! split wait with their senders instead of being copied onto every node.

use meshpost_proto::node::Config;
use meshpost_sim::engine::{Params, Sim};
use meshpost_sim::topo;

#[test]
fn messages_across_a_partition_wait_at_their_sender_and_all_arrive_after_it_heals() {
    let r = Sim::new(Params {
        topology: topo::Kind::Mesh,
        nodes: 20,
        degree: 5.0,
        minutes: 14,
        warmup_minutes: 2,
        seed: 9,
        load_per_minute: 30.0,
        loss: 0.02,
        delay_ms: 20,
        config: Config { sync_interval_ms: 5_000, ..Config::default() },
        mdns_interval_ms: 20_000,
        partition: Some((4, 3)),
        ..Params::default()
    })
    .run();
    assert!(r.sent >= 300, "{} sent", r.sent);
    assert_eq!(r.missed, 0, "{} of {} delivered", r.delivered, r.sent);
    // About half the messages sent during the split crossed it and waited.
    let p99 = r.latencies_ms[r.latencies_ms.len() * 99 / 100];
    assert!(p99 >= 60_000, "p99 {p99} ms: some waited for the heal");
    // Each delivered message was received about once, not by every node.
    assert!(r.data_duplicates_per_delivered < 1.0, "{:.2} duplicates per delivered", r.data_duplicates_per_delivered);
}
