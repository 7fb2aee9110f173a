//! Typed configuration: UCI sections turned into validated settings.
//!
//! Every option has a built-in default (docs/configuration.md), so the
//! daemon runs with no file at all. Errors name the file, line, option and
//! reason. Unknown options are warnings, not errors, so a newer config file
//! does not stop an older daemon. Host names are resolved elsewhere.

pub mod check;
pub mod uci;

use std::fmt;
use std::path::{Path, PathBuf};

use meshpost_proto::crypto::from_hex;
use meshpost_proto::node::Config as NodeConfig;

use crate::log::Level;

pub const DEFAULT_CONFIG: &str = "/etc/config/meshpost";
pub const DEFAULT_PORT: u16 = 4849;
pub const DEFAULT_STATE_DIR: &str = "/tmp/meshpost";
pub const DEFAULT_SOCKET: &str = "/var/run/meshpost.sock";

/// A configured static peer, before name resolution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerEntry {
    /// `host:port`, `[v6]:port`, or `name:port`.
    pub address: String,
    pub key: Option<[u8; 32]>,
    pub line: usize,
}

/// A federation peer from a `config federation` section.
#[derive(Debug, Clone)]
pub struct FederationEntry {
    pub address: String,
    pub key: [u8; 32],
    /// The policy; its channel ids are filled in from `channels` at start.
    pub policy: meshpost_proto::federation::Policy,
    /// Channel names or 32-hex channel ids that may cross.
    pub channels: Vec<String>,
    pub line: usize,
}

/// A channel from a `config channel` section.
#[derive(Clone)]
pub struct ChannelEntry {
    pub name: String,
    pub key: meshpost_proto::channel::ChannelKey,
    pub line: usize,
}

impl std::fmt::Debug for ChannelEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ChannelEntry({} at line {})", self.name, self.line)
    }
}

/// True for a usable channel name: 1-32 of A-Z a-z 0-9 _ - .
pub fn valid_channel_name(n: &str) -> bool {
    (1..=32).contains(&n.len()) && n.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.'))
}

/// Everything the daemon needs, validated.
#[derive(Debug, Clone)]
pub struct Settings {
    pub file: Option<PathBuf>,
    pub port: u16,
    pub state_dir: PathBuf,
    pub socket: PathBuf,
    pub socket_group: Option<String>,
    pub log_level: Level,
    /// The syslog socket (logd's /dev/log on OpenWrt).
    pub log_socket: PathBuf,
    pub inbox_max: usize,
    /// Most message body bytes kept in the inbox.
    pub inbox_max_bytes: usize,
    /// Largest file `meshpost send --file` sends (0: sending files is off).
    pub file_max: usize,
    pub max_clients: usize,
    /// Seconds a control client has to send a complete request line.
    pub control_timeout: u64,
    pub node: NodeConfig,
    pub peers: Vec<PeerEntry>,
    /// Interfaces to discover neighbours on with mDNS.
    pub interfaces: Vec<String>,
    pub channels: Vec<ChannelEntry>,
    pub federation: Vec<FederationEntry>,
    /// Messages kept per channel, and for how long (seconds).
    pub channel_history: usize,
    pub channel_history_age: u64,
    /// Longest gap between mDNS re-announcements, ms.
    pub mdns_interval_ms: u64,
    pub warnings: Vec<String>,
    /// The file had no sections at all (empty, or only comments).
    pub empty: bool,
}

/// A configuration error: where and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    pub line: usize,
    pub option: String,
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.option.is_empty() {
            write!(f, "{}:{}: {}", self.file, self.line, self.reason)
        } else {
            write!(f, "{}:{}: option '{}': {}", self.file, self.line, self.option, self.reason)
        }
    }
}

/// Values given on the command line; they win over the file.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub state_dir: Option<PathBuf>,
    pub socket: Option<PathBuf>,
    pub port: Option<u16>,
    pub log_level: Option<Level>,
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().chars().take(32).collect())
        .unwrap_or_default()
}

