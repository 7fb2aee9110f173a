//! Logging: RFC 3164 lines to syslog over /dev/log (facility daemon), as
//! OpenWrt's logd and `logread` expect, or plain lines on stderr in the
//! foreground, under procd, or when /dev/log is missing.
//!
//! Hand-written (about the size of the `syslog` crate's glue) to keep the
//! binary small; it never blocks the daemon: a full syslog socket drops the
//! line and counts it.

use std::io::Write;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

/// Severity, ordered from most to least important.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Error = 3,
    Warn = 4,
    Notice = 5,
    Info = 6,
    Debug = 7,
}

impl Level {
    pub fn parse(s: &str) -> Option<Level> {
        match s.trim().to_ascii_lowercase().as_str() {
            "error" | "err" => Some(Level::Error),
            "warn" | "warning" => Some(Level::Warn),
            "notice" => Some(Level::Notice),
            "info" => Some(Level::Info),
            "debug" => Some(Level::Debug),
            _ => None,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warn => "warning",
            Level::Notice => "notice",
            Level::Info => "info",
            Level::Debug => "debug",
        }
    }
}

/// Syslog facility "daemon".
const FACILITY_DAEMON: u8 = 3;

static LEVEL: AtomicU8 = AtomicU8::new(Level::Info as u8);
// usize, not u64: 32-bit MIPS routers have no 64-bit atomics.
static DROPPED: AtomicUsize = AtomicUsize::new(0);
static SINK: Mutex<Option<UnixDatagram>> = Mutex::new(None);

pub fn set_level(l: Level) {
    LEVEL.store(l as u8, Ordering::Relaxed);
}

pub fn enabled(l: Level) -> bool {
    (l as u8) <= LEVEL.load(Ordering::Relaxed)
}

/// Log lines dropped because syslog was not accepting them.
pub fn dropped() -> u64 {
    DROPPED.load(Ordering::Relaxed) as u64
}

/// Sends logs to the syslog socket at `path`; returns false (and keeps
/// stderr) if it cannot be reached.
pub fn use_syslog(path: &Path) -> bool {
    let Ok(sock) = UnixDatagram::unbound() else {
        return false;
    };
    if sock.connect(path).is_err() || sock.set_nonblocking(true).is_err() {
        return false;
    }
    if let Ok(mut g) = SINK.lock() {
        *g = Some(sock);
        return true;
    }
    false
}

/// True when lines go to syslog rather than stderr.
pub fn is_syslog() -> bool {
    SINK.lock().map(|g| g.is_some()).unwrap_or(false)
}

/// Formats one RFC 3164 line: `<PRI>Mmm dd hh:mm:ss meshpost[pid]: msg`.
pub fn rfc3164(level: Level, unix_secs: u64, pid: u32, msg: &str) -> String {
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let (_, month, day) = civil_from_days((unix_secs / 86_400) as i64);
    let t = unix_secs % 86_400;
    let pri = FACILITY_DAEMON * 8 + level as u8;
    let month = MONTHS.get((month as usize).wrapping_sub(1)).copied().unwrap_or("Jan");
    format!(
        "<{pri}>{month} {day:>2} {:02}:{:02}:{:02} meshpost[{pid}]: {}",
        t / 3600,
        (t / 60) % 60,
        t % 60,
        msg.replace('\n', " ")
    )
}

/// Days since 1970-01-01 to (year, month 1-12, day 1-31), proleptic Gregorian.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

pub fn log(level: Level, msg: &str) {
    if !enabled(level) {
        return;
    }
    if let Ok(g) = SINK.lock()
        && let Some(sock) = g.as_ref()
    {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let line = rfc3164(level, now, std::process::id(), msg);
        if sock.send(line.as_bytes()).is_err() {
            DROPPED.fetch_add(1, Ordering::Relaxed);
        }
        return;
    }
    let _ = writeln!(std::io::stderr(), "meshpost: {}: {msg}", level.name());
}

#[macro_export]
macro_rules! error { ($($t:tt)*) => { $crate::log::log($crate::log::Level::Error, &format!($($t)*)) } }
#[macro_export]
macro_rules! warn { ($($t:tt)*) => { $crate::log::log($crate::log::Level::Warn, &format!($($t)*)) } }
#[macro_export]
macro_rules! notice { ($($t:tt)*) => { $crate::log::log($crate::log::Level::Notice, &format!($($t)*)) } }
#[macro_export]
macro_rules! info { ($($t:tt)*) => { $crate::log::log($crate::log::Level::Info, &format!($($t)*)) } }
#[macro_export]
macro_rules! debug { ($($t:tt)*) => {
    if $crate::log::enabled($crate::log::Level::Debug) { $crate::log::log($crate::log::Level::Debug, &format!($($t)*)) }
} }

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3164_format_and_priority() {
        // 2026-11-22 17:05:09 UTC
        let line = rfc3164(Level::Warn, 1_795_367_109, 42, "link down\nx");
        assert_eq!(line, "<28>Nov 22 17:05:09 meshpost[42]: link down x");
        assert!(rfc3164(Level::Error, 0, 1, "m").starts_with("<27>Jan  1 00:00:00 "));
        assert!(rfc3164(Level::Debug, 0, 1, "m").starts_with("<31>"));
    }

    #[test]
    fn lines_reach_a_real_syslog_socket_with_the_right_priority() {
        let dir = std::env::temp_dir().join(format!("meshpost-log-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("log.sock");
        let _ = std::fs::remove_file(&path);
        let rx = UnixDatagram::bind(&path).unwrap();
        rx.set_read_timeout(Some(std::time::Duration::from_secs(2))).unwrap();
        assert!(use_syslog(&path));
        assert!(is_syslog());
        set_level(Level::Info);
        crate::warn!("peer refused: {}", 42);
        crate::debug!("not shown at info");
        crate::info!("second");
        let mut buf = [0u8; 512];
        let n = rx.recv(&mut buf).unwrap();
        let line = std::str::from_utf8(&buf[..n]).unwrap();
        let pid = std::process::id();
        assert!(line.starts_with("<28>"), "{line}");
        assert!(line.ends_with(&format!(" meshpost[{pid}]: peer refused: 42")), "{line}");
        let n = rx.recv(&mut buf).unwrap();
        assert!(std::str::from_utf8(&buf[..n]).unwrap().starts_with("<30>"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(20_779), (2026, 11, 22));
    }
}
