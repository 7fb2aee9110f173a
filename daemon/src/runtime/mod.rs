//! The daemon: real sockets, real time and the state directory around the
//! sans-IO [`Node`].
//!
//! One tokio current-thread loop waits for a datagram, a control request, a
//! signal or the node's next timer, hands the event to the node, and then
//! carries out the node's actions (effects.rs), reporting every write back
//! to the node, which acknowledges nothing before it is durable.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use meshpost_proto::envelope::EnvelopeId;
use meshpost_proto::identity::NodeId;
use meshpost_proto::node::{Action, Node, PeerSpec};
use meshpost_proto::outbox::SentState;
use meshpost_proto::time::Timestamp;
use rand_core::OsRng;
use serde_json::{Value, json};
use tokio::net::{UdpSocket, UnixListener};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{broadcast, mpsc};

use crate::config::{Overrides, Settings};
use crate::control::protocol::{
    ChannelAction, ContactAction, InboxAction, MAX_ANSWER, PeerAction, Request, StoreAction,
};
use crate::control::{self, Incoming, Policy, Reply, Stats, error};
use crate::discovery::{self, Discovery};
use crate::inbox::{Inbox, InboxError, Message};
use crate::net::names::{Answer, Lookup, Names};
use crate::net::udp::{bind_udp, normalize, resolve_peers};
use crate::persist::State;
use crate::persist::inbox_files::PartInfo;
use crate::persist::record::{Table, delivered_payload};
use crate::persist::segments::Log;
use crate::{debug, error, info, log, notice, warn};
use meshpost_proto::filepart;

mod channels;
mod commands;
mod effects;
mod files;
mod restore;
pub mod selftest;
mod views;

use channels::{Channel, prune};
use restore::restore;
pub use views::identity_json;
use views::page;

/// Datagrams taken from the socket in one turn of the loop, before the
/// turn's writes are committed together.
const MAX_BATCH: usize = 64;

/// Longest sleep of the event loop when no timer is due sooner.
const MAX_SLEEP_MS: u64 = 5_000;
/// How often the one-line traffic summary is logged (per-message events
/// are debug lines, so an admin's log ring is not flooded).
const SUMMARY_MS: u64 = 3_600_000;

/// Events buffered per subscriber before it is marked as dropping. A
/// loaded daemon delivers the envelopes of several offer windows in a few
/// turns of its loop without the subscriber's task running between them
/// (with 256, a bench subscriber of a receiver taking windows of 256 ids
/// lost 16 to 21 of 10,000 events). The slots are allocated up front, 40
/// bytes each, and hold shared lines.
pub const SUBSCRIBER_BUFFER: usize = 1024;
/// The same for a channel's subscribers: a channel's messages come at
/// most at its origins' paced rate (5 a second each), and each of up to
/// 64 channels has its own slots.
pub const CHANNEL_SUBSCRIBER_BUFFER: usize = 256;

/// Largest text a local `send` accepts.
pub const MAX_TEXT: usize = 60 * 1024;
/// Refused oversized files remembered for logging once each.
pub const MAX_REFUSED_FILES: usize = 256;

/// Most channels one node can be in.
pub const MAX_CHANNELS: usize = 64;

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

/// Defaults that depend on the router, for what UCI leaves unset (there is
/// no uci-defaults script: its `uci commit` would strip the shipped
/// config's comments). The name: the host name, unless it is the stock
/// "OpenWrt" that every new router has, then `mp-` and the first 8 hex
/// digits of the node id, so no two stock routers share a name. The
/// interface: `bat0` when batman-adv has one.
fn router_defaults(s: &mut Settings, node: NodeId, log: bool) {
    if s.node.name.is_empty() {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        s.node.name = default_name(&host, node);
    }
    if s.interfaces.is_empty() && std::path::Path::new("/sys/class/net/bat0").exists() {
        if log {
            notice!("no interface configured: discovering neighbours on bat0 (batman-adv)");
        }
        s.interfaces.push("bat0".into());
    }
}

/// The host name as a node name, or `mp-<8 hex of the node id>` for a
/// stock, empty or local host name.
fn default_name(host: &str, node: NodeId) -> String {
    let host: String = host.trim().chars().filter(|c| !c.is_control()).take(32).collect();
    if host.is_empty() || host.eq_ignore_ascii_case("openwrt") || host == "localhost" {
        format!("mp-{}", &node.to_string()[..8])
    } else {
        host
    }
}

