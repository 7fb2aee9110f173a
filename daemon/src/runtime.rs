//! The daemon: real sockets, real time and the state directory around the
//! sans-IO [`Node`].
//!
//! One tokio current-thread loop waits for a datagram, a control request, a
//! signal or the node's next timer, hands the event to the node, and then
//! carries out the node's actions in order (persist before acknowledging).

use std::net::{IpAddr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use meshpost_proto::envelope::EnvelopeId;
use meshpost_proto::identity::NodeId;
use meshpost_proto::node::{Action, Node, PeerSpec};
use meshpost_proto::time::Timestamp;
use rand_core::OsRng;
use serde_json::{Value, json};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::{UdpSocket, UnixListener};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{broadcast, mpsc};

use crate::config::{Overrides, Settings, split_host_port};
use crate::control::{self, Policy, Reply, Request, Stats, error};
use crate::discovery::{self, Discovery};
use crate::inbox::{Inbox, InboxError, Message};
use crate::persist::State;
use crate::{debug, error, info, log, notice, warn};

/// Longest sleep of the event loop when no timer is due sooner.
const MAX_SLEEP_MS: u64 = 5_000;
/// Events buffered per subscriber before it is marked as dropping.
pub const SUBSCRIBER_BUFFER: usize = 256;
/// Largest text a local `send` accepts.
pub const MAX_TEXT: usize = 60 * 1024;
/// Most channels one node can be in.
pub const MAX_CHANNELS: usize = 64;

/// A joined channel as the daemon keeps it: bounded history and a stream
/// for subscribers.
struct Channel {
    name: String,
    id: [u8; 16],
    key: meshpost_proto::channel::ChannelKey,
    from_config: bool,
    history: std::collections::VecDeque<Value>,
    tx: broadcast::Sender<Arc<str>>,
}

/// Wall-clock (unix) time in ms: for envelope validity and for what
/// people read (received times, history ages).
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Both clocks for the node: monotonic ms since this process started
/// (timers, which must not follow a wall-clock step) and unix ms.
pub fn timestamp() -> Timestamp {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let start = START.get_or_init(Instant::now);
    Timestamp::new(start.elapsed().as_millis() as u64 + 1, now_ms())
}

/// A seed for the node's generator from the operating system.
fn os_seed() -> [u8; 32] {
    use rand_core::RngCore;
    let mut seed = [0u8; 32];
    OsRng.fill_bytes(&mut seed);
    seed
}

/// Resolves configured peers and federation peers; names that do not
/// resolve are skipped with a warning so that a DNS outage does not stop
/// the daemon. Federated channel names are looked up in `channel_ids`.
pub fn resolve_peers(settings: &Settings, channel_ids: &[(String, [u8; 16])]) -> Vec<PeerSpec> {
    let mut out = Vec::new();
    for p in &settings.peers {
        match resolve(&p.address) {
            Ok(addr) => out.push(PeerSpec { addr, pin: p.key, federation: None }),
            Err(e) => warn!("peer {} (config line {}): {e}; skipped until reload", p.address, p.line),
        }
    }
    for f in &settings.federation {
        let mut policy = f.policy.clone();
        for c in &f.channels {
            let id = meshpost_proto::crypto::from_hex::<16>(c)
                .or_else(|| channel_ids.iter().find(|(n, _)| n == c).map(|(_, id)| *id));
            match id {
                Some(id) => policy.channels.push(id),
                None => warn!(
                    "federation {} (config line {}): no channel '{c}' here; it will not cross",
                    f.policy.domain, f.line
                ),
            }
        }
        match resolve(&f.address) {
            Ok(addr) => out.push(PeerSpec { addr, pin: Some(f.key), federation: Some(policy) }),
            Err(e) => warn!("federation peer {} (config line {}): {e}; skipped until reload", f.address, f.line),
        }
    }
    out
}

fn resolve(address: &str) -> Result<SocketAddr, String> {
    let (host, port) = split_host_port(address).ok_or_else(|| format!("'{address}' is not host:port"))?;
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    // IPv6 with a zone, as link-local peers need: fe80::1%mesh0.
    if let Some((ip, zone)) = host.split_once('%') {
        let ip: Ipv6Addr = ip.parse().map_err(|_| format!("'{ip}' is not an IPv6 address"))?;
        let scope = zone
            .parse::<u32>()
            .ok()
            .or_else(|| interface_index(zone))
            .ok_or_else(|| format!("no interface '{zone}' for {address}"))?;
        return Ok(SocketAddr::V6(std::net::SocketAddrV6::new(ip, port, 0, scope)));
    }
    (host.as_str(), port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .next()
        .ok_or_else(|| format!("{host} has no address"))
}

fn interface_index(name: &str) -> Option<u32> {
    let c = std::ffi::CString::new(name).ok()?;
    // SAFETY: c is a valid NUL-terminated string.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (i != 0).then_some(i)
}

/// Maps v4-mapped IPv6 addresses back to IPv4 so peers compare equal.
fn normalize(a: SocketAddr) -> SocketAddr {
    match a {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), v6.port()),
            None => a,
        },
        v4 => v4,
    }
}

/// Binds the link socket: dual-stack IPv6 if possible, else IPv4. Returns
/// the tokio socket for receiving, a plain clone for non-blocking sends
/// (tokio's `try_send_to` refuses until the reactor has seen the socket
/// writable), and whether it is IPv6.
fn bind_udp(port: u16) -> std::io::Result<(UdpSocket, std::net::UdpSocket, bool)> {
    let dual = (|| {
        let s = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP))?;
        s.set_only_v6(false)?;
        s.bind(&SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port).into())?;
        Ok::<_, std::io::Error>(s)
    })();
    let (s, v6) = match dual {
        Ok(s) => (s, true),
        Err(_) => {
            let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
            s.bind(&SocketAddr::from(([0, 0, 0, 0], port)).into())?;
            (s, false)
        }
    };
    let _ = s.set_recv_buffer_size(1 << 20);
    let _ = s.set_send_buffer_size(1 << 20);
    s.set_nonblocking(true)?;
    let sender: std::net::UdpSocket = s.try_clone()?.into();
    Ok((UdpSocket::from_std(s.into())?, sender, v6))
}

