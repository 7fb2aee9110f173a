//! A peer for tests: the sans-IO `Node` from meshpost-proto driven over a
//! real UDP socket by the test, so it speaks the real protocol and can be
//! made to send what a real daemon never would.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use meshpost_proto::node::{Action, Node as ProtoNode};
use meshpost_proto::time::Timestamp;

pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

/// Mallory's clocks: the daemon's own reading of both.
pub fn now() -> Timestamp {
    meshpost::runtime::timestamp()
}

pub struct Peer {
    pub node: ProtoNode,
    pub sock: UdpSocket,
    pub captured: Vec<(SocketAddr, Vec<u8>)>,
    pub capture: bool,
    /// What became of the messages this peer sent, in the order reported.
    pub sent: Vec<(meshpost_proto::envelope::EnvelopeId, meshpost_proto::outbox::SentState)>,
}

impl Peer {
    pub fn pump(&mut self, ms: u64) {
        let end = Instant::now() + Duration::from_millis(ms);
        let mut buf = [0u8; 2048];
        while Instant::now() < end {
            self.node.handle_timeout(now());
            while let Some(a) = self.node.poll_action() {
                match a {
                    Action::Transmit { to, data } => {
                        if self.capture {
                            self.captured.push((to, data.clone()));
                        }
                        let _ = self.sock.send_to(&data, to);
                    }
                    // Mallory keeps nothing, but says it did.
                    Action::Persist { id, .. } => self.node.persisted(id),
                    Action::Deliver(d) => self.node.persisted(d.id),
                    Action::Sent { id, state, .. } => self.sent.push((id, state)),
                    _ => {}
                }
            }
            if let Ok((n, from)) = self.sock.recv_from(&mut buf) {
                self.node.handle_datagram(now(), from, &buf[..n]);
            }
        }
    }
}

impl Peer {
    /// A peer on loopback linked to the daemon at `port` (pinned `key`),
    /// with the daemon's card known.
    pub fn linked_to(port: u16, key: &str, log: impl Fn() -> String) -> (Peer, meshpost_proto::identity::NodeId) {
        use rand_core::OsRng;
        Peer::linked_as(meshpost_proto::identity::Identity::generate(&mut OsRng), port, key, log)
    }

    /// As [`Peer::linked_to`], with a given identity (the same sender again).
    pub fn linked_as(
        me: meshpost_proto::identity::Identity,
        port: u16,
        key: &str,
        log: impl Fn() -> String,
    ) -> (Peer, meshpost_proto::identity::NodeId) {
        use meshpost_proto::identity::NodeId;
        use meshpost_proto::node::{Config, PeerSpec};
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let key = meshpost_proto::crypto::from_hex::<32>(key).unwrap();
        let id = NodeId::from_public_key(&key);
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(10))).unwrap();
        let node = ProtoNode::new(me, Config { name: "mallory".into(), ..Config::default() }, [9; 32], now());
        let mut peer = Peer { node, sock, captured: Vec::new(), capture: false, sent: Vec::new() };
        peer.node.add_peer(PeerSpec { addr, pin: Some(key), federation: None }, now());
        let end = Instant::now() + Duration::from_secs(10);
        while !(peer.node.is_linked(&id) && peer.node.card(&id).is_some()) {
            assert!(Instant::now() < end, "test peer could not link; daemon log:\n{}", log());
            peer.pump(50);
        }
        (peer, id)
    }
}

impl Peer {
    /// A direct envelope from this peer to `to` with `body` of
    /// `content_type`, correctly encrypted and signed but not sent, for
    /// tests that change it before sending it raw.
    pub fn seal_direct(&self, to: meshpost_proto::identity::NodeId, content_type: u8, body: &[u8]) -> Vec<u8> {
        use meshpost_proto::envelope::{Destination, Draft, Envelope, Kind};
        let card = self.node.card(&to).expect("the peer knows the daemon's card").clone();
        let me = self.node.identity().public_key();
        let payload = meshpost_proto::e2e::seal(&mut rand_core::OsRng, &card, &me, &to.0, content_type, body);
        let env = Envelope::seal(
            self.node.identity(),
            &Draft {
                kind: Kind::Direct,
                max_hops: 4,
                created: now_ms() / 1000,
                ttl: 3600,
                dest: Destination { id: to.0, domain: String::new() },
                payload: &payload,
            },
        )
        .unwrap();
        env.bytes().to_vec()
    }
}
