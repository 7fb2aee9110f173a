//! The control socket under misuse: garbage, oversized and half-sent
//! requests, slow and excess clients, and users without permission.

#[path = "common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

/// Runs the child as another user; `Command::groups` is not stable yet.
trait AsUser {
    fn as_user(&mut self, uid: u32, gid: u32, groups: &'static [u32]) -> &mut Self;
}

impl AsUser for std::process::Command {
    fn as_user(&mut self, uid: u32, gid: u32, groups: &'static [u32]) -> &mut Self {
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            self.pre_exec(move || {
                if libc::setgroups(groups.len(), groups.as_ptr()) != 0
                    || libc::setgid(gid) != 0
                    || libc::setuid(uid) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            })
        }
    }
}

fn raw(sock: &std::path::Path, bytes: &[u8]) -> String {
    let mut s = UnixStream::connect(sock).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // The daemon may refuse an oversized request and close before all of
    // it is written (EPIPE here, seen once on a loaded machine); its answer
    // is still there to read.
    if let Err(e) = s.write_all(bytes) {
        use std::io::ErrorKind::{BrokenPipe, ConnectionReset};
        assert!(matches!(e.kind(), BrokenPipe | ConnectionReset), "{e}");
    }
    let mut line = String::new();
    BufReader::new(&s).read_line(&mut line).unwrap();
    line
}

fn one(root: &std::path::Path, extra: &str) -> Node {
    let mut n = Node::new(root, "solo");
    n.extra = extra.into();
    n.start();
    n
}

#[test]
fn garbage_gets_an_error_and_the_next_client_is_served() {
    let t = TempDir::new("garbage");
    let n = one(&t.0, "");
    for junk in
        [&b"{not json\n"[..], b"[1,2,3]\n", b"{\"cmd\": 5}\n", b"\xff\xfe\x00garbage\n", b"{\"cmd\":\"frobnicate\"}\n"]
    {
        let line = raw(&n.sock, junk);
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["ok"], false, "{line}");
        assert!(!v["error"].as_str().unwrap().is_empty());
    }
    // One connection can carry an error and then a good request.
    let mut s = UnixStream::connect(&n.sock).unwrap();
    s.write_all(b"nonsense\n{\"cmd\":\"status\"}\n").unwrap();
    let mut r = BufReader::new(&s);
    let mut l1 = String::new();
    let mut l2 = String::new();
    r.read_line(&mut l1).unwrap();
    r.read_line(&mut l2).unwrap();
    assert!(l1.contains("\"ok\":false"));
    assert!(l2.contains("\"ok\":true"));
    assert_eq!(n.request(json!({"cmd": "status"}))["ok"], true);
    // Four malformed lines and "nonsense"; the unknown command was well-formed.
    assert_eq!(n.metric("control_bad_requests_total"), 5);
}

#[test]
fn oversized_and_half_sent_requests_are_cut_off() {
    let t = TempDir::new("oversize");
    let n = one(&t.0, "\toption control_timeout '1'\n");
    let big = vec![b'a'; 8 * 1024 * 1024];
    let line = raw(&n.sock, &big);
    assert!(line.contains("longer than"), "{line}");
    // Half a request and then silence: an error after the timeout, and the
    // daemon keeps serving others meanwhile.
    let mut s = UnixStream::connect(&n.sock).unwrap();
    s.write_all(b"{\"cmd\": \"sta").unwrap();
    let started = Instant::now();
    assert_eq!(n.request(json!({"cmd": "status"}))["ok"], true);
    assert!(started.elapsed() < Duration::from_millis(900), "others are not held up");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut line = String::new();
    BufReader::new(&s).read_line(&mut line).unwrap();
    assert!(line.contains("timed out"), "{line}");
}

#[test]
fn a_client_that_never_reads_does_not_stall_others() {
    let t = TempDir::new("slow");
    let n = one(&t.0, "");
    let mut slow = UnixStream::connect(&n.sock).unwrap();
    // Queue many requests whose answers the client never reads.
    let req = b"{\"cmd\":\"metrics\"}\n".repeat(2000);
    slow.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
    let _ = slow.write_all(&req);
    for _ in 0..20 {
        let t0 = Instant::now();
        assert_eq!(n.request(json!({"cmd": "status"}))["ok"], true);
        assert!(t0.elapsed() < Duration::from_secs(2));
    }
    // Within the write timeout, the slow client is dropped.
    assert!(wait_until(15, || {
        n.request(json!({"cmd": "metrics"}))["text"]
            .as_str()
            .is_some_and(|t| t.contains("meshpost_control_clients 1\n"))
    }));
    drop(slow);
}

