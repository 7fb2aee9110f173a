//! Fragment reassembly with arbitrary fragment headers stays within budget.
#![no_main]
use libfuzzer_sys::fuzz_target;
use meshpost_proto::fragment::Reassembler;

fuzz_target!(|data: &[u8]| {
    let mut r = Reassembler::new(4, 64 * 1024, 10_000);
    for (i, c) in data.chunks(16).enumerate() {
        if c.len() < 9 {
            break;
        }
        let xfer = u32::from(c[0] % 8);
        let index = u16::from_be_bytes([c[1], c[2]]) % 64;
        let count = u16::from_be_bytes([c[3], c[4]]) % 70;
        let _ = r.insert(i as u64 * 100, xfer, index, count, &c[5..]);
        assert!(r.bytes() <= 64 * 1024);
    }
});
