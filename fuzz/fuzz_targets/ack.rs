//! The end-to-end acknowledgement payload parser; accepted acks and
//! refusals round-trip.
#![no_main]
use libfuzzer_sys::fuzz_target;
use meshpost_proto::ack;

fuzz_target!(|data: &[u8]| {
    if let Ok(ids) = ack::decode(data) {
        assert_eq!(ack::encode(&ids), data);
    }
    if let Ok(a) = ack::decode_any(data) {
        let back = match a.refused {
            Some(reason) => ack::encode_refusal(&a.ids, reason),
            None => ack::encode(&a.ids),
        };
        assert_eq!(back, data);
    }
});
