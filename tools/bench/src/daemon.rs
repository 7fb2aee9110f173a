//! One real daemon for a benchmark: its state directory, configuration
//! file and socket, the process, and what /proc says about it.
//!
//! It does not measure anything over time (main.rs does) and never runs
//! outside the directory it is given.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// What went wrong driving a daemon.
#[derive(Debug)]
pub enum BenchError {
    Io(String, std::io::Error),
    Daemon(String),
}

impl std::fmt::Display for BenchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BenchError::Io(what, e) => write!(f, "{what}: {e}"),
            BenchError::Daemon(s) => f.write_str(s),
        }
    }
}

pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> BenchError {
    let what = what.into();
    move |e| BenchError::Io(what, e)
}

pub struct Daemon {
    pub name: String,
    pub dir: PathBuf,
    pub sock: PathBuf,
    pub port: u16,
    conf: PathBuf,
    bin: PathBuf,
    child: Option<Child>,
    /// UCI option lines added to the main section.
    pub options: Vec<(String, String)>,
    /// Ports of static peers.
    pub peers: Vec<u16>,
    pub node_id: String,
}

/// A UDP port nobody uses now (bound and released).
fn free_port() -> Result<u16, BenchError> {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").map_err(io("bind a UDP port"))?;
    Ok(s.local_addr().map_err(io("local address"))?.port())
}

impl Daemon {
    /// Creates the identity of daemon `name` under `root`, not started.
    pub fn new(bin: &Path, root: &Path, name: &str) -> Result<Daemon, BenchError> {
        let dir = root.join(name);
        let out = Command::new(bin)
            .args(["--json", "identity", "--state-dir"])
            .arg(&dir)
            .output()
            .map_err(io(format!("run {}", bin.display())))?;
        let v: Value =
            serde_json::from_slice(&out.stdout).map_err(|e| BenchError::Daemon(format!("identity of {name}: {e}")))?;
        let node_id = v["node_id"].as_str().unwrap_or_default().to_string();
        Ok(Daemon {
            name: name.into(),
            sock: root.join(format!("{name}.sock")),
            conf: root.join(format!("{name}.conf")),
            dir,
            port: free_port()?,
            bin: bin.into(),
            child: None,
            options: Vec::new(),
            peers: Vec::new(),
            node_id,
        })
    }

    fn write_config(&self) -> Result<(), BenchError> {
        let mut c = format!(
            "config meshpost 'main'\n\toption name '{}'\n\toption port '{}'\n\toption state_dir '{}'\n\toption socket '{}'\n",
            self.name,
            self.port,
            self.dir.display(),
            self.sock.display()
        );
        for (k, v) in &self.options {
            c.push_str(&format!("\toption {k} '{v}'\n"));
        }
        for port in &self.peers {
            c.push_str(&format!("\nconfig peer\n\toption address '127.0.0.1:{port}'\n"));
        }
        std::fs::write(&self.conf, c).map_err(io(format!("write {}", self.conf.display())))
    }

    /// Starts the daemon and waits (up to 15 s) until its socket answers.
    pub fn start(&mut self) -> Result<(), BenchError> {
        self.write_config()?;
        let log = std::fs::File::create(self.dir.with_extension("log")).map_err(io("create the log"))?;
        let child = Command::new(&self.bin)
            .args(["daemon", "--foreground", "--config"])
            .arg(&self.conf)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(io("start the daemon"))?;
        self.child = Some(child);
        let t0 = Instant::now();
        while self.request(&serde_json::json!({"cmd": "status"})).is_err() {
            if t0.elapsed() > Duration::from_secs(15) {
                return Err(BenchError::Daemon(format!("{} did not start", self.name)));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// SIGTERM (through `kill`) and wait.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").arg(c.id().to_string()).status();
            let _ = c.wait();
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// One request, one answer, on a connection of its own.
    pub fn request(&self, req: &Value) -> Result<Value, BenchError> {
        let mut s = UnixStream::connect(&self.sock).map_err(io("connect"))?;
        s.set_read_timeout(Some(Duration::from_secs(30))).map_err(io("timeout"))?;
        writeln!(s, "{req}").map_err(io("write a request"))?;
        let mut line = String::new();
        BufReader::new(&s).read_line(&mut line).map_err(io("read an answer"))?;
        serde_json::from_str(&line).map_err(|e| BenchError::Daemon(format!("answer {line:?}: {e}")))
    }

    pub fn linked_to(&self, node: &str) -> bool {
        self.request(&serde_json::json!({"cmd": "peers"}))
            .is_ok_and(|v| v["links"].as_array().is_some_and(|a| a.iter().any(|l| l["node"] == node)))
    }

    /// CPU time (user + system) so far, in ms, from /proc/PID/stat (clock
    /// ticks of 10 ms: USER_HZ is 100 on Linux).
    pub fn cpu_ms(&self) -> u64 {
        let Some(pid) = self.pid() else { return 0 };
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // Fields after the command name in parentheses; utime and stime
        // are the 14th and 15th of the whole line.
        // The text after the name starts at field 3 (the state).
        let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let f: Vec<&str> = rest.split_whitespace().collect();
        let field = |n: usize| f.get(n - 3).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0);
        (field(14) + field(15)) * 10
    }

    /// Resident set size in KiB.
    pub fn rss_kib(&self) -> u64 {
        let Some(pid) = self.pid() else { return 0 };
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    }

    /// Files and bytes in the state directory.
    pub fn state_usage(&self) -> (u64, u64) {
        fn walk(p: &Path, acc: &mut (u64, u64)) {
            let Ok(rd) = std::fs::read_dir(p) else { return };
            for e in rd.flatten() {
                match e.metadata() {
                    Ok(m) if m.is_dir() => walk(&e.path(), acc),
                    Ok(m) => {
                        acc.0 += 1;
                        acc.1 += m.len();
                    }
                    Err(_) => {}
                }
            }
        }
        let mut acc = (0, 0);
        walk(&self.dir, &mut acc);
        acc
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
