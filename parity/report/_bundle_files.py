"""File plumbing of a bundle: writing it, and reading it back checked.

Writing: its JSON text, durable (fsynced) writes, evidence arrays checked for
``np.savez_compressed``, and the manifest (size, SHA-256) of the files written. Not
:func:`parity.io._files.atomic_output`: a bundle is published whole by renaming its staging
directory, so a file in it needs no ``.partial`` rename of its own, but it is fsynced before that
rename; and an OS error propagates as ``OSError`` (the writer discards the staging directory),
not as the ``ValueError`` that helper raises for data files.

Reading (for :mod:`parity.report.runs` and :mod:`parity.report.diff`): what kind of bundle a
directory is, :func:`load_report` with its fields checked, and the bundle's files checked against
the manifest (:func:`manifest_problem`); a bundle that fails raises :class:`BundleError`.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from parity.report.bundle_names import BUNDLE_FILES, COMPLETE_MARKER
from parity.report.report_schema import validate_report
from parity.results import jsonable

__all__ = ["BENCH_FILES", "PROVENANCE_FILE", "BundleError", "check_manifest", "checked_evidence",
           "file_manifest", "has_bundle_files", "is_bench", "json_text", "load_report",
           "manifest_problem", "read_bundle_text", "require_bundle", "write_synced"]

#: Written by the bundle writer after every other file but the marker; its ``bundle.files`` is the
#: manifest of those files (so it lists neither itself nor ``COMPLETE``).
PROVENANCE_FILE: str = "provenance.json"


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


# -- reading a published bundle back --------------------------------------------------------

def _manifest(directory: Path) -> dict[str, Any] | str:
    """``bundle.files`` of the bundle's provenance, or the problem (str) that stops reading it."""
    try:
        record = json.loads((directory / PROVENANCE_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return f"no {PROVENANCE_FILE} (its manifest lists the bundle's files)"
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return f"{PROVENANCE_FILE} cannot be read: {exc}"
    files = record.get("bundle", {}).get("files") if isinstance(record, dict) else None
    if not isinstance(files, dict) or not files:
        return f"{PROVENANCE_FILE} has no file manifest (bundle.files)"
    return files


def _entry_problem(directory: Path, name: Any, entry: Any, *, hashes: bool) -> str | None:
    """What is wrong with one manifest entry's file (None: present, same size, same hash)."""
    parts = str(name).split("/")
    if not isinstance(name, str) or name.startswith("/") or any(p in ("", ".", "..") for p in parts):
        return f"{PROVENANCE_FILE} lists {name!r}; expected a relative path inside the bundle"
    if (not isinstance(entry, dict) or isinstance(entry.get("bytes"), bool)
            or not isinstance(entry.get("bytes"), int) or not isinstance(entry.get("sha256"), str)):
        return f"{PROVENANCE_FILE}: the entry of {name} is {entry!r}; expected bytes and sha256"
    path = directory.joinpath(*parts)
    if not path.is_file():
        return f"{name} is missing; {PROVENANCE_FILE} lists it"
    size = path.stat().st_size
    if size != entry["bytes"]:
        return f"{name} has {size} bytes; {PROVENANCE_FILE} lists {entry['bytes']}"
    if hashes and _sha256_of_file(path) != entry["sha256"]:
        return f"{name} has changed since the run: its SHA-256 differs from {PROVENANCE_FILE}'s"
    return None


def manifest_problem(directory: Path, *, hashes: bool) -> str | None:
    """The first file of a published bundle that differs from its manifest, as a message.

    Every file the manifest (:data:`PROVENANCE_FILE`'s ``bundle.files``, see
    :func:`file_manifest`) lists must be present with its size and, when ``hashes``, its
    SHA-256. Files the manifest does not list (added later) are not judged.

    Parameters
    ----------
    directory : pathlib.Path
        A published bundle.
    hashes : bool
        Also compare SHA-256 digests (reads every file; sizes alone need only ``stat``).

    Returns
    -------
    str or None
        ``"summary.md has changed since the run: ..."``, ``"evidence.npz has 100 bytes; ...``,
        ``"no provenance.json ..."``; None when everything listed matches.
    """
    files = _manifest(Path(directory))
    if isinstance(files, str):
        return files
    for name, entry in files.items():
        problem = _entry_problem(Path(directory), name, entry, hashes=hashes)
        if problem is not None:
            return problem
    return None


#: The files of a benchmark bundle (it has no ``report.json``).
BENCH_FILES: tuple[str, ...] = ("bench.json", "bench.md")


class BundleError(ValueError):
    """A bundle that exists but cannot be read as a run: incomplete or damaged.

    Attributes
    ----------
    path : pathlib.Path
        The bundle directory.
    problem : str
        What is wrong, without the path (e.g. ``report.json: exit_code is null, expected an
        integer``).
    """

    def __init__(self, path: Path, problem: str, *, incomplete: bool = False) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"bundle {self.path} is {'incomplete' if incomplete else 'damaged'}: "
                         f"{problem}")


def is_bench(path: Path) -> bool:
    """A benchmark bundle: named ``<stamp>_bench-<case>``, or bench files and no report."""
    return "_bench-" in path.name or (any((path / n).is_file() for n in BENCH_FILES)
                                      and not (path / "report.json").exists())


def has_bundle_files(path: Path) -> bool:
    """Whether ``path`` holds any file a run or benchmark bundle writes."""
    return any((path / name).exists() for name in (*BUNDLE_FILES, *BENCH_FILES))


def require_bundle(path: Path) -> None:
    """A complete bundle directory (run or bench), or an error saying what ``path`` is."""
    if not path.exists():
        raise FileNotFoundError(f"no bundle directory {path}")
    if not path.is_dir():
        raise ValueError(f"{path} is not a directory; expected a run bundle")
    if not has_bundle_files(path):
        raise ValueError(f"{path} is not a run bundle (it has no report.json, summary.md or "
                         f"{COMPLETE_MARKER} marker)")
    if not (path / COMPLETE_MARKER).is_file():
        raise BundleError(path, f"no {COMPLETE_MARKER} marker: the run was interrupted or is "
                                "still writing", incomplete=True)


def read_bundle_text(path: Path, name: str) -> str:
    """A bundle file's text, or BundleError naming the bundle and the file."""
    try:
        return (path / name).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BundleError(path, f"no {name}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BundleError(path, f"{name} cannot be read: {exc}") from None


def check_manifest(path: Path, *, hashes: bool) -> None:
    """BundleError naming the first file that differs from the manifest (see
    :func:`manifest_problem`)."""
    problem = manifest_problem(path, hashes=hashes)
    if problem is not None:
        raise BundleError(path, problem)


def load_report(path: Path, *, hashes: bool = True) -> dict[str, Any]:
    """``report.json`` of a complete run bundle, with its fields' types and the bundle's files
    checked (sizes, and SHA-256 digests when ``hashes``) against its manifest.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    BundleError
        No ``COMPLETE`` marker; ``report.json`` missing, unparseable, not an object, or with a
        field this module reads missing or of the wrong type (the message names the field); a
        file missing or changed since the run (the message names the first one).
    ValueError
        ``path`` is a file, a directory with no bundle files, or a benchmark bundle.
    """
    path = Path(path)
    require_bundle(path)
    if is_bench(path):
        raise ValueError(f"{path} is a benchmark bundle (bench.json, bench.md; no report.json), "
                         "not a parity run: `parity show` prints its bench.md; compare "
                         "bench.json files by hand")
    try:
        report = json.loads(read_bundle_text(path, "report.json"))
        validate_report(report)
    except json.JSONDecodeError as exc:
        raise BundleError(path, f"report.json does not parse: {exc}") from None
    except BundleError:
        raise
    except ValueError as exc:
        raise BundleError(path, f"report.json: {exc}") from None
    check_manifest(path, hashes=hashes)
    return report
