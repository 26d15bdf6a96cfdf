#!/usr/bin/env python3
"""Reads the TensorBoard event files of a run with the `tensorboard` package's own reader and
prints what it found as JSON: {"files": N, "tags": {tag: [[step, value], ...]}}.

    python3 tools/reference/read_tensorboard.py OUTPUT/runs

The CLI test `train_reports_to_tensorboard` runs it (with GYM_TEST_TENSORBOARD_PYTHON, a Python
that has `pip install tensorboard`; .ci/run sets one up) and compares the values with
metrics.jsonl.
"""
import glob
import json
import os
import sys

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def main():
    logdir = sys.argv[1]
    files = glob.glob(os.path.join(logdir, "events.out.tfevents.*"))
    acc = EventAccumulator(logdir, size_guidance={"scalars": 0})
    acc.Reload()
    tags = {t: [[e.step, e.value] for e in acc.Scalars(t)] for t in acc.Tags()["scalars"]}
    json.dump({"files": len(files), "tags": tags}, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