fn bind_control(path: &PathBuf) -> Result<UnixListener, String> {
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(format!("another daemon is already listening on {}", path.display()));
        }
        let _ = std::fs::remove_file(path);
    }
    let l = UnixListener::bind(path).map_err(|e| format!("cannot listen on {}: {e}", path.display()))?;
    // Access is decided per connection with SO_PEERCRED (see control.rs), so
    // the socket file itself is open to all local users.
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666));
    Ok(l)
}

/// The running daemon.
pub struct Daemon {
    node: Node,
    state: State,
    inbox: Inbox,
    settings: Settings,
    config_path: Option<PathBuf>,
    overrides: Overrides,
    extra_peers: Vec<PeerSpec>,
    udp: UdpSocket,
    udp_send: std::net::UdpSocket,
    udp_v6: bool,
    events: broadcast::Sender<Arc<str>>,
    policy: Arc<Mutex<Policy>>,
    stats: Arc<Stats>,
    started: Instant,
    send_errors: u64,
    persist_errors: u64,
    /// Writes that failed during the current drain (for local sends).
    failed_writes: Vec<EnvelopeId>,
    /// Set while deliveries cannot be stored: the inbox is full of unread
    /// mail or its files cannot be written (logged once per episode).
    inbox_full_since: Option<u64>,
    discovery: Discovery,
    channels: Vec<Channel>,
}

/// What this node announces over mDNS.
fn announcement(node: &Node, port: u16) -> meshpost_proto::mdns::Announcement {
    meshpost_proto::mdns::Announcement {
        node: node.node_id(),
        fingerprint: meshpost_proto::identity::fingerprint(&node.identity().public_key()),
        port,
        domain: node.config().domain.clone(),
    }
}

fn policy_of(s: &Settings) -> Policy {
    let group_gid = s.socket_group.as_deref().and_then(|g| {
        let gid = control::group_gid(g);
        if gid.is_none() {
            warn!("socket_group '{g}' does not exist; only root and the daemon's user may connect");
        }
        gid
    });
    Policy { group_gid, max_clients: s.max_clients, request_timeout: Duration::from_secs(s.control_timeout) }
}

impl Daemon {
    /// Runs the daemon until SIGTERM/SIGINT. Errors are start-up failures.
    pub async fn run(settings: Settings, config_path: Option<PathBuf>, overrides: Overrides) -> Result<(), String> {
        log::set_level(settings.log_level);
        for w in &settings.warnings {
            warn!("{w}");
        }
        let state = State::open(&settings.state_dir)?;
        let tmp = state.clean_tmp();
        if tmp > 0 {
            notice!("removed {tmp} unfinished writes (*.tmp) left by an earlier stop; none had been acknowledged");
        }
        let (identity, created) = state.identity()?;
        if created {
            notice!("created a new node identity in {}", state.dir().join("identity.key").display());
        }
        let now = timestamp();
        let mut node = Node::new(identity, settings.node.clone(), os_seed(), now);
        let (inbox, problems) = Inbox::load(&state, settings.inbox_max, settings.inbox_max_bytes);
        for p in problems {
            warn!("{p}");
        }
        let restored = restore(&mut node, &state, &inbox, now);
        let (udp, udp_send, udp_v6) =
            bind_udp(settings.port).map_err(|e| format!("cannot bind UDP port {}: {e}", settings.port))?;
        let listener = bind_control(&settings.socket)?;
        let mut names: Vec<(String, [u8; 16])> =
            settings.channels.iter().map(|c| (c.name.clone(), c.key.id())).collect();
        names.extend(state.channels().into_iter().map(|(n, k)| (n, k.id())));
        for p in resolve_peers(&settings, &names) {
            if !node.add_peer(p.clone(), now) {
                warn!("peer {} not used: at most {} peers", p.addr, meshpost_proto::node::MAX_STATIC_PEERS);
            }
        }
        let (events, _) = broadcast::channel(SUBSCRIBER_BUFFER);
        let policy = Arc::new(Mutex::new(policy_of(&settings)));
        let stats = Arc::new(Stats::default());
        let (tx, mut rx) = mpsc::channel::<Request>(64);
        let (disc_tx, mut disc_rx) = mpsc::channel::<discovery::Packet>(256);
        let discovery = Discovery::new(
            settings.interfaces.clone(),
            announcement(&node, settings.port),
            settings.mdns_interval_ms,
            disc_tx,
        );
        tokio::spawn(control::serve(listener, tx, policy.clone(), stats.clone()));
        notice!(
            "started: node {} ({}), udp port {}, socket {}, state {}, {restored} envelopes restored",
            node.node_id(),
            if settings.node.name.is_empty() { "unnamed" } else { &settings.node.name },
            settings.port,
            settings.socket.display(),
            settings.state_dir.display()
        );
        let mut d = Daemon {
            node,
            state,
            inbox,
            settings,
            config_path,
            overrides,
            extra_peers: Vec::new(),
            udp,
            udp_send,
            udp_v6,
            events,
            policy,
            stats,
            started: Instant::now(),
            send_errors: 0,
            persist_errors: 0,
            failed_writes: Vec::new(),
            inbox_full_since: None,
            discovery,
            channels: Vec::new(),
        };
        d.apply_channels();
        let changes = match crate::netlink::Changes::open() {
            Ok(c) => Some(c),
            Err(e) => {
                warn!("no netlink notifications of interface changes ({e}); polling interfaces instead");
                d.discovery.set_rescan_interval(discovery::RESCAN_POLL_MS);
                None
            }
        };
        let mut hup = signal(SignalKind::hangup()).map_err(|e| format!("cannot handle SIGHUP: {e}"))?;
        let mut term = signal(SignalKind::terminate()).map_err(|e| format!("cannot handle SIGTERM: {e}"))?;
        let mut int = signal(SignalKind::interrupt()).map_err(|e| format!("cannot handle SIGINT: {e}"))?;
        let mut buf = vec![0u8; 2048];
        d.node.handle_timeout(timestamp());
        d.drain();
        loop {
            let now = timestamp().mono_ms;
            d.discovery.poll(now);
            // Both are on the monotonic clock. Wake at least every few
            // seconds anyway, so a wall-clock step is seen soon by the
            // envelope expiry timers (the only ones on unix time).
            let next = [d.node.poll_timeout(), d.discovery.next_timer()].into_iter().flatten().min();
            let wait = next.map_or(MAX_SLEEP_MS, |t| t.saturating_sub(now)).min(MAX_SLEEP_MS);
            tokio::select! {
                r = d.udp.recv_from(&mut buf) => {
                    if let Ok((n, from)) = r {
                        d.node.handle_datagram(timestamp(), normalize(from), &buf[..n]);
                    }
                }
                _ = tokio::time::sleep(Duration::from_millis(wait)) => {
                    d.node.handle_timeout(timestamp());
                }
                Some(p) = disc_rx.recv() => {
                    let now = timestamp();
                    for (addr, node, fp) in d.discovery.on_packet(p, now.mono_ms) {
                        d.node.discovered(addr, node, fp, now);
                    }
                }
                Some(req) = rx.recv() => {
                    let reply = d.handle(req.json);
                    let _ = req.reply.send(reply);
                }
                _ = async {
                    match &changes {
                        Some(c) => c.changed().await,
                        None => std::future::pending().await,
                    }
                } => d.discovery.rescan_soon(),
                _ = hup.recv() => {
                    let _ = d.reload();
                }
                _ = term.recv() => break,
                _ = int.recv() => break,
            }
            d.drain();
        }
        notice!("stopping: {} envelopes kept in {}", d.node.store().len(), d.state.dir().display());
        let _ = std::fs::remove_file(&d.settings.socket);
        Ok(())
    }

