//! A real daemon under attack from a peer on loopback: forged signatures,
//! replayed datagrams and random garbage are dropped, and it keeps serving.
//!
//! The attacker is the sans-IO `Node` from meshpost-proto driven over a real
//! UDP socket by this test, so it speaks the real protocol.

#[path = "common/mod.rs"]
mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use common::peer::{Peer, now};
use common::*;
use meshpost_proto::e2e;
use rand_core::{OsRng, RngCore};

#[test]
fn forged_replayed_and_random_datagrams_are_dropped_and_the_daemon_keeps_serving() {
    let t = TempDir::new("hostile");
    let mut b = Node::new(&t.0, "b");
    b.start();
    let baddr: SocketAddr = format!("127.0.0.1:{}", b.port).parse().unwrap();
    let (mut peer, bid) = Peer::linked_to(b.port, &b.key(), || b.log());

    // A genuine message arrives.
    peer.capture = true;
    peer.node.send_direct(now(), bid, b"genuine 1", None, None).unwrap();
    peer.pump(300);
    peer.capture = false;
    assert!(wait_until(5, || b.inbox().len() == 1));

    // Replaying every datagram of it changes nothing.
    let replay = peer.captured.clone();
    assert!(!replay.is_empty());
    for (to, d) in &replay {
        peer.sock.send_to(d, to).unwrap();
    }
    assert!(wait_until(5, || b.metric("datagrams_replayed_total") >= replay.len() as u64));
    assert_eq!(b.inbox().len(), 1);

    // A correctly encrypted envelope whose signature is forged is dropped
    // before it is stored or delivered.
    let mut forged = peer.seal_direct(bid, e2e::CONTENT_TEXT, b"forged");
    let n = forged.len();
    forged[n - 7] ^= 0x20;
    assert!(peer.node.send_raw_envelope(bid, &forged));
    peer.pump(300);
    assert!(wait_until(5, || b.metric("envelopes_bad_signature_total") == 1));
    assert_eq!(b.inbox().len(), 1);
    assert_eq!(b.store_count(), 0, "nothing forged was stored");

    // 10,000 random datagrams, a tenth shaped like link packets.
    let junk = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut rng = OsRng;
    let before = b.metric("datagrams_in_total");
    for i in 0..10_000u32 {
        let len = (rng.next_u32() % 1300) as usize;
        let mut d = vec![0u8; len];
        rng.fill_bytes(&mut d);
        if i % 10 == 0 && len > 14 {
            d[0] = 1 + (i / 10 % 4) as u8;
            d[1] = 1;
        }
        if i % 97 == 0 {
            // Exactly handshake-init sized: the costliest thing to answer.
            d = vec![0u8; 1222];
            rng.fill_bytes(&mut d);
            d[0] = 1;
            d[1] = 1;
        }
        junk.send_to(&d, baddr).unwrap();
        if i % 200 == 199 {
            // Pace on the daemon's own counter so that no datagram is lost in
            // the kernel: every one of the 10,000 must reach the parser.
            // The test peer keeps its link alive meanwhile.
            let want = before + u64::from(i) + 1;
            let end = Instant::now() + Duration::from_secs(20);
            while b.metric("datagrams_in_total") < want {
                assert!(Instant::now() < end, "daemon stopped reading datagrams");
                peer.pump(20);
            }
        }
    }
    // It keeps serving the socket and the link.
    assert_eq!(b.request(serde_json::json!({"cmd": "status"}))["ok"], true);
    peer.node.send_direct(now(), bid, b"genuine 2", None, None).unwrap();
    let end = Instant::now() + Duration::from_secs(15);
    while b.inbox().len() < 2 {
        assert!(Instant::now() < end, "B stopped delivering; log:\n{}", b.log());
        peer.pump(100);
    }
    let texts: Vec<String> = b.inbox().iter().map(|m| m["text"].as_str().unwrap().to_string()).collect();
    assert_eq!(texts, ["genuine 1", "genuine 2"]);
    let got = b.metric("datagrams_in_total") - before;
    assert!(got >= 10_000, "every junk datagram reached the daemon ({got})");
    // All but the ~104 handshake-init-shaped ones (which are answered, at a
    // bounded cost) are dropped at parsing or session lookup.
    let dropped = b.metric("datagrams_malformed_total") + b.metric("datagrams_unknown_session_total");
    assert!(dropped >= 9_800, "junk was counted as dropped ({dropped})");
    assert!(b.child.as_mut().unwrap().try_wait().unwrap().is_none(), "daemon still running");
}
