"""Review bundles: ``<root>/<YYYYmmddTHHMMSSZ>_<case>/``, written atomically, never overwritten.

A bundle is assembled in a hidden staging directory ``<root>/.staging-<stamp>_<case>-<pid>-<hex>/``
and becomes visible in one ``os.rename`` once everything is written, the ``COMPLETE`` marker last::

    with new_bundle_dir(Path("reports"), "lines64") as writer:
        writer.add_file("logs/torch.log", torch_log)
        final = writer.commit(result, evidence)

Guarantees:

- an exception or ``KeyboardInterrupt`` inside the ``with`` block (or inside :meth:`commit`)
  removes the staging directory; if removal itself fails it stays as ``.staging-*``, which
  :func:`parity.report.runs.list_runs` ignores. No directory with the final name exists before
  the rename, so an interrupted run never leaves one that looks complete;
- two runs of the same case in the same second get ``..._<case>``, ``..._<case>-2``, ... The
  name is claimed by the rename itself: ``rename(2)`` onto an existing non-empty directory
  fails (``ENOTEMPTY``/``EEXIST``), and a bundle always holds files, so an existing bundle is
  never replaced even when two processes race for the same name.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import platform
import re
import secrets
import shutil
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import Any

import numpy as np

from parity.results import RunResult, jsonable

__all__ = [
    "BUNDLE_FILES",
    "COMPLETE_MARKER",
    "STAGING_PREFIX",
    "BundleWriter",
    "bundle_name",
    "new_bundle_dir",
    "stamp_now",
]

_log = logging.getLogger(__name__)

#: Written last; a bundle without it is not complete.
COMPLETE_MARKER: str = "COMPLETE"

#: Hidden prefix of directories still being written.
STAGING_PREFIX: str = ".staging-"

#: Files :meth:`BundleWriter.commit` writes (plus ``figures/*.png``); not writable by name.
BUNDLE_FILES: tuple[str, ...] = ("report.json", "summary.md", "junit.xml", "evidence.npz",
                                 "provenance.json", COMPLETE_MARKER)

_STAMP = re.compile(r"\d{8}T\d{6}Z")
_UNSAFE = re.compile(r"[^A-Za-z0-9._+=-]")
_MAX_SUFFIX = 10_000  # same case, same second: far beyond any real collision count


def stamp_now() -> str:
    """Current UTC time as ``YYYYmmddTHHMMSSZ``."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


def _directory_part(case: str) -> str:
    """The case as it appears in directory names.

    Characters outside ``A-Za-z0-9._+=-`` become ``_``; leading dots, dashes and underscores
    go, so a case name can neither escape ``root`` nor hide the bundle. A long run must not be
    lost to an odd name, hence no error unless nothing is left.
    """
    if not isinstance(case, str):
        raise TypeError(f"case name is {type(case).__name__}; expected str")
    part = _UNSAFE.sub("_", case).lstrip("._-")
    if not part:
        raise ValueError(f"case name {case!r} cannot name a bundle directory; expected letters "
                         "or digits")
    return part


def bundle_name(stamp: str, case: str) -> str:
    """Base directory name of a bundle, ``<stamp>_<case>`` (the case made filesystem-safe).

    Same-second repeats get ``-2``, ``-3``, ... appended at commit time.
    """
    _check_stamp(stamp)
    return f"{stamp}_{_directory_part(case)}"


def _check_stamp(stamp: str) -> None:
    if not isinstance(stamp, str) or not _STAMP.fullmatch(stamp):
        raise ValueError(f"stamp {stamp!r}; expected UTC YYYYmmddTHHMMSSZ, e.g. {stamp_now()}")


def _relative(name: str | os.PathLike[str]) -> PurePosixPath:
    """A safe path inside the bundle, or ValueError."""
    path = PurePosixPath(os.fspath(name).replace("\\", "/"))
    if not path.parts or path.is_absolute() or any(p in ("", ".", "..") for p in path.parts):
        raise ValueError(f"bundle file name {name!r}; expected a relative path inside the bundle")
    if str(path) in BUNDLE_FILES:
        raise ValueError(f"{name!r} is written by commit(); reserved names: {BUNDLE_FILES}")
    return path


def _json(obj: Any) -> str:
    """Indented JSON; NumPy values made plain, NaN/inf -> null, anything else (a Path) -> str.

    A stray non-JSON value in a config must not cost the whole bundle, so it is written as text.
    """
    return json.dumps(jsonable(obj), indent=2, allow_nan=False, default=str) + "\n"


