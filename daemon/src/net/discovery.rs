//! mDNS discovery on the interfaces listed in UCI (`list interface`).
//!
//! For each configured interface that is up, one IPv6 socket (link-local,
//! group ff02::fb) and, if the interface has an IPv4 address, one IPv4
//! socket (group 224.0.0.251) are bound to the group address and port 5353
//! on that device with SO_REUSEADDR and SO_REUSEPORT, so OpenWrt's umdns or
//! avahi keep running beside us and keep receiving the unicast answers
//! meant for them. We announce our instance at once when an interface
//! comes up, then again after 1, 2, 4 ... seconds up to `mdns_interval`;
//! until the interval reaches `mdns_interval` each announcement goes with
//! a query so that the others answer at once; after that every node's own
//! announcements keep the rest informed, and a query would only make every
//! node answer it (N^2 answers per interval on one segment). Queries for our service, our instance, our host name or
//! the service types are answered at most once a second per interface and
//! address family. Multicast loopback is on, so an avahi or umdns on this
//! router sees our service too; our own packets coming back are recognised
//! (same bytes, from our own address) and ignored. On stop, and for an
//! interface dropped by a reload, we send goodbyes (TTL 0); goodbyes heard
//! make the node stop dialling that peer. Interfaces are re-scanned when the kernel reports a link
//! or address change (netlink.rs), and every [`RESCAN_MS`] anyway, so ones
//! that appear or come back later are picked up without a restart.
//!
//! It does not decide anything about peers: every announcement it hears is
//! handed to the node (`Node::discovered`), which links, checks the key
//! fingerprint, and forgets peers that fall silent. The wire format is in
//! `meshpost_proto::mdns`. Why not libmdns: docs/discovery.md.

use std::collections::{BTreeMap, VecDeque};
use std::ffi::CStr;
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};

use meshpost_proto::identity::NodeId;
use meshpost_proto::mdns::{self, Announcement, MDNS_PORT, RECORD_TTL};
use socket2::{Domain, InterfaceIndexOrAddress, Protocol, Socket, Type};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

const GROUP_V4: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 251);
const GROUP_V6: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0xfb);
/// How often the interface list is re-read when no change was reported
/// (netlink notifications make this a fallback).
pub const RESCAN_MS: u64 = 30_000;
/// The same without netlink notifications: polling is then the only way.
pub const RESCAN_POLL_MS: u64 = 2_000;
/// First re-announcement delay; doubles up to `mdns_interval`.
pub const FIRST_INTERVAL_MS: u64 = 1_000;
/// Answers to queries are sent at most this often per interface.
pub const ANSWER_GAP_MS: u64 = 1_000;
/// Largest mDNS packet read.
const MAX_PACKET: usize = 9000;
/// Packets we sent recently, remembered per interface to recognise them
/// when multicast loopback brings them back.
const RECENT_SENT: usize = 8;

/// A datagram received on a discovery socket.
pub struct Packet {
    pub iface: String,
    pub index: u32,
    pub from: SocketAddr,
    pub data: Vec<u8>,
}

/// What `getifaddrs` says about one interface.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct IfState {
    up: bool,
    v4: Option<Ipv4Addr>,
    v6_link_local: Option<Ipv6Addr>,
}

impl IfState {
    fn addrs(&self) -> Vec<IpAddr> {
        self.v4.map(IpAddr::V4).into_iter().chain(self.v6_link_local.map(IpAddr::V6)).collect()
    }
}

struct Sock {
    send: std::net::UdpSocket,
    task: JoinHandle<()>,
    v6: bool,
    /// When this socket last answered a query (per interface and family).
    last_answer: Option<u64>,
}

impl Drop for Sock {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Iface {
    state: IfState,
    socks: Vec<Sock>,
    next_announce: u64,
    interval: u64,
    /// Hashes of the packets sent last, newest at the back.
    recent: VecDeque<u64>,
}

impl Iface {
    /// Sends `data` on `sock` and remembers it; returns 1 if it went out.
    fn send(&mut self, sock: usize, data: &[u8]) -> u64 {
        if self.recent.len() >= RECENT_SENT {
            self.recent.pop_front();
        }
        self.recent.push_back(digest(data));
        self.socks.get(sock).map_or(0, |s| send(s, data))
    }

