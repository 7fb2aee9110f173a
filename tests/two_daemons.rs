//! Two real daemons on loopback, driven through the CLI and the socket.

#[path = "common/mod.rs"]
mod common;

use std::collections::BTreeSet;

use common::*;
use serde_json::{Value, json};

fn send(a: &Node, to: &str, text: &str) -> Value {
    let v = a.request(json!({"cmd": "send", "to": to, "text": text}));
    assert_eq!(v["ok"], true, "send failed: {v}");
    v
}

fn texts(n: &Node) -> Vec<String> {
    n.inbox().iter().map(|m| m["text"].as_str().unwrap().to_string()).collect()
}

#[test]
fn a_sends_to_b_by_cli_and_b_inbox_shows_the_exact_text() {
    let t = TempDir::new("exact");
    let (a, b) = linked_pair(&t.0);
    let text = "Grüße from A: it's \"quoted\", with\ttabs and ✓ emoji";
    let out = a.cli(&["send", "b", text]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("queued "));
    assert!(wait_until(10, || b.inbox().len() == 1), "B log:\n{}", b.log());
    let msg = &b.inbox()[0];
    assert_eq!(msg["text"], text);
    assert_eq!(msg["from"], a.node_id());
    assert_eq!(msg["from_name"], "a");
    // The CLI shows it to people too, and --json gives the same object.
    let listed = b.cli(&["inbox"]);
    assert!(String::from_utf8_lossy(&listed.stdout).contains("Grüße from A"));
    let id = msg["id"].as_str().unwrap();
    let read = b.cli(&["--json", "inbox", "read", id]);
    let v: Value = serde_json::from_slice(&read.stdout).unwrap();
    assert_eq!(v["message"]["text"], text);
    assert_eq!(v["message"]["read"], true);
    // A's copy was released once B confirmed delivery.
    assert!(wait_until(5, || a.store_count() == 0));
    let del = b.cli(&["inbox", "delete", id]);
    assert!(del.status.success());
    assert!(b.inbox().is_empty());
}

#[test]
fn messages_wait_for_a_stopped_peer_and_arrive_exactly_once() {
    let t = TempDir::new("restart");
    let (a, mut b) = linked_pair(&t.0);
    let bid = b.node_id();
    b.stop();
    let mut sent = BTreeSet::new();
    for i in 0..100 {
        let text = format!("message {i}");
        send(&a, &bid, &text);
        sent.insert(text);
    }
    assert_eq!(a.store_count(), 100, "A holds all 100 while B is away");
    b.start();
    assert!(
        wait_until(30, || b.inbox().len() >= 100),
        "B got {} of 100\nA:\n{}\nB:\n{}",
        b.inbox().len(),
        a.log(),
        b.log()
    );
    // Give duplicates a chance to show up before judging "exactly once".
    std::thread::sleep(std::time::Duration::from_secs(3));
    let got = texts(&b);
    assert_eq!(got.len(), 100, "exactly once");
    assert_eq!(got.into_iter().collect::<BTreeSet<_>>(), sent);
    assert!(wait_until(10, || a.store_count() == 0), "acks released A's copies");
    // A restart of B does not deliver anything again.
    b.stop();
    b.start();
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert_eq!(b.inbox().len(), 100);
    // B saved A's end-to-end session (secret: 0600) and opens A's next
    // message in it after the restart: A started one session for all of it.
    let ses = b.dir.join("sessions").join(format!("{}.ses", a.node_id()));
    let mode = std::fs::metadata(&ses).map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777);
    assert_eq!(mode.ok(), Some(0o600), "{}", ses.display());
    send(&a, &bid, "after the restart");
    assert!(wait_until(20, || b.inbox().len() == 101), "B:\n{}", b.log());
    assert_eq!((a.metric("e2e_sessions_started_total"), b.metric("e2e_sessions_accepted_total")), (1, 0));
}

#[test]
fn acknowledged_sends_survive_kill_9() {
    let t = TempDir::new("kill9");
    let (mut a, mut b) = linked_pair(&t.0);
    let bid = b.node_id();
    b.stop();
    let mut sent = BTreeSet::new();
    for i in 0..100 {
        let text = format!("durable {i}");
        send(&a, &bid, &text);
        sent.insert(text);
    }
    // Killed right after the 100th acknowledgement: no clean shutdown.
    a.kill9();
    a.start();
    assert_eq!(a.store_count(), 100, "all acknowledged envelopes were on disk");
    b.start();
    assert!(wait_until(30, || b.inbox().len() >= 100), "B got {}\nA:\n{}", b.inbox().len(), a.log());
    std::thread::sleep(std::time::Duration::from_secs(2));
    let got: BTreeSet<String> = texts(&b).into_iter().collect();
    assert_eq!(b.inbox().len(), 100);
    assert_eq!(got, sent);
}

