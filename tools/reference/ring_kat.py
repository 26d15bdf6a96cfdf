#!/usr/bin/env python3
"""Known-answer vectors for gym's ring transport (docs/ring-protocol.md, "Transport: handshake
and channel"), computed with implementations independent of gym's Rust crates:

  * ML-KEM-768 (FIPS 203): kyber-py, a pure-Python implementation;
  * ML-DSA-87 (FIPS 204): dilithium-py, a pure-Python implementation by kyber-py's author
    (key generation from the 32-byte seed xi, deterministic signing: rnd = 32 zero bytes);
  * X25519, Ed25519 (RFC 8032, deterministic), AES-256-GCM: `cryptography` (OpenSSL);
  * HKDF-SHA3-256: RFC 5869 written out below over hashlib's SHA3-256, and checked against
    `cryptography`'s HKDF with SHA3-256;
  * SHA3-256, SHAKE-128/256: hashlib.

It writes testdata/ring/kat.json. Every secret input comes from a fixed seed:
`seed(label, n) = SHAKE-128("gym-ring-kat/" ‖ label)[..n]`, so reruns give the same file.

    /work/venv-ref/bin/pip install kyber-py dilithium-py cryptography
    /work/venv-ref/bin/python tools/reference/ring_kat.py [--accumulated]

The file also holds the hash of the first 100 accumulated ML-KEM-768 tests of C2SP CCTV, as
kyber-py computes it. `--accumulated` also runs all 10 000 through kyber-py and asserts the
published final-FIPS-203 hash (see ACCUMULATED_768; about 10 minutes); the file records whether
that ran.

Before writing, the script checks its primitives against published vectors (RFC 7748 §6.1 for
X25519, RFC 8032 §7.1 test 1 for Ed25519, RFC 5869 test 1 for the HKDF construction over
SHA-256). The Rust tests (src/core/ring/crypto.rs, `kat`) read only the committed output.

ML-DSA-87 is covered by three kinds of cases: seeded keys with deterministic signatures under
gym's FIPS 204 context strings (and a modified signature that must not verify); a hybrid ring
(every member with an ML-DSA-87 key) whose handshake and one signed ring message carry both
signatures; and the signature block of the committed delta vector
testdata/vectors/valid-hybrid.delta, whose body digest is recomputed here from the file.
"""
import base64
import hashlib
import hmac
import json
import os
import platform
import struct
import sys
from importlib.metadata import version

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from dilithium_py.ml_dsa import ML_DSA_87
from kyber_py.ml_kem import ML_KEM_768

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
OUT = os.path.join(ROOT, "testdata", "ring", "kat.json")
DELTA = os.path.join(ROOT, "testdata", "vectors", "valid-hybrid.delta")

# FIPS 204 context strings of gym's ML-DSA-87 signatures: ring messages
# (src/core/ring/wire.rs, MLDSA_MSG_CONTEXT), handshake Accept/Finish
# (src/core/ring/crypto.rs, MLDSA_HANDSHAKE_CONTEXT), delta files
# (src/core/delta/sign.rs, SIGNATURE_CONTEXT).
MLDSA_MSG_CONTEXT = b"gym-ring-v3/msg"
MLDSA_HANDSHAKE_CONTEXT = b"gym-ring-v3/handshake"
MLDSA_DELTA_CONTEXT = b"gym-delta-v1"
MLDSA87_PUBLIC_LEN, MLDSA87_SIGNATURE_LEN = 2592, 4627

RAW = serialization.Encoding.Raw
RAW_PUB = serialization.PublicFormat.Raw


def seed(label, n):
    return hashlib.shake_128(b"gym-ring-kat/" + label.encode()).digest(n)


def sha3(*parts):
    h = hashlib.sha3_256()
    for p in parts:
        h.update(p)
    return h.digest()


