"""Flake check: repeat one run N times; are all verdicts identical, and how close is each measured
error to its tolerance?

Each repeat runs every backend afresh (no cache). The report lists checks whose verdict changed
between repeats (a flaky gate) and, per check, the spread of the worst error over the repeats as a
fraction of its tolerance bound, so a tolerance change is argued from data.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from parity.results import jsonable

__all__ = ["FlakeReport", "add_flake_command", "run_flake"]


@dataclass(frozen=True)
class FlakeReport:
    """Outcome of :func:`run_flake`.

    Attributes
    ----------
    repeats : int
        Runs made.
    identical : bool
        Every check had the same verdict in every run, and the exit codes agree.
    changed : list[str]
        Checks whose verdict changed.
    exit_codes : list[int]
        Exit code of each run.
    spread : dict
        Check name -> ``{"min", "max"}`` of (max abs error / effective bound) over the runs.
    """

    repeats: int
    identical: bool
    changed: list[str]
    exit_codes: list[int]
    spread: dict[str, dict[str, float]]

    def text(self) -> str:
        """Human summary."""
        lines = [f"{self.repeats} runs, exit codes {self.exit_codes}: verdicts "
                 f"{'IDENTICAL' if self.identical else 'DIFFER'}"]
        lines += [f"  changed: {name}" for name in self.changed]
        worst = sorted(self.spread.items(), key=lambda kv: -kv[1]["max"])[:10]
        lines.append("closest to their tolerance (max error / bound, min..max over runs):")
        lines += [f"  {name}: {s['min']:.3g} .. {s['max']:.3g}" for name, s in worst]
        return "\n".join(lines)


def _ratio(check: Any) -> float | None:
    """The worst element's error over its own bound ``atol + rtol |expected|`` (the comparison's
    ``worst[0].excess``; 0 when every element matched exactly), or None for a check that is not
    elementwise (configs, curves, metrics)."""
    measured = check.measured or {}
    if "max_abs_error" not in measured or "worst" not in measured:
        return None
    worst = measured["worst"]
    excess = float(worst[0]["excess"]) if worst else 0.0
    return excess if math.isfinite(excess) else None


def run_flake(*, case: str = "small", repeats: int = 2, levels: tuple[str, ...] = (
        "L0", "L1", "L2", "L3", "L4"), backends: tuple[str, ...] = ("tensorflow", "torch"),
        seed: int = 0) -> FlakeReport:
    """Run the ladder ``repeats`` times on the same seed and compare the verdicts."""
    from parity.engine import RunPlan, run_parity
    from parity.session import resolve_inputs

    if repeats < 2:
        raise ValueError(f"--repeat {repeats}: a flake check needs at least 2 runs")
    container, model, train, sizing = resolve_inputs(case=case, container_path=None,
                                                     model_overrides={}, train_overrides={},
                                                     seed=seed)
    verdicts: list[dict[str, str]] = []
    ratios: dict[str, list[float]] = {}
    codes = []
    with tempfile.TemporaryDirectory(prefix="parity-flake-") as tmp:
        for i in range(repeats):
            plan = RunPlan(container=container, model=model, train=train, backends=backends,
                           levels=levels, seed=seed, sizing=sizing)
            result, _ = run_parity(plan, Path(tmp) / f"run{i}")
            codes.append(result.exit_code)
            verdicts.append({c.name: c.verdict for c in result.checks})
            for check in result.checks:
                ratio = _ratio(check)
                if ratio is not None:
                    ratios.setdefault(check.name, []).append(ratio)
    names = sorted(set().union(*verdicts))
    changed = [n for n in names if len({v.get(n) for v in verdicts}) > 1]
    spread = {n: {"min": min(r), "max": max(r)} for n, r in ratios.items()}
    return FlakeReport(repeats, not changed and len(set(codes)) == 1, changed, codes, spread)


def add_flake_command(sub: Any) -> None:
    """Register ``parity flake``."""
    parser = sub.add_parser(
        "flake", help="repeat a run; report verdict stability and spread",
        description="Repeat a run on one seed; exit 0 when every verdict repeats, 1 when one "
                    "changed, 3 when a run had a backend fail, 2 for a bad option.")
    parser.add_argument("--case", default="small", help="built-in case (default: small)")
    parser.add_argument("--repeat", type=int, default=3, help="runs to make (>= 2; default 3)")
    parser.add_argument("--levels", default="L0,L1,L2,L3,L4",
                        help="comma list of L0..L5, or 'all' (as for `parity run`)")
    parser.add_argument("--json", default=None,
                        help="also write the report as JSON to this file (replaced if it exists)")
    parser.set_defaults(func=_cmd_flake)


def _cmd_flake(args: argparse.Namespace) -> int:
    """Exit 0 when every verdict repeats, 1 when one changed, 3 when a run had a backend fail
    (its verdicts say nothing about flakiness)."""
    from parity.cli_options import output_file, parse_levels

    levels = parse_levels(args.levels)
    json_path = output_file(args.json, option="--json") if args.json else None
    report = run_flake(case=args.case, repeats=args.repeat, levels=levels)
    print(report.text())
    if json_path is not None:
        json_path.write_text(json.dumps(jsonable(report.__dict__), indent=1, allow_nan=False))
    failed = [i for i, code in enumerate(report.exit_codes) if code in (3, 4)]
    if failed:
        print(f"run(s) {failed} did not complete (a backend failed, exit 3, or the harness, exit "
              "4): the repeats cannot show whether the verdicts are stable")
        return 3
    return 0 if report.identical else 1
