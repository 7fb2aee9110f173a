//! The identity file parser on arbitrary bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use meshpost_proto::identity::Identity;

fuzz_target!(|data: &[u8]| {
    let _ = Identity::from_file_bytes(data);
});
