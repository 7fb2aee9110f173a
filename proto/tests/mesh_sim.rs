//! Many nodes on virtual time, wired by an in-memory network whose links can
//! be cut: routing, multi-hop forwarding, store-and-forward and expiry,
//! driven only through the public poll API.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)] // tests may use the OS generator

use std::collections::{BTreeMap, BTreeSet};

use meshpost_proto::channel::ChannelKey;
use meshpost_proto::envelope::EnvelopeId;
use meshpost_proto::envelope::{Destination, Draft, Envelope, Kind};
use meshpost_proto::identity::{Identity, NodeId};
use meshpost_proto::link::frame::{IdList, id_frames};
use meshpost_proto::node::{Config, Node};
use meshpost_proto::time::Timestamp;
use rand_core::OsRng;

mod common;
use common::sim::{Sim, addr};

fn line(n: usize) -> Sim {
    let edges: Vec<(usize, usize)> = (0..n - 1).map(|i| (i, i + 1)).collect();
    Sim::new(n, &edges)
}

#[test]
fn a_line_of_five_learns_routes_and_delivers_end_to_end_exactly_once() {
    let mut s = line(5);
    s.run(20_000);
    for i in 0..5 {
        let routes: BTreeMap<NodeId, u8> = s.nodes[i].routes().into_iter().map(|r| (r.dest, r.hops)).collect();
        for j in 0..5 {
            if i != j {
                let hops = routes.get(&s.id(j)).copied();
                assert_eq!(hops, Some((i as i32 - j as i32).unsigned_abs() as u8), "route {i}->{j}");
            }
        }
        // Next hop towards the far end is the neighbour on that side.
        if i < 4 {
            let r = s.nodes[i].routes().into_iter().find(|r| r.dest == s.id(4)).unwrap();
            assert_eq!(r.via, s.id(i + 1));
        }
    }
    s.send(0, 4, "hello E", None);
    s.run(3_000);
    assert_eq!(s.delivered[4].len(), 1);
    assert_eq!(s.delivered[4][0].body, b"hello E");
    assert!(s.delivered[1..4].iter().all(Vec::is_empty), "relays deliver nothing");
    // The end-to-end acknowledgement freed every relay's copy, and A's.
    s.run(5_000);
    for i in 0..4 {
        let direct_left =
            s.nodes[i].store().iter().filter(|(_, e)| e.head.kind() == meshpost_proto::envelope::Kind::Direct).count();
        assert_eq!(direct_left, 0, "node {i} still holds the message");
    }
    s.run(20_000);
    assert_eq!(s.delivered[4].len(), 1, "never delivered twice");
}

#[test]
fn a_line_longer_than_the_default_hop_limit_is_routed_end_to_end() {
    // Twelve nodes in a line: 11 hops, more than default_hops (8). The
    // sender sees the route's length and signs 13 hops; the acknowledgement
    // comes back the same way.
    let mut s = line(12);
    s.run(40_000);
    let r = s.nodes[0].routes().into_iter().find(|r| r.dest == s.id(11)).expect("route to the far end");
    assert_eq!((r.via, r.hops), (s.id(1), 11));
    let id = s.send(0, 11, "far", None);
    s.run(5_000);
    assert_eq!(s.delivered[11].len(), 1);
    // The acknowledgement freed the sender's copy.
    assert!(s.nodes[0].store().iter().all(|(k, _)| *k != id), "no acknowledgement came back");
}

#[test]
fn partition_and_heal_delivers_all_fifty_once_and_the_flood_ends() {
    let mut s = line(5);
    s.run(20_000);
    s.cut(2, 3);
    s.run(10_000);
    assert!(!s.nodes[2].is_linked(&s.id(3)));
    for i in 0..50 {
        s.send(0, 4, &format!("m{i}"), None);
    }
    s.run(10_000);
    assert!(s.delivered[4].is_empty());
    // The routes show no path to E: A keeps them and hands one copy of
    // each to its custodian (B, its only link); nobody else gets one.
    assert!(s.nodes[0].store().len() >= 50, "A holds them while E is cut off");
    assert!(s.nodes[1].store().len() >= 50, "B holds a copy of each");
    assert!((2..5).all(|i| s.nodes[i].store().is_empty()), "no copies spread further while no path exists");
    s.connect(2, 3);
    s.run(30_000);
    let got: BTreeSet<Vec<u8>> = s.delivered[4].iter().map(|d| d.body.clone()).collect();
    assert_eq!(s.delivered[4].len(), 50, "exactly once");
    assert_eq!(got.len(), 50);
    // The flood ended: once quiet, no data envelope moves any more.
    s.run(10_000);
    let a = s.forwarded();
    s.run(30_000);
    assert_eq!(s.forwarded(), a, "envelopes still circulating");
    for i in 0..5 {
        let direct =
            s.nodes[i].store().iter().filter(|(_, e)| e.head.kind() == meshpost_proto::envelope::Kind::Direct).count();
        assert_eq!(direct, 0, "node {i} freed its copies");
    }
}

