//! Read-only answers: status, peers, graph, federation and metrics.

use super::*;

/// The public keys of an identity as the `identity` command shows them.
pub fn identity_json(id: &meshpost_proto::identity::Identity, name: &str, domain: &str) -> Value {
    use meshpost_proto::crypto::{kdf, to_hex};
    json!({"ok": true, "node_id": id.node_id().to_string(),
        "public_key": to_hex(&id.public_key()),
        "x25519": to_hex(&id.e2e_public()),
        "kem_fingerprint": to_hex(&kdf(b"mp-kemfp", &[], &[id.kem_public()])[..8]),
        "name": name, "domain": domain})
}
/// One page of `items` from `offset`: at most `limit` items and at most
/// [`MAX_ANSWER`] bytes of JSON, but always one item if any is left.
/// Returns the page, the total, and the offset of the next page.
pub(super) fn page(
    items: Vec<Value>,
    offset: Option<usize>,
    limit: Option<usize>,
) -> (Vec<Value>, usize, Option<usize>) {
    let total = items.len();
    let start = offset.unwrap_or(0).min(total);
    let limit = limit.unwrap_or(usize::MAX).max(1);
    let (mut out, mut bytes) = (Vec::new(), 0);
    for v in items.into_iter().skip(start).take(limit) {
        let n = v.to_string().len() + 1;
        if !out.is_empty() && bytes + n > MAX_ANSWER {
            break;
        }
        bytes += n;
        out.push(v);
    }
    let end = start + out.len();
    (out, total, (end < total).then_some(end))
}