def _taken(path: Path) -> bool:
    """Whether a bundle name is in use (a cheap pre-check; the rename decides)."""
    return os.path.lexists(path)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_synced(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _check_evidence(evidence: Mapping[str, Any]) -> dict[str, np.ndarray]:
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


class BundleWriter:
    """Assembles one bundle in its staging directory; :meth:`commit` publishes it.

    Made by :func:`new_bundle_dir`. Use as a context manager: leaving the block without a
    successful :meth:`commit` (an exception, ``KeyboardInterrupt``, or simply no commit) removes
    the staging directory.

    Attributes
    ----------
    root : pathlib.Path
        Directory holding every bundle.
    case : str
        Case name (in the directory name, with characters outside ``A-Za-z0-9._+=-`` as ``_``).
    stamp : str
        UTC ``YYYYmmddTHHMMSSZ`` of the run (part of the directory name).
    staging : pathlib.Path
        Where files are written until :meth:`commit`.
    final : pathlib.Path or None
        The published bundle after :meth:`commit`, else None.
    """

    def __init__(self, *, root: Path, case: str, stamp: str, staging: Path) -> None:
        self.root = root
        self.case = case
        self._case_part = _directory_part(case)
        self.stamp = stamp
        self.staging = staging
        self.final: Path | None = None
        self._closed = False

    def __enter__(self) -> BundleWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self.final is None:
            self.abort()

    # -- writing ---------------------------------------------------------------------------

    def _target(self, name: str | os.PathLike[str]) -> Path:
        if self._closed:
            raise RuntimeError(f"bundle {self.final or self.staging} is closed; no more writes")
        return self.staging.joinpath(*_relative(name).parts)

    @property
    def figures_dir(self) -> Path:
        """``figures/`` inside the staging directory (created on first use)."""
        path = self._target("figures")
        path.mkdir(exist_ok=True)
        return path

    def write_text(self, name: str | os.PathLike[str], text: str) -> Path:
        """Write UTF-8 text at ``name`` (relative; parent folders are created)."""
        path = self._target(name)
        _write_synced(path, text.encode("utf-8"))
        return path

    def write_json(self, name: str | os.PathLike[str], obj: Any) -> Path:
        """Write ``obj`` as indented JSON (NumPy values plain, NaN/inf -> null, other -> str)."""
        return self.write_text(name, _json(obj))

    def write_npz(self, name: str | os.PathLike[str], arrays: Mapping[str, Any]) -> Path:
        """Write ``arrays`` with ``np.savez_compressed`` (keys may contain ``/``)."""
        path = self._target(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as handle:
            np.savez_compressed(handle, **_check_evidence(arrays))
        return path

    def add_file(self, name: str | os.PathLike[str], src: str | os.PathLike[str]) -> Path:
        """Copy the file ``src`` to ``name`` in the bundle (e.g. a backend's log)."""
        source = Path(src)
        if not source.is_file():
            raise FileNotFoundError(f"cannot add {source} to the bundle: not a file")
        path = self._target(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, path)
        return path

    # -- publishing ------------------------------------------------------------------------

    def commit(self, result: RunResult, evidence: Mapping[str, Any]) -> Path:
        """Write the reports and publish the bundle under its final name.

        Writes ``report.json``, ``figures/*.png``, ``summary.md``, ``junit.xml``,
        ``evidence.npz``, ``provenance.json`` (run provenance plus a manifest with the size and
        SHA-256 of every file), then ``COMPLETE``; then renames the staging directory.

        Parameters
        ----------
        result : RunResult
            The run; ``result.case`` must equal this writer's case.
        evidence : mapping of str to numpy.ndarray
            Arrays for ``evidence.npz`` and the figures.

        Returns
        -------
        pathlib.Path
            ``root/<stamp>_<case>`` or ``root/<stamp>_<case>-<k>`` (k >= 2).

        Raises
        ------
        ValueError
            ``result.case`` differs from the writer's case, or a bad evidence key.
        TypeError
            Object-dtype evidence.
        RuntimeError
            Called after a commit or an abort. On any other error the staging directory is
            removed before the error propagates.
        """
        from parity.report.figures import render_figures
        from parity.report.junit import render_junit
        from parity.report.summary import render_summary

        if self._closed:
            raise RuntimeError(f"bundle {self.final or self.staging} already committed or aborted")
        try:
            if result.case != self.case:
                raise ValueError(f"result is for case {result.case!r}; this bundle is "
                                 f"{self.case!r}")
            arrays = _check_evidence(evidence)
            stage = self.staging
            _write_synced(stage / "report.json", _json(result.to_dict()).encode("utf-8"))
            figures = render_figures(result, arrays, self.figures_dir)
            links = [p.relative_to(stage).as_posix() for p in figures.written]
            _write_synced(stage / "summary.md", render_summary(
                result, figures=links, figure_notes=figures.skipped).encode("utf-8"))
            _write_synced(stage / "junit.xml",
                          render_junit(result, bundle_dir=stage).encode("utf-8"))
            with (stage / "evidence.npz").open("wb") as handle:
                np.savez_compressed(handle, **arrays)
            self._write_provenance(
                run=result.provenance, config=result.config,
                backends={r.backend: r.environment for r in result.backend_runs},
                evidence_keys=sorted(arrays))
            final = self._seal(f"verdict={result.verdict}")
        except BaseException:
            self.abort()
            raise
        return final

    def commit_plain(self, *, provenance: Mapping[str, Any] | None = None) -> Path:
        """Publish what was written, with no parity report (e.g. a benchmark bundle).

        Writes ``provenance.json`` (``provenance`` plus the file manifest) and ``COMPLETE``,
        then renames as :meth:`commit` does. :func:`parity.report.runs.list_runs` lists parity
        runs only, so such a bundle (no ``report.json``) is not listed.

        Returns
        -------
        pathlib.Path
            ``root/<stamp>_<case>`` or ``root/<stamp>_<case>-<k>``.
        """
        if self._closed:
            raise RuntimeError(f"bundle {self.final or self.staging} already committed or aborted")
        try:
            self._write_provenance(run=provenance or {}, config={}, backends={},
                                   evidence_keys=[])
            final = self._seal("plain (no parity report)")
        except BaseException:
            self.abort()
            raise
        return final

    def _seal(self, note: str) -> Path:
        """Write the marker last, publish, and close the writer."""
        _write_synced(self.staging / COMPLETE_MARKER,
                      f"{self.stamp}_{self._case_part} {note}\n".encode())
        final = self._publish()
        self.final = final
        self._closed = True
        return final

    def _write_provenance(self, *, run: Mapping[str, Any], config: Mapping[str, Any],
                          backends: Mapping[str, Any], evidence_keys: list[str]) -> None:
        files = {
            path.relative_to(self.staging).as_posix(): {"bytes": path.stat().st_size,
                                                        "sha256": _sha256(path)}
            for path in sorted(self.staging.rglob("*")) if path.is_file()
        }
        record = {
            "schema": "ptycho-parity/provenance/1",
            "case": self.case,
            "stamp": self.stamp,
            "run": run,
            "config": config,
            "backends": backends,
            "bundle": {
                "written_utc": stamp_now(),
                "python": sys.version.split()[0],
                "numpy": np.__version__,
                "platform": platform.platform(),
                "pid": os.getpid(),
                "evidence_keys": evidence_keys,
                "files": files,
            },
        }
        _write_synced(self.staging / "provenance.json", _json(record).encode("utf-8"))

    def _publish(self) -> Path:
        base = f"{self.stamp}_{self._case_part}"
        for k in range(1, _MAX_SUFFIX + 1):
            final = self.root / (base if k == 1 else f"{base}-{k}")
            if _taken(final):
                continue
            try:
                os.rename(self.staging, final)
            except OSError as exc:
                # Lost a race for this name (or it is taken by a file): try the next one.
                if exc.errno in (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR):
                    continue
                raise
            return final
        raise FileExistsError(f"{_MAX_SUFFIX} bundles named {base}[-k] already exist in "
                              f"{self.root}")

    def abort(self) -> None:
        """Discard the staging directory (idempotent; a failed removal leaves ``.staging-*``)."""
        self._closed = True
        if self.final is not None or not self.staging.exists():
            return
        try:
            shutil.rmtree(self.staging)
        except OSError as exc:  # stays hidden as .staging-*: list_runs never shows it
            _log.warning("could not remove staging directory %s: %s", self.staging, exc)


def new_bundle_dir(root: Path, case: str, *, stamp: str | None = None) -> BundleWriter:
    """Create the staging directory of a new bundle and return its writer.

    Parameters
    ----------
    root : pathlib.Path
        Directory of all bundles (``reports/``); created if missing.
    case : str
        Case name; in the directory name characters outside ``A-Za-z0-9._+=-`` become ``_``.
    stamp : str, optional
        UTC ``YYYYmmddTHHMMSSZ`` (the run's start); default :func:`stamp_now`.

    Returns
    -------
    BundleWriter
        Writing into ``root/.staging-<stamp>_<case>-<pid>-<hex>/``.

    Raises
    ------
    ValueError
        A case with no letter or digit, or a stamp not in ``YYYYmmddTHHMMSSZ`` form.
    """
    stamp = stamp_now() if stamp is None else stamp
    case_part = bundle_name(stamp, case).split("_", 1)[1]
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    while True:
        staging = root / (f"{STAGING_PREFIX}{stamp}_{case_part}-{os.getpid()}-"
                          f"{secrets.token_hex(4)}")
        try:
            staging.mkdir()
        except FileExistsError:  # 32 random bits collided; draw again
            continue
        return BundleWriter(root=root, case=case, stamp=stamp, staging=staging)
