"""GSPOTrainer(model_name="ORG/NAME[@REV]") through gym's hub code, against a local hub."""

import os

import pytest

import gym_protocol as gp
from hub_server import HubServer
from test_trainer import DATASET, MODEL, SMALL

REPO = "acme/tiny-qwen3"


@pytest.fixture
def hub(tmp_path, monkeypatch):
    server = HubServer()
    commit = server.add_repo(REPO, MODEL)
    for k in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_CACHE", "HF_HUB_OFFLINE", "HF_TOKEN_PATH"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    yield server, commit
    server.close()


def test_trainer_takes_a_hub_id(tmp_path, hub, monkeypatch):
    server, commit = hub
    t = gp.GSPOTrainer(model_name=REPO, output=tmp_path / "hub-run", progress=None, **SMALL)
    delta = t.train_epoch(DATASET, steps=1)
    snap = tmp_path / "hf" / "hub" / "models--acme--tiny-qwen3" / "snapshots" / commit
    for f in MODEL.iterdir():
        assert (snap / f.name).read_bytes() == f.read_bytes(), f.name
    assert (tmp_path / "hf" / "hub" / "models--acme--tiny-qwen3" / "refs" / "main").read_text() == commit
    assert any(r.startswith("GET /cdn/") for r in server.log), server.log  # LFS through the CDN
    # the same base as the local folder: the delta names the same base hash
    local = gp.GSPOTrainer(model_name=MODEL, output=tmp_path / "local-run", progress=None, **SMALL)
    assert local.train_epoch(DATASET, steps=1).metadata["base_hash"] == delta.metadata["base_hash"]
    # pinned to the commit and offline: from the cache, no request
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    before = len(server.log)
    gp.GSPOTrainer(model_name=f"{REPO}@{commit}", output=tmp_path / "offline-run", progress=None, **SMALL)
    assert len(server.log) == before


def test_hub_id_errors(tmp_path, hub):
    server, _ = hub
    with pytest.raises(gp.GymError) as e:
        gp.GSPOTrainer(model_name="acme/missing", output=tmp_path / "a", progress=None)
    assert "acme/missing" in str(e.value) and "not found" in str(e.value).lower()
    with pytest.raises(gp.GymError) as e:
        gp.GSPOTrainer(model_name=f"{REPO}@v9", output=tmp_path / "b", progress=None)
    assert "v9" in str(e.value)
    with pytest.raises(gp.UsageError):
        gp.GSPOTrainer(model_name=tmp_path / "no" / "such" / "folder", output=tmp_path / "c", progress=None)
    assert not (tmp_path / "a" / "metrics.jsonl").exists()


def test_server_answers_like_the_hub_for_huggingface_hub(tmp_path, hub):
    """The real client from PyPI, pointed at the same server, gets the same files."""
    try:
        import huggingface_hub as hf
    except ImportError:
        if os.environ.get("GYM_REQUIRE_HF_HUB"):  # CI: a missing client is a failure
            raise
        pytest.skip("huggingface_hub not installed (CI installs it and sets GYM_REQUIRE_HF_HUB=1)")
    server, commit = hub
    d = hf.snapshot_download(REPO, cache_dir=str(tmp_path / "hf-client"), endpoint=server.url)
    assert os.path.basename(d) == commit
    for f in MODEL.iterdir():
        assert (tmp_path / "hf-client" / "models--acme--tiny-qwen3" / "snapshots" / commit / f.name).read_bytes() == f.read_bytes()
