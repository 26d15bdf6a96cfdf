#!/usr/bin/env python3
"""Known-answer vectors for quantized averaging (docs/ring-protocol.md, "Quantized averaging",
protocol version 5), written from the specification alone with Python's exact rationals
(fractions.Fraction; no code shared with gym's src/core/ring/quant.rs).

    python3 tools/reference/ring_quant_kat.py      # writes testdata/ring/quant.json

Standard library only; the output is deterministic. It needs testdata/ring/kat.json (the ring
members of its handshake vectors) and tools/reference/ring_codec_kat.py (the packed payload
encoder, itself written from the specification). The Rust test `ring::quant::tests::kat`
checks, through gym's code: the ring digest `R` of those rings with a `quantize` field (and
with input bounds before it), each member's quantized contribution `w · q · 2^(t+F)`, the
block step exponents `t`, the packed wire payload of each contribution and of the members'
sum, and its bytes per element.
"""
import hashlib
import json
import random
import struct
import sys
from fractions import Fraction
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from ring_codec_kat import encode  # noqa: E402

BLOCK = 64


def sha3(*parts):
    h = hashlib.sha3_256()
    for p in parts:
        h.update(p)
    return h.digest()


def ring_digest(rnd, chunk, members, bounds=None, quantize=None):
    """R of a ring without ML-DSA-87 keys (version 4 domain), then the optional extensions:
    input bounds (when not the defaults), then quantize (version 5)."""
    parts = [b"gym-ring-v4/ring\0", struct.pack("<QII", rnd, chunk, len(members))]
    for m in members:
        wid, addr = m["id"].encode(), m["address"].encode()
        parts += [struct.pack("<H", len(wid)), wid, struct.pack("<H", len(addr)), addr]
        parts += [bytes.fromhex(m["ed25519_public"]), struct.pack("<I", 0)]
    if bounds is not None:
        max_weight, max_exponent = bounds
        parts += [b"gym-ring/bounds\0", struct.pack("<Qi", max_weight, max_exponent)]
    if quantize is not None:
        parts += [b"gym-ring-v5/quantize\0", bytes([quantize])]
    return sha3(*parts)


def f32(x):
    """x rounded to f32, as a Fraction, and its bit pattern."""
    bits = struct.unpack("<I", struct.pack("<f", x))[0]
    return Fraction(struct.unpack("<f", struct.pack("<I", bits))[0]), bits


def from_bits(bits):
    return Fraction(struct.unpack("<f", struct.pack("<I", bits))[0])


def step_exponent(block, bits, scale):
    """t = max(e_b − bits + 1, −F), e_b the smallest integer with max|x| < (1 − 2^−bits)·2^e_b;
    None for an all-zero block."""
    m = max(abs(x) for x in block)
    if m == 0:
        return None
    lim = 1 - Fraction(1, 2**bits)
    # Exact search: the smallest e with m < lim · 2^e.
    lo, hi = -1100, 1100
    while lo < hi:
        mid = (lo + hi) // 2
        if m < lim * Fraction(2) ** mid:
            hi = mid
        else:
            lo = mid + 1
    e = lo
    return max(e - bits + 1, -scale)


def contribution(values, bits, scale, weight):
    out, steps = [], []
    for i in range(0, len(values), BLOCK):
        block = values[i : i + BLOCK]
        t = step_exponent(block, bits, scale)
        steps.append(t)
        for x in block:
            if t is None:
                out.append(0)
                continue
            q = round(x / Fraction(2) ** t)  # Fraction rounds half to even
            assert abs(q) <= 2 ** (bits - 1) - 1 or t == -scale
            # On the fixed-point grid: q · 2^t · 2^F with t + F ≥ 0 is an integer.
            out.append(weight * q * 2 ** (t + scale))
    return out, steps


def gauss(rnd, n, sigma):
    return [f32(rnd.gauss(0.0, sigma))[1] for _ in range(n)]


