#!/usr/bin/env python3
"""Writes testdata/hub/math.parquet with pyarrow, as a Hub dataset's Parquet file is written:
generated grade-school arithmetic word problems (no third-party text), GSM8K's columns
(`question`, `answer` ending in `#### N`) plus an integer `id` and a `messages` column
(list<struct<role, content>>) so the reader's type conversions are exercised. Snappy pages,
two row groups.

Run once from the repository root:  python tools/reference/hub-datasets.py
(needs: pip install pyarrow)
"""
import random

import pyarrow as pa
import pyarrow.parquet as pq

rng = random.Random(15)
names = ["Ada", "Bo", "Chen", "Dara", "Eli", "Fatima", "Goran", "Hana"]
things = ["apples", "stamps", "marbles", "books", "shells"]
rows = []
for i in range(24):
    who, what = rng.choice(names), rng.choice(things)
    a, b, c = rng.randint(2, 60), rng.randint(2, 40), rng.randint(1, 9)
    q = f"{who} has {a} {what}, buys {b} more and gives away {c}. How many {what} does {who} have now?"
    total = a + b - c
    ans = f"{who} has {a} + {b} = {a + b} {what}, then {a + b} - {c} = {total}.\n#### {total}"
    rows.append({"id": i, "question": q, "answer": ans,
                 "messages": [{"role": "user", "content": q}]})

msg = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
schema = pa.schema([("id", pa.int64()), ("question", pa.string()), ("answer", pa.string()),
                    ("messages", msg)])
table = pa.Table.from_pylist(rows, schema=schema)
pq.write_table(table, "testdata/hub/math.parquet", row_group_size=16, compression="snappy")
print("wrote testdata/hub/math.parquet:", table.num_rows, "rows")
