//! Links between neighbours: datagram codec, hybrid handshake, transport
//! sessions, replay window and frames. Policy (who may connect, when to
//! rekey, what to send) lives in [`crate::node`].

pub mod cookie;
pub mod frame;
pub mod handshake;
mod noise_crypto;
pub mod packet;
pub mod replay;
pub mod session;
