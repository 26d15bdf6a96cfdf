"""Rings from Python on loopback: `ring_join` and `GSPOTrainer(ring=...)` next to the real
`gym ring join` / `gym train --ring` processes; every member's averaged delta is byte-identical."""

import json
import os
import random
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import gym_protocol as gp
from conftest import ROOT, _gym_binary
from test_trainer import DATASET, MODEL, SMALL

try:
    import tomllib
except ImportError:  # Python < 3.11
    tomllib = None


def _free_port() -> int:
    # below the ephemeral range, away from the Rust ring tests' ports
    while True:
        port = random.randint(32_000, 32_700)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue


def make_ring(d, gym, n=3):
    """n member keys and a `gym ring plan` file listing them on loopback ports."""
    keys, lines = [], []
    for i in range(n):
        key = gp.generate_key(d / f"k{i}.pem")
        _, show, _ = gym("key", "show", "--json", key.path, check=True)
        keys.append(key)
        lines.append(f"127.0.0.1:{_free_port()} {json.dumps(json.loads(show))}")
    (d / "members.txt").write_text("\n".join(lines) + "\n")
    gym("ring", "plan", "-o", d / "ring.toml", d / "members.txt", check=True)
    return d / "ring.toml", keys


def _python(code: str, *args) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=str(ROOT / "python" / "tests"),
    )


def _wait(procs):
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, f"{p.args}: exit {p.returncode}\n{err}"
        outs.append(out)
    return outs


JOIN = """
    import json, sys, tomllib
    import gym_protocol as gp
    ring, key, inp, out, as_dict = sys.argv[1:]
    if as_dict == "dict":
        with open(ring, "rb") as f:
            ring = tomllib.load(f)
    print(json.dumps(gp.ring_join(ring, inp, out, key=key, weight=2, timeout=20, connect_timeout=60)))
"""