#[test]
fn client_limit_refuses_extra_clients_with_an_error() {
    let t = TempDir::new("limit");
    let n = one(&t.0, "\toption max_clients '3'\n\toption control_timeout '30'\n");
    // Root (this test) may use the reserve beyond max_clients too.
    let held: Vec<UnixStream> =
        (0..3 + meshpost::control::server::ROOT_RESERVE).map(|_| UnixStream::connect(&n.sock).unwrap()).collect();
    // The refusal is sent on accept: a refused client only reads (writing
    // could race the server's close and fail with EPIPE). Until the server
    // has accepted the three held ones, a fourth may still be served.
    let mut line = String::new();
    let refused = wait_until(10, || {
        let Ok(s) = UnixStream::connect(&n.sock) else { return false };
        s.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
        line.clear();
        BufReader::new(&s).read_line(&mut line).is_ok() && line.contains("too many clients")
    });
    assert!(refused, "{line}");
    drop(held);
    assert!(wait_until(5, || n.try_request(&json!({"cmd": "status"})).is_ok_and(|v| v["ok"] == true)));
    assert!(n.metric("control_refused_busy_total") >= 1);
}

#[test]
fn one_user_cannot_lock_root_out() {
    if !need_root("one_user_cannot_lock_root_out") {
        return;
    }
    let t = TempDir::new("peruser");
    std::fs::set_permissions(&t.0, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    // 'nobody' is allowed through socket_group 'nogroup' (its own group).
    let n = one(&t.0, "\toption max_clients '4'\n\toption control_timeout '60'\n\toption socket_group 'nogroup'\n");
    // As nobody: try to hold every connection; report how many were served.
    let script = format!(
        "import socket,sys,time\nheld=[]\nfor i in range(6):\n s=socket.socket(socket.AF_UNIX)\n s.connect({:?})\n s.settimeout(0.5)\n try:\n  line=s.recv(200)\n except Exception:\n  line=b''\n if line: s.close()\n else: held.append(s)\nprint(len(held),flush=True)\ntime.sleep(30)\n",
        n.sock.display().to_string()
    );
    let mut hog = std::process::Command::new("python3")
        .args(["-c", &script])
        .stdout(std::process::Stdio::piped())
        .as_user(65534, 65534, &[])
        .spawn()
        .unwrap();
    let mut count = String::new();
    BufReader::new(hog.stdout.take().unwrap()).read_line(&mut count).unwrap();
    assert_eq!(count.trim(), "2", "nobody may hold half of max_clients");
    // Root is still served, also with others connected.
    let v = n.request(json!({"cmd": "status"}));
    assert_eq!(v["ok"], true);
    assert!(n.log().contains("uid 65534"), "{}", n.log());
    let _ = hog.kill();
    let _ = hog.wait();
}

#[test]
fn subscribers_stream_new_messages() {
    let t = TempDir::new("sub");
    let (a, b) = linked_pair(&t.0);
    let mut s = UnixStream::connect(&b.sock).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    s.write_all(b"{\"cmd\":\"subscribe\"}\n").unwrap();
    let mut r = BufReader::new(&s);
    let mut first = String::new();
    r.read_line(&mut first).unwrap();
    assert!(first.contains("\"subscribed\""));
    let v = a.request(json!({"cmd": "send", "to": b.node_id(), "text": "live"}));
    assert_eq!(v["ok"], true);
    let mut ev = String::new();
    r.read_line(&mut ev).unwrap();
    let e: Value = serde_json::from_str(&ev).unwrap();
    assert_eq!(e["event"], "message");
    assert_eq!(e["text"], "live");
    assert_eq!(e["id"], v["id"]);
}

/// What a subscriber read: the number in each message's text, in order,
/// with `None` for each `dropped` marker, and the count the markers gave.
struct Events {
    seen: Vec<Option<usize>>,
    dropped: usize,
}

/// Reads a subscription until `total` messages are accounted for
/// (received, or counted in `dropped` markers) or it goes quiet for 20 s.
fn drain_events(r: &mut BufReader<UnixStream>, total: usize) -> Events {
    let mut ev = Events { seen: Vec::new(), dropped: 0 };
    let mut line = String::new();
    while ev.seen.iter().flatten().count() + ev.dropped < total {
        line.clear();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        let e: Value = serde_json::from_str(&line).unwrap();
        if e["event"] == "dropped" {
            ev.seen.push(None);
            ev.dropped += e["count"].as_u64().unwrap() as usize;
        } else {
            assert_eq!(e["event"], "message", "{line}");
            ev.seen.push(e["text"].as_str().and_then(|t| t[..5].parse().ok()));
        }
    }
    ev
}

#[test]
fn a_slow_subscriber_to_messages_gets_a_marker_then_the_newest_1024_and_the_inbox_keeps_all() {
    let t = TempDir::new("slowmsgsub");
    let mut a = Node::new(&t.0, "a");
    let mut b = Node::new(&t.0, "b");
    let roomy = "\toption link_rate '100000'\n\toption origin_rate '100000'\n\toption store_max_count '100000'\n\toption store_max_bytes '67108864'\n\toption store_origin_quota '67108864'\n\toption store_recipient_quota '67108864'\n\toption inbox_max '100000'\n\toption inbox_max_bytes '67108864'\n";
    a.extra = roomy.into();
    b.extra = roomy.into();
    a.peer(&b, true);
    b.peer(&a, true);
    a.start();
    b.start();
    let (aid, bid) = (a.node_id(), b.node_id());
    assert!(wait_until(15, || a.linked_to(&bid) && b.linked_to(&aid)), "no link");
    let pid = b.child.as_ref().unwrap().id();
    let subscribe = || subscribe_messages(&b.sock, 20);
    // More than B holds for a subscriber to its messages (1024 events,
    // runtime/mod.rs SUBSCRIBER_BUFFER) and the socket's buffer together:
    // events of 600-character texts are about 900 bytes.
    let total = 2000usize;
    let mut fast = subscribe();
    let fast_thread = std::thread::spawn(move || drain_events(&mut fast, total));
    let mut slow = subscribe();
    let rss_before = rss_kib(pid);
    let mut batch = String::new();
    for i in 0..total {
        let text = format!("{i:05} {}", "m".repeat(594));
        batch.push_str(&format!("{}\n", json!({"cmd": "send", "to": bid, "text": text})));
    }
    let mut s = UnixStream::connect(&a.sock).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let writer = std::thread::spawn(move || s.write_all(batch.as_bytes()).unwrap());
    let mut line = String::new();
    for i in 0..total {
        line.clear();
        r.read_line(&mut line).unwrap();
        assert!(line.contains("\"ok\":true"), "send {i}: {line}");
    }
    writer.join().unwrap();
    // The fast subscriber saw every message arrive, so B has them all
    // before the slow one reads a line.
    let fast = fast_thread.join().unwrap();
    let mut order: Vec<usize> = fast.seen.iter().flatten().copied().collect();
    assert_eq!((order.len(), fast.dropped), (total, 0), "the fast subscriber was not held up");
    order.sort_unstable();
    order.dedup();
    assert_eq!(order.len(), total, "each message once");
    let slow = drain_events(&mut slow, total);
    let rss_after = rss_kib(pid);
    let markers = slow.seen.iter().filter(|e| e.is_none()).count();
    let got = slow.seen.len() - markers;
    eprintln!(
        "slow subscriber: {got} received, {} dropped in {markers} markers; B's RSS {rss_before} -> {rss_after} KiB",
        slow.dropped
    );
    assert_eq!(markers, 1, "one marker where the events were lost");
    assert_eq!(got + slow.dropped, total, "every message is either received or counted as dropped");
    // What the socket held came first; after the marker, the 1024 events
    // the daemon keeps for a subscriber (runtime/mod.rs, SUBSCRIBER_BUFFER),
    // the newest, in order.
    let after: Vec<usize> = slow.seen.iter().skip_while(|e| e.is_some()).skip(1).flatten().copied().collect();
    assert_eq!(after.len(), 1024, "events held after the marker");
    let last: Vec<usize> = fast.seen.iter().flatten().copied().skip(total - 1024).collect();
    assert_eq!(after, last, "the newest 1024, in the order they arrived");
    let grew = rss_after.saturating_sub(rss_before);
    assert!(grew < 16 * 1024, "B's memory grew by {grew} KiB");
    assert_eq!(b.inbox().len(), total, "the inbox has every message, whatever the subscriber lost");
}

fn rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines().find_map(|l| l.strip_prefix("VmRSS:")).unwrap().trim().trim_end_matches(" kB").trim().parse().unwrap()
}