impl Settings {
    /// Built-in defaults.
    pub fn defaults() -> Settings {
        Settings {
            file: None,
            port: DEFAULT_PORT,
            state_dir: PathBuf::from(DEFAULT_STATE_DIR),
            socket: PathBuf::from(DEFAULT_SOCKET),
            socket_group: None,
            log_level: Level::Info,
            log_socket: PathBuf::from("/dev/log"),
            inbox_max: 1000,
            inbox_max_bytes: 16 << 20,
            file_max: 1 << 20,
            max_clients: 16,
            control_timeout: 10,
            node: NodeConfig { name: hostname(), ..NodeConfig::default() },
            peers: Vec::new(),
            interfaces: Vec::new(),
            channels: Vec::new(),
            federation: Vec::new(),
            channel_history: 100,
            channel_history_age: 24 * 3600,
            mdns_interval_ms: 60_000,
            warnings: Vec::new(),
            empty: false,
        }
    }

    /// Loads `path` (or /etc/config/meshpost if it exists, or nothing) and
    /// applies the overrides.
    pub fn load(path: Option<&Path>, ov: &Overrides) -> Result<Settings, ConfigError> {
        let mut s = Settings::defaults();
        let chosen = match path {
            Some(p) => Some(p.to_path_buf()),
            None if Path::new(DEFAULT_CONFIG).exists() => Some(PathBuf::from(DEFAULT_CONFIG)),
            None => None,
        };
        if let Some(p) = &chosen {
            let fname = p.display().to_string();
            let text = read_bounded(p).map_err(|reason| ConfigError {
                file: fname.clone(),
                line: 0,
                option: String::new(),
                reason,
            })?;
            s.apply_text(&fname, &text)?;
            s.file = chosen;
        }
        if let Some(v) = &ov.state_dir {
            s.state_dir = v.clone();
        }
        if let Some(v) = &ov.socket {
            s.socket = v.clone();
        }
        if let Some(v) = ov.port {
            s.port = v;
        }
        if let Some(v) = ov.log_level {
            s.log_level = v;
        }
        Ok(s)
    }

    /// Applies UCI text on top of the current values.
    pub fn apply_text(&mut self, fname: &str, text: &[u8]) -> Result<(), ConfigError> {
        let sections = uci::parse(text).map_err(|e| ConfigError {
            file: fname.into(),
            line: e.line,
            option: String::new(),
            reason: e.reason(),
        })?;
        self.apply_sections(fname, &sections)
    }

    /// Applies parsed UCI sections on top of the current values (the
    /// file's, or those LuCI is about to save: config/check.rs).
    pub fn apply_sections(&mut self, fname: &str, sections: &[uci::Section]) -> Result<(), ConfigError> {
        if sections.is_empty() {
            self.empty = true;
            self.warnings.push(format!("{fname} holds no config sections: running on built-in defaults"));
        }
        for sec in sections {
            // Options that take one value may not be written as `list`
            // (libuci would make them lists, and we would read one value).
            let lists: &[&str] = match sec.kind.as_str() {
                "meshpost" => &["interface"],
                "federation" => &["channel"],
                _ => &[],
            };
            if let Some(o) = sec.options.iter().find(|o| o.is_list && !lists.contains(&o.name.as_str())) {
                return Err(ConfigError {
                    file: fname.into(),
                    line: o.line,
                    option: o.name.clone(),
                    reason: format!("takes one value: write 'option {}', not 'list'", o.name),
                });
            }
            match sec.kind.as_str() {
                // As the init script reads `enabled` from section main only,
                // so does the daemon read its settings (one place for both).
                "meshpost" if sec.name.as_deref() == Some("main") => self.apply_main(fname, sec)?,
                "meshpost" => self.warnings.push(format!(
                    "{fname}:{}: only config meshpost 'main' is read; this meshpost section{} is ignored",
                    sec.line,
                    sec.name.as_deref().map(|n| format!(" '{n}'")).unwrap_or_default()
                )),
                "peer" => self.apply_peer(fname, sec)?,
                "channel" => self.apply_channel(fname, sec)?,
                "federation" => self.apply_federation(fname, sec)?,
                other => self.warnings.push(format!("{fname}:{}: unknown section type '{other}' ignored", sec.line)),
            }
        }
        Ok(())
    }

