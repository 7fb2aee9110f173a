//! Opening arbitrary direct payloads with a fixed identity never panics:
//! one-shot suites, and session suites against a book holding one session
//! (id all zeros) from the origin, so counters, jumps and skipped keys are
//! reached too; and the same bytes as a session start sent again (suite
//! 6) and as a payload whose session is asked for.
#![no_main]
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use meshpost_proto::e2e;
use meshpost_proto::identity::{Identity, NodeId};
use meshpost_proto::session::{Inbound, RecvSession};
use zeroize::Zeroizing;

fuzz_target!(|data: &[u8]| {
    static ME: OnceLock<Identity> = OnceLock::new();
    let me = ME.get_or_init(|| Identity::from_seed(&[9; 32]));
    let mut book = Inbound::default();
    book.insert(NodeId([3; 16]), RecvSession::new([0; 8], Zeroizing::new([5; 32]), 0));
    let _ = e2e::open_any(me, &mut book, NodeId([3; 16]), &[1; 32], &[2; 16], data, 10);
    let _ = e2e::restate(me, &mut book, NodeId([3; 16]), data, 10, data.first() == Some(&0));
    let _ = e2e::session_of(data);
});
