#!/usr/bin/env python3
"""Writes a Parquet dataset of at least SIZE_MIB MiB (default 1024) with pyarrow for
bench/parquet_stream.sh: GSM8K-shaped rows (`question`, `answer` ending in `#### N`, an integer
`id`) of random words from a fixed vocabulary (seeded), snappy pages, row groups of 100 000 rows
(pyarrow's writer, one row group per write), so the file cannot be read cheaply as a whole.
Usage: python bench/parquet_big.py OUT.parquet [SIZE_MIB]   (needs pyarrow)
"""
import os
import random
import sys

import pyarrow as pa
import pyarrow.parquet as pq

out = sys.argv[1]
size = int(sys.argv[2]) if len(sys.argv) > 2 else 1024
rng = random.Random(15)
vocab = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9)))
         for _ in range(20000)]
schema = pa.schema([("id", pa.int64()), ("question", pa.string()), ("answer", pa.string())])
n = 0
with pq.ParquetWriter(out, schema, compression="snappy") as w:
    while True:
        rows = 100_000
        qs = [" ".join(rng.choices(vocab, k=70)) + "?" for _ in range(rows)]
        ans = [" ".join(rng.choices(vocab, k=30)) + f"\n#### {rng.randint(0, 9999)}" for _ in range(rows)]
        w.write_table(pa.table({"id": list(range(n, n + rows)), "question": qs, "answer": ans},
                               schema=schema))
        n += rows
        w.file_handle.flush() if hasattr(w, "file_handle") else None
        if os.path.getsize(out) >= size << 20:
            break
print(f"wrote {out}: {n} rows, {os.path.getsize(out) / 2**20:.0f} MiB")