    /// Carries out the node's actions in order.
    fn drain(&mut self) {
        while let Some(a) = self.node.poll_action() {
            match a {
                Action::Transmit { to, data } => {
                    let to = match (to, self.udp_v6) {
                        (SocketAddr::V4(v4), true) => SocketAddr::new(IpAddr::V6(v4.ip().to_ipv6_mapped()), v4.port()),
                        (a, _) => a,
                    };
                    // UDP is lossy anyway: a full socket buffer drops the
                    // datagram and the sync protocol resends what matters.
                    if self.udp_send.send_to(&data, to).is_err() {
                        self.send_errors += 1;
                    }
                }
                Action::Persist { id, bytes } => match self.state.write_envelope(&id, &bytes) {
                    Ok(()) => self.node.persisted(id),
                    Err(e) => {
                        self.persist_errors += 1;
                        self.failed_writes.push(id);
                        self.state.remove_envelope(&id);
                        self.node.persist_failed(id);
                        error!("cannot persist envelope {id}: {e}");
                    }
                },
                Action::Unpersist { id } => self.state.remove_envelope(&id),
                Action::Deliver(d) => self.deliver(d),
                Action::SaveCard { node, envelope } => self.state.save_card(&node, &envelope),
                Action::ChannelDeliver { channel, message: d } => {
                    let (max, age) = (self.settings.channel_history, self.settings.channel_history_age);
                    let Some(c) = self.channels.iter_mut().find(|c| c.id == channel) else { continue };
                    let msg = json!({"event": "channel", "channel": c.name, "id": d.id.to_string(),
                        "from": d.from.to_string(), "from_name": d.from_name, "created": d.created,
                        "text": String::from_utf8_lossy(&d.body)});
                    debug!("channel {}: message {} from {}", c.name, d.id, d.from);
                    c.history.push_back(msg.clone());
                    prune(&mut c.history, max, age, now_ms() / 1000);
                    let _ = c.tx.send(Arc::from(msg.to_string()));
                }
                Action::Event(e) => {
                    if e.is_warning() {
                        warn!("{e}");
                    } else if matches!(
                        e,
                        meshpost_proto::node::Event::EnvelopeDropped { .. }
                            | meshpost_proto::node::Event::HandshakeFailed { .. }
                    ) {
                        debug!("{e}");
                    } else {
                        info!("{e}");
                    }
                }
            }
        }
    }

    /// Writes a delivered message to the inbox and tells the node whether
    /// it is durable; only then does the node acknowledge it.
    fn deliver(&mut self, d: meshpost_proto::node::Delivery) {
        let msg = Message {
            id: d.id.to_string(),
            from: d.from.to_string(),
            from_name: d.from_name.clone(),
            created: d.created,
            received: now_ms() / 1000,
            expires: d.expires,
            text: String::from_utf8_lossy(&d.body).into_owned(),
            read: false,
        };
        let state = &self.state;
        // A read message that makes room keeps its delivered.log line.
        let forget = |m: &Message| record_delivered(state, m);
        match self.inbox.add(&self.state, msg.clone(), &d.body, forget) {
            Ok(dropped) => {
                for id in dropped {
                    debug!("inbox: removed read message {id} to make room");
                }
                if self.inbox_full_since.take().is_some() {
                    notice!("inbox writable and with room again; messages left with senders will now arrive");
                }
                // The inbox file is the delivery record; this line lets the
                // id outlive the file. If it fails, the file still counts.
                if let Err(e) = self.state.append_delivered(&d.id, d.expires, &d.from) {
                    self.persist_errors += 1;
                    warn!("cannot append to delivered.log ({e}); the inbox file records message {}", d.id);
                }
                self.node.persisted(d.id);
                debug!("message {} from {} delivered ({} bytes)", d.id, d.from, d.body.len());
                let mut ev = serde_json::to_value(&msg).unwrap_or(Value::Null);
                if let Some(o) = ev.as_object_mut() {
                    o.insert("event".into(), json!("message"));
                }
                let _ = self.events.send(Arc::from(ev.to_string()));
            }
            Err(e) => {
                self.state.remove_file(&self.state.inbox_path(&msg.id));
                self.node.persist_failed(d.id);
                match e {
                    InboxError::Io(_) => self.persist_errors += 1,
                    // Nothing for us is decrypted until a message is read
                    // or deleted (see reopen_inbox).
                    InboxError::Full { .. } => self.node.set_inbox_open(false),
                }
                // One line per episode, not one per retry of each message.
                if self.inbox_full_since.is_none() {
                    self.inbox_full_since = Some(now_ms());
                    error!("cannot store delivered message {} ({e}); not acknowledged, the sender keeps it", d.id);
                } else {
                    debug!("message {} still cannot be stored ({e})", d.id);
                }
            }
        }
    }