#[test]
fn cli_errors_are_one_line_with_nonzero_exit() {
    let out =
        std::process::Command::new(BIN).args(["--socket", "/nonexistent/meshpost.sock", "status"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("meshpost: error: cannot connect"));
    let out = std::process::Command::new(BIN).arg("frob").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown command"));
}

#[test]
fn users_without_permission_are_refused() {
    if !need_root("users_without_permission_are_refused") {
        return;
    }
    let t = TempDir::new("perm");
    // The daemon runs as root; 'nobody' (65534) is neither root nor in a group.
    let n = one(&t.0, "");
    let out = std::process::Command::new(BIN)
        .args(["--socket"])
        .arg(&n.sock)
        .arg("status")
        .as_user(65534, 65534, &[])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("permission denied"), "{err}");
    assert!(n.metric("control_refused_access_total") >= 1);
    assert!(wait_until(5, || n.log().contains("control socket: refused uid 65534")), "{}", n.log());
}

#[test]
fn members_of_socket_group_are_allowed() {
    if !need_root("members_of_socket_group_are_allowed") {
        return;
    }
    let t = TempDir::new("group");
    // Debian's 'nogroup' has gid 65534; a supplementary membership counts.
    let n = one(&t.0, "\toption socket_group 'nogroup'\n");
    let out = std::process::Command::new(BIN)
        .args(["--json", "--socket"])
        .arg(&n.sock)
        .arg("status")
        .as_user(65534, 100, &[65534])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut s = String::new();
    out.stdout.as_slice().read_to_string(&mut s).unwrap();
    let v: Value = serde_json::from_str(&s).unwrap();
    assert_eq!(v["ok"], true);
}

