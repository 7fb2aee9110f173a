//! Card::decode on arbitrary bytes; accepted cards must round-trip.
#![no_main]
use libfuzzer_sys::fuzz_target;
use meshpost_proto::card::Card;

fuzz_target!(|data: &[u8]| {
    if let Ok(card) = Card::decode([7; 32], data) {
        assert_eq!(Card::decode([7; 32], &card.encode()), Ok(card));
    }
});
