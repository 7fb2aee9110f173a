//! The file part decoder: never panics, and what it accepts re-encodes to
//! the same bytes and obeys the fixed split (length from size and index).
#![no_main]
use libfuzzer_sys::fuzz_target;
use meshpost_proto::filepart;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = filepart::decode(data) {
        assert_eq!(filepart::encode(&p.meta, p.index, &p.data), data);
        assert_eq!(p.data.len(), filepart::part_len(p.meta.size as usize, p.index as usize));
        assert!(filepart::check_name(&p.meta.name).is_ok());
    }
});
