//! meshpost's cryptography checked against independent implementations
//! working from docs/protocol.md alone (tests/tools/vectors.py): Python's
//! `cryptography` (Ed25519, X25519, ChaCha20-Poly1305), hashlib's BLAKE2s
//! and kyber-py, a pure-Python ML-KEM-768 from PyPI. Both installed into
//! target/pyvenv by `make pytools`.
//!
//! Rust derives two identities from fixed seeds and sends an envelope with
//! an end-to-end payload from A to B; Python re-derives every key, checks
//! the KDF and cookie vectors (protocol.md 4.1), the envelope id and signature (and signs the same
//! bytes itself: Ed25519 is deterministic, so they must be identical),
//! opens the payload as B, and seals and signs a reply from B to A, which
//! meshpost then verifies and opens as A.
//!
//! Outside CI a missing venv skips with a message; in CI it must run.

#[path = "common/mod.rs"]
mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::venv_python;
use meshpost_proto::card::Card;
use meshpost_proto::crypto::{kdf, to_hex};
use meshpost_proto::e2e;
use meshpost_proto::envelope::{Destination, Draft, Envelope, Kind};
use meshpost_proto::identity::{Identity, noise_static_for};
use meshpost_proto::link::cookie;
use meshpost_proto::link::handshake::Initiator;
use meshpost_proto::link::packet::emit_init_cookie;
use meshpost_proto::rng::NodeRng;
use serde_json::{Value, json};

fn describe(id: &Identity, seed: &[u8; 32]) -> Value {
    json!({
        "seed": to_hex(seed),
        "ed": to_hex(&id.public_key()),
        "node_id": id.node_id().to_string(),
        "noise": to_hex(&noise_static_for(&id.public_key()).unwrap()),
        "e2e": to_hex(&id.e2e_public()),
        "kem_ek": to_hex(id.kem_public()),
    })
}

fn card_of(id: &Identity) -> Card {
    Card {
        ed_pk: id.public_key(),
        x25519: id.e2e_public(),
        kem_ek: Some(meshpost_proto::card::KemKey::new(id.kem_public())),
        name: "b".into(),
        domain: String::new(),
        seq: 1,
        neighbours: Vec::new(),
        gateway_for: Vec::new(),
    }
}