    /// Whether `data` from `from` is one of our own packets looped back.
    fn is_own(&self, from: IpAddr, data: &[u8]) -> bool {
        self.state.addrs().contains(&from) && self.recent.contains(&digest(data))
    }
}

fn digest(data: &[u8]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    data.hash(&mut h);
    h.finish()
}

/// What one received packet told us.
#[derive(Debug, Default)]
pub struct Heard {
    /// Peers announced: (address to link to, node id, key fingerprint).
    pub found: Vec<(SocketAddr, NodeId, [u8; 8])>,
    /// Peers that said goodbye.
    pub gone: Vec<NodeId>,
}

/// Counters for metrics.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub sent: u64,
    pub received: u64,
    pub malformed: u64,
    pub announcements: u64,
    /// Our own packets that multicast loopback brought back.
    pub own: u64,
    pub goodbyes: u64,
}

/// Discovery state for all configured interfaces.
pub struct Discovery {
    wanted: Vec<String>,
    active: meshpost_proto::SmallMap<String, Iface>,
    me: Announcement,
    max_interval: u64,
    next_scan: u64,
    rescan_ms: u64,
    tx: mpsc::Sender<Packet>,
    pub stats: Stats,
}

impl Discovery {
    pub fn new(interfaces: Vec<String>, me: Announcement, max_interval_ms: u64, tx: mpsc::Sender<Packet>) -> Discovery {
        Discovery {
            wanted: interfaces,
            active: meshpost_proto::SmallMap::new(),
            me,
            max_interval: max_interval_ms,
            next_scan: 0,
            rescan_ms: RESCAN_MS,
            tx,
            stats: Stats::default(),
        }
    }

    /// Applies a new interface list or announcement (reload).
    pub fn reconfigure(&mut self, interfaces: Vec<String>, me: Announcement, max_interval_ms: u64) {
        let changed_me = me != self.me;
        self.wanted = interfaces;
        self.me = me;
        self.max_interval = max_interval_ms;
        let dropped: Vec<String> = self.active.keys().filter(|n| !self.wanted.contains(n)).cloned().collect();
        for name in dropped {
            if let Some(mut i) = self.active.remove(&name) {
                self.stats.sent += say_goodbye(&self.me, &mut i);
            }
        }
        self.next_scan = 0;
        if changed_me {
            for i in self.active.iter_mut().map(|(_, i)| i) {
                i.next_announce = 0;
                i.interval = FIRST_INTERVAL_MS;
            }
        }
    }

    /// Re-read the interface list at the next [`poll`](Self::poll): the
    /// kernel reported a change.
    pub fn rescan_soon(&mut self) {
        self.next_scan = 0;
    }

    /// How often to re-read interfaces when no change is reported.
    pub fn set_rescan_interval(&mut self, ms: u64) {
        self.rescan_ms = ms;
    }

    /// Interfaces currently announced on.
    pub fn active(&self) -> Vec<String> {
        self.active.keys().cloned().collect()
    }

    /// When [`poll`](Self::poll) should run next.
    pub fn next_timer(&self) -> Option<u64> {
        if self.wanted.is_empty() {
            return None;
        }
        let announce = self.active.values().map(|i| i.next_announce).min();
        Some(announce.map_or(self.next_scan, |a| a.min(self.next_scan)))
    }

    /// Re-scans interfaces and sends due announcements.
    pub fn poll(&mut self, now: u64) {
        if self.wanted.is_empty() {
            return;
        }
        if now >= self.next_scan {
            self.next_scan = now + self.rescan_ms;
            self.rescan(now);
        }
        let q = mdns::query();
        let max = self.max_interval;
        let mut sent = 0;
        for i in self.active.iter_mut().map(|(_, i)| i) {
            if now < i.next_announce {
                continue;
            }
            let me = mdns::announce(&self.me, RECORD_TTL, &i.state.addrs(), false);
            // Asking is for the start: once every node announces itself
            // each interval, a query would only make all N-1 others answer
            // again (N^2 answers an interval on a batman-adv segment).
            let asking = i.interval < max;
            for s in 0..i.socks.len() {
                sent += i.send(s, &me);
                if asking {
                    sent += i.send(s, &q);
                }
            }
            i.next_announce = now + i.interval;
            i.interval = (i.interval * 2).min(max);
        }
        self.stats.sent += sent;
    }

