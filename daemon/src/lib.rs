//! The meshpost daemon as a library: configuration, control socket,
//! persistence and the runtime around the sans-IO core in `meshpost-proto`.
//! `main.rs` is a thin entry point; fuzzers and tests reach the parsers here.

pub mod cli;
pub mod config;
pub mod control;
pub mod discovery;
pub mod inbox;
pub mod log;
pub mod netlink;
pub mod persist;
pub mod rpcd;
pub mod runtime;
pub mod uci;
