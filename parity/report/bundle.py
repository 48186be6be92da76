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

Names (stamps, reserved files) come from :mod:`parity.report.bundle_names`; fsynced writes, JSON
text, evidence checks and the file manifest from :mod:`parity.report._bundle_files`.
"""

from __future__ import annotations

import errno
import logging
import os
import platform
import secrets
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from parity.report._bundle_files import (
    PROVENANCE_FILE,
    checked_evidence,
    file_manifest,
    json_text,
    write_synced,
)
from parity.report.bundle_names import (
    COMPLETE_MARKER,
    STAGING_PREFIX,
    bundle_file_path,
    bundle_name,
    case_directory_part,
    stamp_now,
)
from parity.results import RunResult

__all__ = ["BundleWriter", "new_bundle_dir"]

_log = logging.getLogger(__name__)

_MAX_SUFFIX = 10_000  # same case, same second: far beyond any real collision count


def _taken(path: Path) -> bool:
    """Whether a bundle name is in use (a cheap pre-check; the rename decides)."""
    return os.path.lexists(path)


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
        Case name (in the directory name: Unicode letters, digits and ``._+=-`` kept, anything
        else as ``_``; :func:`parity.report.bundle_names.case_directory_part`).
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
        self._case_part = case_directory_part(case)
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
        return self.staging.joinpath(*bundle_file_path(name).parts)

    @property
    def figures_dir(self) -> Path:
        """``figures/`` inside the staging directory (created on first use)."""
        path = self._target("figures")
        path.mkdir(exist_ok=True)
        return path

    def write_text(self, name: str | os.PathLike[str], text: str) -> Path:
        """Write UTF-8 text at ``name`` (relative; parent folders are created)."""
        path = self._target(name)
        write_synced(path, text.encode("utf-8"))
        return path

    def write_json(self, name: str | os.PathLike[str], obj: Any) -> Path:
        """Write ``obj`` as indented JSON (NumPy values plain, NaN/inf -> null, other -> str)."""
        return self.write_text(name, json_text(obj))

    def write_npz(self, name: str | os.PathLike[str], arrays: Mapping[str, Any]) -> Path:
        """Write ``arrays`` with ``np.savez_compressed`` (keys may contain ``/``)."""
        path = self._target(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as handle:
            np.savez_compressed(handle, **checked_evidence(arrays))
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
            arrays = checked_evidence(evidence)
            stage = self.staging
            write_synced(stage / "report.json", json_text(result.to_dict()).encode("utf-8"))
            figures = render_figures(result, arrays, self.figures_dir)
            links = [p.relative_to(stage).as_posix() for p in figures.written]
            write_synced(stage / "summary.md", render_summary(
                result, figures=links, figure_notes=figures.skipped).encode("utf-8"))
            write_synced(stage / "junit.xml",
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

    def commit_plain(self, *, provenance: Mapping[str, Any] | None = None,
                     config: Mapping[str, Any] | None = None) -> Path:
        """Publish what was written, with no parity report (e.g. a benchmark bundle).

        Writes ``provenance.json`` (``provenance`` as its ``run``, ``config`` as its
        ``config``, plus the file manifest) and ``COMPLETE``, then renames as :meth:`commit`
        does. :func:`parity.report.runs.list_runs` lists parity runs only, so such a bundle (no
        ``report.json``) is not listed.

        Returns
        -------
        pathlib.Path
            ``root/<stamp>_<case>`` or ``root/<stamp>_<case>-<k>``.
        """
        if self._closed:
            raise RuntimeError(f"bundle {self.final or self.staging} already committed or aborted")
        try:
            self._write_provenance(run=provenance or {}, config=config or {}, backends={},
                                   evidence_keys=[])
            final = self._seal("plain (no parity report)")
        except BaseException:
            self.abort()
            raise
        return final

    def _seal(self, note: str) -> Path:
        """Write the marker last, publish, and close the writer."""
        write_synced(self.staging / COMPLETE_MARKER,
                     f"{self.stamp}_{self._case_part} {note}\n".encode())
        final = self._publish()
        self.final = final
        self._closed = True
        return final

    def _write_provenance(self, *, run: Mapping[str, Any], config: Mapping[str, Any],
                          backends: Mapping[str, Any], evidence_keys: list[str]) -> None:
        files = file_manifest(self.staging)
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
        write_synced(self.staging / PROVENANCE_FILE, json_text(record).encode("utf-8"))

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
        Case name; in the directory name anything but Unicode letters, digits and ``._+=-``
        becomes ``_`` (:func:`parity.report.bundle_names.case_directory_part`).
    stamp : str, optional
        UTC ``YYYYmmddTHHMMSSZ`` (the run's start); default
        :func:`parity.report.bundle_names.stamp_now`.

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