    fn rescan(&mut self, now: u64) {
        let all = scan();
        let wanted = self.wanted.clone();
        for name in wanted {
            let state = all.get(&name).cloned().unwrap_or_default();
            let current = self.active.get(&name).map(|i| i.state.clone());
            if current.as_ref() == Some(&state) {
                continue;
            }
            self.active.remove(&name);
            if !state.up {
                if current.is_some() {
                    crate::info!("discovery: interface {name} went down");
                }
                continue;
            }
            match self.open(&name, &state) {
                Ok(iface) => {
                    crate::info!(
                        "discovery: announcing on {name} (IPv6 link-local{})",
                        state.v4.map_or(String::new(), |a| format!(", IPv4 {a}"))
                    );
                    let mut iface = iface;
                    iface.next_announce = now;
                    self.active.insert(name, iface);
                }
                Err(e) => crate::warn!("discovery: cannot use interface {name}: {e}"),
            }
        }
    }

    fn open(&self, name: &str, state: &IfState) -> std::io::Result<Iface> {
        let index = if_index(name).ok_or_else(|| std::io::Error::other("no such interface"))?;
        let mut socks = Vec::new();
        let mut errors = Vec::new();
        if state.v6_link_local.is_some() {
            match self.socket(name, index, None) {
                Ok(s) => socks.push(s),
                Err(e) => errors.push(format!("IPv6: {e}")),
            }
        }
        if let Some(v4) = state.v4 {
            match self.socket(name, index, Some(v4)) {
                Ok(s) => socks.push(s),
                Err(e) => errors.push(format!("IPv4: {e}")),
            }
        }
        if socks.is_empty() {
            let why = if errors.is_empty() {
                "no IPv6 link-local or IPv4 address yet".to_string()
            } else {
                errors.join("; ")
            };
            return Err(std::io::Error::other(why));
        }
        Ok(Iface {
            state: state.clone(),
            socks,
            next_announce: 0,
            interval: FIRST_INTERVAL_MS,
            recent: VecDeque::new(),
        })
    }

    fn socket(&self, name: &str, index: u32, v4: Option<Ipv4Addr>) -> std::io::Result<Sock> {
        let v6 = v4.is_none();
        let s = Socket::new(if v6 { Domain::IPV6 } else { Domain::IPV4 }, Type::DGRAM, Some(Protocol::UDP))?;
        s.set_reuse_address(true)?;
        s.set_reuse_port(true)?;
        s.bind_device(Some(name.as_bytes()))?;
        // Bound to the group address, not the wildcard: unicast datagrams to
        // this host's port 5353 (unicast-response queries of umdns or avahi)
        // then never match our socket and reach the system responder. Our
        // own queries ask for multicast answers. Linux sends from a socket
        // bound to a group with the device's address (inet_bind leaves the
        // source unset for multicast), as umdns does (interface.c).
        if let Some(addr) = v4 {
            s.bind(&SocketAddr::from((GROUP_V4, MDNS_PORT)).into())?;
            s.join_multicast_v4_n(&GROUP_V4, &InterfaceIndexOrAddress::Index(index))?;
            s.set_multicast_if_v4(&addr)?;
            s.set_multicast_ttl_v4(255)?;
            s.set_multicast_loop_v4(true)?;
        } else {
            s.set_only_v6(true)?;
            s.bind(&SocketAddr::V6(SocketAddrV6::new(GROUP_V6, MDNS_PORT, 0, index)).into())?;
            s.join_multicast_v6(&GROUP_V6, index)?;
            s.set_multicast_if_v6(index)?;
            s.set_multicast_hops_v6(255)?;
            s.set_multicast_loop_v6(true)?;
        }
        s.set_nonblocking(true)?;
        let send: std::net::UdpSocket = s.try_clone()?.into();
        let recv = tokio::net::UdpSocket::from_std(s.into())?;
        let tx = self.tx.clone();
        let iface = name.to_string();
        let task = tokio::spawn(async move {
            let mut buf = vec![0u8; MAX_PACKET];
            loop {
                match recv.recv_from(&mut buf).await {
                    // A full queue drops the packet: discovery repeats itself.
                    Ok((n, from)) => {
                        let _ = tx.try_send(Packet { iface: iface.clone(), index, from, data: buf[..n].to_vec() });
                    }
                    Err(_) => tokio::time::sleep(std::time::Duration::from_millis(200)).await,
                }
            }
        });
        Ok(Sock { send, task, v6, last_answer: None })
    }