#[test]
fn the_cli_and_the_rpcd_plugin_find_the_socket_named_in_uci() {
    let t = TempDir::new("uci-socket");
    let n = one(&t.0, "");
    // No --socket and no MESHPOST_SOCKET: only the config file says where.
    let run = |args: &[&str], stdin: &str| {
        let mut c = std::process::Command::new(BIN)
            .arg("--config")
            .arg(&n.conf)
            .args(args)
            .env_remove("MESHPOST_SOCKET")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        c.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        c.wait_with_output().unwrap()
    };
    let out = run(&["--json", "status"], "");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], true);
    let out = run(&["rpc", "call", "status"], "{}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], true, "ubus reaches the daemon too: {v}");
}

#[test]
fn no_ubus_answer_grows_past_the_bound_even_with_an_inbox_of_maximum_messages() {
    let t = TempDir::new("ubus-bound");
    let (a, b) = linked_pair(&t.0);
    let bid = b.node_id();
    // 20 messages of 59,000 control characters: each is ~354 KB as JSON,
    // 7 MB together, where ubus allows 1 MiB per message.
    let text: String = (0..59_000).map(|i| char::from(1 + (i % 31) as u8)).collect();
    for _ in 0..20 {
        let v = a.request(json!({"cmd": "send", "to": bid, "text": text}));
        assert_eq!(v["ok"], true, "{v}");
    }
    assert!(wait_until(120, || b.inbox().len() == 20), "all 20 arrived ({})", b.inbox().len());
    // Page through exactly as rpcd does: `meshpost rpc call inbox`.
    let (mut ids, mut offset, mut pages) = (std::collections::BTreeSet::new(), 0u64, 0);
    loop {
        let mut c = std::process::Command::new(BIN)
            .arg("--socket")
            .arg(&b.sock)
            .args(["rpc", "call", "inbox"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        c.stdin.take().unwrap().write_all(json!({"offset": offset}).to_string().as_bytes()).unwrap();
        let out = c.wait_with_output().unwrap();
        assert!(out.stdout.len() < 1 << 20, "an answer of {} bytes would break ubus", out.stdout.len());
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["ok"], true);
        for m in v["messages"].as_array().unwrap() {
            assert_eq!(m["text"].as_str().unwrap(), text, "whole bodies, exact");
            ids.insert(m["id"].as_str().unwrap().to_string());
        }
        pages += 1;
        match v["next"].as_u64() {
            Some(n) => offset = n,
            None => break,
        }
    }
    assert_eq!(ids.len(), 20, "every message on some page");
    assert!(pages >= 10, "it took {pages} pages");
    // The CLI joins the pages for people and scripts.
    let out = b.cli(&["--json", "inbox"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["messages"].as_array().unwrap().len(), 20);

    // Hostile local clients: every connection the daemon allows asks for
    // the full inbox, page after page, and never reads. Memory stays
    // bounded (answers are pages of at most 512 KiB, and a write that does
    // not drain in 5 s drops the client).
    let pid = b.child.as_ref().unwrap().id();
    let rss_kb = || -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        s.lines().find_map(|l| l.strip_prefix("VmRSS:")).unwrap().trim().trim_end_matches(" kB").trim().parse().unwrap()
    };
    let before = rss_kb();
    let hostile: Vec<UnixStream> = (0..20)
        .filter_map(|_| {
            let mut s = UnixStream::connect(&b.sock).ok()?;
            for offset in 0..10 {
                let _ = s.write_all(format!("{}\n", json!({"cmd": "inbox", "offset": offset * 2})).as_bytes());
            }
            Some(s)
        })
        .collect();
    let mut peak = before;
    let end = Instant::now() + Duration::from_secs(8);
    while Instant::now() < end {
        peak = peak.max(rss_kb());
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!(
        "RSS with {} never-reading clients on a full inbox: {before} kB before, {peak} kB at peak",
        hostile.len()
    );
    assert!(peak < 32 * 1024, "RSS reached {peak} kB (bound 32 MB; docs/control.md)");
    drop(hostile);
    assert!(wait_until(10, || b.try_request(&json!({"cmd": "status"})).is_ok_and(|v| v["ok"] == true)));
}

#[test]
fn sending_to_an_unknown_node_of_another_community_names_the_domain_and_what_is_missing() {
    let t = TempDir::new("unknown-remote");
    let n = one(&t.0, "\toption domain 'north'\n");
    let v = n.request(json!({"cmd": "send", "to": "S1@south", "text": "hi"}));
    assert_eq!(v["ok"], false);
    let e = v["error"].as_str().unwrap();
    assert!(e.contains("no keys known for S1@south yet"), "{e}");
    assert!(e.contains("no federation link to south"), "{e}");
}

#[test]
fn pipelined_sends_on_one_connection_are_answered_in_order_and_all_arrive() {
    let t = TempDir::new("pipelined");
    let (a, b) = linked_pair(&t.0);
    let bid = b.node_id();
    // 40 sends written at once, an unknown recipient in the middle (an
    // error answer in its place), then a status request.
    let mut batch = String::new();
    for i in 0..40 {
        let to = if i == 20 { "0".repeat(32) } else { bid.clone() };
        batch.push_str(&format!("{}\n", json!({"cmd": "send", "to": to, "text": format!("piped {i}")})));
    }
    batch.push_str("{\"cmd\":\"status\"}\n");
    let mut s = UnixStream::connect(&a.sock).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(batch.as_bytes()).unwrap();
    let mut r = BufReader::new(s);
    let mut ids = Vec::new();
    for i in 0..40 {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        let v: Value = serde_json::from_str(&line).unwrap();
        if i == 20 {
            assert_eq!(v["ok"], false, "answer {i} belongs to the unknown recipient: {v}");
        } else {
            assert_eq!(v["ok"], true, "answer {i}: {v}");
            ids.push(v["id"].as_str().unwrap().to_string());
        }
    }
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    assert!(serde_json::from_str::<Value>(&line).unwrap()["node_id"].is_string(), "then the status: {line}");
    assert!(wait_until(20, || b.inbox().len() == 39), "B has {}", b.inbox().len());
    let texts: Vec<String> = b.inbox().iter().map(|m| m["text"].as_str().unwrap().to_string()).collect();
    for i in (0..40).filter(|i| *i != 20) {
        assert!(texts.contains(&format!("piped {i}")), "piped {i} missing");
    }
    assert_eq!(ids.iter().collect::<std::collections::BTreeSet<_>>().len(), 39);
}
