//! Relays on a line of nodes: what a relay passes on goes at once, what
//! frees the copy behind it waits for its write, a lost push is offered
//! again within a second, and a copy stranded without hops is replaced by
//! a better one.

use super::*;

/// Nodes 0 - 1 - ... - n-1 on virtual time: each knows the next as a
/// static peer, and a datagram reaches only the neighbours of its sender
/// (and not at all over `cut`). The envelope writes of `hold_writes`, and
/// the inbox writes of `hold_inbox`, wait in `held` and `inbox` until the
/// test confirms them.
struct Line {
    nodes: Vec<Node>,
    now: u64,
    hold_writes: Option<usize>,
    held: Vec<EnvelopeId>,
    hold_inbox: Option<usize>,
    inbox: Vec<EnvelopeId>,
    delivered: Vec<Vec<EnvelopeId>>,
    cut: Option<(usize, usize)>,
}

impl Line {
    fn new(n: usize) -> Line {
        let mut nodes: Vec<Node> = (0..n)
            .map(|i| {
                let cfg = Config { name: format!("n{i}"), ..Config::default() };
                Node::new(Identity::generate(&mut OsRng), cfg, [i as u8 + 1; 32], Timestamp::from(T0))
            })
            .collect();
        for (i, node) in nodes.iter_mut().enumerate().take(n - 1) {
            node.add_peer(PeerSpec { addr: addr(i as u16 + 2), pin: None, federation: None }, Timestamp::from(T0));
        }
        Line {
            nodes,
            now: T0,
            hold_writes: None,
            held: vec![],
            hold_inbox: None,
            inbox: vec![],
            delivered: vec![vec![]; n],
            cut: None,
        }
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
                for i in 0..self.nodes.len() {
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
                if j < self.nodes.len() && i.abs_diff(j) == 1 && self.cut != Some((i, j)) {
                    self.nodes[j].handle_datagram(now, addr(i as u16 + 1), &data);
                }
            }
            Action::Persist { id, .. } if self.hold_writes == Some(i) => self.held.push(id),
            Action::Persist { id, .. } => self.nodes[i].persisted(id),
            Action::Deliver(d) => {
                self.delivered[i].push(d.id);
                if self.hold_inbox == Some(i) {
                    self.inbox.push(d.id);
                } else {
                    self.nodes[i].persisted(d.id);
                }
            }
            _ => {}
        }
    }

    /// Confirms the held writes of `node` (inbox or store).
    fn confirm(&mut self, node: usize, ids: Vec<EnvelopeId>) {
        for id in ids {
            self.nodes[node].persisted(id);
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
    let (a, r, z) = (0, 1, 2);
    let mut l = Line::new(3);
    l.hold_writes = Some(r);
    l.hold_inbox = Some(z);
    l.run(5_000, 100);
    let zid = l.nodes[z].node_id();
    assert!(l.nodes[a].card(&zid).is_some(), "A learned Z's card through R");
    let id = l.nodes[a].send_direct(Timestamp::from(l.now), zid, b"over a slow relay", None, None).unwrap();
    // Less than a sync round: the first push, not a repair, carried it.
    l.run(200, 10);
    assert!(l.held.contains(&id), "R's write of the copy is not confirmed yet");
    assert_eq!(l.delivered[z], vec![id], "Z has it before R's disk does");
    // R does not say it has what is not on its disk: were R to crash now,
    // A would offer it again. (Z's inbox write waits too, so no end-to-end
    // acknowledgement frees A's copy meanwhile.)
    l.run(3 * l.nodes[a].cfg.sync_interval_ms, 500);
    assert!(!l.told_held(a, r, &id), "no \"have\" before R's write");
    assert!(l.nodes[a].store().contains(&id));
    let held = std::mem::take(&mut l.held);
    l.confirm(r, held);
    l.run(200, 10);
    assert!(l.told_held(a, r, &id), "durable at R: now A is told");
    // Z's inbox write, then its acknowledgement, which R passes on at
    // once as well, frees A's copy.
    let inbox = std::mem::take(&mut l.inbox);
    l.confirm(z, inbox);
    l.run(2_000, 100);
    assert!(!l.nodes[a].store().contains(&id), "Z's acknowledgement came back through R");
    assert_eq!(l.delivered[z], vec![id], "exactly once");
    assert_eq!(l.nodes[z].metrics().envelopes_duplicate, 0, "and in one copy");
}

#[test]
fn a_copy_stranded_without_hops_asks_its_links_for_a_better_one() {
    // 0 - 1 - 2 - 3: node 1 holds a copy of 0's message to 3 with no hops
    // left (it came the long way round, say), told 0 it has it, and 0's
    // own push was lost. Nobody offers it again: 0 takes 1 to hold it, and
    // a spent copy is offered to nobody but its recipient.
    let mut l = Line::new(4);
    l.run(10_000, 100);
    let (n1, n3) = (l.nodes[1].node_id(), l.nodes[3].node_id());
    assert_eq!(l.nodes[1].best_route(&n3).map(|r| r.hops), Some(2), "1 is two hops from 3");
    l.hold_writes = Some(0);
    let id = l.nodes[0].send_direct(Timestamp::from(l.now), n3, b"the long way round", None, None).unwrap();
    l.run(0, 1);
    let mut spent = l.nodes[0].store().get(&id).map(|e| e.bytes().expect("in memory").to_vec()).unwrap();
    spent[1] = 1; // hops_left: 0 once node 1 has taken its hop
    assert!(l.nodes[0].send_raw_envelope(n1, &spent));
    l.run(0, 1);
    assert_eq!(l.nodes[1].store().get(&id).map(|e| e.head.hops_left()), Some(0));
    assert!(l.told_held(0, 1, &id), "1 said it has it");
    l.cut = Some((0, 1));
    let held = std::mem::take(&mut l.held);
    l.hold_writes = None;
    l.confirm(0, held);
    l.run(0, 1);
    l.cut = None;
    // A sync round later nothing has moved...
    l.run(l.nodes[0].cfg.sync_interval_ms * 2, 500);
    assert!(l.delivered[3].is_empty(), "stranded at 1");
    // ...nor at the first check a minute in, which only finds it stranded
    // (most stranded copies are so for a moment while routes change)...
    // (The ids it remembers are bounded: full, the soonest to expire is
    // forgotten, and the others are kept.)
    let kept = super::super::receive::MAX_STRANDED_KEPT;
    let far = l.now / 1000 + 100_000;
    for i in 0..kept as u32 {
        let mut b = [0xee; 16];
        b[..4].copy_from_slice(&i.to_le_bytes());
        l.nodes[1].stranded_ids.insert(EnvelopeId(b), far + u64::from(i), 1);
    }
    l.run(T0 + 61_000 - l.now, 1000);
    assert!(l.delivered[3].is_empty(), "found stranded once: not asked for yet");
    assert_eq!(l.nodes[1].stranded_ids.len(), kept);
    assert!(l.nodes[1].stranded_ids.contains(&id), "it is remembered in the place of the soonest to expire");
    // ...and once it has been found stranded at two checks a minute apart,
    // 1 asks its links, gets 0's copy, and it goes on to 3.
    l.run(70_000, 1000);
    assert!(l.nodes[1].stranded_ids.len() <= kept);
    assert_eq!(l.delivered[3], vec![id], "delivered once");
    assert!(l.nodes[1].store().get(&id).is_none_or(|e| e.head.hops_left() > 0), "1's spent copy was replaced");
}

#[test]
fn a_lost_push_is_offered_again_within_a_second_not_a_sync_round_later() {
    let mut l = Line::new(3);
    l.run(5_000, 100);
    let zid = l.nodes[2].node_id();
    // A message that goes through: every "have" comes in time, and
    // nothing is offered again.
    let first = l.nodes[0].send_direct(Timestamp::from(l.now), zid, b"first", None, None).unwrap();
    l.run(2_000, 10);
    assert_eq!(l.delivered[2], vec![first]);
    assert!(l.nodes.iter().all(|n| n.metrics().pushes_offered_again == 0), "no push was lost");
    // The next push from 0 to 1 is lost on the air.
    l.cut = Some((0, 1));
    let sent_at = l.now;
    let id = l.nodes[0].send_direct(Timestamp::from(l.now), zid, b"lost on the way", None, None).unwrap();
    l.run(0, 1);
    l.cut = None;
    assert!(l.nodes[1].store().get(&id).is_none(), "1 did not get it");
    // A second later 0 offers it to 1 again, 1 asks for it, and it goes
    // on to 2: well within the first sync round (15 s, give or take).
    let sync = l.nodes[0].cfg.sync_interval_ms;
    while !l.delivered[2].contains(&id) && l.now < sent_at + sync / 2 {
        l.run(0, 10);
    }
    assert_eq!(l.delivered[2], vec![first, id], "delivered once");
    let check = super::super::pushcheck::PUSH_CHECK_MS;
    let took = l.now - sent_at;
    assert!(took <= check + 200, "took {took} ms");
    assert_eq!(l.nodes[0].metrics().pushes_offered_again, 1);
    // The link is down a moment longer: the push and the first offer are
    // lost, and the offer a check later brings it.
    l.cut = Some((0, 1));
    let sent_at = l.now;
    let third = l.nodes[0].send_direct(Timestamp::from(l.now), zid, b"lost twice", None, None).unwrap();
    l.run(check + 100, 10);
    l.cut = None;
    while !l.delivered[2].contains(&third) && l.now < sent_at + sync / 2 {
        l.run(0, 10);
    }
    assert_eq!(l.delivered[2], vec![first, id, third]);
    let took = l.now - sent_at;
    assert!(took <= 2 * check + 200, "took {took} ms");
    assert_eq!(l.nodes[0].metrics().pushes_offered_again, 3);
}
