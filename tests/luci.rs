//! luci-app-meshpost in headless Chromium, against two real daemons.
//!
//! LuCI is in no package registry here, so the views run in a small host
//! page (tests/luci/host.html, luci-shim.js) that provides the LuCI client
//! APIs they call, written from LuCI's documented behaviour. Their ubus
//! calls go through tests/tools/luci_ubus.py, which answers as uhttpd's
//! ubus handler and rpcd do (access from the app's real acl.d file, the
//! real rpcd exec plugin packaging/openwrt/files/meshpost.rpcd, a uci
//! object that writes the file and signals the daemon as procd's reload
//! trigger does). The browser is Debian's chromium driven by playwright-core
//! (`make webtools` installs both). Screenshots land in target/luci-shots,
//! or in $MESHPOST_SCREENSHOTS (docs/luci holds the committed ones).
//!
//! What it proves: the status view draws the mesh from a live daemon; a
//! message sent from the form arrives at the second daemon and the view
//! shows it delivered; a read-only ACL group cannot send; a channel is
//! created and published to; settings the daemon would refuse are not
//! saved, and a good change is saved, applied and taken by the daemon;
//! every file the form writes reads the same in the real libuci.

#[path = "common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use common::*;
use serde_json::{Value, json};

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
const FULL: &str = "0123456789abcdef0123456789abcdef";
const READONLY: &str = "fedcba9876543210fedcba9876543210";

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// playwright-core and chromium, or None outside CI when missing.
fn browser_tools() -> Option<PathBuf> {
    let pw = PathBuf::from(format!("{ROOT}/target/webtools/node_modules/playwright-core"));
    let ok = pw.join("package.json").exists()
        && Path::new("/usr/bin/chromium").exists()
        && Command::new("node").arg("--version").output().is_ok_and(|o| o.status.success());
    if ok {
        return Some(pw);
    }
    assert!(!in_ci(), "chromium, node or playwright-core missing and CI is set: `make webtools` installs them");
    eprintln!("SKIP: run `make webtools` for the LuCI browser test");
    None
}

fn start_router(a: &Node) -> (Server, u16) {
    let app = format!("{ROOT}/packaging/openwrt/luci-app-meshpost");
    let pid = a.child.as_ref().unwrap().id();
    let mut child = Command::new("python3")
        .arg(format!("{ROOT}/tests/tools/luci_ubus.py"))
        .args(["--htdocs", &format!("{app}/htdocs")])
        .args(["--host-dir", &format!("{ROOT}/tests/luci")])
        .args(["--acl-dir", &format!("{app}/root/usr/share/rpcd/acl.d")])
        .args(["--plugin", &format!("{ROOT}/packaging/openwrt/files/meshpost.rpcd")])
        .args(["--bin", BIN])
        .arg("--socket")
        .arg(&a.sock)
        .arg("--config")
        .arg(&a.conf)
        .args(["--reload-pid", &pid.to_string()])
        .args(["--session", &format!("{FULL}=luci-app-meshpost:read,write")])
        .args(["--session", &format!("{READONLY}=luci-app-meshpost:read")])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let port = line.trim().strip_prefix("ready ").and_then(|p| p.parse().ok()).expect("router did not start");
    (Server(child), port)
}

/// The file as meshpost reads it, after checking the real libuci reads it
/// the same way.
fn read_config(path: &Path) -> Vec<meshpost::uci::Section> {
    let text = std::fs::read(path).unwrap();
    let ours = meshpost::uci::parse(&text).unwrap();
    let real = libuci_ref::parse(&text).unwrap_or_else(|e| panic!("libuci refuses the saved file: {e:?}"));
    assert_eq!(
        String::from_utf8_lossy(&real),
        String::from_utf8_lossy(&meshpost::uci::dump(&meshpost::uci::parse_raw(&text).unwrap())),
        "libuci and meshpost disagree on the saved file:\n{}",
        String::from_utf8_lossy(&text)
    );
    ours
}

fn option<'a>(secs: &'a [meshpost::uci::Section], kind: &str, opt: &str) -> Option<&'a str> {
    secs.iter().find(|s| s.kind == kind).and_then(|s| s.get(opt)).map(|o| o.value.as_str())
}

