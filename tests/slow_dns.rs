//! A peer configured by host name while DNS does not answer (a router at
//! boot, a WAN outage): name lookups run off the event loop, so the daemon
//! starts, answers its control socket and reloads at once, instead of
//! freezing for the resolver's timeouts (5 s x 2 attempts here).
//!
//! The namespace's resolv.conf (`ip netns exec` mounts /etc/netns/NS/) names
//! a nameserver behind a veth into an empty namespace: it never answers. Root only:
//! outside CI it skips with a message; in CI it must run.

mod common;

use std::time::{Duration, Instant};

use common::net::*;
use common::*;
use serde_json::json;

#[test]
fn a_peer_name_that_does_not_resolve_never_stalls_the_daemon() {
    if !need_root("a_peer_name_that_does_not_resolve_never_stalls_the_daemon") {
        return;
    }
    let _g = lock();
    let t = TempDir::new("slowdns");
    let mut net = Net::new("s");
    let (ns, void) = (net.ns("n"), net.ns("void"));
    // The nameserver's subnet leads into a namespace where nobody answers.
    net.veth(&ns, "tovoid", &void, "ton", None);
    ip(&["-n", &ns, "addr", "add", "10.253.0.1/16", "dev", "tovoid"]);
    let etc = std::path::PathBuf::from(format!("/etc/netns/{ns}"));
    std::fs::create_dir_all(&etc).unwrap();
    std::fs::write(etc.join("resolv.conf"), "nameserver 10.253.9.9\noptions timeout:5 attempts:2\n").unwrap();
    struct Cleanup(std::path::PathBuf);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let _c = Cleanup(etc);

    let mut n = Node::new(&t.0, "n");
    n.netns = Some(ns.clone());
    n.extra.push_str("config peer\n\toption address 'gateway.slow-dns.example:4849'\n");
    let started = Instant::now();
    n.start();
    let up = started.elapsed();
    // Status, a runtime peer add by name and a reload all answer at once
    // while the lookups hang.
    for _ in 0..5 {
        let t0 = Instant::now();
        assert_eq!(n.request(json!({"cmd": "status"}))["ok"], true);
        assert!(t0.elapsed() < Duration::from_millis(500), "status took {:?}", t0.elapsed());
        std::thread::sleep(Duration::from_millis(300));
    }
    let t0 = Instant::now();
    let v = n.request(json!({"cmd": "peer", "action": "add", "address": "other.slow-dns.example:4849"}));
    assert_eq!((v["ok"].as_bool(), v["resolving"].as_bool()), (Some(true), Some(true)), "{v}");
    assert!(t0.elapsed() < Duration::from_millis(500), "peer add took {:?}", t0.elapsed());
    let t0 = Instant::now();
    assert_eq!(n.request(json!({"cmd": "reload"}))["ok"], true);
    assert!(t0.elapsed() < Duration::from_millis(500), "reload took {:?}", t0.elapsed());
    assert!(up < Duration::from_secs(5), "start-up took {up:?}: it waited for DNS");
    // The failed lookup is reported, with the name.
    assert!(wait_until(30, || n.log().contains("gateway.slow-dns.example")), "{}", n.log());
}
