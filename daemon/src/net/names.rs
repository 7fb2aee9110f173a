//! Host names of configured peers, resolved off the event loop.
//!
//! `getaddrinfo` blocks, for many seconds when DNS is down (a router at
//! boot, a WAN outage). The event loop must never wait for it, or links,
//! timers and the control socket stall. So the loop only asks this cache:
//! an address that is an IP literal (or `fe80::1%mesh0`) is answered at
//! once; a host name is answered from the cache, and a name not in it is
//! looked up on a thread of its own whose answer comes back through a
//! channel (the loop then re-applies its peers). A name is looked up again
//! on every reload; until the new answer arrives the old one stays in use,
//! so a reload never drops a working peer for a DNS hiccup. The cache is
//! bounded (configured peers are at most 256). It decides nothing about
//! peers; udp.rs and the runtime do.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{SocketAddr, ToSocketAddrs};

use tokio::sync::mpsc;

use super::udp::resolve_literal;
use crate::config::split_host_port;

/// Most names remembered.
pub const MAX_NAMES: usize = 512;

/// A finished lookup: the name and its first address, or why not.
pub type Answer = (String, Result<SocketAddr, String>);

/// What the cache says about an address now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    Ready(SocketAddr),
    /// Being looked up; ask again when an answer arrives.
    Pending,
    Failed(String),
}

pub struct Names {
    cache: BTreeMap<String, Result<SocketAddr, String>>,
    pending: BTreeSet<String>,
    tx: mpsc::Sender<Answer>,
}

impl Names {
    pub fn new(tx: mpsc::Sender<Answer>) -> Names {
        Names { cache: BTreeMap::new(), pending: BTreeSet::new(), tx }
    }

    /// The address for `address` (`host:port`, `[v6]:port`, `ip%zone:port`).
    pub fn lookup(&mut self, address: &str) -> Lookup {
        match resolve_literal(address) {
            Some(Ok(a)) => return Lookup::Ready(a),
            Some(Err(e)) => return Lookup::Failed(e),
            None => {}
        }
        match self.cache.get(address) {
            Some(Ok(a)) => Lookup::Ready(*a),
            Some(Err(e)) if !self.pending.contains(address) => Lookup::Failed(e.clone()),
            _ => {
                self.start(address);
                Lookup::Pending
            }
        }
    }

    /// Looks every cached name up again (a reload); old answers stay in use
    /// until the new ones arrive.
    pub fn refresh(&mut self) {
        let names: Vec<String> = self.cache.keys().cloned().collect();
        for n in names {
            self.start(&n);
        }
    }

    /// Takes a finished lookup; true if it changed what the cache says.
    pub fn answer(&mut self, (name, result): Answer) -> bool {
        self.pending.remove(&name);
        if self.cache.len() >= MAX_NAMES && !self.cache.contains_key(&name) {
            return false;
        }
        let changed = self.cache.get(&name) != Some(&result);
        // A failed refresh keeps a working earlier answer.
        if result.is_err() && matches!(self.cache.get(&name), Some(Ok(_))) {
            return false;
        }
        self.cache.insert(name, result);
        changed
    }

    fn start(&mut self, address: &str) {
        if self.pending.contains(address) || self.pending.len() >= MAX_NAMES {
            return;
        }
        self.pending.insert(address.to_string());
        let (tx, name) = (self.tx.clone(), address.to_string());
        // A plain thread (tokio's blocking pool costs 50 KB of binary for
        // this one use). Bounded: at most MAX_NAMES lookups run at once.
        let spawned = std::thread::Builder::new().name("resolve".into()).spawn(move || {
            let result = blocking_resolve(&name);
            let _ = tx.blocking_send((name, result));
        });
        if spawned.is_err() {
            self.pending.remove(address);
        }
    }
}

/// The blocking lookup, run on a pool thread only.
fn blocking_resolve(address: &str) -> Result<SocketAddr, String> {
    let (host, port) = split_host_port(address).ok_or_else(|| format!("'{address}' is not host:port"))?;
    (host.as_str(), port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .next()
        .ok_or_else(|| format!("{host} has no address"))
}
