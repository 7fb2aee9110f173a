//! Envelope::decode, Envelope::peek_id and Envelope::from_stored on
//! arbitrary bytes; accepted envelopes must round-trip, peek_id must name
//! them as decode does, and from_stored must take back only the envelope
//! its head describes (any hop count), nothing else.
#![no_main]
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use meshpost_proto::envelope::{Destination, Draft, Envelope, Kind};
use meshpost_proto::identity::Identity;

/// One stored envelope whose head the bytes are read back against.
fn stored() -> &'static Envelope {
    static STORED: OnceLock<Envelope> = OnceLock::new();
    STORED.get_or_init(|| {
        let draft = Draft {
            kind: Kind::Direct,
            max_hops: 8,
            created: 1_800_000_000,
            ttl: 3600,
            dest: Destination { id: [3; 16], domain: String::new() },
            payload: b"stored",
        };
        Envelope::seal(&Identity::from_seed(&[7; 32]), &draft).expect("a valid draft")
    })
}

fuzz_target!(|data: &[u8]| {
    let peeked = Envelope::peek_id(data);
    if let Ok(env) = Envelope::decode(data, 1_800_000_000) {
        assert_eq!(env.bytes(), data);
        assert_eq!(peeked.ok(), Some((env.id(), env.kind())), "peek_id agrees with decode");
        let _ = Envelope::decode_ignoring_time(env.bytes()).expect("valid envelope re-decodes");
        let back = Envelope::from_stored(env.head(), data).expect("an envelope reads back as itself");
        assert_eq!(back.bytes(), data);
    }
    let s = stored();
    if let Ok(back) = Envelope::from_stored(s.head(), data) {
        assert_eq!(back.id(), s.id());
        assert_eq!(back.hops_left(), s.hops_left(), "the head's hop count, not the bytes'");
        assert_eq!(&back.bytes()[2..], &s.bytes()[2..], "only the stored envelope's signed bytes");
        assert_eq!(back.bytes()[0], s.bytes()[0]);
    }
});
