//! Which handshake first messages (msg1) the node answers, so that an
//! unauthenticated sender cannot buy its CPU cheaply (docs/protocol.md
//! §4.1).
//!
//! Each msg1 answered costs an X25519 exchange and an ML-KEM-768
//! encapsulation (about 220 µs on a router-class CPU, more on MIPS), and
//! anyone can send one from any address, spoofed or not. Token buckets
//! bound that, per source IP address (a sender using many ports of one
//! address shares them) and for all sources together, kept apart for
//! senders that proved their address and senders that did not:
//! - a msg1 without proof is answered while the unproven budgets allow;
//!   over the address's own budget it gets a 22-byte cookie instead
//!   (bounded per address and in total); once the shared budget runs out
//!   the node is *under load* until [`LOAD_HOLD_MS`] after the last msg1
//!   that needed it, and every msg1 without proof gets a cookie and nothing
//!   more, as
//!   with WireGuard (so a spoofed flood keeps no part of the budget);
//! - a msg1 carrying a valid `mac2` for that cookie (type 5) draws on the
//!   proven budgets, which a flood from spoofed addresses cannot reach,
//!   because it never sees the cookies.
//!
//! So a legitimate peer links during a flood from any number of spoofed
//! addresses, one round trip later. The per-address table is bounded and
//! forgets the address heard from least recently.
//!
//! Deliberately not here: the cookie arithmetic (`crate::link::cookie`),
//! and anything but the source address (a botnet with many real addresses
//! shares the proven budget; docs/threat-model.md).

use core::net::IpAddr;
use std::collections::{BTreeMap, BTreeSet};

use rand_core::RngCore;
use zeroize::Zeroizing;

use crate::link::cookie;
use crate::link::packet::{COOKIE_LEN, MAC2_LEN};
use crate::store::Bucket;

/// Handshakes per second answered for one source address, and burst
/// (separately with and without proof of address).
pub const PER_ADDRESS_RATE: u32 = 4;
pub const PER_ADDRESS_BURST: u32 = 8;
/// Cookie replies per second to one address, and burst.
pub const COOKIES_PER_ADDRESS_RATE: u32 = 2;
pub const COOKIES_PER_ADDRESS_BURST: u32 = 4;
/// Cookie replies per second in total: each costs two short BLAKE2s passes
/// and one 22-byte datagram, a fraction of receiving the 1222-byte msg1.
pub const COOKIE_RATE: u32 = 10_000;
/// Source addresses remembered.
pub const MAX_ADDRESSES: usize = 1024;
/// The cookie secret is replaced this often; a cookie verifies under the
/// current and the previous secret, so it is good for at least this long.
pub const COOKIE_ROTATE_MS: u64 = 120_000;
/// How long an initiator uses a cookie it was given (less than the
/// responder's guarantee, for datagrams in flight).
pub const COOKIE_USE_MS: u64 = 110_000;

/// How long the node stays under load after the shared budget for senders
/// without proof last ran out.
pub const LOAD_HOLD_MS: u64 = 1_000;

/// What to do with one msg1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Do the handshake work and answer with msg2.
    Answer,
    /// Under load and no proof: send this cookie back instead.
    SendCookie([u8; COOKIE_LEN]),
    /// Over every budget: drop it, unanswered.
    Drop,
}

#[derive(Debug)]
struct PerAddress {
    unproven: Bucket,
    proven: Bucket,
    cookies: Bucket,
    heard: u64,
}

#[derive(Debug)]
pub struct HandshakeLimiter {
    rate: u32,
    unproven: Bucket,
    proven: Bucket,
    cookies: Bucket,
    by_addr: BTreeMap<IpAddr, PerAddress>,
    by_heard: BTreeSet<(u64, IpAddr)>,
    secret: Zeroizing<[u8; 32]>,
    previous: Zeroizing<[u8; 32]>,
    rotated_at: u64,
    /// Under load until then (monotonic ms).
    loaded_until: u64,
    /// Valid proofs seen, and invalid ones (treated as no proof).
    pub proofs_valid: u64,
    pub proofs_invalid: u64,
}

fn draw(rng: &mut impl RngCore) -> Zeroizing<[u8; 32]> {
    let mut s = Zeroizing::new([0u8; 32]);
    rng.fill_bytes(&mut s[..]);
    s
}

impl HandshakeLimiter {
    /// `rate` handshakes a second in total (and as burst), for senders
    /// without proof and again for senders with it.
    pub fn new(rate: u32, now_ms: u64, rng: &mut impl RngCore) -> HandshakeLimiter {
        let rate = rate.max(1);
        HandshakeLimiter {
            rate,
            unproven: Bucket::full(rate, now_ms),
            proven: Bucket::full(rate, now_ms),
            cookies: Bucket::full(COOKIE_RATE, now_ms),
            by_addr: BTreeMap::new(),
            by_heard: BTreeSet::new(),
            secret: draw(rng),
            previous: draw(rng),
            rotated_at: now_ms,
            loaded_until: 0,
            proofs_valid: 0,
            proofs_invalid: 0,
        }
    }

