//! A store larger than `store_memory`, with real daemons on loopback: the
//! sender keeps only the heads of its queued messages in memory and reads
//! each one back from its state log when the recipient returns; a record
//! damaged on disk under the running daemon loses that message alone, and
//! the sender says so in its log, its outbox and its metrics.

mod common;

use common::{TempDir, linked_pair, wait_until};
use serde_json::json;

#[test]
fn a_backlog_kept_on_disk_only_reaches_the_returning_peer_and_a_damaged_record_is_reported() {
    let t = TempDir::new("cold");
    let (mut a, mut b) = linked_pair(&t.0);
    let bid = b.node_id();
    a.extra = "\toption store_memory '0'\n".into();
    b.stop();
    a.stop();
    a.start();
    let n = 300;
    let ids: Vec<String> = (0..n)
        .map(|i| {
            let v = a.request(json!({"cmd": "send", "to": bid, "text": format!("cold {i}")}));
            assert_eq!(v["ok"], true, "{v}");
            v["id"].as_str().unwrap().to_string()
        })
        .collect();
    // A queued message costs outbox.log nothing: the state log has it.
    let outbox_log = a.dir.join("outbox.log");
    assert_eq!(std::fs::metadata(&outbox_log).map_or(0, |m| m.len()), 0, "outbox.log stays empty");
    // A restart restores the store from the log: nothing of it in memory;
    // the outbox lists every message as queued again.
    a.stop();
    a.start();
    assert_eq!(a.store_count(), n as u64);
    let listed = a.request(json!({"cmd": "outbox"}))["messages"].as_array().unwrap().clone();
    assert_eq!(listed.len(), n);
    assert!(listed.iter().all(|m| m["state"] == "queued" && m["to"] == bid.as_str()), "{listed:?}");
    let newest_first: Vec<&str> = listed.iter().map(|m| m["id"].as_str().unwrap()).collect();
    let mut sent_order = ids.iter().map(String::as_str).collect::<Vec<_>>();
    sent_order.reverse();
    assert_eq!(newest_first, sent_order, "listed in the order sent, newest first");
    let v = a.request(json!({"cmd": "store"}));
    assert_eq!((v["memory_bytes"].as_u64(), v["max_memory"].as_u64()), (Some(0), Some(0)), "{v}");
    assert_eq!(a.metric("store_memory_bytes"), 0);
    let cli = String::from_utf8(a.cli(&["store"]).stdout).unwrap();
    assert!(cli.contains("memory:    0 of 0 bytes"), "{cli}");
    // The newest record of the log is the last message's envelope (B is
    // away: nothing else was written after it). One byte of it changes.
    let log = a.dir.join("log");
    let seg = std::fs::read_dir(&log)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .max()
        .unwrap();
    let mut bytes = std::fs::read(&seg).unwrap();
    let at = bytes.len() - 100;
    bytes[at] ^= 0x55;
    std::fs::write(&seg, &bytes).unwrap();
    b.start();
    assert!(wait_until(60, || b.inbox().len() == n - 1), "B got {} of {}\nA:\n{}", b.inbox().len(), n - 1, a.log());
    let mut texts: Vec<String> = b.inbox().iter().map(|m| m["text"].as_str().unwrap().to_string()).collect();
    let arrived = texts.clone();
    texts.sort_by_key(|t| t[5..].parse::<usize>().unwrap());
    let want: Vec<String> = (0..n - 1).map(|i| format!("cold {i}")).collect();
    assert_eq!(texts, want, "every message but the damaged one, once each");
    assert_eq!(arrived, want, "and in the order sent, after the sender's restart");
    assert!(a.metric("envelopes_read_back_total") >= (n - 1) as u64);
    assert_eq!(a.metric("envelopes_unreadable_total"), 1);
    let lost = &ids[n - 1];
    assert!(a.log().contains(&format!("stored envelope {lost} could not be read back, lost")), "A:\n{}", a.log());
    let state = a.request(json!({"cmd": "outbox", "id": lost}))["message"]["state"].clone();
    assert_eq!(state, "dropped", "the sender's outbox says so");
    let kept =
        std::fs::read_dir(&log).unwrap().filter(|e| e.as_ref().unwrap().path().to_string_lossy().ends_with(".bad"));
    assert_eq!(kept.count(), 1, "the damaged record is kept aside for the admin");
    assert!(wait_until(30, || a.store_count() == 0), "the rest freed by B's acknowledgements");
}
