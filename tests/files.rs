//! Files (issue 14, part 5): `meshpost send TO --file PATH` splits a file
//! into end-to-end encrypted parts, the recipient's inbox reassembles them
//! and checks the whole file's hash, `meshpost inbox save` writes it out.
//! A truncated part, a part changed in transit and a file whose parts do
//! not match its hash never become a file; partial files show progress and
//! survive a restart; the size limits hold on both sides.

#[path = "common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use base64::Engine;
use common::peer::{Peer, now};
use common::*;
use meshpost_proto::filepart::{self, PART_LEN};
use meshpost_proto::identity::Identity;
use meshpost_proto::outbox::SentState;
use serde_json::{Value, json};

/// Bytes that are not all alike, so a misplaced part shows.
fn pattern(n: usize, seed: u32) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

fn files(n: &Node) -> Vec<Value> {
    n.inbox().into_iter().filter(|m| m["kind"] == "file").collect()
}

/// BLAKE2s-256 by Python's hashlib: an implementation that is not ours.
fn python_blake2s(path: &std::path::Path) -> String {
    let out = std::process::Command::new("python3")
        .args(["-c", "import hashlib,sys; print(hashlib.blake2s(open(sys.argv[1],'rb').read()).hexdigest())"])
        .arg(path)
        .output()
        .expect("python3");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn a_one_mib_file_crosses_a_three_node_line_intact() {
    let t = TempDir::new("files3");
    let (mut a, mut r, mut b) = (Node::new(&t.0, "a"), Node::new(&t.0, "r"), Node::new(&t.0, "b"));
    a.peer(&r, true);
    r.peer(&a, true);
    r.peer(&b, true);
    b.peer(&r, true);
    a.start();
    r.start();
    b.start();
    let bid = b.node_id();
    let routed = || {
        a.request(json!({"cmd": "routes"}))["routes"]
            .as_array()
            .is_some_and(|v| v.iter().any(|x| x["node"] == bid.as_str()))
    };
    assert!(wait_until(30, routed), "A has no route to B\nA:\n{}", a.log());

    let data = pattern(1 << 20, 7);
    let src = t.0.join("photo.jpg");
    std::fs::write(&src, &data).unwrap();
    // About 3 s here. 40 s leaves room for a loaded machine and still fails
    // if an acknowledgement waits for an announce (60 s): B may not have A's
    // card yet, and an ack within one community must not wait for it.
    let out = a.cli(&["send", &bid, "--file", src.to_str().unwrap(), "--wait=40"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(0), "{text}{}\nA:\n{}", String::from_utf8_lossy(&out.stderr), a.log());
    assert!(text.contains("delivered") && text.contains("photo.jpg"), "{text}");

    // The sender's outbox: one entry for the file, every part delivered.
    let sent = a.request(json!({"cmd": "outbox"}))["messages"][0].clone();
    assert_eq!(sent["state"], "delivered", "{sent}");
    assert_eq!((sent["file"]["parts"].as_u64(), sent["file"]["delivered"].as_u64()), (Some(32), Some(32)), "{sent}");
    let id = sent["id"].as_str().unwrap().to_string();

    // The recipient: one complete file with its name and type, the same id.
    let got = files(&b);
    assert_eq!(got.len(), 1, "{got:?}");
    let f = &got[0];
    assert_eq!((f["id"].as_str(), f["complete"].as_bool()), (Some(id.as_str()), Some(true)), "{f}");
    assert_eq!(
        (f["name"].as_str(), f["type"].as_str(), f["size"].as_u64()),
        (Some("photo.jpg"), Some("image/jpeg"), Some(1 << 20))
    );
    let listing = String::from_utf8_lossy(&b.cli(&["inbox"]).stdout).to_string();
    assert!(listing.contains("[file] photo.jpg (1.0 MiB)"), "{listing}");

    let dest = t.0.join("saved.jpg");
    let out = b.cli(&["inbox", "save", &id, dest.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(std::fs::read(&dest).unwrap() == data, "the saved file differs from the one sent");
    assert_eq!(python_blake2s(&dest), f["hash"].as_str().unwrap(), "hash as an independent implementation computes it");
    let again = b.cli(&["inbox", "save", &id, dest.to_str().unwrap()]);
    assert!(!again.status.success(), "an existing file is not overwritten");

    // Deleting the file removes every part and keeps it delivered.
    assert_eq!(b.request(json!({"cmd": "inbox", "action": "delete", "id": id}))["ok"], true);
    assert!(files(&b).is_empty());
    b.stop();
    b.start();
    assert!(files(&b).is_empty(), "the deletion of every part was committed");
}

#[test]
fn truncated_tampered_or_mismatched_parts_never_become_a_file() {
    let t = TempDir::new("filesbad");
    let mut b = Node::new(&t.0, "b");
    b.start();
    let (mut peer, bid) = Peer::linked_to(b.port, &b.key(), || b.log());

    // A partial file: part 1 of 2 shows progress, and survives a restart.
    let data = pattern(PART_LEN + 1000, 3);
    let parts = filepart::split([1; 16], "notes.txt", "text/plain", &data).unwrap();
    peer.node.send_file(now(), bid, &parts[..1], None, None).unwrap();
    peer.pump(300);
    assert!(wait_until(10, || files(&b).len() == 1), "B:\n{}", b.log());
    let f = files(&b)[0].clone();
    assert_eq!((f["have"].as_u64(), f["parts"].as_u64(), f["complete"].as_bool()), (Some(1), Some(2), Some(false)));
    let listing = String::from_utf8_lossy(&b.cli(&["inbox"]).stdout).to_string();
    assert!(listing.contains("notes.txt") && listing.contains("1/2 parts"), "{listing}");
    let early = b.cli(&["inbox", "save", f["id"].as_str().unwrap(), t.0.join("early").to_str().unwrap()]);
    assert!(!early.status.success() && String::from_utf8_lossy(&early.stderr).contains("not complete"));
    b.stop();
    b.start();
    assert_eq!(files(&b).len(), 1, "the partial file survives a restart");
    let me = Identity::from_file_bytes(&peer.node.identity().to_file_bytes()).unwrap();
    let (mut peer, bid) = Peer::linked_as(me, b.port, &b.key(), || b.log());
    peer.node.send_file(now(), bid, &parts[1..], None, None).unwrap();
    peer.pump(300);
    assert!(wait_until(10, || files(&b).first().is_some_and(|f| f["complete"] == true)), "B:\n{}", b.log());
    let id = files(&b)[0]["id"].as_str().unwrap().to_string();
    let v = b.request(json!({"cmd": "inbox", "action": "read", "id": id, "offset": PART_LEN - 10, "limit": 100}));
    let piece = base64::engine::general_purpose::STANDARD.decode(v["data"].as_str().unwrap()).unwrap();
    assert_eq!(piece, &data[PART_LEN - 10..PART_LEN + 90], "bytes across the part boundary");

    // A truncated part: refused at the recipient, nothing stored.
    let undecryptable = b.metric("envelopes_undecryptable_total");
    let other = filepart::split([2; 16], "cut.bin", "", &pattern(2 * PART_LEN, 5)).unwrap();
    let cut = other[0][..other[0].len() - 1].to_vec();
    let cut_id = peer.node.send_file(now(), bid, &[cut], None, None).unwrap()[0];
    peer.pump(300);
    assert!(wait_until(10, || b.metric("envelopes_undecryptable_total") == undecryptable + 1), "B:\n{}", b.log());
    // ...and the sender is told, signed: refused, content it cannot take.
    let end = std::time::Instant::now() + Duration::from_secs(10);
    while !peer.sent.contains(&(cut_id, SentState::RefusedUnsupported)) {
        assert!(std::time::Instant::now() < end, "no refusal for the truncated part: {:?}", peer.sent);
        peer.pump(100);
    }
    assert!(!files(&b).iter().any(|f| f["name"] == "cut.bin"));

    // A part changed in transit: its signature fails, nothing stored.
    let mut bent = peer.seal_direct(bid, filepart::CONTENT_FILE, &other[1]);
    let n = bent.len();
    bent[n - 100] ^= 1;
    assert!(peer.node.send_raw_envelope(bid, &bent));
    peer.pump(300);
    assert!(wait_until(10, || b.metric("envelopes_bad_signature_total") == 1), "B:\n{}", b.log());
    assert!(!files(&b).iter().any(|f| f["name"] == "cut.bin"));

    // Parts that are each well formed but not of the announced file: the
    // hash check at the last part discards the file.
    let mut liar = filepart::split([3; 16], "liar.bin", "", &pattern(2 * PART_LEN, 9)).unwrap();
    let last = liar[1].len() - 1;
    liar[1][last] ^= 0xff;
    peer.node.send_file(now(), bid, &liar, None, None).unwrap();
    peer.pump(300);
    assert!(wait_until(10, || b.metric("files_failed_total") == 1), "B:\n{}", b.log());
    assert!(!files(&b).iter().any(|f| f["name"] == "liar.bin"));
    assert!(b.log().contains("does not match its hash"), "one line for the admin");

    // Still serving: the good file is there and a text message arrives.
    peer.node.send_direct(now(), bid, b"still here", None, None).unwrap();
    peer.pump(300);
    assert!(wait_until(10, || b.inbox().iter().any(|m| m["text"] == "still here")));
    assert_eq!(files(&b).len(), 1);
}

#[test]
fn size_limits_hold_for_sender_recipient_and_uploads() {
    let t = TempDir::new("fileslimits");
    let (a, mut b) = {
        let mut a = Node::new(&t.0, "a");
        let mut b = Node::new(&t.0, "b");
        a.extra = "\toption file_max '100000'\n".into();
        b.extra = "\toption inbox_max_bytes '70000'\n".into();
        a.peer(&b, true);
        b.peer(&a, true);
        a.start();
        b.start();
        (a, b)
    };
    let bid = b.node_id();
    assert!(wait_until(15, || a.linked_to(&bid)), "A:\n{}", a.log());

    // Over the sender's file_max: refused before anything is stored.
    let big = t.0.join("big.bin");
    std::fs::write(&big, pattern(100_001, 1)).unwrap();
    let out = a.cli(&["send", &bid, "--file", big.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("file_max"), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(a.store_count(), 0);

    // Larger than the recipient's whole inbox: refused there, once logged,
    // never stored, and the inbox stays open for messages.
    let mid = t.0.join("mid.bin");
    std::fs::write(&mid, pattern(90_000, 2)).unwrap();
    // The recipient signs a refusal: the sender's outbox says refused and
    // why, and `--wait` ends with exit 3.
    let out = a.cli(&["send", &bid, "--file", mid.to_str().unwrap(), "--wait=30"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(3), "{text}{}\nA:\n{}", String::from_utf8_lossy(&out.stderr), a.log());
    assert!(text.contains("refused: larger than the recipient's whole inbox"), "{text}");
    let sent = a.request(json!({"cmd": "outbox"}))["messages"][0].clone();
    assert_eq!((sent["state"].as_str(), sent["file"]["delivered"].as_u64()), (Some("refused"), Some(0)), "{sent}");
    assert!(wait_until(10, || a.store_count() == 0), "the refused parts left the sender's store");
    assert!(b.log().contains("larger than inbox_max_bytes"), "B:\n{}", b.log());
    assert!(files(&b).is_empty());
    assert_eq!(a.request(json!({"cmd": "send", "to": bid, "text": "hello"}))["ok"], true);
    assert!(wait_until(10, || b.inbox().iter().any(|m| m["text"] == "hello")), "B:\n{}", b.log());

    // At most two uploads at once; a third is told so, and after the two
    // are abandoned a new one is taken.
    let begin = json!({"cmd": "send_file", "to": bid, "name": "x.bin", "size": 10});
    let open = || {
        let mut s = UnixStream::connect(&a.sock).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        writeln!(s, "{begin}").unwrap();
        let mut line = String::new();
        BufReader::new(&s).read_line(&mut line).unwrap();
        let v: Value = serde_json::from_str(&line).unwrap();
        (s, v)
    };
    let (s1, v1) = open();
    let (s2, v2) = open();
    assert!(v1["upload"] == true && v2["upload"] == true, "{v1} {v2}");
    let (_, refused) = open();
    assert!(refused["error"].as_str().unwrap_or("").contains("uploads are in progress"), "{refused}");
    drop((s1, s2));
    // The abandoned uploads free their places; a piece that overruns the
    // announced size then ends an upload with an error.
    let mut taken = None;
    assert!(wait_until(10, || {
        let (s, v) = open();
        taken = (v["upload"] == true).then_some(s);
        taken.is_some()
    }));
    let mut s = taken.unwrap();
    writeln!(s, "{}", json!({"cmd": "file_data", "data": base64::engine::general_purpose::STANDARD.encode([0u8; 11])}))
        .unwrap();
    let mut line = String::new();
    BufReader::new(&s).read_line(&mut line).unwrap();
    assert!(line.contains("overruns"), "{line}");
    // A piece shorter than the piece size before the last is refused too:
    // trickling bytes one by one cannot hold an upload place.
    let begin = json!({"cmd": "send_file", "to": bid, "name": "y.bin", "size": 60_000});
    let mut taken = None;
    assert!(wait_until(10, || {
        let mut s = UnixStream::connect(&a.sock).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        writeln!(s, "{begin}").unwrap();
        let mut line = String::new();
        BufReader::new(&s).read_line(&mut line).unwrap();
        taken = line.contains("\"upload\":true").then_some(s);
        taken.is_some()
    }));
    let mut s = taken.unwrap();
    writeln!(s, "{}", json!({"cmd": "file_data", "data": base64::engine::general_purpose::STANDARD.encode([1u8])}))
        .unwrap();
    let mut line = String::new();
    BufReader::new(&s).read_line(&mut line).unwrap();
    assert!(line.contains("every piece but the last"), "{line}");
    b.stop();
}
