//! How many handshake first messages (msg1) the node answers, so that an
//! unauthenticated sender cannot buy its CPU cheaply.
//!
//! Each msg1 answered costs an X25519 exchange and an ML-KEM-768
//! encapsulation (about 220 µs on a router-class CPU, more on MIPS), and
//! anyone can send one from any address. Two token buckets bound that: one
//! per source IP address (a few a second; a sender using many ports of one
//! address shares it), and one for all sources together. A msg1 over
//! either is dropped before any cryptography; the sender's own retry
//! (with backoff) comes back later. The per-address table is bounded and
//! forgets the address heard from least recently.
//!
//! It does not stop a sender that spoofs many source addresses from using
//! the global budget (that needs a return-routability cookie, which the
//! 1232-byte msg1 has no room for; docs/threat-model.md), and it does not
//! look at anything but the source address.

use core::net::IpAddr;
use std::collections::{BTreeMap, BTreeSet};

use crate::store::Bucket;

/// Handshakes per second answered for one source address, and burst.
pub const PER_ADDRESS_RATE: u32 = 4;
pub const PER_ADDRESS_BURST: u32 = 8;
/// Source addresses remembered.
pub const MAX_ADDRESSES: usize = 1024;

#[derive(Debug)]
pub struct HandshakeLimiter {
    rate: u32,
    global: Bucket,
    by_addr: BTreeMap<IpAddr, (Bucket, u64)>,
    by_heard: BTreeSet<(u64, IpAddr)>,
}

impl HandshakeLimiter {
    /// `rate` handshakes a second in total (and as burst).
    pub fn new(rate: u32, now_ms: u64) -> HandshakeLimiter {
        let rate = rate.max(1);
        HandshakeLimiter {
            rate,
            global: Bucket::full(rate, now_ms),
            by_addr: BTreeMap::new(),
            by_heard: BTreeSet::new(),
        }
    }

    pub fn set_rate(&mut self, rate: u32) {
        self.rate = rate.max(1);
    }

    /// Whether a msg1 from `ip` may be answered now (and charges it).
    pub fn allow(&mut self, ip: IpAddr, now_ms: u64) -> bool {
        let (bucket, heard) = match self.by_addr.get_mut(&ip) {
            Some(e) => e,
            None => {
                if self.by_addr.len() >= MAX_ADDRESSES
                    && let Some((t, old)) = self.by_heard.pop_first()
                {
                    debug_assert!(t <= now_ms.max(t));
                    self.by_addr.remove(&old);
                }
                self.by_addr.entry(ip).or_insert((Bucket::full(PER_ADDRESS_BURST, now_ms), now_ms))
            }
        };
        self.by_heard.remove(&(*heard, ip));
        *heard = now_ms;
        self.by_heard.insert((now_ms, ip));
        // The address's own budget first: a flood from one address never
        // reaches the shared one.
        bucket.take(PER_ADDRESS_RATE, PER_ADDRESS_BURST, now_ms) && self.global.take(self.rate, self.rate, now_ms)
    }

    /// Addresses remembered (for tests and status).
    pub fn tracked(&self) -> usize {
        self.by_addr.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::Ipv4Addr;

    fn ip(i: u32) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i))
    }

    #[test]
    fn one_address_gets_its_own_rate_and_others_are_not_starved() {
        let mut l = HandshakeLimiter::new(100, 0);
        // 10,000 a second from one address for one second: its burst and
        // rate only.
        let flood = (0..10_000u64).filter(|i| l.allow(ip(1), i / 10)).count();
        assert!(flood <= (PER_ADDRESS_BURST + PER_ADDRESS_RATE) as usize + 1, "{flood} answered");
        assert!(l.allow(ip(2), 1_000), "another address still gets through");
    }

    #[test]
    fn the_global_budget_caps_many_addresses_and_the_table_is_bounded() {
        let mut l = HandshakeLimiter::new(50, 0);
        let answered = (0..5_000u32).filter(|i| l.allow(ip(*i), 500)).count();
        assert!(answered <= 50, "{answered} answered in one instant");
        assert!(l.tracked() <= MAX_ADDRESSES);
        // A second later the budget is back.
        assert!(l.allow(ip(90_000), 1_600));
    }
}
