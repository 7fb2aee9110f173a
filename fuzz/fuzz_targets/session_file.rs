//! Decoding an arbitrary sessions file never panics, and what decodes
//! encodes back to the same bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use meshpost_proto::session::Inbound;

fuzz_target!(|data: &[u8]| {
    let mut book = Inbound::default();
    if let Ok(origin) = book.restore(data) {
        assert_eq!(book.encode(&origin).as_ref().map(|f| f.as_bytes()), Some(data));
    }
});
