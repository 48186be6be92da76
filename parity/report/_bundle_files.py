"""File plumbing of a bundle being written: its JSON text, durable (fsynced) writes, evidence
arrays checked for ``np.savez_compressed``, and the manifest (size, SHA-256) of the files written.

Not :func:`parity.io._files.atomic_output`: a bundle is published whole by renaming its staging
directory, so a file in it needs no ``.partial`` rename of its own, but it is fsynced before that
rename; and an OS error propagates as ``OSError`` (the writer discards the staging directory),
not as the ``ValueError`` that helper raises for data files.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from parity.results import jsonable

__all__ = ["checked_evidence", "file_manifest", "json_text", "write_synced"]


def json_text(obj: Any) -> str:
    """Indented JSON; NumPy values made plain, NaN/inf -> null, anything else (a Path) -> str.

    A stray non-JSON value in a config must not cost the whole bundle, so it is written as text.
    """
    return json.dumps(jsonable(obj), indent=2, allow_nan=False, default=str) + "\n"


def _sha256_of_file(path: Path) -> str:
    """Hex SHA-256 of the bytes of ``path`` (read in 1 MiB blocks)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_manifest(directory: Path) -> dict[str, dict[str, Any]]:
    """``{relative posix path: {"bytes": size, "sha256": hex digest}}`` of every file under
    ``directory``, in sorted path order."""
    return {
        path.relative_to(directory).as_posix(): {"bytes": path.stat().st_size,
                                                 "sha256": _sha256_of_file(path)}
        for path in sorted(directory.rglob("*")) if path.is_file()
    }


def write_synced(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` (parent folders created) and fsync it before returning."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def checked_evidence(evidence: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """``evidence`` as arrays keyed by relative names such as ``'torch/reconstructed_obj'``.

    Raises
    ------
    ValueError
        A key that is not a non-empty relative name (``/``-leading or with a ``..`` part).
    TypeError
        An object-dtype array (loading it back would need pickle).
    """
    arrays: dict[str, np.ndarray] = {}
    for key, value in evidence.items():
        if not isinstance(key, str) or not key or key.startswith("/") or ".." in key.split("/"):
            raise ValueError(f"evidence key {key!r}; expected a relative name such as "
                             "'torch/reconstructed_obj'")
        array = np.asarray(value)
        if array.dtype.hasobject:
            raise TypeError(f"evidence {key!r} has dtype object; expected numeric or string "
                            "arrays (object arrays need pickle to load)")
        arrays[key] = array
    return arrays