#[test]
fn the_luci_views_show_the_mesh_send_messages_run_channels_and_save_settings() {
    let Some(playwright) = browser_tools() else { return };
    let t = TempDir::new("luci");
    // A line A - B - C: the mesh picture then has a second ring. Announces
    // every 2 s, so the picture's edges (from announced neighbour lists)
    // are complete soon after the links come up.
    let fast = "\toption announce_interval '2'\n";
    let (mut a, mut b, mut c) = (Node::new(&t.0, "a"), Node::new(&t.0, "b"), Node::new(&t.0, "c"));
    a.peer(&b, true);
    b.peer(&a, true);
    c.peer(&b, true);
    for n in [&mut a, &mut b, &mut c] {
        n.extra = fast.into();
        n.start();
    }
    let edges = || a.request(json!({"cmd": "graph"}))["edges"].as_array().map_or(0, Vec::len);
    assert!(wait_until(30, || edges() >= 2), "A's graph has {} edges\nA:\n{}", edges(), a.log());
    // Something in A's inbox to read, before the page opens.
    let ans = b.request(json!({"cmd": "send", "to": a.node_id(), "text": "welcome to the mesh"}));
    assert_eq!(ans["ok"], true, "{ans}");
    assert!(wait_until(20, || !a.inbox().is_empty()), "B's message did not arrive");
    // And a file, which the inbox lists as one entry with its name and size.
    let file = t.0.join("notes.txt");
    std::fs::write(&file, vec![b'x'; 40_000]).unwrap();
    let sent = b.cli(&["send", &a.node_id(), "--file", file.to_str().unwrap(), "--wait=30"]);
    assert!(sent.status.success(), "{}", String::from_utf8_lossy(&sent.stderr));
    let before = read_config(&a.conf);

    let (_router, port) = start_router(&a);
    let shots = std::env::var("MESHPOST_SCREENSHOTS").unwrap_or_else(|_| format!("{ROOT}/target/luci-shots"));
    std::fs::create_dir_all(&shots).unwrap();
    let out = Command::new("node")
        .arg(format!("{ROOT}/tests/luci/drive.mjs"))
        .env("BASE", format!("http://127.0.0.1:{port}"))
        .env("FULL", FULL)
        .env("READONLY", READONLY)
        .env("TO", b.node_id())
        .env("SHOTS", &shots)
        .env("PLAYWRIGHT", &playwright)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "driver failed: {stderr}\nA:\n{}", a.log());
    let r: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {stderr}"));
    assert_eq!(r["page_errors"], json!([]), "{r:#}");

    // Status: both nodes drawn, joined by their link, from the live daemon.
    assert_eq!(r["status_ready"], "1", "{r:#}");
    assert!(r["graph_nodes"].as_u64() >= Some(3) && r["graph_edges"].as_u64() >= Some(2), "{r:#}");
    assert!(r["status_text"].as_str().unwrap().contains(&a.node_id()), "{r:#}");

    // Messages: the message typed into the form is in B's inbox, and the
    // view showed it delivered; the inbox message was read in the page.
    assert_eq!(r["delivered"], true, "{r:#}");
    assert!(b.inbox().iter().any(|m| m["text"] == "hello from LuCI"), "not in B's inbox: {:?}", b.inbox());
    assert_eq!(r["read_text"], "welcome to the mesh", "{r:#}");
    assert_eq!(r["inbox_rows"], 2, "{r:#}");
    assert!(r["inbox_text"].as_str().unwrap().contains("file notes.txt (39.1 KiB)"), "{r:#}");
    assert_eq!(a.inbox()[0]["read"], true);
    // The read-only group was refused by the ACL, and nothing was sent.
    assert!(r["readonly_error"].as_str().unwrap().contains("Access denied"), "{r:#}");
    assert!(!b.inbox().iter().any(|m| m["text"] == "must not be sent"));

    // Channels: created with a key shown once, published, in the history.
    assert!(r["channel_key"].as_str().unwrap().starts_with("mpch1-"), "{r:#}");
    assert!(r["channel_history"].as_str().unwrap().contains("market at 10"), "{r:#}");
    assert_eq!(r["rejoined"], true, "{r:#}");
    let hist = a.request(json!({"cmd": "channel", "action": "history", "name": "town"}));
    assert_eq!(hist["messages"][0]["text"], "market at 10", "{hist}");

    // Settings: the daemon's rules refused the domain (with section and
    // option), LuCI's datatype the port; neither reached the file.
    let refused = r["refused"].as_str().unwrap();
    assert!(refused.contains("section 'main', option 'domain'"), "{refused}");
    assert!(r["port_refused"].as_str().unwrap().contains("port"), "{r:#}");
    // The good change was saved and applied: the daemon took the new name
    // on its reload, and everything else in the file is as it was.
    assert!(wait_until(10, || a.request(json!({"cmd": "status"}))["name"] == "alpha-luci"), "{}", a.log());
    let after = read_config(&a.conf);
    assert_eq!(option(&after, "meshpost", "name"), Some("alpha-luci"));
    assert_eq!(option(&after, "meshpost", "domain"), option(&before, "meshpost", "domain"));
    assert_eq!(option(&after, "meshpost", "port"), option(&before, "meshpost", "port"));
    assert_eq!(option(&after, "peer", "key"), option(&before, "peer", "key"));
    // The peer added in the form, after its all-zero key was refused.
    assert!(r["zero_key_refused"].as_str().unwrap().contains("all-zero"), "{r:#}");
    assert_eq!(r["peer_added"], true, "{r:#}");
    let peers: Vec<_> = after.iter().filter(|s| s.kind == "peer").collect();
    assert_eq!(peers.len(), 2, "{after:?}");
    assert_eq!(peers[1].get("address").map(|o| o.value.as_str()), Some("127.0.0.1:9"));
    assert_eq!(peers[1].get("key").map(|o| o.value.clone()), Some("ab".repeat(32)));
    assert_eq!(after.len(), before.len() + 1, "only the new peer was added");
    // Still linked after the reload.
    let bid = b.node_id();
    assert!(wait_until(10, || a.linked_to(&bid)));
    for name in ["luci-status", "luci-messages", "luci-channels", "luci-settings", "luci-settings-refused"] {
        assert!(Path::new(&format!("{shots}/{name}.png")).exists(), "{name}.png missing");
    }
    a.stop();
    b.stop();
    c.stop();
}