#[test]
fn an_envelope_that_expires_during_a_partition_is_never_delivered_and_purged() {
    let mut s = line(5);
    s.run(20_000);
    s.cut(2, 3);
    s.run(10_000);
    let late = s.send(0, 4, "too late", Some(60));
    s.send(0, 4, "in time", None);
    s.run(70_000);
    s.connect(2, 3);
    // The link comes back at the next handshake retry, up to
    // `retry_max_ms` (30 s) after the cut healed: 23.5 and 28.75 s in two
    // runs whose random draws differed.
    s.run(45_000);
    let texts: Vec<Vec<u8>> = s.delivered[4].iter().map(|d| d.body.clone()).collect();
    assert_eq!(texts, vec![b"in time".to_vec()]);
    for i in 0..5 {
        assert!(!s.nodes[i].store().contains(&late), "node {i} still holds the expired envelope");
        assert!(!s.persisted[i].contains_key(&late.to_string()), "node {i} did not unpersist it");
    }
}

#[test]
fn when_a_link_fails_traffic_moves_to_the_other_path() {
    // A square: 0-1-3 and 0-2-3.
    let mut s = Sim::new(4, &[(0, 1), (1, 3), (0, 2), (2, 3)]);
    s.run(20_000);
    let via = s.nodes[0].routes().into_iter().find(|r| r.dest == s.id(3)).unwrap().via;
    let (first, other) = if via == s.id(1) { (1, 2) } else { (2, 1) };
    s.cut(0, first);
    s.run(8_000);
    let r = s.nodes[0].routes().into_iter().find(|r| r.dest == s.id(3)).unwrap();
    assert_eq!(r.via, s.id(other), "route moved to the surviving path");
    s.send(0, 3, "around", None);
    s.run(3_000);
    assert_eq!(s.delivered[3].len(), 1);
}

#[test]
fn direct_envelopes_follow_the_route_instead_of_flooding() {
    // A star around node 0 plus a tail: 1-0-2, 0-3, 3-4. A message 1->4
    // must not visit node 2.
    let mut s = Sim::new(5, &[(0, 1), (0, 2), (0, 3), (3, 4)]);
    s.run(20_000);
    let before = s.nodes[2].metrics().envelopes_in;
    let announces_before = s.nodes[2].metrics().announces_in;
    s.send(1, 4, "routed", None);
    s.run(2_000);
    assert_eq!(s.delivered[4].len(), 1);
    let data_at_2 = (s.nodes[2].metrics().envelopes_in - before)
        - (s.nodes[2].metrics().announces_in - announces_before)
        - s.nodes[2].metrics().envelopes_duplicate;
    assert_eq!(data_at_2, 0, "node 2 is off the route and got no data envelope");
}

#[test]
fn channel_messages_reach_every_member_once_and_keyless_relays_cannot_read_them() {
    let mut s = line(5);
    let key = ChannelKey::generate(&mut OsRng);
    // Everyone but C (index 2) holds the key.
    for i in [0, 1, 3, 4] {
        s.nodes[i].join_channel(key.clone());
    }
    s.run(20_000);
    let ch = key.id();
    s.nodes[1].publish(Timestamp::from(s.now), ch, b"from B").unwrap();
    s.nodes[3].publish(Timestamp::from(s.now), ch, b"from D").unwrap();
    s.run(5_000);
    for i in [0, 1, 3, 4] {
        let mut got: Vec<Vec<u8>> = s.channel[i].iter().map(|d| d.body.clone()).collect();
        got.sort();
        assert_eq!(got, vec![b"from B".to_vec(), b"from D".to_vec()], "node {i}");
    }
    assert!(s.channel[2].is_empty(), "C has no key and reads nothing");
    let c_holds = s.nodes[2].store().iter().filter(|(_, e)| e.head.dest().id == ch).count();
    assert_eq!(c_holds, 2, "C relays and stores the ciphertext");
    // Replaying every datagram changes nothing.
    let wire = std::mem::take(&mut s.wire);
    for (from, to, d) in &wire {
        s.nodes[*to].handle_datagram(Timestamp::from(s.now), addr(*from), d);
    }
    s.run(5_000);
    assert_eq!(s.channel[4].len(), 2, "no duplicates after replay");
    // Joining late delivers what the store already holds.
    s.nodes[2].join_channel(key.clone());
    s.step(250);
    assert_eq!(s.channel[2].len(), 2, "late joiner gets the history from its store");
}

