//! Differential: meshpost's UCI reader and the real libuci must read every
//! input the same (sections, options, lists, order) or fail with the same
//! reason at the same line. Inputs with a NUL byte are out of scope
//! (meshpost refuses them; see daemon/src/config/uci/mod.rs), as is the
//! third-declaration bug of the vendored libuci (tests/uci_libuci.rs).
#![no_main]
use libfuzzer_sys::fuzz_target;
use meshpost::uci;

fuzz_target!(|data: &[u8]| {
    if data.contains(&0) {
        return;
    }
    let ours = uci::parse_raw(data);
    let real = libuci_ref::parse(data);
    match (&ours, &real) {
        (Ok(a), Ok(b)) => assert_eq!(uci::dump(a), *b, "read differently"),
        (Err(a), Err(b)) => {
            if b.reason == "option/list command found before the first section" && a.kind.libuci_reason() != b.reason {
                return; // the vendored libuci's third-declaration bug
            }
            assert_eq!((a.kind.libuci_reason(), a.libuci_line), (b.reason.as_str(), b.line), "different error");
        }
        (Ok(_), Err(b)) if b.reason == "option/list command found before the first section" => {}
        _ => panic!("one reader accepted, the other refused: {ours:?} vs {real:?}"),
    }
});
