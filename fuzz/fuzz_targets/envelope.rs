//! Envelope::decode and Envelope::peek_id on arbitrary bytes; accepted
//! envelopes must round-trip, and peek_id must name them as decode does.
#![no_main]
use libfuzzer_sys::fuzz_target;
use meshpost_proto::envelope::Envelope;

fuzz_target!(|data: &[u8]| {
    let peeked = Envelope::peek_id(data);
    if let Ok(env) = Envelope::decode(data, 1_800_000_000) {
        assert_eq!(env.bytes(), data);
        assert_eq!(peeked.ok(), Some((env.id(), env.kind())), "peek_id agrees with decode");
        let _ = Envelope::decode_ignoring_time(env.bytes()).expect("valid envelope re-decodes");
    }
});
