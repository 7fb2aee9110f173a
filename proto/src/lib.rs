//! meshpost's sans-IO protocol core.
//!
//! Everything here is a pure state machine or a pure codec: it takes bytes,
//! commands and the current time from its caller and returns actions. It
//! opens no sockets, reads no files and no clock. The daemon drives it with
//! real I/O; tests, the simulator and the fuzzers drive the same code.
//!
//! Randomness is the one outside input besides time: functions that need it
//! take a `CryptoRngCore` from the caller, and snow draws its Noise ephemeral
//! keys from the operating system's generator.

pub mod ack;
pub mod card;
pub mod channel;
pub mod crypto;
pub mod delivered;
pub mod e2e;
pub mod envelope;
pub mod federation;
pub mod fragment;
pub mod identity;
pub mod link;
pub mod mdns;
pub mod node;
pub mod routing;
pub mod store;
pub mod wire;
