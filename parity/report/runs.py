"""Finding, showing and comparing the bundles under a reports root.

A directory under the root is one of:

- a *run*: ``COMPLETE`` marker, a ``report.json`` that parses and has the fields this module
  reads, of the right JSON types (:func:`load_report`), and every file that the manifest in
  ``provenance.json`` lists present with its size and SHA-256;
- a *benchmark bundle* (``<stamp>_bench-<case>``: ``bench.json``, ``bench.md``, no
  ``report.json``; manifest likewise): :func:`show_run` prints its ``bench.md``; not listed or
  diffed;
- a *damaged* bundle: bundle files but no ``COMPLETE`` marker (interrupted or still writing), a
  bad ``report.json``, or a file that differs from the manifest. Looking one up raises
  :class:`BundleError` naming the bundle and the problem (the first bad file); :func:`scan_runs`
  counts it;
- anything else (no bundle file at all, staging ``.staging-*`` and hidden directories): ignored.

Manifest checks: a listing (:func:`scan_runs`) compares sizes only, so that it stays a ``stat``
per file; :func:`show_run` and :func:`load_report` (hence ``parity diff``) compare SHA-256 too.

Runs are ordered oldest first by (stamp, same-second suffix, name).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from parity.report._bundle_files import (
    BundleError,
    check_manifest,
    has_bundle_files,
    is_bench,
    load_report,
    read_bundle_text,
    require_bundle,
)
from parity.report.bundle_names import COMPLETE_MARKER, STAGING_PREFIX, bundle_name
from parity.report.formatting import capped

__all__ = [
    "BundleError",
    "RunScan",
    "RunSummary",
    "check_reports_root",
    "format_run_list",
    "format_scan",
    "list_runs",
    "load_report",
    "resolve_run",
    "scan_runs",
    "show_run",
]


@dataclass(frozen=True)
class RunSummary:
    """One complete bundle, as listed.

    Attributes
    ----------
    path : pathlib.Path
        The bundle directory.
    name : str
        Directory name (``<stamp>_<case>`` or ``<stamp>_<case>-<k>``).
    case, stamp, verdict : str
        From ``report.json``.
    exit_code : int
        0 parity, 1 divergence, 3 backend failure.
    first_divergence : str or None
        Name of the first failed check.
    backends : tuple[str, ...]
        Backends compared.
    counts : dict
        Verdict -> number of checks.
    injections : dict
        Backend -> bug injected on purpose (``config.injections``; empty for a real run).
    """

    path: Path
    name: str
    case: str
    stamp: str
    verdict: str
    exit_code: int
    first_divergence: str | None
    backends: tuple[str, ...]
    counts: Mapping[str, int] = field(default_factory=dict)
    injections: Mapping[str, str] = field(default_factory=dict)

    def line(self) -> str:
        """One line for a listing: name, verdict, exit code, first divergence, and a
        ``[self-test: torch=offset_sign]`` mark on a run with injected bugs."""
        mark = ", ".join(f"{k}={v}" for k, v in self.injections.items())
        return (f"{self.name:<45} {self.verdict:<16} {self.exit_code:>4}  "
                f"{self.first_divergence or '-'}" + (f"  [self-test: {mark}]" if mark else ""))


@dataclass(frozen=True)
class RunScan:
    """Everything under a reports root, sorted (see the module docstring for the kinds).

    Attributes
    ----------
    root : pathlib.Path
        The reports root.
    exists : bool
        False when ``root`` does not exist (then everything else is empty).
    runs : tuple[RunSummary, ...]
        Complete runs, oldest first.
    damaged : tuple[BundleError, ...]
        Incomplete or damaged bundles, by name.
    bench : tuple[pathlib.Path, ...]
        Benchmark bundles, by name.
    """

    root: Path
    exists: bool
    runs: tuple[RunSummary, ...] = ()
    damaged: tuple[BundleError, ...] = ()
    bench: tuple[Path, ...] = ()


def _sort_key(run: RunSummary) -> tuple[str, int, str]:
    """(stamp, same-second sequence, name): ``-10`` after ``-9``, a case's own dashes ignored."""
    try:
        base = bundle_name(run.stamp, run.case)
    except (TypeError, ValueError):
        return run.stamp, 0, run.name
    suffix = run.name[len(base):] if run.name.startswith(base) else ""
    seq = int(suffix[1:]) if re.fullmatch(r"-\d+", suffix) else 1
    return run.stamp, seq, run.name


