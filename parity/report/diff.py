"""What changed between two runs (``parity diff``): verdicts, checks, measured values, statuses,
config, provenance, environments and metrics. Bundles are found and checked by
:mod:`parity.report.runs`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from parity.report.formatting import capped, flatten, format_value
from parity.report.runs import load_report

__all__ = ["DIFF_REL_THRESHOLD", "MOVED_SHOWN", "diff_runs"]

#: A measured value or metric "moved" when it changed by more than this fraction of its old value.
DIFF_REL_THRESHOLD: float = 0.10

#: Moved measured values listed, the largest relative changes first (the rest are counted).
MOVED_SHOWN: int = 40

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
            *capped(lines)]


def _checks_diff(old: dict[str, Any], new: dict[str, Any], threshold: float) -> list[str]:
    checks_old = {c["name"]: c for c in old.get("checks", [])}  # names checked by load_report
    checks_new = {c["name"]: c for c in new.get("checks", [])}
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
                change = math.inf if x == 0.0 else abs(y - x) / abs(x)
                moved.append((-change, f"  {name} {key}: {format_value(x)} -> {format_value(y)} "
                                       f"({_relative_text(x, y)})"))
    shown = [line for _, line in sorted(moved)]
    return [f"Checks whose verdict changed: {len(verdicts) or 'none'}", *capped(verdicts),
            f"Measured values that moved by more than {threshold:.0%}: {len(moved) or 'none'}"
            + (" (largest relative changes first)" if len(moved) > 1 else ""),
            *capped(shown, MOVED_SHOWN)]


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
            *capped(lines)]


def _counts_line(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    moved = [f"{v} {old.get(v, 0)} -> {new.get(v, 0)}" for v in dict.fromkeys([*old, *new])
             if old.get(v, 0) != new.get(v, 0)]
    return "Check counts: " + (", ".join(moved) if moved else "unchanged")


def _headlines(a: Path, b: Path, old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Warnings that change how the rest of a diff reads: same bundle, different cases."""
    if a.resolve() == b.resolve():
        return [f"both sides are the same bundle {a.name}: nothing below can differ"]
    if old["case"] != new["case"]:
        return [f"warning: the runs are of different cases: A is {old['case']}, B is "
                f"{new['case']}; verdict changes below reflect that"]
    return []


def diff_runs(a: Path, b: Path, *, rel_threshold: float = DIFF_REL_THRESHOLD) -> str:
    """What changed from run ``a`` (older) to run ``b``.

    Lists: verdict and exit code; first divergence; every check whose verdict changed (or that
    exists in one run only); measured values that moved by more than ``rel_threshold`` of their
    old value; backend run statuses; config, provenance (data hash, versions, git revision) and
    backend environment keys that differ; metric deltas.

    A first line says when ``a`` and ``b`` are the same bundle, or warns when they are runs of
    different cases.

    Parameters
    ----------
    a, b : pathlib.Path
        Complete run bundles.
    rel_threshold : float, optional
        Relative change that counts as a move (default :data:`DIFF_REL_THRESHOLD`, 10 %).

    Returns
    -------
    str
        Plain text, one finding per line.

    Raises
    ------
    BundleError, ValueError, FileNotFoundError
        As :func:`load_report` (a benchmark bundle included); ``rel_threshold <= 0``.
    """
    if not rel_threshold > 0:
        raise ValueError(f"rel_threshold is {rel_threshold}; expected > 0")
    a, b = Path(a), Path(b)
    old, new = load_report(a), load_report(b)
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
        *_headlines(a, b, old, new),
        f"diff {a.name} -> {b.name}",
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
