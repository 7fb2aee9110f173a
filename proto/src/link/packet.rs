//! Link datagram codec: the outer header of every UDP payload.
//!
//! ```text
//! type 1 handshake init:   [1][ver][sender idx u32][Noise msg1, 1216 bytes]
//! type 2 handshake resp:   [2][ver][sender idx u32][receiver idx u32][Noise msg2, 1216]
//! type 3 handshake final:  [3][ver][receiver idx u32][Noise msg3, 96]
//! type 4 transport:        [4][ver][receiver idx u32][counter u64][AEAD ciphertext]
//! type 5 init with cookie: [5][ver][sender idx u32][mac2, 10 bytes][Noise msg1, 1216]
//! type 6 cookie reply:     [6][ver][receiver idx u32][cookie, 16 bytes]
//! type 7 session unknown:  [7][ver][receiver idx u32]
//! ```
//! Types 5 and 6 are the handshake under load (docs/protocol.md §4.1,
//! `crate::link::cookie`).
//! Every datagram is at most [`MAX_DATAGRAM`] bytes. Parsing returns borrowed
//! views; it does not decrypt.

use core::fmt;

use crate::wire::Reader;

pub const LINK_VERSION: u8 = 1;
/// UDP payload that a 1280-byte IPv6 MTU leaves.
pub const MAX_DATAGRAM: usize = 1232;
pub const MSG1_LEN: usize = 32 + crate::identity::KEM_EK_LEN;
pub const MSG2_LEN: usize = 32 + 48 + crate::identity::KEM_CT_LEN + 32 + 16;
pub const MSG3_LEN: usize = 48 + 32 + 16;
/// Header of a transport datagram; it is also the AEAD associated data.
pub const DATA_HEADER_LEN: usize = 14;
pub const TAG_LEN: usize = 16;
/// The cookie a loaded responder hands out, and the MAC over msg1 that
/// proves it (as much of it as the 1232 bytes leave room for).
pub const COOKIE_LEN: usize = 16;
pub const MAC2_LEN: usize = MAX_DATAGRAM - 6 - MSG1_LEN;
pub const COOKIE_REPLY_LEN: usize = 6 + COOKIE_LEN;
/// Largest frame a transport datagram can carry.
pub const MAX_FRAME: usize = MAX_DATAGRAM - DATA_HEADER_LEN - TAG_LEN;

// Every handshake datagram fits the IPv6 minimum MTU, checked at compile time.
const _: () = assert!(6 + MSG1_LEN <= MAX_DATAGRAM);
const _: () = assert!(10 + MSG2_LEN <= MAX_DATAGRAM);
const _: () = assert!(6 + MSG3_LEN <= MAX_DATAGRAM);
// The proof of address is at least 80 bits, and a cookie reply is far
// smaller than the msg1 it answers (no amplification).
const _: () = assert!(MAC2_LEN >= 10);
const _: () = assert!(COOKIE_REPLY_LEN * 8 < 6 + MSG1_LEN);

const T_INIT: u8 = 1;
const T_RESP: u8 = 2;
const T_FINAL: u8 = 3;
const T_DATA: u8 = 4;
const T_INIT_COOKIE: u8 = 5;
const T_COOKIE: u8 = 6;
const T_UNKNOWN: u8 = 7;

/// A parsed link datagram.
#[derive(Debug, PartialEq, Eq)]
pub enum Packet<'a> {
    Init {
        sender: u32,
        noise: &'a [u8],
    },
    Resp {
        sender: u32,
        receiver: u32,
        noise: &'a [u8],
    },
    Final {
        receiver: u32,
        noise: &'a [u8],
    },
    Data {
        receiver: u32,
        counter: u64,
        header: &'a [u8],
        ciphertext: &'a [u8],
    },
    /// A msg1 sent again with the proof that its sender got our cookie.
    InitCookie {
        sender: u32,
        mac2: &'a [u8; MAC2_LEN],
        noise: &'a [u8],
    },
    /// A loaded responder's cookie for the handshake `receiver` started.
    Cookie {
        receiver: u32,
        cookie: &'a [u8; COOKIE_LEN],
    },
    /// "I hold no session `receiver`": the sender restarted or forgot it.
    Unknown {
        receiver: u32,
    },
}

/// Why a datagram was not a link packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PacketError {
    Empty,
    UnknownType(u8),
    BadVersion(u8),
    BadLength { kind: &'static str, len: usize },
}

impl fmt::Display for PacketError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PacketError::Empty => f.write_str("empty datagram"),
            PacketError::UnknownType(t) => write!(f, "unknown datagram type {t}"),
            PacketError::BadVersion(v) => write!(f, "unsupported link version {v}"),
            PacketError::BadLength { kind, len } => {
                write!(f, "{kind} datagram of wrong length {len}")
            }
        }
    }
}