#[test]
fn bad_mac_messages_are_dropped_and_counted_and_floods_are_rate_limited() {
    let mut s = line(3);
    let key = ChannelKey::generate(&mut OsRng);
    for i in 0..3 {
        s.nodes[i].join_channel(key.clone());
    }
    s.run(20_000);
    // A validly signed envelope on the real channel id, sealed with another key.
    let wrong = ChannelKey::generate(&mut OsRng);
    let me = s.nodes[0].identity().public_key();
    let payload = wrong.seal(&mut OsRng, &me, 1, b"bad mac");
    let env = Envelope::seal(
        s.nodes[0].identity(),
        &Draft {
            kind: Kind::Channel,
            max_hops: 4,
            created: s.now / 1000,
            ttl: 600,
            dest: Destination { id: key.id(), domain: String::new() },
            payload: &payload,
        },
    )
    .unwrap();
    let to = s.id(1);
    assert!(s.nodes[0].send_raw_envelope(to, env.bytes()));
    s.run(2_000);
    assert_eq!(s.nodes[1].metrics().channel_undecryptable, 1);
    assert!(s.channel[1].is_empty() && s.channel[2].is_empty(), "not delivered");
    assert!(!s.nodes[1].store().contains(&env.id()), "not stored or relayed");
    // A flood of 200 from node 0: members take the burst (50), then ~5/s.
    for i in 0..200 {
        s.nodes[0].publish(Timestamp::from(s.now), key.id(), format!("m{i}").as_bytes()).unwrap();
    }
    s.run(2_000);
    let got = s.channel[2].len();
    assert!((50..120).contains(&got), "rate limit held ({got} of 200 got through)");
    assert!(s.nodes[1].metrics().channel_rate_limited > 0);
    // Oversized messages are refused at publish.
    let big = vec![b'x'; meshpost_proto::channel::MAX_CHANNEL_BODY + 1];
    let err = s.nodes[0].publish(Timestamp::from(s.now), key.id(), &big).unwrap_err();
    assert!(err.to_string().contains("larger than the channel maximum"));
}

// ---- federation -------------------------------------------------------------

use meshpost_proto::federation::Policy;
use meshpost_proto::node::PeerSpec;

/// Domain ffa: A1(0) - A2(1) - GA(2); domain ffb: GB(3) - B2(4) - B1(5).
/// GA and GB are federation peers over a "wan" link, pinned both ways.
fn two_domains(pin_ok: bool, tweak: impl Fn(&mut Policy)) -> Sim {
    let mut s = Sim::new(6, &[(0, 1), (1, 2), (3, 4), (4, 5)]);
    let cfg = |domain: &str, n: &Node| Config { domain: domain.into(), ..n.config().clone() };
    for i in 0..6 {
        let c = cfg(if i < 3 { "ffa" } else { "ffb" }, &s.nodes[i]);
        s.nodes[i].set_config(c, Timestamp::from(s.now));
    }
    let wrong = Identity::generate(&mut OsRng).public_key();
    let mut pa = Policy::new("ffb");
    let mut pb = Policy::new("ffa");
    tweak(&mut pa);
    tweak(&mut pb);
    let gb_key = if pin_ok { s.keys[3] } else { wrong };
    s.nodes[2].add_peer(PeerSpec { addr: addr(3), pin: Some(gb_key), federation: Some(pa) }, Timestamp::from(s.now));
    s.nodes[3].add_peer(PeerSpec { addr: addr(2), pin: Some(s.keys[2]), federation: Some(pb) }, Timestamp::from(s.now));
    s.wan.insert((2, 3));
    s
}

#[test]
fn a_message_crosses_to_another_domain_and_the_reply_comes_back() {
    let mut s = two_domains(true, |_| {});
    s.run(30_000);
    let b1 = s.id(5);
    assert!(s.nodes[0].card(&b1).is_some(), "A1 learned B1's keys through the gateways");
    let id = s.send(0, 5, "hello ffb", None);
    s.run(5_000);
    assert_eq!(s.delivered[5].len(), 1);
    assert_eq!(s.delivered[5][0].body, b"hello ffb");
    assert_eq!(s.delivered[5][0].from, s.id(0), "origin signature intact across gateways");
    assert_eq!(s.delivered[5][0].id, id);
    // The reply finds its way back.
    let reply = s.send(5, 0, "hello ffa", None);
    s.run(5_000);
    assert_eq!(s.delivered[0].len(), 1);
    assert_eq!(s.delivered[0][0].body, b"hello ffa");
    // The acknowledgements crossed too: within 5 s no node of either
    // community holds either message any more (nor did it wait the TTL).
    for (i, n) in s.nodes.iter().enumerate() {
        assert!(!n.store().contains(&id) && !n.store().contains(&reply), "node {i} still holds a delivered message");
    }
    // Gateways carried ciphertext only and delivered nothing themselves.
    assert!(s.delivered[2].is_empty() && s.delivered[3].is_empty());
    let fed = s.nodes[2].federation_links();
    assert_eq!(fed.len(), 1);
    assert_eq!(fed[0].domain, "ffb");
    assert!(fed[0].counters.envelopes_out >= 1 && fed[0].counters.envelopes_in >= 1);
    s.run(10_000);
    assert_eq!(s.delivered[5].len(), 1, "exactly once");
}