/// A seed for the node's generator from the operating system.
fn os_seed() -> [u8; 32] {
    use rand_core::RngCore;
    let mut seed = [0u8; 32];
    OsRng.fill_bytes(&mut seed);
    seed
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
    /// Stored envelopes, the inbox's entries and delivered ids.
    log: Log,
    /// Writes the node waits for, made durable by the next commit.
    uncommitted: Vec<EnvelopeId>,
    /// Events for subscribers about what the next commit makes durable.
    after_commit: Vec<Arc<str>>,
    /// Debug lines about deliveries, logged once the commit has them.
    delivered_lines: Vec<String>,
    /// The inbox in memory changed since the last commit.
    inbox_changed: bool,
    /// Since when commits of the state log fail (logged once per episode).
    log_failing: Option<u64>,
    /// A passing error reading stored envelopes back was logged (one line
    /// per episode; a read that works ends it).
    read_back_failing: bool,
    inbox: Inbox,
    settings: Settings,
    config_path: Option<PathBuf>,
    overrides: Overrides,
    /// Peers added with `peer add` (address as given, pin).
    extra_peers: Vec<(String, Option<[u8; 32]>)>,
    /// Host names of peers, resolved off the event loop.
    names: Names,
    /// What became of the messages this node sent (STATE/outbox.log).
    outbox: crate::persist::outbox::OutboxLog,
    /// Contacts the user added, with the names given (STATE/contacts).
    contacts: crate::persist::contacts::Contacts,
    /// When the next summary line is due, and the counters at the last one.
    summary: (u64, meshpost_proto::node::Metrics, usize),
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
    /// Set while a batch of sends is handled: `make_durable` leaves the
    /// commit to the end of the batch and notes the id here.
    batch_sent: Option<Vec<EnvelopeId>>,
    /// Set while deliveries cannot be stored: the inbox is full of unread
    /// mail or its files cannot be written (logged once per episode).
    inbox_full_since: Option<u64>,
    /// Files refused as larger than the whole inbox (logged once each;
    /// cleared when it reaches [`MAX_REFUSED_FILES`]).
    refused_files: std::collections::BTreeSet<String>,
    /// Received files discarded because they failed their hash check.
    files_failed: u64,
    /// Messages and files this node sent since it started.
    messages_sent: u64,
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
    Policy {
        group_gid,
        max_clients: s.max_clients,
        request_timeout: Duration::from_secs(s.control_timeout),
        file_max: s.file_max,
    }
}