    /// After a read or delete: if the inbox has room again, take messages.
    fn reopen_inbox(&mut self) {
        if self.inbox_full_since.is_some() && !self.inbox.is_full_for(0) {
            self.inbox_full_since = None;
            self.node.set_inbox_open(true);
            notice!("inbox has room again; messages left with senders will arrive at their next offer");
        }
    }

    /// Joins the channels from the config file and the state directory;
    /// leaves config channels that are no longer configured.
    fn apply_channels(&mut self) {
        if let Some(f) = &self.settings.file {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(f).map(|m| m.permissions().mode() & 0o777).unwrap_or(0);
            if !self.settings.channels.is_empty() && mode & 0o044 != 0 {
                warn!(
                    "{} holds channel keys and has mode {mode:04o}: other local users can read them; run: chmod 600 {}",
                    f.display(),
                    f.display()
                );
            }
        }
        let configured: Vec<String> = self.settings.channels.iter().map(|c| c.name.clone()).collect();
        let gone: Vec<String> = self
            .channels
            .iter()
            .filter(|c| c.from_config && !configured.contains(&c.name))
            .map(|c| c.name.clone())
            .collect();
        for name in gone {
            let _ = self.leave(&name);
        }
        for c in self.settings.channels.clone() {
            if let Err(e) = self.join(&c.name, c.key, true) {
                warn!("channel {} (config line {}): {e}", c.name, c.line);
            }
        }
        for (name, key) in self.state.channels() {
            if let Err(e) = self.join(&name, key, false) {
                warn!("channel {name} from the state directory: {e}");
            }
        }
    }

    fn join(
        &mut self,
        name: &str,
        key: meshpost_proto::channel::ChannelKey,
        from_config: bool,
    ) -> Result<bool, String> {
        let id = key.id();
        if let Some(c) = self.channels.iter_mut().find(|c| c.name == name) {
            if c.id != id {
                return Err(format!("a different channel is already called '{name}'"));
            }
            c.from_config |= from_config;
            return Ok(false);
        }
        if let Some(c) = self.channels.iter().find(|c| c.id == id) {
            return Err(format!("already joined under the name '{}'", c.name));
        }
        if self.channels.len() >= MAX_CHANNELS {
            return Err(format!("at most {MAX_CHANNELS} channels"));
        }
        let (tx, _) = broadcast::channel(SUBSCRIBER_BUFFER);
        self.channels.push(Channel {
            name: name.to_string(),
            id,
            key: key.clone(),
            from_config,
            history: Default::default(),
            tx,
        });
        self.node.join_channel(key);
        self.drain();
        info!("joined channel {name}");
        Ok(true)
    }

    fn leave(&mut self, name: &str) -> Result<(), String> {
        let pos =
            self.channels.iter().position(|c| c.name == name).ok_or_else(|| format!("not in a channel '{name}'"))?;
        let c = self.channels.remove(pos);
        self.node.leave_channel(&c.id);
        self.save_joined()?;
        info!("left channel {name}");
        Ok(())
    }

    /// Writes the channels joined at run time (not from config), 0600.
    fn save_joined(&self) -> Result<(), String> {
        let list: Vec<(String, meshpost_proto::channel::ChannelKey)> =
            self.channels.iter().filter(|c| !c.from_config).map(|c| (c.name.clone(), c.key.clone())).collect();
        self.state.save_channels(&list).map_err(|e| format!("cannot save joined channels: {e}"))
    }

    fn channel_cmd(&mut self, req: &Value, now: Timestamp) -> Value {
        let arg = |k: &str| req.get(k).and_then(Value::as_str).map(str::to_string);
        let name = arg("name").unwrap_or_default();
        match arg("action").as_deref().unwrap_or("list") {
            "list" => {
                let list: Vec<Value> = self
                    .channels
                    .iter()
                    .map(|c| {
                        json!({"name": c.name, "id": meshpost_proto::crypto::to_hex(&c.id),
                        "source": if c.from_config { "config" } else { "joined" }, "history": c.history.len(),
                        "subscribers": c.tx.receiver_count()})
                    })
                    .collect();
                json!({"ok": true, "channels": list})
            }
            "create" | "join" if !crate::config::valid_channel_name(&name) => {
                error("a channel name is 1-32 characters of A-Z a-z 0-9 _ - .")
            }
            "create" => {
                let key = meshpost_proto::channel::ChannelKey::generate(&mut OsRng);
                let share = key.to_share_string();
                match self.join(&name, key, false).and_then(|_| self.save_joined().map(|_| true)) {
                    Ok(_) => json!({"ok": true, "name": name, "key": share.as_str()}),
                    Err(e) => error(e),
                }
            }
            "join" => {
                let Some(key) = arg("key").as_deref().and_then(meshpost_proto::channel::ChannelKey::parse) else {
                    return error("join needs the channel key (mpch1- and 64 hex digits)");
                };
                match self.join(&name, key, false).and_then(|_| self.save_joined().map(|_| true)) {
                    Ok(_) => json!({"ok": true, "joined": name}),
                    Err(e) => error(e),
                }
            }
            "leave" => match self.channels.iter().find(|c| c.name == name).map(|c| c.from_config) {
                Some(true) => error(format!("'{name}' comes from the config file; remove it there")),
                Some(false) => match self.leave(&name) {
                    Ok(()) => json!({"ok": true, "left": name}),
                    Err(e) => error(e),
                },
                None => error(format!("not in a channel '{name}'")),
            },
            "history" => {
                let age = self.settings.channel_history_age;
                match self.channels.iter_mut().find(|c| c.name == name) {
                    Some(c) => {
                        prune(&mut c.history, usize::MAX, age, now.unix_s());
                        json!({"ok": true, "channel": name, "messages": c.history.iter().cloned().collect::<Vec<_>>()})
                    }
                    None => error(format!("not in a channel '{name}'")),
                }
            }
            other => error(format!("unknown channel action '{other}' (list, create, join, leave, history)")),
        }
    }