impl<'a> Packet<'a> {
    pub fn parse(b: &'a [u8]) -> Result<Packet<'a>, PacketError> {
        let bad = |kind| PacketError::BadLength { kind, len: b.len() };
        if b.len() > MAX_DATAGRAM {
            return Err(bad("oversized"));
        }
        let (&t, _) = b.split_first().ok_or(PacketError::Empty)?;
        if !(T_INIT..=T_UNKNOWN).contains(&t) {
            return Err(PacketError::UnknownType(t));
        }
        let mut r = Reader::new(b);
        let _ = r.u8("type");
        let v = r.u8("version").map_err(|_| bad("short"))?;
        if v != LINK_VERSION {
            return Err(PacketError::BadVersion(v));
        }
        match t {
            T_INIT => {
                if b.len() != 6 + MSG1_LEN {
                    return Err(bad("handshake init"));
                }
                let sender = r.u32("sender").map_err(|_| bad("handshake init"))?;
                Ok(Packet::Init { sender, noise: r.rest() })
            }
            T_RESP => {
                if b.len() != 10 + MSG2_LEN {
                    return Err(bad("handshake response"));
                }
                let sender = r.u32("sender").map_err(|_| bad("handshake response"))?;
                let receiver = r.u32("receiver").map_err(|_| bad("handshake response"))?;
                Ok(Packet::Resp { sender, receiver, noise: r.rest() })
            }
            T_FINAL => {
                if b.len() != 6 + MSG3_LEN {
                    return Err(bad("handshake final"));
                }
                let receiver = r.u32("receiver").map_err(|_| bad("handshake final"))?;
                Ok(Packet::Final { receiver, noise: r.rest() })
            }
            T_INIT_COOKIE => {
                if b.len() != 6 + MAC2_LEN + MSG1_LEN {
                    return Err(bad("handshake init with cookie"));
                }
                let sender = r.u32("sender").map_err(|_| bad("handshake init with cookie"))?;
                let (mac2, noise) = r.rest().split_first_chunk().ok_or(bad("handshake init with cookie"))?;
                Ok(Packet::InitCookie { sender, mac2, noise })
            }
            T_COOKIE => {
                if b.len() != COOKIE_REPLY_LEN {
                    return Err(bad("cookie reply"));
                }
                let receiver = r.u32("receiver").map_err(|_| bad("cookie reply"))?;
                let cookie = r.rest().first_chunk().ok_or(bad("cookie reply"))?;
                Ok(Packet::Cookie { receiver, cookie })
            }
            T_UNKNOWN => {
                if b.len() != 6 {
                    return Err(bad("session unknown"));
                }
                let receiver = r.u32("receiver").map_err(|_| bad("session unknown"))?;
                Ok(Packet::Unknown { receiver })
            }
            _ => {
                if b.len() < DATA_HEADER_LEN + TAG_LEN {
                    return Err(bad("transport"));
                }
                let receiver = r.u32("receiver").map_err(|_| bad("transport"))?;
                let counter = r.u64("counter").map_err(|_| bad("transport"))?;
                Ok(Packet::Data { receiver, counter, header: &b[..DATA_HEADER_LEN], ciphertext: r.rest() })
            }
        }
    }
}

pub fn emit_init(sender: u32, noise: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(6 + noise.len());
    v.extend_from_slice(&[T_INIT, LINK_VERSION]);
    v.extend_from_slice(&sender.to_be_bytes());
    v.extend_from_slice(noise);
    v
}

pub fn emit_resp(sender: u32, receiver: u32, noise: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(10 + noise.len());
    v.extend_from_slice(&[T_RESP, LINK_VERSION]);
    v.extend_from_slice(&sender.to_be_bytes());
    v.extend_from_slice(&receiver.to_be_bytes());
    v.extend_from_slice(noise);
    v
}

pub fn emit_final(receiver: u32, noise: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(6 + noise.len());
    v.extend_from_slice(&[T_FINAL, LINK_VERSION]);
    v.extend_from_slice(&receiver.to_be_bytes());
    v.extend_from_slice(noise);
    v
}

/// A msg1 datagram (type 1, as [`emit_init`] made it) sent again with the
/// proof of address; `None` if `init` is not one.
pub fn emit_init_cookie(init: &[u8], mac2: &[u8; MAC2_LEN]) -> Option<Vec<u8>> {
    if init.len() != 6 + MSG1_LEN || init[0] != T_INIT {
        return None;
    }
    let mut v = Vec::with_capacity(MAX_DATAGRAM);
    v.extend_from_slice(&[T_INIT_COOKIE, LINK_VERSION]);
    v.extend_from_slice(&init[2..6]);
    v.extend_from_slice(mac2);
    v.extend_from_slice(&init[6..]);
    Some(v)
}

pub fn emit_cookie(receiver: u32, cookie: &[u8; COOKIE_LEN]) -> Vec<u8> {
    let mut v = Vec::with_capacity(COOKIE_REPLY_LEN);
    v.extend_from_slice(&[T_COOKIE, LINK_VERSION]);
    v.extend_from_slice(&receiver.to_be_bytes());
    v.extend_from_slice(cookie);
    v
}

pub fn emit_unknown(receiver: u32) -> Vec<u8> {
    let mut v = Vec::with_capacity(6);
    v.extend_from_slice(&[T_UNKNOWN, LINK_VERSION]);
    v.extend_from_slice(&receiver.to_be_bytes());
    v
}

/// The 14-byte transport header.
pub fn data_header(receiver: u32, counter: u64) -> [u8; DATA_HEADER_LEN] {
    let mut h = [0u8; DATA_HEADER_LEN];
    h[0] = T_DATA;
    h[1] = LINK_VERSION;
    h[2..6].copy_from_slice(&receiver.to_be_bytes());
    h[6..14].copy_from_slice(&counter.to_be_bytes());
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshake_datagrams_fit_the_ipv6_minimum_mtu() {
        // The compile-time checks below the constants guarantee the limit;
        // these pin the exact sizes that docs/protocol.md states.
        assert_eq!(emit_init(0, &[0; MSG1_LEN]).len(), 1222);
        assert_eq!(emit_resp(0, 0, &[0; MSG2_LEN]).len(), 1226);
        assert_eq!(emit_final(0, &[0; MSG3_LEN]).len(), 102);
        let init = emit_init(0, &[0; MSG1_LEN]);
        assert_eq!(emit_init_cookie(&init, &[0; MAC2_LEN]).unwrap().len(), MAX_DATAGRAM);
        assert_eq!(emit_cookie(0, &[0; COOKIE_LEN]).len(), 22);
    }

    #[test]
    fn cookie_datagrams_round_trip() {
        let init = emit_init(9, &[3u8; MSG1_LEN]);
        let with = emit_init_cookie(&init, &[5; MAC2_LEN]).unwrap();
        assert_eq!(
            Packet::parse(&with),
            Ok(Packet::InitCookie { sender: 9, mac2: &[5; MAC2_LEN], noise: &[3u8; MSG1_LEN][..] })
        );
        assert!(Packet::parse(&with[..with.len() - 1]).is_err());
        assert!(emit_init_cookie(&with, &[5; MAC2_LEN]).is_none(), "only a plain msg1 gets a mac");
        let c = emit_cookie(0xdead_beef, &[8; COOKIE_LEN]);
        assert_eq!(Packet::parse(&c), Ok(Packet::Cookie { receiver: 0xdead_beef, cookie: &[8; COOKIE_LEN] }));
        assert!(Packet::parse(&c[..21]).is_err());
        assert_eq!(Packet::parse(&emit_unknown(5)), Ok(Packet::Unknown { receiver: 5 }));
        assert!(Packet::parse(&[7, 1, 0, 0, 0]).is_err());
        assert_eq!(Packet::parse(&[8, 1]), Err(PacketError::UnknownType(8)));
    }

    #[test]
    fn parse_round_trips_and_rejects() {
        let init = emit_init(7, &[0u8; MSG1_LEN]);
        assert_eq!(Packet::parse(&init), Ok(Packet::Init { sender: 7, noise: &[0u8; MSG1_LEN][..] }));
        assert!(matches!(Packet::parse(&init[..100]), Err(PacketError::BadLength { .. })));
        let mut bad = init.clone();
        bad[1] = 9;
        assert_eq!(Packet::parse(&bad), Err(PacketError::BadVersion(9)));
        assert_eq!(Packet::parse(&[]), Err(PacketError::Empty));
        assert_eq!(Packet::parse(&[77, 1]), Err(PacketError::UnknownType(77)));
        let mut data = data_header(3, 99).to_vec();
        data.extend_from_slice(&[0u8; 20]);
        match Packet::parse(&data) {
            Ok(Packet::Data { receiver: 3, counter: 99, ciphertext, .. }) => assert_eq!(ciphertext.len(), 20),
            other => panic!("{other:?}"),
        }
        assert!(Packet::parse(&data[..DATA_HEADER_LEN + 5]).is_err());
        assert!(Packet::parse(&[4u8; MAX_DATAGRAM + 1]).is_err());
    }
}
