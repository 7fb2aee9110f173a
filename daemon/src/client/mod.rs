//! Clients of the control socket: the `meshpost` CLI and the rpcd plugin,
//! both over one connection module (neither imports the other's logic
//! except that `meshpost rpc` hands over to the plugin).

pub mod cli;
pub mod connection;
pub mod files;
pub mod qr;
pub mod rpcd;
pub mod selftest;
pub mod wait;
