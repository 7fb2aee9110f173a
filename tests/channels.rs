//! Channels between real daemons on loopback: config and CLI membership,
//! history, publish limits, and slow subscribers.

#[path = "common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

fn rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines().find_map(|l| l.strip_prefix("VmRSS:")).unwrap().trim().trim_end_matches(" kB").trim().parse().unwrap()
}

#[test]
fn config_and_cli_channels_deliver_keep_history_and_refuse_misuse() {
    let t = TempDir::new("chan");
    let (mut a, mut b) = linked_pair(&t.0);
    // A channel created on A with the CLI prints a shareable key.
    let out = a.cli(&["channel", "create", "notfall"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let key = text.lines().last().unwrap().trim().to_string();
    assert!(key.starts_with("mpch1-") && key.len() == 6 + 64, "{text}");
    // B gets the same channel from its UCI file, as an admin would set it.
    b.stop();
    b.extra = format!("config channel\n\toption name 'notfall'\n\toption key '{key}'\n");
    b.start();
    assert!(wait_until(15, || a.linked_to(&b.node_id())));
    let list = b.request(json!({"cmd": "channel", "action": "list"}));
    assert_eq!(list["channels"][0]["name"], "notfall");
    assert_eq!(list["channels"][0]["source"], "config");
    let v = b.request(json!({"cmd": "channel", "action": "leave", "name": "notfall"}));
    assert!(v["error"].as_str().unwrap().contains("config file"), "{v}");

    // Publishing: arguments or stdin, and B's history has both, in order.
    assert!(a.cli(&["publish", "notfall", "Deich", "bricht"]).status.success());
    let mut child = std::process::Command::new(BIN)
        .args(["--socket"])
        .arg(&a.sock)
        .args(["publish", "notfall"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"Sandsaecke am Markt\n").unwrap();
    assert!(child.wait().unwrap().success());
    let history = || b.request(json!({"cmd": "channel", "action": "history", "name": "notfall"}))["messages"].clone();
    assert!(wait_until(10, || history().as_array().unwrap().len() == 2), "{}", b.log());
    let h = history();
    assert_eq!(h[0]["text"], "Deich bricht");
    assert_eq!(h[1]["text"], "Sandsaecke am Markt");
    assert_eq!(h[0]["from"], a.node_id());
    let cli_history = String::from_utf8_lossy(&b.cli(&["channel", "history", "notfall"]).stdout).to_string();
    assert!(cli_history.contains("Deich bricht"));

    // Oversized messages are refused at publish, with a clear error.
    let big = "x".repeat(20_000);
    let out = a.cli(&["publish", "notfall", &big]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("larger than the channel maximum of 16384 bytes"));
    // Unknown channels and bad keys too.
    assert!(String::from_utf8_lossy(&a.cli(&["publish", "nope", "x"]).stderr).contains("not in a channel"));
    let out = a.cli(&["channel", "join", "other", "mpch1-1234"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("channel key"));

    // Joined channels survive a restart; their keys are private on disk.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(a.dir.join("channels")).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    a.stop();
    a.start();
    let list = a.request(json!({"cmd": "channel", "action": "list"}));
    assert_eq!(list["channels"][0]["name"], "notfall");
    assert_eq!(list["channels"][0]["history"], 2, "history rebuilt from the store");
    assert!(a.log().contains("joined channel notfall"));
}

#[test]
fn a_bad_channel_key_in_uci_names_file_line_and_option() {
    let t = TempDir::new("chanconf");
    let conf = t.0.join("bad.conf");
    std::fs::write(&conf, "config meshpost 'main'\n\nconfig channel\n\toption name 'notfall'\n\toption key 'secret'\n")
        .unwrap();
    let out = std::process::Command::new(BIN).args(["daemon", "--foreground", "--config"]).arg(&conf).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("{}:5: option 'key'", conf.display())), "{err}");
}

fn subscribe(sock: &std::path::Path, channel: &str) -> BufReader<UnixStream> {
    let mut s = UnixStream::connect(sock).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    writeln!(s, "{}", json!({"cmd": "subscribe", "channel": channel})).unwrap();
    let mut r = BufReader::new(s);
    let mut first = String::new();
    r.read_line(&mut first).unwrap();
    assert!(first.contains("\"subscribed\""), "{first}");
    r
}

#[test]
fn a_slow_subscriber_gets_a_dropped_marker_and_memory_stays_bounded() {
    let t = TempDir::new("slowsub");
    let mut a = Node::new(&t.0, "a");
    a.extra = "\toption store_max_bytes '67108864'\n\toption store_origin_quota '67108864'\n\toption store_recipient_quota '67108864'\n\toption store_max_count '100000'\n".into();
    a.start();
    let v = a.request(json!({"cmd": "channel", "action": "create", "name": "flood"}));
    assert_eq!(v["ok"], true);
    let pid = a.child.as_ref().unwrap().id();
    // More than the daemon holds for a channel's subscriber (256 events)
    // and the socket's buffer together.
    let total = 2000usize;

    // A fast subscriber reads everything on its own thread.
    let fast = subscribe(&a.sock, "flood");
    let fast_thread = std::thread::spawn(move || {
        let mut r = fast;
        let (mut got, mut dropped) = (0usize, 0u64);
        let mut line = String::new();
        while got + (dropped as usize) < total {
            line.clear();
            if r.read_line(&mut line).unwrap_or(0) == 0 {
                break;
            }
            let e: Value = serde_json::from_str(&line).unwrap();
            if e["event"] == "dropped" {
                dropped += e["count"].as_u64().unwrap();
            } else {
                got += 1;
            }
        }
        (got, dropped)
    });
    // A slow one reads nothing until everything was published.
    let mut slow = subscribe(&a.sock, "flood");
    let rss_before = rss_kib(pid);
    let text = "z".repeat(600);
    let publisher = {
        let sock = a.sock.clone();
        std::thread::spawn(move || {
            let mut s = UnixStream::connect(&sock).unwrap();
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut line = String::new();
            for _ in 0..total {
                writeln!(s, "{}", json!({"cmd": "publish", "channel": "flood", "text": text})).unwrap();
                line.clear();
                r.read_line(&mut line).unwrap();
                assert!(line.contains("\"ok\":true"), "{line}");
            }
        })
    };
    publisher.join().unwrap();
    let (mut got, mut dropped, mut markers) = (0usize, 0u64, 0);
    let mut line = String::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while got + (dropped as usize) < total && Instant::now() < deadline {
        line.clear();
        if slow.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        let e: Value = serde_json::from_str(&line).unwrap();
        if e["event"] == "dropped" {
            markers += 1;
            dropped += e["count"].as_u64().unwrap();
        } else {
            got += 1;
        }
    }
    let rss_after = rss_kib(pid);
    assert!(markers >= 1 && dropped > 0, "no dropped marker (got {got})");
    assert_eq!(got + dropped as usize, total, "every message is either delivered or counted as dropped");
    let (fast_got, fast_dropped) = fast_thread.join().unwrap();
    assert_eq!((fast_got, fast_dropped), (total, 0), "the fast subscriber was not held up");
    let grew = rss_after.saturating_sub(rss_before);
    eprintln!(
        "slow subscriber: {got} delivered, {dropped} dropped in {markers} markers; daemon RSS {rss_before} -> {rss_after} KiB"
    );
    assert!(grew < 16 * 1024, "daemon memory grew by {grew} KiB");
}
