//! An established link session: transport encryption with explicit nonces.
//!
//! Each datagram carries its 64-bit counter in the clear; the AEAD nonce is
//! four zero bytes followed by the little-endian counter, and the 14-byte
//! header is the associated data. Received counters pass a sliding
//! [`ReplayWindow`]. Rekeying is a fresh handshake (see `node`), so a session
//! refuses to send after [`REJECT_AFTER_MESSAGES`].

use zeroize::Zeroizing;

use super::handshake::SessionKeys;
use super::packet::{DATA_HEADER_LEN, TAG_LEN, data_header};
use super::replay::ReplayWindow;

/// A session never encrypts more messages than this.
pub const REJECT_AFTER_MESSAGES: u64 = super::replay::MAX_COUNTER;

/// Why a transport datagram was dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenError {
    Replayed,
    Decrypt,
}

/// One direction pair of transport keys with counters and a replay window.
pub struct Session {
    send_key: Zeroizing<[u8; 32]>,
    recv_key: Zeroizing<[u8; 32]>,
    pub local_idx: u32,
    pub remote_idx: u32,
    pub remote_ed: [u8; 32],
    pub initiator: bool,
    /// Time (ms) the handshake finished.
    pub established_at: u64,
    send_counter: u64,
    replay: ReplayWindow,
}

fn nonce(counter: u64) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&counter.to_le_bytes());
    n
}

impl Session {
    pub fn new(keys: SessionKeys, now: u64) -> Session {
        Session {
            send_key: keys.send,
            recv_key: keys.recv,
            local_idx: keys.local_idx,
            remote_idx: keys.remote_idx,
            remote_ed: keys.remote_ed,
            initiator: keys.initiator,
            established_at: now,
            send_counter: 0,
            replay: ReplayWindow::default(),
        }
    }

    /// Messages sent so far.
    pub fn sent(&self) -> u64 {
        self.send_counter
    }

    /// Encrypts one frame into a complete transport datagram.
    pub fn seal(&mut self, frame: &[u8]) -> Option<Vec<u8>> {
        if self.send_counter >= REJECT_AFTER_MESSAGES {
            return None;
        }
        let counter = self.send_counter;
        self.send_counter += 1;
        let header = data_header(self.remote_idx, counter);
        let mut out = Vec::with_capacity(DATA_HEADER_LEN + frame.len() + TAG_LEN);
        out.extend_from_slice(&header);
        out.extend_from_slice(frame);
        let tag =
            meshpost_aead::seal_in_place(&self.send_key, &nonce(counter), &header, &mut out[DATA_HEADER_LEN..]).ok()?;
        out.extend_from_slice(&tag);
        Some(out)
    }

    /// Decrypts a transport datagram's ciphertext, enforcing the replay window.
    pub fn open(&mut self, counter: u64, header: &[u8], ciphertext: &[u8]) -> Result<Vec<u8>, OpenError> {
        if !self.replay.check(counter) {
            return Err(OpenError::Replayed);
        }
        let Some((body, tag)) = ciphertext.split_last_chunk::<TAG_LEN>() else {
            return Err(OpenError::Decrypt);
        };
        let mut plain = body.to_vec();
        meshpost_aead::open_in_place(&self.recv_key, &nonce(counter), header, &mut plain, tag)
            .map_err(|_| OpenError::Decrypt)?;
        self.replay.update(counter);
        Ok(plain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::link::packet::Packet;

    fn pair() -> (Session, Session) {
        let k1 = Zeroizing::new([1u8; 32]);
        let k2 = Zeroizing::new([2u8; 32]);
        let a = SessionKeys {
            send: k1.clone(),
            recv: k2.clone(),
            remote_ed: [0; 32],
            local_idx: 10,
            remote_idx: 20,
            initiator: true,
        };
        let b = SessionKeys { send: k2, recv: k1, remote_ed: [0; 32], local_idx: 20, remote_idx: 10, initiator: false };
        (Session::new(a, 0), Session::new(b, 0))
    }

    fn deliver(to: &mut Session, d: &[u8]) -> Result<Vec<u8>, OpenError> {
        match Packet::parse(d).unwrap() {
            Packet::Data { counter, header, ciphertext, receiver } => {
                assert_eq!(receiver, to.local_idx);
                to.open(counter, header, ciphertext)
            }
            _ => panic!(),
        }
    }

    #[test]
    fn round_trip_and_replay_is_refused() {
        let (mut a, mut b) = pair();
        let d = a.seal(b"frame").unwrap();
        assert_eq!(deliver(&mut b, &d).unwrap(), b"frame");
        assert_eq!(deliver(&mut b, &d), Err(OpenError::Replayed));
    }

    #[test]
    fn tampered_header_or_body_fails_and_does_not_burn_the_counter() {
        let (mut a, mut b) = pair();
        let d = a.seal(b"frame").unwrap();
        let mut t = d.clone();
        t[20] ^= 1;
        assert_eq!(deliver(&mut b, &t), Err(OpenError::Decrypt));
        let mut h = d.clone();
        h[13] ^= 1; // counter byte: different nonce and AAD
        assert!(deliver(&mut b, &h).is_err());
        assert_eq!(deliver(&mut b, &d).unwrap(), b"frame");
    }
}
