"""What changed between two runs (``parity diff``): verdicts, checks, measured values, statuses,
config, provenance, environments and metrics. Bundles are found and checked by
:mod:`parity.report.runs`.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from parity.report.formatting import capped, flatten, format_value
from parity.report.runs import load_report

__all__ = ["ABSENT_SHOWN", "DIFF_REL_THRESHOLD", "FOLD_FROM", "MOVED_SHOWN", "diff_runs"]

#: A measured value or metric "moved" when it changed by more than this fraction of its old value.
DIFF_REL_THRESHOLD: float = 0.10

#: Moved measured values listed, the largest relative changes first (the rest are counted).
MOVED_SHOWN: int = 40

#: A relative change larger than this (10 = +1000 %) is printed as a fold (``8.4e+07-fold``):
#: percentages of that size are unreadable and say nothing more.
FOLD_FROM: float = 10.0

#: Checks present in one run only, within levels both runs cover, listed by name (the rest are
#: counted); those of a level the other run did not cover are only counted per level.
ABSENT_SHOWN: int = 10

#: A cosine closer to 1 than this prints as ``1-1.1e-15`` (4 significant digits would print 1).
_COSINE_NEAR_ONE: float = 1e-3

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
    """``+12.3%``; ``5000-fold``, ``8.446e+07-fold`` beyond :data:`FOLD_FROM`; ``from 0``."""
    if old == 0.0:
        return "from 0"
    change = (new - old) / abs(old)
    if abs(change) <= FOLD_FROM:
        return f"{change:+.1%}"
    return f"{format_value(abs(new / old))}-fold" + (", sign flipped" if old * new < 0 else "")


def _value_text(key: str, value: Any) -> str:
    """:func:`format_value`, but a cosine near 1 as ``1-1.1e-15`` rather than 15 nines."""
    if (key.endswith("cosine_similarity") and isinstance(value, float)
            and 0.0 < 1.0 - value < _COSINE_NEAR_ONE):
        return f"1-{1.0 - value:.2g}"
    return format_value(value)


def _level_of(check_name: str) -> str:
    """``L4`` of ``L4/weights/all[torch vs tensorflow]``."""
    return check_name.split("/", 1)[0]


def _levels(report: Mapping[str, Any]) -> tuple[str, ...]:
    """The levels a run covered (``report.json`` ``levels``; else those of its checks)."""
    levels = report.get("levels")
    if isinstance(levels, list) and all(isinstance(level, str) for level in levels):
        return tuple(levels)
    return tuple(dict.fromkeys(_level_of(c["name"]) for c in report.get("checks", [])))


def _levels_text(levels: Sequence[str]) -> str:
    """``L0-L5`` for a contiguous run of levels, else ``L0,L2``; ``none`` when empty."""
    if len(levels) > 2 and all(re.fullmatch(r"L\d+", level) for level in levels):
        first = int(levels[0][1:])
        if [int(level[1:]) for level in levels] == list(range(first, first + len(levels))):
            return f"{levels[0]}-{levels[-1]}"
    return ",".join(levels) or "none"


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


def _absent_lines(side: str, names: list[str], other_levels: Iterable[str]) -> list[str]:
    """Checks of run ``side`` that the other run lacks: a count per level, then by name those
    of a level the other run covered too (a check that vanished, not a level not run)."""
    if not names:
        return []
    per_level = Counter(_level_of(name) for name in names)
    covered = set(other_levels)
    vanished = [f"    {name}" for name in names if _level_of(name) in covered]
    return [f"  only in {side}: {len(names)} ("
            + ", ".join(f"{level}: {count}" for level, count in per_level.items()) + ")",
            *capped(vanished, ABSENT_SHOWN)]


def _checks_diff(old: dict[str, Any], new: dict[str, Any], threshold: float) -> list[str]:
    """Verdict changes of checks in both runs, checks in one run only (apart: a level one run
    did not cover is no verdict change), and measured values that moved."""
    checks_old = {c["name"]: c for c in old.get("checks", [])}  # names checked by load_report
    checks_new = {c["name"]: c for c in new.get("checks", [])}
    verdicts, moved = [], []
    for name in [n for n in checks_old if n in checks_new]:
        a, b = checks_old[name], checks_new[name]
        if a.get("verdict") != b.get("verdict"):
            verdicts.append(f"  {name}: {a.get('verdict')} -> {b.get('verdict')}")
        m_old, m_new = a.get("measured") or {}, b.get("measured") or {}
        for key in m_old.keys() & m_new.keys():
            x, y = _number(m_old[key]), _number(m_new[key])
            if x is not None and y is not None and _moved(x, y, threshold):
                change = math.inf if x == 0.0 else abs(y - x) / abs(x)
                moved.append((-change, f"  {name} {key}: {_value_text(key, x)} -> "
                                       f"{_value_text(key, y)} ({_relative_text(x, y)})"))
    only_old = [n for n in checks_old if n not in checks_new]
    only_new = [n for n in checks_new if n not in checks_old]
    shown = [line for _, line in sorted(moved)]
    return [f"Checks whose verdict changed: {len(verdicts) or 'none'}", *capped(verdicts),
            f"Checks in one run only: {len(only_old) + len(only_new) or 'none'}",
            *_absent_lines("A", only_old, _levels(new)),
            *_absent_lines("B", only_new, _levels(old)),
            f"Measured values that moved by more than {threshold:.0%}: {len(moved) or 'none'}"
            + (" (largest relative changes first)" if len(moved) > 1 else ""),
            *capped(shown, MOVED_SHOWN)]


def _one_side_metrics(side: str, keys: list[str]) -> list[str]:
    """Metrics of one run only, counted per group (``torch.truth: 40``), not listed."""
    if not keys:
        return []
    groups = Counter(".".join(key.split(".")[:2]) for key in keys)
    return [f"  only in {side}: {len(keys)} ("
            + ", ".join(f"{group}: {count}" for group, count in groups.items()) + ")"]


def _metrics_headline(changed: int, one_side: int) -> str:
    if not changed and not one_side:
        return "Metrics: no change"
    return (f"Metrics: values that changed: {changed or 'none'}"
            + (f"; in one run only: {one_side}" if one_side else ""))


def _metrics_diff(old: Mapping[str, Any], new: Mapping[str, Any], threshold: float) -> list[str]:
    """Metric values in both runs that changed (numbers with their delta), and a count of
    those in one run only."""
    flat_old, flat_new = flatten(old), flatten(new)
    changed = []
    for key in [k for k in flat_old if k in flat_new]:
        x, y = _number(flat_old[key]), _number(flat_new[key])
        if x is None or y is None:
            if format_value(flat_old[key]) != format_value(flat_new[key]):
                changed.append(f"  {key}: {_value_text(key, flat_old[key])} -> "
                               f"{_value_text(key, flat_new[key])}")
        elif x != y:
            flag = " (moved)" if _moved(x, y, threshold) else ""
            changed.append(f"  {key}: {_value_text(key, x)} -> {_value_text(key, y)} "
                           f"(delta {format_value(y - x)}){flag}")
    only_old = [k for k in flat_old if k not in flat_new]
    only_new = [k for k in flat_new if k not in flat_old]
    return [_metrics_headline(len(changed), len(only_old) + len(only_new)), *capped(changed),
            *_one_side_metrics("A", only_old), *_one_side_metrics("B", only_new)]


def _counts_line(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    moved = [f"{v} {old.get(v, 0)} -> {new.get(v, 0)}" for v in dict.fromkeys([*old, *new])
             if old.get(v, 0) != new.get(v, 0)]
    return "Check counts: " + (", ".join(moved) if moved else "unchanged")


def _headlines(a: Path, b: Path, old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Warnings that change how the rest of a diff reads: same bundle, different cases,
    different levels."""
    if a.resolve() == b.resolve():
        return [f"both sides are the same bundle {a.name}: nothing below can differ"]
    lines = []
    if old["case"] != new["case"]:
        lines.append(f"warning: the runs are of different cases: A is {old['case']}, B is "
                     f"{new['case']}; verdict changes below reflect that")
    levels_old, levels_new = _levels(old), _levels(new)
    if levels_old != levels_new:
        lines.append(f"levels: {_levels_text(levels_old)} -> {_levels_text(levels_new)} "
                     "(checks of a level one run did not cover are counted under 'Checks in "
                     "one run only', not as verdict changes)")
    return lines


def diff_runs(a: Path, b: Path, *, rel_threshold: float = DIFF_REL_THRESHOLD) -> str:
    """What changed from run ``a`` (older) to run ``b``.

    Lists: verdict and exit code; first divergence; every check in both runs whose verdict
    changed; checks in one run only (counted per level; listed by name when the other run
    covered their level); measured values that moved by more than ``rel_threshold`` of their
    old value (beyond :data:`FOLD_FROM` as a fold); backend run statuses; config, provenance
    (data hash, versions, git revision) and backend environment keys that differ; metric
    deltas, and a count of metrics in one run only.

    First lines say when ``a`` and ``b`` are the same bundle, and warn when they are runs of
    different cases or of different levels (``levels: L0-L5 -> L0-L3``).

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
        As :func:`load_report` (a benchmark bundle, a file changed since the run included);
        ``rel_threshold <= 0``.
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