def _summary(path: Path, report: Mapping[str, Any]) -> RunSummary:
    first = report.get("first_divergence")
    injections = report.get("config", {}).get("injections") or {}
    if not isinstance(injections, dict) or not all(isinstance(v, str)
                                                   for v in injections.values()):
        raise BundleError(path, f"report.json: config.injections is {injections!r}, expected "
                                "an object of backend -> injection name")
    return RunSummary(
        path=path, name=path.name, case=report["case"], stamp=report["stamp"],
        verdict=report["verdict"], exit_code=report["exit_code"],
        first_divergence=first["name"] if first else None,
        backends=tuple(report.get("backends", ())), counts=dict(report.get("counts", {})),
        injections=injections)


def check_reports_root(root: Path) -> bool:
    """Whether ``root`` exists; ValueError when it is a file or itself a bundle."""
    if not root.exists():
        return False
    if not root.is_dir():
        raise ValueError(f"reports directory {root} is not a directory")
    if (root / COMPLETE_MARKER).exists():
        raise ValueError(f"{root} is a bundle, not a reports directory (`parity show {root}` "
                         "shows it)")
    return True


def scan_runs(root: Path) -> RunScan:
    """Every bundle under ``root``, sorted into runs, damaged bundles and benchmark bundles.

    A missing ``root`` gives an empty scan with ``exists=False``.

    Raises
    ------
    ValueError
        ``root`` is a file, is itself a bundle, or cannot be read.
    """
    root = Path(root)
    if not check_reports_root(root):
        return RunScan(root, exists=False)
    runs: list[RunSummary] = []
    damaged: list[BundleError] = []
    bench: list[Path] = []
    try:
        entries = sorted(p for p in root.iterdir()
                         if p.is_dir() and not p.name.startswith((STAGING_PREFIX, ".")))
    except OSError as exc:
        raise ValueError(f"reports directory {root} cannot be read: {exc}") from None
    for path in filter(has_bundle_files, entries):
        try:
            if is_bench(path):
                require_bundle(path)
                check_manifest(path, hashes=False)
                bench.append(path)
            else:
                runs.append(_summary(path, load_report(path, hashes=False)))
        except BundleError as err:
            damaged.append(err)
    return RunScan(root, True, tuple(sorted(runs, key=_sort_key)), tuple(damaged), tuple(bench))


def list_runs(root: Path, *, case: str | None = None) -> list[RunSummary]:
    """Complete runs under ``root``, oldest first (optionally of one case only).

    A missing ``root`` has no runs. Damaged and benchmark bundles are left out; :func:`scan_runs`
    says which.
    """
    return [r for r in scan_runs(root).runs if case is None or r.case == case]


def format_run_list(runs: Sequence[RunSummary]) -> str:
    """A plain-text table of :func:`list_runs` (one line per run)."""
    if not runs:
        return "no complete runs\n"
    lines = [f"{'run':<45} {'verdict':<16} {'exit':>4}  first divergence"]
    lines += [run.line() for run in runs]
    return "\n".join(lines) + "\n"


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _scan_notes(scan: RunScan) -> list[str]:
    """What the ``[self-test: ...]`` mark means (when a run has it); what a listing left out:
    damaged bundles (each with its problem), benchmark bundles."""
    notes = []
    if any(run.injections for run in scan.runs):
        notes.append("[self-test: ...]: bugs injected on purpose (`--inject`, `parity selftest`); "
                     "not regressions")
    damaged = [f"{err.path.name} ({err.problem})" for err in scan.damaged]
    if len(damaged) == 1:
        notes.append(f"skipped 1 damaged bundle: {damaged[0]}")
    elif damaged:
        notes += [f"skipped {_plural(len(damaged), 'damaged bundle')}:",
                  *(f"  {line}" for line in capped(damaged))]
    if scan.bench:
        notes.append(f"not listed: {_plural(len(scan.bench), 'benchmark bundle')} (latest "
                     f"{scan.bench[-1].name}; `parity show NAME` prints its bench.md)")
    return notes


