//! Channel floods follow the broadcast tree (proto flood.rs): every node
//! that joined gets each message, at about one transmission per node, on
//! a segment; on a lossy mesh with churn and a partition that heals every
//! message still reaches every node. Issue 13 asks for at most 1.5 times
//! the minimum (one per receiver); while the mesh is split, and while it
//! heals, a node that cannot place a message's origin on a tree offers it
//! to every link (forward.rs and flood.rs say why).

use meshpost_sim::engine::{Params, Report, Sim};
use meshpost_sim::topo;

fn run(p: Params) -> Report {
    Sim::new(Params { nodes: 40, channel_per_minute: 20.0, ..p }).run()
}

#[test]
fn on_a_segment_each_node_gets_each_channel_message_from_one_transmission() {
    let r = run(Params { topology: topo::Kind::Segment, minutes: 9, warmup_minutes: 3, seed: 11, ..Params::default() });
    assert!(r.channel_posts >= 80, "{} posts", r.channel_posts);
    assert_eq!(r.channel_missed, 0, "{r:?}");
    // Flooded to every link, each node received about 4 copies.
    assert!(r.channel_copies_per_receiver <= 1.05, "{:.2} copies per receiver", r.channel_copies_per_receiver);
    let p99 = r.channel_latencies_ms[r.channel_latencies_ms.len() * 99 / 100];
    assert!(p99 < 1_000, "p99 {p99} ms: the eager copies arrived");
}

#[test]
fn on_a_lossy_mesh_with_churn_and_a_partition_every_message_arrives_at_little_extra_cost() {
    let r = run(Params {
        topology: topo::Kind::Mesh,
        degree: 6.0,
        minutes: 14,
        warmup_minutes: 3,
        seed: 12,
        loss: 0.05,
        delay_ms: 20,
        churn_per_hour: 0.1,
        partition: Some((4, 3)),
        ..Params::default()
    });
    assert!(r.channel_posts >= 150, "{} posts", r.channel_posts);
    assert_eq!(r.channel_missed, 0, "{r:?}");
    // 1.15 here: the partition is 3 of the 11 minutes measured. Flooded
    // to every link all along, 3.8; to every link while the origin is
    // beyond the partition, 1.56. (The bound is 1.5.)
    assert!(r.channel_copies_per_receiver <= 1.3, "{:.2} copies per receiver", r.channel_copies_per_receiver);
}

#[test]
fn when_a_split_segment_heals_each_node_gets_the_messages_it_missed_once() {
    let r = run(Params {
        topology: topo::Kind::Segment,
        minutes: 12,
        warmup_minutes: 3,
        seed: 13,
        partition: Some((5, 3)),
        ..Params::default()
    });
    assert!(r.channel_posts >= 150, "{} posts", r.channel_posts);
    assert_eq!(r.channel_missed, 0, "{r:?}");
    // 1.02 here. When the copies that cross the healed split were sent on
    // whole to every link, 1.39: the nodes they reach cannot yet place
    // their origin on a tree (forward.rs); now they offer them.
    assert!(r.channel_copies_per_receiver <= 1.1, "{:.2} copies per receiver", r.channel_copies_per_receiver);
}