    pub fn set_rate(&mut self, rate: u32) {
        self.rate = rate.max(1);
    }

    /// Decides about a msg1 from `ip` (with its sender index, Noise bytes
    /// and, for type 5, its proof) and charges the budgets it uses.
    pub fn msg1(
        &mut self,
        ip: IpAddr,
        sender: u32,
        noise: &[u8],
        mac2: Option<&[u8; MAC2_LEN]>,
        now_ms: u64,
        rng: &mut impl RngCore,
    ) -> Verdict {
        if now_ms >= self.rotated_at.saturating_add(COOKIE_ROTATE_MS) {
            self.previous = core::mem::replace(&mut self.secret, draw(rng));
            self.rotated_at = now_ms;
        }
        let rate = self.rate;
        self.touch(ip, now_ms);
        // The address's own budget before the MAC: one address cannot make
        // us check more than a few proofs a second.
        if let Some(mac) = mac2
            && self.take(ip, |a| &mut a.proven, PER_ADDRESS_RATE, PER_ADDRESS_BURST, now_ms)
        {
            if cookie::verify(&[&self.secret, &self.previous], ip, sender, noise, mac) {
                self.proofs_valid += 1;
                return if self.proven.take(rate, rate, now_ms) { Verdict::Answer } else { Verdict::Drop };
            }
            // A stale or forged proof counts as none: a stale one gets a
            // fresh cookie below.
            self.proofs_invalid += 1;
        }
        // The address's own budget first: a flood from one address never
        // reaches the shared one.
        if self.take(ip, |a| &mut a.unproven, PER_ADDRESS_RATE, PER_ADDRESS_BURST, now_ms) {
            if now_ms >= self.loaded_until && self.unproven.take(rate, rate, now_ms) {
                return Verdict::Answer;
            }
            // The shared budget is what this msg1 would have needed: under
            // load, and for a while after the last such msg1.
            self.loaded_until = now_ms + LOAD_HOLD_MS;
        }
        if self.take(ip, |a| &mut a.cookies, COOKIES_PER_ADDRESS_RATE, COOKIES_PER_ADDRESS_BURST, now_ms)
            && self.cookies.take(COOKIE_RATE, COOKIE_RATE, now_ms)
        {
            return Verdict::SendCookie(cookie::cookie(&self.secret, ip));
        }
        Verdict::Drop
    }

    /// Takes a token from one of `ip`'s buckets.
    fn take(&mut self, ip: IpAddr, which: fn(&mut PerAddress) -> &mut Bucket, rate: u32, burst: u32, now: u64) -> bool {
        self.by_addr.get_mut(&ip).is_some_and(|a| which(a).take(rate, burst, now))
    }

    /// The entry of `ip`, made (evicting the least recently heard) if new.
    fn touch(&mut self, ip: IpAddr, now_ms: u64) {
        if !self.by_addr.contains_key(&ip)
            && self.by_addr.len() >= MAX_ADDRESSES
            && let Some((_, old)) = self.by_heard.pop_first()
        {
            self.by_addr.remove(&old);
        }
        let a = self.by_addr.entry(ip).or_insert_with(|| PerAddress {
            unproven: Bucket::full(PER_ADDRESS_BURST, now_ms),
            proven: Bucket::full(PER_ADDRESS_BURST, now_ms),
            cookies: Bucket::full(COOKIES_PER_ADDRESS_BURST, now_ms),
            heard: now_ms,
        });
        self.by_heard.remove(&(a.heard, ip));
        a.heard = now_ms;
        self.by_heard.insert((now_ms, ip));
    }

    /// Whether msg1s without proof get only cookies now.
    pub fn under_load(&self, now_ms: u64) -> bool {
        now_ms < self.loaded_until
    }

