//! Beacons and full cards between two nodes: the card crosses a link once,
//! beacons carry the rest, a changed card is fetched at once, and beacons
//! naming cards nobody can deliver cost a bounded wait.

use super::*;
use crate::beacon::Beacon;

fn announce_bytes(n: &Node) -> u64 {
    n.wire_stats().bytes[WireClass::Announce as usize]
}

/// Sends what `from` queued straight into `to` (one direction only).
fn carry(from: &mut Node, to: &mut Node, from_addr: SocketAddr, now: u64) {
    for a in take_actions(from) {
        if let Action::Transmit { data, .. } = a {
            to.handle_datagram(Timestamp::from(now), from_addr, &data);
        }
    }
}

#[test]
fn a_card_crosses_the_link_once_and_beacons_carry_the_rest() {
    let mut p = Pair::new(None);
    p.run(2_000, 100);
    let (aid, bid) = (p.a.node_id(), p.b.node_id());
    assert!(p.b.card(&aid).is_some() && p.a.card(&bid).is_some(), "cards exchanged at link-up");
    let before = announce_bytes(&p.a);
    p.run(10 * 60_000, 1_000);
    // Ten intervals: ten beacons, no card. A card is about 1.4 KB; a
    // beacon of a node with one neighbour is 175 bytes.
    let per_interval = (announce_bytes(&p.a) - before) / 10;
    assert!(per_interval < 300, "{per_interval} announce bytes per interval");
    assert_eq!((p.a.metrics().cards_served, p.b.metrics().cards_requested), (0, 0));
    assert!(p.b.routes().iter().any(|r| r.dest == aid), "B keeps its route to A from beacons");
    // A renames itself: a new card, which B asks for when the beacon names it.
    let cfg = Config { name: "a-renamed".into(), ..p.a.config().clone() };
    p.a.set_config(cfg, Timestamp::from(p.now));
    p.run(2_000, 100);
    assert_eq!(p.b.card(&aid).map(|c| c.name.clone()).as_deref(), Some("a-renamed"));
    assert_eq!((p.a.metrics().cards_served, p.b.metrics().cards_requested), (1, 1));
}

#[test]
fn beacons_naming_cards_nobody_delivers_wait_in_a_bounded_set() {
    let mut p = Pair::new(None);
    p.run(2_000, 100);
    let aid = p.a.node_id();
    let beacon = |i: u32, now: u64| {
        let mut seed = [9u8; 32];
        seed[..4].copy_from_slice(&i.to_le_bytes());
        let id = Identity::from_seed(&seed);
        let b = Beacon { card_id: EnvelopeId([i as u8; 16]), seq: 1, neighbours: Vec::new() };
        Envelope::seal(
            &id,
            &Draft {
                kind: Kind::Announce,
                max_hops: 4,
                created: now / 1000,
                ttl: 24 * 3600,
                dest: Destination { id: [0; 16], domain: String::new() },
                payload: &b.encode(),
            },
        )
        .unwrap()
    };
    let taken = p.a.metrics().announces_in;
    // B sends beacons of 400 strangers whose cards it does not hold.
    for i in 0..400u32 {
        assert!(p.b.send_raw_envelope(aid, beacon(i, p.now).bytes()));
        carry(&mut p.b, &mut p.a, addr(2), p.now);
        take_actions(&mut p.a);
        p.now += 1;
    }
    assert!(p.a.held.len() <= cardfetch::MAX_HELD, "{} beacons held", p.a.held.len());
    assert_eq!(p.a.metrics().cards_requested, p.a.held.len() as u64, "one want per held beacon");
    assert_eq!(p.a.metrics().announces_in, taken, "none taken");
    assert_eq!(p.a.cards().count(), 1, "no card learned but B's");
    // Once the wait is over, the set takes new beacons again.
    p.now += cardfetch::HOLD_MS + 1;
    assert!(p.b.send_raw_envelope(aid, beacon(1000, p.now).bytes()));
    carry(&mut p.b, &mut p.a, addr(2), p.now);
    assert!(p.a.held.contains_key(&beacon(1000, p.now).origin_id()));
}

#[test]
fn a_neighbour_asking_for_cards_over_and_over_gets_a_bounded_number() {
    let mut p = Pair::new(None);
    p.run(2_000, 100);
    let aid = p.a.node_id();
    let card_id = p.a.full_card.as_ref().unwrap().0.id();
    let served0 = p.a.metrics().cards_served;
    // 20 want frames of 70 ids each within 20 ms, all naming A's card.
    for _ in 0..20 {
        for f in id_frames(IdList::Want, &[card_id; 70]) {
            assert!(p.b.send_raw_frame(aid, &f));
        }
        carry(&mut p.b, &mut p.a, addr(2), p.now);
        take_actions(&mut p.a);
        p.now += 1;
    }
    let served = p.a.metrics().cards_served - served0;
    assert!(served <= u64::from(NEW_CARD_BURST) + 1, "{served} cards served for 1,400 asked");
    assert!(served >= 100, "a burst is answered: {served}");
}

