//! A control socket line, read as the server reads it (JSON, then the
//! request's fields by hand, control/protocol.rs), never panics; what
//! reads as a request writes back as JSON that reads as the same request.
#![no_main]
use libfuzzer_sys::fuzz_target;
use meshpost::control::protocol::Request;

fuzz_target!(|data: &[u8]| {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    if let Ok(r) = Request::from_value(v) {
        assert_eq!(Request::from_value(r.to_value()), Ok(r));
    }
});