    fn publish(&mut self, req: &Value, now: Timestamp) -> Value {
        let Some(name) = req.get("channel").and_then(Value::as_str) else { return error("publish needs \"channel\"") };
        let Some(text) = req.get("text").and_then(Value::as_str) else { return error("publish needs \"text\"") };
        let Some(id) = self.channels.iter().find(|c| c.name == name).map(|c| c.id) else {
            return error(format!("not in a channel '{name}' (meshpost channel join NAME KEY)"));
        };
        match self.node.publish(now, id, text.as_bytes()) {
            Ok(eid) => {
                if !self.make_durable(&eid) {
                    return error("could not write the message to the state directory; not published");
                }
                json!({"ok": true, "id": eid.to_string(), "channel": name})
            }
            Err(e) => error(e.to_string()),
        }
    }

    /// Carries out the actions of a local send or publish, whose `Persist`
    /// comes first, and says whether the envelope is durable. If not, it is
    /// taken back, so nothing is acknowledged that a crash could lose.
    fn make_durable(&mut self, id: &EnvelopeId) -> bool {
        self.failed_writes.clear();
        self.drain();
        // The node forwards nothing before `persisted`, and took the
        // envelope back on `persist_failed`: a retry makes no duplicate.
        !self.failed_writes.contains(id) && !self.node.is_pending_write(id)
    }

    fn reload(&mut self) -> Result<(), String> {
        let s = match Settings::load(self.config_path.as_deref(), &self.overrides) {
            Ok(s) => s,
            Err(e) => {
                error!("reload failed, keeping the running configuration: {e}");
                return Err(e.to_string());
            }
        };
        for w in &s.warnings {
            warn!("{w}");
        }
        if s.port != self.settings.port || s.state_dir != self.settings.state_dir || s.socket != self.settings.socket {
            warn!("reload: port, state_dir and socket changes take effect only after a restart");
        }
        log::set_level(s.log_level);
        let now = timestamp();
        self.node.set_config(s.node.clone(), now);
        let names: Vec<(String, [u8; 16])> = self.channels.iter().map(|c| (c.name.clone(), c.id)).collect();
        let mut peers = resolve_peers(&s, &names);
        peers.extend(self.extra_peers.iter().cloned());
        self.node.set_peers(&peers, now);
        self.inbox.set_limits(s.inbox_max, s.inbox_max_bytes);
        self.reopen_inbox();
        self.discovery.reconfigure(
            s.interfaces.clone(),
            announcement(&self.node, self.settings.port),
            s.mdns_interval_ms,
        );
        if let Ok(mut p) = self.policy.lock() {
            *p = policy_of(&s);
        }
        let keep = (self.settings.port, self.settings.state_dir.clone(), self.settings.socket.clone());
        self.settings = s;
        (self.settings.port, self.settings.state_dir, self.settings.socket) = keep;
        self.apply_channels();
        notice!("configuration reloaded: {} peers configured, {} links kept", peers.len(), self.node.links().len());
        Ok(())
    }

    /// A recipient: a node id, or a unique announced name, either optionally
    /// followed by `@domain`, which must be the domain the node announced.
    fn resolve_to(&self, to: &str) -> Result<NodeId, String> {
        if let Some((who, domain)) = to.split_once('@') {
            let id = self.resolve_to(who)?;
            let announced = self.node.card(&id).map(|c| c.domain.clone());
            return match announced {
                Some(d) if d == domain || (domain == self.node.config().domain && d.is_empty()) => Ok(id),
                Some(d) => Err(format!("{who} announced domain '{d}', not '{domain}'")),
                None => {
                    Err(format!("no keys known for {who}@{domain} yet: its gateway has not passed on its announce"))
                }
            };
        }
        if let Some(id) = NodeId::parse(to) {
            return Ok(id);
        }
        let matches: Vec<NodeId> = self.node.cards().filter(|c| c.name == to).map(|c| c.node_id()).collect();
        match matches.as_slice() {
            [one] => Ok(*one),
            [] => Err(format!("'{to}' is neither a 32-hex-digit node id nor the name of a known node")),
            _ => Err(format!("the name '{to}' is used by {} nodes; use the node id", matches.len())),
        }
    }

