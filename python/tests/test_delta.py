"""DELTA read/write/verify: numpy round trips, the gym CLI both ways, every error class."""

import json
import os

import numpy as np
import pytest

import gym_protocol as gp
from conftest import ROOT, VECTORS


def test_every_vector_matches_the_cli(manifest, gym):
    """Each vector of testdata/vectors: read_delta succeeds with the manifest's digest, or raises
    the class the manifest names with the CLI's exit code for that file."""
    assert len(manifest) > 30
    for v in manifest:
        path = VECTORS / v["file"]
        kw = {"verify": "trusted_keys" in v, "raw_unsupported": True}
        args = ["delta", "verify", path]
        if "trusted_keys" in v:
            kw["trusted_keys"] = VECTORS / v["trusted_keys"]
            args += ["--trusted-keys", VECTORS / v["trusted_keys"]]
        if "min_seq" in v:
            kw["min_seq"] = v["min_seq"]
            args += ["--min-seq", v["min_seq"]]
        if "base_hash" in v:
            kw["base_hash"] = v["base_hash"]
            args += ["--base-hash", v["base_hash"]]
        code, _, _ = gym(*args)
        if v["expect"] == "valid":
            d = gp.read_delta(path, **kw)
            assert d.digest == v["digest"], v["description"]
            assert code == 0
            continue
        with pytest.raises(gp.GymError) as e:
            gp.read_delta(path, **kw)
        err = e.value
        assert err.error_class == v["class"], (v["description"], err)
        assert err.kind == v["error"], (v["description"], err)
        assert err.exit_code == code != 0, (v["description"], err, code)
        # verify() agrees with read_delta()
        with pytest.raises(type(err)):
            gp.verify(path, require_signature=kw["verify"], **{k: x for k, x in kw.items() if k not in ("verify", "raw_unsupported")})


ARRAYS = {
    "f32": np.arange(24, dtype=np.float32).reshape(2, 3, 4) / 7,
    "f16": np.linspace(-2, 2, 10, dtype=np.float16),
    "f64-scalar": np.array(3.25),
    "i64": np.array([[-(2**62), 5]], dtype=np.int64),
    "u8": np.frombuffer(os.urandom(3000), dtype=np.uint8),
    "bool": np.array([True, False, True]),
    "c64": np.array([1 + 2j, -3j], dtype=np.complex64),
    "empty": np.zeros((0, 5), dtype=np.float32),
    "big-endian": np.arange(6, dtype=">i4"),
    "strided": np.arange(20, dtype=np.float32).reshape(4, 5)[:, ::2],
}


def test_numpy_round_trip_signed(tmp_path):
    key = gp.generate_key(tmp_path / "k.pem")
    w = gp.DeltaWriter(tmp_path / "a.delta", key=key, chunk_size=256)
    s = w.write_delta(ARRAYS, epoch=2, step=5, seq=9, loss=0.5)
    assert s["signed"] and s["tensors"] == len(ARRAYS)
    d = gp.read_delta(tmp_path / "a.delta", trusted_keys=[key])
    assert d.trusted and d.signer["worker_id"] == key.worker_id
    assert d.digest == s["digest"]
    assert d.metadata["seq"] == 9 and d.metadata["epoch"] == 2 and d.metadata["worker_id"] == key.worker_id
    assert list(d.tensors) == list(ARRAYS)
    for name, a in ARRAYS.items():
        b = d.tensors[name]
        assert b.shape == a.shape and b.dtype == a.dtype.newbyteorder("<"), name
        np.testing.assert_array_equal(b, a)
    d.tensors["f32"][0, 0, 0] = 1.0  # writable, owned by Python
    meta, tensors = d
    assert meta is d.metadata and tensors is d.tensors


def test_python_delta_verifies_and_unpacks_with_gym(tmp_path, gym):
    key = gp.generate_key(tmp_path / "k.pem", pq=True)
    (tmp_path / "trusted.txt").write_text(key.trusted_line() + "\n")
    s = gp.DeltaWriter(tmp_path / "a.delta", key=key).write_delta({"w": ARRAYS["f32"], "b": ARRAYS["i64"]}, seq=3)
    assert s["hybrid"]
    code, out, err = gym("delta", "verify", "--json", "--trusted-keys", tmp_path / "trusted.txt", tmp_path / "a.delta")
    assert code == 0, err
    assert s["digest"] in out
    code, _, err = gym("delta", "unpack", tmp_path / "a.delta", "-o", tmp_path / "a.safetensors")
    assert code == 0, err
    st = pytest.importorskip("safetensors.numpy")
    back = st.load_file(str(tmp_path / "a.safetensors"))
    np.testing.assert_array_equal(back["w"], ARRAYS["f32"])
    np.testing.assert_array_equal(back["b"], ARRAYS["i64"])


