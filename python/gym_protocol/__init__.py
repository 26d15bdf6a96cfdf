"""gym_protocol: gym's signed DELTA files, keys, CIDs, publishing, rewards and GSPO training
from Python, over the same Rust core library as the ``gym`` command.

Errors are :class:`GymError` subclasses whose ``exit_code`` and ``error_class`` are those of
the ``gym`` CLI (``ChecksumError.exit_code == 12``); delta errors also carry ``kind``, the
stable identifier listed in ``docs/delta-format.md``.
"""

from ._native import (
    AuthError,
    ChecksumError,
    DeviceError,
    ExistsError,
    GymError,
    IoError,
    MalformedError,
    NetworkError,
    PolicyError,
    RemoteError,
    RingError,
    SignatureError,
    TrainingError,
    UnsupportedError,
    UntrustedError,
    UsageError,
    VectorsError,
    __version__,
)
from ._delta import Delta, DeltaReader, DeltaWriter, read_delta, verify
from ._keys import Key, generate_key, load_key
from ._publish import cid, publish_hub, publish_local, upload_ipfs
from . import reward
from .reward import claim_rewards, verify_claim
from ._trainer import GSPOTrainer
from ._ring import ring_join
from ._work import work

__all__ = [
    "AuthError",
    "ChecksumError",
    "DeviceError",
    "Delta",
    "DeltaReader",
    "DeltaWriter",
    "ExistsError",
    "GSPOTrainer",
    "GymError",
    "IoError",
    "Key",
    "MalformedError",
    "NetworkError",
    "PolicyError",
    "RemoteError",
    "RingError",
    "SignatureError",
    "TrainingError",
    "UnsupportedError",
    "UntrustedError",
    "UsageError",
    "VectorsError",
    "cid",
    "claim_rewards",
    "generate_key",
    "load_key",
    "publish_hub",
    "publish_local",
    "read_delta",
    "reward",
    "ring_join",
    "upload_ipfs",
    "verify",
    "verify_claim",
    "work",
    "__version__",
]