    /// Answers one control request.
    fn handle(&mut self, req: Value) -> Reply {
        let cmd = req.get("cmd").and_then(Value::as_str).unwrap_or("");
        let arg = |k: &str| req.get(k).and_then(Value::as_str);
        let now = timestamp();
        let v = match cmd {
            "status" => self.status(),
            "identity" => {
                let c = self.node.config();
                identity_json(self.node.identity(), &c.name, &c.domain)
            }
            "peers" => self.peers(now),
            "routes" => {
                let routes: Vec<Value> = self
                    .node
                    .routes()
                    .into_iter()
                    .map(|r| {
                        json!({"node": r.dest.to_string(), "name": r.name, "via": r.via.to_string(),
                        "hops": r.hops, "age_secs": r.age_ms / 1000})
                    })
                    .collect();
                json!({"ok": true, "routes": routes})
            }
            "graph" => json!({"ok": true, "dot": self.graph()}),
            "federation" => self.federation(now),
            "send" => self.send(&req, now),
            "inbox" => match arg("action").unwrap_or("list") {
                "list" => json!({"ok": true, "messages": self.inbox.list().collect::<Vec<_>>()}),
                "read" => match arg("id").and_then(|id| self.inbox.read(&self.state, id)) {
                    Some(m) => {
                        self.reopen_inbox();
                        json!({"ok": true, "message": m})
                    }
                    None => error("no such message in the inbox"),
                },
                "delete" => {
                    let state = &self.state;
                    match arg("id").map(|id| (id, self.inbox.delete(state, id, |m| record_delivered(state, m)))) {
                        Some((id, Ok(true))) => {
                            let v = json!({"ok": true, "deleted": id});
                            self.reopen_inbox();
                            v
                        }
                        Some((_, Err(e))) => error(format!("cannot record the message as delivered ({e}); kept")),
                        _ => error("no such message in the inbox"),
                    }
                }
                other => error(format!("unknown inbox action '{other}' (list, read, delete)")),
            },
            "subscribe" => match arg("channel") {
                None => return Reply::Stream(json!({"ok": true, "subscribed": "messages"}), self.events.subscribe()),
                Some(name) => match self.channels.iter().find(|c| c.name == name) {
                    Some(c) => return Reply::Stream(json!({"ok": true, "subscribed": name}), c.tx.subscribe()),
                    None => error(format!("not in a channel '{name}'")),
                },
            },
            "channel" => self.channel_cmd(&req, now),
            "publish" => self.publish(&req, now),
            "store" if req.get("action").and_then(Value::as_str) == Some("list") => {
                // Bounded: the first 1000 by id.
                let list: Vec<Value> = self
                    .node
                    .store()
                    .iter()
                    .take(1000)
                    .map(|(id, e)| {
                        json!({"id": id.to_string(), "kind": format!("{:?}", e.env.kind()).to_lowercase(),
                        "origin": e.env.origin_id().to_string(), "dest": meshpost_proto::crypto::to_hex(&e.env.dest().id),
                        "expires": e.env.expires_at(), "hops_left": e.env.hops_left(), "bytes": e.env.len(), "local": e.local})
                    })
                    .collect();
                json!({"ok": true, "envelopes": list})
            }
            "store" => {
                let st = self.node.store();
                let l = st.limits();
                let local = st.iter().filter(|(_, e)| e.local).count();
                json!({"ok": true, "envelopes": st.len(), "bytes": st.bytes(), "local": local,
                    "max_bytes": l.max_bytes, "max_count": l.max_count,
                    "max_bytes_per_origin": l.max_bytes_per_origin, "max_bytes_per_recipient": l.max_bytes_per_recipient,
                    "next_expiry": st.next_expiry()})
            }
            "peer" => self.peer_cmd(&req, now),
            "reload" => match self.reload() {
                Ok(()) => json!({"ok": true, "reloaded": true}),
                Err(e) => error(format!("reload failed, running configuration kept: {e}")),
            },
            "metrics" => json!({"ok": true, "text": self.metrics()}),
            "" => error("missing \"cmd\""),
            other => error(format!("unknown command '{other}'")),
        };
        Reply::Json(v)
    }

    fn status(&self) -> Value {
        let c = self.node.config();
        json!({"ok": true, "version": env!("CARGO_PKG_VERSION"), "node_id": self.node.node_id().to_string(),
            "name": c.name, "domain": c.domain, "uptime": self.started.elapsed().as_secs(),
            "port": self.settings.port, "links": self.node.links().len(), "peers_configured": self.node.peers().len(),
            "store": {"envelopes": self.node.store().len(), "bytes": self.node.store().bytes()},
            "inbox": {"messages": self.inbox.len(), "unread": self.inbox.unread(), "bytes": self.inbox.bytes(),
                "full": self.inbox_full_since.is_some(), "max_messages": self.settings.inbox_max,
                "max_bytes": self.settings.inbox_max_bytes},
            "known_nodes": self.node.cards().count(), "routes": self.node.routes().len(),
            "interfaces": self.discovery.active(), "channels": self.channels.len(),
            "federation_links": self.node.federation_links().len()})
    }

    /// The known topology as Graphviz DOT, from our links and the
    /// neighbour lists in every known announce (as batadv-vis does).
    fn graph(&self) -> String {
        use std::collections::BTreeSet;
        use std::fmt::Write;
        let me = self.node.node_id();
        let label = |id: &NodeId, name: &str| {
            let short = &id.to_string()[..8];
            let name: String = name.chars().filter(|c| *c != '"' && *c != '\\').collect();
            if name.is_empty() { short.to_string() } else { format!("{name}\\n{short}") }
        };
        let mut nodes: BTreeSet<(NodeId, String)> = BTreeSet::new();
        let mut edges: BTreeSet<(NodeId, NodeId)> = BTreeSet::new();
        nodes.insert((me, self.node.config().name.clone()));
        for l in self.node.links() {
            edges.insert((me.min(l.node), me.max(l.node)));
        }
        for c in self.node.cards() {
            let id = c.node_id();
            nodes.insert((id, c.name.clone()));
            for n in &c.neighbours {
                edges.insert((id.min(*n), id.max(*n)));
            }
        }
        let mut out = String::from("graph meshpost {\n");
        for (id, name) in &nodes {
            let style = if *id == me { ", style=bold" } else { "" };
            let _ = writeln!(out, "  \"{id}\" [label=\"{}\"{style}];", label(id, name));
        }
        for (a, b) in &edges {
            let _ = writeln!(out, "  \"{a}\" -- \"{b}\";");
        }
        out.push_str("}\n");
        out
    }

    /// Federation peers: configured, with their state and traffic.
    fn federation(&self, now: Timestamp) -> Value {
        let now = now.mono_ms;
        let links = self.node.federation_links();
        let list: Vec<Value> = self
            .settings
            .federation
            .iter()
            .map(|f| {
                let node = NodeId::from_public_key(&f.key);
                let l = links.iter().find(|l| l.node == node);
                let c = l.map(|l| l.counters.clone()).unwrap_or_default();
                json!({"domain": f.policy.domain, "address": f.address, "node": node.to_string(),
                    "state": if l.is_some() { "up" } else { "connecting" },
                    "last_handshake_secs": l.map(|l| now.saturating_sub(l.established_ms) / 1000),
                    "envelopes_in": c.envelopes_in, "bytes_in": c.bytes_in, "envelopes_out": c.envelopes_out,
                    "quota_drops": c.quota_drops, "refused_class": c.refused_class, "refused_spoofed": c.refused_spoofed})
            })
            .collect();
        json!({"ok": true, "federation": list})
    }