#[test]
fn a_wrong_pinned_key_gets_no_link_and_is_logged() {
    let t = TempDir::new("pin");
    let mut a = Node::new(&t.0, "a");
    let mut b = Node::new(&t.0, "b");
    let impostor = Node::new(&t.0, "impostor");
    // A expects the impostor's key at B's address.
    a.peers.push((b.port, Some(impostor.key())));
    b.peer(&a, false);
    a.start();
    b.start();
    let bid = b.node_id();
    std::thread::sleep(std::time::Duration::from_secs(4));
    assert!(!a.linked_to(&bid));
    assert!(a.metric("peers_refused_total") >= 1);
    let log = a.log();
    assert!(log.contains("peer refused") && log.contains("pinned"), "A log:\n{log}");
    // Nothing can be sent to B: its keys were never accepted.
    let v = a.request(json!({"cmd": "send", "to": bid, "text": "x"}));
    assert_eq!(v["ok"], false);
}

#[test]
fn sighup_and_reload_keep_the_store_and_the_link() {
    let t = TempDir::new("reload");
    let (mut a, mut b) = linked_pair(&t.0);
    let bid = b.node_id();
    let aid = a.node_id();
    b.stop();
    for i in 0..5 {
        send(&a, &bid, &format!("kept {i}"));
    }
    b.start();
    assert!(wait_until(15, || a.linked_to(&bid)));
    // Hold the next messages: B goes away again, A reloads twice.
    b.stop();
    send(&a, &bid, "queued before reload");
    let before = a.store_count();
    a.extra = "\toption store_max_count '500'\n".into();
    a.write_config();
    a.signal(libc::SIGHUP);
    assert!(wait_until(5, || a.log().contains("configuration reloaded")));
    let v = a.request(json!({"cmd": "reload"}));
    assert_eq!(v["ok"], true);
    assert_eq!(a.store_count(), before, "reload keeps the store");
    assert_eq!(a.request(json!({"cmd": "store"}))["max_count"], 500);
    b.start();
    assert!(wait_until(15, || b.inbox().len() == 6), "B got {}", b.inbox().len());
    // A reload with a broken file keeps the running configuration and links.
    std::fs::write(&a.conf, "config meshpost 'main'\n\toption port 'many'\n").unwrap();
    let v = a.request(json!({"cmd": "reload"}));
    assert_eq!(v["ok"], false);
    assert!(v["error"].as_str().unwrap().contains("option 'port'"));
    assert!(a.linked_to(&bid) && b.linked_to(&aid));
    // An emptied file (truncated while being edited) would drop every peer:
    // the reload is refused and the peer stays configured and linked.
    std::fs::write(&a.conf, "# nothing yet\n").unwrap();
    let v = a.request(json!({"cmd": "reload"}));
    assert_eq!(v["ok"], false, "{v}");
    assert!(v["error"].as_str().unwrap().contains("no sections"), "{v}");
    assert_eq!(a.request(json!({"cmd": "peers"}))["configured"].as_array().unwrap().len(), 1);
    assert!(a.linked_to(&bid) && b.linked_to(&aid));
}

#[test]
fn identity_file_must_be_private_and_intact() {
    use std::os::unix::fs::PermissionsExt;
    let t = TempDir::new("ident");
    let mut a = Node::new(&t.0, "a");
    let key = a.dir.join("identity.key");
    assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    a.write_config();
    let out =
        std::process::Command::new(BIN).args(["daemon", "--foreground", "--config"]).arg(&a.conf).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("mode 0644") && err.contains("chmod 600"), "{err}");
    // Corrupt: one seed digit changed.
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut text = std::fs::read_to_string(&key).unwrap();
    let pos = text.find('\n').unwrap() + 1;
    let c = if &text[pos..pos + 1] == "0" { "1" } else { "0" };
    text.replace_range(pos..pos + 1, c);
    std::fs::write(&key, text).unwrap();
    let out =
        std::process::Command::new(BIN).args(["daemon", "--foreground", "--config"]).arg(&a.conf).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("corrupt"));
    a.child = None;
}

