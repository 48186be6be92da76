"""Finding, showing and comparing the bundles under a reports root.

A bundle counts only when complete: its ``COMPLETE`` marker exists and its ``report.json``
parses. Staging directories (``.staging-*``) and half-written or foreign directories are
ignored. Runs are ordered oldest first by (stamp, same-second suffix, name).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from parity.report.bundle import COMPLETE_MARKER, STAGING_PREFIX, bundle_name
from parity.report.summary import flatten, format_value

__all__ = [
    "DIFF_REL_THRESHOLD",
    "RunSummary",
    "diff_runs",
    "format_run_list",
    "list_runs",
    "load_report",
    "resolve_run",
    "show_run",
]

#: A measured value or metric "moved" when it changed by more than this fraction of its old value.
DIFF_REL_THRESHOLD: float = 0.10

_MAX_LINES = 200  # per diff section; the rest is counted, not listed


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


def load_report(path: Path) -> dict[str, Any]:
    """``report.json`` of a complete bundle.

    Raises
    ------
    FileNotFoundError
        ``path`` is not a directory, or has no ``COMPLETE`` marker / ``report.json``.
    ValueError
        ``report.json`` does not parse as a JSON object.
    """
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path} is not a bundle directory")
    if not (path / COMPLETE_MARKER).is_file():
        raise FileNotFoundError(f"{path} is not a complete bundle (no {COMPLETE_MARKER} marker: "
                                "the run was interrupted or is still writing)")
    try:
        report = json.loads((path / "report.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} has no report.json") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path / 'report.json'} does not parse: {exc}") from None
    if not isinstance(report, dict):
        raise ValueError(f"{path / 'report.json'} holds {type(report).__name__}; "
                         "expected a JSON object")
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


def list_runs(root: Path, *, case: str | None = None) -> list[RunSummary]:
    """Complete bundles under ``root``, oldest first (optionally of one case only).

    A missing ``root`` has no runs. Incomplete or unreadable bundles are skipped silently.
    """
    root = Path(root)
    if not root.is_dir():
        return []
    runs: list[RunSummary] = []
    for path in root.iterdir():
        if path.name.startswith((STAGING_PREFIX, ".")) or not path.is_dir():
            continue
        try:
            report = load_report(path)
        except (OSError, ValueError):
            continue
        first = report.get("first_divergence")
        runs.append(RunSummary(
            path=path,
            name=path.name,
            case=str(report.get("case", "")),
            stamp=str(report.get("stamp", "")),
            verdict=str(report.get("verdict", "unknown")),
            exit_code=int(report.get("exit_code", -1)),
            first_divergence=first.get("name") if isinstance(first, dict) else None,
            backends=tuple(report.get("backends", ())),
            counts=dict(report.get("counts", {})),
        ))
    runs = [r for r in runs if case is None or r.case == case]
    return sorted(runs, key=_sort_key)


def format_run_list(runs: list[RunSummary]) -> str:
    """A plain-text table of :func:`list_runs` (one line per run)."""
    if not runs:
        return "no complete runs\n"
    lines = [f"{'run':<45} {'verdict':<16} {'exit':>4}  first divergence"]
    lines += [run.line() for run in runs]
    return "\n".join(lines) + "\n"


def resolve_run(root: Path, ref: str | Path) -> Path:
    """The bundle a user means by ``ref``.

    Parameters
    ----------
    root : pathlib.Path
        Reports root.
    ref : str or pathlib.Path
        A path to a bundle; a directory name under ``root``; a unique prefix of one (e.g. the
        stamp); ``latest`` / ``-1`` (newest), ``-2`` (the one before), ...

    Raises
    ------
    FileNotFoundError
        Nothing matches (the message lists the runs there are).
    ValueError
        A prefix matching several runs (the message lists them).
    """
    text = str(ref)
    candidate = Path(ref)
    if candidate.is_dir():
        load_report(candidate)  # a clear error when it is not a complete bundle
        return candidate
    runs = list_runs(root)
    names = [r.name for r in runs]
    if text == "latest" or re.fullmatch(r"-\d+", text):
        back = 1 if text == "latest" else int(text[1:])
        if back < 1 or back > len(runs):
            raise FileNotFoundError(f"run {text!r}: {len(runs)} complete runs in {root}")
        return runs[-back].path
    exact = [r.path for r in runs if r.name == text]
    if exact:
        return exact[0]
    matches = [r.path for r in runs if r.name.startswith(text)]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise ValueError(f"run {text!r} is ambiguous: {[p.name for p in matches]}")
    shown = ", ".join(names[-10:]) or "none"
    raise FileNotFoundError(f"no complete run {text!r} in {root} (latest runs: {shown})")


def show_run(path: Path) -> str:
    """``summary.md`` of a complete bundle.

    Raises
    ------
    FileNotFoundError
        Not a complete bundle, or it has no ``summary.md``.
    """
    path = Path(path)
    load_report(path)  # a clear error for incomplete or foreign directories
    summary = path / "summary.md"
    if not summary.is_file():
        raise FileNotFoundError(f"bundle {path} has no summary.md")
    return summary.read_text(encoding="utf-8")


def _capped(lines: list[str]) -> list[str]:
    if len(lines) <= _MAX_LINES:
        return lines
    return [*lines[:_MAX_LINES], f"  ... and {len(lines) - _MAX_LINES} more"]


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _moved(old: float, new: float, threshold: float) -> bool:
    if old == new:
        return False
    if old == 0.0:
        return True  # from exactly zero any change is unbounded in relative terms
    return abs(new - old) > threshold * abs(old)


def _relative_text(old: float, new: float) -> str:
    return "from 0" if old == 0.0 else f"{(new - old) / abs(old):+.1%}"


def _mapping_diff(title: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    flat_old, flat_new = flatten(old), flatten(new)
    lines = []
    for key in list(dict.fromkeys([*flat_old, *flat_new])):
        if key not in flat_new:
            lines.append(f"  - {key}: {format_value(flat_old[key])} (removed)")
        elif key not in flat_old:
            lines.append(f"  + {key}: {format_value(flat_new[key])} (added)")
        elif flat_old[key] != flat_new[key]:
            lines.append(f"  ~ {key}: {format_value(flat_old[key])} -> "
                         f"{format_value(flat_new[key])}")
    return [f"{title}: {'no change' if not lines else f'keys that differ: {len(lines)}'}",
            *_capped(lines)]


def _checks_diff(old: dict[str, Any], new: dict[str, Any], threshold: float) -> list[str]:
    checks_old = {c["name"]: c for c in old.get("checks", []) if "name" in c}
    checks_new = {c["name"]: c for c in new.get("checks", []) if "name" in c}
    verdicts, moved = [], []
    for name in list(dict.fromkeys([*checks_old, *checks_new])):
        a, b = checks_old.get(name), checks_new.get(name)
        if a is None or b is None:
            verdicts.append(f"  {name}: {a['verdict'] if a else 'absent'} -> "
                            f"{b['verdict'] if b else 'absent'}")
            continue
        if a.get("verdict") != b.get("verdict"):
            verdicts.append(f"  {name}: {a.get('verdict')} -> {b.get('verdict')}")
        m_old, m_new = a.get("measured") or {}, b.get("measured") or {}
        for key in m_old.keys() & m_new.keys():
            x, y = _number(m_old[key]), _number(m_new[key])
            if x is not None and y is not None and _moved(x, y, threshold):
                moved.append(f"  {name} {key}: {format_value(x)} -> {format_value(y)} "
                             f"({_relative_text(x, y)})")
    return [f"Checks whose verdict changed: {len(verdicts) or 'none'}", *_capped(verdicts),
            f"Measured values that moved by more than {threshold:.0%}: {len(moved) or 'none'}",
            *_capped(sorted(moved))]


def _metrics_diff(old: Mapping[str, Any], new: Mapping[str, Any], threshold: float) -> list[str]:
    flat_old, flat_new = flatten(old), flatten(new)
    lines = []
    for key in list(dict.fromkeys([*flat_old, *flat_new])):
        x, y = _number(flat_old.get(key)), _number(flat_new.get(key))
        if x is None or y is None:
            if (key in flat_old) != (key in flat_new):
                lines.append(f"  {key}: {format_value(flat_old.get(key))} -> "
                             f"{format_value(flat_new.get(key))}")
            continue
        if x != y:
            flag = " (moved)" if _moved(x, y, threshold) else ""
            lines.append(f"  {key}: {format_value(x)} -> {format_value(y)} "
                         f"(delta {format_value(y - x)}){flag}")
    return [f"Metrics: {'no change' if not lines else f'values that changed: {len(lines)}'}",
            *_capped(lines)]


def _counts_line(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    moved = [f"{v} {old.get(v, 0)} -> {new.get(v, 0)}" for v in dict.fromkeys([*old, *new])
             if old.get(v, 0) != new.get(v, 0)]
    return "Check counts: " + (", ".join(moved) if moved else "unchanged")


def diff_runs(a: Path, b: Path, *, rel_threshold: float = DIFF_REL_THRESHOLD) -> str:
    """What changed from run ``a`` (older) to run ``b``.

    Lists: verdict and exit code; first divergence; every check whose verdict changed (or that
    exists in one run only); measured values that moved by more than ``rel_threshold`` of their
    old value; backend run statuses; config, provenance (data hash, versions, git revision) and
    backend environment keys that differ; metric deltas.

    Parameters
    ----------
    a, b : pathlib.Path
        Complete bundles.
    rel_threshold : float, optional
        Relative change that counts as a move (default :data:`DIFF_REL_THRESHOLD`, 10 %).

    Returns
    -------
    str
        Plain text, one finding per line.
    """
    if not rel_threshold > 0:
        raise ValueError(f"rel_threshold is {rel_threshold}; expected > 0")
    old, new = load_report(Path(a)), load_report(Path(b))
    first_old = (old.get("first_divergence") or {}).get("name", "none")
    first_new = (new.get("first_divergence") or {}).get("name", "none")
    runs_old = {r["backend"]: r for r in old.get("backend_runs", [])}
    runs_new = {r["backend"]: r for r in new.get("backend_runs", [])}
    backend_lines = [
        f"  {name}: {runs_old.get(name, {}).get('status', 'absent')} -> "
        f"{runs_new.get(name, {}).get('status', 'absent')}"
        for name in dict.fromkeys([*runs_old, *runs_new])
        if runs_old.get(name, {}).get("status") != runs_new.get(name, {}).get("status")
    ]
    env_old = {k: v.get("environment", {}) for k, v in runs_old.items()}
    env_new = {k: v.get("environment", {}) for k, v in runs_new.items()}
    changed = "changed" if old.get("verdict") != new.get("verdict") else "unchanged"
    lines = [
        f"diff {Path(a).name} -> {Path(b).name}",
        f"Verdict ({changed}): {old.get('verdict')} (exit {old.get('exit_code')}) -> "
        f"{new.get('verdict')} (exit {new.get('exit_code')})",
        f"First divergence: {first_old} -> {first_new}"
        + ("" if first_old != first_new else " (same)"),
        _counts_line(old.get("counts", {}), new.get("counts", {})),
        *_checks_diff(old, new, rel_threshold),
        f"Backend run status changes: {len(backend_lines) or 'none'}", *backend_lines,
        *_mapping_diff("Config", old.get("config", {}), new.get("config", {})),
        *_mapping_diff("Provenance", old.get("provenance", {}), new.get("provenance", {})),
        *_mapping_diff("Backend environments", env_old, env_new),
        *_metrics_diff(old.get("metrics", {}), new.get("metrics", {}), rel_threshold),
    ]
    return "\n".join(lines) + "\n"