impl Daemon {
    /// Runs the daemon until SIGTERM/SIGINT. Errors are start-up failures.
    pub async fn run(mut settings: Settings, config_path: Option<PathBuf>, overrides: Overrides) -> Result<(), String> {
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
        router_defaults(&mut settings, identity.node_id(), true);
        let mut node = Node::new(identity, settings.node.clone(), os_seed(), now);
        let (mut log, problems) = Log::open(&state.dir().join("log"))?;
        for p in problems {
            warn!("{p}");
        }
        let (moved, problems) = crate::persist::migrate::migrate(&state, &mut log, now.unix_s())?;
        for p in problems {
            warn!("{p}");
        }
        if moved.any() {
            notice!(
                "moved {} stored envelopes, {} inbox messages and {} delivered ids into the state log",
                moved.envelopes,
                moved.inbox,
                moved.delivered
            );
        }
        let (inbox, problems) = Inbox::load(&mut log, settings.inbox_max, settings.inbox_max_bytes);
        for p in problems {
            warn!("{p}");
        }
        let restored = restore(&mut node, &mut log, &state, &inbox, now);
        if let Err(e) = log.commit() {
            warn!("cannot write the state log at start ({e}); set-aside entries stay in it");
        }
        let (mut outbox, bad) = crate::persist::outbox::OutboxLog::load(state.dir());
        if bad > 0 {
            warn!("{}: {bad} unreadable lines skipped", state.dir().join("outbox.log").display());
        }
        // Messages of ours still stored whose queued state has no line in
        // the file (persist/outbox.rs), in the order they were sent (the
        // store's admission order: restore.rs takes them as written).
        for (_, id) in node.store().ids_after(0, None, usize::MAX) {
            if let Some(e) = node.store().get(&id).filter(|e| e.sent && outbox.get(&id).is_none()) {
                outbox.restore_queued(id, NodeId(e.head.dest().id), e.head.created());
            }
        }
        for r in outbox.newest_first().filter(|r| !r.state.is_final()) {
            node.track_sent(r.id, r.to, r.state);
        }
        let (contacts, bad) = crate::persist::contacts::Contacts::load(state.dir());
        if bad > 0 {
            warn!("{}: {bad} unreadable lines skipped", state.dir().join("contacts").display());
        }
        for (id, name) in contacts.iter() {
            if !node.mark_contact(*id) {
                warn!("contact {id} ({name}) has no card file any more: add its card again");
            }
        }
        for id in contacts.blocked() {
            node.set_blocked(*id, true);
        }
        let (udp, udp_send, udp_v6) =
            bind_udp(settings.port).map_err(|e| format!("cannot bind UDP port {}: {e}", settings.port))?;
        let listener = bind_control(&settings.socket)?;
        let mut channel_ids: Vec<(String, [u8; 16])> =
            settings.channels.iter().map(|c| (c.name.clone(), c.key.id())).collect();
        channel_ids.extend(state.channels().into_iter().map(|(n, k)| (n, k.id())));
        let (names_tx, mut names_rx) = mpsc::channel::<Answer>(64);
        let mut names = Names::new(names_tx);
        for p in resolve_peers(&settings, &channel_ids, &mut names, false) {
            if !node.add_peer(p.clone(), now) {
                warn!("peer {} not used: at most {} peers", p.addr, meshpost_proto::node::MAX_STATIC_PEERS);
            }
        }
        let (events, _) = broadcast::channel(SUBSCRIBER_BUFFER);
        let policy = Arc::new(Mutex::new(policy_of(&settings)));
        let stats = Arc::new(Stats::default());
        let (tx, mut rx) = mpsc::channel::<Incoming>(64);
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
            settings.node.name,
            settings.port,
            settings.socket.display(),
            settings.state_dir.display()
        );
        let mut d = Daemon {
            node,
            state,
            log,
            uncommitted: Vec::new(),
            after_commit: Vec::new(),
            delivered_lines: Vec::new(),
            inbox_changed: false,
            log_failing: None,
            read_back_failing: false,
            inbox,
            settings,
            config_path,
            overrides,
            extra_peers: Vec::new(),
            names,
            outbox,
            contacts,
            summary: (now.mono_ms + SUMMARY_MS, Default::default(), 0),
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
            batch_sent: None,
            inbox_full_since: None,
            refused_files: Default::default(),
            files_failed: 0,
            messages_sent: 0,
            discovery,
            channels: Vec::new(),
        };
        d.apply_channels();
        d.drop_stale_files(timestamp().unix_s());
        let changes = match crate::net::netlink::Changes::open() {
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
            if now >= d.summary.0 {
                d.log_summary(now);
            }
            // Both are on the monotonic clock. Wake at least every few
            // seconds anyway, so a wall-clock step is seen soon by the
            // envelope expiry timers (the only ones on unix time).
            let next = [d.node.poll_timeout(), d.discovery.next_timer()].into_iter().flatten().min();
            let wait = next.map_or(MAX_SLEEP_MS, |t| t.saturating_sub(now)).min(MAX_SLEEP_MS);
            let mut datagrams = false;
            tokio::select! {
                r = d.udp.recv_from(&mut buf) => {
                    datagrams = true;
                    if let Ok((n, from)) = r {
                        d.node.handle_datagram(timestamp(), normalize(from), &buf[..n]);
                        // Whatever else is waiting joins this turn, so its
                        // writes share one commit.
                        for _ in 1..MAX_BATCH {
                            let Ok((n, from)) = d.udp.try_recv_from(&mut buf) else { break };
                            d.node.handle_datagram(timestamp(), normalize(from), &buf[..n]);
                        }
                    }
                }
                _ = tokio::time::sleep(Duration::from_millis(wait)) => {
                    d.node.handle_timeout(timestamp());
                }
                Some(p) = disc_rx.recv() => {
                    let now = timestamp();
                    let heard = d.discovery.on_packet(p, now.mono_ms);
                    for node in heard.gone {
                        if d.node.discovery_goodbye(&node, now) {
                            info!("discovery: {node} said goodbye");
                        }
                    }
                    for (addr, node, fp) in heard.found {
                        d.node.discovered(addr, node, fp, now);
                    }
                }
                Some(req) = rx.recv() => {
                    // Sends waiting from other clients join this turn and
                    // share its commit; each is answered after it.
                    let mut batch = vec![req];
                    while batch.len() < MAX_BATCH {
                        match rx.try_recv() {
                            Ok(r) => batch.push(r),
                            Err(_) => break,
                        }
                    }
                    d.answer(batch);
                }
                _ = async {
                    match &changes {
                        Some(c) => c.changed().await,
                        None => std::future::pending().await,
                    }
                } => d.discovery.rescan_soon(),
                Some(answer) = names_rx.recv() => {
                    if let Err(e) = &answer.1 {
                        warn!("peer {}: {e}; retried at the next reload", answer.0);
                    }
                    if d.names.answer(answer) {
                        d.apply_peers(timestamp(), true);
                    }
                }
                _ = hup.recv() => {
                    let _ = d.reload();
                }
                _ = term.recv() => break,
                _ = int.recv() => break,
            }
            d.drain();
            // The control clients' tasks (requests, answers, subscribers'
            // events) get a turn after a turn of datagrams: while they
            // kept coming, the loop took turn after turn without one, and
            // a client of a receiver checking a window of 256 was answered
            // only when the whole window was done (about a second under
            // qemu-mipsel). Not after every turn: after a batch of
            // requests that made the batches of a pipelining client
            // smaller, and two nodes made a quarter fewer messages a
            // second.
            if datagrams || !d.events.is_empty() || d.channels.iter().any(|c| !c.tx.is_empty()) {
                tokio::task::yield_now().await;
            }
        }
        d.discovery.goodbye();
        notice!("stopping: {} envelopes kept in {}", d.node.store().len(), d.state.dir().display());
        let _ = std::fs::remove_file(&d.settings.socket);
        Ok(())
    }

    fn reload(&mut self) -> Result<(), String> {
        let mut s = match Settings::load(self.config_path.as_deref(), &self.overrides) {
            Ok(s) => s,
            Err(e) => {
                error!("reload failed, keeping the running configuration: {e}");
                return Err(e.to_string());
            }
        };
        if s.empty {
            // A truncated or emptied file would drop every peer and channel.
            let e = "the configuration file holds no sections; running configuration kept";
            error!("reload refused: {e}");
            return Err(e.into());
        }
        for w in &s.warnings {
            warn!("{w}");
        }
        if s.port != self.settings.port || s.state_dir != self.settings.state_dir || s.socket != self.settings.socket {
            warn!("reload: port, state_dir and socket changes take effect only after a restart");
        }
        log::set_level(s.log_level);
        router_defaults(&mut s, self.node.node_id(), false);
        let now = timestamp();
        self.node.set_config(s.node.clone(), now);
        self.names.refresh();
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
        let peers = self.apply_peers(now, false);
        notice!("configuration reloaded: {peers} peers configured, {} links kept", self.node.links().len());
        Ok(())
    }

    /// One info line an hour: what moved since the last one.
    fn log_summary(&mut self, now: u64) {
        let m = self.node.metrics().clone();
        let (_, last, last_cards) = &self.summary;
        let cards = self.node.cards().count();
        info!(
            "last hour: {} messages delivered here, {} envelopes relayed, {} acknowledgements, {} handshakes; links {}, known nodes {} ({:+}), store {} envelopes, inbox {}",
            m.envelopes_delivered.saturating_sub(last.envelopes_delivered),
            m.envelopes_forwarded.saturating_sub(last.envelopes_forwarded),
            m.acks_in.saturating_sub(last.acks_in),
            m.handshakes_completed.saturating_sub(last.handshakes_completed),
            self.node.links().iter().filter(|l| l.confirmed).count(),
            cards,
            cards as i64 - *last_cards as i64,
            self.node.store().len(),
            self.inbox.len()
        );
        self.summary = (now + SUMMARY_MS, m, cards);
        self.drop_stale_files(timestamp().unix_s());
    }

    /// Gives the node the configured and runtime-added peers whose
    /// addresses are known now (names resolve off the loop; a later answer
    /// applies them again). Returns how many.
    pub(super) fn apply_peers(&mut self, now: Timestamp, quiet: bool) -> usize {
        let ids: Vec<(String, [u8; 16])> = self.channels.iter().map(|c| (c.name.clone(), c.id)).collect();
        let mut peers = resolve_peers(&self.settings, &ids, &mut self.names, quiet);
        for (address, pin) in &self.extra_peers {
            if let Lookup::Ready(addr) = self.names.lookup(address) {
                peers.push(PeerSpec { addr, pin: *pin, federation: None });
            }
        }
        self.node.set_peers(&peers, now);
        peers.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stock_routers_get_unique_names_and_named_ones_keep_theirs() {
        let n = NodeId([0xab; 16]);
        assert_eq!(default_name("OpenWrt\n", n), "mp-abababab");
        assert_eq!(default_name("", n), "mp-abababab");
        assert_eq!(default_name("ffhh-kiosk-3\n", n), "ffhh-kiosk-3");
        assert_eq!(default_name(&"x".repeat(40), n).len(), 32, "within the name limit");
    }
}
