#!/usr/bin/env python3
"""bitsandbytes NF4 reference: quantize_4bit / dequantize_4bit on the CPU backend.

Input: a (100, 192) f32 matrix from a 32-bit LCG that gym reproduces bit for bit
(see `lcg_matrix` in src/core/model/nf4.rs):
    s_{k+1} = s_k * 1664525 + 1013904223 (mod 2^32), s_0 = 12345
    x_i = ((s_{i+1} >> 8) / 2^24 * 2 - 1) * ((1 + (i // 64) % 7) * 0.01)   (all in f32)
with block 17 set to zero (an all-zero block) and x_5 = absmax of its block exactly negated.

Output testdata/model-ref/nf4.safetensors:
    packed        u8 (9600,)   NF4 codes, two per byte, first element in the high nibble
    absmax        f32 (300,)   per-block absmax (compress_statistics=False)
    qabsmax       u8 (300,)    absmax - offset, 8-bit blockwise (blocksize 256) codes
    absmax2       f32 (2,)     absmax of those 256-blocks
    offset        f32 (1,)     mean of absmax
    code8         f32 (256,)   the dynamic 8-bit code bitsandbytes used
    dequant       f32 (19200,) dequantize_4bit of the double-quantized tensor
    input_head    f32 (256,)   the first 256 inputs (checks the generator)
    mean_lengths, means         torch's f32 mean of |x[:n]| for those n (the offset's arithmetic)

    /work/venv-ref/bin/python tools/reference/nf4.py
"""
import os

import numpy as np
import torch
import bitsandbytes
import bitsandbytes.functional as F
from safetensors.torch import save_file

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")


def lcg_matrix(rows=100, cols=192, seed=12345):
    n = rows * cols
    s = np.uint64(seed)
    out = np.empty(n, dtype=np.float32)
    for i in range(n):
        s = (s * np.uint64(1664525) + np.uint64(1013904223)) & np.uint64(0xFFFFFFFF)
        u = np.float32(int(s) >> 8) / np.float32(16777216.0)
        scale = np.float32(1 + (i // 64) % 7) * np.float32(0.01)
        out[i] = (u * np.float32(2.0) - np.float32(1.0)) * scale
    out[17 * 64:18 * 64] = 0.0
    out[5] = -np.abs(out[:64]).max()
    return torch.from_numpy(out.reshape(rows, cols))


def main():
    a = lcg_matrix()
    packed_p, st_p = F.quantize_4bit(a, blocksize=64, compress_statistics=False, quant_type="nf4")
    packed, st = F.quantize_4bit(a, blocksize=64, compress_statistics=True, quant_type="nf4")
    assert torch.equal(packed_p, packed)
    # without double quantization, dequantize is exactly code[q] * absmax (checked here)
    deq = F.dequantize_4bit(packed, st)
    deq_p = F.dequantize_4bit(packed_p, st_p)
    out = {
        "packed": packed.reshape(-1).contiguous(),
        "absmax": st_p.absmax.float().contiguous(),
        "qabsmax": st.absmax.reshape(-1).contiguous(),
        "absmax2": st.state2.absmax.float().contiguous(),
        "offset": st.offset.reshape(1).float().contiguous(),
        "code8": st.state2.code.float().contiguous(),
        "dequant": deq.reshape(-1).float().contiguous(),
        "input_head": a.reshape(-1)[:256].contiguous(),
    }
    # the offset is torch's f32 mean (cascade sum); check gym's transcription on more lengths
    flat = lcg_matrix().reshape(-1).abs()
    lengths = [1, 3, 7, 8, 9, 31, 33, 100, 129, 300, 1000, 4999, 19200]
    out["mean_lengths"] = torch.tensor(lengths, dtype=torch.int64)
    out["means"] = torch.stack([flat[:n].mean() for n in lengths]).contiguous()
    path = os.path.join(ROOT, "testdata", "model-ref", "nf4.safetensors")
    save_file(out, path, metadata={"bitsandbytes": bitsandbytes.__version__, "torch": torch.__version__,
                                   "backend": "cpu"})
    err = (deq - a).abs().max().item()
    print("nf4 packed", tuple(packed.shape), "qabsmax", tuple(st.absmax.shape), "absmax2", tuple(st.state2.absmax.shape),
          "offset", st.offset.item(), "max |deq - a|", err)


if __name__ == "__main__":
    main()
