//! Envelope encoding, signing, checks and reading back.

use super::*;
use rand_core::OsRng;

const NOW: u64 = 1_800_000_000;

fn draft(payload: &[u8]) -> Draft<'_> {
    Draft {
        kind: Kind::Direct,
        max_hops: 4,
        created: NOW,
        ttl: 3600,
        dest: Destination { id: [7; 16], domain: "ffa".into() },
        payload,
    }
}

fn sealed() -> (Identity, Envelope) {
    let id = Identity::generate(&mut OsRng);
    let env = Envelope::seal(&id, &draft(b"hello mesh")).unwrap();
    (id, env)
}

#[test]
fn bytes_read_back_are_taken_only_as_the_stored_envelope_with_its_hops() {
    let (id, mut env) = sealed();
    let head = env.head().clone();
    // The disk has an older hop count than memory: memory's counts.
    env.take_hop();
    let back = Envelope::from_stored(env.head(), &{
        let mut b = env.bytes().to_vec();
        b[1] = 4;
        b
    })
    .unwrap();
    assert_eq!(back.hops_left(), 3);
    assert_eq!(back.bytes()[1], 3);
    assert_eq!(&back.bytes()[2..], &env.bytes()[2..]);
    // A changed signed byte, a changed signature, another envelope,
    // and a cut record are each refused.
    let not = Err(EnvelopeError::NotStored { id: head.id() });
    let mut b = env.bytes().to_vec();
    b[env.payload_range().start] ^= 1;
    assert_eq!(Envelope::from_stored(&head, &b), not);
    let mut b = env.bytes().to_vec();
    *b.last_mut().unwrap() ^= 1;
    assert_eq!(Envelope::from_stored(&head, &b), not);
    let other = Envelope::seal(&id, &draft(b"hello mash")).unwrap();
    assert_eq!(Envelope::from_stored(&head, other.bytes()), not);
    assert!(Envelope::from_stored(&head, &env.bytes()[..env.len() - 1]).is_err());
}

#[test]
fn round_trip_keeps_every_field() {
    let (id, env) = sealed();
    let back = Envelope::decode(env.bytes(), NOW + 1).unwrap();
    assert_eq!(back, env);
    assert_eq!(back.payload(), b"hello mesh");
    assert_eq!(back.origin(), &id.public_key());
    assert_eq!(back.dest().domain, "ffa");
    assert_eq!(back.hops_left(), 4);
    assert_eq!(back.expires_at(), NOW + 3600);
}

#[test]
fn a_peeked_decode_is_the_decode() {
    let (_, env) = sealed();
    let (id, kind) = Envelope::peek_id(env.bytes()).unwrap();
    assert_eq!((id, kind), (env.id(), env.kind()));
    assert_eq!(Envelope::decode_peeked(env.bytes(), NOW, id), Envelope::decode(env.bytes(), NOW));
    // The peek does not check the signature; the peeked decode does.
    let mut forged = env.bytes().to_vec();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    let (fid, _) = Envelope::peek_id(&forged).unwrap();
    assert_eq!(fid, id, "the signature is not in the id");
    assert_eq!(Envelope::decode_peeked(&forged, NOW, fid), Err(EnvelopeError::BadSignature));
}

#[test]
fn hops_left_is_outside_the_signature_and_the_id() {
    let (_, mut env) = sealed();
    let id = env.id();
    assert!(env.take_hop());
    let back = Envelope::decode(env.bytes(), NOW).unwrap();
    assert_eq!(back.hops_left(), 3);
    assert_eq!(back.id(), id);
    // Lifting never goes past the signed limit (4), nor lowers.
    env.lift_hops(200);
    assert_eq!(env.hops_left(), 4);
    env.lift_hops(1);
    assert_eq!(env.hops_left(), 4);
    assert!(Envelope::decode(env.bytes(), NOW).is_ok());
}

#[test]
fn rejects_bad_version() {
    let (_, env) = sealed();
    let mut b = env.bytes().to_vec();
    b[0] = 2;
    assert_eq!(Envelope::decode(&b, NOW), Err(EnvelopeError::BadVersion { got: 2 }));
}

#[test]
fn rejects_every_truncation() {
    let (_, env) = sealed();
    let b = env.bytes();
    for cut in 0..b.len() {
        let err = Envelope::decode(&b[..cut], NOW).unwrap_err();
        assert!(matches!(err, EnvelopeError::Truncated { .. }), "cut {cut}: {err:?}");
    }
}

