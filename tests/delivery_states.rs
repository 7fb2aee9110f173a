//! Delivery states a sender can see (issue 14, part 1): `send --wait`
//! returns when the recipient's signed acknowledgement arrived (exit 0) or
//! says it is not delivered yet (exit 2); `meshpost outbox` lists queued,
//! forwarded, delivered; subscribers get a `delivered` event; the states
//! survive a restart of the sender, and a message queued before the
//! restart is reported delivered when its acknowledgement comes after.

#[path = "common/mod.rs"]
mod common;

use std::io::BufRead;

use common::*;
use serde_json::{Value, json};

fn outbox(n: &Node) -> Vec<Value> {
    n.request(json!({"cmd": "outbox"}))["messages"].as_array().cloned().unwrap_or_default()
}

fn state_of(n: &Node, id: &str) -> String {
    n.request(json!({"cmd": "outbox", "id": id}))["message"]["state"].as_str().unwrap_or("").to_string()
}

#[test]
fn the_sender_sees_delivered_only_after_the_signed_ack_and_across_restarts() {
    let t = TempDir::new("states");
    let (mut a, mut b) = linked_pair(&t.0);
    let bid = b.node_id();

    // A subscriber on A sees the delivered event.
    let mut events = subscribe_messages(&a.sock, 30);

    let out = a.cli(&["send", "--wait=30", &bid, "are you there?"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(0), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("delivered"), "{text}");
    let id = text.split_whitespace().next().unwrap().to_string();
    assert_eq!(b.inbox().len(), 1);
    assert_eq!(state_of(&a, &id), "delivered");
    let mut got = false;
    for _ in 0..10 {
        let mut line = String::new();
        if events.read_line(&mut line).is_err() {
            break;
        }
        let v: Value = serde_json::from_str(&line).unwrap_or_default();
        if v["event"] == "delivered" && v["id"] == id.as_str() {
            got = true;
            break;
        }
    }
    assert!(got, "no delivered event for {id}");

    // With B gone: not delivered within the wait, exit 2, still queued.
    b.stop();
    let out = a.cli(&["--json", "send", "--wait=2", &bid, "later"]);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stdout));
    let later: Value = serde_json::from_slice(&out.stdout).unwrap();
    let later_id = later["id"].as_str().unwrap().to_string();
    assert!(matches!(later["state"].as_str(), Some("queued" | "forwarded")), "{later}");

    // A restarts: both records are still there; B returns; the message
    // queued before the restart is reported delivered.
    a.stop();
    a.start();
    assert_eq!(state_of(&a, &id), "delivered", "survives the restart");
    assert_eq!(outbox(&a).len(), 2);
    b.start();
    assert!(wait_until(40, || state_of(&a, &later_id) == "delivered"), "{:?}\nA:\n{}", outbox(&a), a.log());
    assert_eq!(b.inbox().len(), 2, "once each");
    let human = String::from_utf8_lossy(&a.cli(&["outbox"]).stdout).to_string();
    assert!(human.contains("delivered") && human.contains("STATE"), "{human}");
}

#[test]
fn an_absent_contact_goes_queued_forwarded_delivered_via_a_relay_across_a_sender_restart() {
    let t = TempDir::new("relaystates");
    let (mut a, mut r, mut b) = (Node::new(&t.0, "a"), Node::new(&t.0, "r"), Node::new(&t.0, "b"));
    // B once ran long enough to hand over its card; now it is away.
    b.start();
    let card = String::from_utf8_lossy(&b.cli(&["identity", "--card"]).stdout).trim().to_string();
    b.stop();
    a.peer(&r, true);
    r.peer(&a, true);
    a.start();
    r.start();
    assert!(wait_until(15, || a.linked_to(&r.node_id())), "A:\n{}", a.log());
    assert_eq!(a.request(json!({"cmd": "contact", "action": "add", "card": card, "name": "B"}))["ok"], true);
    let v = a.request(json!({"cmd": "send", "to": "B", "text": "for when you are back"}));
    assert_eq!(v["ok"], true, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    // The relay took a copy: forwarded (not delivered: B is away).
    assert!(wait_until(20, || state_of(&a, &id) == "forwarded"), "{}", state_of(&a, &id));
    // The sender restarts; the state is kept.
    a.stop();
    a.start();
    assert_eq!(state_of(&a, &id), "forwarded");
    // B comes back next to the relay only: the message arrives, the
    // acknowledgement finds its way back, the sender shows delivered.
    b.peer(&r, true);
    r.peer(&b, true);
    r.stop();
    r.start();
    b.start();
    assert!(wait_until(40, || b.inbox().len() == 1), "B:\n{}\nR:\n{}", b.log(), r.log());
    assert!(wait_until(40, || state_of(&a, &id) == "delivered"), "{}\nA:\n{}", state_of(&a, &id), a.log());
}
