//! An independent mDNS implementation (python-zeroconf, from PyPI; `make
//! test` installs it into target/pyvenv) finds and resolves a running
//! meshpost node: its address, port and TXT, from the next router and from
//! the node's own namespace (a resolver on the same router, as umdns or
//! avahi would be); it lists `_meshpost._udp` among the service types; and
//! it drops the node at once when the node stops (goodbye), not after the
//! 120 s TTL.
//!
//! Needs root (ip netns) and the venv. Outside CI a missing one skips with
//! a message; in CI both must be there.

mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::net::*;
use common::*;
use serde_json::Value;

const PROBE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/tools/zeroconf_probe.py");

fn probe(py: &PathBuf, ns: &str, args: &[&str]) -> Vec<Value> {
    let out = Command::new("ip").args(["netns", "exec", ns]).arg(py).arg(PROBE).args(args).output().unwrap();
    assert!(out.status.success(), "probe failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

/// Sends one PTR query for the service over IPv4 and one over IPv6 from
/// sockets bound to port 5353 (multicast answers come to that port), and
/// reports which family got a response.
fn both_families_answered(index: u32) -> (bool, bool) {
    use socket2::{Domain, Protocol, Socket, Type};
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6, UdpSocket};
    let open = |v6: bool| -> UdpSocket {
        let s = Socket::new(if v6 { Domain::IPV6 } else { Domain::IPV4 }, Type::DGRAM, Some(Protocol::UDP)).unwrap();
        s.set_reuse_address(true).unwrap();
        s.set_reuse_port(true).unwrap();
        if v6 {
            s.set_only_v6(true).unwrap();
            s.bind(&SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, 5353, 0, 0)).into()).unwrap();
            s.join_multicast_v6(&"ff02::fb".parse().unwrap(), index).unwrap();
            s.set_multicast_if_v6(index).unwrap();
        } else {
            s.bind(&SocketAddr::from((Ipv4Addr::UNSPECIFIED, 5353)).into()).unwrap();
            s.join_multicast_v4(&"224.0.0.251".parse().unwrap(), &"169.254.8.2".parse().unwrap()).unwrap();
            s.set_multicast_if_v4(&"169.254.8.2".parse().unwrap()).unwrap();
        }
        let s: UdpSocket = s.into();
        s.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        s
    };
    let (s4, s6) = (open(false), open(true));
    let q = meshpost_proto::mdns::query();
    s4.send_to(&q, "224.0.0.251:5353").unwrap();
    s6.send_to(&q, SocketAddr::V6(SocketAddrV6::new("ff02::fb".parse().unwrap(), 5353, 0, index))).unwrap();
    let answered = |s: &UdpSocket| {
        let end = Instant::now() + Duration::from_secs(3);
        let mut buf = [0u8; 1500];
        while Instant::now() < end {
            if let Ok((n, _)) = s.recv_from(&mut buf)
                && meshpost_proto::mdns::parse(&buf[..n]).is_ok_and(|p| !p.announcements.is_empty())
            {
                return true;
            }
        }
        false
    };
    (answered(&s4), answered(&s6))
}

#[test]
fn python_zeroconf_resolves_lists_and_sees_the_goodbye() {
    if !need_root("python_zeroconf_resolves_lists_and_sees_the_goodbye") {
        return;
    }
    let Some(py) = venv_python("zeroconf") else { return };
    let _g = lock();
    let t = TempDir::new("zeroconf");
    let mut net = Net::new("z");
    let (a, b) = (net.ns("a"), net.ns("b"));
    net.veth(&a, "tob", &b, "toa", Some((8, 0)));
    let v6 = link_local(&a, "tob").to_string();
    link_local(&b, "toa");
    let mut node = mesh_node(&t, &a, "a", &["tob"]);
    node.start();
    let id = node.node_id();
    let active = || node.request(serde_json::json!({"cmd": "status"}))["interfaces"].to_string().contains("tob");
    assert!(wait_until(20, active), "meshpost announces on tob\n{}", node.log());

    // Resolved from the next router and from the node's own namespace.
    for (ns, who) in [(&b, "the neighbour"), (&a, "the same router")] {
        let seen = probe(&py, ns, &["resolve", "15"]);
        let me = seen.iter().find(|v| v["name"].as_str().is_some_and(|n| n.starts_with(&id)));
        let me = me.unwrap_or_else(|| panic!("{who} did not resolve {id}: {seen:?}\n{}", node.log()));
        assert_eq!(me["port"], 4849, "{who}: {me}");
        assert_eq!(me["server"], format!("{id}.local."), "{who}: {me}");
        let addrs: Vec<&str> = me["addresses"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
        assert!(addrs.contains(&"169.254.8.1"), "{who}: IPv4 address missing: {me}");
        assert!(addrs.iter().any(|a| a.starts_with(&v6)), "{who}: IPv6 {v6} missing: {me}");
        assert_eq!((me["txt"]["v"].as_str(), me["txt"]["id"].as_str()), (Some("1"), Some(id.as_str())), "{who}: {me}");
        assert_eq!(me["txt"]["fp"].as_str().map(str::len), Some(16), "{who}: {me}");
    }

    // Service-type enumeration.
    let types = probe(&py, &b, &["types", "4"]);
    assert!(types.iter().any(|v| v["types"].to_string().contains("_meshpost._udp.local.")), "types: {types:?}");

    // A query asked over IPv4 and IPv6 at the same moment (as umdns and
    // avahi ask) is answered on both families.
    let index = if_index_in(&b, "toa");
    let answered = in_ns(&b, move || both_families_answered(index));
    assert_eq!(answered, (true, true), "answers over (IPv4, IPv6)");

    // The goodbye: the browser drops the node within seconds of SIGTERM.
    let mut watch = Command::new("ip")
        .args(["netns", "exec", &b])
        .arg(&py)
        .arg(PROBE)
        .args(["watch", "60"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(watch.stdout.take().unwrap()).lines();
    let mut next_event = || -> Value {
        let line = lines.next().expect("the browser ended without the event (no goodbye seen in 60 s)").unwrap();
        serde_json::from_str(&line).unwrap()
    };
    assert_eq!(next_event()["event"], "ready");
    let added = next_event();
    assert_eq!(added["event"], "added", "{added}");
    let stopped = Instant::now();
    node.stop();
    let removed = next_event();
    let _ = watch.kill();
    let _ = watch.wait();
    assert_eq!(removed["event"], "removed", "{removed}");
    let after = stopped.elapsed();
    assert!(after < Duration::from_secs(10), "removed {after:?} after stop: the goodbye was not seen");
}