#[test]
fn config_errors_name_file_line_and_option() {
    let t = TempDir::new("conf");
    let conf = t.0.join("bad.conf");
    std::fs::write(&conf, "config meshpost 'main'\n\toption port '4849'\n\toption log_level 'loud'\n").unwrap();
    let out = std::process::Command::new(BIN).args(["daemon", "--foreground", "--config"]).arg(&conf).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("{}:3: option 'log_level'", conf.display())), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one error line: {err}");
    assert!(err.starts_with("meshpost: error: "));
}

#[test]
fn peers_added_and_removed_at_runtime_from_the_cli() {
    let t = TempDir::new("peeradd");
    let mut a = Node::new(&t.0, "a");
    let mut b = Node::new(&t.0, "b");
    a.start();
    b.start();
    let (aid, bid) = (a.node_id(), b.node_id());
    let addr = format!("127.0.0.1:{}", b.port);
    // A wrong pin is refused...
    let wrong = "11".repeat(32);
    let out = a.cli(&["peer", "add", &addr, &wrong]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert!(!a.linked_to(&bid));
    // ...the right one links, and the table shows it.
    let out = a.cli(&["peer", "add", &addr, &b.key()]);
    assert!(out.status.success());
    assert!(wait_until(10, || a.linked_to(&bid) && b.linked_to(&aid)));
    let peers = String::from_utf8_lossy(&a.cli(&["peers"]).stdout).to_string();
    assert!(peers.contains(&bid) && peers.contains(&addr), "{peers}");
    // Removing the peer closes the link on A's side.
    let out = a.cli(&["peer", "remove", &addr]);
    assert!(out.status.success());
    assert!(!a.linked_to(&bid));
    let out = a.cli(&["peer", "remove", &addr]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a configured peer"));
    let bad = a.cli(&["peer", "add", "nonsense"]);
    assert_eq!(bad.status.code(), Some(1));
}

#[test]
fn the_daemon_logs_rfc3164_lines_to_the_syslog_socket() {
    use std::os::unix::net::UnixDatagram;
    let t = TempDir::new("syslog");
    let mut a = Node::new(&t.0, "a");
    let log_sock = t.0.join("log.sock");
    let rx = UnixDatagram::bind(&log_sock).unwrap();
    rx.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    // A pinned peer that will not match: one warning-level event to see.
    let impostor = Node::new(&t.0, "impostor");
    let b = Node::new(&t.0, "b");
    a.peers.push((b.port, Some(impostor.key())));
    a.extra = format!("\toption log_socket '{}'\n\toption log_level 'info'\n", log_sock.display());
    a.write_config();
    // Not --foreground: the daemon must use the syslog socket.
    let mut child = std::process::Command::new(BIN).args(["daemon", "--config"]).arg(&a.conf).spawn().unwrap();
    let mut b = b;
    b.peer(&a, false);
    b.start();
    let pid = child.id();
    let mut lines = Vec::new();
    let mut buf = [0u8; 2048];
    while let Ok(n) = rx.recv(&mut buf) {
        let line = String::from_utf8_lossy(&buf[..n]).to_string();
        let done = line.contains("peer refused");
        lines.push(line);
        if done {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let started = lines.iter().find(|l| l.contains("started: node")).expect("a start line");
    // <29> = facility daemon (3) * 8 + notice (5); then "Mmm dd hh:mm:ss".
    assert!(started.starts_with("<29>"), "{started}");
    let tag = format!(" meshpost[{pid}]: started: node ");
    assert!(started.contains(&tag), "{started}");
    let stamp = &started[4..19];
    assert!(stamp.as_bytes()[3] == b' ' && stamp.as_bytes()[9] == b':' && stamp.as_bytes()[12] == b':', "{stamp}");
    let refused = lines.iter().find(|l| l.contains("peer refused")).expect("a warning line");
    assert!(refused.starts_with("<28>"), "warning is severity 4: {refused}");
}

#[test]
fn a_broken_state_directory_is_refused_with_a_clear_error_and_nothing_replaced() {
    let t = TempDir::new("statefaults");
    let a = Node::new(&t.0, "a");
    a.write_config();
    let start = || {
        let out =
            std::process::Command::new(BIN).args(["daemon", "--foreground", "--config"]).arg(&a.conf).output().unwrap();
        assert!(!out.status.success(), "the daemon must refuse to start");
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    // A plain file where a directory belongs.
    for sub in ["log", "cards", "sessions"] {
        let p = a.dir.join(sub);
        let _ = std::fs::remove_dir_all(&p);
        std::fs::write(&p, b"").unwrap();
        let err = start();
        assert!(err.contains(sub) && err.contains("is not a directory"), "{err}");
        std::fs::remove_file(&p).unwrap();
    }
    // A directory where delivered.log belongs.
    let log = a.dir.join("delivered.log");
    std::fs::create_dir(&log).unwrap();
    assert!(start().contains("delivered.log is not a regular file"));
    std::fs::remove_dir(&log).unwrap();
    // identity.key a dangling symlink (flash not mounted): refused, not replaced.
    let key = a.dir.join("identity.key");
    let id_before = std::fs::read(&key).unwrap();
    std::fs::rename(&key, a.dir.join("identity.saved")).unwrap();
    std::os::unix::fs::symlink("/nonexistent/flash/identity.key", &key).unwrap();
    let err = start();
    assert!(err.contains("does not exist") && err.contains("refusing to create a new identity"), "{err}");
    assert!(std::fs::symlink_metadata(&key).unwrap().file_type().is_symlink(), "the link was left alone");
    std::fs::remove_file(&key).unwrap();
    std::fs::rename(a.dir.join("identity.saved"), &key).unwrap();
    assert_eq!(std::fs::read(&key).unwrap(), id_before);
}

#[test]
fn a_message_sent_just_after_the_peer_restarted_arrives_at_once_not_after_dead_peer_detection() {
    let t = TempDir::new("hint");
    // Built-in timers (keepalive 10 s, dead peer after 35 s): B does not
    // know A (it takes A's handshakes as a stranger's), so after a crash
    // nothing but A's own traffic tells A its session is gone.
    let mut a = Node::new(&t.0, "a");
    let mut b = Node::new(&t.0, "b");
    a.fast = false;
    b.fast = false;
    a.peer(&b, true);
    a.start();
    b.start();
    let (aid, bid) = (a.node_id(), b.node_id());
    assert!(wait_until(15, || a.linked_to(&bid) && b.linked_to(&aid)), "no link\nA:\n{}\nB:\n{}", a.log(), b.log());
    b.kill9();
    b.start();
    let t0 = std::time::Instant::now();
    send(&a, &bid, "are you back?");
    assert!(wait_until(30, || b.inbox().len() == 1), "B got nothing\nA:\n{}\nB:\n{}", a.log(), b.log());
    let took = t0.elapsed();
    eprintln!("FIGURE restart: a message sent just after the peer's restart arrived after {} ms", took.as_millis());
    // Without the session-unknown hint it waited for dead-peer detection
    // (32 s measured in issue 12); the goal is within 1 s, and a loaded
    // 2-core machine gets some slack.
    assert!(took.as_secs_f64() < 3.0, "took {took:?}");
    assert!(a.metric("session_unknown_received_total") >= 1, "A was told its session is unknown");
}

#[test]
fn a_backlog_of_a_thousand_messages_reaches_a_returning_peer_at_the_pace_of_its_link_budget() {
    let t = TempDir::new("backlog");
    let (a, mut b) = linked_pair(&t.0);
    let bid = b.node_id();
    b.stop();
    // 1000 messages: what A's store keeps for one origin (2 MB) and B's
    // inbox holds (inbox_max).
    const N: u64 = 1000;
    for i in 0..N {
        send(&a, &bid, &format!("backlog {i}"));
    }
    assert_eq!(a.store_count(), N, "A holds them all while B is away");
    let t0 = std::time::Instant::now();
    b.start();
    let delivered = |b: &Node| b.metric("envelopes_delivered_total");
    assert!(wait_until(30, || delivered(&b) >= 1), "nothing arrived\nA:\n{}\nB:\n{}", a.log(), b.log());
    let first = t0.elapsed();
    assert!(wait_until(60, || delivered(&b) >= N), "B got {} of {N}\nA:\n{}", delivered(&b), a.log());
    let all = t0.elapsed();
    eprintln!(
        "FIGURE backlog: {N} messages for a returning peer: first after {} ms, all after {} ms ({:.0} msg/s)",
        first.as_millis(),
        all.as_millis(),
        N as f64 / all.as_secs_f64()
    );
    // Within B's link budget (a burst of 1000, then 200 a second) the
    // whole backlog is asked for at once. One round of offers per sync
    // interval and the origin's budget (50 a second) took 12.4 s here
    // before, with envelopes dropped over the budget and offered again.
    assert!(all.as_secs_f64() < 8.0, "took {all:?}");
    assert_eq!(b.metric("envelopes_rate_limited_total"), 0, "nothing B asked for was dropped");
    assert!(wait_until(20, || a.store_count() == 0), "acks released A's copies");
    assert_eq!(b.inbox().len() as u64, N, "each exactly once");
}