#[test]
fn with_the_gateway_link_down_fifty_wait_and_all_arrive_later() {
    let mut s = two_domains(true, |p| {
        p.in_burst = 1000;
        p.out_burst = 1000;
    });
    s.run(30_000);
    s.wan.clear();
    s.run(10_000);
    for i in 0..50 {
        s.send(0, 5, &format!("m{i}"), None);
    }
    s.run(10_000);
    assert!(s.delivered[5].is_empty());
    assert!(s.nodes[2].store().len() >= 50, "GA holds them while the gateway link is down");
    s.wan.insert((2, 3));
    s.run(60_000);
    let got: BTreeSet<Vec<u8>> = s.delivered[5].iter().map(|d| d.body.clone()).collect();
    assert_eq!(s.delivered[5].len(), 50, "exactly once");
    assert_eq!(got.len(), 50);
}

#[test]
fn a_wrong_pinned_gateway_key_gets_no_link_and_nothing_crosses() {
    // GA's pin for GB is wrong; GB's pin for GA is right.
    let mut s = two_domains(false, |_| {});
    s.run(30_000);
    let (ga, gb) = (s.id(2), s.id(3));
    assert!(!s.nodes[2].is_linked(&gb));
    assert!(s.nodes[2].metrics().peers_refused > 0);
    assert!(s.nodes[0].card(&s.id(5)).is_none(), "no keys from ffb reached ffa");
    assert!(s.nodes[2].federation_links().is_empty());
    // The side whose pin is right is told, and never counts the link up
    // nor anything as sent over it (not even its community's cards).
    let mut up_seen = false;
    for _ in 0..300 {
        s.step(100);
        up_seen |= s.nodes[3].is_linked(&ga);
        for l in s.nodes[3].federation_links() {
            assert_eq!(l.counters.envelopes_out, 0, "GB sent nothing over an unconfirmed link");
        }
    }
    assert!(!up_seen, "GB never showed the link up");
    let why = s.nodes[3].refusal(&ga).unwrap_or_default().to_string();
    assert!(why.starts_with("refused by peer: our key is not the one it has pinned"), "GB's state: {why:?}");
    assert!(s.nodes[2].refusal(&gb).is_some_and(|r| r.contains("pinned")), "GA says why it refused");
    // One log line per cause on each side, not one per attempt.
    assert!(s.refusals_logged[2] <= 2 && s.refusals_logged[3] <= 2, "log lines: {:?}", s.refusals_logged);
}

#[test]
fn a_flood_over_quota_is_cut_at_the_gateway_and_local_traffic_flows() {
    let mut s = two_domains(true, |p| {
        p.in_rate = 5;
        p.in_burst = 20;
    });
    s.run(30_000);
    // B1 floods A1; GA lets in 20 at once and then 5 a second.
    for i in 0..200 {
        s.send(5, 0, &format!("flood {i}"), None);
    }
    for i in 0..10 {
        s.send(0, 1, &format!("local {i}"), None);
    }
    s.run(3_000);
    assert_eq!(s.delivered[1].len(), 10, "A1 -> A2 kept flowing during the flood");
    let drops = s.nodes[2].federation_links()[0].counters.quota_drops;
    assert!(drops > 0, "GA cut the flood");
    assert!(s.delivered[0].len() < 100, "only what the quota allows crossed so far ({})", s.delivered[0].len());
}

#[test]
fn only_federated_channels_cross_and_spoofed_reinjection_is_refused() {
    let inside = ChannelKey::generate(&mut OsRng);
    let shared = ChannelKey::generate(&mut OsRng);
    let shared_id = shared.id();
    let mut s = two_domains(true, move |p| p.channels = vec![shared_id]);
    for i in [0, 5] {
        s.nodes[i].join_channel(inside.clone());
        s.nodes[i].join_channel(shared.clone());
    }
    s.run(30_000);
    s.nodes[0].publish(Timestamp::from(s.now), inside.id(), b"inside only").unwrap();
    s.nodes[0].publish(Timestamp::from(s.now), shared.id(), b"for both communities").unwrap();
    s.run(5_000);
    let got: Vec<Vec<u8>> = s.channel[5].iter().map(|d| d.body.clone()).collect();
    assert_eq!(got, vec![b"for both communities".to_vec()]);
    assert!(s.nodes[3].store().iter().all(|(_, e)| e.head.dest().id != inside.id()), "GB never saw it");
    // GB learned the id somehow and asks for it: a want obeys the same
    // crossing rule as an offer.
    let inside_id = *s.nodes[2].store().iter().find(|(_, e)| e.head.dest().id == inside.id()).unwrap().0;
    let ga = s.id(2);
    let out_before = s.nodes[2].federation_links()[0].counters.envelopes_out;
    for f in id_frames(IdList::Want, &[inside_id]) {
        assert!(s.nodes[3].send_raw_frame(ga, &f));
    }
    s.run(1_000);
    // What GA sends is what counts: a malicious GB would keep it.
    assert_eq!(s.nodes[2].federation_links()[0].counters.envelopes_out, out_before, "asking does not get it");
    // GB re-injects an envelope from ffa back into ffa: GA refuses it.
    let a1_env = s.nodes[2]
        .store()
        .iter()
        .find(|(_, e)| e.head.origin_id() == s.id(0))
        .map(|(_, e)| e.bytes().expect("in memory").to_vec())
        .unwrap();
    assert!(s.nodes[3].send_raw_envelope(ga, &a1_env));
    s.run(1_000);
    assert_eq!(s.nodes[2].federation_links()[0].counters.refused_spoofed, 1);
}

