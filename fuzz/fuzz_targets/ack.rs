//! The end-to-end acknowledgement payload parser; accepted lists round-trip.
#![no_main]
use libfuzzer_sys::fuzz_target;
use meshpost_proto::ack;

fuzz_target!(|data: &[u8]| {
    if let Ok(ids) = ack::decode(data) {
        assert_eq!(ack::encode(&ids), data);
    }
});
