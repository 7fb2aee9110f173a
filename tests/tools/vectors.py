#!/usr/bin/env python3
"""Checks meshpost's crypto against independent implementations, from the
text of docs/protocol.md alone: Python's `cryptography` (Ed25519, X25519,
ChaCha20-Poly1305), hashlib's BLAKE2s (the KDF) and kyber-py (a pure-Python
ML-KEM-768 from PyPI).

Input (stdin, JSON, made by tests/vectors_python.rs with meshpost's code):
two identity seeds and what meshpost derives from them, an envelope from A
to B with an end-to-end payload, its id, and three messages of an
end-to-end session from A to B. It checks every derivation, opens the
payload and the session messages (out of order) as B, then seals and signs
a reply and three session messages from B to A itself, which the Rust test
opens with meshpost. Output: one JSON object.
"""
import hashlib
import ipaddress
import json
import os
import struct
import sys

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from kyber_py.ml_kem import ML_KEM_768

CONTEXT = b"meshpost envelope v1"
RAW = (Encoding.Raw, PublicFormat.Raw)


def kdf(label, key, parts):
    """protocol.md section 1."""
    assert len(label) == 8
    if len(key) > 32:
        key = kdf(b"mp-lkey\0", b"", [key])
    key = key or bytes(32)
    h = hashlib.blake2s(digest_size=32, key=key, person=label)
    for p in parts:
        h.update(struct.pack(">I", len(p)))
        h.update(p)
    return h.digest()


def derive(seed):
    """protocol.md section 2."""
    sk = Ed25519PrivateKey.from_private_bytes(seed)
    ed = sk.public_key().public_bytes(*RAW)
    scalar = hashlib.sha512(seed).digest()[:32]
    noise = X25519PrivateKey.from_private_bytes(scalar).public_key().public_bytes(*RAW)
    e2e_sk = X25519PrivateKey.from_private_bytes(kdf(b"mp-e2ex\0", seed, []))
    ek, dk = ML_KEM_768._keygen_internal(kdf(b"mp-kemd\0", seed, []), kdf(b"mp-kemz\0", seed, []))
    return {
        "sk": sk,
        "ed": ed,
        "node_id": kdf(b"mp-nodid", b"", [ed])[:16],
        "noise": noise,
        "e2e_sk": e2e_sk,
        "e2e": e2e_sk.public_key().public_bytes(*RAW),
        "ek": ek,
        "dk": dk,
    }


def parse_envelope(b):
    """protocol.md section 7."""
    version, hops_left, kind, max_hops = b[0], b[1], b[2], b[3]
    origin = b[4:36]
    created, ttl = struct.unpack(">QI", b[36:48])
    dest = b[48:64]
    dl = b[64]
    domain = b[65:65 + dl]
    (plen,) = struct.unpack(">I", b[65 + dl:69 + dl])
    payload = b[69 + dl:69 + dl + plen]
    signed = b[2:69 + dl + plen]
    sig = b[69 + dl + plen:]
    assert len(sig) == 64, "signature length"
    return dict(version=version, hops_left=hops_left, kind=kind, max_hops=max_hops, origin=origin,
                created=created, ttl=ttl, dest=dest, domain=domain, payload=payload, signed=signed, sig=sig)


def envelope_id(env):
    return kdf(b"mp-envid", b"", [bytes([env["version"]]), env["signed"]])[:16]


def open_payload(me, origin, dest, payload):
    """protocol.md section 7.2, as the recipient."""
    suite = payload[0]
    assert suite == 2, "suite 2 expected"
    eph = payload[1:33]
    ct = payload[33:33 + 1088]
    sealed = payload[33 + 1088:]
    dh = me["e2e_sk"].exchange(X25519PublicKey.from_public_bytes(eph))
    ss = ML_KEM_768.decaps(me["dk"], ct)
    key = kdf(b"mp-e2e\0\0", b"", [dh, ss, eph, me["e2e"], ct])
    plain = ChaCha20Poly1305(key).decrypt(bytes(12), sealed, origin + dest)
    ctype = plain[0]
    (n,) = struct.unpack(">I", plain[1:5])
    body = plain[5:5 + n]
    assert len(plain) == padded_len(5 + n), "padded as protocol.md section 7.2 says"
    assert plain[5 + n:] == bytes(len(plain) - 5 - n), "zero padding"
    return ctype, body