@pytest.mark.skipif(tomllib is None, reason="needs Python 3.11 (tomllib) for the ring-as-dict member")
def test_ring_join_python_and_cli_members_agree(tmp_path, gym):
    ring, keys = make_ring(tmp_path, gym)
    rng = np.random.default_rng(7)
    values = []
    for i, key in enumerate(keys):
        t = {"a.lora_A.weight": rng.standard_normal((4, 16), np.float32), "a.lora_B.weight": rng.standard_normal((16, 4), np.float32)}
        values.append(t)
        gp.DeltaWriter(tmp_path / f"in{i}.delta", key=key).write_delta(t)
    procs = [
        _python(JOIN, ring, keys[0].path, tmp_path / "in0.delta", tmp_path / "out0.delta", "path"),
        _python(JOIN, ring, keys[1].path, tmp_path / "in1.delta", tmp_path / "out1.delta", "dict"),
        subprocess.Popen(
            [_gym_binary(), "-q", "ring", "join", "--ring", str(ring), "--key", str(keys[2].path), "--input",
             str(tmp_path / "in2.delta"), "-o", str(tmp_path / "out2.delta"), "--weight", "2"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        ),
    ]
    outs = _wait(procs)
    reports = [json.loads(o) for o in outs[:2]]
    assert [r["member"] for r in reports] == [0, 1]
    assert all(r["members"] == 3 and r["total_weight"] == 6 for r in reports)
    assert reports[0]["digest"] == reports[1]["digest"]
    blobs = [(tmp_path / f"out{i}.delta").read_bytes() for i in range(3)]
    assert blobs[0] == blobs[1] == blobs[2]
    avg = gp.read_delta(tmp_path / "out0.delta")
    for name in values[0]:
        want = sum(v[name].astype(np.float64) for v in values) / 3
        np.testing.assert_allclose(avg[name], want, atol=1e-4)
    # the result audits against the inputs with gym
    code, _, err = gym("ring", "audit", "--ring", ring, *sum((["--input", tmp_path / f"in{i}.delta"] for i in range(3)), []), tmp_path / "out0.delta")
    assert code == 0, err


def test_ring_join_refusals(tmp_path, gym):
    ring, keys = make_ring(tmp_path, gym, n=2)
    other = gp.generate_key(tmp_path / "outsider.pem")
    gp.DeltaWriter(tmp_path / "in.delta", key=other).write_delta({"x": np.zeros(4, np.float32)})
    with pytest.raises(gp.UntrustedError) as e:  # not a member: refused before any network traffic
        gp.ring_join(ring, tmp_path / "in.delta", tmp_path / "out.delta", key=other)
    assert "not a member" in str(e.value)
    with pytest.raises(gp.UsageError):
        gp.ring_join(ring, tmp_path / "in.delta", tmp_path / "out.delta", key=keys[0], timeout=0)
    with pytest.raises(gp.UsageError):
        gp.ring_join(42, tmp_path / "in.delta", tmp_path / "out.delta", key=keys[0])
    with pytest.raises(gp.RingError):  # the other member never comes
        gp.ring_join(ring, tmp_path / "in.delta", tmp_path / "out.delta", key=keys[0], connect_timeout=1, timeout=1)
    assert not (tmp_path / "out.delta").exists()


TRAIN = """
    import json, sys
    import gym_protocol as gp
    from test_trainer import DATASET, MODEL, SMALL
    ring, key, out = sys.argv[1:]
    t = gp.GSPOTrainer(model_name=MODEL, ring=ring, key=key, output=out, progress=None, ring_connect_timeout=120, **SMALL)
    d = t.train_epoch(DATASET, steps=2)
    print(json.dumps({"path": d.path, "aggregated": t.last_aggregated, "deltas": t.last_deltas}))
"""


def test_trainers_in_a_ring_with_gym_train_agree(tmp_path, gym):
    """Two GSPOTrainer processes and one `gym train --ring` average after 2 steps: the same
    averaged delta at every member, and each trainer's next delta is trained from it."""
    ring, keys = make_ring(tmp_path, gym)
    (tmp_path / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in DATASET))
    cfg = {k: v for k, v in SMALL.items() if k != "reward"}
    (tmp_path / "cfg.toml").write_text("".join(f"{k} = {json.dumps(v)}\n" for k, v in cfg.items()))
    procs = [_python(TRAIN, ring, keys[i].path, tmp_path / f"r{i}") for i in range(2)]
    procs.append(
        subprocess.Popen(
            [_gym_binary(), "-q", "train", "--model", str(MODEL), "--data", str(tmp_path / "data.jsonl"),
             "--config", str(tmp_path / "cfg.toml"), "--reward", SMALL["reward"][0], "--max-steps", "2",
             "--aggregate-interval", "2", "--ring", str(ring), "--key", str(keys[2].path),
             "--ring-connect-timeout", "120", "-o", str(tmp_path / "r2")],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
    )
    outs = _wait(procs)
    reports = [json.loads(o) for o in outs[:2]]
    for r in reports:
        assert len(r["aggregated"]) == 1 and r["aggregated"][0]["members"] == 3, r
        assert r["path"] == r["aggregated"][0]["path"]
    avg = [(tmp_path / f"r{i}" / "deltas" / "avg-000001.delta").read_bytes() for i in range(3)]
    assert avg[0] == avg[1] == avg[2]
    own = [(tmp_path / f"r{i}" / "deltas" / "delta-000001.delta").read_bytes() for i in range(2)]
    assert own[0] != own[1]  # each member trained on its own stream
    assert reports[0]["aggregated"][0]["digest"] == reports[1]["aggregated"][0]["digest"]


def test_trainer_ring_refusals(tmp_path, gym):
    ring, keys = make_ring(tmp_path, gym, n=2)
    with pytest.raises(gp.UsageError) as e:
        gp.GSPOTrainer(model_name=MODEL, ring=ring, key=keys[1], ring_position=0, output=tmp_path / "a", progress=None)
    assert "member 1" in str(e.value)
    outsider = gp.generate_key(tmp_path / "o.pem")
    with pytest.raises(gp.UntrustedError):
        gp.GSPOTrainer(model_name=MODEL, ring=ring, key=outsider, output=tmp_path / "b", progress=None)
