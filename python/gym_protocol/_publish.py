"""Offline CIDs and publishing (``gym cid``, ``gym publish``)."""

from __future__ import annotations

import json
import os
from typing import Any, Dict, Optional, Union

from . import _native

PathLike = Union[str, "os.PathLike[str]"]
DEFAULT_IPFS_API = "http://127.0.0.1:5001"
DEFAULT_HUB = "https://huggingface.co"


def _env(name: str) -> Optional[str]:
    v = os.environ.get(name, "").strip()
    return v or None


def _retry_ms() -> Optional[int]:
    v = _env("GYM_RETRY_DELAY_MS")
    return int(v) if v and v.isdigit() else None


def cid(path: PathLike, *, cid_version: int = 0) -> str:
    """The CID ``ipfs add`` would print for a file or folder, computed offline (``gym cid``)."""
    return _native.cid(os.fspath(path), cid_version)


def upload_ipfs(path: PathLike, *, api: Optional[str] = None, pin: bool = True, cid_version: int = 0) -> str:
    """Adds and pins a file or folder on an IPFS node through its Kubo RPC API (``api``, else
    ``$IPFS_API``, else http://127.0.0.1:5001), as ``gym publish --ipfs`` does; every CID the
    node returns must equal the one computed locally. Returns the root CID."""
    if not pin:
        raise _native.UsageError("pin=False is not supported: gym always pins what it adds")
    url = api or _env("IPFS_API") or DEFAULT_IPFS_API
    root, _node_size, _verified = _native.upload_ipfs(os.fspath(path), url, cid_version, _retry_ms())
    return root


def publish_local(path: PathLike, directory: PathLike, *, cid_version: int = 0, force: bool = False) -> Dict[str, Any]:
    """Copies a file or folder into ``directory``, named by its CID (``gym publish --to``)."""
    root, location, written = _native.publish_local(os.fspath(path), os.fspath(directory), cid_version, force)
    return {"cid": root, "location": location, "written": written}


def publish_hub(
    path: PathLike,
    repo: str,
    *,
    endpoint: Optional[str] = None,
    token: Optional[str] = None,
    revision: str = "main",
    private: bool = False,
    message: Optional[str] = None,
) -> Dict[str, Any]:
    """One commit of a file or folder to a Hugging Face Hub model repository (``gym publish
    --hf``). ``token`` defaults to ``$HF_TOKEN``, ``endpoint`` to ``$HF_ENDPOINT``."""
    target = {
        "repo": repo,
        "endpoint": endpoint or _env("HF_ENDPOINT") or DEFAULT_HUB,
        "token": token or _env("HF_TOKEN"),
        "revision": revision,
        "private": private,
        "message": message,
        "retry_delay_ms": _retry_ms(),
    }
    return json.loads(_native.publish_hub(os.fspath(path), target))
