//! The only way time enters the protocol core.
//!
//! A router without a real-time clock boots in 1970 and jumps decades when
//! NTP answers; later NTP may step it back. Link timers (keepalive, dead
//! peer, rekey, handshake timeouts, retries, rate limits) therefore run on
//! a monotonic clock, and only envelope validity (creation, expiry) reads
//! wall-clock (unix) time. The caller reads both clocks and passes them in;
//! nothing here reads a clock.

/// The two clocks at one moment, as the caller read them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp {
    /// Milliseconds on a clock that never goes back or jumps (any epoch).
    pub mono_ms: u64,
    /// Milliseconds since the unix epoch (may jump either way).
    pub unix_ms: u64,
}

impl Timestamp {
    pub const fn new(mono_ms: u64, unix_ms: u64) -> Timestamp {
        Timestamp { mono_ms, unix_ms }
    }

    /// Unix time in whole seconds, as envelopes carry it.
    pub const fn unix_s(&self) -> u64 {
        self.unix_ms / 1000
    }

    /// The unix time in ms at which the monotonic clock reads `mono_ms`,
    /// assuming the wall clock does not step in between.
    pub fn unix_at(&self, mono_ms: u64) -> u64 {
        self.unix_ms.saturating_add(mono_ms.saturating_sub(self.mono_ms))
    }

    /// The monotonic time at which the wall clock reads `unix_ms`.
    pub fn mono_at(&self, unix_ms: u64) -> u64 {
        self.mono_ms.saturating_add(unix_ms.saturating_sub(self.unix_ms))
    }
}

/// For tests and simulations where both clocks read the same.
impl From<u64> for Timestamp {
    fn from(ms: u64) -> Timestamp {
        Timestamp { mono_ms: ms, unix_ms: ms }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_between_the_clocks() {
        let t = Timestamp::new(5_000, 1_800_000_000_000);
        assert_eq!(t.unix_s(), 1_800_000_000);
        assert_eq!(t.mono_at(1_800_000_001_000), 6_000);
        assert_eq!(t.mono_at(0), 5_000, "a deadline in the past is due now");
        assert_eq!(t.unix_at(7_000), 1_800_000_002_000);
        assert_eq!(Timestamp::from(42), Timestamp::new(42, 42));
    }
}
