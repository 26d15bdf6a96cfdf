"""Verifiable ring all-reduce of deltas (``gym ring join`` in-process)."""

from __future__ import annotations

import json
import os
from typing import Any, Dict, Optional, Union

from . import _native

PathLike = Union[str, "os.PathLike[str]"]


def _ring_source(ring: Any) -> Dict[str, Optional[str]]:
    """A ring file path, or the ring file's content as a dict (``tomllib.load`` of it)."""
    if isinstance(ring, dict):
        return {"path": None, "json": json.dumps(ring)}
    if isinstance(ring, (str, os.PathLike)):
        return {"path": os.fspath(ring), "json": None}
    raise _native.UsageError(f"ring: expected a ring file path or a dict, got {type(ring).__name__}")


def ring_join(
    ring: Union[PathLike, Dict[str, Any]],
    input: PathLike,
    output: PathLike,
    *,
    key: Any,
    weight: int = 1,
    timeout: float = 30.0,
    connect_timeout: float = 60.0,
    listen: Optional[str] = None,
    force: bool = False,
) -> Dict[str, Any]:
    """Joins one round of the ring (a ``gym ring plan`` file, or its content as a dict) as the
    member whose ``key`` is listed in it, with the delta ``input``, and writes the averaged
    delta to ``output`` -- byte-identical at every member. Runs the same core code as
    ``gym ring join`` with the GIL released; members may be ``gym ring join`` processes.

    Returns ``{"path", "member", "members", "view", "total_weight", "digest"}``.
    Raises :class:`RingError` (exit code 20 in the CLI) when the round fails."""
    return _native.ring_join(
        {
            "ring": _ring_source(ring),
            "key": os.fspath(getattr(key, "path", key)),
            "input": os.fspath(input),
            "output": os.fspath(output),
            "weight": int(weight),
            "timeout": float(timeout),
            "connect_timeout": float(connect_timeout),
            "listen": listen,
            "force": bool(force),
        }
    )
