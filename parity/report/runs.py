"""Finding, showing and comparing the bundles under a reports root.

A directory under the root is one of:

- a *run*: ``COMPLETE`` marker, and a ``report.json`` that parses and has the fields this
  module reads, of the right JSON types (checked once, in :func:`load_report`);
- a *benchmark bundle* (``<stamp>_bench-<case>``: ``bench.json``, ``bench.md``, no
  ``report.json``): :func:`show_run` prints its ``bench.md``; it is not listed or diffed;
- a *damaged* bundle: bundle files but no ``COMPLETE`` marker (interrupted or still writing),
  or a ``report.json`` that is missing, does not parse or has a wrong field. Looking one up
  raises :class:`BundleError` naming the bundle and the problem; :func:`scan_runs` counts it;
- anything else (no bundle file at all, staging ``.staging-*`` and hidden directories): ignored.

Runs are ordered oldest first by (stamp, same-second suffix, name).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from parity.report.bundle_names import BUNDLE_FILES, COMPLETE_MARKER, STAGING_PREFIX, bundle_name
from parity.report.formatting import capped
from parity.report.report_schema import validate_report

__all__ = [
    "BundleError",
    "RunScan",
    "RunSummary",
    "format_run_list",
    "format_scan",
    "list_runs",
    "load_report",
    "resolve_run",
    "scan_runs",
    "show_run",
]

_BENCH_FILES = ("bench.json", "bench.md")

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

    def line(self) -> str:
        """One line for a listing: name, verdict, exit code, first divergence."""
        return (f"{self.name:<45} {self.verdict:<16} {self.exit_code:>4}  "
                f"{self.first_divergence or '-'}")


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


def _is_bench(path: Path) -> bool:
    """A benchmark bundle: named ``<stamp>_bench-<case>``, or bench files and no report."""
    return "_bench-" in path.name or (any((path / n).is_file() for n in _BENCH_FILES)
                                      and not (path / "report.json").exists())


def _has_bundle_files(path: Path) -> bool:
    return any((path / name).exists() for name in (*BUNDLE_FILES, *_BENCH_FILES))


def _require_bundle(path: Path) -> None:
    """A complete bundle directory (run or bench), or an error saying what ``path`` is."""
    if not path.exists():
        raise FileNotFoundError(f"no bundle directory {path}")
    if not path.is_dir():
        raise ValueError(f"{path} is not a directory; expected a run bundle")
    if not _has_bundle_files(path):
        raise ValueError(f"{path} is not a run bundle (it has no report.json, summary.md or "
                         f"{COMPLETE_MARKER} marker)")
    if not (path / COMPLETE_MARKER).is_file():
        raise BundleError(path, f"no {COMPLETE_MARKER} marker: the run was interrupted or is "
                                "still writing", incomplete=True)


def _read_text(path: Path, name: str) -> str:
    """A bundle file's text, or BundleError naming the bundle and the file."""
    try:
        return (path / name).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BundleError(path, f"no {name}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BundleError(path, f"{name} cannot be read: {exc}") from None


def load_report(path: Path) -> dict[str, Any]:
    """``report.json`` of a complete run bundle, with its fields' types checked.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    BundleError
        No ``COMPLETE`` marker; ``report.json`` missing, unparseable, not an object, or with a
        field this module reads missing or of the wrong type (the message names the field).
    ValueError
        ``path`` is a file, a directory with no bundle files, or a benchmark bundle.
    """
    path = Path(path)
    _require_bundle(path)
    if _is_bench(path):
        raise ValueError(f"{path} is a benchmark bundle (bench.json, bench.md; no report.json), "
                         "not a parity run: `parity show` prints its bench.md; compare "
                         "bench.json files by hand")
    try:
        report = json.loads(_read_text(path, "report.json"))
        validate_report(report)
    except json.JSONDecodeError as exc:
        raise BundleError(path, f"report.json does not parse: {exc}") from None
    except BundleError:
        raise
    except ValueError as exc:
        raise BundleError(path, f"report.json: {exc}") from None
    return report


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
    return RunSummary(
        path=path, name=path.name, case=report["case"], stamp=report["stamp"],
        verdict=report["verdict"], exit_code=report["exit_code"],
        first_divergence=first["name"] if first else None,
        backends=tuple(report.get("backends", ())), counts=dict(report.get("counts", {})))


def _check_root(root: Path) -> bool:
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
    if not _check_root(root):
        return RunScan(root, exists=False)
    runs: list[RunSummary] = []
    damaged: list[BundleError] = []
    bench: list[Path] = []
    try:
        entries = sorted(p for p in root.iterdir()
                         if p.is_dir() and not p.name.startswith((STAGING_PREFIX, ".")))
    except OSError as exc:
        raise ValueError(f"reports directory {root} cannot be read: {exc}") from None
    for path in filter(_has_bundle_files, entries):
        try:
            if _is_bench(path):
                _require_bundle(path)
                bench.append(path)
            else:
                runs.append(_summary(path, load_report(path)))
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
    """What a listing left out: damaged bundles (each with its problem), benchmark bundles."""
    notes = []
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
        return f"no reports directory {scan.root}\n"
    table = format_run_list(scan.runs) if scan.runs else f"no complete runs under {scan.root}\n"
    return table + "".join(f"{note}\n" for note in _scan_notes(scan))


def _resolve_path(ref: str) -> Path:
    """A bundle given as a path: a complete run or benchmark bundle, else a clear error."""
    path = Path(ref)
    _require_bundle(path)
    if not _is_bench(path):
        load_report(path)
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
        raise FileNotFoundError(f"no reports directory {root} (run {text!r})")
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
        Damaged or incomplete, or no ``summary.md`` / ``bench.md``.
    ValueError
        Not a bundle.
    """
    path = Path(path)
    _require_bundle(path)
    if _is_bench(path):
        return _read_text(path, "bench.md")
    load_report(path)
    return _read_text(path, "summary.md")
