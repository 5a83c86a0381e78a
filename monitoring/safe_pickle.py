"""Loading the online job's checkpoint without trusting it: an unpickler that builds only known types.

The checkpoint (`var/monitoring/checkpoint.pkl`) holds the join's state: dicts, lists, tuples,
deques and the job's own dataclasses. Plain `pickle.loads` would run whatever callable a planted
file names (`os.system`, `subprocess.Popen`, ...); this one resolves only the classes in
`ALLOWED` and refuses the rest with `UnsafeCheckpointError`, so write access to the var volume is
no longer code execution in the job.
"""

from __future__ import annotations

import io
import pickle
from typing import Any, Final

ALLOWED: Final = frozenset({
    ("builtins", "dict"), ("builtins", "list"), ("builtins", "tuple"), ("builtins", "set"),
    ("builtins", "frozenset"), ("builtins", "bytearray"), ("builtins", "int"), ("builtins", "float"),
    ("builtins", "str"), ("builtins", "bytes"), ("builtins", "bool"), ("builtins", "complex"),
    ("collections", "deque"), ("collections", "OrderedDict"), ("collections", "defaultdict"),
    ("copyreg", "_reconstructor"), ("builtins", "object"),
})  # fmt: skip
"""(module, name) pairs any checkpoint may build; the monitoring package's own classes are added by prefix."""
OWN_PREFIX: Final = "monitoring."
"""Modules whose classes may be built: the job's own state types (none of them runs code on load)."""


class UnsafeCheckpointError(pickle.UnpicklingError):
    """The checkpoint names a type outside the allowed ones: refused rather than built."""


class _Restricted(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in ALLOWED or (module.startswith(OWN_PREFIX) and not name.startswith("_")):
            return super().find_class(module, name)
        raise UnsafeCheckpointError(f"checkpoint refers to {module}.{name}, which a checkpoint never holds")


def loads(data: bytes) -> Any:
    """Unpickle `data`, building only the allowed types (raises `UnsafeCheckpointError` otherwise)."""
    return _Restricted(io.BytesIO(data)).load()
