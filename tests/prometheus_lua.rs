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

/// What the exporter serves parses with Prometheus' own parser
/// (prometheus_client from PyPI), carries the daemon's live counters, and
/// every metric name follows Prometheus' naming rules and is documented
/// with its type in docs/control.md.
#[test]
fn the_scrape_parses_as_prometheus_text_with_live_counters_and_documented_names() {
    let Some(py) = venv_python("prometheus_client") else { return };
    let t = TempDir::new("prom-parse");
    let mut n = Node::new(&t.0, "p");
    n.start();
    assert_eq!(n.request(serde_json::json!({"cmd": "channel", "action": "create", "name": "town"}))["ok"], true);
    for i in 0..3 {
        let ans = n.request(serde_json::json!({"cmd": "publish", "channel": "town", "text": format!("m{i}")}));
        assert_eq!(ans["ok"], true, "{ans}");
    }
    let Some(text) = scrape(&n) else { return };
    let parser = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = {}
for fam in text_string_to_metric_families(sys.stdin.read()):
    for s in fam.samples:
        out[s.name] = [fam.type, int(s.value) if s.value == int(s.value) else s.value]
print(json.dumps(out))
"#;
    let mut child = Command::new(&py)
        .args(["-c", parser])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "prometheus_client refused the scrape: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let parsed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let samples = parsed.as_object().unwrap();
    assert_eq!(parsed["meshpost_up"], serde_json::json!(["gauge", 1]));
    assert_eq!(parsed["meshpost_channel_published_total"], serde_json::json!(["counter", 3]), "live counter");
    assert_eq!(parsed["meshpost_links"], serde_json::json!(["gauge", 0]));

    let docs = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/control.md")).unwrap();
    let mut ours = 0;
    for (name, v) in samples.iter().filter(|(k, _)| k.starts_with("meshpost_") && *k != "meshpost_up") {
        let ty = v[0].as_str().unwrap();
        assert!(name.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_'), "{name}");
        assert_eq!(ty == "counter", name.ends_with("_total"), "{name}: counters, and only counters, end in _total");
        assert!(
            docs.contains(&format!("| `{name}` | {ty} |")),
            "{name} ({ty}) is not in docs/control.md's metric table"
        );
        ours += 1;
    }
    assert!(ours >= 60, "only {ours} metrics");
    n.stop();
}
