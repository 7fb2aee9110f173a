//! The UCI reader and typed config on arbitrary bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use meshpost::config::Settings;

fuzz_target!(|data: &[u8]| {
    let _ = meshpost::uci::parse(data);
    let mut s = Settings::defaults();
    let _ = s.apply_text("fuzz", data);
});