def hkdf_sha3_256(salt, ikm, info, length):
    """RFC 5869 over SHA3-256 (HashLen 32)."""
    prk = hmac.new(salt, ikm, hashlib.sha3_256).digest()
    okm, t, i = b"", b"", 1
    while len(okm) < length:
        t = hmac.new(prk, t + info + bytes([i]), hashlib.sha3_256).digest()
        okm += t
        i += 1
    return okm[:length]


def hkdf_cryptography(salt, ikm, info, length):
    return HKDF(algorithm=hashes.SHA3_256(), length=length, salt=salt, info=info).derive(ikm)


def x25519_pub(scalar):
    return X25519PrivateKey.from_private_bytes(scalar).public_key().public_bytes(RAW, RAW_PUB)


def x25519(scalar, public):
    return X25519PrivateKey.from_private_bytes(scalar).exchange(
        X25519PublicKey.from_public_bytes(public)
    )


def ed25519_pub(seed32):
    return Ed25519PrivateKey.from_private_bytes(seed32).public_key().public_bytes(RAW, RAW_PUB)


def ed25519_sign(seed32, msg):
    return Ed25519PrivateKey.from_private_bytes(seed32).sign(msg)


def ml_dsa_keys(xi):
    """ML-DSA.KeyGen_internal(xi) (FIPS 204, Algorithm 6): (public key, FIPS 204 private key)."""
    pk, sk = ML_DSA_87.key_derive(xi)
    assert (len(pk), len(sk)) == (MLDSA87_PUBLIC_LEN, 4896)
    return pk, sk


def ml_dsa_sign(sk, msg, ctx):
    """ML-DSA.Sign (FIPS 204, Algorithm 2), deterministic variant: rnd = {0}^32."""
    sig = ML_DSA_87.sign(sk, msg, ctx=ctx, deterministic=True)
    assert len(sig) == MLDSA87_SIGNATURE_LEN
    return sig


