"""torch.distributed.all_reduce with the gloo backend: N processes on loopback, one f32 tensor
of the given size, no encryption. Prints the median seconds of RUNS all-reduces (after one
warm-up) and the algorithm bus bandwidth 2·(N−1)/N·bytes/time.
Usage: python bench/ring_gloo.py [N] [MiB] [RUNS]
       python bench/ring_gloo.py member RANK N MASTER_ADDR:PORT FILE.safetensors RUNS
The `member` form is one process of an all-reduce across machines or network namespaces
(bench/wan.sh): it all-reduces every tensor of FILE (all f32) as one flat f32 tensor (one
bucket, as DDP does) and rank 0 prints the slowest member's seconds of each run, one a line.
GLOO_DTYPE=int64: all-reduce the same number of elements as int64 (gym's wire width: twice the
bytes), to separate the cost of the exact i64 sums from that of gym's cryptography."""
import os
import statistics
import sys
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def worker(rank, n, elements, runs, port, q):
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=n)
    dtype = torch.int64 if os.environ.get("GLOO_DTYPE") == "int64" else torch.float32
    x = torch.full((elements,), rank + 1, dtype=dtype)
    dist.all_reduce(x)  # warm-up
    times = []
    for _ in range(runs):
        x.fill_(rank + 1)
        dist.barrier()
        t0 = time.perf_counter()
        dist.all_reduce(x)
        times.append(time.perf_counter() - t0)
    assert x[0].item() == n * (n + 1) / 2
    # The slowest member decides when the all-reduce is done.
    t = torch.tensor(times)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    if rank == 0:
        q.put(t.tolist())
    dist.destroy_process_group()


def read_f32(path):
    """The tensors of a .safetensors file whose tensors are all f32, as one flat tensor."""
    import json
    import struct
    with open(path, "rb") as f:
        blob = f.read()
    (hlen,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + hlen])
    dtypes = {v["dtype"] for k, v in header.items() if k != "__metadata__"}
    assert dtypes == {"F32"}, f"{path}: dtypes {dtypes}, expected only F32"
    data = bytearray(blob[8 + hlen:])
    return torch.frombuffer(data, dtype=torch.float32)


def member(rank, n, master, path, runs):
    addr, port = master.rsplit(":", 1)
    os.environ["MASTER_ADDR"] = addr
    os.environ["MASTER_PORT"] = port
    torch.set_num_threads(1)
    x0 = read_f32(path)
    dist.init_process_group("gloo", rank=rank, world_size=n)
    x = x0.clone()
    dist.all_reduce(x)  # warm-up
    times = []
    for _ in range(runs):
        x.copy_(x0)
        dist.barrier()
        t0 = time.perf_counter()
        dist.all_reduce(x)
        times.append(time.perf_counter() - t0)
    t = torch.tensor(times)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    if rank == 0:
        print("\n".join(f"{v:.4f}" for v in t.tolist()), flush=True)
    dist.destroy_process_group()


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "member":
        r, n, master, path, runs = sys.argv[2:7]
        member(int(r), int(n), master, path, int(runs))
        return
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 4
    mib = int(sys.argv[2]) if len(sys.argv) > 2 else 64
    runs = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    elements = (mib << 20) // 4
    port = 29500 + os.getpid() % 1000
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    procs = [ctx.Process(target=worker, args=(r, n, elements, runs, port, q)) for r in range(n)]
    for p in procs:
        p.start()
    times = q.get()
    for p in procs:
        p.join()
    med = statistics.median(times)
    busbw = 2 * (n - 1) / n * (mib << 20) / med
    print(f"gloo {n} {mib} {med:.4f} {busbw / 2**20:.1f}")


if __name__ == "__main__":
    main()