#[test]
fn a_card_is_signed_again_before_it_expires_and_fetched_by_the_neighbour() {
    let mut p = Pair::new(None);
    p.run(2_000, 100);
    let aid = p.a.node_id();
    let first = p.a.full_card.as_ref().unwrap().0.id();
    // Past half the card's 24-hour lifetime: A signs a new card, its beacon
    // names it, and B fetches it (an expired card would be refused by
    // every node that meets A later).
    p.run(13 * 3_600_000, 30_000);
    let now_card = p.a.full_card.as_ref().unwrap().0.id();
    assert_ne!(now_card, first, "A signed its card again");
    assert_eq!(p.b.cards.by_card_id(&now_card).map(|(n, _)| n), Some(aid), "B holds the new card");
    assert_eq!(p.b.metrics().cards_requested, 1);
}

#[test]
fn a_copy_of_a_beacon_already_taken_costs_a_hash_not_a_signature_check() {
    let mut p = Pair::new(None);
    p.run(2_000, 100);
    let bid = p.b.node_id();
    let beacon = p.a.announce.as_ref().map(|e| e.bytes().to_vec()).unwrap();
    assert!(p.b.seen.contains(&Envelope::peek_id(&beacon).unwrap().0), "B took A's beacon at link-up");
    let (dup0, bad0) = (p.b.metrics().announces_duplicate, p.b.metrics().envelopes_bad_signature);
    // The same beacon with its signature spoiled: B knows the id, so it is
    // a duplicate, dropped before any signature check.
    let mut spoiled = beacon.clone();
    *spoiled.last_mut().unwrap() ^= 1;
    assert!(p.a.send_raw_envelope(bid, &spoiled));
    carry(&mut p.a, &mut p.b, addr(1), p.now);
    assert_eq!(p.b.metrics().announces_duplicate, dup0 + 1);
    assert_eq!(p.b.metrics().envelopes_bad_signature, bad0);
    // A changed signed byte (the payload's last, before the 64-byte
    // signature) gives another id: checked in full, and refused.
    let mut forged = beacon;
    let at = forged.len() - 65;
    forged[at] ^= 1;
    assert!(!p.b.seen.contains(&Envelope::peek_id(&forged).unwrap().0));
    assert!(p.a.send_raw_envelope(bid, &forged));
    carry(&mut p.a, &mut p.b, addr(1), p.now);
    assert_eq!(p.b.metrics().envelopes_bad_signature, bad0 + 1);
}

#[test]
fn a_rekey_does_not_offer_the_beacons_again() {
    let mut p = Pair::new(None);
    p.run(5_000, 100);
    let sync = |n: &Node| n.wire_stats().bytes[WireClass::Sync as usize];
    // Settled: A's beacon was offered and B said it has it.
    p.run(60_000, 1_000);
    let before = sync(&p.a);
    let rekeys = p.a.metrics().clone();
    // Past two rekeys (every 10 minutes), with nothing stored: A offers
    // nothing, as B's newest beacon and A's own are known to be held.
    p.run(25 * 60_000, 5_000);
    assert!(p.events.iter().filter(|e| matches!(e, Event::Rekeyed { .. })).count() >= 2, "{rekeys:?}");
    let after = sync(&p.a);
    // A's new beacons in this time (backoff: 421, 901 s after the link)
    // are each offered once: 384 bytes with their haves. Offering the
    // held beacons again at each rekey made it 576.
    assert!(after - before < 480, "{} sync bytes over two rekeys", after - before);
}

#[test]
fn a_restarted_neighbour_is_offered_our_beacon_again() {
    let mut p = Pair::new(None);
    // A's beacons: 1, 61 and 181 s after the link; the next at 421 s.
    p.run(200_000, 1_000);
    let aid = p.a.node_id();
    // B restarts with its identity and nothing else: it must learn A's
    // card and beacon again, though A's link to it never went down and A
    // had seen B hold A's beacon. B's new card tells A it restarted.
    let ib = Identity::from_file_bytes(&p.b.identity().to_file_bytes()).unwrap();
    p.b = Node::new(ib, Config { name: "b".into(), ..Config::default() }, [3; 32], Timestamp::from(p.now));
    let t0 = p.now;
    let knows_a = |b: &Node| b.card(&aid).is_some() && b.cards.advert(&aid).is_some_and(|a| !a.neighbours.is_empty());
    while !knows_a(&p.b) && p.now < t0 + 60_000 {
        p.run(500, 100);
    }
    // Within a sync round (15 s), not at A's next beacon (minutes away).
    assert!(knows_a(&p.b), "B learned A's card and beacon again");
    assert!(p.now - t0 <= 20_000, "B knew A again {} ms after its restart", p.now - t0);
}

#[test]
fn a_newer_beacon_with_the_same_neighbours_does_not_search_the_graph_again() {
    let mut p = Pair::new(None);
    p.run(5_000, 100);
    let aid = p.a.node_id();
    assert!(p.b.best_route(&aid).is_some(), "B routes to A");
    let (searches, seq) = (p.b.route_searches(), p.b.cards.advert(&aid).map(|a| a.seq));
    // A beacons again with the same neighbour: B takes it (a newer
    // sequence number, shown by its route) without a search of the graph.
    p.a.announce_now(p.now);
    carry(&mut p.a, &mut p.b, addr(1), p.now);
    let route = p.b.best_route(&aid).expect("route kept");
    assert!(Some(route.seq) > seq, "route shows the newer beacon: {} after {seq:?}", route.seq);
    assert_eq!(p.b.route_searches(), searches, "no search for a beacon that changes no link");
}

