//! Handshakes and transfers over a link that loses single datagrams: a
//! lost handshake message costs a second at most (resend.rs, unknown.rs), and a
//! card sent again completes the fragments that came the first time
//! (links.rs, `send_envelope_bytes`).

use super::*;

fn link_ups(p: &Pair) -> usize {
    p.events.iter().filter(|e| matches!(e, Event::LinkUp { .. })).count()
}

#[test]
fn a_lost_second_handshake_message_costs_a_second_not_the_timeout() {
    let mut p = Pair::new(None);
    // B's first datagram to A is its answer to A's first message.
    p.lose_if = Some(Box::new(|a_to_b, n, _| !a_to_b && n == 1));
    p.run(1_500, 50);
    assert_eq!(link_ups(&p), 2, "both ends up within 1.5 s (a lost answer used to cost the 5 s timeout)");
    // A sent its first message again, once; B answered the copy, and the
    // one handshake completed on both sides.
    assert_eq!(p.a.metrics().handshake_messages_resent, 1);
    assert_eq!((p.a.metrics().handshakes_completed, p.b.metrics().handshakes_completed), (1, 1));
    assert_eq!(p.b.metrics().handshakes_failed, 0);
}

#[test]
fn a_first_handshake_message_goes_at_most_three_more_times() {
    let mut p = Pair::new(None);
    p.b_up = false;
    // B never answers: a handshake sends its first message again after 1,
    // 2 and 3 s, then times out (5 s) and A dials again later (with
    // backoff); only the first two dials send copies, later ones go to a
    // peer that is most likely gone.
    let mut started = std::collections::BTreeSet::new();
    for _ in 0..300 {
        p.run(100, 100);
        started.extend(p.a.initiators.keys().copied());
        assert!(p.a.initiators.values().all(|i| i.resent <= resend::HS_RESENDS));
    }
    let resent = p.a.metrics().handshake_messages_resent;
    assert!(
        resent >= 3 && resent <= 2 * u64::from(resend::HS_RESENDS),
        "{resent} copies for {} handshakes",
        started.len()
    );
    assert!(started.len() >= 4, "{} handshakes in 30 s", started.len());
}

#[test]
fn a_lost_final_handshake_message_costs_a_new_handshake_at_once() {
    let mut p = Pair::new(None);
    // A's second datagram: its final message. Its next frames reach B on
    // a session B does not know, and B's hint makes A start again.
    p.lose_if = Some(Box::new(|a_to_b, n, _| a_to_b && n == 2));
    p.run(1_500, 50);
    assert_eq!(link_ups(&p), 2, "both ends up within 1.5 s");
    assert_eq!((p.a.metrics().handshakes_completed, p.b.metrics().handshakes_completed), (2, 1));
}

#[test]
fn a_card_sent_twice_is_whole_from_the_parts_of_both_sends() {
    let mut p = Pair::new(None);
    p.run(2_000, 100);
    let aid = p.a.node_id();
    // A renames itself and B asks for the new card. The first send loses
    // its first fragment, the second its last: each fragment came once.
    let (mut bigs, mut drop_next) = (0, false);
    p.lose_if = Some(Box::new(move |a_to_b, _, len| {
        if !a_to_b {
            return false;
        }
        if core::mem::take(&mut drop_next) {
            return true;
        }
        if len > 1_000 {
            bigs += 1;
            drop_next = bigs == 2;
            return bigs == 1;
        }
        false
    }));
    let served = p.a.metrics().cards_served;
    let cfg = Config { name: "a-renamed".into(), ..p.a.config().clone() };
    p.a.set_config(cfg, Timestamp::from(p.now));
    p.run(2_500, 100);
    assert_eq!(p.b.card(&aid).map(|c| c.name.clone()).as_deref(), Some("a-renamed"));
    assert_eq!(p.a.metrics().cards_served - served, 2, "whole after the second send");
}
