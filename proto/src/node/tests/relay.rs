//! A relay on a slow disk: what it passes on goes at once, and what frees
//! the copy behind it waits for its write. Three nodes on a line, A - R - Z.

use super::*;

/// A - R - Z on virtual time: A and Z know R as a static peer, and a
/// datagram reaches only the neighbours of its sender. R's envelope writes
/// wait in `held`, and Z's inbox writes in `inbox_z`, until the test
/// confirms them.
struct Line {
    nodes: [Node; 3],
    now: u64,
    held: Vec<EnvelopeId>,
    delivered_z: Vec<EnvelopeId>,
    inbox_z: Vec<EnvelopeId>,
}

const A: usize = 0;
const R: usize = 1;
const Z: usize = 2;

impl Line {
    fn new() -> Line {
        let node = |name: &str, seed: u8| {
            let cfg = Config { name: name.into(), ..Config::default() };
            Node::new(Identity::generate(&mut OsRng), cfg, [seed; 32], Timestamp::from(T0))
        };
        let mut nodes = [node("a", 1), node("r", 2), node("z", 3)];
        for end in [A, Z] {
            nodes[end].add_peer(PeerSpec { addr: addr(2), pin: None, federation: None }, Timestamp::from(T0));
        }
        Line { nodes, now: T0, held: vec![], delivered_z: vec![], inbox_z: vec![] }
    }

    /// Runs until quiet, advancing time in `step` ms up to `ms` more.
    fn run(&mut self, ms: u64, step: u64) {
        let end = self.now + ms;
        while self.now <= end {
            for n in &mut self.nodes {
                n.handle_timeout(Timestamp::from(self.now));
            }
            for _ in 0..1000 {
                let mut moved = false;
                for i in [A, R, Z] {
                    while let Some(act) = self.nodes[i].poll_action() {
                        moved = true;
                        self.carry_out(i, act);
                    }
                }
                if !moved {
                    break;
                }
            }
            self.now += step;
        }
    }

    fn carry_out(&mut self, i: usize, act: Action) {
        let now = Timestamp::from(self.now);
        match act {
            Action::Transmit { to, data } => {
                let j = usize::from(to.port()) - 1;
                if j < 3 && i.abs_diff(j) == 1 {
                    self.nodes[j].handle_datagram(now, addr(i as u16 + 1), &data);
                }
            }
            Action::Persist { id, .. } if i == R => self.held.push(id),
            Action::Persist { id, .. } => self.nodes[i].persisted(id),
            Action::Deliver(d) if i == Z => {
                self.delivered_z.push(d.id);
                self.inbox_z.push(d.id);
            }
            Action::Deliver(d) => self.nodes[i].persisted(d.id),
            _ => {}
        }
    }

    /// Whether `node` has heard from its peer `peer` that it holds `id`.
    fn told_held(&self, node: usize, peer: usize, id: &EnvelopeId) -> bool {
        let peer = self.nodes[peer].node_id();
        self.nodes[node].links.get(&peer).is_some_and(|l| l.peer_has.contains(id))
    }
}

#[test]
fn a_relay_passes_a_message_on_at_once_and_says_it_has_it_only_once_durable() {
    let mut l = Line::new();
    l.run(5_000, 100);
    let zid = l.nodes[Z].node_id();
    assert!(l.nodes[A].card(&zid).is_some(), "A learned Z's card through R");
    let id = l.nodes[A].send_direct(Timestamp::from(l.now), zid, b"over a slow relay", None, None).unwrap();
    // Less than a sync round: the first push, not a repair, carried it.
    l.run(200, 10);
    assert!(l.held.contains(&id), "R's write of the copy is not confirmed yet");
    assert_eq!(l.delivered_z, vec![id], "Z has it before R's disk does");
    // R does not say it has what is not on its disk: were R to crash now,
    // A would offer it again. (Z's inbox write waits too, so no end-to-end
    // acknowledgement frees A's copy meanwhile.)
    l.run(3 * l.nodes[A].cfg.sync_interval_ms, 500);
    assert!(!l.told_held(A, R, &id), "no \"have\" before R's write");
    assert!(l.nodes[A].store().contains(&id));
    for held in std::mem::take(&mut l.held) {
        l.nodes[R].persisted(held);
    }
    l.run(200, 10);
    assert!(l.told_held(A, R, &id), "durable at R: now A is told");
    // Z's inbox write, then its acknowledgement, which R passes on at
    // once as well, frees A's copy.
    for held in std::mem::take(&mut l.inbox_z) {
        l.nodes[Z].persisted(held);
    }
    l.run(2_000, 100);
    assert!(!l.nodes[A].store().contains(&id), "Z's acknowledgement came back through R");
    assert_eq!(l.delivered_z, vec![id], "exactly once");
    assert_eq!(l.nodes[Z].metrics().envelopes_duplicate, 0, "and in one copy");
}
