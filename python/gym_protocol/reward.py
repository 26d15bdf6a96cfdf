"""Rewards: estimates (``gym reward estimate``) and claims (``gym reward claim``)."""

from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Optional, Union

from . import _native

PathLike = Union[str, "os.PathLike[str]"]


class Estimate(dict):
    """``gym reward estimate --json`` as a dict (format ``gym-reward-estimate/1``), plus
    :meth:`table` (one dict per node) and :meth:`to_pandas`."""

    def table(self) -> List[Dict[str, Any]]:
        rows = []
        for n in self["nodes"]:
            row = {k: v for k, v in n.items() if k != "shares"}
            row["reasons"] = "; ".join(n.get("reasons") or [])
            for cat, share in (n.get("shares") or {}).items():
                row[f"share_{cat}"] = share
            rows.append(row)
        return rows

    def to_pandas(self) -> Any:
        """The node table as a pandas DataFrame (needs pandas)."""
        import pandas as pd  # type: ignore[import-not-found]

        return pd.DataFrame(self.table())


def estimate(
    input: PathLike,
    *,
    economics: Optional[PathLike] = None,
    epoch: Optional[int] = None,
    model_params: Optional[int] = None,
) -> Estimate:
    """Estimates an epoch's rewards from an epoch folder or a contributions file (.json or
    .csv), exactly as ``gym reward estimate --json`` does. ``model_params`` is required for an
    epoch folder (claimed FLOPs are capped at 6 × params × tokens)."""
    text = _native.estimate(
        os.fspath(input),
        None if economics is None else os.fspath(economics),
        epoch,
        model_params,
    )
    return Estimate(json.loads(text))


def claim_rewards(
    delta: PathLike,
    cid: Optional[str] = None,
    *,
    key: Any,
    output: Optional[PathLike] = None,
    force: bool = False,
) -> Dict[str, Any]:
    """Signs a reward claim binding a signed delta (digest, CID) to its compute record, as
    ``gym reward claim``; writes it to ``output`` (default: ``<delta>.claim.json``) and returns
    it. ``key`` (a :class:`Key` or key file) must be the delta's signer."""
    out = os.fspath(output) if output is not None else os.fspath(delta) + ".claim.json"
    text = _native.claim_rewards(os.fspath(delta), cid, os.fspath(getattr(key, "path", key)), out, force)
    claim = json.loads(text)
    claim["path"] = out
    return claim


def verify_claim(claim: PathLike, *, delta: Optional[PathLike] = None) -> Dict[str, Any]:
    """Verifies a claim's signature (``gym reward verify-claim``) and, with ``delta``, that it is
    that delta's claim. Returns the claim with ``hybrid`` added; raises on any failure."""
    text, hybrid = _native.verify_claim(os.fspath(claim), None if delta is None else os.fspath(delta))
    c = json.loads(text)
    c["hybrid"] = hybrid
    return c
