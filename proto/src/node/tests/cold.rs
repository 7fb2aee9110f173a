//! A store larger than its memory limit keeps only heads of durable
//! direct messages; their bytes are read back from the caller's disk to be
//! sent, and a copy the disk no longer holds is lost and reported so.

use super::*;
use crate::outbox::SentState;

/// A pair whose A keeps at most `hot` bytes of envelopes in memory, with
/// `n` messages queued for B while B is away. Returns the pair and the ids.
fn queued(n: usize, hot: usize) -> (Pair, Vec<EnvelopeId>) {
    let mut p = Pair::new(None);
    let mut cfg = p.a.cfg.clone();
    cfg.store.max_hot_bytes = hot;
    p.a.set_config(cfg, Timestamp::from(p.now));
    p.run(2_000, 100);
    let bid = p.b.node_id();
    p.b_up = false;
    let ids = (0..n)
        .map(|i| p.a.send_direct(Timestamp::from(p.now), bid, format!("m{i}").as_bytes(), None, None).unwrap())
        .collect();
    p.run(40_000, 1_000);
    (p, ids)
}

fn back(p: &mut Pair, n: usize) {
    let bid = p.b.node_id();
    p.b_up = true;
    while !p.a.is_linked(&bid) {
        p.run(0, 10);
    }
    let up = p.now;
    while p.delivered_b.len() < n && p.now < up + 60_000 {
        p.run(0, 10);
    }
}

#[test]
fn a_backlog_beyond_the_memory_limit_is_read_back_and_delivered_in_order() {
    let (mut p, ids) = queued(200, 8 << 10);
    let s = p.a.store();
    assert_eq!(s.len(), 200);
    let cold = s.iter().filter(|(_, e)| e.is_cold()).count();
    assert!(s.hot_bytes() <= (8 << 10) + 400, "{} bytes in memory", s.hot_bytes());
    assert!(cold >= 170, "{cold} of 200 kept on disk only");
    back(&mut p, 200);
    let got: Vec<EnvelopeId> = p.delivered_b.iter().map(|d| d.id).collect();
    assert_eq!(got, ids, "every message arrived, in the order sent");
    assert!(p.a.metrics().envelopes_read_back >= cold as u64);
    assert_eq!(p.a.metrics().envelopes_unreadable, 0);
    assert_eq!(p.b.metrics().envelopes_duplicate, 0);
    assert!(p.a.store().is_empty(), "each freed by its acknowledgement");
}

#[test]
fn within_the_memory_limit_nothing_is_read_back() {
    let (mut p, _) = queued(50, 1 << 20);
    assert!(p.a.store().iter().all(|(_, e)| !e.is_cold()));
    back(&mut p, 50);
    assert_eq!(p.delivered_b.len(), 50);
    assert_eq!(p.a.metrics().envelopes_read_back, 0);
}

#[test]
fn a_copy_the_disk_lost_or_damaged_is_dropped_and_said_so_the_rest_arrive() {
    let (mut p, ids) = queued(40, 0);
    assert!(p.a.store().iter().all(|(_, e)| e.is_cold()), "a limit of 0 keeps every message on disk only");
    // One record gone from the disk, one changed in a signed byte.
    p.disk_a.remove(&ids[3]);
    let b = p.disk_a.get_mut(&ids[7]).unwrap();
    let last = b.len() - 70;
    b[last] ^= 1;
    back(&mut p, 38);
    let got: Vec<EnvelopeId> = p.delivered_b.iter().map(|d| d.id).collect();
    let want: Vec<EnvelopeId> = ids.iter().copied().filter(|id| *id != ids[3] && *id != ids[7]).collect();
    assert_eq!(got, want);
    assert_eq!(p.a.metrics().envelopes_unreadable, 2);
    for lost in [ids[3], ids[7]] {
        assert!(p.sent_a.contains(&(lost, SentState::Dropped)), "the sender is told {lost} was dropped");
        assert!(
            p.events.iter().any(|e| matches!(e, Event::StoredUnreadable { id, .. } if *id == lost)),
            "the admin is told"
        );
        assert!(!p.a.store().contains(&lost));
    }
}

#[test]
fn a_restored_store_keeps_only_what_the_limit_allows_in_memory() {
    let (p, _) = queued(100, 4 << 10);
    let mut a = Node::new(Identity::generate(&mut OsRng), p.a.cfg.clone(), [9; 32], Timestamp::from(p.now));
    for bytes in p.disk_a.values() {
        a.restore_envelope(bytes, Timestamp::from(p.now)).unwrap();
    }
    assert_eq!(a.store().len(), 100);
    assert!(a.store().hot_bytes() <= (4 << 10) + 400, "{} bytes in memory", a.store().hot_bytes());
}

#[test]
fn a_lowered_memory_limit_takes_effect_at_once_and_the_backlog_still_arrives() {
    let (mut p, ids) = queued(100, 1 << 20);
    assert!(p.a.store().iter().all(|(_, e)| !e.is_cold()));
    let mut cfg = p.a.cfg.clone();
    cfg.store.max_hot_bytes = 4 << 10;
    p.a.set_config(cfg, Timestamp::from(p.now));
    let hot = p.a.store().hot_bytes();
    assert!(((4 << 10) - 400..=4 << 10).contains(&hot), "{hot} bytes in memory");
    back(&mut p, 100);
    let got: Vec<EnvelopeId> = p.delivered_b.iter().map(|d| d.id).collect();
    assert_eq!(got, ids);
}
