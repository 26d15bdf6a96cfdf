"""GSPOTrainer in-process on the tiny Qwen3 folder: the design's snippet, progress, Ctrl-C."""

import os
import signal
import subprocess
import sys
import textwrap

import pytest

import gym_protocol as gp
from conftest import ROOT

MODEL = ROOT / "testdata" / "tiny-qwen3"
# Small enough for a few seconds per epoch on a CI core.
SMALL = dict(
    num_generations=2,
    per_device_train_batch_size=2,
    max_completion_length=4,
    learning_rate=5e-3,
    reward=["coverage:[0-9]"],
)
DATASET = [{"prompt": f"Count to {i}:", "answer": str(i)} for i in range(1, 5)]


def test_design_snippet(tmp_path, gym):
    """from the design, with a local model folder for the hub id and a key argument."""
    from gym_protocol import DeltaWriter, GSPOTrainer

    key = gp.generate_key(tmp_path / "worker.pem")
    seen = []
    trainer = GSPOTrainer(
        model_name=MODEL, use_4bit=True, ring_position=0, key=key, output=tmp_path / "run", progress=seen.append, **SMALL
    )
    delta = trainer.train_epoch(DATASET)
    assert seen and seen[-1]["step"] == trainer.step == 4  # 4 prompts, 1 prompt (2 completions) per step
    assert seen[-1]["delta"] is not None
    writer = DeltaWriter(tmp_path / "delta.bin", key=key)
    writer.write_delta(delta)
    cid = gp.cid(tmp_path / "delta.bin")
    claim = trainer.claim_rewards(cid, delta)
    assert claim["worker_id"] == key.worker_id == trainer.worker_id
    # both the trainer's own delta and the re-written one verify with gym, signed by the key
    (tmp_path / "trusted.txt").write_text(key.trusted_line() + "\n")
    for p in (delta.path, tmp_path / "delta.bin"):
        code, _, err = gym("delta", "verify", "--trusted-keys", tmp_path / "trusted.txt", p)
        assert code == 0, err
    assert delta.metadata["base_hash"] and any(".lora_A." in n for n in delta.tensors)
    # a second epoch continues the run: the step count and the sequence number go on
    second = trainer.train_epoch(DATASET, steps=1)
    assert trainer.step == 5 and second.metadata["seq"] > delta.metadata["seq"]


def test_train_epoch_errors(tmp_path):
    with pytest.raises(gp.UsageError):
        gp.GSPOTrainer(model_name=tmp_path / "nope")
    with pytest.raises(gp.UsageError) as e:
        gp.GSPOTrainer(model_name=MODEL, output=tmp_path / "r", num_generations=1)
    assert e.value.exit_code == 2
    t = gp.GSPOTrainer(model_name=MODEL, output=tmp_path / "r2", progress=None, **SMALL)
    with pytest.raises(gp.UsageError):
        t.train_epoch([])
    with pytest.raises(gp.GymError):
        t.train_epoch([{"no_prompt": 1}])


def test_ctrl_c_stops_cleanly(tmp_path):
    """SIGINT during training: KeyboardInterrupt at the end of the step, state and adapter saved."""
    script = textwrap.dedent(
        f"""
        import os, signal, sys
        import gym_protocol as gp
        def progress(m):
            if m["step"] == 1:
                os.kill(os.getpid(), signal.SIGINT)
        t = gp.GSPOTrainer(model_name={str(MODEL)!r}, output={str(tmp_path / "run")!r},
                           progress=progress, **{SMALL!r})
        try:
            t.train_epoch({DATASET!r}, steps=50)
        except KeyboardInterrupt:
            print("interrupted at step", t.step)
            sys.exit(42)
        """
    )
    p = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert p.returncode == 42, p.stderr
    assert "interrupted at step 1" in p.stdout
    assert (tmp_path / "run" / "state" / "state.json").is_file()
    assert (tmp_path / "run" / "adapter" / "adapter_model.safetensors").is_file()


def test_gym_blas_is_read_at_import_and_a_bad_library_fails_it():
    """GYM_BLAS as `gym --blas`: builtin imports; a library that cannot be loaded fails the
    import with UsageError naming it (in a fresh interpreter: the choice is per process)."""
    import os
    import subprocess
    import sys

    def imp(value):
        env = dict(os.environ, GYM_BLAS=value)
        code = "import gym_protocol; print('imported')"
        return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)

    ok = imp("builtin")
    assert ok.returncode == 0 and "imported" in ok.stdout, ok.stderr
    bad = imp("/nonexistent/libgym-no-blas.so")
    assert bad.returncode != 0
    assert "UsageError" in bad.stderr and "/nonexistent/libgym-no-blas.so" in bad.stderr, bad.stderr
