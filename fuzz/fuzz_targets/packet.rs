//! Link datagram parsing on arbitrary bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use meshpost_proto::link::packet::Packet;

fuzz_target!(|data: &[u8]| {
    let _ = Packet::parse(data);
});
