//! Decrypted frame parsing on arbitrary bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use meshpost_proto::link::frame::Frame;

fuzz_target!(|data: &[u8]| {
    let _ = Frame::parse(data);
});
