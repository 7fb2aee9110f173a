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

use std::collections::{BTreeSet, VecDeque};
use std::net::{SocketAddr, ToSocketAddrs};

use tokio::sync::mpsc;

use super::udp::resolve_literal;
use crate::config::split_host_port;

/// Most names remembered.
pub const MAX_NAMES: usize = 512;
/// Lookups running at once (each on its own thread); the rest wait.
pub const MAX_RUNNING: usize = 4;

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
    cache: meshpost_proto::SmallMap<String, Result<SocketAddr, String>>,
    /// Names asked for and not answered yet (running or waiting).
    pending: BTreeSet<String>,
    running: usize,
    waiting: VecDeque<String>,
    tx: mpsc::Sender<Answer>,
}

impl Names {
    pub fn new(tx: mpsc::Sender<Answer>) -> Names {
        Names {
            cache: meshpost_proto::SmallMap::new(),
            pending: BTreeSet::new(),
            running: 0,
            waiting: VecDeque::new(),
            tx,
        }
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
        if self.pending.remove(&name) {
            self.running = self.running.saturating_sub(1);
        }
        while self.running < MAX_RUNNING {
            let Some(next) = self.waiting.pop_front() else { break };
            self.spawn(next);
        }
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
        if self.running < MAX_RUNNING {
            self.spawn(address.to_string());
        } else {
            self.waiting.push_back(address.to_string());
        }
    }

    /// Runs one lookup on a plain thread (tokio's blocking pool was not
    /// smaller); at most [`MAX_RUNNING`] at once.
    fn spawn(&mut self, name: String) {
        let tx = self.tx.clone();
        let key = name.clone();
        let spawned = std::thread::Builder::new().name("resolve".into()).spawn(move || {
            let result = blocking_resolve(&name);
            let _ = tx.blocking_send((name, result));
        });
        match spawned {
            Ok(_) => self.running += 1,
            // No thread now: forget it; the next lookup or reload asks again.
            Err(_) => {
                self.pending.remove(&key);
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_a_few_lookups_run_at_once_and_every_name_is_answered() {
        let (tx, mut rx) = mpsc::channel(64);
        let mut names = Names::new(tx);
        let addrs: Vec<String> = (1..=10).map(|p| format!("localhost:{p}")).collect();
        for a in &addrs {
            assert_eq!(names.lookup(a), Lookup::Pending);
            assert!(names.running <= MAX_RUNNING);
        }
        assert_eq!(names.lookup("127.0.0.1:7"), Lookup::Ready("127.0.0.1:7".parse().unwrap()), "literals need no DNS");
        let mut answered = 0;
        while answered < addrs.len() {
            let a = rx.blocking_recv().expect("every lookup answers");
            names.answer(a);
            answered += 1;
            assert!(names.running <= MAX_RUNNING);
        }
        for a in &addrs {
            assert!(matches!(names.lookup(a), Lookup::Ready(_)), "{a}");
        }
    }
}