def self_checks():
    h = bytes.fromhex
    # RFC 7748 §6.1.
    a = h("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
    b = h("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb")
    assert x25519_pub(a) == h("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
    assert x25519_pub(b) == h("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
    shared = h("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742")
    assert x25519(a, x25519_pub(b)) == shared == x25519(b, x25519_pub(a))
    # RFC 8032 §7.1, test 1 (empty message).
    sk = h("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
    assert ed25519_pub(sk) == h("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
    assert ed25519_sign(sk, b"") == h(
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
        "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
    )
    # RFC 5869 test case 1 (SHA-256): the same construction as hkdf_sha3_256, other hash.
    prk = hmac.new(h("000102030405060708090a0b0c"), b"\x0b" * 22, hashlib.sha256).digest()
    assert prk == h("077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5")
    okm, t, i = b"", b"", 1
    while len(okm) < 42:
        t = hmac.new(prk, t + h("f0f1f2f3f4f5f6f7f8f9") + bytes([i]), hashlib.sha256).digest()
        okm += t
        i += 1
    assert okm[:42] == h(
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
    )
    # The hand-written HKDF-SHA3-256 equals cryptography's.
    for n in (1, 32, 100):
        s, k, i = seed(f"hkdf-salt-{n}", 32), seed(f"hkdf-ikm-{n}", 64), b"info"
        assert hkdf_sha3_256(s, k, i, n) == hkdf_cryptography(s, k, i, n)


def accumulated(n=10_000):
    """The accumulated ML-KEM-768 test of C2SP CCTV (ML-KEM/README.md, "Accumulated vectors"):
    d, z, m and an invalid ciphertext drawn in turn from SHAKE-128(""); ek, dk, ct, k and the
    rejection secret absorbed into a second SHAKE-128, whose first 32 bytes are compared."""
    rng = hashlib.shake_128(b"").digest(n * (32 + 32 + 32 + 1088))
    assert rng[:16].hex() == "7f9c2ba4e88f827d616045507605853e"
    acc = hashlib.shake_128()
    pos = 0

    def draw(k):
        nonlocal pos
        pos += k
        return rng[pos - k : pos]

    for _ in range(n):
        d, z, m, bad = draw(32), draw(32), draw(32), draw(1088)
        ek, dk = ML_KEM_768._keygen_internal(d, z)
        k, ct = ML_KEM_768._encaps_internal(ek, m)
        assert ML_KEM_768.decaps(dk, ct) == k
        for part in (ek, dk, ct, k, ML_KEM_768.decaps(dk, bad)):
            acc.update(part)
    return acc.digest(32).hex()


# CCTV publishes f7db260e…48d3 for 10 000 tests, but for FIPS 203 ipd, whose K-PKE.KeyGen
# hashes d alone; the final standard hashes d ‖ k. For final FIPS 203 the value is this one,
# from LibreSSL's regress test (openbsd/src, regress/lib/libcrypto/mlkem/
# mlkem_iteration_tests.c, kExpectedAdam768, "Boring believes this").
ACCUMULATED_768 = "f959d18d3d1180121433bf0e05f11e7908cf9d03edc150b2b07cb90bef5bc1c1"
CCTV_IPD_768 = "f7db260e1137a742e05fe0db9525012812b004d29040a5b606aad3d134b548d3"


def ml_kem_case(i):
    d, z, m = seed(f"mlkem-{i}-d", 32), seed(f"mlkem-{i}-z", 32), seed(f"mlkem-{i}-m", 32)
    ek, dk = ML_KEM_768._keygen_internal(d, z)
    assert ML_KEM_768.key_derive(d + z) == (ek, dk)
    k, ct = ML_KEM_768._encaps_internal(ek, m)
    assert ML_KEM_768.decaps(dk, ct) == k
    # Implicit rejection: a modified ciphertext decapsulates to J(z ‖ c') = SHAKE-256(z ‖ c').
    flip = (1 + 377 * i) % len(ct)
    bad = bytearray(ct)
    bad[flip] ^= 0x01 << (i % 8)
    bad = bytes(bad)
    rejected = ML_KEM_768.decaps(dk, bad)
    assert rejected == hashlib.shake_256(z + bad).digest(32) != k
    return {
        "d": d.hex(),
        "z": z.hex(),
        "ek": ek.hex(),
        "ek_sha3_256": sha3(ek).hex(),
        "dk_sha3_256": sha3(dk).hex(),
        "m": m.hex(),
        "ct": ct.hex(),
        "ss": k.hex(),
        "reject_flip_index": flip,
        "reject_flip_mask": 0x01 << (i % 8),
        "reject_ss": rejected.hex(),
    }


def x25519_cases():
    h = bytes.fromhex
    pairs = [
        (
            "RFC 7748 §6.1",
            h("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"),
            h("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb"),
        )
    ]
    for i in range(2):
        pairs.append((f"seed x25519-{i}", seed(f"x25519-{i}-a", 32), seed(f"x25519-{i}-b", 32)))
    out = []
    for source, a, b in pairs:
        s = x25519(a, x25519_pub(b))
        assert s == x25519(b, x25519_pub(a))
        out.append(
            {
                "source": source,
                "a": a.hex(),
                "b": b.hex(),
                "a_public": x25519_pub(a).hex(),
                "b_public": x25519_pub(b).hex(),
                "shared": s.hex(),
            }
        )
    return out


def worker_id(ed_pub):
    d = sha3(b"gym-worker-id-v1\0", ed_pub)
    return "gym1" + base64.b32encode(d[:12]).decode().lower().rstrip("=")[:20]


def ring_digest(rnd, chunk, members):
    # A hybrid ring (every member has an ML-DSA-87 key) has its own domain and binds the keys.
    hybrid = all("ml_dsa_87_public" in m for m in members)
    domain = b"gym-ring-v4/hybrid-ring\0" if hybrid else b"gym-ring-v4/ring\0"
    parts = [domain, struct.pack("<QII", rnd, chunk, len(members))]
    for m in members:
        wid, addr = m["id"].encode(), m["address"].encode()
        pq = bytes.fromhex(m.get("ml_dsa_87_public", ""))
        parts += [struct.pack("<H", len(wid)), wid, struct.pack("<H", len(addr)), addr]
        parts += [bytes.fromhex(m["ed25519_public"]), struct.pack("<I", len(pq)), pq]
    return sha3(*parts)


def seal(key, counter, plain):
    nonce = b"\0\0\0\0" + struct.pack(">Q", counter)
    aad = struct.pack("<Q", len(plain) + 16)
    return AESGCM(key).encrypt(nonce, plain, aad)


def frames(key, plains):
    return [
        {"counter": c, "plaintext": p.hex(), "sealed": seal(key, c, p).hex()}
        for c, p in enumerate(plains)
    ]


def handshake_case(i, n, rnd, chunk, ini, resp, plains_i2r, plains_r2i, hybrid=False):
    seeds = [seed(f"hs-{i}-member-{j}-ed25519", 32) for j in range(n)]
    pq_keys = [
        ml_dsa_keys(seed(f"hs-{i}-member-{j}-ml-dsa-87", 32)) if hybrid else None
        for j in range(n)
    ]
    members = []
    for j, s in enumerate(seeds):
        pub = ed25519_pub(s)
        members.append(
            {
                "ed25519_seed": s.hex(),
                "ed25519_public": pub.hex(),
                "id": worker_id(pub),
                "address": f"10.0.{i}.{j + 1}:{7100 + j}",
            }
        )
        if hybrid:
            members[-1]["ml_dsa_87_seed"] = seed(f"hs-{i}-member-{j}-ml-dsa-87", 32).hex()
            members[-1]["ml_dsa_87_public"] = pq_keys[j][0].hex()

    def sigs(j, digest):
        """Ed25519, then in a hybrid ring ML-DSA-87 with the handshake context."""
        out = ed25519_sign(seeds[j], digest)
        if hybrid:
            out += ml_dsa_sign(pq_keys[j][1], digest, MLDSA_HANDSHAKE_CONTEXT)
        return out

    r = ring_digest(rnd, chunk, members)
    x_i, d, z = seed(f"hs-{i}-x-i", 32), seed(f"hs-{i}-d", 32), seed(f"hs-{i}-z", 32)
    x_r, m = seed(f"hs-{i}-x-r", 32), seed(f"hs-{i}-m", 32)
    ek, dk = ML_KEM_768._keygen_internal(d, z)
    hello = (
        b"\x01"
        + r
        + struct.pack("<H", ini)
        + bytes.fromhex(members[ini]["ed25519_public"])
        + x25519_pub(x_i)
        + ek
    )
    kem, ct = ML_KEM_768._encaps_internal(ek, m)
    assert ML_KEM_768.decaps(dk, ct) == kem
    accept_unsigned = b"\x02" + struct.pack("<H", resp) + x25519_pub(x_r) + ct
    t = sha3(b"gym-ring-v1/hs-transcript\0", hello, accept_unsigned)
    d_resp = sha3(b"gym-ring-v1/hs-responder\0", t)
    d_ini = sha3(b"gym-ring-v1/hs-initiator\0", t)
    accept = accept_unsigned + sigs(resp, d_resp)
    finish = b"\x03" + sigs(ini, d_ini)
    dh = x25519(x_i, x25519_pub(x_r))
    assert dh == x25519(x_r, x25519_pub(x_i))
    ikm = dh + kem
    i2r = hkdf_sha3_256(t, ikm, b"gym-ring-v1/i2r", 32)
    r2i = hkdf_sha3_256(t, ikm, b"gym-ring-v1/r2i", 32)
    assert i2r == hkdf_cryptography(t, ikm, b"gym-ring-v1/i2r", 32)
    assert r2i == hkdf_cryptography(t, ikm, b"gym-ring-v1/r2i", 32)
    pq = MLDSA87_SIGNATURE_LEN if hybrid else 0
    assert (len(hello), len(accept), len(finish)) == (
        1 + 32 + 2 + 32 + 32 + 1184,
        1 + 2 + 32 + 1088 + 64 + pq,
        65 + pq,
    )
    if hybrid:
        for j, role, sig in ((resp, d_resp, accept[-pq:]), (ini, d_ini, finish[-pq:])):
            assert ML_DSA_87.verify(pq_keys[j][0], role, sig, ctx=MLDSA_HANDSHAKE_CONTEXT)
    case = {
        "round": rnd,
        "chunk_elements": chunk,
        "members": members,
        "ring_digest": r.hex(),
        "initiator": ini,
        "responder": resp,
        "initiator_entropy": (x_i + d + z).hex(),
        "responder_entropy": (x_r + m).hex(),
        "hello": hello.hex(),
        "accept": accept.hex(),
        "finish": finish.hex(),
        "transcript": t.hex(),
        "x25519_shared": dh.hex(),
        "ml_kem_shared": kem.hex(),
        "key_i2r": i2r.hex(),
        "key_r2i": r2i.hex(),
        "frames_i2r": frames(i2r, plains_i2r),
        "frames_r2i": frames(r2i, plains_r2i),
    }
    if hybrid:
        case["responder_digest"] = d_resp.hex()
        case["initiator_digest"] = d_ini.hex()
        case["reveal"] = reveal_message(i, r, seeds, pq_keys)
        case["data"] = data_message(i, r, seeds, pq_keys)
    return case


def data_payload(i):
    """150 integers (three packed blocks, the last one short): extremes, alternating signs,
    zeros, and fixed-point-like values with common trailing zeros."""
    words = seed(f"hs-{i}-data-payload", 8 * 150)
    out = []
    for k in range(150):
        w = int.from_bytes(words[8 * k : 8 * k + 8], "little", signed=True)
        if k < 64:
            out.append((w >> 40) << 30)  # 24 significant bits, 30 trailing zeros
        elif k < 128:
            out.append([-(1 << 63), (1 << 63) - 1, 0, -1][k % 4] if k % 3 else w)
        else:
            out.append(0)
    return out


def data_message(i, r, seeds, pq_keys):
    """A Data ring message of a hybrid ring (protocol version 4): `kind 2 ‖ u16 sender ‖ u32
    view ‖ u8 phase ‖ u16 step ‖ u16 segment ‖ u32 chunk ‖ D(payload)`, both signatures, then
    the packed payload (tools/reference/ring_codec_kat.py). `D` is the two-level SHA3-256
    tree over the integers' little-endian bytes (leaves of 2048 elements)."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from ring_codec_kat import encode as pack

    sender, view, phase, step, segment, chunk = 1, 2, 0, 1, 2, 3
    payload = data_payload(i)
    raw = b"".join(struct.pack("<q", x) for x in payload)
    leaves = [sha3(raw[o : o + 8 * 2048]) for o in range(0, len(raw), 8 * 2048)]
    digest = sha3(b"gym-ring-v2/data\0", struct.pack("<Q", len(payload)), *leaves)
    signed_part = b"\x02" + struct.pack("<HIBHHI", sender, view, phase, step, segment, chunk) + digest
    d = sha3(b"gym-ring-v1/msg\0", r, signed_part)
    pq = ml_dsa_sign(pq_keys[sender][1], d, MLDSA_MSG_CONTEXT)
    assert ML_DSA_87.verify(pq_keys[sender][0], d, pq, ctx=MLDSA_MSG_CONTEXT)
    return {
        "sender": sender,
        "view": view,
        "phase": phase,
        "step": step,
        "segment": segment,
        "chunk": chunk,
        "payload": [str(x) for x in payload],
        "payload_digest": digest.hex(),
        "signing_digest": d.hex(),
        "encoded": (signed_part + ed25519_sign(seeds[sender], d) + pq + pack(payload)).hex(),
    }


def reveal_message(i, r, seeds, pq_keys):
    """A Reveal ring message of a hybrid ring (src/core/ring/wire.rs): `kind 3 ‖ u16 sender ‖
    u32 view ‖ nonce (32)`, then the Ed25519 signature and the ML-DSA-87 signature (context
    MLDSA_MSG_CONTEXT) over `H("gym-ring-v1/msg\0" ‖ R ‖ signed part)`."""
    sender, view, nonce = 2, 5, seed(f"hs-{i}-reveal-nonce", 32)
    signed_part = b"\x03" + struct.pack("<HI", sender, view) + nonce
    d = sha3(b"gym-ring-v1/msg\0", r, signed_part)
    pq = ml_dsa_sign(pq_keys[sender][1], d, MLDSA_MSG_CONTEXT)
    assert ML_DSA_87.verify(pq_keys[sender][0], d, pq, ctx=MLDSA_MSG_CONTEXT)
    assert not ML_DSA_87.verify(pq_keys[sender][0], d, pq, ctx=MLDSA_HANDSHAKE_CONTEXT)
    return {
        "sender": sender,
        "view": view,
        "nonce": nonce.hex(),
        "signing_digest": d.hex(),
        "encoded": (signed_part + ed25519_sign(seeds[sender], d) + pq).hex(),
    }


def ml_dsa_case(i):
    """Key generation from a seed, deterministic signatures of fixed messages under each of
    gym's context strings (and the empty one), and modified signatures that must not verify."""
    xi = seed(f"mldsa87-{i}-xi", 32)
    pk, sk = ml_dsa_keys(xi)
    messages = [
        (b"", b""),
        (MLDSA_MSG_CONTEXT, seed(f"mldsa87-{i}-digest-msg", 32)),
        (MLDSA_HANDSHAKE_CONTEXT, seed(f"mldsa87-{i}-digest-hs", 32)),
        (MLDSA_DELTA_CONTEXT, seed(f"mldsa87-{i}-message", 200 + 300 * i)),
    ]
    sigs = []
    for n, (ctx, msg) in enumerate(messages):
        sig = ml_dsa_sign(sk, msg, ctx)
        assert ML_DSA_87.verify(pk, msg, sig, ctx=ctx)
        # Another context string (FIPS 204 binds it into mu): no verification.
        assert not ML_DSA_87.verify(pk, msg, sig, ctx=ctx + b"!")
        flip = (1 + 1531 * (4 * i + n)) % len(sig)
        mask = 0x01 << ((i + n) % 8)
        bad = bytearray(sig)
        bad[flip] ^= mask
        assert not ML_DSA_87.verify(pk, msg, bytes(bad), ctx=ctx)
        sigs.append(
            {
                "context": ctx.decode(),
                "message": msg.hex(),
                "signature": sig.hex(),
                "bad_flip_index": flip,
                "bad_flip_mask": mask,
            }
        )
    return {
        "seed": xi.hex(),
        "public": pk.hex(),
        "public_sha3_256": sha3(pk).hex(),
        "private_sha3_256": sha3(sk).hex(),
        "signatures": sigs,
    }


def delta_case():
    """The signature block of testdata/vectors/valid-hybrid.delta (docs/delta-format.md; signer
    with Ed25519 seed 0xB2 * 32 and ML-DSA-87 seed 0xB3 * 32, src/core/delta/vectors.rs). The
    body digest is recomputed from the file: SHA3-256 of magic ‖ version ‖ compression ‖ flags,
    then the body with every chunk payload replaced by its SHA3-256; both signatures sign
    SHA3-256("gym-delta-v1/signature\0" ‖ digest ‖ ed25519 public ‖ 1 ‖ ML-DSA-87 public)."""
    data = open(DELTA, "rb").read()
    assert data[:5] == b"DELTA" and data[7] == 0x03, "signed and hybrid"
    h = hashlib.sha3_256(data[:8])
    p = 24

    def take(n, payload=False):
        nonlocal p
        b = data[p : p + n]
        assert len(b) == n
        p += n
        h.update(sha3(b) if payload else b)
        return b

    (meta_len,) = struct.unpack("<I", take(4))
    take(meta_len)
    _chunk, tensors = struct.unpack("<II", take(8))
    for _ in range(tensors):
        (name_len,) = struct.unpack("<I", take(4))
        take(name_len)
        rank = take(2)[1]
        take(8 * rank)
        (left,) = struct.unpack("<Q", take(8))
        while left:
            _raw, stored = struct.unpack("<II", take(8))
            take(stored, payload=True)
            left -= 8 + stored
    digest = h.digest()
    assert digest[:16] == data[8:24], "header checksum"
    block = data[p:]
    assert len(block) == 32 + 64 + MLDSA87_PUBLIC_LEN + MLDSA87_SIGNATURE_LEN
    ed_seed, xi = b"\xb2" * 32, b"\xb3" * 32
    pk, sk = ml_dsa_keys(xi)
    ed_pub = ed25519_pub(ed_seed)
    msg = sha3(b"gym-delta-v1/signature\0", digest, ed_pub, b"\x01", pk)
    sig = ml_dsa_sign(sk, msg, MLDSA_DELTA_CONTEXT)
    return {
        "file": "testdata/vectors/valid-hybrid.delta",
        "file_sha3_256": sha3(data).hex(),
        "signature_offset": p,
        "body_digest": digest.hex(),
        "ed25519_seed": ed_seed.hex(),
        "ml_dsa_87_seed": xi.hex(),
        "ed25519_public": ed_pub.hex(),
        "ml_dsa_87_public": pk.hex(),
        "signing_message": msg.hex(),
        "context": MLDSA_DELTA_CONTEXT.decode(),
        "ed25519_signature": ed25519_sign(ed_seed, msg).hex(),
        "ml_dsa_87_signature": sig.hex(),
    }


def main():
    run_accumulated = "--accumulated" in sys.argv[1:]
    self_checks()
    if run_accumulated:
        got = accumulated()
        assert got == ACCUMULATED_768, got
    short = accumulated(100)
    handshakes = [
        handshake_case(0, 3, 0, 65536, 0, 1, [b"hello, ring", b""], [b"accept", bytes(range(256)) * 4]),
        handshake_case(1, 4, 7, 64, 1, 3, [seed("hs-1-p0", 1000), b"\x00"], [b"", seed("hs-1-p1", 17)]),
    ]
    out = {
        "about": "Known-answer vectors for gym's ring transport (docs/ring-protocol.md, "
        "'Transport' and 'Test vectors'). Generated by tools/reference/ring_kat.py; do not edit.",
        "generator": {
            "command": "/work/venv-ref/bin/python tools/reference/ring_kat.py"
            + (" --accumulated" if run_accumulated else ""),
            "python": platform.python_version(),
            "kyber-py": version("kyber-py"),
            "cryptography": version("cryptography"),
            "dilithium-py": version("dilithium-py"),
            "seed": "seed(label, n) = SHAKE-128('gym-ring-kat/' || label)[..n]",
        },
        "accumulated_ml_kem_768": {
            "procedure": "https://github.com/C2SP/CCTV/tree/main/ML-KEM, accumulated vectors",
            "short": {"iterations": 100, "expected": short, "source": "kyber-py"},
            "full": {
                "iterations": 10000,
                "expected": ACCUMULATED_768,
                "source": "LibreSSL regress test (openbsd/src "
                "regress/lib/libcrypto/mlkem/mlkem_iteration_tests.c), final FIPS 203",
                "checked_with_kyber_py": run_accumulated,
            },
            "cctv_published_fips203_ipd": CCTV_IPD_768,
        },
        "ml_kem_768": [ml_kem_case(i) for i in range(3)],
        "x25519": x25519_cases(),
        "ml_dsa_87": [ml_dsa_case(i) for i in range(3)],
        "delta_ml_dsa_87": delta_case(),
        "hybrid_handshake": [
            handshake_case(
                2, 3, 3, 262144, 0, 2, [b"hybrid ring", b""], [b"", seed("hs-2-p1", 300)], hybrid=True
            )
        ],
        "handshake": handshakes,
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    print(f"wrote {os.path.relpath(OUT, ROOT)}")


if __name__ == "__main__":
    main()