def members_cases():
    rnd = random.Random(20261205)
    s = 0.498046875  # (1 − 2^-8) · 2^-1, exact in f32
    below = struct.unpack("<I", struct.pack("<f", s))[0] - 1
    step = 2.0**-8
    # Block 0: max exactly at the bump boundary (e_b = 0, step 2^-7); block 1: max one f32
    # below it (e_b = −1, step 2^-8), with values on half steps (ties to even, both signs).
    b0 = [f32(s)[1]] + [f32((k + 0.5) * 2.0**-7 * (-1) ** k)[1] for k in range(63)]
    b1 = [below] + [f32((k + 0.5) * step * (-1) ** k)[1] for k in range(63)]
    yield {
        "name": "gaussian, 8 bits",
        "bits": 8, "scale": 50, "weight": 1,
        "values": gauss(rnd, 200, 0.02),
    }
    yield {
        "name": "the bump boundary and ties, 8 bits",
        "bits": 8, "scale": 54, "weight": 3,
        "values": b0 + b1,
    }
    yield {
        "name": "tiny values at the grid floor t = -F, 8 bits",
        "bits": 8, "scale": 36, "weight": 1,
        "values": [f32(x * 1e-11)[1] for x in (3.0, -1.5, 0.25, 7.0, -2.0)] + gauss(rnd, 64, 1e-12),
    }
    yield {
        "name": "a zero block and a ragged last block, 2 bits",
        "bits": 2, "scale": 56, "weight": 1,
        "values": [0] * 64 + [f32(x)[1] for x in (0.3, -0.1, 0.05, -0.7, 0.0, 0.2, -0.26, 0.7, 1.0, -0.6)],
    }
    yield {
        "name": "16 bits, weight 5",
        "bits": 16, "scale": 52, "weight": 5,
        "values": gauss(rnd, 130, 0.5),
    }


def main():
    kat = json.loads((ROOT / "testdata/ring/kat.json").read_text())
    rings = []
    for h in kat["handshake"]:
        members = [
            {"id": m["id"], "address": m["address"], "ed25519_public": m["ed25519_public"]}
            for m in h["members"]
        ]
        rnd, chunk = h["round"], h["chunk_elements"]
        assert ring_digest(rnd, chunk, members).hex() == h["ring_digest"], "kat.json R"
        for quantize, bounds in ((8, None), (2, None), (16, (1 << 20, 0))):
            rings.append({
                "round": rnd, "chunk_elements": chunk, "members": members,
                "quantize": quantize,
                "max_weight": bounds[0] if bounds else None,
                "max_exponent": bounds[1] if bounds else None,
                "ring_digest": ring_digest(rnd, chunk, members, bounds, quantize).hex(),
            })
    cases = []
    for c in members_cases():
        values = [from_bits(b) for b in c["values"]]
        contrib, steps = contribution(values, c["bits"], c["scale"], c["weight"])
        packed = encode(contrib)
        cases.append({
            **c,
            "values": ["%08x" % b for b in c["values"]],
            "steps": steps,
            "contribution": [str(v) for v in contrib],
            "packed": packed.hex(),
            "packed_bytes_per_element": round((len(packed) - 4) / len(contrib), 4),
        })
    # The exact sum of three 8-bit members (weights 1, 2, 3), as it travels in the all-gather.
    rnd = random.Random(7)
    scale, bits = 50, 8
    members = [(gauss(rnd, 256, 0.02), w) for w in (1, 2, 3)]
    total = [0] * 256
    for vals, w in members:
        c, _ = contribution([from_bits(b) for b in vals], bits, scale, w)
        total = [a + b for a, b in zip(total, c)]
    packed = encode(total)
    sums = {
        "bits": bits, "scale": scale,
        "members": [{"weight": w, "values": ["%08x" % b for b in v]} for v, w in members],
        "sum": [str(v) for v in total],
        "packed": packed.hex(),
        "packed_bytes_per_element": round((len(packed) - 4) / len(total), 4),
    }
    out = {
        "about": "Quantized averaging (docs/ring-protocol.md, protocol version 5): ring "
        "digests with quantize, quantized contributions w·q·2^(t+F) per block of 64 "
        "(values are f32 bit patterns), their packed payloads, and an exact sum.",
        "generator": "python3 tools/reference/ring_quant_kat.py",
        "block": BLOCK,
        "rings": rings,
        "cases": cases,
        "sum": sums,
    }
    path = ROOT / "testdata/ring/quant.json"
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
