//! Network namespaces for tests: creating them, joining them with veth
//! pairs, and mesh nodes that run inside them. Root only; the callers
//! check `need_root` first. It does not start daemons by itself.

use std::net::Ipv6Addr;
use std::process::Command;
use std::sync::Mutex;

use super::{Node, TempDir, wait_until};

/// Tests that start several daemons in namespaces run one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

pub fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("ip(8) from iproute2 is needed");
    assert!(out.status.success(), "ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
}

/// Namespaces made by one test; all are deleted on drop.
pub struct Net {
    pub prefix: String,
    pub spaces: Vec<String>,
}

impl Net {
    pub fn new(tag: &str) -> Net {
        let prefix = format!("mp{}{tag}", std::process::id() % 100_000);
        Net { prefix, spaces: Vec::new() }
    }

    pub fn ns(&mut self, name: &str) -> String {
        let ns = format!("{}-{name}", self.prefix);
        let _ = Command::new("ip").args(["netns", "del", &ns]).output();
        ip(&["netns", "add", &ns]);
        ip(&["-n", &ns, "link", "set", "lo", "up"]);
        self.spaces.push(ns.clone());
        ns
    }

    /// A veth pair between two namespaces; each end is named after the
    /// other side. `v4` adds IPv4 link-local addresses too.
    pub fn veth(&self, a: &str, a_if: &str, b: &str, b_if: &str, v4: Option<(u8, u8)>) {
        ip(&["link", "add", a_if, "netns", a, "type", "veth", "peer", "name", b_if, "netns", b]);
        for (ns, ifname, host) in [(a, a_if, 1), (b, b_if, 2)] {
            if let Some((x, _)) = v4 {
                ip(&["-n", ns, "addr", "add", &format!("169.254.{x}.{host}/24"), "dev", ifname]);
            }
            ip(&["-n", ns, "link", "set", ifname, "up"]);
        }
    }

    /// `n` namespaces `n0..` each with a `mesh0` plugged into port `pI` of
    /// one bridge (snooping off) in namespace `switch`. With `v4_only`,
    /// IPv6 is off on `mesh0` and node I gets 169.254.10.(I+1)/24.
    /// Returns the switch namespace and the node namespaces.
    pub fn bridge(&mut self, n: usize, v4_only: bool) -> (String, Vec<String>) {
        let sw = self.ns("switch");
        ip(&["-n", &sw, "link", "add", "br0", "type", "bridge", "mcast_snooping", "0"]);
        ip(&["-n", &sw, "link", "set", "br0", "up"]);
        let mut spaces = Vec::new();
        for i in 0..n {
            let ns = self.ns(&format!("n{i}"));
            let port = format!("p{i}");
            ip(&["link", "add", "mesh0", "netns", &ns, "type", "veth", "peer", "name", &port, "netns", &sw]);
            if v4_only {
                let ok = Command::new("ip")
                    .args(["netns", "exec", &ns, "sysctl", "-qw", "net.ipv6.conf.mesh0.disable_ipv6=1"])
                    .output()
                    .is_ok_and(|o| o.status.success());
                assert!(ok, "could not turn IPv6 off in {ns}");
                ip(&["-n", &ns, "addr", "add", &format!("169.254.10.{}/24", i + 1), "dev", "mesh0"]);
            }
            ip(&["-n", &ns, "link", "set", "mesh0", "up"]);
            ip(&["-n", &sw, "link", "set", &port, "master", "br0"]);
            ip(&["-n", &sw, "link", "set", &port, "up"]);
            spaces.push(ns);
        }
        (sw, spaces)
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for ns in &self.spaces {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

pub const FAST: &str = "\toption announce_interval '3'\n\toption mdns_interval '4'\n\toption keepalive '1'\n\toption dead_after '4'\n\toption sync_interval '2'\n";

/// A mesh node in namespace `ns` discovering on `ifaces`.
pub fn mesh_node(t: &TempDir, ns: &str, name: &str, ifaces: &[&str]) -> Node {
    let mut n = Node::new(&t.0, name);
    n.netns = Some(ns.to_string());
    n.fast = false;
    n.port = 4849;
    n.extra = FAST.to_string();
    for i in ifaces {
        n.extra.push_str(&format!("\tlist interface '{i}'\n"));
    }
    n
}

pub fn lock() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs `f` on a thread that has entered network namespace `ns`.
pub fn in_ns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    spawn_in_ns(ns, f).join().unwrap()
}

/// Starts `f` on a thread that has entered network namespace `ns`.
pub fn spawn_in_ns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> std::thread::JoinHandle<T> {
    let path = format!("/var/run/netns/{ns}");
    std::thread::spawn(move || {
        use std::os::fd::AsRawFd;
        let fd = std::fs::File::open(&path).unwrap();
        // SAFETY: setns on a valid namespace fd, on this thread only.
        assert_eq!(unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) }, 0);
        f()
    })
}

/// The index of interface `name` inside namespace `ns`.
pub fn if_index_in(ns: &str, name: &str) -> u32 {
    let name = std::ffi::CString::new(name).unwrap();
    in_ns(ns, move || {
        // SAFETY: if_nametoindex with a valid NUL-terminated string.
        unsafe { libc::if_nametoindex(name.as_ptr()) }
    })
}

/// The link-local address of `dev` in `ns`, once duplicate address
/// detection has finished.
pub fn link_local(ns: &str, dev: &str) -> Ipv6Addr {
    let mut found = None;
    assert!(wait_until(10, || {
        let out =
            Command::new("ip").args(["-n", ns, "-6", "addr", "show", "dev", dev, "scope", "link"]).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        found = text
            .lines()
            .find(|l| l.contains("inet6") && !l.contains("tentative"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|a| a.split('/').next())
            .and_then(|a| a.parse().ok());
        found.is_some()
    }));
    found.unwrap()
}
