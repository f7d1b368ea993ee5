#!/usr/bin/env python3
"""Open testdata/vector.json (payload cipher version 1) or
testdata/vector-v2.json (version 2) without Go: X-Wing decapsulation
(draft-connolly-cfrg-xwing-kem: ML-KEM-768 + X25519, SHA3-256 combiner),
the RFC 9180 base-mode key schedule with HKDF-SHA256, for version 2 the
exporter secret and Export of each payload's key, and AES-256-GCM, from
the primitives of the Python cryptography package only."""
import hashlib
import hmac
import json
import sys

from cryptography.hazmat.primitives.asymmetric import mlkem, x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives import serialization

XWING_LABEL = b"\\.//^\\"


def xwing_decap(sk, ct):
    expanded = hashlib.shake_256(sk).digest(96)
    sk_m = mlkem.MLKEM768PrivateKey.from_seed_bytes(expanded[:64])
    sk_x = x25519.X25519PrivateKey.from_private_bytes(expanded[64:96])
    pk_x = sk_x.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    pk_m = sk_m.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    ct_m, ct_x = ct[:1088], ct[1088:1120]
    ss_m = sk_m.decapsulate(ct_m)
    ss_x = sk_x.exchange(x25519.X25519PublicKey.from_public_bytes(ct_x))
    ss = hashlib.sha3_256(ss_m + ss_x + ct_x + pk_x + XWING_LABEL).digest()
    return ss, pk_m + pk_x


def extract(salt, ikm):
    return hmac.new(salt or b"\x00" * 32, ikm, hashlib.sha256).digest()


def expand(prk, info, n):
    out, t, i = b"", b"", 1
    while len(out) < n:
        t = hmac.new(prk, t + info + bytes([i]), hashlib.sha256).digest()
        out += t
        i += 1
    return out[:n]


def binding(prefix, device, bound_body):
    return prefix + b"\x00" + device.encode() + b"\x00" + hashlib.sha256(bound_body.encode()).digest()


def main(path):
    v = json.load(open(path))
    kem, kdf, aead = v["kem"], v["kdf"], v["aead"]
    assert (kem, kdf, aead) == (0x647A, 1, 2), "unexpected suite"
    suite = b"HPKE" + kem.to_bytes(2, "big") + kdf.to_bytes(2, "big") + aead.to_bytes(2, "big")

    def labeled_extract(salt, label, ikm):
        return extract(salt, b"HPKE-v1" + suite + label + ikm)

    def labeled_expand(prk, label, info, n):
        return expand(prk, n.to_bytes(2, "big") + b"HPKE-v1" + suite + label + info, n)

    def key_schedule(ss, info):
        psk_id_hash = labeled_extract(b"", b"psk_id_hash", b"")
        info_hash = labeled_extract(b"", b"info_hash", info)
        ctx = b"\x00" + psk_id_hash + info_hash
        secret = labeled_extract(ss, b"secret", b"")
        return secret, ctx

    if v.get("v", 1) == 2:
        return main_v2(v, labeled_expand, key_schedule)
    sk = bytes.fromhex(v["privateKey"])
    ct = bytes.fromhex(v["ciphertext"])
    info = bytes.fromhex(v["info"])
    want_info = binding(b"edgeseal payload v1", v["device"], v["boundBody"])
    assert info == want_info, "info is not the edgeseal binding"
    assert "sha256:" + hashlib.sha256(ct).hexdigest() == v["digest"], "ciphertext digest"
    ss, pk = xwing_decap(sk, ct)
    assert pk.hex() == v["publicKey"], "public key does not derive from the private key"
    assert "sha256:" + hashlib.sha256(pk).hexdigest() == v["keyId"], "key id"
    secret, ctx = key_schedule(ss, info)
    key = labeled_expand(secret, b"key", ctx, 32)
    nonce = labeled_expand(secret, b"base_nonce", ctx, 12)
    pt = AESGCM(key).decrypt(nonce, ct[1120:], b"")
    assert pt.hex() == v["plaintext"], "plaintext differs"
    print("ok: plaintext matches (%d bytes)" % len(pt))



def main_v2(v, labeled_expand, key_schedule):
    """Version 2: one decapsulation of the window's enc; each payload's
    AES-256-GCM key is Export(exporter context, 32) of the window's
    context, the nonce 12 zero bytes, the aad empty."""
    sk = bytes.fromhex(v["privateKey"])
    enc = bytes.fromhex(v["enc"])
    info = bytes.fromhex(v["info"])
    assert info == b"edgeseal payload v2 window", "window info"
    assert len(enc) == 1120, "enc size"
    ss, pk = xwing_decap(sk, enc)
    print("one decapsulation for %d payloads" % len(v["payloads"]))
    assert pk.hex() == v["publicKey"], "public key does not derive from the private key"
    assert "sha256:" + hashlib.sha256(pk).hexdigest() == v["keyId"], "key id"
    secret, ctx = key_schedule(ss, info)
    exporter_secret = labeled_expand(secret, b"exp", ctx, 32)
    for p in v["payloads"]:
        assert '"v":2}' in p["boundBody"], "the bound body does not name version 2"
        exp_ctx = bytes.fromhex(p["exporterContext"])
        assert exp_ctx == binding(b"edgeseal payload v2", v["device"], p["boundBody"]), "exporter context is not the edgeseal binding"
        ct = bytes.fromhex(p["ciphertext"])
        assert "sha256:" + hashlib.sha256(ct).hexdigest() == p["digest"], "ciphertext digest"
        assert ct[:1120] == enc, "not the window's enc"
        key = labeled_expand(exporter_secret, b"sec", exp_ctx, 32)
        pt = AESGCM(key).decrypt(b"\x00" * 12, ct[1120:], b"")
        assert pt.hex() == p["plaintext"], "plaintext differs"
        assert "sha256:" + hashlib.sha256(pt).hexdigest() in p["boundBody"], "the bound body does not name the plaintext"
        print("ok: plaintext matches (%d bytes)" % len(pt))


if __name__ == "__main__":
    main(sys.argv[1])
