//! The UCI parser and typed config on arbitrary text.
#![no_main]
use libfuzzer_sys::fuzz_target;
use meshpost::config::Settings;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = meshpost::uci::parse(text);
        let mut s = Settings::defaults();
        let _ = s.apply_text("fuzz", text);
    }
});