#[test]
fn a_node_of_another_domain_cannot_join_as_a_plain_mesh_neighbour() {
    // GA and GB reach each other but neither has a federation section.
    let mut s = Sim::new(2, &[(0, 1)]);
    for (i, d) in [(0, "ffa"), (1, "ffb")] {
        let c = Config { domain: d.into(), ..s.nodes[i].config().clone() };
        s.nodes[i].set_config(c, Timestamp::from(s.now));
    }
    s.run(10_000);
    assert!(s.nodes[0].metrics().peers_refused > 0);
    assert!(s.nodes[0].card(&s.id(1)).is_none(), "its keys were not learned");
    // Two more minutes of it: one log line per side for this cause (it was
    // about two a second), and dials that back off instead of flapping.
    let hs0 = s.nodes[0].metrics().handshakes_completed;
    s.run(120_000);
    assert!(s.refusals_logged[0] <= 1 && s.refusals_logged[1] <= 1, "logged {:?}", s.refusals_logged);
    let hs = s.nodes[0].metrics().handshakes_completed - hs0;
    assert!(hs <= 8, "{hs} handshakes in two minutes: dials back off (was one every second)");
}

#[test]
fn wall_clock_steps_keep_links_up_and_rekeys_going() {
    let mut s = line(3);
    for n in &mut s.nodes {
        let mut c = n.config().clone();
        c.rekey_after_ms = 20_000;
        n.set_config(c, Timestamp::from(s.now));
    }
    s.run(10_000);
    let linked = |s: &Sim| s.nodes[0].is_linked(&s.id(1)) && s.nodes[1].is_linked(&s.id(2));
    assert!(linked(&s));
    let handshakes = |s: &Sim| s.nodes.iter().map(|n| n.metrics().handshakes_completed).sum::<u64>();
    for step in [86_400_000i64, -86_400_000, -86_400_000] {
        // NTP steps every node's wall clock (+1 day, back, then -1 day).
        s.unix_offset += step;
        let before = handshakes(&s);
        for _ in 0..240 {
            s.step(250);
            assert!(linked(&s), "links stay up across a wall-clock step of {step} ms");
        }
        assert_eq!(s.link_downs, 0, "no link was dropped (and re-made) across a step of {step} ms");
        assert!(handshakes(&s) >= before + 4, "rekeys continued (2 links, 60 s, every 20 s)");
        let id = s.send(0, 2, &format!("after a step of {step}"), None);
        s.run(2_000);
        assert!(s.delivered[2].iter().any(|d| d.id == id), "messages still flow after a step of {step}");
    }
}

/// A hash of every datagram, in order, with who sent it to whom.
fn transcript(seed: u8) -> (u64, usize) {
    use std::hash::{Hash, Hasher};
    let mut s = Sim::seeded(4, &[(0, 1), (1, 2), (2, 3)], seed);
    s.run(10_000);
    for i in 0..5 {
        s.send(0, 3, &format!("m{i}"), None);
        s.send(3, 1, &format!("r{i}"), None);
    }
    s.cut(1, 2);
    s.run(8_000);
    s.connect(1, 2);
    s.run(10_000);
    assert_eq!(s.delivered[3].len() + s.delivered[1].len(), 10, "the scenario delivers everything");
    let mut h = std::collections::hash_map::DefaultHasher::new();
    s.wire.hash(&mut h);
    (h.finish(), s.wire.len())
}

#[test]
fn the_same_seed_gives_the_same_transcript() {
    let (a, n) = transcript(7);
    let (b, m) = transcript(7);
    assert_eq!((a, n), (b, m), "every datagram of the run is the same");
    let (c, _) = transcript(8);
    assert_ne!(a, c, "another seed is another run");
}

