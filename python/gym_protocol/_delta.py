"""DELTA files: verified reads into numpy/torch, writing from arrays or PEFT folders."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, Mapping, Optional, Sequence, Union

import numpy as np

from . import _native
from ._native import UnsupportedError, UsageError

PathLike = Union[str, "os.PathLike[str]"]

# gym (safetensors) dtype names -> numpy dtype names. BF16 and the 8-bit floats need ml_dtypes.
_NUMPY = {
    "BOOL": "bool",
    "U8": "uint8",
    "I8": "int8",
    "I16": "<i2",
    "U16": "<u2",
    "F16": "<f2",
    "I32": "<i4",
    "U32": "<u4",
    "F32": "<f4",
    "F64": "<f8",
    "I64": "<i8",
    "U64": "<u8",
    "C64": "<c8",
}
_ML_DTYPES = {
    "BF16": "bfloat16",
    "F8_E5M2": "float8_e5m2",
    "F8_E4M3": "float8_e4m3fn",
    "F8_E8M0": "float8_e8m0fnu",
    "F8_E4M3FNUZ": "float8_e4m3fnuz",
    "F8_E5M2FNUZ": "float8_e5m2fnuz",
}
_TORCH = {
    "BOOL": "bool",
    "U8": "uint8",
    "I8": "int8",
    "I16": "int16",
    "U16": "uint16",
    "F16": "float16",
    "BF16": "bfloat16",
    "I32": "int32",
    "U32": "uint32",
    "F32": "float32",
    "F64": "float64",
    "I64": "int64",
    "U64": "uint64",
    "C64": "complex64",
    "F8_E5M2": "float8_e5m2",
    "F8_E4M3": "float8_e4m3fn",
    "F8_E4M3FNUZ": "float8_e4m3fnuz",
    "F8_E5M2FNUZ": "float8_e5m2fnuz",
}


def _numpy_dtype(gym_dtype: str, name: str) -> np.dtype:
    if gym_dtype in _NUMPY:
        return np.dtype(_NUMPY[gym_dtype])
    if gym_dtype in _ML_DTYPES:
        try:
            import ml_dtypes  # type: ignore[import-not-found]

            return np.dtype(getattr(ml_dtypes, _ML_DTYPES[gym_dtype]))
        except (ImportError, AttributeError):
            pass
        hint = "install ml_dtypes, or read with framework='pt'"
    else:
        hint = "read with framework='pt' or unpack with `gym delta unpack`"
    raise UnsupportedError(f"tensor {name!r}: dtype {gym_dtype} has no numpy equivalent ({hint})")


def _gym_dtype_of_numpy(dt: np.dtype, name: str) -> str:
    for gym_name, np_name in _NUMPY.items():
        if np.dtype(np_name) == dt.newbyteorder("<") or np.dtype(np_name) == dt:
            return gym_name
    try:
        import ml_dtypes  # type: ignore[import-not-found]

        for gym_name, attr in _ML_DTYPES.items():
            if hasattr(ml_dtypes, attr) and dt == np.dtype(getattr(ml_dtypes, attr)):
                return gym_name
    except ImportError:
        pass
    raise UnsupportedError(f"tensor {name!r}: numpy dtype {dt} cannot be stored in a delta")


def _policy(trusted_keys: Any, verify: bool, min_seq: Optional[int], base_hash: Optional[str]) -> Dict[str, Any]:
    path = text = None
    if trusted_keys is not None:
        if isinstance(trusted_keys, (str, os.PathLike)):
            path = os.fspath(trusted_keys)
        else:
            lines = []
            for k in trusted_keys:
                line = getattr(k, "trusted_line", None)
                lines.append(line() if callable(line) else str(k))
            text = "\n".join(lines) + "\n"
    if not verify and trusted_keys is not None:
        raise UsageError("verify=False cannot be combined with trusted_keys")
    return {
        "trusted_keys_path": path,
        "trusted_keys_text": text,
        "require_signature": bool(verify),
        "min_seq": min_seq,
        "base_hash": base_hash,
    }


@dataclass
class Delta:
    """A delta's metadata and tensors. Unpacks as ``metadata, tensors = delta``.

    ``digest`` is the SHA3-256 body digest (hex); ``signer`` is a dict (``worker_id``,
    ``ed25519``, ``hybrid``) or None; ``trusted`` says the signer matched ``trusted_keys``.
    ``path`` is the file it was read from or written to, if any.
    """

    tensors: Dict[str, Any]
    metadata: Dict[str, Any] = field(default_factory=dict)
    digest: Optional[str] = None
    signer: Optional[Dict[str, Any]] = None
    trusted: bool = False
    path: Optional[str] = None

    def __iter__(self) -> Iterator[Any]:
        return iter((self.metadata, self.tensors))


def _to_tensor(name: str, gym_dtype: str, shape: Sequence[int], buf: bytearray, framework: str, raw: bool = False) -> Any:
    if framework == "np":
        try:
            dt = _numpy_dtype(gym_dtype, name)
        except UnsupportedError:
            if raw:
                return np.frombuffer(buf, dtype=np.uint8)
            raise
        return np.frombuffer(buf, dtype=dt).reshape(shape)
    if framework == "pt":
        import torch

        tdt = getattr(torch, _TORCH.get(gym_dtype, ""), None)
        if tdt is None:
            raise UnsupportedError(f"tensor {name!r}: dtype {gym_dtype} has no torch equivalent")
        if len(buf) == 0:
            return torch.empty(tuple(shape), dtype=tdt)
        return torch.frombuffer(buf, dtype=tdt).reshape(tuple(shape))
    raise UsageError(f"framework {framework!r}: expected 'np' or 'pt'")


def read_delta(
    path: PathLike,
    *,
    trusted_keys: Any = None,
    verify: bool = True,
    min_seq: Optional[int] = None,
    base_hash: Optional[str] = None,
    framework: str = "np",
    raw_unsupported: bool = False,
) -> Delta:
    """Reads a DELTA file into numpy arrays (``framework="pt"``: torch tensors).

    Everything ``gym delta verify`` checks is checked in the same pass that decodes the tensors:
    structure, every chunk, the checksum and any signature. ``verify=True`` (the default) also
    requires a signature; ``trusted_keys`` (a trusted-keys file, or a list of :class:`Key`
    objects or trusted-keys lines) requires the signer to be one of them. ``verify=False``
    accepts unsigned deltas (the checksum and any signature present are still checked).
    The arrays share memory with nothing else (writable, no copy after decoding). A dtype numpy
    lacks (BF16 and 8-bit floats without ml_dtypes; F4, F6) raises :class:`UnsupportedError`,
    or with ``raw_unsupported=True`` comes back as its raw bytes (flat ``uint8``).
    Raises a :class:`GymError` subclass whose ``exit_code`` is the CLI's.
    """
    if framework not in ("np", "pt"):
        raise UsageError(f"framework {framework!r}: expected 'np' or 'pt'")
    r = _native.read_delta(os.fspath(path), _policy(trusted_keys, verify, min_seq, base_hash))
    tensors = {n: _to_tensor(n, dt, shape, buf, framework, raw_unsupported) for n, dt, shape, buf in r["tensors"]}
    return Delta(
        tensors=tensors,
        metadata=json.loads(r["metadata_json"]),
        digest=r["digest"],
        signer=r["signer"],
        trusted=r["trusted"],
        path=os.fspath(path),
    )


def verify(
    path: PathLike,
    *,
    trusted_keys: Any = None,
    require_signature: bool = True,
    min_seq: Optional[int] = None,
    base_hash: Optional[str] = None,
) -> Dict[str, Any]:
    """Checks a delta as ``gym delta verify`` does, without keeping its tensors.

    Returns a report: ``digest``, ``signer``, ``trusted``, ``metadata``, ``tensors`` (name,
    dtype, shape, bytes). Raises a :class:`GymError` subclass on any failure.
    """
    policy = _policy(trusted_keys, True, min_seq, base_hash)
    policy["require_signature"] = bool(require_signature)
    r = _native.verify(os.fspath(path), policy)
    r["metadata"] = json.loads(r.pop("metadata_json"))
    return r


class DeltaReader:
    """A delta opened for reading: ``metadata`` and ``keys()`` come from a structural scan
    (unverified); the first tensor access verifies and decodes the whole file once.
    """

    def __init__(self, path: PathLike, *, trusted_keys: Any = None, verify: bool = True, framework: str = "np"):
        self.path = os.fspath(path)
        self._opts = dict(trusted_keys=trusted_keys, verify=verify, framework=framework)
        info = _native.inspect(self.path)
        self.metadata: Dict[str, Any] = json.loads(info["metadata_json"])
        self.signed: bool = info["signed"]
        self._names = [t[0] for t in info["tensors"]]
        self._delta: Optional[Delta] = None

    def keys(self) -> list:
        return list(self._names)

    def read(self) -> Delta:
        """Verifies and decodes every tensor (once; later calls return the same result)."""
        if self._delta is None:
            self._delta = read_delta(self.path, **self._opts)
            self.metadata = self._delta.metadata
        return self._delta

    def __getitem__(self, name: str) -> Any:
        return self.read().tensors[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def __enter__(self) -> "DeltaReader":
        return self

    def __exit__(self, *exc: Any) -> None:
        self._delta = None


def _raw(name: str, t: Any) -> tuple:
    """(gym dtype, shape, little-endian bytes) of a numpy array or torch tensor."""
    mod = type(t).__module__
    if mod.startswith("torch"):
        import torch

        t = t.detach().to("cpu").contiguous()
        inv = {getattr(torch, v): k for k, v in _TORCH.items() if hasattr(torch, v)}
        if t.dtype not in inv:
            raise UnsupportedError(f"tensor {name!r}: torch dtype {t.dtype} cannot be stored in a delta")
        data = t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
        return inv[t.dtype], list(t.shape), data
    a = np.asarray(t)
    gdt = _gym_dtype_of_numpy(a.dtype, name)
    if a.dtype.byteorder == ">":
        a = a.astype(a.dtype.newbyteorder("<"))
    return gdt, list(a.shape), np.ascontiguousarray(a).tobytes()


class DeltaWriter:
    """Writes one DELTA file, signed with ``key`` (a :class:`Key` or key file) when given.

    >>> w = DeltaWriter("delta.bin", key="worker.pem")
    >>> w.write_delta({"a.lora_A.weight": np.zeros((8, 64), np.float32)}, epoch=1, seq=3)
    >>> cid = w.upload_ipfs()
    """

    def __init__(
        self,
        path: PathLike,
        *,
        key: Any = None,
        compression: str = "lz4",
        chunk_size: int = 1 << 20,
        force: bool = False,
    ):
        self.path = os.fspath(path)
        self.key = None if key is None else os.fspath(getattr(key, "path", key))
        self.compression = compression
        self.chunk_size = int(chunk_size)
        self.force = force
        self.summary: Optional[Dict[str, Any]] = None

    def _options(self, metadata: Mapping[str, Any]) -> Dict[str, Any]:
        return {
            "metadata_json": json.dumps(dict(metadata)),
            "key": self.key,
            "compression": self.compression,
            "chunk_size": self.chunk_size,
            "force": self.force,
        }

    def write_delta(self, delta: Any, **metadata: Any) -> Dict[str, Any]:
        """Writes ``delta``: a :class:`Delta`, a dict of numpy arrays / torch tensors, or the path
        of a PEFT adapter folder or .safetensors file. Keyword arguments set metadata fields
        (``epoch``, ``step``, ``seq``, ``loss``, ``worker_id``, ``base_hash``, ``config``,
        ``compute``, ``extra``, …) over those a :class:`Delta` carries. The file is written to
        a temporary name and renamed; an existing file is kept unless ``force=True``.
        Returns the summary (``digest``, ``file_bytes``, ``signed``, …).
        """
        if isinstance(delta, (str, os.PathLike)):
            s = _native.write_delta_from_file(self.path, os.fspath(delta), self._options(metadata))
        else:
            meta: Dict[str, Any] = {}
            tensors = delta
            if isinstance(delta, Delta):
                meta = {k: v for k, v in delta.metadata.items() if k not in ("timestamp", "worker_id")}
                tensors = delta.tensors
            meta.update(metadata)
            items = [(str(n), *_raw(str(n), t)) for n, t in tensors.items()]
            s = _native.write_delta(self.path, items, self._options(meta))
        self.summary = json.loads(s)
        return self.summary

    def upload_ipfs(self, api: Optional[str] = None, *, pin: bool = True, cid_version: int = 0) -> str:
        """Adds the written file to an IPFS node (Kubo RPC API at ``api``, default
        ``$GYM_IPFS_API`` or http://127.0.0.1:5001) and returns its CID, after checking it
        equals the CID computed locally."""
        from ._publish import upload_ipfs

        self._need_written()
        return upload_ipfs(self.path, api=api, pin=pin, cid_version=cid_version)

    def upload_hub(self, repo: str, **kwargs: Any) -> Dict[str, Any]:
        """Uploads the written file to a Hugging Face Hub repository (see :func:`publish_hub`)."""
        from ._publish import publish_hub

        self._need_written()
        return publish_hub(self.path, repo, **kwargs)

    def _need_written(self) -> None:
        if self.summary is None and not os.path.exists(self.path):
            raise UsageError(f"{self.path}: nothing written yet; call write_delta first")
