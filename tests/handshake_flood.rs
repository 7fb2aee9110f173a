//! A flood of handshake first messages (each would cost the victim an
//! X25519 exchange and an ML-KEM encapsulation) from one address and 256
//! ports, at about 10,000 a second: the victim stays under 30% of a core,
//! drops the excess before any cryptography (counted), and a legitimate
//! peer on another address still links within 2 s.
//!
//! Namespaces: victim V, attacker X (10.9.1.2), peer P (10.9.2.2). Root
//! only: outside CI it skips with a message; in CI it must run.

mod common;

use std::net::UdpSocket;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::net::*;
use common::*;
use meshpost_proto::identity::Identity;
use meshpost_proto::link::handshake::Initiator;
use meshpost_proto::rng::NodeRng;
use serde_json::json;

/// CPU seconds (user + system) used so far by process `pid`.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name, which is in parentheses.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) / hz
}

#[test]
fn a_handshake_flood_costs_little_cpu_and_a_real_peer_still_links() {
    if !need_root("a_handshake_flood_costs_little_cpu_and_a_real_peer_still_links") {
        return;
    }
    let _g = lock();
    let t = TempDir::new("hsflood");
    let mut net = Net::new("h");
    let (v, x, p) = (net.ns("v"), net.ns("x"), net.ns("p"));
    net.veth(&v, "tox", &x, "tov", None);
    net.veth(&v, "top", &p, "tov", None);
    for (ns, dev, a) in
        [(&v, "tox", "10.9.1.1/24"), (&x, "tov", "10.9.1.2/24"), (&v, "top", "10.9.2.1/24"), (&p, "tov", "10.9.2.2/24")]
    {
        ip(&["-n", ns, "addr", "add", a, "dev", dev]);
    }
    let mut victim = Node::new(&t.0, "victim");
    victim.netns = Some(v.clone());
    victim.port = 4849;
    victim.start();
    let pid = victim.child.as_ref().unwrap().id();

    // One valid msg1, replayed from 256 ports.
    let mallory = Identity::from_seed(&[7; 32]);
    let (_, msg1) = Initiator::start(&mallory, &mut NodeRng::from_seed([9; 32]), 1).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let flood = spawn_in_ns(&x, {
        let (stop, sent) = (stop.clone(), sent.clone());
        move || {
            let socks: Vec<UdpSocket> = (0..256).map(|_| UdpSocket::bind("10.9.1.2:0").unwrap()).collect();
            let start = Instant::now();
            let mut n: u64 = 0;
            while !stop.load(Ordering::Relaxed) {
                // Pace to about 10,000 a second.
                let due = start.elapsed().as_micros() as u64 / 100;
                while n < due {
                    let _ = socks[(n % 256) as usize].send_to(&msg1, "10.9.1.1:4849");
                    n += 1;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            sent.store(n, Ordering::Relaxed);
        }
    });

    std::thread::sleep(Duration::from_secs(2));
    let (cpu0, t0) = (cpu_secs(pid), Instant::now());
    // A real peer starts during the flood and must link within 2 s.
    let mut peer = Node::new(&t.0, "peer");
    peer.netns = Some(p.clone());
    peer.port = 4849;
    peer.extra.push_str("config peer\n\toption address '10.9.2.1:4849'\n");
    let started = Instant::now();
    peer.start();
    let linked = wait_until(10, || {
        peer.request(json!({"cmd": "peers"}))["links"]
            .as_array()
            .is_some_and(|l| l.iter().any(|x| x["confirmed"] == true))
    });
    let took = started.elapsed();
    std::thread::sleep(Duration::from_secs(8).saturating_sub(t0.elapsed()));
    let (cpu, wall) = (cpu_secs(pid) - cpu0, t0.elapsed().as_secs_f64());
    stop.store(true, Ordering::Relaxed);
    flood.join().unwrap();
    let sent = sent.load(Ordering::Relaxed);
    let dropped = victim.metric("handshakes_rate_limited_total");
    let share = cpu / wall;
    eprintln!(
        "flood: {sent} msg1 sent, {dropped} dropped unanswered; victim CPU {:.1}% ; peer linked after {took:?}",
        share * 100.0
    );
    assert!(sent >= 60_000, "the flood itself was too slow to prove anything ({sent} sent)");
    assert!(dropped >= sent / 2, "{dropped} of {sent} dropped before any cryptography");
    assert!(linked && took <= Duration::from_secs(2), "the real peer linked: {linked} after {took:?}\n{}", peer.log());
    assert!(share < 0.30, "the victim used {:.0}% of a core under the flood", share * 100.0);
    assert_eq!(victim.request(json!({"cmd": "status"}))["ok"], true);
}
