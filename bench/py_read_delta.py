#!/usr/bin/env python3
"""gym_protocol.read_delta (verified, into numpy) against safetensors.numpy.load_file on the same
tensors, side by side: wall time (median of RUNS) and peak RSS above the interpreter's baseline.

    python bench/py_read_delta.py [MiB]      (env: RUNS=3, BENCH_DIR=/dev/shm/gym-bench-py)

Needs gym_protocol (pip install ./python), numpy and safetensors in the running interpreter.
The input is LoRA-like: rank-16 f32 A/B factors of a 4096-wide model, N(0, 0.02) values, the
layout bench/delta.sh uses; the delta is signed (Ed25519), LZ4, 1 MiB chunks. Each measurement
runs in a fresh interpreter so peak RSS belongs to that reader alone. Page cache warm.
"""

import json
import os
import statistics
import subprocess
import sys

CHILD = r"""
import sys, time, json
import numpy as np
kind, path, key = sys.argv[1], sys.argv[2], sys.argv[3]
if kind == "gym":
    import gym_protocol as gp
    load = lambda: gp.read_delta(path, trusted_keys=[gp.load_key(key)]).tensors
else:
    from safetensors.numpy import load_file
    load = lambda: load_file(path)
def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM"):
            return int(line.split()[1])
base = hwm()
t0 = time.perf_counter()
tensors = load()
dt = time.perf_counter() - t0
peak = hwm()
n = sum(a.nbytes for a in tensors.values())
print(json.dumps({"s": dt, "peak_kib": peak, "base_kib": base, "bytes": n, "tensors": len(tensors)}))
"""


def make_inputs(d: str, mib: int) -> tuple:
    import numpy as np
    from safetensors.numpy import save_file

    import gym_protocol as gp

    st = os.path.join(d, "in.safetensors")
    delta = os.path.join(d, "in.delta")
    key = os.path.join(d, "k.pem")
    if not os.path.exists(st):
        rng = np.random.default_rng(0)
        width, rank = 4096, 16
        per = width * rank * 4
        n = mib * (1 << 20) // per
        tensors = {}
        for i in range(n // 2):
            layer, mod = divmod(i, 7)
            p = f"base_model.model.model.layers.{layer}.m{mod}"
            tensors[f"{p}.lora_A.weight"] = (rng.standard_normal((rank, width), np.float32) * 0.02)
            tensors[f"{p}.lora_B.weight"] = (rng.standard_normal((width, rank), np.float32) * 0.02)
        save_file(tensors, st)
        del tensors
    if not os.path.exists(key):
        gp.generate_key(key)
    gp.DeltaWriter(delta, key=key, force=True).write_delta(st)
    for p in (st, delta):  # warm the page cache
        with open(p, "rb") as f:
            while f.read(1 << 24):
                pass
    return st, delta, key


def measure(kind: str, path: str, key: str, runs: int) -> dict:
    rs = []
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-c", CHILD, kind, path, key], check=True, capture_output=True, text=True)
        rs.append(json.loads(out.stdout))
    return {
        "s": statistics.median(r["s"] for r in rs),
        "rss_mib": max(r["peak_kib"] - r["base_kib"] for r in rs) / 1024,
        "bytes": rs[0]["bytes"],
        "tensors": rs[0]["tensors"],
    }


def main() -> None:
    mib = int(sys.argv[1]) if len(sys.argv) > 1 else 1024
    runs = int(os.environ.get("RUNS", "3"))
    d = os.environ.get("BENCH_DIR", "/dev/shm/gym-bench-py")
    os.makedirs(d, exist_ok=True)
    st, delta, key = make_inputs(d, mib)
    g = measure("gym", delta, key, runs)
    s = measure("safetensors", st, key, runs)
    size = g["bytes"] / (1 << 20)
    print(f"tensors: {g['tensors']}, {size:.0f} MiB; median of {runs} runs, fresh interpreter each")
    print(f"{'reader':40} {'wall s':>8} {'peak RSS above baseline':>24} {'RSS / tensors':>14}")
    for name, r in (("gym_protocol.read_delta (verified)", g), ("safetensors.numpy.load_file", s)):
        print(f"{name:40} {r['s']:8.3f} {r['rss_mib']:20.0f} MiB {r['rss_mib'] / size:14.2f}")
    print(f"speed ratio (safetensors / read_delta): {s['s'] / g['s']:.2f}  (target >= 1.0)")
    print(f"read_delta peak RSS / tensor bytes: {g['rss_mib'] / size:.2f}  (target <= 1.2)")


if __name__ == "__main__":
    main()
