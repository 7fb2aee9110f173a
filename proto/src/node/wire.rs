//! Datagrams and bytes this node sent, by what they carried: the figures
//! the simulator (tools/sim) reports per node and minute, and the basis of
//! the overhead figures in docs/scale.md.
//!
//! Only counting, on the send side, by the outer datagram type, the frame
//! type, and for envelope fragments the envelope's kind (a card exchanged
//! at link-up is an announce envelope and counts as one). It does not look
//! at what was received, and decides nothing.

/// What a sent datagram carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum WireClass {
    /// Handshake messages, cookies and refusals.
    Handshake = 0,
    Keepalive = 1,
    /// Offer, want and have lists.
    Sync = 2,
    /// Fragments of announce envelopes (and cards).
    Announce = 3,
    /// Fragments of direct envelopes (messages and file parts).
    Direct = 4,
    Ack = 5,
    Channel = 6,
}

impl WireClass {
    pub const ALL: [WireClass; 7] = [
        WireClass::Handshake,
        WireClass::Keepalive,
        WireClass::Sync,
        WireClass::Announce,
        WireClass::Direct,
        WireClass::Ack,
        WireClass::Channel,
    ];

    pub fn name(self) -> &'static str {
        ["handshake", "keepalive", "sync", "announce", "direct", "ack", "channel"][self as usize]
    }

    /// The class of an envelope's fragments, from its kind byte.
    pub(super) fn of_envelope(bytes: &[u8]) -> WireClass {
        match bytes.get(2) {
            Some(2) => WireClass::Channel,
            Some(3) => WireClass::Announce,
            Some(4) => WireClass::Ack,
            _ => WireClass::Direct,
        }
    }

    /// The class of a transport frame, given what its fragments carry.
    pub(super) fn of_frame(frame: &[u8], fragments: WireClass) -> WireClass {
        match frame.first() {
            Some(0) => WireClass::Keepalive,
            Some(1) => fragments,
            Some(2..=4) => WireClass::Sync,
            _ => WireClass::Handshake,
        }
    }
}

/// Datagrams and bytes sent, per class.
#[derive(Debug, Clone, Default)]
pub struct WireStats {
    pub datagrams: [u64; 7],
    pub bytes: [u64; 7],
}

impl WireStats {
    pub(super) fn add(&mut self, class: WireClass, len: usize) {
        self.datagrams[class as usize] += 1;
        self.bytes[class as usize] += len as u64;
    }

    pub fn total_bytes(&self) -> u64 {
        self.bytes.iter().sum()
    }
}