/// The menu and ACL files have the structure LuCI's own apps use (as
/// applications/luci-app-example in openwrt/luci: menu.d entries with
/// title, order, action {type firstchild | view with path} and depends.acl;
/// acl.d groups with description and read/write {ubus: {object: [methods]},
/// uci: [configs]}); every view the menu names exists; every ubus method the
/// views call is one the rpcd plugin lists and the ACL grants, and the ACL
/// grants no method the plugin lacks.
#[test]
fn menu_and_acl_match_the_views_and_the_rpcd_plugin() {
    let app = format!("{ROOT}/packaging/openwrt/luci-app-meshpost");
    let read = |p: &str| -> Value {
        serde_json::from_str(&std::fs::read_to_string(format!("{app}/{p}")).unwrap())
            .unwrap_or_else(|e| panic!("{p}: {e}"))
    };
    let menu = read("root/usr/share/luci/menu.d/luci-app-meshpost.json");
    let acl = read("root/usr/share/rpcd/acl.d/luci-app-meshpost.json");
    let group = acl.as_object().unwrap();
    assert_eq!(group.keys().collect::<Vec<_>>(), ["luci-app-meshpost"], "one group, named as the package");
    let g = &acl["luci-app-meshpost"];
    assert!(g["description"].is_string());
    let granted = |level: &str| -> Vec<String> {
        g[level]["ubus"]["meshpost"].as_array().unwrap().iter().map(|m| m.as_str().unwrap().to_string()).collect()
    };
    for level in ["read", "write"] {
        assert_eq!(g[level]["uci"], json!(["meshpost"]), "{level}: uci");
    }
    let (r, w) = (granted("read"), granted("write"));

    let mut views = 0;
    for (path, e) in menu.as_object().unwrap() {
        assert!(path.starts_with("admin/services/meshpost"), "{path}");
        assert!(e["title"].is_string() && e["order"].is_u64(), "{path}: title and order");
        match e["action"]["type"].as_str() {
            Some("firstchild") => assert_eq!(e["depends"]["acl"], json!(["luci-app-meshpost"]), "{path}"),
            Some("view") => {
                let v = e["action"]["path"].as_str().unwrap();
                let file = format!("{app}/htdocs/luci-static/resources/view/{v}.js");
                assert!(Path::new(&file).exists(), "{path}: {file} missing");
                views += 1;
            }
            other => panic!("{path}: action type {other:?}"),
        }
    }
    assert_eq!(views, 4, "status, messages, channels, settings");

    let plugin: Value =
        serde_json::from_slice(&Command::new(BIN).args(["rpc", "list"]).output().unwrap().stdout).unwrap();
    let shared = std::fs::read_to_string(format!("{app}/htdocs/luci-static/resources/meshpost.js")).unwrap();
    let called: Vec<&str> = shared.split("call('").skip(1).filter_map(|s| s.split('\'').next()).collect();
    assert!(called.len() >= 15, "{called:?}");
    for m in &called {
        assert!(plugin.get(*m).is_some(), "views call {m}, which the plugin does not list");
        assert!(r.iter().chain(&w).any(|x| x == m), "views call {m}, which the ACL does not grant");
    }
    for m in r.iter().chain(&w) {
        assert!(plugin.get(m).is_some(), "the ACL grants {m}, which the plugin does not list");
    }
    // Sending, deleting, publishing, channels and reload need write.
    for m in ["send", "inbox_delete", "publish", "channel_create", "channel_join", "channel_leave", "reload"] {
        assert!(w.iter().any(|x| x == m) && !r.iter().any(|x| x == m), "{m} must be write-only");
    }
}
