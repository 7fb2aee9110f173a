//! The simulator as a library: the binary (main.rs) and the namespace test
//! that holds real daemons to the simulator's figures (tests/netns.rs)
//! run the same engine.

pub mod converge;
pub mod engine;
pub mod plot;
pub mod topo;
