//! The cookie arithmetic of the handshake under load (docs/protocol.md
//! §4.1), in the spirit of WireGuard's cookie reply and mac2.
//!
//! A loaded responder does no Diffie-Hellman or KEM work for a msg1 whose
//! sender has not shown that it receives datagrams at its source address.
//! It answers such a msg1 with a cookie, a MAC of that address under a
//! secret only the responder knows; the initiator sends its msg1 again as
//! type 5 with `mac2`, a MAC of the msg1 under that cookie. Checking it costs
//! two BLAKE2s passes and no state per address.
//!
//! Deliberately not here: when to hand out cookies and how many handshakes
//! to answer (`crate::hslimit`), and rotating the secret (the limiter draws
//! it from the node's seeded generator). The cookie is sent in the clear:
//! whoever can read it is on the path to that address, which is the one
//! thing the cookie proves.

use core::net::IpAddr;

use super::packet::{COOKIE_LEN, MAC2_LEN};
use crate::crypto::{ct_eq, kdf};

/// The cookie for datagrams from `ip` under `secret`. IPv4 addresses are
/// taken in their IPv4-mapped IPv6 form, so a dual-stack socket's view of
/// an address gives the same cookie.
pub fn cookie(secret: &[u8; 32], ip: IpAddr) -> [u8; COOKIE_LEN] {
    let v6 = match ip.to_canonical() {
        IpAddr::V4(a) => a.to_ipv6_mapped(),
        IpAddr::V6(a) => a,
    };
    let full = kdf(b"mp-cook\0", secret, &[&v6.octets()]);
    let mut c = [0u8; COOKIE_LEN];
    c.copy_from_slice(&full[..COOKIE_LEN]);
    c
}

/// The proof carried by a type-5 datagram: a MAC under `cookie` of the
/// sender index and the Noise msg1, so it cannot be moved to another msg1.
pub fn mac2(cookie: &[u8; COOKIE_LEN], sender: u32, noise: &[u8]) -> [u8; MAC2_LEN] {
    let full = kdf(b"mp-mac2\0", cookie, &[&sender.to_be_bytes(), noise]);
    let mut m = [0u8; MAC2_LEN];
    m.copy_from_slice(&full[..MAC2_LEN]);
    m
}

/// Whether `mac` proves a cookie for `ip` under any of `secrets`, in
/// constant time per secret.
pub fn verify(secrets: &[&[u8; 32]], ip: IpAddr, sender: u32, noise: &[u8], mac: &[u8; MAC2_LEN]) -> bool {
    secrets.iter().fold(false, |ok, s| ok | ct_eq(&mac2(&cookie(s, ip), sender, noise), mac))
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn a_mac_proves_one_address_one_msg1_and_one_secret() {
        let (s1, s2) = ([1u8; 32], [2u8; 32]);
        let a = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
        let b = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
        let msg = [9u8; 1216];
        let m = mac2(&cookie(&s1, a), 7, &msg);
        assert!(verify(&[&s2, &s1], a, 7, &msg, &m));
        assert!(!verify(&[&s2], a, 7, &msg, &m), "another secret");
        assert!(!verify(&[&s1], b, 7, &msg, &m), "another address");
        assert!(!verify(&[&s1], a, 8, &msg, &m), "another sender index");
        let mut other = msg;
        other[100] ^= 1;
        assert!(!verify(&[&s1], a, 7, &other, &m), "another msg1");
    }

    /// The vectors of docs/protocol.md §4.1 (tests/vectors_python.rs checks
    /// the same construction against Python's hashlib).
    #[test]
    fn the_spec_vectors() {
        let secret: [u8; 32] = core::array::from_fn(|i| i as u8);
        let c = cookie(&secret, IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)));
        assert_eq!(crate::crypto::to_hex(&c), "54862ed6f084f152ed05686495a4bfe2");
        assert_eq!(crate::crypto::to_hex(&mac2(&c, 1, &[0x42; 1216])), "88f7ad369f86e51ff916");
        let v6 = cookie(&secret, IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1)));
        assert_eq!(crate::crypto::to_hex(&v6), "7c9e68386da84af0954e77aa62b1b034");
    }

    #[test]
    fn a_dual_stack_view_of_an_ipv4_address_gets_the_same_cookie() {
        let v4 = Ipv4Addr::new(192, 0, 2, 7);
        let mapped: Ipv6Addr = v4.to_ipv6_mapped();
        assert_eq!(cookie(&[3; 32], IpAddr::V4(v4)), cookie(&[3; 32], IpAddr::V6(mapped)));
    }
}
