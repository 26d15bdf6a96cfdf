#!/usr/bin/env python3
"""Known-answer vectors for the packed payload of ring data messages (docs/ring-protocol.md,
"Packed payloads", protocol version 4), written from the specification alone with Python's
integers (no code shared with gym's src/core/ring/codec.rs).

    python3 tools/reference/ring_codec_kat.py      # writes testdata/ring/codec.json

Standard library only; the output is deterministic. The Rust test `ring::codec::tests::kat`
decodes every `packed` to `values`, encodes `values` to `packed`, and checks that every
`invalid` stream is refused with the named error.
"""
import json
import random
import struct
import sys
from pathlib import Path

BLOCK = 64
M64 = (1 << 64) - 1


def zigzag(x):
    return ((x << 1) ^ (x >> 63)) & M64


def encode(values):
    out = bytearray(struct.pack("<I", len(values)))
    for i in range(0, len(values), BLOCK):
        block = values[i : i + BLOCK]
        or_x = 0
        for x in block:
            or_x |= x & M64
        if or_x == 0:
            out += bytes([0, 0])
            continue
        shift = (or_x & -or_x).bit_length() - 1  # trailing zeros
        vs = [zigzag(x >> shift) for x in block]
        width = max(vs).bit_length()
        out += bytes([width, shift])
        acc = 0
        for k, v in enumerate(vs):
            acc |= v << (k * width)
        nbytes = (len(block) * width + 7) // 8
        out += acc.to_bytes(nbytes, "little")
    return bytes(out)


def i64(x):
    return str(x)


def cases():
    rnd = random.Random(20261205)
    lo, hi = -(1 << 63), (1 << 63) - 1
    yield "empty", []
    yield "one zero", [0]
    yield "one", [1]
    yield "minus one", [-1]
    yield "i64 min", [lo]
    yield "i64 max", [hi]
    yield "extremes alternating, 65", [lo if k % 2 else hi for k in range(65)]
    yield "zeros, 130", [0] * 130
    yield "alternating signs, 63", [k if k % 2 == 0 else -k for k in range(63)]
    yield "common trailing zeros", [(k - 20) << 37 for k in range(70)]
    # f32 values at a fixed-point scale F = 40: 24 significant bits each.
    f32ish = []
    for _ in range(200):
        m = rnd.randrange(1 << 23, 1 << 24) * rnd.choice([-1, 1])
        e = rnd.randrange(-12, 0)
        f32ish.append(m << (40 - 23 + e) if e > -17 else m >> (-(40 - 23 + e)))
    yield "f32 at scale 40, 200", f32ish
    yield "random i64, 97", [rnd.randrange(lo, hi + 1) for _ in range(97)]
    yield "single bits", [1 << b if b < 63 else lo for b in range(64)]


def invalid():
    good = encode([3, -8, 12, 0, 5])
    yield "width 65", good[:4] + bytes([65]) + good[5:], "Width"
    yield "shift 64", good[:5] + bytes([64]) + good[6:], "Shift"
    yield "shift with zero width", bytes([1, 0, 0, 0, 0, 1]), "Shift"
    yield "width larger than needed", bytes([1, 0, 0, 0, 3, 0, zigzag(1)]), "NotCanonical"
    yield "shift smaller than allowed", bytes([2, 0, 0, 0, 4, 0, zigzag(2) | zigzag(4) << 4]), "NotCanonical"
    yield "non-zero padding", good[:-1] + bytes([good[-1] | 0x80]), "NotCanonical"
    yield "overflow", bytes([1, 0, 0, 0, 2, 63, 2]), "Overflow"
    yield "trailing byte", good + b"\0", "Trailing"
    yield "truncated values", good[:-1], "Truncated"
    yield "truncated count", good[:3], "Truncated"
    yield "count beyond the bytes", bytes([0xFF, 0xFF, 0xFF, 0xFF, 0, 0]), "CountTooLarge"


def main():
    out = {
        "about": "packed payloads of ring data messages (docs/ring-protocol.md, protocol version 4)",
        "command": "python3 tools/reference/ring_codec_kat.py",
        "block": BLOCK,
        "cases": [
            {"name": n, "values": [i64(x) for x in v], "packed": encode(v).hex()}
            for n, v in cases()
        ],
        "invalid": [{"name": n, "packed": b.hex(), "error": e} for n, b, e in invalid()],
    }
    path = Path(__file__).resolve().parents[2] / "testdata/ring/codec.json"
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {path}: {len(out['cases'])} cases, {len(out['invalid'])} invalid", file=sys.stderr)


if __name__ == "__main__":
    main()
