//! Link datagram codec: the outer header of every UDP payload.
//!
//! ```text
//! type 1 handshake init:   [1][ver][sender idx u32][Noise msg1, 1216 bytes]
//! type 2 handshake resp:   [2][ver][sender idx u32][receiver idx u32][Noise msg2, 1216]
//! type 3 handshake final:  [3][ver][receiver idx u32][Noise msg3, 96]
//! type 4 transport:        [4][ver][receiver idx u32][counter u64][AEAD ciphertext]
//! ```
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
/// Largest frame a transport datagram can carry.
pub const MAX_FRAME: usize = MAX_DATAGRAM - DATA_HEADER_LEN - TAG_LEN;

// Every handshake datagram fits the IPv6 minimum MTU, checked at compile time.
const _: () = assert!(6 + MSG1_LEN <= MAX_DATAGRAM);
const _: () = assert!(10 + MSG2_LEN <= MAX_DATAGRAM);
const _: () = assert!(6 + MSG3_LEN <= MAX_DATAGRAM);

const T_INIT: u8 = 1;
const T_RESP: u8 = 2;
const T_FINAL: u8 = 3;
const T_DATA: u8 = 4;

/// A parsed link datagram.
#[derive(Debug, PartialEq, Eq)]
pub enum Packet<'a> {
    Init { sender: u32, noise: &'a [u8] },
    Resp { sender: u32, receiver: u32, noise: &'a [u8] },
    Final { receiver: u32, noise: &'a [u8] },
    Data { receiver: u32, counter: u64, header: &'a [u8], ciphertext: &'a [u8] },
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
        if !(T_INIT..=T_DATA).contains(&t) {
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
