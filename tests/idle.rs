//! An idle daemon costs (almost) nothing: real daemons in network
//! namespaces, linked to the neighbours they discovered over mDNS, are
//! counted for context switches while nothing happens. A timer left in the
//! past once made each of them wake about 900 times a second.
//!
//! Needs root (ip netns). Outside CI it skips with a message; in CI it must
//! run.

mod common;

use std::time::Duration;

use common::net::*;
use common::*;

/// Voluntary plus involuntary context switches of every thread of `pid`.
fn switches(pid: u32) -> u64 {
    let mut total = 0;
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("the daemon is running");
    for t in tasks.flatten() {
        let status = std::fs::read_to_string(t.path().join("status")).unwrap_or_default();
        for l in status.lines() {
            if let Some(v) =
                l.strip_prefix("voluntary_ctxt_switches:").or_else(|| l.strip_prefix("nonvoluntary_ctxt_switches:"))
            {
                total += v.trim().parse::<u64>().unwrap_or(0);
            }
        }
    }
    total
}

#[test]
fn idle_daemons_with_discovered_linked_peers_wake_at_most_a_few_times_a_second() {
    if !need_root("idle_daemons_with_discovered_linked_peers_wake_at_most_a_few_times_a_second") {
        return;
    }
    let _g = lock();
    let t = TempDir::new("idle");
    let mut net = Net::new("i");
    let names = ["a", "b", "c"];
    let spaces: Vec<String> = names.iter().map(|n| net.ns(n)).collect();
    net.veth(&spaces[0], "tob", &spaces[1], "toa", Some((1, 0)));
    net.veth(&spaces[1], "toc", &spaces[2], "tob", Some((2, 0)));
    // Default timers (as shipped), except a quicker first mDNS round.
    let mut nodes: Vec<Node> = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let ifaces: Vec<&str> = match i {
                0 => vec!["tob"],
                1 => vec!["toa", "toc"],
                _ => vec!["tob"],
            };
            let mut node = mesh_node(&t, &spaces[i], n, &ifaces);
            node.extra = node.extra.replace(FAST, "");
            node.extra.push_str("\toption log_level 'info'\n");
            node
        })
        .collect();
    for n in &mut nodes {
        n.start();
    }
    let ids: Vec<String> = nodes.iter().map(Node::node_id).collect();
    // Linked along the line, and each daemon has heard a neighbour's mDNS
    // announcement itself (a node may be linked first because the other
    // side dialled it).
    let discovered = |n: &Node| {
        let peers = n.request(serde_json::json!({"cmd": "peers"}));
        peers["discovered"].as_array().map_or(0, Vec::len)
    };
    assert!(
        wait_until(60, || nodes[0].linked_to(&ids[1])
            && nodes[1].linked_to(&ids[2])
            && nodes.iter().all(|n| discovered(n) >= 1)),
        "the line did not link by discovery"
    );
    // Idle means after start-up: the first mDNS announcements back off
    // over 1 + 2 + 4 + 8 + 16 s. Wait until each daemon says it is past that.
    let uptime = |n: &Node| n.request(serde_json::json!({"cmd": "status"}))["uptime"].as_u64().unwrap_or(0);
    assert!(wait_until(60, || nodes.iter().all(|n| uptime(n) >= 31)));
    let pids: Vec<u32> = nodes.iter().map(|n| n.child.as_ref().unwrap().id()).collect();
    let before: Vec<u64> = pids.iter().map(|p| switches(*p)).collect();
    let window = Duration::from_secs(15);
    std::thread::sleep(window);
    for (i, p) in pids.iter().enumerate() {
        let woke = switches(*p) - before[i];
        let per_sec = woke as f64 / window.as_secs_f64();
        eprintln!("FIGURE idle {}: {woke} context switches in {} s ({per_sec:.2}/s)", names[i], window.as_secs());
        assert!(per_sec <= 3.0, "{} woke {per_sec:.1} times a second while idle", names[i]);
    }
}
