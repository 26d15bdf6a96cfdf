"""torch.distributed.all_reduce with the gloo backend: N processes on loopback, one f32 tensor
of the given size, no encryption. Prints the median seconds of RUNS all-reduces (after one
warm-up) and the algorithm bus bandwidth 2·(N−1)/N·bytes/time.
Usage: python bench/ring_gloo.py [N] [MiB] [RUNS]
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


def main():
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
