//! Card::decode on arbitrary bytes; accepted cards must round-trip, and
//! Card::decode_shared (the card book's parser, the key left in the
//! announce's bytes) must give the same answer for the payload placed at
//! an offset within a larger buffer.
#![no_main]
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use meshpost_proto::card::Card;

fuzz_target!(|data: &[u8]| {
    let decoded = Card::decode([7; 32], data);
    let at = data.first().map_or(0, |b| usize::from(*b % 8));
    let mut framed = vec![0xa5; at];
    framed.extend_from_slice(data);
    framed.extend_from_slice(&[0x5a; 3]);
    let framed: Arc<[u8]> = framed.into();
    assert_eq!(Card::decode_shared([7; 32], &framed, at..at + data.len()), decoded);
    if let Ok(card) = decoded {
        assert_eq!(Card::decode([7; 32], &card.encode()), Ok(card));
    }
});
