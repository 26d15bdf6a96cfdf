"""Worker keys (the same PEM files as ``gym key``)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional, Union

from . import _native

PathLike = Union[str, "os.PathLike[str]"]


@dataclass(frozen=True)
class Key:
    """A worker key file and its public identity. The secret never leaves the file."""

    path: str
    worker_id: str
    ed25519: str
    ml_dsa_87: Optional[str]
    hybrid: bool

    def trusted_line(self) -> str:
        """This key as a line of a trusted-keys file (``gym delta verify --trusted-keys``)."""
        line = self.ed25519
        if self.ml_dsa_87:
            line += " mldsa87:" + self.ml_dsa_87
        return f"{line} {self.worker_id}"

    def __fspath__(self) -> str:
        return self.path


def generate_key(path: PathLike, *, pq: bool = False, force: bool = False) -> Key:
    """Creates a key file (mode 0600), like ``gym key generate``; ``pq=True`` adds an ML-DSA-87
    key (hybrid signatures). An existing file is kept (:class:`ExistsError`) unless ``force``."""
    return Key(**_native.generate_key(os.fspath(path), pq, force))


def load_key(path: PathLike) -> Key:
    """Loads a key file and returns its public identity (``worker_id`` etc.)."""
    return Key(**_native.load_key(os.fspath(path)))