#[test]
fn a_hundred_federated_messages_are_freed_on_every_node_once_delivered() {
    let mut s = two_domains(true, |_| {});
    s.run(30_000);
    let ids: Vec<EnvelopeId> = (0..100).map(|i| s.send(0, 5, &format!("m{i}"), None)).collect();
    s.run(30_000);
    assert_eq!(s.delivered[5].len(), 100, "all delivered once");
    for (i, n) in s.nodes.iter().enumerate() {
        let held = ids.iter().filter(|id| n.store().contains(id)).count();
        assert_eq!(held, 0, "node {i} still holds {held} delivered messages");
    }
}

#[test]
fn reloading_a_changed_federation_policy_keeps_the_link_and_its_counters() {
    let mut s = two_domains(true, |_| {});
    s.run(30_000);
    s.send(0, 5, "before the reload", None);
    s.run(3_000);
    let before = s.nodes[2].federation_links()[0].clone();
    assert!(before.counters.envelopes_out >= 1);
    let downs = s.link_downs;
    // The admin changes out_rate and out_burst and reloads GA.
    let mut p = Policy::new("ffb");
    (p.out_rate, p.out_burst) = (5, 5);
    let gb_key = s.keys[3];
    s.nodes[2].set_peers(&[PeerSpec { addr: addr(3), pin: Some(gb_key), federation: Some(p) }], Timestamp::from(s.now));
    s.run(3_000);
    let after = s.nodes[2].federation_links()[0].clone();
    assert_eq!(s.link_downs, downs, "the federation link was not dropped");
    assert_eq!(after.established_ms, before.established_ms, "the same session");
    assert!(after.counters.envelopes_out >= before.counters.envelopes_out, "counters kept");
    assert_eq!(after.policy.out_rate, 5, "the new policy is in force");
}

#[test]
fn federation_out_rate_paces_a_burst_independent_of_sync() {
    // out_rate 5, out_burst 5: of 50 sent at once, 5 cross at once and the
    // rest at 5 a second (about 9 s), not a burst per sync round.
    let mut s = two_domains(true, |p| (p.out_rate, p.out_burst) = (5, 5));
    s.run(30_000);
    let t0 = s.now;
    for i in 0..50 {
        s.send(0, 5, &format!("m{i}"), None);
    }
    let (mut peak, mut arrivals) = (0, Vec::new());
    while s.delivered[5].len() < 50 && s.now < t0 + 30_000 {
        let before = s.delivered[5].len();
        s.step(100);
        peak = peak.max(s.nodes[2].federation_links()[0].backlog);
        arrivals.extend(std::iter::repeat_n(s.now - t0, s.delivered[5].len() - before));
    }
    assert_eq!(s.delivered[5].len(), 50, "all arrive, once");
    let last = *arrivals.last().unwrap();
    assert!((8_500..=11_000).contains(&last), "the last arrived after {last} ms, not about 9 s");
    assert!(arrivals.iter().filter(|t| **t <= 1_000).count() <= 10, "no more than the burst at once: {arrivals:?}");
    let fed = &s.nodes[2].federation_links()[0];
    assert!(peak >= 40, "the backlog gauge rose (peak {peak})");
    assert_eq!(fed.backlog, 0, "and returned to 0");
    assert!(fed.counters.delayed >= 45, "delayed counted: {}", fed.counters.delayed);
}

#[test]
fn a_federation_backlog_kept_on_disk_only_crosses_in_order_at_the_paced_rate() {
    // The same burst with every node keeping at most 2 KB of envelope
    // bytes in memory (a few of the 50; the rest once durable): the relays pass each copy on as it arrives (in memory
    // still), the gateway drains its paced queue from what it reads back,
    // and the recipient gets them in the order sent.
    let mut s = two_domains(true, |p| (p.out_rate, p.out_burst) = (5, 5));
    for n in &mut s.nodes {
        let mut c = n.config().clone();
        c.store.max_hot_bytes = 2_000;
        n.set_config(c, Timestamp::from(s.now));
    }
    s.run(30_000);
    let t0 = s.now;
    let ids: Vec<_> = (0..50).map(|i| s.send(0, 5, &format!("m{i}"), None)).collect();
    while s.delivered[5].len() < 50 && s.now < t0 + 30_000 {
        s.step(100);
    }
    let got: Vec<_> = s.delivered[5].iter().map(|d| d.id).collect();
    assert_eq!(got, ids, "all arrive, once, in the order sent");
    let last = s.now - t0;
    assert!((8_500..=11_000).contains(&last), "the last arrived after {last} ms, not about 9 s");
    let read_back = |i: usize| s.nodes[i].metrics().envelopes_read_back;
    assert!(read_back(2) >= 30, "the gateway read its queue back ({})", read_back(2));
    assert!(s.nodes.iter().all(|n| n.metrics().envelopes_unreadable == 0));
}