def format_scan(scan: RunScan) -> str:
    """:func:`format_run_list` of a :func:`scan_runs`, then what it left out and why."""
    if not scan.exists:
        return f"no reports directory {scan.root.absolute()}\n"
    table = format_run_list(scan.runs) if scan.runs else f"no complete runs under {scan.root}\n"
    return table + "".join(f"{note}\n" for note in _scan_notes(scan))


def _resolve_path(ref: str) -> Path:
    """A bundle given as a path: a complete run or benchmark bundle, else a clear error."""
    path = Path(ref)
    require_bundle(path)
    if not is_bench(path):
        load_report(path, hashes=False)  # show and diff compare the digests
    return path


def _resolve_index(scan: RunScan, text: str) -> Path:
    """``latest`` / ``-N``: the N-th newest complete run."""
    back = 1 if text == "latest" else int(text[1:])
    count = len(scan.runs)
    if count == 0:
        skipped = f" ({_plural(len(scan.damaged), 'damaged bundle')})" if scan.damaged else ""
        raise FileNotFoundError(f"run {text!r}: no complete runs in {scan.root}{skipped}")
    if not 1 <= back <= count:
        raise FileNotFoundError(f"run {text!r} is out of range: {_plural(count, 'complete run')} "
                                f"in {scan.root}")
    return scan.runs[-back].path


def _resolve_name(scan: RunScan, text: str) -> Path:
    """A bundle name or a unique prefix of one (runs, damaged and benchmark bundles alike)."""
    damaged = {err.path.name: err for err in scan.damaged}
    names = sorted([*(r.name for r in scan.runs), *damaged, *(p.name for p in scan.bench)])
    matches = [text] if text in names else [n for n in names if n.startswith(text)]
    if len(matches) > 1:
        raise ValueError(f"run {text!r} is ambiguous: {matches}")
    if not matches:
        shown = ", ".join(r.name for r in scan.runs[-10:]) or "none"
        raise FileNotFoundError(f"no run {text!r} in {scan.root} (latest runs: {shown})")
    if matches[0] in damaged:
        raise damaged[matches[0]]
    return scan.root / matches[0]


def resolve_run(root: Path, ref: str | Path) -> Path:
    """The bundle a user means by ``ref``.

    Parameters
    ----------
    root : pathlib.Path
        Reports root.
    ref : str or pathlib.Path
        A path to a bundle; a directory name under ``root``; a unique prefix of one (e.g. the
        stamp); ``latest`` / ``-1`` (newest complete run), ``-2`` (the one before), ...

    Returns
    -------
    pathlib.Path
        A complete run or a benchmark bundle.

    Raises
    ------
    FileNotFoundError
        Nothing matches (the message lists the latest runs); an index out of range; a path or
        ``root`` that does not exist.
    BundleError
        The bundle exists but is damaged or incomplete (the message says how).
    ValueError
        An empty ``ref``; a prefix matching several bundles (the message lists them); a path
        that is not a bundle; ``root`` not a directory.
    """
    text = str(ref)
    if not text.strip():
        raise ValueError("empty run name; give a bundle path, a run name or a unique prefix of "
                         "one (e.g. its stamp), 'latest' or -N")
    if isinstance(ref, Path) or "/" in text or text.startswith(".") or Path(text).is_dir():
        return _resolve_path(text)
    scan = scan_runs(root)
    if not scan.exists:
        raise FileNotFoundError(f"no reports directory {Path(root).absolute()} (run {text!r})")
    if text == "latest" or re.fullmatch(r"-\d+", text):
        return _resolve_index(scan, text)
    return _resolve_name(scan, text)


def show_run(path: Path) -> str:
    """``summary.md`` of a complete run, or ``bench.md`` of a benchmark bundle.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    BundleError
        Damaged or incomplete (a file changed since the run included), or no ``summary.md`` /
        ``bench.md``.
    ValueError
        Not a bundle.
    """
    path = Path(path)
    require_bundle(path)
    if is_bench(path):
        check_manifest(path, hashes=True)
        return read_bundle_text(path, "bench.md")
    load_report(path)
    return read_bundle_text(path, "summary.md")