def test_gym_delta_reads_in_python(tmp_path, gym):
    adapter = ROOT / "testdata" / "tiny-qwen3-lora"
    assert (adapter / "adapter_model.safetensors").is_file()
    key = gp.generate_key(tmp_path / "k.pem")
    code, digest, err = gym("delta", "pack", adapter, "-o", tmp_path / "g.delta", "--sign", key.path, "--seq", 4)
    assert code == 0, err
    d = gp.read_delta(tmp_path / "g.delta", trusted_keys=[key])
    assert d.digest == digest.strip()
    assert d.metadata["adapter_config"] == json.loads((adapter / "adapter_config.json").read_text())
    st = pytest.importorskip("safetensors.numpy")
    ref = st.load_file(str(adapter / "adapter_model.safetensors"))
    assert set(ref) == set(d.tensors)
    for k, v in ref.items():
        np.testing.assert_array_equal(d.tensors[k], v)
    # the Python writer packs the same folder to the same tensors and adapter config
    s = gp.DeltaWriter(tmp_path / "p.delta", key=key).write_delta(adapter, seq=4)
    p = gp.read_delta(tmp_path / "p.delta", trusted_keys=[key])
    assert p.metadata["adapter_config"] == d.metadata["adapter_config"]
    for k in ref:
        np.testing.assert_array_equal(p.tensors[k], d.tensors[k])
    assert s["digest"] == p.digest
    # a delta read from a file writes back with its metadata
    gp.DeltaWriter(tmp_path / "again.delta", key=key).write_delta(p, seq=5)
    again = gp.read_delta(tmp_path / "again.delta", trusted_keys=[key])
    assert again.metadata["seq"] == 5 and again.metadata["adapter_config"] == p.metadata["adapter_config"]


def test_reader_is_lazy_and_checks_trust(tmp_path):
    a = gp.generate_key(tmp_path / "a.pem")
    b = gp.generate_key(tmp_path / "b.pem")
    gp.DeltaWriter(tmp_path / "x.delta", key=a).write_delta({"t": np.ones(3, np.float32)})
    r = gp.DeltaReader(tmp_path / "x.delta", trusted_keys=[b])
    assert r.keys() == ["t"] and r.signed and r.metadata["worker_id"] == a.worker_id
    with pytest.raises(gp.UntrustedError) as e:
        r["t"]
    assert e.value.exit_code == 14 and e.value.kind == "untrusted"
    assert gp.DeltaReader(tmp_path / "x.delta", trusted_keys=[a, b])["t"].sum() == 3


def test_errors_of_the_writer_and_inputs(tmp_path):
    out = tmp_path / "o.delta"
    gp.DeltaWriter(out).write_delta({"t": np.zeros(2, np.float32)})
    before = out.read_bytes()
    with pytest.raises(gp.ExistsError) as e:
        gp.DeltaWriter(out).write_delta({"t": np.ones(2, np.float32)})
    assert e.value.exit_code == 4 and out.read_bytes() == before
    gp.DeltaWriter(out, force=True).write_delta({"t": np.ones(2, np.float32)})
    assert out.read_bytes() != before
    # unsigned deltas need verify=False
    with pytest.raises(gp.UntrustedError):
        gp.read_delta(out)
    assert gp.read_delta(out, verify=False).signer is None
    with pytest.raises(gp.IoError) as e:
        gp.read_delta(tmp_path / "missing.delta", verify=False)
    assert e.value.exit_code == 3
    with pytest.raises(gp.UnsupportedError):
        gp.DeltaWriter(tmp_path / "s.delta").write_delta({"s": np.array(["a"])})
    with pytest.raises(gp.MalformedError):
        gp.DeltaWriter(tmp_path / "m.delta").write_delta({"t": np.zeros(1)}, no_such_field=1)
    with pytest.raises(gp.MalformedError):
        gp.DeltaWriter(tmp_path / "m.delta").write_delta({"t": np.zeros(1)}, base_hash="xyz")
    with pytest.raises(gp.UsageError) as e:
        gp.DeltaWriter(tmp_path / "c.delta", compression="zstd").write_delta({"t": np.zeros(1)})
    assert e.value.exit_code == 2
    assert not (tmp_path / "m.delta").exists() and not (tmp_path / "c.delta").exists()
    with pytest.raises(gp.MalformedError) as e:
        gp.read_delta(VECTORS / "bad-magic.delta", verify=False)
    assert e.value.kind == "bad_magic" and e.value.exit_code == 10
    with pytest.raises(gp.UnsupportedError):
        gp.read_delta(VECTORS / "valid-all-dtypes.delta", verify=False)  # F4 has no numpy dtype
    raw = gp.read_delta(VECTORS / "valid-all-dtypes.delta", verify=False, raw_unsupported=True).tensors
    assert raw["dtype.F4"].dtype == np.uint8
    assert issubclass(gp.ChecksumError, gp.GymError) and gp.ChecksumError.exit_code == 12


def test_torch(tmp_path):
    try:
        import torch
    except ImportError:
        pytest.skip("torch is not installed (optional): the framework='pt' path is not tested here")
    t = {"bf": torch.linspace(-1, 1, 12, dtype=torch.bfloat16).reshape(3, 4), "f": torch.arange(5.0)}
    gp.DeltaWriter(tmp_path / "t.delta").write_delta(t)
    d = gp.read_delta(tmp_path / "t.delta", verify=False, framework="pt")
    assert d.tensors["bf"].dtype == torch.bfloat16
    assert torch.equal(d.tensors["bf"], t["bf"]) and torch.equal(d.tensors["f"], t["f"])
    try:
        import ml_dtypes  # noqa: F401
    except ImportError:
        with pytest.raises(gp.UnsupportedError):
            gp.read_delta(tmp_path / "t.delta", verify=False)  # bf16 into numpy needs ml_dtypes
