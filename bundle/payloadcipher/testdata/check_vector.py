#!/usr/bin/env python3
"""Open testdata/vector.json without Go: X-Wing decapsulation
(draft-connolly-cfrg-xwing-kem: ML-KEM-768 + X25519, SHA3-256 combiner),
the RFC 9180 base-mode key schedule with HKDF-SHA256 and AES-256-GCM,
from the primitives of the Python cryptography package only."""
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


def main(path):
    v = json.load(open(path))
    kem, kdf, aead = v["kem"], v["kdf"], v["aead"]
    assert (kem, kdf, aead) == (0x647A, 1, 2), "unexpected suite"
    suite = b"HPKE" + kem.to_bytes(2, "big") + kdf.to_bytes(2, "big") + aead.to_bytes(2, "big")

    def labeled_extract(salt, label, ikm):
        return extract(salt, b"HPKE-v1" + suite + label + ikm)

    def labeled_expand(prk, label, info, n):
        return expand(prk, n.to_bytes(2, "big") + b"HPKE-v1" + suite + label + info, n)

    sk = bytes.fromhex(v["privateKey"])
    ct = bytes.fromhex(v["ciphertext"])
    info = bytes.fromhex(v["info"])
    want_info = b"edgeseal payload v1\x00" + v["device"].encode() + b"\x00" + hashlib.sha256(v["boundBody"].encode()).digest()
    assert info == want_info, "info is not the edgeseal binding"
    assert "sha256:" + hashlib.sha256(ct).hexdigest() == v["digest"], "ciphertext digest"
    ss, pk = xwing_decap(sk, ct)
    assert pk.hex() == v["publicKey"], "public key does not derive from the private key"
    assert "sha256:" + hashlib.sha256(pk).hexdigest() == v["keyId"], "key id"
    psk_id_hash = labeled_extract(b"", b"psk_id_hash", b"")
    info_hash = labeled_extract(b"", b"info_hash", info)
    ctx = b"\x00" + psk_id_hash + info_hash
    secret = labeled_extract(ss, b"secret", b"")
    key = labeled_expand(secret, b"key", ctx, 32)
    nonce = labeled_expand(secret, b"base_nonce", ctx, 12)
    pt = AESGCM(key).decrypt(nonce, ct[1120:], b"")
    assert pt.hex() == v["plaintext"], "plaintext differs"
    print("ok: plaintext matches (%d bytes)" % len(pt))


if __name__ == "__main__":
    main(sys.argv[1])