    /// Addresses remembered (for tests and status).
    pub fn tracked(&self) -> usize {
        self.by_addr.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::NodeRng;
    use core::net::Ipv4Addr;

    fn ip(i: u32) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i))
    }

    fn limiter(rate: u32) -> (HandshakeLimiter, NodeRng) {
        let mut rng = NodeRng::from_seed([4; 32]);
        (HandshakeLimiter::new(rate, 0, &mut rng), rng)
    }

    const MSG: [u8; 1216] = [6; 1216];

    #[test]
    fn one_address_gets_its_own_rate_and_others_are_not_starved() {
        let (mut l, mut rng) = limiter(100);
        // 10,000 a second from one address for one second: its burst and
        // rate only, and a few cookies.
        let mut answered = 0;
        let mut cookies = 0;
        for i in 0..10_000u64 {
            match l.msg1(ip(1), 1, &MSG, None, i / 10, &mut rng) {
                Verdict::Answer => answered += 1,
                Verdict::SendCookie(_) => cookies += 1,
                Verdict::Drop => {}
            }
        }
        assert!(answered <= (PER_ADDRESS_BURST + PER_ADDRESS_RATE) as usize + 1, "{answered} answered");
        assert!(cookies <= (COOKIES_PER_ADDRESS_BURST + COOKIES_PER_ADDRESS_RATE) as usize + 1, "{cookies} cookies");
        assert_eq!(l.msg1(ip(2), 1, &MSG, None, 1_000, &mut rng), Verdict::Answer, "another address");
    }

    #[test]
    fn spoofed_addresses_exhaust_only_the_unproven_budget() {
        let (mut l, mut rng) = limiter(50);
        // 5,000 spoofed addresses in one instant: at most the budget is
        // answered, the rest get cookies that never reach the attacker.
        let answered =
            (0..5_000u32).filter(|i| l.msg1(ip(*i), 1, &MSG, None, 500, &mut rng) == Verdict::Answer).count();
        assert!(answered <= 50, "{answered} answered in one instant");
        // While the flood goes on, none is answered: the flood keeps the
        // node under load and gets only cookies.
        let later = (0..5_000u32)
            .filter(|i| l.msg1(ip(10_000 + *i), 1, &MSG, None, 500 + u64::from(*i), &mut rng) == Verdict::Answer)
            .count();
        assert_eq!(later, 0, "answered under load");
        assert!(l.under_load(5_500));
        assert!(!l.under_load(5_500 + LOAD_HOLD_MS), "the load ends a second after the flood");
        assert!(l.tracked() <= MAX_ADDRESSES);
        // The real peer is under load too: it gets a cookie, not an answer.
        let real = ip(90_000);
        let Verdict::SendCookie(c) = l.msg1(real, 77, &MSG, None, 5_500, &mut rng) else {
            panic!("the real peer gets a cookie")
        };
        // With the proof it is answered at once, from the proven budget.
        let mac = cookie::mac2(&c, 77, &MSG);
        assert_eq!(l.msg1(real, 77, &MSG, Some(&mac), 5_501, &mut rng), Verdict::Answer);
        assert_eq!(l.proofs_valid, 1);
        // A guessed proof from a spoofed address is no proof.
        assert_ne!(l.msg1(ip(3), 77, &MSG, Some(&mac), 5_502, &mut rng), Verdict::Answer);
        assert_eq!(l.proofs_invalid, 1);
    }

    #[test]
    fn a_cookie_is_good_for_one_rotation_and_a_stale_one_gets_a_fresh_cookie() {
        let (mut l, mut rng) = limiter(1);
        let a = ip(5);
        // Use up the unproven budget so that the node is under load.
        assert_eq!(l.msg1(ip(6), 1, &MSG, None, 0, &mut rng), Verdict::Answer);
        let Verdict::SendCookie(c) = l.msg1(a, 1, &MSG, None, 1, &mut rng) else { panic!("cookie") };
        let mac = cookie::mac2(&c, 1, &MSG);
        // Still good just before the second rotation after it was made.
        let late = 2 * COOKIE_ROTATE_MS - 1;
        assert_eq!(l.msg1(a, 1, &MSG, Some(&mac), COOKIE_ROTATE_MS, &mut rng), Verdict::Answer);
        assert_eq!(l.msg1(a, 1, &MSG, Some(&mac), late, &mut rng), Verdict::Answer);
        // Two rotations later it proves nothing; the unproven budget is
        // spent, so the sender is told a new cookie.
        let later = 2 * COOKIE_ROTATE_MS + 1;
        let _ = l.msg1(ip(7), 1, &MSG, None, later, &mut rng);
        match l.msg1(a, 1, &MSG, Some(&mac), later, &mut rng) {
            Verdict::SendCookie(fresh) => assert_ne!(fresh, c),
            other => panic!("{other:?}"),
        }
        assert_eq!(l.proofs_invalid, 1);
    }

    #[test]
    fn the_total_budget_comes_back_and_the_table_is_bounded() {
        let (mut l, mut rng) = limiter(50);
        for i in 0..5_000u32 {
            let _ = l.msg1(ip(i), 1, &MSG, None, 500, &mut rng);
        }
        assert!(l.tracked() <= MAX_ADDRESSES);
        assert_eq!(l.msg1(ip(90_000), 1, &MSG, None, 1_600, &mut rng), Verdict::Answer);
        assert!(!l.under_load(1_600));
    }
}