#[test]
fn an_independent_python_implementation_agrees_with_meshpost_both_ways() {
    let Some(py) = venv_python("cryptography, kyber_py") else { return };
    let (seed_a, seed_b) = ([0x11u8; 32], [0x22u8; 32]);
    let (a, b) = (Identity::from_seed(&seed_a), Identity::from_seed(&seed_b));
    let text = "grüße an B — über meshpost";
    let payload = e2e::seal(
        &mut NodeRng::from_seed([3; 32]),
        &card_of(&b),
        &a.public_key(),
        &b.node_id().0,
        e2e::CONTENT_TEXT,
        text.as_bytes(),
    );
    let created = 1_800_000_000;
    let env = Envelope::seal(
        &a,
        &Draft {
            kind: Kind::Direct,
            max_hops: 8,
            created,
            ttl: 3600,
            dest: Destination { id: b.node_id().0, domain: String::new() },
            payload: &payload,
        },
    )
    .unwrap();
    // Three messages of a session from A to B (protocol.md 7.2.1): the
    // first with the starting exchange, the second naming the session
    // before B confirmed it (suite 5), the third after (suite 4).
    let mut session =
        e2e::start_session(&mut NodeRng::from_seed([4; 32]), &card_of(&b), created).expect("B offers ML-KEM");
    // The second is long enough to pad past the short size (205 bytes
    // framed, 208 padded), the third long enough for steps of 64.
    let long = format!("zweite — {}", "2".repeat(189));
    let longer = "third ".repeat(100);
    let texts = ["erste", long.as_str(), longer.as_str()];
    let suites = [e2e::SUITE_SESSION_INIT, e2e::SUITE_SESSION_EARLY, e2e::SUITE_SESSION];
    let mut payloads = Vec::new();
    let expires = created + 3600;
    for (i, t) in texts.iter().enumerate() {
        session.confirmed = i > 1;
        let (p, n) =
            e2e::seal_in(&mut session, &a.public_key(), &b.node_id().0, e2e::CONTENT_TEXT, t.as_bytes(), expires);
        // The node notes each message that carried the start.
        session.starts.insert([i as u8; 16]);
        assert_eq!((n as usize, p[0]), (i, suites[i]));
        payloads.push(to_hex(&p));
    }
    let key: Vec<u8> = (0u8..32).collect();
    // The handshake under load (protocol.md 4.1): a cookie for 192.0.2.7 and
    // a real msg1 sent again with its proof.
    let secret: [u8; 32] = core::array::from_fn(|i| i as u8);
    let cookie_v4 = cookie::cookie(&secret, "192.0.2.7".parse().unwrap());
    let (_, init) = Initiator::start(&a, &mut NodeRng::from_seed([3; 32]), 0x0102_0304).unwrap();
    let init_cookie = emit_init_cookie(&init, &cookie::mac2(&cookie_v4, 0x0102_0304, &init[6..])).unwrap();
    let kdf_case = |what: &str, label: &[u8; 8], key: &[u8], parts: &[&[u8]]| {
        json!({"what": what, "label": String::from_utf8_lossy(label), "key": to_hex(key),
            "parts": parts.iter().map(|p| to_hex(p)).collect::<Vec<_>>(), "out": to_hex(&kdf(label, key, parts))})
    };
    let input = json!({
        "a": describe(&a, &seed_a),
        "b": describe(&b, &seed_b),
        "envelope": to_hex(env.bytes()),
        "envelope_id": to_hex(&env.id().0),
        "session": {"payloads": payloads, "texts": texts},
        "text": text,
        "cookie": {
            "secret": to_hex(&key),
            "ip": "192.0.2.7",
            "init": to_hex(&init),
            "cookie": to_hex(&cookie_v4),
            "init_cookie": to_hex(&init_cookie),
        },
        "kdf": [
            kdf_case("node id of 00..1f", b"mp-nodid", &[], &[&key]),
            kdf_case("empty key is 32 zero bytes", b"mp-test\0", &[], &[b"a", b""]),
            kdf_case("long key is hashed first", b"mp-test\0", &[7; 40], &[b"x"]),
        ],
    });
    let mut child = Command::new(&py)
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/tools/vectors.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input.to_string().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!("python said: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    });
    assert_eq!(v["ok"], true, "python disagrees: {v}\n{}", String::from_utf8_lossy(&out.stderr));
    eprintln!("python checked: {}", v["checks"]);
    assert!(v["checks"].as_array().unwrap().len() >= 22, "{v}");

    // Python's reply, sealed and signed by Python: meshpost verifies it,
    // computes the same id, and opens it as A.
    let hex = v["reply"].as_str().unwrap();
    let bytes = meshpost_proto::crypto::from_hex_bytes(hex, 1 << 16).unwrap();
    let reply = Envelope::decode(&bytes, created + 10).expect("meshpost accepts python's envelope");
    assert_eq!(to_hex(&reply.id().0), v["reply_id"].as_str().unwrap());
    assert_eq!(reply.origin(), &b.public_key());
    let opened = e2e::open(&a, reply.origin(), &reply.dest().id, reply.payload()).expect("meshpost opens it");
    assert_eq!(String::from_utf8(opened.body).unwrap(), v["reply_text"].as_str().unwrap());

    // Python's session from B to A: suites 3, 5 and 4, opened by meshpost
    // out of order. Before the suite 3 message started the session here,
    // the suite 5 and suite 4 ones wait for it (a suite 4 one means we
    // held the session and lost it: its start is asked for again,
    // protocol.md "Sent again").
    let mut book = meshpost_proto::session::Inbound::default();
    let (b_ed, a_id) = (b.public_key(), a.node_id().0);
    let session_reply: Vec<Vec<u8>> = v["session_reply"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| meshpost_proto::crypto::from_hex_bytes(x.as_str().unwrap(), 1 << 16).unwrap())
        .collect();
    let early = e2e::open_any(&a, &mut book, b.node_id(), &b_ed, &a_id, &session_reply[1], created);
    assert!(matches!(early, Err(e2e::OpenError::SessionPending(_))), "{early:?}");
    let early = e2e::open_any(&a, &mut book, b.node_id(), &b_ed, &a_id, &session_reply[2], created);
    assert!(matches!(early, Err(e2e::OpenError::SessionPending(_))), "{early:?}");
    for i in [0, 2, 1] {
        let (opened, used) =
            e2e::open_any(&a, &mut book, b.node_id(), &b_ed, &a_id, &session_reply[i], created).expect("opens");
        assert_eq!(String::from_utf8(opened.body).unwrap(), v["session_texts"][i].as_str().unwrap());
        assert_eq!(used.map(|u| (u.counter, u.new)), Some((i as u32, i == 0)));
    }
}

/// The link handshake and transport keys (protocol.md sections 3-6) against
/// tests/tools/noise_peer.py: a Noise XX responder written from the spec on
/// Python's `cryptography`, hmac/hashlib BLAKE2s and kyber-py. meshpost
/// (the proto `Node` as node A) initiates; Python answers as node B with its
/// own ephemeral key and ML-KEM encapsulation, checks msg3, derives both
/// transport keys, opens A's first frame and sends one back, which A must
/// accept as the proof that confirms the link.
#[test]
fn an_independent_noise_responder_links_with_meshpost_and_both_read_frames() {
    use meshpost_proto::node::{Action, Config, Node, PeerSpec};
    use std::io::{BufRead, BufReader};

    let Some(py) = venv_python("cryptography, kyber_py") else { return };
    let (seed_a, seed_b) = ([0x11u8; 32], [0x22u8; 32]);
    let (a, b) = (Identity::from_seed(&seed_a), Identity::from_seed(&seed_b));
    let (a_ed, b_ed, b_id) = (a.public_key(), b.public_key(), b.node_id());
    let now = meshpost::runtime::timestamp();
    let mut node = Node::new(a, Config { name: "a".into(), ..Config::default() }, [5; 32], now);
    let addr: std::net::SocketAddr = "192.0.2.2:4270".parse().unwrap();
    node.add_peer(PeerSpec { addr, pin: Some(b_ed), federation: None }, now);
    node.handle_timeout(now);
    let sent = |node: &mut Node| {
        let mut out = Vec::new();
        while let Some(a) = node.poll_action() {
            if let Action::Transmit { data, .. } = a {
                out.push(data);
            }
        }
        out
    };
    let msg1 = sent(&mut node).into_iter().find(|d| d[0] == 1).expect("A sends msg1");

    let mut child = Command::new(&py)
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/tools/noise_peer.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut to_py = child.stdin.take().unwrap();
    let mut from_py = BufReader::new(child.stdout.take().unwrap());
    let mut ask = |v: Value| -> Value {
        writeln!(to_py, "{v}").unwrap();
        let mut line = String::new();
        from_py.read_line(&mut line).unwrap();
        serde_json::from_str(&line).unwrap_or_else(|_| panic!("python said: {line:?}"))
    };
    let v = ask(json!({"b_seed": to_hex(&seed_b), "msg1": to_hex(&msg1)}));
    let msg2 = meshpost_proto::crypto::from_hex_bytes(v["msg2"].as_str().expect("msg2"), 2048).unwrap();
    node.handle_datagram(meshpost::runtime::timestamp(), addr, &msg2);
    let out = sent(&mut node);
    let msg3 = out.iter().find(|d| d[0] == 3).expect("A accepts msg2 and sends msg3");
    // A's first transport datagrams: its announce (fragments) and the
    // keepalive that tells B it accepted the link.
    let frames: Vec<String> = out.iter().filter(|d| d[0] == 4).map(|d| to_hex(d)).collect();
    assert!(!frames.is_empty(), "A sends its first frames");
    let v = ask(json!({"msg3": to_hex(msg3), "transport": frames, "a_ed": to_hex(&a_ed), "a_seed": to_hex(&seed_a)}));
    let stderr = {
        let mut s = String::new();
        if v["ok"] != true {
            let _ = std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut s);
        }
        s
    };
    assert_eq!(v["ok"], true, "python disagrees: {v}\n{stderr}");
    eprintln!("python checked: {}", v["checks"]);
    assert!(!node.links().iter().any(|l| l.node == b_id && l.confirmed), "not up before B's first frame");
    let wrong = meshpost_proto::crypto::from_hex_bytes(v["wrong_key"].as_str().unwrap(), 2048).unwrap();
    node.handle_datagram(meshpost::runtime::timestamp(), addr, &wrong);
    assert!(!node.links().iter().any(|l| l.node == b_id && l.confirmed), "a frame under the wrong key is dropped");
    let reply = meshpost_proto::crypto::from_hex_bytes(v["transport"].as_str().unwrap(), 2048).unwrap();
    node.handle_datagram(meshpost::runtime::timestamp(), addr, &reply);
    assert!(
        node.links().iter().any(|l| l.node == b_id && l.confirmed),
        "A opens python's frame with key_responder_to_initiator and confirms the link"
    );
    let _ = child.wait();
}