#[test]
fn rejects_trailing_bytes() {
    let (_, env) = sealed();
    let mut b = env.bytes().to_vec();
    b.push(0);
    assert_eq!(Envelope::decode(&b, NOW), Err(EnvelopeError::TrailingBytes { extra: 1 }));
}

#[test]
fn rejects_oversize_on_decode_and_on_seal() {
    let big = vec![0u8; MAX_ENVELOPE_LEN + 1];
    assert!(matches!(Envelope::decode(&big, NOW), Err(EnvelopeError::Oversize { .. })));
    let id = Identity::generate(&mut OsRng);
    let payload = vec![0u8; MAX_ENVELOPE_LEN];
    assert!(matches!(Envelope::seal(&id, &draft(&payload)), Err(EnvelopeError::Oversize { .. })));
    // The largest payload that fits is accepted.
    let fit = vec![1u8; MAX_ENVELOPE_LEN - HEADER_LEN - 3 - SIG_LEN];
    let env = Envelope::seal(&id, &draft(&fit)).unwrap();
    assert_eq!(env.len(), MAX_ENVELOPE_LEN);
    assert!(Envelope::decode(env.bytes(), NOW).is_ok());
}

#[test]
fn rejects_forged_signature_and_tampered_fields() {
    let (_, env) = sealed();
    // Flip one bit in the payload, in the signature, and in the origin.
    for pos in [env.payload_range().start, env.len() - 1, 10] {
        let mut b = env.bytes().to_vec();
        b[pos] ^= 0x01;
        assert_eq!(Envelope::decode(&b, NOW), Err(EnvelopeError::BadSignature), "pos {pos}");
    }
    // Re-signing with another key under the same origin field fails too.
    let other = Identity::generate(&mut OsRng);
    let forged = Envelope::seal(&other, &draft(b"hello mesh")).unwrap();
    let mut b = env.bytes().to_vec();
    let n = b.len();
    b[n - 64..].copy_from_slice(&forged.bytes()[forged.len() - 64..]);
    assert_eq!(Envelope::decode(&b, NOW), Err(EnvelopeError::BadSignature));
}

#[test]
fn rejects_expired_and_future() {
    let (_, env) = sealed();
    assert_eq!(
        Envelope::decode(env.bytes(), NOW + 3600),
        Err(EnvelopeError::Expired { expired_at: NOW + 3600, now: NOW + 3600 })
    );
    assert!(matches!(
        Envelope::decode(env.bytes(), NOW - MAX_CLOCK_SKEW - 1),
        Err(EnvelopeError::FromTheFuture { .. })
    ));
}

#[test]
fn rejects_too_many_hops() {
    let (_, env) = sealed();
    let mut b = env.bytes().to_vec();
    b[1] = 5; // a relay raised hops_left above the signed max of 4
    assert_eq!(Envelope::decode(&b, NOW), Err(EnvelopeError::TooManyHops { max_hops: 4, hops_left: 5 }));
    let id = Identity::generate(&mut OsRng);
    let mut d = draft(b"x");
    d.max_hops = MAX_HOPS + 1;
    assert!(matches!(Envelope::seal(&id, &d), Err(EnvelopeError::TooManyHops { .. })));
}

#[test]
fn rejects_unknown_kind_bad_domain_and_bad_ttl() {
    let id = Identity::generate(&mut OsRng);
    let mut d = draft(b"x");
    d.dest.domain = "Bad Domain".into();
    assert_eq!(Envelope::seal(&id, &d).unwrap_err(), EnvelopeError::BadDomain);
    let mut d = draft(b"x");
    d.ttl = 0;
    assert_eq!(Envelope::seal(&id, &d).unwrap_err(), EnvelopeError::BadTtl { ttl: 0 });
    let (_, env) = sealed();
    let mut b = env.bytes().to_vec();
    b[2] = 9;
    assert_eq!(Envelope::decode(&b, NOW), Err(EnvelopeError::UnknownKind { got: 9 }));
    let mut b = env.bytes().to_vec();
    b[65] = b'A';
    assert_eq!(Envelope::decode(&b, NOW), Err(EnvelopeError::BadDomain));
}

#[test]
fn garbage_never_panics() {
    let mut state = 0x1234_5678_9abc_def0u64;
    for len in 0..2000 {
        let mut b = Vec::with_capacity(len);
        for _ in 0..len {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            b.push(state as u8);
        }
        if len > 1 {
            b[0] = VERSION;
        }
        assert!(Envelope::decode(&b, NOW).is_err());
    }
}
