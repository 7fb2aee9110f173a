//! The daemon's network edges besides the link socket: mDNS discovery on
//! the configured interfaces, and kernel notifications of interface
//! changes.

pub mod discovery;
pub mod names;
pub mod netlink;
pub mod udp;
