//! Envelope::decode on arbitrary bytes; accepted envelopes must round-trip.
#![no_main]
use libfuzzer_sys::fuzz_target;
use meshpost_proto::envelope::Envelope;

fuzz_target!(|data: &[u8]| {
    if let Ok(env) = Envelope::decode(data, 1_800_000_000) {
        assert_eq!(env.bytes(), data);
        let _ = Envelope::decode_ignoring_time(env.bytes()).expect("valid envelope re-decodes");
    }
});