    fn peers(&self, now: Timestamp) -> Value {
        let now = now.mono_ms;
        let links: Vec<Value> = self
            .node
            .links()
            .into_iter()
            .map(|l| {
                json!({"node": l.node.to_string(), "name": l.name, "address": l.addr.to_string(), "state": "up",
                "initiator": l.initiator, "up_secs": now.saturating_sub(l.established_ms) / 1000,
                "last_rx_secs": now.saturating_sub(l.last_rx_ms) / 1000, "rx": l.rx, "tx": l.tx})
            })
            .collect();
        let configured: Vec<Value> = self
            .node
            .peers()
            .into_iter()
            .map(|p| {
                json!({"address": p.addr.to_string(), "pinned": p.pin.map(|n| n.to_string()),
                "linked": p.linked.map(|n| n.to_string()),
                "state": if p.linked.is_some() { "up" } else { "connecting" }})
            })
            .collect();
        let discovered: Vec<Value> = self
            .node
            .discovered_peers()
            .into_iter()
            .map(|d| {
                json!({"node": d.node.to_string(), "address": d.addr.to_string(),
                "seen_secs": d.age_ms / 1000, "linked": self.node.is_linked(&d.node)})
            })
            .collect();
        json!({"ok": true, "links": links, "configured": configured, "discovered": discovered})
    }

    fn send(&mut self, req: &Value, now: Timestamp) -> Value {
        let Some(to) = req.get("to").and_then(Value::as_str) else {
            return error("send needs \"to\"");
        };
        let Some(text) = req.get("text").and_then(Value::as_str) else {
            return error("send needs \"text\"");
        };
        if text.len() > MAX_TEXT {
            return error(format!("message of {} bytes is larger than the maximum of {MAX_TEXT}", text.len()));
        }
        let ttl = req.get("ttl").and_then(Value::as_u64).map(|t| t.min(u32::MAX as u64) as u32);
        let hops = req.get("hops").and_then(Value::as_u64).map(|h| h.min(255) as u8);
        let to = match self.resolve_to(to) {
            Ok(t) => t,
            Err(e) => return error(e),
        };
        match self.node.send_direct(now, to, text.as_bytes(), ttl, hops) {
            Ok(id) => {
                if !self.make_durable(&id) {
                    return error("could not write the message to the state directory; not sent");
                }
                info!("queued message {id} to {to}");
                json!({"ok": true, "id": id.to_string(), "to": to.to_string(), "linked": self.node.is_linked(&to)})
            }
            Err(e) => error(e.to_string()),
        }
    }

    fn peer_cmd(&mut self, req: &Value, now: Timestamp) -> Value {
        let action = req.get("action").and_then(Value::as_str).unwrap_or("");
        let Some(address) = req.get("address").and_then(Value::as_str) else {
            return error("peer add/remove needs \"address\" (host:port)");
        };
        let addr = match resolve(address) {
            Ok(a) => a,
            Err(e) => return error(e),
        };
        match action {
            "add" => {
                let pin = match req.get("key").and_then(Value::as_str) {
                    None | Some("") => None,
                    Some(k) => match crate::config::parse_key(k) {
                        Some(k) => Some(k),
                        None => return error("key must be the peer's 64-hex-digit public key"),
                    },
                };
                let spec = PeerSpec { addr, pin, federation: None };
                if !self.node.add_peer(spec.clone(), now) {
                    return error(format!(
                        "at most {} peers; remove one first",
                        meshpost_proto::node::MAX_STATIC_PEERS
                    ));
                }
                self.extra_peers.retain(|p| p.addr != addr);
                self.extra_peers.push(spec);
                info!("peer {addr} added at runtime");
                json!({"ok": true, "added": addr.to_string()})
            }
            "remove" => {
                self.extra_peers.retain(|p| p.addr != addr);
                if self.node.remove_peer(addr) {
                    info!("peer {addr} removed at runtime");
                    json!({"ok": true, "removed": addr.to_string()})
                } else {
                    error(format!("{addr} is not a configured peer"))
                }
            }
            other => error(format!("unknown peer action '{other}' (add, remove)")),
        }
    }