#[test]
fn a_link_change_is_beaconed_within_a_second_and_the_backoff_goes_on_where_it_was() {
    let mut p = Pair::new(None);
    // Two quiet hours: A's interval has doubled from 60 s to over an hour.
    p.run(2 * 3_600_000, 10_000);
    let settled = p.a.announce_ivl;
    assert!(settled >= 3_840_000, "interval {settled} ms");
    let bid = p.b.node_id();
    // B goes away for five minutes and comes back; A is watched each second
    // for 40 minutes: when its link to B changes, and when it signs a beacon.
    let (mut beacons, mut changes, mut made, mut linked) = (vec![], vec![], p.a.announce_made_ms, true);
    p.b_up = false;
    let t0 = p.now;
    while p.now < t0 + 40 * 60_000 {
        p.b_up = p.now >= t0 + 5 * 60_000 || p.now < t0;
        p.run(1_000, 100);
        if p.a.announce_made_ms != made {
            made = p.a.announce_made_ms;
            beacons.push(made);
        }
        if p.a.is_linked(&bid) != linked {
            linked = !linked;
            changes.push(p.now);
        }
    }
    assert_eq!(changes.len(), 2, "the link went down and came back: {changes:?}");
    for c in &changes {
        assert!(beacons.iter().any(|b| (c - 1_000..=c + 2_000).contains(b)), "a beacon within a second of {c}");
    }
    // One beacon per change, and the interval is still the settled one
    // (starting the backoff again from 60 s signed six more in this time).
    assert_eq!(beacons.len(), 2, "beacons at {beacons:?}, changes at {changes:?}");
    assert!(p.a.announce_ivl >= settled, "{} ms", p.a.announce_ivl);
}

/// Every datagram from A to B of more than 1,000 bytes (the first
/// fragment of a card) is lost.
fn lose_cards() -> LossRule {
    Box::new(|a_to_b, _, len| a_to_b && len > 1_000)
}

#[test]
fn a_card_fetch_lost_on_the_way_is_asked_for_again_each_second_for_a_while() {
    let mut p = Pair::new(None);
    p.run(2_000, 100);
    let aid = p.a.node_id();
    // A renames itself: its beacon names a new card, and every copy of the
    // card A sends for B's wants is lost for 6 s, past the 5 s a beacon is
    // held.
    p.lose_if = Some(lose_cards());
    let cfg = Config { name: "a-renamed".into(), ..p.a.config().clone() };
    p.a.set_config(cfg, Timestamp::from(p.now));
    let served = p.a.metrics().cards_served;
    p.run(6_000, 100);
    assert_eq!(p.b.card(&aid).map(|c| c.name.clone()).as_deref(), Some("a"));
    let asked = p.a.metrics().cards_served - served;
    assert!((5..=7).contains(&asked), "asked {asked} times in 6 s");
    // The link carries cards again: the next ask gets it, within a second.
    p.lose_if = None;
    p.run(1_000, 100);
    assert_eq!(p.b.card(&aid).map(|c| c.name.clone()).as_deref(), Some("a-renamed"));
    assert_eq!(p.b.metrics().cards_requested, 1, "one fetch, asked again");
    // Nothing is asked for once it came.
    let served = p.a.metrics().cards_served;
    p.run(20_000, 1_000);
    assert_eq!(p.a.metrics().cards_served, served);
}

#[test]
fn a_card_that_never_comes_is_asked_for_less_and_less_often() {
    let mut p = Pair::new(None);
    p.run(2_000, 100);
    p.lose_if = Some(lose_cards());
    let cfg = Config { name: "a-renamed".into(), ..p.a.config().clone() };
    p.a.set_config(cfg, Timestamp::from(p.now));
    let served = p.a.metrics().cards_served;
    // A fetch of nine asks a second apart; a sync round (15 s) brings the
    // beacon again, which asks again 5 s, 10 s, 20 s, 40 s, ... after the
    // last fetch began, up to about five minutes.
    p.run(60_000, 100);
    let first_minute = p.a.metrics().cards_served - served;
    assert!(first_minute <= 4 * (u64::from(cardfetch::CARD_REWANTS) + 1), "asked {first_minute} times in a minute");
    let served = p.a.metrics().cards_served;
    p.run(30 * 60_000, 1_000);
    let later = p.a.metrics().cards_served - served;
    assert!(later <= 8 * (u64::from(cardfetch::CARD_REWANTS) + 1), "asked {later} times in the next half hour");
    // The link carries cards again: the next fetch gets it.
    p.lose_if = None;
    p.run(6 * 60_000, 1_000);
    assert_eq!(p.b.card(&p.a.node_id()).map(|c| c.name.clone()).as_deref(), Some("a-renamed"));
}
