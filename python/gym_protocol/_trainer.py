"""GSPO training in-process (``gym train`` without the subprocess)."""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any, Callable, Dict, Iterable, Optional, Union

from . import _native
from ._delta import Delta, read_delta
from ._native import UsageError
from ._ring import _ring_source

PathLike = Union[str, "os.PathLike[str]"]
Progress = Callable[[Dict[str, Any]], None]


def _stderr_progress(m: Dict[str, Any]) -> None:
    line = (
        f"step {m['step']}: reward {m['reward_mean']:.3f} loss {m['loss']:+.4f} "
        f"kl {m['kl']:.4f} len {m['completion_len']:.1f}"
    )
    if m.get("delta"):
        line += f"; wrote {m['delta']}"
    print(line, file=sys.stderr, flush=True)


class GSPOTrainer:
    """gym's GSPO trainer (LoRA over an NF4 base, candle on CPU) running in this process.

    ``model_name`` is a local Hugging Face Qwen3 folder or a hub id ``ORG/NAME[@REV]``, fetched
    into the Hugging Face cache as ``gym train --model`` does (``HF_ENDPOINT``, ``HF_TOKEN``,
    ``HF_HOME``, ``HF_HUB_CACHE``, ``HF_HUB_OFFLINE`` as huggingface_hub reads them); None: the
    bundled tiny model. ``key`` signs the deltas (default: ``output/worker.key``, created).
    ``ring_position`` gives this worker its own random stream, as a ring member's position does
    in ``gym train --ring``. ``ring`` (a ``gym ring plan`` file, or its content as a dict) makes
    every epoch end in a verifiable ring all-reduce with the other members exactly as
    ``gym train --ring`` does (members may be ``gym train --ring`` processes): ``train_epoch``
    then returns the averaged delta, byte-identical at every member, and training continues from
    the mean. The key must be a member's; ``ring_position``, when given, must be its position. Other keyword arguments are GSPO/TRL settings with the key names of
    ``gym train --config`` (``learning_rate``, ``num_generations``, ``beta``, ``reward``, …).
    ``progress`` is called after every optimiser step with that step's metrics (``"delta"`` set
    when a delta was written); the default prints one line per step to stderr, None is silent.
    Training releases the GIL; Ctrl-C stops at the end of the current step, with the state and
    adapter saved, and raises KeyboardInterrupt.
    """

    def __init__(
        self,
        model_name: Optional[PathLike] = None,
        use_4bit: bool = True,
        ring_position: Optional[int] = None,
        *,
        ring: Any = None,
        ring_timeout: float = 30.0,
        ring_connect_timeout: float = 60.0,
        key: Any = None,
        output: Optional[PathLike] = None,
        force: bool = False,
        progress: Union[Progress, None, str] = "stderr",
        **gspo_config: Any,
    ):
        if output is None:
            output = os.path.join("runs", time.strftime("py-train-%Y%m%d-%H%M%S", time.gmtime()))
        self.progress = _stderr_progress if progress == "stderr" else progress
        self._key = key
        self._native = _native.NativeTrainer(
            {
                "model": None if model_name is None else os.fspath(model_name),
                "use_4bit": bool(use_4bit),
                "ring_position": None if ring_position is None else int(ring_position),
                "ring": None if ring is None else _ring_source(ring),
                "ring_timeout": float(ring_timeout),
                "ring_connect_timeout": float(ring_connect_timeout),
                "key": None if key is None else os.fspath(getattr(key, "path", key)),
                "output": os.fspath(output),
                "force": bool(force),
                "config_json": json.dumps(gspo_config),
            }
        )
        self.last_deltas: list = []
        self.last_aggregated: list = []
        self.adapter: Optional[str] = None

    @property
    def output(self) -> str:
        return self._native.output

    @property
    def worker_id(self) -> str:
        return self._native.worker_id

    @property
    def step(self) -> int:
        return self._native.step

    def _callback(self) -> Optional[Callable[[str, Optional[str]], None]]:
        progress = self.progress
        if progress is None:
            return None

        def cb(metrics_json: str, delta: Optional[str]) -> None:
            m = json.loads(metrics_json)
            m["delta"] = delta
            progress(m)

        return cb

    def train_epoch(self, dataset: Any = None, *, steps: Optional[int] = None) -> Delta:
        """Trains one pass over ``dataset`` (a list of dicts with ``prompt`` or ``messages`` and
        optional ``answer``, a ``datasets.Dataset``, or a JSONL path; None: the bundled toy
        task) and returns the signed delta written at its end, read back and verified (with
        ``ring``: the ring's averaged delta of the epoch's last round).
        ``steps`` overrides the number of optimiser steps of the pass."""
        jsonl = path = None
        n = 0
        if isinstance(dataset, (str, os.PathLike)):
            path = os.fspath(dataset)
            with open(path, "rb") as f:
                n = sum(1 for line in f if line.strip())
        elif dataset is not None:
            rows = [dict(r) for r in _rows(dataset)]
            if not rows:
                raise UsageError("the dataset has no examples")
            jsonl = "".join(json.dumps(r) + "\n" for r in rows)
            n = len(rows)
        else:
            n = 64
        if steps is None:
            steps = self._native.steps_for(max(n, 1))
        deltas, adapter, aggregated = self._native.train(int(steps), jsonl, path, self._callback())
        self.last_deltas = [dict(zip(("path", "seq", "step", "digest"), d)) for d in deltas]
        self.last_aggregated = [dict(zip(("path", "round", "members", "digest"), a)) for a in aggregated]
        self.adapter = adapter
        if not deltas:
            raise _native.TrainingError("the epoch wrote no delta")
        last = aggregated[-1][0] if aggregated else deltas[-1][0]
        return read_delta(last, verify=True)

    def claim_rewards(self, cid: Optional[str], proof_of_work: Any = None, *, output: Optional[PathLike] = None, force: bool = False) -> Dict[str, Any]:
        """Signs a reward claim for the last delta of :meth:`train_epoch` (or the delta given as
        ``proof_of_work``: a :class:`Delta` or a path), bound to ``cid``; ``gym reward claim``."""
        from .reward import claim_rewards

        if isinstance(proof_of_work, Delta) and proof_of_work.path:
            delta_path = proof_of_work.path
        elif isinstance(proof_of_work, (str, os.PathLike)):
            delta_path = os.fspath(proof_of_work)
        elif self.last_deltas:
            delta_path = self.last_deltas[-1]["path"]
        else:
            raise UsageError("no delta to claim: train an epoch first or pass the delta")
        key = self._key if self._key is not None else os.path.join(self.output, "worker.key")
        return claim_rewards(delta_path, cid, key=key, output=output, force=force)


def _rows(dataset: Any) -> Iterable[Any]:
    if isinstance(dataset, dict):
        raise UsageError("dataset: expected a list of dicts, a datasets.Dataset or a path, got a dict")
    return iter(dataset)
