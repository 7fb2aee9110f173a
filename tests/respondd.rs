//! The respondd provider (issue 15, part 2): packaging/respondd's
//! `meshpost.so` built with the host's C compiler and json-c (Debian's
//! libjson-c-dev, installed by `make tools`), loaded by
//! tests/tools/respondd_harness.c the way respondd loads providers
//! (freifunk-gluon/packages net/respondd/src/respondd.c), and asked for
//! `nodeinfo` and `statistics` while a real daemon runs, while none runs,
//! and while something holds the socket without answering.

#[path = "common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

const SRC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

/// Builds the provider and the harness; `None` (a skip, outside CI only)
/// without a C compiler or json-c.
fn build(dir: &Path) -> Option<PathBuf> {
    let have = Path::new("/usr/include/json-c/json.h").exists() && Command::new("cc").arg("--version").output().is_ok();
    if !have {
        assert!(!in_ci(), "cc and libjson-c-dev missing in CI: make tools installs them");
        eprintln!("skipping: no cc or json-c headers (make tools installs them)");
        return None;
    }
    let prov = dir.join("providers");
    std::fs::create_dir_all(&prov).unwrap();
    let cc = |args: &[&str]| {
        let out = Command::new("cc").args(args).output().unwrap();
        assert!(out.status.success(), "cc {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    let so = prov.join("meshpost.so");
    let harness = dir.join("harness");
    cc(&[
        "-Wall",
        "-Werror",
        "-shared",
        "-fPIC",
        "-o",
        so.to_str().unwrap(),
        &format!("{SRC}/packaging/respondd/meshpost-respondd.c"),
        "-ljson-c",
    ]);
    cc(&[
        "-Wall",
        "-o",
        harness.to_str().unwrap(),
        &format!("{SRC}/tests/tools/respondd_harness.c"),
        "-ldl",
        "-ljson-c",
    ]);
    Some(harness)
}

fn query(harness: &Path, dir: &Path, sock: &Path) -> (Value, Value, Duration) {
    let t = Instant::now();
    let out = Command::new(harness)
        .arg(dir.join("providers"))
        .args(["nodeinfo", "statistics"])
        .env("MESHPOST_SOCKET", sock)
        .output()
        .unwrap();
    let took = t.elapsed();
    assert!(out.status.success(), "harness: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let mut lines = text.lines().map(|l| serde_json::from_str::<Value>(l).unwrap());
    (lines.next().unwrap()["nodeinfo"].clone(), lines.next().unwrap()["statistics"].clone(), took)
}

#[test]
fn respondd_sees_meshpost_running_stopped_and_stuck() {
    let t = TempDir::new("respondd");
    let Some(harness) = build(&t.0) else { return };
    let (mut a, b) = linked_pair(&t.0);
    assert_eq!(a.request(json!({"cmd": "send", "to": b.node_id(), "text": "hi"}))["ok"], true);
    assert!(wait_until(10, || b.inbox().len() == 1));

    // Running: the map sees the node's keys, the statistics its links,
    // store and messages.
    let (nodeinfo, stats, _) = query(&harness, &t.0, &a.sock);
    let m = &nodeinfo["software"]["meshpost"];
    let status = a.request(json!({"cmd": "status"}));
    let identity = a.request(json!({"cmd": "identity"}));
    assert_eq!(m["enabled"], true, "{nodeinfo}");
    assert_eq!(m["node_id"], status["node_id"]);
    assert_eq!(m["public_key"], identity["public_key"]);
    assert_eq!(m["version"], status["version"]);
    let s = &stats["meshpost"];
    assert_eq!(s["links"], 1, "{stats}");
    assert!(s["known_nodes"].as_u64().unwrap() >= 1);
    assert!(s["store"]["envelopes"].is_u64() && s["inbox"]["messages"].is_u64(), "{stats}");
    assert_eq!(s["messages"]["sent"], 1, "{stats}");
    let (_, stats_b, _) = query(&harness, &t.0, &b.sock);
    assert_eq!(stats_b["meshpost"]["messages"]["delivered"], 1, "{stats_b}");

    // Something holds the socket and never answers: the provider gives up
    // within its timeouts (500 ms per request) instead of stalling respondd.
    let stuck = t.0.join("stuck.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&stuck).unwrap();
    let (nodeinfo, stats, took) = query(&harness, &t.0, &stuck);
    assert_eq!(nodeinfo["software"]["meshpost"]["enabled"], false);
    assert!(stats.get("meshpost").is_none(), "{stats}");
    assert!(took < Duration::from_secs(5), "took {took:?}");

    // Stopped: enabled false, no statistics, and never a NULL object.
    a.stop();
    let (nodeinfo, stats, _) = query(&harness, &t.0, &a.sock);
    assert_eq!(nodeinfo, json!({"software": {"meshpost": {"enabled": false}}}));
    assert_eq!(stats, json!({}));
}
