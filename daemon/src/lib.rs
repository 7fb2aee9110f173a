//! The meshpost daemon as a library: configuration, control socket,
//! persistence and the runtime around the sans-IO core in `meshpost-proto`.
//! `main.rs` is a thin entry point; fuzzers and tests reach the parsers here.

pub mod client;
pub mod config;
pub mod control;
pub mod log;
pub mod net;
pub mod persist;
pub mod runtime;

pub use client::{cli, rpcd};
pub use config::uci;
pub use net::discovery;
pub use persist::inbox;