#[test]
fn a_returning_gateway_link_sends_a_backlog_half_on_disk_in_the_order_sent() {
    // GA holds ten messages for ffb while its link to GB is down, all in
    // memory; then its memory limit drops and the oldest go to disk only
    // (cold.rs, oldest first). The returning link's first paced pass has a
    // burst of five, used by the cards handed over; the ten then wait in
    // its paced queue, and each later pass (20 a second, a step of 250 ms)
    // takes five: some read back, then some still in memory. One in
    // memory behind one being read must wait for it (forward.rs,
    // `after_cold`), or it overtakes it.
    let mut s = two_domains(true, |p| (p.out_rate, p.out_burst) = (20, 5));
    s.run(30_000);
    s.wan.clear();
    s.run(10_000);
    let ids: Vec<_> = (0..10).map(|i| s.send(0, 5, &format!("m{i}"), None)).collect();
    s.run(10_000);
    let held = |s: &Sim| ids.iter().filter(|id| s.nodes[2].store().contains(id)).count();
    assert_eq!(held(&s), 10, "GA holds them while the gateway link is down");
    let size = |i: usize| s.nodes[2].store().get(&ids[i]).map_or(0, |e| e.head.len());
    let mut c = s.nodes[2].config().clone();
    c.store.max_hot_bytes = size(7) + size(8) + size(9);
    let now = s.ts();
    s.nodes[2].set_config(c, now);
    let cold: Vec<bool> = ids.iter().map(|id| s.nodes[2].store().get(id).is_some_and(|e| e.is_cold())).collect();
    assert!(cold[..3].iter().all(|c| *c) && !cold[9], "the oldest on disk only, the newest in memory: {cold:?}");
    s.wan.insert((2, 3));
    let t0 = s.now;
    while s.delivered[5].len() < 10 && s.now < t0 + 60_000 {
        s.step(250);
    }
    let got: Vec<_> = s.delivered[5].iter().map(|d| d.id).collect();
    assert_eq!(got, ids, "all arrive, once, in the order sent");
    assert!(s.nodes[2].metrics().envelopes_read_back >= 3, "GA read the oldest back");
}

#[test]
fn the_other_domains_nodes_are_known_within_seconds_of_the_federation_link_coming_up() {
    let mut s = two_domains(true, |_| {});
    for n in &mut s.nodes {
        let c = Config { announce_interval_ms: 60_000, route_timeout_ms: 180_000, ..n.config().clone() };
        n.set_config(c, Timestamp::from(s.now));
    }
    let wan = s.wan.clone();
    s.wan.clear();
    s.run(70_000);
    assert!(s.nodes[0].card(&s.id(5)).is_none(), "no keys cross without the link");
    s.wan = wan;
    let t0 = s.now;
    while !s.nodes[2].is_linked(&s.id(3)) && s.now < t0 + 30_000 {
        s.step(100);
    }
    let up = s.now;
    while s.nodes[0].card(&s.id(5)).is_none() && s.now < up + 10_000 {
        s.step(100);
    }
    let took = s.now - up;
    assert!(took <= 5_000, "A1 learned B1's keys {took} ms after the link came up (announce interval 60 s)");
    let id = s.send(0, 5, "right away", None);
    s.run(5_000);
    assert!(s.delivered[5].iter().any(|d| d.id == id), "and a message to B1 arrives");
}

#[test]
fn twenty_thousand_minted_identities_over_eight_links_stay_within_the_card_bounds() {
    // Node 0 with eight neighbours (1..=8); node 9 is a real node two hops
    // away (behind 1). Every neighbour pushes minted identities' announces.
    let mut edges: Vec<(usize, usize)> = (1..=8).map(|i| (0, i)).collect();
    edges.push((1, 9));
    let mut s = Sim::new(10, &edges);
    let cap = 2_000;
    let c = Config { max_cards: cap, ..s.nodes[0].config().clone() };
    s.nodes[0].set_config(c, Timestamp::from(s.now));
    s.run(20_000);
    let (center, far) = (s.id(0), s.id(9));
    assert!(s.nodes[0].card(&far).is_some(), "the far node is known before the flood");
    let mut minted = 0u32;
    let mut refused = s.nodes[0].metrics().envelopes_rate_limited;
    for round in 0..100u32 {
        for link in 1..=8usize {
            for k in 0..25u32 {
                let mut seed = [0u8; 32];
                seed[..4].copy_from_slice(&minted.to_le_bytes());
                seed[4] = 0xAB;
                minted += 1;
                let id = Identity::from_seed(&seed);
                let card = meshpost_proto::card::Card {
                    ed_pk: id.public_key(),
                    x25519: id.e2e_public(),
                    kem_ek: None,
                    name: format!("mint{round}-{link}-{k}"),
                    domain: String::new(),
                    seq: 1,
                    neighbours: Vec::new(),
                    gateway_for: Vec::new(),
                };
                let draft = Draft {
                    kind: Kind::Announce,
                    max_hops: 1,
                    created: s.ts().unix_ms / 1000,
                    ttl: 24 * 3600,
                    dest: Destination { id: [0; 16], domain: String::new() },
                    payload: &card.encode(),
                };
                let env = Envelope::seal(&id, &draft).unwrap();
                assert!(s.nodes[link].send_raw_envelope(center, env.bytes()));
            }
        }
        s.step(250);
    }
    assert_eq!(minted, 20_000);
    refused = s.nodes[0].metrics().envelopes_rate_limited - refused;
    let cards = s.nodes[0].cards().count();
    let files = s.card_files[0].len();
    eprintln!("20,000 minted: {refused} refused by the per-link budget, {cards} cards in memory, {files} card files");
    assert!(cards <= cap && files <= cap, "cards {cards}, files {files}, bound {cap}");
    assert_eq!(files, cards, "disk follows memory");
    assert!(refused >= 10_000, "the per-link budget for unknown origins held ({refused} refused)");
    for n in 1..=9 {
        assert!(s.nodes[0].card(&s.id(n)).is_some(), "real node {n} kept its card");
    }
}