def seal_payload(recipient, origin, dest, body):
    """protocol.md section 7.2, as the sender (fresh randomness)."""
    eph_sk = X25519PrivateKey.generate()
    eph = eph_sk.public_key().public_bytes(*RAW)
    dh = eph_sk.exchange(X25519PublicKey.from_public_bytes(recipient["e2e"]))
    ss, ct = ML_KEM_768.encaps(recipient["ek"])
    key = kdf(b"mp-e2e\0\0", b"", [dh, ss, eph, recipient["e2e"], ct])
    n = len(body)
    plain = bytes([1]) + struct.pack(">I", n) + body
    plain += bytes(padded_len(len(plain)) - len(plain))
    return bytes([2]) + eph + ct + ChaCha20Poly1305(key).encrypt(bytes(12), plain, origin + dest)


def padded_len(n):
    """protocol.md section 7.2: 128 bytes up to 128, then the next multiple
    of an eighth of the largest power of two not above n, at most 256."""
    if n <= 128:
        return 128
    step = min((1 << (n.bit_length() - 1)) // 8, 256)
    return -(-n // step) * step


def pad(body):
    plain = bytes([1]) + struct.pack(">I", len(body)) + body
    return plain + bytes(padded_len(len(plain)) - len(plain))


def unpad(plain):
    ctype = plain[0]
    (n,) = struct.unpack(">I", plain[1:5])
    assert len(plain) == padded_len(5 + n) and plain[5 + n:] == bytes(len(plain) - 5 - n), "padding"
    return ctype, plain[5:5 + n]


class Sessions:
    """protocol.md section 7.2.1, as the recipient: sessions by id, each a
    chain key, its counter and the keys of counters skipped past."""

    def __init__(self, me):
        self.me = me
        self.by_sid = {}

    def open(self, origin, dest, payload):
        suite = payload[0]
        if suite in (4, 5):
            sid, (n,) = payload[1:9], struct.unpack(">I", payload[9:13])
            header_len = 13
            assert sid in self.by_sid, "suite 4/5 before the session started"
        else:
            assert suite == 3, "suite 3, 4 or 5 expected"
            (n,) = struct.unpack(">I", payload[1:5])
            eph, ct = payload[5:37], payload[37:37 + 1088]
            header_len = 37 + 1088
            sid = kdf(b"mp-sid\0\0", b"", [eph, ct])[:8]
            if sid not in self.by_sid:
                dh = self.me["e2e_sk"].exchange(X25519PublicKey.from_public_bytes(eph))
                ss = ML_KEM_768.decaps(self.me["dk"], ct)
                root = kdf(b"mp-e2s\0\0", b"", [dh, ss, eph, self.me["e2e"], ct])
                self.by_sid[sid] = {"ck": kdf(b"mp-ck0\0\0", root, []), "next": 0, "skipped": {}}
        s = self.by_sid[sid]
        while s["next"] <= n:
            s["skipped"][s["next"]] = kdf(b"mp-mk\0\0\0", s["ck"], [])
            s["ck"] = kdf(b"mp-ck\0\0\0", s["ck"], [])
            s["next"] += 1
        mk = s["skipped"].pop(n)
        aad = origin + dest + payload[:header_len]
        return unpad(ChaCha20Poly1305(mk).decrypt(bytes(12), payload[header_len:], aad))


def seal_session(recipient, origin, dest, bodies, early_from, confirmed_from):
    """protocol.md section 7.2.1, as the sender: one session, suite 3 for
    counters below `early_from`, suite 5 (naming the unconfirmed session)
    below `confirmed_from`, suite 4 from there."""
    eph_sk = X25519PrivateKey.generate()
    eph = eph_sk.public_key().public_bytes(*RAW)
    dh = eph_sk.exchange(X25519PublicKey.from_public_bytes(recipient["e2e"]))
    ss, ct = ML_KEM_768.encaps(recipient["ek"])
    ck = kdf(b"mp-ck0\0\0", kdf(b"mp-e2s\0\0", b"", [dh, ss, eph, recipient["e2e"], ct]), [])
    sid = kdf(b"mp-sid\0\0", b"", [eph, ct])[:8]
    out = []
    for n, body in enumerate(bodies):
        mk, ck = kdf(b"mp-mk\0\0\0", ck, []), kdf(b"mp-ck\0\0\0", ck, [])
        if n < early_from:
            header = bytes([3]) + struct.pack(">I", n) + eph + ct
        elif n < confirmed_from:
            header = bytes([5]) + sid + struct.pack(">I", n)
        else:
            header = bytes([4]) + sid + struct.pack(">I", n)
        out.append(header + ChaCha20Poly1305(mk).encrypt(bytes(12), pad(body), origin + dest + header))
    return out


def sign_envelope(sender, kind, max_hops, created, ttl, dest, payload):
    signed = bytes([kind, max_hops]) + sender["ed"] + struct.pack(">QI", created, ttl) + dest
    signed += bytes([0]) + struct.pack(">I", len(payload)) + payload
    sig = sender["sk"].sign(CONTEXT + bytes([1]) + signed)
    return bytes([1, max_hops]) + signed + sig


def main():
    v = json.load(sys.stdin)
    h = bytes.fromhex
    checks = []

    def check(name, ok):
        checks.append(name)
        if not ok:
            print(json.dumps({"ok": False, "failed": name, "checks": checks}))
            sys.exit(1)

    for kdf_case in v["kdf"]:
        check("kdf " + kdf_case["what"], kdf(kdf_case["label"].encode(), h(kdf_case["key"]),
                                             [h(p) for p in kdf_case["parts"]]).hex() == kdf_case["out"])
    ck = v["cookie"]
    mapped = ipaddress.IPv6Address("::ffff:" + ck["ip"]).packed
    cookie = kdf(b"mp-cook\0", h(ck["secret"]), [mapped])[:16]
    check("cookie for an IPv4 address", cookie.hex() == ck["cookie"])
    init = h(ck["init"])
    mac2 = kdf(b"mp-mac2\0", cookie, [init[2:6], init[6:]])[:10]
    check("msg1 sent again with its proof (type 5)", (bytes([5, 1]) + init[2:6] + mac2 + init[6:]).hex() == ck["init_cookie"])
    a, b = derive(h(v["a"]["seed"])), derive(h(v["b"]["seed"]))
    for who, mine, theirs in (("a", a, v["a"]), ("b", b, v["b"])):
        check(who + " ed25519 public key", mine["ed"].hex() == theirs["ed"])
        check(who + " node id", mine["node_id"].hex() == theirs["node_id"])
        check(who + " noise static (montgomery form)", mine["noise"].hex() == theirs["noise"])
        check(who + " end-to-end x25519 key", mine["e2e"].hex() == theirs["e2e"])
        check(who + " ml-kem-768 encapsulation key", mine["ek"].hex() == theirs["kem_ek"])

    env = parse_envelope(h(v["envelope"]))
    check("envelope id", envelope_id(env).hex() == v["envelope_id"])
    try:
        Ed25519PublicKey.from_public_bytes(env["origin"]).verify(env["sig"], CONTEXT + bytes([env["version"]]) + env["signed"])
        check("envelope signature", True)
    except Exception:
        check("envelope signature", False)
    resigned = sign_envelope(a, env["kind"], env["max_hops"], env["created"], env["ttl"], env["dest"], env["payload"])
    check("deterministic signature identical", resigned[2:] == h(v["envelope"])[2:])
    ctype, body = open_payload(b, env["origin"], env["dest"], env["payload"])
    check("payload opened by the recipient", ctype == 1 and body.decode() == v["text"])

    # A session from A to B: the start, then counters 2 and 1 out of order.
    sess = v["session"]
    check("suites 3, 5, 4", [h(x)[0] for x in sess["payloads"]] == [3, 5, 4])
    try:
        Sessions(b).open(env["origin"], env["dest"], h(sess["payloads"][1]))
        waits = False
    except AssertionError:
        waits = True
    check("suite 5 cannot open before its session's start", waits)
    book = Sessions(b)
    for i in (0, 2, 1):
        ctype, body = book.open(env["origin"], env["dest"], h(sess["payloads"][i]))
        check("session message %d opened out of order" % i, ctype == 1 and body.decode() == sess["texts"][i])
    sess_texts = ["python session %d %s %s" % (i, os.urandom(2).hex(), "x" * 150 * i) for i in range(3)]
    sess_reply = seal_session(a, b["ed"], a["node_id"], [t.encode() for t in sess_texts], 1, 2)

    reply_text = "reply from python " + os.urandom(4).hex()
    payload = seal_payload(a, b["ed"], a["node_id"], reply_text.encode())
    reply = sign_envelope(b, 1, 8, env["created"], 3600, a["node_id"], payload)
    print(json.dumps({"ok": True, "checks": checks, "reply": reply.hex(), "reply_text": reply_text,
                      "reply_id": envelope_id(parse_envelope(reply)).hex(),
                      "session_reply": [x.hex() for x in sess_reply], "session_texts": sess_texts}))


if __name__ == "__main__":
    main()