    fn apply_main(&mut self, fname: &str, sec: &uci::Section) -> Result<(), ConfigError> {
        for o in &sec.options {
            let err = |reason: String| ConfigError { file: fname.into(), line: o.line, option: o.name.clone(), reason };
            let v = o.value.as_str();
            let n = &mut self.node;
            match o.name.as_str() {
                "enabled" => {
                    parse_bool(v).map_err(err)?;
                }
                "name" => {
                    if v.len() > 32 || v.chars().any(char::is_control) {
                        return Err(err("must be at most 32 bytes without control characters".into()));
                    }
                    n.name = v.into();
                }
                "domain" => {
                    if v.len() > 32 || !v.bytes().all(|c| matches!(c, b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.')) {
                        return Err(err("must be 0-32 characters of a-z 0-9 - .".into()));
                    }
                    n.domain = v.into();
                }
                "port" => self.port = parse_num(v, 1, 65535).map_err(err)? as u16,
                "state_dir" => self.state_dir = parse_path(v).map_err(err)?,
                "socket" => self.socket = parse_path(v).map_err(err)?,
                "socket_group" => self.socket_group = (!v.is_empty()).then(|| v.to_string()),
                "log_level" => {
                    self.log_level = Level::parse(v)
                        .ok_or_else(|| err("must be one of error, warning, notice, info, debug".into()))?
                }
                "log_socket" => self.log_socket = parse_path(v).map_err(err)?,
                "accept_unknown" => n.accept_unknown = parse_bool(v).map_err(err)?,
                "store_max_bytes" => n.store.max_bytes = parse_num(v, 65_536, 1 << 30).map_err(err)? as usize,
                "store_max_count" => n.store.max_count = parse_num(v, 1, 1_000_000).map_err(err)? as usize,
                "store_memory" => n.store.max_hot_bytes = parse_num(v, 0, 1 << 30).map_err(err)? as usize,
                "store_origin_quota" => {
                    n.store.max_bytes_per_origin = parse_num(v, 65_536, 1 << 30).map_err(err)? as usize
                }
                "store_recipient_quota" => {
                    n.store.max_bytes_per_recipient = parse_num(v, 65_536, 1 << 30).map_err(err)? as usize
                }
                "inbox_max" => self.inbox_max = parse_num(v, 1, 100_000).map_err(err)? as usize,
                "inbox_max_bytes" => self.inbox_max_bytes = parse_num(v, 65_536, 1 << 30).map_err(err)? as usize,
                "file_max" => {
                    self.file_max =
                        parse_num(v, 0, meshpost_proto::filepart::MAX_FILE_LEN as u64).map_err(err)? as usize
                }
                "max_clients" => self.max_clients = parse_num(v, 1, 1024).map_err(err)? as usize,
                "control_timeout" => self.control_timeout = parse_num(v, 1, 3600).map_err(err)?,
                "default_ttl" => {
                    n.default_ttl = parse_num(v, 60, meshpost_proto::envelope::MAX_TTL as u64).map_err(err)? as u32
                }
                "default_hops" => {
                    n.default_hops = parse_num(v, 1, meshpost_proto::envelope::MAX_HOPS as u64).map_err(err)? as u8
                }
                "keepalive" => n.keepalive_ms = parse_num(v, 1, 3600).map_err(err)? * 1000,
                "dead_after" => n.dead_after_ms = parse_num(v, 3, 86_400).map_err(err)? * 1000,
                "rekey_after" => n.rekey_after_ms = parse_num(v, 10, 86_400).map_err(err)? * 1000,
                "sync_interval" => n.sync_interval_ms = parse_num(v, 1, 3600).map_err(err)? * 1000,
                "max_links" => n.max_links = parse_num(v, 1, 4096).map_err(err)? as usize,
                "link_target" => n.link_target = parse_num(v, 0, 1024).map_err(err)? as usize,
                "origin_rate" => n.origin_rate = parse_num(v, 1, 100_000).map_err(err)? as u32,
                "link_rate" => n.link_rate = parse_num(v, 1, 100_000).map_err(err)? as u32,
                "handshake_rate" => n.handshake_rate = parse_num(v, 1, 10_000).map_err(err)? as u32,
                "interface" if o.is_list => self.add_interface(v).map_err(err)?,
                // `option interface 'bat0 mesh0'` is the older OpenWrt way
                // to write a list (as in /etc/config/network's ifname).
                "interface" => {
                    for name in v.split_whitespace() {
                        self.add_interface(name).map_err(err)?;
                    }
                }
                "channel_history" => self.channel_history = parse_num(v, 1, 10_000).map_err(err)? as usize,
                "channel_history_age" => self.channel_history_age = parse_num(v, 60, 30 * 86_400).map_err(err)?,
                "channel_ttl" => {
                    n.channel_ttl = parse_num(v, 60, meshpost_proto::envelope::MAX_TTL as u64).map_err(err)? as u32
                }
                "channel_rate" => n.channel_rate = parse_num(v, 1, 10_000).map_err(err)? as u32,
                "mdns_interval" => self.mdns_interval_ms = parse_num(v, 2, 3600).map_err(err)? * 1000,
                "announce_interval" => n.announce_interval_ms = parse_num(v, 2, 86_400).map_err(err)? * 1000,
                // At most 6 h: a card is signed again at 12 h of its 24 h,
                // when the beacon after it is made.
                "announce_max_interval" => n.announce_max_interval_ms = parse_num(v, 2, 6 * 3600).map_err(err)? * 1000,
                "announce_hops" => {
                    n.announce_hops = parse_num(v, 1, meshpost_proto::envelope::MAX_HOPS as u64).map_err(err)? as u8
                }
                other => self.warnings.push(format!("{fname}:{}: unknown option '{other}' ignored", o.line)),
            }
        }
        // A discovered peer is forgotten after three silent announce periods,
        // and a node leaves the routing graph after three of its longest
        // beacon intervals (the longest is never below announce_interval).
        self.node.discovery_timeout_ms = 3 * self.mdns_interval_ms;
        self.node.announce_max_interval_ms = self.node.announce_max_interval_ms.max(self.node.announce_interval_ms);
        self.node.route_timeout_ms = 3 * self.node.announce_max_interval_ms;
        if self.node.dead_after_ms <= self.node.keepalive_ms {
            return Err(ConfigError {
                file: fname.into(),
                line: sec.get("dead_after").map_or(sec.line, |o| o.line),
                option: "dead_after".into(),
                reason: "must be longer than keepalive".into(),
            });
        }
        Ok(())
    }

    fn add_interface(&mut self, v: &str) -> Result<(), String> {
        if v.is_empty() || v.len() > 15 || v.contains(['/', ' ', '\0']) || v.chars().any(char::is_control) {
            return Err("must be a network interface name (at most 15 characters)".into());
        }
        if !self.interfaces.iter().any(|i| i == v) {
            self.interfaces.push(v.to_string());
        }
        Ok(())
    }

    fn apply_peer(&mut self, fname: &str, sec: &uci::Section) -> Result<(), ConfigError> {
        let missing = ConfigError {
            file: fname.into(),
            line: sec.line,
            option: "address".into(),
            reason: "every 'config peer' needs an address (host:port)".into(),
        };
        let addr = sec.get("address").ok_or(missing)?;
        if split_host_port(&addr.value).is_none() {
            return Err(ConfigError {
                file: fname.into(),
                line: addr.line,
                option: "address".into(),
                reason: format!("'{}' is not host:port or [ipv6]:port", addr.value),
            });
        }
        let key = match sec.get("key") {
            None => None,
            Some(k) => Some(parse_key(&k.value).ok_or_else(|| ConfigError {
                file: fname.into(),
                line: k.line,
                option: "key".into(),
                reason: "must be the peer's 64-hex-digit public key, not all zeros (see 'meshpost identity')".into(),
            })?),
        };
        for o in &sec.options {
            if !matches!(o.name.as_str(), "address" | "key") {
                self.warnings.push(format!("{fname}:{}: unknown peer option '{}' ignored", o.line, o.name));
            }
        }
        self.peers.push(PeerEntry { address: addr.value.clone(), key, line: addr.line });
        Ok(())
    }
}

impl Settings {
    fn apply_federation(&mut self, fname: &str, sec: &uci::Section) -> Result<(), ConfigError> {
        let err = |line: usize, option: &str, reason: String| ConfigError {
            file: fname.into(),
            line,
            option: option.into(),
            reason,
        };
        let domain = sec
            .get("domain")
            .ok_or_else(|| err(sec.line, "domain", "every 'config federation' needs the remote domain".into()))?;
        let d = domain.value.as_str();
        if d.is_empty() || d.len() > 32 || !d.bytes().all(|c| matches!(c, b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.')) {
            return Err(err(domain.line, "domain", "must be 1-32 characters of a-z 0-9 - .".into()));
        }
        if d == self.node.domain {
            return Err(err(domain.line, "domain", "is this node's own domain; federation links other domains".into()));
        }
        // The card lists the domains a gateway serves; one beyond the
        // limit would be left out of it, and nothing would go there.
        let max = meshpost_proto::card::MAX_GATEWAY_DOMAINS;
        let known = |f: &FederationEntry| f.policy.domain == d;
        if !self.federation.iter().any(known) {
            let mut domains: Vec<&str> = self.federation.iter().map(|f| f.policy.domain.as_str()).collect();
            domains.sort_unstable();
            domains.dedup();
            if domains.len() >= max {
                return Err(err(domain.line, "domain", format!("a gateway serves at most {max} other domains")));
            }
        }
        let address = sec
            .get("address")
            .ok_or_else(|| err(sec.line, "address", "every 'config federation' needs an address".into()))?;
        if split_host_port(&address.value).is_none() {
            return Err(err(address.line, "address", format!("'{}' is not host:port or [ipv6]:port", address.value)));
        }
        let key = sec.get("key").ok_or_else(|| {
            err(sec.line, "key", "federation peers must be pinned: the remote gateway's public key".into())
        })?;
        let key_bytes = parse_key(&key.value).ok_or_else(|| {
            err(key.line, "key", "must be the gateway's 64-hex-digit public key, not all zeros".into())
        })?;
        let mut policy = meshpost_proto::federation::Policy::new(d);
        let mut channels = Vec::new();
        for o in &sec.options {
            let bad = |reason: String| err(o.line, &o.name, reason);
            let v = o.value.as_str();
            match o.name.as_str() {
                "domain" | "address" | "key" => {}
                "in_rate" => policy.in_rate = parse_num(v, 1, 100_000).map_err(bad)? as u32,
                "in_burst" => policy.in_burst = parse_num(v, 1, 1_000_000).map_err(bad)? as u32,
                "in_bytes" => policy.in_bytes = parse_num(v, 1024, 1 << 30).map_err(bad)? as u32,
                "out_rate" => policy.out_rate = parse_num(v, 1, 100_000).map_err(bad)? as u32,
                "out_burst" => policy.out_burst = parse_num(v, 1, 1_000_000).map_err(bad)? as u32,
                "store_share" => policy.store_share = parse_num(v, 65_536, 1 << 30).map_err(bad)? as usize,
                "direct" => policy.direct = parse_bool(v).map_err(bad)?,
                "channel" if o.is_list => channels.push(v.to_string()),
                other => self.warnings.push(format!("{fname}:{}: unknown federation option '{other}' ignored", o.line)),
            }
        }
        self.federation.push(FederationEntry {
            address: address.value.clone(),
            key: key_bytes,
            policy,
            channels,
            line: sec.line,
        });
        Ok(())
    }

    fn apply_channel(&mut self, fname: &str, sec: &uci::Section) -> Result<(), ConfigError> {
        let err = |line: usize, option: &str, reason: &str| ConfigError {
            file: fname.into(),
            line,
            option: option.into(),
            reason: reason.into(),
        };
        let name = sec.get("name").ok_or_else(|| err(sec.line, "name", "every 'config channel' needs a name"))?;
        if !valid_channel_name(&name.value) {
            return Err(err(name.line, "name", "must be 1-32 characters of A-Z a-z 0-9 _ - ."));
        }
        let key = sec.get("key").ok_or_else(|| err(sec.line, "key", "every 'config channel' needs a key"))?;
        let parsed = meshpost_proto::channel::ChannelKey::parse(&key.value).ok_or_else(|| {
            err(key.line, "key", "must be a channel key (mpch1- and 64 hex digits, from 'meshpost channel create')")
        })?;
        if self.channels.iter().any(|c| c.name == name.value) {
            return Err(err(name.line, "name", "another channel has the same name"));
        }
        self.channels.push(ChannelEntry { name: name.value.clone(), key: parsed, line: name.line });
        Ok(())
    }
}

/// The largest config file read (a stock one is 3 KB); a bigger one is
/// refused rather than read into memory whole.
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

fn read_bounded(p: &Path) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let f = std::fs::File::open(p).map_err(|e| format!("cannot read: {e}"))?;
    let mut text = Vec::new();
    f.take(MAX_CONFIG_BYTES + 1).read_to_end(&mut text).map_err(|e| format!("cannot read: {e}"))?;
    if text.len() as u64 > MAX_CONFIG_BYTES {
        return Err(format!("larger than {MAX_CONFIG_BYTES} bytes: not a config file"));
    }
    Ok(text)
}

/// Parses a 64-hex-digit Ed25519 public key.
/// A 64-hex-digit Ed25519 public key. All zeros is refused: it is no key
/// anyone holds, only a placeholder left in a config.
pub fn parse_key(s: &str) -> Option<[u8; 32]> {
    from_hex::<32>(s.trim()).filter(|k| *k != [0u8; 32])
}

/// Splits `host:port` / `[v6]:port`; the host is not resolved.
pub fn split_host_port(s: &str) -> Option<(String, u16)> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, p) = rest.split_once("]:")?;
        (h.to_string(), p)
    } else {
        let (h, p) = s.rsplit_once(':')?;
        if h.contains(':') {
            return None;
        }
        (h.to_string(), p)
    };
    let port: u16 = port.parse().ok()?;
    (!host.is_empty() && port != 0).then_some((host, port))
}

