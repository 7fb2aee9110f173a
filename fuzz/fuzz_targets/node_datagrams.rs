//! The whole node state machine fed arbitrary datagrams and timer ticks.
//! The input is split into datagrams by a length byte; a 0xff length byte
//! advances time instead.
#![no_main]
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use libfuzzer_sys::fuzz_target;
use meshpost_proto::identity::Identity;
use meshpost_proto::node::{Config, Node, PeerSpec};
use meshpost_proto::time::Timestamp;

fuzz_target!(|data: &[u8]| {
    let mut now = 1_800_000_000_000u64;
    let mut node = Node::new(Identity::from_seed(&[3; 32]), Config::default(), [4; 32], Timestamp::from(now));
    let peer = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 4849);
    node.add_peer(PeerSpec { addr: peer, pin: None, federation: None }, Timestamp::from(now));
    let mut rest = data;
    while let Some((&len, tail)) = rest.split_first() {
        if len == 0xff {
            now += 7_000;
            node.handle_timeout(Timestamp::from(now));
            rest = tail;
            continue;
        }
        let n = (len as usize * 5).min(tail.len());
        node.handle_datagram(Timestamp::from(now), peer, &tail[..n]);
        rest = &tail[n..];
        while node.poll_action().is_some() {}
    }
});
