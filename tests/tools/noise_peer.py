#!/usr/bin/env python3
"""A link responder written from docs/protocol.md sections 3-6 alone, on
Python's `cryptography` (X25519, ChaCha20-Poly1305), hashlib/hmac
(BLAKE2s, Noise's HMAC-based HKDF) and kyber-py (ML-KEM-768): it answers
meshpost's handshake as node B, derives the transport keys, reads the
initiator's first transport frame and sends one back.

Protocol on stdin/stdout, one JSON object per line:
  in:  {"b_seed": hex, "msg1": hex}           out: {"msg2": hex}
  in:  {"msg3": hex, "transport": [hex], ...} out: {"ok": true, "checks": [...],
                                                    "transport": hex, "wrong_key": hex, "keys": {...}}
It implements Noise_XX_25519_ChaChaPoly_BLAKE2s from the Noise
specification (revision 34), not from any Noise library.
"""
import hashlib
import hmac
import json
import struct
import sys

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from kyber_py.ml_kem import ML_KEM_768

from vectors import derive, kdf

RAW = (Encoding.Raw, PublicFormat.Raw)
NAME = b"Noise_XX_25519_ChaChaPoly_BLAKE2s"
PROLOGUE = b"meshpost link v1"


def blake2s(data):
    return hashlib.blake2s(data, digest_size=32).digest()


def hkdf2(ck, ikm):
    """Noise HKDF with HMAC-BLAKE2s, two outputs."""
    temp = hmac.new(ck, ikm, hashlib.blake2s).digest()
    out1 = hmac.new(temp, b"\x01", hashlib.blake2s).digest()
    out2 = hmac.new(temp, out1 + b"\x02", hashlib.blake2s).digest()
    return out1, out2


def nonce(n):
    return bytes(4) + struct.pack("<Q", n)


class Symmetric:
    def __init__(self):
        self.h = NAME + bytes(32 - len(NAME)) if len(NAME) <= 32 else blake2s(NAME)
        self.ck = self.h
        self.k = None
        self.n = 0
        self.mix_hash(PROLOGUE)

    def mix_hash(self, data):
        self.h = blake2s(self.h + data)

    def mix_key(self, ikm):
        self.ck, self.k = hkdf2(self.ck, ikm)
        self.n = 0

    def encrypt_and_hash(self, plain):
        if self.k is None:
            self.mix_hash(plain)
            return plain
        ct = ChaCha20Poly1305(self.k).encrypt(nonce(self.n), plain, self.h)
        self.n += 1
        self.mix_hash(ct)
        return ct

    def decrypt_and_hash(self, ct):
        if self.k is None:
            self.mix_hash(ct)
            return ct
        plain = ChaCha20Poly1305(self.k).decrypt(nonce(self.n), ct, self.h)
        self.n += 1
        self.mix_hash(ct)
        return plain

    def split(self):
        return hkdf2(self.ck, b"")


def dh(priv, pub):
    return priv.exchange(X25519PublicKey.from_public_bytes(pub))


def main():
    checks = []

    def check(name, ok):
        checks.append(name)
        if not ok:
            print(json.dumps({"ok": False, "failed": name, "checks": checks}), flush=True)
            sys.exit(1)

    first = json.loads(sys.stdin.readline())
    b = derive(bytes.fromhex(first["b_seed"]))
    s_priv = X25519PrivateKey.from_private_bytes(hashlib.sha512(bytes.fromhex(first["b_seed"])).digest()[:32])
    d1 = bytes.fromhex(first["msg1"])
    check("msg1 datagram: type 1, version 1, 1222 bytes", d1[:2] == b"\x01\x01" and len(d1) == 1222)
    (a_index,) = struct.unpack(">I", d1[2:6])
    m1 = d1[6:]

    sym = Symmetric()
    # -> e, payload: the initiator's ML-KEM-768 encapsulation key (plaintext).
    re = m1[:32]
    sym.mix_hash(re)
    ek = sym.decrypt_and_hash(m1[32:])
    check("msg1 payload is an ML-KEM-768 encapsulation key", len(ek) == 1184)

    # <- e, ee, s, es, payload: ML-KEM ciphertext || our Ed25519 key.
    e_priv = X25519PrivateKey.generate()
    e_pub = e_priv.public_key().public_bytes(*RAW)
    m2 = e_pub
    sym.mix_hash(e_pub)
    sym.mix_key(dh(e_priv, re))
    m2 += sym.encrypt_and_hash(b["noise"])
    sym.mix_key(dh(s_priv, re))
    ss, kem_ct = ML_KEM_768.encaps(ek)
    m2 += sym.encrypt_and_hash(kem_ct + b["ed"])
    check("msg2 is 1216 bytes", len(m2) == 1216)
    b_index = 0x5EED0B0B
    d2 = b"\x02\x01" + struct.pack(">II", b_index, a_index) + m2
    print(json.dumps({"msg2": d2.hex()}), flush=True)

    second = json.loads(sys.stdin.readline())
    d3 = bytes.fromhex(second["msg3"])
    check("msg3 datagram: type 3, 102 bytes, our index", d3[:2] == b"\x03\x01" and len(d3) == 102
          and struct.unpack(">I", d3[2:6])[0] == b_index)
    m3 = d3[6:]
    # -> s, se, payload: the initiator's Ed25519 key.
    rs = sym.decrypt_and_hash(m3[:48])
    sym.mix_key(dh(e_priv, rs))
    a_ed = sym.decrypt_and_hash(m3[48:])
    check("msg3 payload is the initiator's Ed25519 key", a_ed.hex() == second["a_ed"])
    a = derive(bytes.fromhex(second["a_seed"]))
    check("initiator's Noise static is its Ed25519 key in Montgomery form", rs == a["noise"] and a_ed == a["ed"])

    k1, k2 = sym.split()
    i2r = kdf(b"mp-link\0", k1, [ss, sym.h])
    r2i = kdf(b"mp-link\0", k2, [ss, sym.h])

    frames = []
    for n, t in enumerate(bytes.fromhex(x) for x in second["transport"]):
        check("transport datagram %d: type 4 to our index" % n,
              t[:2] == b"\x04\x01" and struct.unpack(">I", t[2:6])[0] == b_index)
        (counter,) = struct.unpack(">Q", t[6:14])
        check("transport datagram %d: counter %d" % (n, n), counter == n)
        try:
            frames.append(ChaCha20Poly1305(i2r).decrypt(nonce(counter), t[14:], t[:14]))
        except Exception:
            check("transport datagram %d opens with key_initiator_to_responder" % n, False)
    check("the initiator's frames open with key_initiator_to_responder", len(frames) > 0)
    check("a keepalive (type 0, empty) is among them", b"\x00" in frames)
    check("every frame has a known type (0-5)", all(f and f[0] <= 5 for f in frames))

    header = b"\x04\x01" + struct.pack(">IQ", a_index, 0)
    reply = header + ChaCha20Poly1305(r2i).encrypt(nonce(0), b"\x00", header)
    # The same frame under the other direction's key: meshpost must drop it.
    wrong = header + ChaCha20Poly1305(i2r).encrypt(nonce(0), b"\x00", header)
    print(json.dumps({"ok": True, "checks": checks, "transport": reply.hex(), "wrong_key": wrong.hex(),
                      "keys": {"i2r": i2r.hex(), "r2i": r2i.hex(), "h": sym.h.hex()}}), flush=True)


if __name__ == "__main__":
    main()