#[test]
fn on_a_shared_segment_each_announce_reaches_each_node_about_once() {
    // Eight nodes that all hear each other (one batman-adv segment): every
    // node gets each announce from its origin directly, so neighbours of
    // the origin must not flood it to each other again ((N-1)^2 copies).
    let n = 8;
    let edges: Vec<(usize, usize)> = (0..n).flat_map(|a| (a + 1..n).map(move |b| (a, b))).collect();
    let mut s = Sim::new(n, &edges);
    // A fixed interval (no backoff), so the rounds can be counted, and
    // every node links to every other (no preferred few, `link_target` 0).
    for x in &mut s.nodes {
        let c = Config { announce_max_interval_ms: 5_000, link_target: 0, ..x.config().clone() };
        x.set_config(c, Timestamp::from(s.now));
    }
    s.run(30_000);
    let before: u64 = s.nodes.iter().map(|x| x.metrics().announces_in + x.metrics().announces_duplicate).sum();
    let fwd0: u64 = s.nodes.iter().map(|x| x.metrics().announces_forwarded).sum();
    s.run(60_000);
    let received: u64 =
        s.nodes.iter().map(|x| x.metrics().announces_in + x.metrics().announces_duplicate).sum::<u64>() - before;
    let forwarded: u64 = s.nodes.iter().map(|x| x.metrics().announces_forwarded).sum::<u64>() - fwd0;
    // 60 s at one announce each 5 s: 12 rounds of 8 announces, each heard by
    // 7 nodes directly.
    let direct = 12 * n as u64 * (n as u64 - 1);
    eprintln!("full mesh of {n}, 60 s: {received} announces received ({direct} direct), {forwarded} forwarded");
    assert!(received <= direct + direct / 4, "{received} received, direct alone is {direct}");
    assert!(forwarded <= direct / 4, "{forwarded} re-flooded copies");
}

#[test]
fn a_node_that_links_after_the_beacons_went_by_gets_the_cards_and_routes_at_once() {
    let mut s = Sim::new(3, &[(1, 2)]);
    for n in &mut s.nodes {
        let c = Config {
            announce_interval_ms: 60_000,
            announce_max_interval_ms: 3_600_000,
            route_timeout_ms: 3 * 3_600_000,
            ..n.config().clone()
        };
        n.set_config(c, Timestamp::from(s.now));
    }
    s.run(10_000);
    let c = s.id(2);
    assert!(s.nodes[1].card(&c).is_some() && s.nodes[0].card(&c).is_none());
    // Node 0 links to node 1 long before the next beacon of node 2: node 1
    // offers the ids of its cards and node 0 asks for the one it lacks.
    let served = s.nodes[1].metrics().cards_served;
    s.connect(0, 1);
    let t0 = s.now;
    while s.nodes[0].card(&c).is_none() && s.now < t0 + 30_000 {
        s.step(100);
    }
    assert!(s.now - t0 <= 3_000, "node 0 learned node 2's card {} ms after linking", s.now - t0);
    // And node 2's newest beacon, offered by id with the cards: its
    // neighbour list puts node 2 in node 0's graph, behind node 1.
    while !s.nodes[0].routes().iter().any(|r| r.dest == c) && s.now < t0 + 30_000 {
        s.step(100);
    }
    assert!(s.now - t0 <= 3_000, "node 0 had a route to node 2 {} ms after linking", s.now - t0);
    let r = s.nodes[0].routes().into_iter().find(|r| r.dest == c).unwrap();
    assert_eq!((r.via, r.hops), (s.id(1), 2));
    s.run(5_000);
    // Two cards moved through node 1: node 2's to node 0, and node 0's to
    // node 2 (for node 0's first beacon); none that was held already.
    assert_eq!(s.nodes[1].metrics().cards_served - served, 2);
    assert!(s.nodes[2].card(&s.id(0)).is_some());
}
