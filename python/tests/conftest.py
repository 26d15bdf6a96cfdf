"""Shared fixtures: the repository, the `gym` binary the round-trip tests compare against."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VECTORS = ROOT / "testdata" / "vectors"


def _gym_binary() -> str:
    explicit = os.environ.get("GYM_BIN")
    if explicit:
        return explicit
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    for profile in ("debug", "release"):
        p = target / profile / "gym"
        if p.is_file():
            return str(p)
    found = shutil.which("gym")
    if found:
        return found
    pytest.fail("no gym binary: build it with `cargo build` (or set GYM_BIN)")


@pytest.fixture(scope="session")
def gym():
    """Runs the real `gym` executable; returns (exit code, stdout, stderr)."""
    exe = _gym_binary()

    def run(*args, check=False):
        p = subprocess.run([exe, *map(str, args)], capture_output=True, text=True)
        if check and p.returncode != 0:
            raise AssertionError(f"gym {' '.join(map(str, args))}: exit {p.returncode}: {p.stderr}")
        return p.returncode, p.stdout, p.stderr

    return run


@pytest.fixture(scope="session")
def manifest():
    return json.loads((VECTORS / "manifest.json").read_text())["vectors"]
