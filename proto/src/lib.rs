//! meshpost's sans-IO protocol core.
//!
//! Everything here is a pure state machine or a pure codec: it takes bytes,
//! commands and the current time from its caller and returns actions. It
//! opens no sockets, reads no files and no clock. The daemon drives it with
//! real I/O; tests, the simulator and the fuzzers drive the same code.
//!
//! Time and randomness are inputs: the caller passes a [`time::Timestamp`]
//! (a monotonic clock for link timers, unix time for envelope validity) to
//! every entry point, and seeds the node's CSPRNG ([`rng::NodeRng`]) once;
//! snow's Noise ephemeral keys come from that generator too. So a
//! simulation or fuzz run is reproducible from its seed. Clippy refuses
//! clock reads and OS randomness in this crate (proto/clippy.toml).

// Tests may use the OS generator and clock; the library may not.
#![cfg_attr(test, allow(clippy::disallowed_types, clippy::disallowed_methods))]

pub mod ack;
pub mod beacon;
pub mod card;
pub mod cardbook;
pub mod channel;
pub mod crypto;
pub mod delivered;
pub mod e2e;
pub mod envelope;
pub mod expiring;
pub mod federation;
pub mod filepart;
pub mod flood;
pub mod fragment;
pub mod hslimit;
pub mod identity;
pub mod link;
pub mod mdns;
pub mod node;
pub mod outbox;
pub mod owncards;
pub mod peerbook;
pub mod rng;
pub mod routing;
pub mod session;
pub mod store;
pub mod time;
pub mod wire;

/// A map kept as one sorted vector (litemap): for the small, bounded
/// maps. Each B-tree key and value type costs 4 to 8 KB of code on mipsel
/// (docs/size.md); this one far less. Not for large maps whose keys come
/// in random order (every insert moves the entries after it).
pub type SmallMap<K, V> = litemap::LiteMap<K, V>;