impl Daemon {
    pub(super) fn routes(&self) -> Value {
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

    /// What the store holds, bounded: the first 1000 by id.
    pub(super) fn store_list(&self) -> Value {
        let list: Vec<Value> = self
            .node
            .store()
            .iter()
            .take(1000)
            .map(|(id, e)| {
                json!({"id": id.to_string(), "kind": format!("{:?}", e.head.kind()).to_lowercase(),
                "origin": e.head.origin_id().to_string(), "dest": meshpost_proto::crypto::to_hex(&e.head.dest().id),
                "expires": e.head.expires_at(), "hops_left": e.head.hops_left(), "bytes": e.head.len(), "local": e.local})
            })
            .collect();
        json!({"ok": true, "envelopes": list})
    }

    pub(super) fn store_summary(&self) -> Value {
        let st = self.node.store();
        let l = st.limits();
        let local = st.iter().filter(|(_, e)| e.local).count();
        json!({"ok": true, "envelopes": st.len(), "bytes": st.bytes(), "local": local,
            "memory_bytes": st.hot_bytes(), "max_memory": l.max_hot_bytes,
            "max_bytes": l.max_bytes, "max_count": l.max_count,
            "max_bytes_per_origin": l.max_bytes_per_origin, "max_bytes_per_recipient": l.max_bytes_per_recipient,
            "next_expiry": st.next_expiry()})
    }

    pub(super) fn status(&self) -> Value {
        let c = self.node.config();
        json!({"ok": true, "version": env!("CARGO_PKG_VERSION"), "node_id": self.node.node_id().to_string(),
            "name": c.name, "domain": c.domain, "uptime": self.started.elapsed().as_secs(),
            "port": self.settings.port, "links": self.node.links().iter().filter(|l| l.confirmed).count(), "peers_configured": self.node.peers().len(),
            "store": {"envelopes": self.node.store().len(), "bytes": self.node.store().bytes()},
            "inbox": {"messages": self.inbox.len(), "unread": self.inbox.unread(), "bytes": self.inbox.bytes(),
                "full": self.inbox_full_since.is_some(), "max_messages": self.settings.inbox_max,
                "max_bytes": self.settings.inbox_max_bytes},
            "known_nodes": self.node.cards().count(), "routes": self.node.routes().len(),
            "interfaces": self.discovery.active(), "channels": self.channels.len(),
            "federation_links": self.node.federation_links().len(),
            "messages": {"delivered": self.node.metrics().envelopes_delivered, "sent": self.messages_sent,
                "relayed": self.node.metrics().envelopes_forwarded}})
    }

    /// The known topology as Graphviz DOT, from our links and the
    /// neighbour lists in every known announce (as batadv-vis does).
    pub(super) fn graph(&self) -> Value {
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
        let mut dot = String::from("graph meshpost {\n");
        for (id, name) in &nodes {
            let style = if *id == me { ", style=bold" } else { "" };
            let _ = writeln!(dot, "  \"{id}\" [label=\"{}\"{style}];", label(id, name));
        }
        for (a, b) in &edges {
            let _ = writeln!(dot, "  \"{a}\" -- \"{b}\";");
        }
        dot.push_str("}\n");
        // The same graph as data, for pictures drawn by a client (LuCI).
        let node_list: Vec<Value> =
            nodes.iter().map(|(id, name)| json!({"id": id.to_string(), "name": name, "self": *id == me})).collect();
        let edge_list: Vec<Value> = edges.iter().map(|(a, b)| json!([a.to_string(), b.to_string()])).collect();
        json!({"ok": true, "dot": dot, "nodes": node_list, "edges": edge_list})
    }

    /// Federation peers: configured, with their state and traffic.
    pub(super) fn federation(&self, now: Timestamp) -> Value {
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
                // Up only when the peer confirmed it; otherwise why not.
                let state = match (l.map(|l| l.confirmed), self.node.refusal(&node)) {
                    (Some(true), _) => "up".to_string(),
                    (Some(false), _) => "confirming".to_string(),
                    (None, Some(r)) if r.starts_with("refused by peer") => r.to_string(),
                    (None, Some(r)) => format!("refused: {r}"),
                    (None, None) => "connecting".to_string(),
                };
                json!({"domain": f.policy.domain, "address": f.address, "node": node.to_string(),
                    "state": state,
                    "last_handshake_secs": l.map(|l| now.saturating_sub(l.established_ms) / 1000),
                    "envelopes_in": c.envelopes_in, "bytes_in": c.bytes_in, "envelopes_out": c.envelopes_out,
                    "quota_drops": c.quota_drops, "refused_class": c.refused_class, "refused_spoofed": c.refused_spoofed,
                    "backlog": l.map_or(0, |l| l.backlog), "delayed": c.delayed,
                    "out_rate": f.policy.out_rate, "out_burst": f.policy.out_burst})
            })
            .collect();
        json!({"ok": true, "federation": list})
    }

    pub(super) fn peers(&self, now: Timestamp) -> Value {
        let now = now.mono_ms;
        let links: Vec<Value> = self
            .node
            .links()
            .into_iter()
            .map(|l| {
                json!({"node": l.node.to_string(), "name": l.name, "address": l.addr.to_string(), "state": "up",
                "initiator": l.initiator, "confirmed": l.confirmed, "up_secs": now.saturating_sub(l.established_ms) / 1000,
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

    pub(super) fn metrics(&self) -> String {
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
        let fed_links = self.node.federation_links();
        let sessions = self.node.session_counts();
        let gauges = [
            (
                "federation_backlog",
                "envelopes and cards waiting for federation out_rate tokens",
                fed_links.iter().map(|l| l.backlog as u64).sum(),
            ),
            (
                "links",
                "links up (confirmed by both sides)",
                self.node.links().iter().filter(|l| l.confirmed).count() as u64,
            ),
            ("store_envelopes", "envelopes in the store", st.len() as u64),
            ("store_bytes", "bytes in the store", st.bytes() as u64),
            ("store_memory_bytes", "bytes of stored envelopes held in memory (store_memory)", st.hot_bytes() as u64),
            ("inbox_messages", "messages in the inbox", self.inbox.len() as u64),
            ("inbox_bytes", "message bytes in the inbox", self.inbox.bytes() as u64),
            (
                "inbox_files_partial",
                "files in the inbox still waiting for parts",
                self.inbox.files().iter().filter(|f| !f.complete).count() as u64,
            ),
            (
                "inbox_full",
                "1 while the inbox refuses new messages (all unread)",
                self.inbox_full_since.is_some() as u64,
            ),
            ("delivered_ids", "ids of delivered messages remembered for dedup", self.node.delivered_ids().len() as u64),
            ("known_nodes", "nodes whose keys are known", self.node.cards().count() as u64),
            ("routes", "destinations with a route", self.node.routes().len() as u64),
            ("control_clients", "connected control clients", self.stats.clients.load(Relaxed) as u64),
            ("e2e_send_sessions", "recipients this node holds an end-to-end session with", sessions.0 as u64),
            ("e2e_recv_origins", "origins whose end-to-end sessions this node holds", sessions.1 as u64),
            ("e2e_recv_sessions", "end-to-end sessions held as a receiver", sessions.2 as u64),
            (
                "e2e_starts_kept",
                "starts of this node's end-to-end sessions kept in the state log to send again",
                self.log.count(Table::Start) as u64,
            ),
            ("state_log_bytes", "bytes in the state log's segment files", self.log.sizes().0),
            ("state_log_live_bytes", "bytes of live records in the state log", self.log.sizes().1),
            ("state_log_segments", "segment files of the state log", self.log.segments() as u64),
        ];
        for (name, help, v) in gauges {
            let _ = writeln!(s, "# HELP meshpost_{name} {help}\n# TYPE meshpost_{name} gauge\nmeshpost_{name} {v}");
        }
        let mut fed = meshpost_proto::federation::Counters::default();
        for l in self.node.federation_links() {
            fed.add(&l.counters);
        }
        let ls = self.log.stats();
        let counters = [
            ("state_log_commits", "commits of the state log (one fsync each)", ls.commits),
            (
                "state_log_failed_commits",
                "commits of the state log that failed (nothing of them acknowledged)",
                ls.failed_commits,
            ),
            ("state_log_written_bytes", "bytes written to the state log, compaction included", ls.bytes_written),
            ("state_log_compacted_bytes", "bytes the state log's compaction copied", ls.bytes_compacted),
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
            ("files_failed", "received files discarded: their parts did not match the file's hash", self.files_failed),
            ("log_dropped", "log lines syslog did not accept", log::dropped()),
            ("federation_envelopes_in", "envelopes accepted from federation peers", fed.envelopes_in),
            ("federation_bytes_in", "bytes accepted from federation peers", fed.bytes_in),
            ("federation_envelopes_out", "envelopes sent to federation peers", fed.envelopes_out),
            ("federation_quota_drops", "envelopes from federation peers over their quota", fed.quota_drops),
            ("federation_delayed", "envelopes that waited for federation out_rate tokens", fed.delayed),
            (
                "federation_refused",
                "envelopes from federation peers refused by class or as spoofed",
                fed.refused_class + fed.refused_spoofed,
            ),
            ("mdns_sent", "mDNS packets sent", self.discovery.stats.sent),
            ("mdns_received", "mDNS packets received", self.discovery.stats.received),
            ("mdns_malformed", "mDNS packets that did not parse", self.discovery.stats.malformed),
            ("mdns_announcements", "meshpost announcements heard over mDNS", self.discovery.stats.announcements),
            ("mdns_goodbyes", "meshpost goodbyes heard over mDNS", self.discovery.stats.goodbyes),
            ("mdns_own", "our own mDNS packets seen again through multicast loopback", self.discovery.stats.own),
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