    /// Handles one received packet: answers a query for us, and returns
    /// the peers it announces or says goodbye for.
    pub fn on_packet(&mut self, p: Packet, now: u64) -> Heard {
        let mut heard = Heard::default();
        if self.active.get(&p.iface).is_some_and(|i| i.is_own(p.from.ip(), &p.data)) {
            self.stats.own += 1;
            return heard;
        }
        self.stats.received += 1;
        let parsed = match mdns::parse(&p.data) {
            Ok(x) => x,
            Err(e) => {
                self.stats.malformed += 1;
                crate::debug!("discovery: malformed mDNS packet from {} on {}: {}", p.from, p.iface, e.0);
                return heard;
            }
        };
        if (parsed.asks_for(&self.me) || parsed.queries_services)
            && let Some(i) = self.active.get_mut(&p.iface)
        {
            let answer = mdns::announce(&self.me, RECORD_TTL, &i.state.addrs(), parsed.queries_services);
            let v6 = p.from.is_ipv6();
            for s in 0..i.socks.len() {
                let sock = &mut i.socks[s];
                if sock.v6 != v6 || sock.last_answer.is_some_and(|t| now < t + ANSWER_GAP_MS) {
                    continue;
                }
                sock.last_answer = Some(now);
                self.stats.sent += i.send(s, &answer);
            }
        }
        for node in parsed.goodbyes {
            if node != self.me.node {
                self.stats.goodbyes += 1;
                heard.gone.push(node);
            }
        }
        // An announcement from one of our own addresses (not our own
        // packet) is forged or from another program here: dialling it
        // would dial ourselves. Queries from here (avahi, umdns) are
        // answered above.
        let from_here = self.active.get(&p.iface).is_some_and(|i| i.state.addrs().contains(&p.from.ip()));
        for a in parsed.announcements {
            if a.node == self.me.node || from_here {
                continue;
            }
            self.stats.announcements += 1;
            let addr = match p.from.ip() {
                IpAddr::V6(ip) => SocketAddr::V6(SocketAddrV6::new(ip, a.port, 0, p.index)),
                IpAddr::V4(ip) => SocketAddr::new(IpAddr::V4(ip), a.port),
            };
            heard.found.push((addr, a.node, a.fingerprint));
        }
        heard
    }

    /// Says goodbye on every interface (the daemon is stopping).
    pub fn goodbye(&mut self) {
        for i in self.active.iter_mut().map(|(_, i)| i) {
            self.stats.sent += say_goodbye(&self.me, i);
        }
    }
}

fn say_goodbye(me: &Announcement, i: &mut Iface) -> u64 {
    let bye = mdns::announce(me, 0, &i.state.addrs(), false);
    (0..i.socks.len()).map(|s| i.send(s, &bye)).sum()
}

fn send(s: &Sock, data: &[u8]) -> u64 {
    let to: SocketAddr = if s.v6 { (GROUP_V6, MDNS_PORT).into() } else { (GROUP_V4, MDNS_PORT).into() };
    u64::from(s.send.send_to(data, to).is_ok())
}

fn if_index(name: &str) -> Option<u32> {
    let c = std::ffi::CString::new(name).ok()?;
    // SAFETY: c is a valid NUL-terminated string.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (i != 0).then_some(i)
}

/// Reads every interface's flags and addresses with getifaddrs(3).
fn scan() -> BTreeMap<String, IfState> {
    let mut out: BTreeMap<String, IfState> = BTreeMap::new();
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs writes a list head we free below with freeifaddrs.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return out;
    }
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: cur is a non-null node of the list getifaddrs returned,
        // valid until freeifaddrs; its name is a NUL-terminated string.
        let ifa = unsafe { &*cur };
        let name = unsafe { CStr::from_ptr(ifa.ifa_name) }.to_string_lossy().into_owned();
        let flags = ifa.ifa_flags;
        let up = flags & (libc::IFF_UP as u32) != 0
            && flags & (libc::IFF_RUNNING as u32) != 0
            && flags & (libc::IFF_MULTICAST as u32) != 0;
        let e = out.entry(name).or_default();
        e.up = up;
        if !ifa.ifa_addr.is_null() {
            // SAFETY: ifa_addr is non-null and points to a sockaddr whose
            // family says which larger struct it is.
            let family = i32::from(unsafe { (*ifa.ifa_addr).sa_family });
            if family == libc::AF_INET {
                // SAFETY: AF_INET addresses are sockaddr_in.
                let sin = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
                e.v4.get_or_insert(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)));
            } else if family == libc::AF_INET6 {
                // SAFETY: AF_INET6 addresses are sockaddr_in6.
                let sin6 = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in6) };
                let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
                if ip.segments()[0] & 0xffc0 == 0xfe80 {
                    e.v6_link_local.get_or_insert(ip);
                }
            }
        }
        cur = ifa.ifa_next;
    }
    // SAFETY: head came from getifaddrs and is freed exactly once.
    unsafe { libc::freeifaddrs(head) };
    out
}
