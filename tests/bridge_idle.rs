//! Eight real daemons on one bridge with the built-in default timers: what
//! they put on the segment per minute while idle, all of it (mDNS, the
//! link protocol, IP and Ethernet headers), counted at the bridge's ports.
//! Issue 13's reference is alfred: 74 kB per minute for eight nodes at its
//! default period. Long (about four minutes of idling), so it is not part
//! of `make test`: `make bridge-idle` runs it and docs/scale.md shows the
//! figure. Needs root (ip netns).

#[path = "common/mod.rs"]
mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::net::*;
use common::*;
use serde_json::{Value, json};

/// alfred's bytes per minute for eight nodes at its default (issue 13).
const ALFRED_BYTES_PER_MINUTE: f64 = 74_000.0;
const NODES: usize = 8;

/// Bytes node `i` sent into the bridge (the bridge port's receive counter).
fn port_bytes(sw: &str, i: usize) -> u64 {
    let out =
        Command::new("ip").args(["-n", sw, "-s", "-j", "link", "show", "dev", &format!("p{i}")]).output().unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v[0]["stats64"]["rx"]["bytes"].as_u64().unwrap()
}

fn route_hops(n: &Node, id: &str) -> Option<u64> {
    let routes = n.request(json!({"cmd": "routes"}))["routes"].as_array().cloned().unwrap_or_default();
    routes.iter().find(|r| r["node"] == id).and_then(|r| r["hops"].as_u64())
}

#[test]
#[ignore = "long (about 4 minutes): make bridge-idle"]
fn eight_daemons_idle_on_one_bridge_send_less_than_alfred() {
    if !need_root("eight_daemons_idle_on_one_bridge_send_less_than_alfred") {
        return;
    }
    let _g = lock();
    let t = TempDir::new("bridge-idle");
    let mut net = Net::new("bi");
    let (sw, spaces) = net.bridge(NODES, false);
    let mut nodes = Vec::new();
    for (i, ns) in spaces.iter().enumerate() {
        let mut n = mesh_node(&t, ns, &format!("n{i}"), &["mesh0"]);
        // The built-in defaults: only the interface is configured.
        n.extra = "\tlist interface 'mesh0'\n".into();
        nodes.push(n);
    }
    for n in &mut nodes {
        n.start();
    }
    let ids: Vec<String> = nodes.iter().map(Node::node_id).collect();
    let started = Instant::now();
    // Each dials its preferred four (link_target) and accepts those that
    // prefer it: everyone reaches everyone, most in one hop.
    assert!(
        wait_until(180, || (0..NODES).all(|i| (0..NODES).all(|j| i == j || route_hops(&nodes[i], &ids[j]).is_some()))),
        "not everyone reaches everyone"
    );
    let converged = started.elapsed();
    // One full announce interval past convergence, then two minutes idle.
    std::thread::sleep(Duration::from_secs(65));
    let wire0: u64 = (0..NODES).map(|i| port_bytes(&sw, i)).sum();
    let payload0: u64 = nodes.iter().map(|n| n.metric("bytes_out_total")).sum();
    let cards0: u64 = nodes.iter().map(|n| n.metric("cards_served_total")).sum();
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(120));
    let minutes = t0.elapsed().as_secs_f64() / 60.0;
    let wire = ((0..NODES).map(|i| port_bytes(&sw, i)).sum::<u64>() - wire0) as f64 / minutes;
    let payload = (nodes.iter().map(|n| n.metric("bytes_out_total")).sum::<u64>() - payload0) as f64 / minutes;
    let cards = nodes.iter().map(|n| n.metric("cards_served_total")).sum::<u64>() - cards0;
    eprintln!(
        "FIGURE bridge-idle: eight daemons, default timers, linked after {:.1} s; idle on the bridge {wire:.0} bytes \
         a minute in all ({:.0} per node; UDP payload of the link protocol {payload:.0}); {cards} full cards moved \
         while idle; alfred at its default: {ALFRED_BYTES_PER_MINUTE:.0}",
        converged.as_secs_f64(),
        wire / NODES as f64,
    );
    assert_eq!(cards, 0, "no full card moves while nothing changes");
    assert!(wire < ALFRED_BYTES_PER_MINUTE, "{wire:.0} bytes a minute on the bridge");
}
