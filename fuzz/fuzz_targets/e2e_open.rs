//! Opening arbitrary direct payloads with a fixed identity never panics.
#![no_main]
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use meshpost_proto::e2e;
use meshpost_proto::identity::Identity;

fuzz_target!(|data: &[u8]| {
    static ME: OnceLock<Identity> = OnceLock::new();
    let me = ME.get_or_init(|| Identity::from_seed(&[9; 32]));
    let _ = e2e::open(me, &[1; 32], &[2; 16], data);
});
