//! Shared helpers for tests that run real `meshpost` processes on loopback.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod net;
pub mod peer;

pub const BIN: &str = env!("CARGO_BIN_EXE_meshpost");

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let n = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        let p = std::env::temp_dir().join(format!("meshpost-test-{tag}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    /// Removed, except after a failed test (or with
    /// `MESHPOST_KEEP_TEST_STATE` set): its logs and state are then what
    /// explains the failure.
    fn drop(&mut self) {
        if std::thread::panicking() || std::env::var_os("MESHPOST_KEEP_TEST_STATE").is_some() {
            eprintln!("test state kept for inspection: {}", self.0.display());
            return;
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A UDP port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Polls `f` every 50 ms until it returns true or `secs` pass.
pub fn wait_until(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    f()
}

/// True when the CI environment says root-only tests must run.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false")
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Returns false (after saying why) when a root-only test must skip; in CI a
/// missing privilege is a failure, never a silent skip.
pub fn need_root(test: &str) -> bool {
    if is_root() {
        return true;
    }
    assert!(!in_ci(), "{test} needs root and CI is set: it must run, not skip");
    eprintln!("SKIP {test}: needs root (run as root or in CI)");
    false
}

/// One daemon process with its own state directory, socket and port.
pub struct Node {
    pub name: String,
    pub dir: PathBuf,
    pub sock: PathBuf,
    pub port: u16,
    pub conf: PathBuf,
    pub child: Option<Child>,
    pub extra: String,
    pub peers: Vec<(u16, Option<String>)>,
    /// Network namespace to run the daemon in (`ip netns exec`).
    pub netns: Option<String>,
    /// Faster timers for tests (off for tests of the defaults).
    pub fast: bool,
}

impl Node {
    /// Prepares a node (identity created) without starting it.
    pub fn new(root: &Path, name: &str) -> Node {
        let dir = root.join(name);
        let n = Node {
            name: name.into(),
            sock: root.join(format!("{name}.sock")),
            conf: root.join(format!("{name}.conf")),
            dir,
            port: free_port(),
            child: None,
            extra: String::new(),
            peers: Vec::new(),
            netns: None,
            fast: true,
        };
        n.identity();
        n
    }

    /// `meshpost identity --state-dir` for this node, offline.
    pub fn identity(&self) -> Value {
        let out = Command::new(BIN).args(["--json", "identity", "--state-dir"]).arg(&self.dir).output().unwrap();
        assert!(out.status.success(), "identity: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// The node's Ed25519 public key, hex.
    pub fn key(&self) -> String {
        self.identity()["public_key"].as_str().unwrap().to_string()
    }

    pub fn node_id(&self) -> String {
        self.identity()["node_id"].as_str().unwrap().to_string()
    }

    pub fn peer(&mut self, other: &Node, pin: bool) {
        self.peers.push((other.port, pin.then(|| other.key())));
    }

    pub fn write_config(&self) {
        let timers = if self.fast {
            "\toption keepalive '2'\n\toption dead_after '6'\n\toption sync_interval '2'\n"
        } else {
            ""
        };
        let mut c = format!(
            "config meshpost 'main'\n\toption name '{}'\n\toption port '{}'\n\toption state_dir '{}'\n\toption socket '{}'\n\toption log_level 'debug'\n{timers}{}",
            self.name,
            self.port,
            self.dir.display(),
            self.sock.display(),
            self.extra
        );
        for (port, key) in &self.peers {
            c.push_str(&format!("\nconfig peer\n\toption address '127.0.0.1:{port}'\n"));
            if let Some(k) = key {
                c.push_str(&format!("\toption key '{k}'\n"));
            }
        }
        std::fs::write(&self.conf, c).unwrap();
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.with_extension("log")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Starts the daemon and waits until its socket answers.
    pub fn start(&mut self) {
        self.write_config();
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.log_path()).unwrap();
        let mut cmd = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, BIN]);
                c
            }
            None => Command::new(BIN),
        };
        let child = cmd
            .args(["daemon", "--foreground", "--config"])
            .arg(&self.conf)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let ok = wait_until(15, || self.try_request(&serde_json::json!({"cmd": "status"})).is_ok());
        assert!(ok, "{} did not start; log:\n{}", self.name, self.log());
    }

    /// SIGTERM and wait.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: kill with a valid pid of our own child.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let _ = c.wait();
        }
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn signal(&self, sig: i32) {
        if let Some(c) = &self.child {
            // SAFETY: kill with a valid pid of our own child.
            unsafe { libc::kill(c.id() as i32, sig) };
        }
    }

    pub fn try_request(&self, req: &Value) -> Result<Value, String> {
        let mut s = UnixStream::connect(&self.sock).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        writeln!(s, "{req}").map_err(|e| e.to_string())?;
        let mut line = String::new();
        BufReader::new(&s).read_line(&mut line).map_err(|e| e.to_string())?;
        serde_json::from_str(&line).map_err(|e| format!("{e}: {line:?}"))
    }

    pub fn request(&self, req: Value) -> Value {
        self.try_request(&req).unwrap()
    }

    /// Runs the CLI against this node.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(BIN).arg("--socket").arg(&self.sock).args(args).output().unwrap()
    }

    /// Every inbox message, following the pages of the answer.
    pub fn inbox(&self) -> Vec<Value> {
        let mut all = Vec::new();
        let mut offset = 0;
        loop {
            let v = self.request(serde_json::json!({"cmd": "inbox", "offset": offset}));
            all.extend(v["messages"].as_array().cloned().unwrap_or_default());
            match v["next"].as_u64() {
                Some(n) if n as usize > offset => offset = n as usize,
                _ => return all,
            }
        }
    }

    pub fn linked_to(&self, other_id: &str) -> bool {
        let v = self.request(serde_json::json!({"cmd": "peers"}));
        v["links"].as_array().is_some_and(|a| a.iter().any(|l| l["node"] == other_id))
    }

    pub fn metric(&self, name: &str) -> u64 {
        let v = self.request(serde_json::json!({"cmd": "metrics"}));
        let text = v["text"].as_str().unwrap_or("").to_string();
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("meshpost_{name} ")))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("metric {name} missing"))
    }

    pub fn store_count(&self) -> u64 {
        self.request(serde_json::json!({"cmd": "store"}))["envelopes"].as_u64().unwrap()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Two nodes configured as each other's static peers, started and linked.
pub fn linked_pair(root: &Path) -> (Node, Node) {
    let mut a = Node::new(root, "a");
    let mut b = Node::new(root, "b");
    a.peer(&b, true);
    b.peer(&a, true);
    a.start();
    b.start();
    let (aid, bid) = (a.node_id(), b.node_id());
    assert!(wait_until(15, || a.linked_to(&bid) && b.linked_to(&aid)), "no link\nA:\n{}\nB:\n{}", a.log(), b.log());
    (a, b)
}

/// The Python of `make pytools` (target/pyvenv, or `$MESHPOST_PYTHON`) if
/// it can `import` the given modules. Outside CI a missing one skips with a
/// message (None); in CI it is a failure, never a silent skip.
pub fn venv_python(modules: &str) -> Option<PathBuf> {
    let py = std::env::var_os("MESHPOST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target/pyvenv/bin/python")));
    let ok = Command::new(&py).args(["-c", &format!("import {modules}")]).output().is_ok_and(|o| o.status.success());
    if ok {
        return Some(py);
    }
    assert!(!in_ci(), "{modules} missing in {} and CI is set: `make pytools` installs it", py.display());
    eprintln!("SKIP: {modules} not installed at {} (run `make pytools`)", py.display());
    None
}

/// Subscribes to a node's messages on its control socket; returns the
/// stream after the `subscribed` answer (reads time out after `secs`).
pub fn subscribe_messages(sock: &Path, secs: u64) -> BufReader<UnixStream> {
    let mut s = UnixStream::connect(sock).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(secs))).unwrap();
    s.write_all(b"{\"cmd\":\"subscribe\"}\n").unwrap();
    let mut r = BufReader::new(s);
    let mut first = String::new();
    r.read_line(&mut first).unwrap();
    assert!(first.contains("\"subscribed\""), "{first}");
    r
}
