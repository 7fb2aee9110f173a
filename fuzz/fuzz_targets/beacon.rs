//! Beacon::decode on arbitrary bytes; accepted beacons must round-trip.
#![no_main]
use libfuzzer_sys::fuzz_target;
use meshpost_proto::beacon::Beacon;

fuzz_target!(|data: &[u8]| {
    if let Ok(b) = Beacon::decode(data) {
        assert_eq!(b.encode(), data);
    }
});
