"""The orchestrator's worker loop in-process (``gym work`` without the subprocess)."""

from __future__ import annotations

import json
import os
from typing import Any, Callable, Dict, Optional, Union

from . import _native

PathLike = Union[str, "os.PathLike[str]"]


def work(
    url: str,
    key: Any,
    output: Optional[PathLike] = None,
    *,
    ring_addr: Optional[str] = None,
    ring_timeout: float = 30.0,
    patience: float = 120.0,
    on_event: Optional[Callable[[Dict[str, Any]], None]] = None,
) -> Dict[str, Any]:
    """Works for the orchestrator (``gym orchestrate``) at ``url`` as the worker whose ``key``
    is on the job's roster, until the job is finished: registers, trains each round from the
    current aggregate, uploads and reports the signed delta, joins the round's ring, reports
    the agreed result and continues from it -- the same core loop as ``gym work``, with the GIL
    released. ``output`` (default ``runs/work-<worker id>``) receives metrics, deltas and the
    final adapter. ``on_event`` gets a dict per event (``{"event": "registered" | "trained" |
    "ring" | "ring_failed" | "readmitted" | "finished", ...}``). ``patience`` is how long the
    orchestrator may be unreachable. Returns ``gym work --json``'s summary
    (``worker``, ``rounds_trained``, ``rings``, ``aggregate``, ``adapter``)."""
    key_path = os.fspath(getattr(key, "path", key))
    if output is None:
        worker = _native.load_key(key_path)["worker_id"]
        output = os.path.join("runs", f"work-{worker}")
    callback = None
    if on_event is not None:
        callback = lambda text: on_event(json.loads(text))  # noqa: E731
    return _native.work(
        {
            "url": url,
            "key": key_path,
            "output": os.fspath(output),
            "ring_addr": ring_addr,
            "ring_timeout": float(ring_timeout),
            "patience": float(patience),
        },
        callback,
    )