    fn metrics(&self) -> String {
        use std::fmt::Write;
        use std::sync::atomic::Ordering::Relaxed;
        let mut s = String::new();
        for (name, help, v) in self.node.metrics().list() {
            let _ = writeln!(
                s,
                "# HELP meshpost_{name}_total {help}\n# TYPE meshpost_{name}_total counter\nmeshpost_{name}_total {v}"
            );
        }
        let st = self.node.store();
        let gauges = [
            ("links", "established links", self.node.links().len() as u64),
            ("store_envelopes", "envelopes in the store", st.len() as u64),
            ("store_bytes", "bytes in the store", st.bytes() as u64),
            ("inbox_messages", "messages in the inbox", self.inbox.len() as u64),
            ("inbox_bytes", "message bytes in the inbox", self.inbox.bytes() as u64),
            (
                "inbox_full",
                "1 while the inbox refuses new messages (all unread)",
                self.inbox_full_since.is_some() as u64,
            ),
            ("delivered_ids", "ids of delivered messages remembered for dedup", self.node.delivered_ids().len() as u64),
            ("known_nodes", "nodes whose keys are known", self.node.cards().count() as u64),
            ("routes", "destinations with a route", self.node.routes().len() as u64),
            ("control_clients", "connected control clients", self.stats.clients.load(Relaxed) as u64),
        ];
        for (name, help, v) in gauges {
            let _ = writeln!(s, "# HELP meshpost_{name} {help}\n# TYPE meshpost_{name} gauge\nmeshpost_{name} {v}");
        }
        let mut fed = meshpost_proto::federation::Counters::default();
        for l in self.node.federation_links() {
            fed.add(&l.counters);
        }
        let counters = [
            (
                "control_refused_access",
                "control clients refused by SO_PEERCRED",
                self.stats.refused_access.load(Relaxed) as u64,
            ),
            (
                "control_refused_busy",
                "control clients refused by max_clients",
                self.stats.refused_busy.load(Relaxed) as u64,
            ),
            (
                "control_bad_requests",
                "malformed, oversized or timed-out requests",
                self.stats.bad_requests.load(Relaxed) as u64,
            ),
            ("udp_send_errors", "datagrams the socket refused", self.send_errors),
            ("persist_errors", "failed writes to the state directory", self.persist_errors),
            ("log_dropped", "log lines syslog did not accept", log::dropped()),
            ("federation_envelopes_in", "envelopes accepted from federation peers", fed.envelopes_in),
            ("federation_bytes_in", "bytes accepted from federation peers", fed.bytes_in),
            ("federation_envelopes_out", "envelopes sent to federation peers", fed.envelopes_out),
            ("federation_quota_drops", "envelopes from federation peers over their quota", fed.quota_drops),
            (
                "federation_refused",
                "envelopes from federation peers refused by class or as spoofed",
                fed.refused_class + fed.refused_spoofed,
            ),
            ("mdns_sent", "mDNS packets sent", self.discovery.stats.sent),
            ("mdns_received", "mDNS packets received", self.discovery.stats.received),
            ("mdns_malformed", "mDNS packets that did not parse", self.discovery.stats.malformed),
            ("mdns_announcements", "meshpost announcements heard over mDNS", self.discovery.stats.announcements),
        ];
        for (name, help, v) in counters {
            let _ = writeln!(
                s,
                "# HELP meshpost_{name}_total {help}\n# TYPE meshpost_{name}_total counter\nmeshpost_{name}_total {v}"
            );
        }
        s
    }
}

/// The public keys of an identity as the `identity` command shows them.
pub fn identity_json(id: &meshpost_proto::identity::Identity, name: &str, domain: &str) -> Value {
    use meshpost_proto::crypto::{kdf, to_hex};
    json!({"ok": true, "node_id": id.node_id().to_string(),
        "public_key": to_hex(&id.public_key()),
        "x25519": to_hex(&id.e2e_public()),
        "kem_fingerprint": to_hex(&kdf(b"mp-kemfp", &[], &[id.kem_public()])[..8]),
        "name": name, "domain": domain})
}

/// Keeps at most `max` history entries, none created before `now - age`.
fn prune(h: &mut std::collections::VecDeque<Value>, max: usize, age: u64, now: u64) {
    h.retain(|m| m["created"].as_u64().unwrap_or(0) + age > now);
    while h.len() > max {
        h.pop_front();
    }
}

/// Appends a message's id to delivered.log, so it stays a delivery after
/// its inbox file is gone.
fn record_delivered(state: &State, m: &Message) -> std::io::Result<()> {
    let id = EnvelopeId::parse(&m.id).ok_or_else(|| std::io::Error::other("inbox message id is not an envelope id"))?;
    let from = NodeId::parse(&m.from).unwrap_or(NodeId([0; 16]));
    state.append_delivered(&id, m.expires, &from)
}

/// Loads envelopes, delivered ids and cards from the state directory. The
/// delivered ids are those in delivered.log and those in the inbox.
fn restore(node: &mut Node, state: &State, inbox: &Inbox, now: Timestamp) -> usize {
    let now_s = now.unix_s();
    let mut n = 0;
    let (delivered, problem) = state.delivered(now_s);
    if let Some(p) = problem {
        warn!("{p}");
    }
    for (id, exp, origin) in delivered {
        node.restore_delivered(id, origin, exp);
    }
    for m in inbox.list() {
        if let Some(id) = EnvelopeId::parse(&m.id)
            && m.expires > now_s
        {
            node.restore_delivered(id, NodeId::parse(&m.from).unwrap_or(NodeId([0; 16])), m.expires);
        }
    }
    for (path, bytes) in state.cards() {
        match bytes.map_err(|e| e.to_string()).and_then(|b| node.restore_card(&b).map_err(|e| e.to_string())) {
            Ok(_) => {}
            Err(e) => {
                warn!("card {} unreadable ({e}); moved aside as .bad", path.display());
                state.quarantine(&path);
            }
        }
    }
    for (path, bytes) in state.envelopes() {
        let bytes = match bytes {
            Ok(b) => b,
            Err(e) => {
                warn!("stored envelope {} unreadable ({e}); moved aside as .bad", path.display());
                state.quarantine(&path);
                continue;
            }
        };
        match node.restore_envelope(&bytes, now) {
            Ok(id) => {
                n += 1;
                let expected = path.file_stem().and_then(|s| s.to_str()).and_then(EnvelopeId::parse);
                if expected != Some(id) {
                    let _ = state.write_envelope(&id, &bytes);
                    state.remove_file(&path);
                }
            }
            Err(e) if e.is_expired() => state.remove_file(&path),
            Err(e) => {
                warn!("stored envelope {} refused ({e}); moved aside as .bad", path.display());
                state.quarantine(&path);
            }
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_addresses_resolve_with_ipv6_zones() {
        assert_eq!(resolve("127.0.0.1:4849").unwrap(), "127.0.0.1:4849".parse().unwrap());
        assert_eq!(resolve("[::1]:5").unwrap(), "[::1]:5".parse().unwrap());
        let lo = interface_index("lo").unwrap();
        match resolve("[fe80::1%lo]:4849").unwrap() {
            SocketAddr::V6(v6) => {
                assert_eq!(v6.scope_id(), lo);
                assert_eq!(v6.port(), 4849);
            }
            other => panic!("{other}"),
        }
        assert_eq!(resolve("[fe80::1%7]:1").map(|a| matches!(a, SocketAddr::V6(v) if v.scope_id() == 7)), Ok(true));
        assert!(resolve("[fe80::1%nosuchif0]:1").unwrap_err().contains("no interface"));
        assert!(resolve("nonsense").is_err());
    }
}
