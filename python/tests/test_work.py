"""gym_protocol.work against a real `gym orchestrate`, next to a `gym work` process: both
finish the job's round with the same adapter, equal to the published checkpoint."""

import json
import subprocess
import time
import urllib.request

import gym_protocol as gp
from conftest import _gym_binary
from test_ring import _free_port


def _job(d, ids):
    s = (
        'name = "py"\nepochs = 1\nrounds_per_epoch = 1\nmin_workers = 2\nmax_workers = 2\nring_size = 2\n'
        "redundancy = 0\n[timeouts]\ntrain = 300\nring = 120\n\n[train]\naggregate_interval = 2\n\n"
        '[publish]\nto = "published"\n'
    )
    for i in ids:
        s += f'\n[[worker]]\nid = "{i}"\nstake = 10\n'
    (d / "job.toml").write_text(s)
    return d / "job.toml"


def _wait_up(url):
    start = time.time()
    while True:
        try:
            urllib.request.urlopen(f"{url}/v1/job", timeout=2).read()
            return
        except OSError:
            assert time.time() - start < 60, "orchestrator did not come up"
            time.sleep(0.1)


def test_work_in_process_with_a_gym_work_peer(tmp_path):
    orch_key = gp.generate_key(tmp_path / "orch.pem")
    keys = [gp.generate_key(tmp_path / f"w{i}.pem") for i in range(2)]
    job = _job(tmp_path, [k.worker_id for k in keys])
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    exe = _gym_binary()
    with open(tmp_path / "orch.log", "w") as olog, open(tmp_path / "w1.log", "w") as wlog:
        orch = subprocess.Popen(
            [exe, "orchestrate", "--linger", "8", "--listen", f"127.0.0.1:{port}", "--job", str(job), "--key", str(orch_key.path)],
            stdout=subprocess.DEVNULL, stderr=olog, cwd=tmp_path,
        )
        try:
            _wait_up(url)
            peer = subprocess.Popen(
                [exe, "work", "--json", "--orchestrator", url, "--key", str(keys[1].path), "-o", str(tmp_path / "w1")],
                stdout=subprocess.PIPE, stderr=wlog, text=True,
            )
            events = []
            summary = gp.work(url, keys[0], tmp_path / "w0", on_event=events.append)
            out, _ = peer.communicate(timeout=600)
            assert peer.returncode == 0, (tmp_path / "w1.log").read_text()
        finally:
            if orch.poll() is None:
                orch.wait(timeout=60)
    peer_summary = json.loads(out)
    assert summary["format"] == peer_summary["format"] == "gym-work/1"
    assert summary["worker"] == keys[0].worker_id
    assert summary["rounds_trained"] == peer_summary["rounds_trained"] == 1
    assert summary["rings"] == 1
    kinds = [e["event"] for e in events]
    assert kinds[0] == "registered" and "trained" in kinds and "ring" in kinds and kinds[-1] == "finished", kinds
    ours = (tmp_path / "w0" / "adapter" / "adapter_model.safetensors").read_bytes()
    theirs = (tmp_path / "w1" / "adapter" / "adapter_model.safetensors").read_bytes()
    assert ours == theirs
    published = list((tmp_path / "published").glob("*/adapter_model.safetensors"))
    assert [p.read_bytes() for p in published] == [ours], (tmp_path / "orch.log").read_text()


def test_work_refuses_a_bad_url(tmp_path):
    key = gp.generate_key(tmp_path / "w.pem")
    try:
        gp.work(f"http://127.0.0.1:{_free_port()}", key, tmp_path / "w", patience=1)
    except gp.GymError as e:
        assert e.exit_code != 0
    else:
        raise AssertionError("work against nothing must fail")
