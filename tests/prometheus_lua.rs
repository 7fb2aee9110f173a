//! The Prometheus collector for OpenWrt's prometheus-node-exporter-lua
//! (packaging/openwrt/files/meshpost.prometheus.lua), run by the real Lua
//! 5.1 interpreter the way the exporter runs collectors (harness:
//! tests/tools/exporter_harness.lua, written from the exporter's source),
//! against a running daemon: every meshpost metric comes out with its
//! type, meshpost_up is 1; with the daemon stopped, meshpost_up is 0 and
//! the scrape still succeeds.

#[path = "common/mod.rs"]
mod common;

use std::process::Command;

use common::*;

/// What the exporter would serve, or None when Lua is missing (outside CI).
fn scrape(n: &Node) -> Option<String> {
    let lua = ["lua5.1", "lua"].into_iter().find(|l| Command::new(l).arg("-v").output().is_ok());
    let Some(lua) = lua else {
        assert!(!in_ci(), "lua5.1 is missing and CI is set: `make test` installs it");
        eprintln!("SKIP: no lua5.1 (make test installs it)");
        return None;
    };
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let out = Command::new(lua)
        .arg(format!("{root}/tests/tools/exporter_harness.lua"))
        .arg(format!("{root}/packaging/openwrt/files/meshpost.prometheus.lua"))
        .env("MESHPOST_BIN", BIN)
        .env("MESHPOST_SOCKET", &n.sock)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    Some(String::from_utf8(out.stdout).unwrap())
}

#[test]
fn the_node_exporter_collector_passes_every_metric_on_and_says_when_the_daemon_is_down() {
    let t = TempDir::new("prom");
    let mut n = Node::new(&t.0, "p");
    n.start();
    let Some(text) = scrape(&n) else { return };
    assert!(text.contains("# TYPE meshpost_links gauge\nmeshpost_links 0\n"), "{text}");
    assert!(text.contains("# TYPE meshpost_datagrams_in_total counter\n"), "{text}");
    assert!(text.contains("meshpost_up 1"), "{text}");
    assert!(text.contains("node_scrape_collector_success{collector=\"meshpost\"} 1"), "{text}");
    let ours =
        String::from_utf8(Command::new(BIN).arg("--socket").arg(&n.sock).arg("metrics").output().unwrap().stdout)
            .unwrap();
    let names = ours.lines().filter(|l| !l.starts_with('#') && !l.is_empty()).count();
    let passed = text.lines().filter(|l| l.starts_with("meshpost_") && !l.starts_with("meshpost_up ")).count();
    assert_eq!(names, passed, "every metric passed on");
    n.stop();
    let text = scrape(&n).unwrap_or_default();
    assert!(text.contains("meshpost_up 0") && text.contains("collector=\"meshpost\"} 1"), "{text}");
}
