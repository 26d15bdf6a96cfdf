"""Inputs of bench/wan.sh, as .safetensors files of f32 tensors (~MiB each):
  lora SRC.safetensors OUT MiB   a real LoRA delta (unpacked from `gym train`'s DELTA) scaled up
                                 by tensor count: its tensors repeated under new names
                                 (`copyK.<name>`) until the file holds MiB of tensor data
  gauss SEED OUT MiB             random Gaussian f32 (σ 0.02, numpy seed SEED) in 4 MiB
                                 tensors: the worst case for compressing the integer stream
No dependency beyond numpy."""
import json
import struct
import sys

import numpy as np


def read(path):
    with open(path, "rb") as f:
        blob = f.read()
    (hlen,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + hlen])
    data = blob[8 + hlen:]
    out = []
    for name, v in header.items():
        if name == "__metadata__":
            continue
        assert v["dtype"] == "F32", f"{path}: {name} is {v['dtype']}"
        a, b = v["data_offsets"]
        out.append((name, v["shape"], data[a:b]))
    return out


def write(path, tensors):
    header, off = {}, 0
    for name, shape, raw in tensors:
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [off, off + len(raw)]}
        off += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for _, _, raw in tensors:
            f.write(raw)


def lora(src, out, mib):
    base = read(src)
    target, total, tensors, k = mib << 20, 0, [], 0
    while total < target:
        for name, shape, raw in base:
            if total + len(raw) > target:
                break
            tensors.append((f"copy{k}.{name}", shape, raw))
            total += len(raw)
        else:
            k += 1
            continue
        break
    write(out, tensors)


def gauss(seed, out, mib):
    rng = np.random.default_rng(seed)
    per = 1 << 20  # elements: 4 MiB tensors
    tensors = [(f"gauss.{i}", [per], (rng.standard_normal(per, dtype=np.float32) * 0.02).tobytes())
               for i in range((mib << 20) // (per * 4))]
    write(out, tensors)


if __name__ == "__main__":
    kind = sys.argv[1]
    if kind == "lora":
        lora(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    elif kind == "gauss":
        gauss(int(sys.argv[2]), sys.argv[3], int(sys.argv[4]))
    else:
        sys.exit(__doc__)