fn parse_bool(v: &str) -> Result<bool, String> {
    match v {
        "1" | "yes" | "on" | "true" | "enabled" => Ok(true),
        "0" | "no" | "off" | "false" | "disabled" => Ok(false),
        _ => Err(format!("'{v}' is not a boolean (use 1 or 0)")),
    }
}

fn parse_num(v: &str, min: u64, max: u64) -> Result<u64, String> {
    match v.trim().parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(format!("'{v}' is not a whole number from {min} to {max}")),
    }
}

fn parse_path(v: &str) -> Result<PathBuf, String> {
    if v.is_empty() || v.contains('\0') {
        return Err("must be a non-empty path".into());
    }
    Ok(PathBuf::from(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Settings, ConfigError> {
        let mut s = Settings::defaults();
        s.apply_text("/etc/config/meshpost", text.as_bytes()).map(|_| s)
    }

    #[test]
    fn reads_every_kind_of_option() {
        let key = "ab".repeat(32);
        let s = load(&format!(
            "config meshpost 'main'\n option port '5000'\n option name 'r1'\n option domain 'ffhh'\n option log_level debug\n option store_max_count 10\n option accept_unknown 0\n option frob 1\nconfig peer\n option address '[fe80::1%eth0]:4849'\n option key '{key}'\nconfig peer\n option address 'gw.example:4849'\n"
        ))
        .unwrap();
        assert_eq!(s.port, 5000);
        assert_eq!(s.node.name, "r1");
        assert_eq!(s.node.domain, "ffhh");
        assert_eq!(s.log_level, Level::Debug);
        assert_eq!(s.node.store.max_count, 10);
        assert!(!s.node.accept_unknown);
        assert_eq!(s.peers.len(), 2);
        assert_eq!(s.peers[0].key, Some([0xab; 32]));
        assert_eq!(s.warnings.len(), 1, "{:?}", s.warnings);
    }

    #[test]
    fn store_memory_is_read_bounded_and_named_in_its_error() {
        let d = load("config meshpost 'main'\n").unwrap();
        assert_eq!(d.node.store.max_hot_bytes, meshpost_proto::store::DEFAULT_HOT_BYTES);
        let s = load("config meshpost 'main'\n option store_memory '0'\n").unwrap();
        assert_eq!(s.node.store.max_hot_bytes, 0, "everything read back from the state log");
        let s = load("config meshpost 'main'\n option store_memory '1048576'\n").unwrap();
        assert_eq!(s.node.store.max_hot_bytes, 1 << 20);
        for bad in ["-1", "2147483648", "lots"] {
            let e = load(&format!("config meshpost 'main'\n option store_memory '{bad}'\n")).unwrap_err();
            assert!(e.to_string().contains("option 'store_memory'"), "{e}");
        }
    }

    #[test]
    fn beacon_intervals_and_the_preferred_links_are_read_and_kept_consistent() {
        let s = load("config meshpost 'main'\n option announce_interval '30'\n option link_target '6'\n").unwrap();
        assert_eq!(s.node.link_target, 6);
        assert_eq!((s.node.announce_interval_ms, s.node.announce_max_interval_ms), (30_000, 14_400_000));
        assert_eq!(s.node.route_timeout_ms, 3 * 14_400_000, "three of the longest intervals");
        // The longest interval is never below the shortest.
        let s = load("config meshpost 'main'\n option announce_interval '600'\n option announce_max_interval '60'\n")
            .unwrap();
        assert_eq!(s.node.announce_max_interval_ms, 600_000);
        assert_eq!(s.node.route_timeout_ms, 1_800_000);
        assert!(load("config meshpost 'main'\n option announce_max_interval '90000'\n").is_err(), "at most 6 h");
    }

    #[test]
    fn reads_a_file_as_uci_and_luci_read_it() {
        // Merged named sections, a comment after a value, an empty value
        // keeping the earlier one, and interfaces as a list or one option.
        let key = "ab".repeat(32);
        let s = load(&format!(
            "config meshpost main\n option name r1#comment\nconfig peer gw\n option address 'a:1'\nconfig peer gw\n option key '{key}'\nconfig meshpost main\n option name ''\n option interface 'bat0 mesh0'\n"
        ))
        .unwrap();
        assert_eq!(s.node.name, "r1");
        assert_eq!(s.peers.len(), 1);
        assert_eq!(s.peers[0].key, Some([0xab; 32]));
        assert_eq!(s.interfaces, ["bat0", "mesh0"]);
        // option then list of one name is a list: refused for a single option.
        let e = load("config meshpost main\n option port 1\n list port 2\n").unwrap_err();
        assert!(e.reason.contains("takes one value"), "{e}");
    }

    #[test]
    fn a_gateway_for_more_domains_than_its_card_can_list_is_refused() {
        let key = "ab".repeat(32);
        let fed = |i: usize| {
            format!("config federation\n option domain 'd{i}'\n option address 'g{i}:1'\n option key '{key}'\n")
        };
        let max = meshpost_proto::card::MAX_GATEWAY_DOMAINS;
        assert_eq!(load(&(0..max).map(fed).collect::<String>()).unwrap().federation.len(), max);
        // A second gateway of a domain already served is fine.
        assert!(load(&(0..max).chain([0]).map(fed).collect::<String>()).is_ok());
        let e = load(&(0..=max).map(fed).collect::<String>()).unwrap_err();
        assert_eq!((e.line, e.option.as_str()), (4 * max + 2, "domain"));
        assert!(e.reason.contains("at most 16 other domains"), "{e}");
    }

    #[test]
    fn an_oversized_or_binary_file_is_refused_with_its_line() {
        let dir = std::env::temp_dir().join(format!("meshpost-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let big = dir.join("big");
        std::fs::write(&big, vec![b'#'; MAX_CONFIG_BYTES as usize + 1]).unwrap();
        let e = Settings::load(Some(&big), &Overrides::default()).unwrap_err();
        assert!(e.reason.contains("larger than"), "{e}");
        let bin = dir.join("bin");
        std::fs::write(&bin, b"config meshpost main\n option name 'r\xff'\n").unwrap();
        let e = Settings::load(Some(&bin), &Overrides::default()).unwrap_err();
        assert_eq!(e.line, 2, "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn errors_name_file_line_option_and_reason() {
        let e = load("config meshpost 'main'\n\n option port 'ninety'\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "/etc/config/meshpost:3: option 'port': 'ninety' is not a whole number from 1 to 65535"
        );
        let e = load("config peer\n option address 'nocolon'\n").unwrap_err();
        assert_eq!((e.line, e.option.as_str()), (2, "address"));
        let e = load("config peer\n option address '1.2.3.4:1'\n option key 'zz'\n").unwrap_err();
        assert_eq!((e.line, e.option.as_str()), (3, "key"));
        let e = load("config meshpost 'main'\n option keepalive 30\n option dead_after 20\n").unwrap_err();
        assert_eq!((e.line, e.option.as_str()), (3, "dead_after"));
        let e = load("config meshpost 'main'\n option name 'x\n").unwrap_err();
        assert_eq!(e.line, 2);
    }

    #[test]
    fn careless_configs_are_refused_or_warned_about() {
        let e = load("config meshpost 'main'\n list port '2'\n").unwrap_err();
        assert_eq!((e.line, e.option.as_str()), (2, "port"));
        assert!(e.reason.contains("option port"), "{e}");
        let zero = "0".repeat(64);
        let e = load(&format!("config peer\n option address '1.2.3.4:1'\n option key '{zero}'\n")).unwrap_err();
        assert!(e.reason.contains("not all zeros"), "{e}");
        let s = load("# only a comment\n\n").unwrap();
        assert!(s.empty && s.warnings[0].contains("no config sections"), "{:?}", s.warnings);
        assert!(!load("config meshpost 'main'\n list interface 'a'\n list interface 'b'\n").unwrap().empty);
    }

    #[test]
    fn only_section_main_is_read_as_the_init_script_reads_it() {
        let s = load("config meshpost 'main'\n option name 'a'\nconfig meshpost 'other'\n option name 'b'\nconfig meshpost\n option port '1'\n").unwrap();
        assert_eq!(s.node.name, "a");
        assert_eq!(s.port, Settings::defaults().port);
        assert_eq!(s.warnings.len(), 2, "{:?}", s.warnings);
        assert!(s.warnings[0].contains("only config meshpost 'main' is read") && s.warnings[0].contains("'other'"));
    }

    #[test]
    fn the_shipped_example_parses_to_the_defaults() {
        let s = load(include_str!("../../../config/meshpost.example")).unwrap();
        assert!(s.warnings.is_empty(), "{:?}", s.warnings);
        let d = Settings::defaults();
        assert_eq!(s.port, d.port);
        assert_eq!(s.node.store, d.node.store);
        assert_eq!(s.node.keepalive_ms, d.node.keepalive_ms);
        assert_eq!(s.node.dead_after_ms, d.node.dead_after_ms);
        assert_eq!(s.node.default_ttl, d.node.default_ttl);
        assert_eq!((s.inbox_max, s.max_clients, s.control_timeout), (d.inbox_max, d.max_clients, d.control_timeout));
    }

    #[test]
    fn host_port_forms() {
        assert_eq!(split_host_port("10.0.0.1:4849"), Some(("10.0.0.1".into(), 4849)));
        assert_eq!(split_host_port("[::1]:1"), Some(("::1".into(), 1)));
        assert_eq!(split_host_port("::1:1"), None);
        assert_eq!(split_host_port("host:0"), None);
        assert_eq!(split_host_port(":5"), None);
    }
}
