//! The mDNS packet parser on arbitrary bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use meshpost_proto::mdns;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = mdns::parse(data) {
        assert!(p.announcements.len() <= 4096);
    }
});
