//! The control socket: the server (SO_PEERCRED access, limits, one
//! request and one answer per line, subscriptions).

pub mod protocol;
pub mod server;
pub mod upload;

pub use server::*;
