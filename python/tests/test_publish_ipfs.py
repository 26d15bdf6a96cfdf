"""upload_ipfs against the real IPFS node CI starts (tools/ci/ipfs-node.sh)."""

import os
import urllib.request

import numpy as np
import pytest

import gym_protocol as gp


@pytest.fixture
def ipfs_api():
    api = os.environ.get("GYM_TEST_IPFS_API")
    if not api:
        if os.environ.get("GYM_REQUIRE_IPFS"):
            pytest.fail("GYM_REQUIRE_IPFS is set but GYM_TEST_IPFS_API is not: start tools/ci/ipfs-node.sh")
        pytest.skip("GYM_TEST_IPFS_API is not set; start the node with `eval $(tools/ci/ipfs-node.sh start)`")
    return api


def test_write_delta_then_upload_ipfs(tmp_path, ipfs_api):
    key = gp.generate_key(tmp_path / "k.pem")
    w = gp.DeltaWriter(tmp_path / "a.delta", key=key, chunk_size=1024)
    w.write_delta({"t": np.random.default_rng(1).standard_normal(100000).astype(np.float32)})
    cid = w.upload_ipfs(ipfs_api)
    assert cid == gp.cid(tmp_path / "a.delta")
    # the node serves exactly the file's bytes under that CID
    req = urllib.request.Request(f"{ipfs_api.rstrip('/')}/api/v0/cat?arg={cid}", method="POST")
    with urllib.request.urlopen(req, timeout=60) as r:
        assert r.read() == (tmp_path / "a.delta").read_bytes()


def test_upload_ipfs_unreachable_is_a_network_error(tmp_path, monkeypatch):
    monkeypatch.setenv("GYM_RETRY_DELAY_MS", "1")
    f = tmp_path / "x"
    f.write_bytes(b"x")
    with pytest.raises(gp.NetworkError) as e:
        gp.upload_ipfs(f, api="http://127.0.0.1:9")
    assert e.value.exit_code == 17
