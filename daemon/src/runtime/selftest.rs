//! `meshpost selftest`: the checks for what usually goes wrong on a
//! router, each with what to do about it. The daemon runs the checks it
//! can see from inside (interfaces, mDNS sockets, state directory, identity
//! file, clock, peer names, control socket); the CLI adds the ones that
//! need no daemon (is one running, is the UDP port free) when the socket
//! does not answer (client/selftest in cli.rs). It changes nothing.

use std::os::unix::fs::PermissionsExt;

use serde_json::{Value, json};

use super::Daemon;
use crate::net::names::Lookup;

/// Whether the clock has been set: unix seconds at or after 2025-01-01.
pub fn clock_is_set(unix_s: u64) -> bool {
    unix_s >= SANE_CLOCK
}

/// One check: what, whether it is fine, the detail, and the fix.
pub fn check(name: &str, ok: bool, detail: impl Into<String>, fix: &str) -> Value {
    json!({"check": name, "ok": ok, "detail": detail.into(), "fix": if ok { "" } else { fix }})
}

/// Unix time of 2025-01-01: a clock before it has not been set (a router
/// without a real-time clock boots at 1970 until NTP answers).
const SANE_CLOCK: u64 = 1_735_689_600;

/// Free bytes on the filesystem holding `p`.
fn free_bytes(p: &std::path::Path) -> Option<u64> {
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).ok()?;
    // SAFETY: statvfs is a plain C struct of integers; all-zero is valid.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: c is a valid path string and s a writable statvfs.
    if unsafe { libc::statvfs(c.as_ptr(), &mut s) } != 0 {
        return None;
    }
    Some(s.f_bavail as u64 * s.f_frsize as u64)
}

impl Daemon {
    pub(super) fn selftest(&mut self) -> Value {
        let mut out = Vec::new();
        // Interfaces and mDNS.
        let active = self.discovery.active();
        for i in &self.settings.interfaces {
            let up = active.contains(i);
            out.push(check(
                &format!("interface {i}"),
                up,
                if up { "up, mDNS joined".to_string() } else { "not up or no address: no discovery on it".to_string() },
                "check `ip link show` and the interface name in `list interface` (device names, e.g. bat0)",
            ));
        }
        if self.settings.interfaces.is_empty() {
            out.push(check("interfaces", true, "none configured: no mDNS discovery (static peers only)", ""));
        }
        // UDP port.
        out.push(check("udp port", true, format!("bound to UDP port {}", self.settings.port), ""));
        // State directory: writable, with room.
        let dir = self.state.dir().to_path_buf();
        let probe = dir.join(".selftest.tmp");
        let writable = std::fs::write(&probe, b"x").is_ok();
        let _ = std::fs::remove_file(&probe);
        out.push(check(
            "state dir writable",
            writable,
            format!("{}", dir.display()),
            "the state directory must be writable (read-only flash? full? wrong owner?)",
        ));
        let free = free_bytes(&dir);
        let room = free.is_some_and(|f| f >= 1 << 20);
        out.push(check(
            "state dir free space",
            room,
            free.map_or("unknown".to_string(), |f| format!("{} KiB free", f / 1024)),
            "less than 1 MiB free: messages cannot be stored; free space or move state_dir",
        ));
        // Identity file mode.
        let id = dir.join("identity.key");
        let mode = std::fs::metadata(&id).map(|m| m.permissions().mode() & 0o777).ok();
        out.push(check(
            "identity file",
            mode == Some(0o600),
            mode.map_or("missing".to_string(), |m| format!("mode {m:o}")),
            "chmod 600 the identity file; it holds the node's secret key",
        ));
        // Clock.
        let now = super::now_ms() / 1000;
        out.push(check(
            "clock",
            clock_is_set(now),
            format!("unix time {now}"),
            "the clock is not set (before 2025): messages look expired or from the future; wait for NTP or set the time",
        ));
        // Peers and their names.
        let addresses: Vec<String> = self
            .settings
            .peers
            .iter()
            .map(|p| p.address.clone())
            .chain(self.settings.federation.iter().map(|f| f.address.clone()))
            .collect();
        for a in addresses {
            let (ok, detail) = match self.names.lookup(&a) {
                Lookup::Ready(addr) => (true, format!("resolves to {addr}")),
                Lookup::Pending => (true, "being looked up".to_string()),
                Lookup::Failed(e) => (false, e),
            };
            out.push(check(&format!("peer {a}"), ok, detail, "check the name and DNS, or use an address"));
        }
        // Control socket access.
        let sock_mode =
            std::fs::metadata(&self.settings.socket).map(|m| m.permissions().mode() & 0o777).unwrap_or_default();
        let group_ok =
            self.settings.socket_group.as_deref().is_none_or(|g| crate::control::server::group_gid(g).is_some());
        out.push(check(
            "control socket",
            group_ok,
            format!("{} mode {sock_mode:o}", self.settings.socket.display()),
            "socket_group names a group that does not exist",
        ));
        out.push(check(
            "firewall",
            true,
            format!("open UDP {} on the mesh zone, and 5353 for mDNS (docs/openwrt.md)", self.settings.port),
            "",
        ));
        let all_ok = out.iter().all(|c| c["ok"] == true);
        json!({"ok": true, "healthy": all_ok, "checks": out})
    }
}
