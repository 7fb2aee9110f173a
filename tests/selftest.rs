//! `meshpost selftest` reports each fault when it is injected in a
//! namespace: an interface down, a read-only state directory, and (with
//! the daemon stopped) the UDP port held by another program. The clock
//! check (a router at 1970 before NTP) is not injected: the wall clock of
//! a namespace cannot be set apart from the host's; its threshold is
//! tested in the CLI's unit of the same function.
//!
//! Root only: outside CI it skips with a message; in CI it must run.

mod common;

use std::process::Command;
use std::time::Duration;

use common::net::*;
use common::*;
use serde_json::Value;

fn selftest(ns: &str, n: &Node) -> (i32, Value) {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, BIN, "--json", "--socket"])
        .arg(&n.sock)
        .arg("--config")
        .arg(&n.conf)
        .arg("selftest")
        .output()
        .unwrap();
    let v = serde_json::from_slice(&out.stdout).unwrap_or_default();
    (out.status.code().unwrap_or(-1), v)
}

fn failed(v: &Value) -> Vec<String> {
    v["checks"]
        .as_array()
        .map(|a| a.iter().filter(|c| c["ok"] == false).map(|c| c["check"].as_str().unwrap_or("").to_string()).collect())
        .unwrap_or_default()
}

#[test]
fn selftest_names_each_injected_fault() {
    if !need_root("selftest_names_each_injected_fault") {
        return;
    }
    let _g = lock();
    let t = TempDir::new("selftest");
    let mut net = Net::new("t");
    let (a, b) = (net.ns("a"), net.ns("b"));
    net.veth(&a, "mesh0", &b, "other", None);
    // The state directory on its own tmpfs, so it can be made read-only.
    let mut n = mesh_node(&t, &a, "a", &["mesh0"]);
    std::fs::create_dir_all(&n.dir).unwrap();
    assert!(
        Command::new("mount").args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"]).arg(&n.dir).status().unwrap().success()
    );
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _u = Unmount(n.dir.clone());
    n.start();
    assert!(wait_until(20, || selftest(&a, &n).0 == 0), "healthy at first: {}", selftest(&a, &n).1);

    ip(&["-n", &a, "link", "set", "mesh0", "down"]);
    assert!(wait_until(20, || failed(&selftest(&a, &n).1) == ["interface mesh0"]), "{}", selftest(&a, &n).1);
    ip(&["-n", &a, "link", "set", "mesh0", "up"]);

    assert!(Command::new("mount").args(["-o", "remount,ro"]).arg(&n.dir).status().unwrap().success());
    let (code, v) = selftest(&a, &n);
    assert_eq!(code, 1);
    assert!(failed(&v).contains(&"state dir writable".to_string()), "{v}");
    assert!(Command::new("mount").args(["-o", "remount,rw"]).arg(&n.dir).status().unwrap().success());

    // Daemon stopped and its port held by someone else.
    n.stop();
    let (tx, rx) = std::sync::mpsc::channel();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let holder = spawn_in_ns(&a, move || {
        let s = std::net::UdpSocket::bind("[::]:4849").unwrap();
        tx.send(()).unwrap();
        let _ = done_rx.recv_timeout(Duration::from_secs(30));
        drop(s);
    });
    rx.recv().unwrap();
    let (code, v) = selftest(&a, &n);
    let _ = done_tx.send(());
    holder.join().unwrap();
    assert_eq!(code, 1);
    let f = failed(&v);
    assert!(f.contains(&"daemon".to_string()) && f.contains(&"udp port".to_string()), "{v}");
    let _ = &net;
}
