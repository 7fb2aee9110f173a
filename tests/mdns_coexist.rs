//! meshpost shares port 5353 with the router's own mDNS responder, and
//! unicast answers meant for that responder must reach it, not meshpost,
//! while meshpost runs on the same interface. Two bindings are modelled
//! from their sources:
//! - umdns (openwrt/mdnsd, interface.c, reconnect_socket4/6): a unicast
//!   socket bound to the interface's own address and port 5353 with
//!   SO_REUSEADDR (its SO_BINDTODEVICE call passes a zero length, so it is
//!   not bound to the device);
//! - avahi (avahi-core/socket.c, reuseaddr and avahi_open_socket_ipv4/6):
//!   the wildcard address and port 5353 with SO_REUSEADDR and SO_REUSEPORT.
//!
//! The second one is what a wildcard-bound meshpost used to starve.
//!
//! Needs root (ip netns). Outside CI it skips with a message; in CI it must
//! run.

mod common;

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::Duration;

use common::net::*;
use common::*;
use socket2::{Domain, Protocol, Socket, Type};

/// A socket bound the way umdns (exact address, SO_REUSEADDR) or avahi
/// (wildcard address, SO_REUSEADDR and SO_REUSEPORT) binds it.
fn responder_socket(addr: SocketAddr, avahi: bool) -> UdpSocket {
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP)).unwrap();
    s.set_reuse_address(true).unwrap();
    let addr = if avahi {
        s.set_reuse_port(true).unwrap();
        match addr {
            SocketAddr::V4(_) => "0.0.0.0:5353".parse().unwrap(),
            SocketAddr::V6(_) => "[::]:5353".parse().unwrap(),
        }
    } else {
        addr
    };
    if addr.is_ipv6() {
        s.set_only_v6(true).unwrap();
    }
    s.bind(&addr.into()).unwrap();
    let s: UdpSocket = s.into();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    s
}

/// Sends `n` datagrams from namespace `from_ns` to `to`, and counts what the
/// umdns-like socket bound at `bind` in namespace `ns` receives.
fn unicast_reaches_the_system_responder(
    ns: &str,
    (bind, avahi): (SocketAddr, bool),
    from_ns: &str,
    to: SocketAddr,
    n: usize,
) -> usize {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let listener = spawn_in_ns(ns, move || {
        let s = responder_socket(bind, avahi);
        ready_tx.send(()).unwrap();
        let mut got = 0;
        let mut buf = [0u8; 512];
        while got < n && s.recv_from(&mut buf).is_ok() {
            got += 1;
        }
        got
    });
    ready_rx.recv().unwrap();
    in_ns(from_ns, move || {
        let any: SocketAddr = if to.is_ipv6() { "[::]:0".parse().unwrap() } else { "0.0.0.0:0".parse().unwrap() };
        let s = UdpSocket::bind(any).unwrap();
        for i in 0..n {
            // A minimal DNS response header: what a unicast answer looks like.
            let pkt = [(i >> 8) as u8, i as u8, 0x84, 0, 0, 0, 0, 0, 0, 0, 0, 0];
            s.send_to(&pkt, to).unwrap();
            std::thread::sleep(Duration::from_millis(2));
        }
    });
    listener.join().unwrap()
}

#[test]
fn unicast_answers_for_umdns_still_reach_it_while_meshpost_runs() {
    if !need_root("unicast_answers_for_umdns_still_reach_it_while_meshpost_runs") {
        return;
    }
    let _g = lock();
    let t = TempDir::new("coexist");
    let mut net = Net::new("u");
    let (a, b) = (net.ns("a"), net.ns("b"));
    net.veth(&a, "tob", &b, "toa", Some((7, 0)));
    let mut node = mesh_node(&t, &a, "a", &["tob"]);
    node.start();
    let on_tob = || {
        let v = node.request(serde_json::json!({"cmd": "status"}));
        v["interfaces"].as_array().is_some_and(|i| i.iter().any(|x| x == "tob"))
    };
    assert!(wait_until(20, on_tob), "meshpost listens on tob\n{}", node.log());
    let v4: SocketAddr = "169.254.7.1:5353".parse().unwrap();
    let (la, scope_a, scope_b) = (link_local(&a, "tob"), if_index_in(&a, "tob"), if_index_in(&b, "toa"));
    link_local(&b, "toa"); // the sender needs its own address out of DAD too
    let v6_bind = SocketAddr::V6(std::net::SocketAddrV6::new(la, 5353, 0, scope_a));
    let v6_to = SocketAddr::V6(std::net::SocketAddrV6::new(la, 5353, 0, scope_b));
    assert!(matches!(v6_bind.ip(), IpAddr::V6(_)));
    for (who, avahi) in [("umdns", false), ("avahi", true)] {
        let got = unicast_reaches_the_system_responder(&a, (v4, avahi), &b, v4, 50);
        assert_eq!(got, 50, "IPv4: {who} got {got} of 50 unicast answers");
        let got = unicast_reaches_the_system_responder(&a, (v6_bind, avahi), &b, v6_to, 50);
        assert_eq!(got, 50, "IPv6: {who} got {got} of 50 unicast answers");
    }
}
