"""Flake check: repeat one run N times; are all verdicts identical, and how close is each measured
error to its tolerance?

Each repeat runs every backend afresh (no cache). The report lists checks whose verdict changed
between repeats (a flaky gate) and, per check, the spread over the repeats of how close it came to
failing under the rule that decides it (:func:`_ratio`; 1 is the edge), so a tolerance change is
argued from data. The case, levels and seed are recorded with it.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from parity.judge import fraction_rule_applies, norm_rule_applies
from parity.results import jsonable

__all__ = ["RULES", "FlakeReport", "add_flake_command", "run_flake"]

#: How :func:`_ratio` measured a check -> what its ratio is, for the report. ``bound``: the worst
#: element's error over its own bound ``atol + rtol |expected|``; ``fraction``: a tolerance with a
#: ``max_fraction`` that some elements exceeded passes while the fraction of elements out stays
#: within it (:class:`parity.judge.Judge`), so the ratio is that fraction over the allowed one;
#: ``norm``: a tolerance with a ``max_relative_rmse`` passes such a check while the whole array's
#: relative RMS error stays within it.
RULES: dict[str, str] = {"bound": "max error / bound",
                         "fraction": "fraction out / allowed fraction",
                         "norm": "relative RMS error / allowed"}


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
        Check name -> ``{"min", "max", "rule"}``: the range over the runs of the check's
        :func:`_ratio` (1 is the edge of failing), and the rule it measures (a key of
        :data:`RULES`; ``"bound, fraction"`` when the runs differ).
    case : str
        Built-in case run.
    levels : tuple[str, ...]
        Ladder levels run.
    seed : int
        Seed of every run.
    """

    repeats: int
    identical: bool
    changed: list[str]
    exit_codes: list[int]
    spread: dict[str, dict[str, Any]]
    case: str = "small"
    levels: tuple[str, ...] = ()
    seed: int = 0

    def text(self) -> str:
        """Human summary."""
        lines = [f"{self.repeats} runs of case {self.case}, levels {','.join(self.levels)}, seed "
                 f"{self.seed}; exit codes {self.exit_codes}: verdicts "
                 f"{'IDENTICAL' if self.identical else 'DIFFER'}"]
        lines += [f"  changed: {name}" for name in self.changed]
        worst = sorted(self.spread.items(), key=lambda kv: -kv[1]["max"])[:10]
        lines.append("closest to failing (ratio under the rule that decides the check, 1 = the "
                     "edge; min..max over runs):")
        lines += [f"  {name}: {s['min']:.3g} .. {s['max']:.3g} "
                  f"({', '.join(RULES.get(r, r) for r in s['rule'].split(', '))})"
                  for name, s in worst]
        return "\n".join(lines)


def _ratio(check: Any) -> tuple[float, str] | None:
    """How close an elementwise check came to failing, and the rule (a key of :data:`RULES`).

    ``bound``: the worst element's error over its own bound ``atol + rtol |expected|`` (the
    comparison's ``worst[0].excess``; 0 when every element matched exactly). ``fraction``: when
    some element is out (excess > 1) and the tolerance allows a fraction of elements out
    (:func:`parity.judge.fraction_rule_applies`), that rule decides the verdict, so the ratio is
    ``fraction_out / max_fraction``. ``norm``: likewise with a norm-wise bound
    (:func:`parity.judge.norm_rule_applies`), ``relative_rmse / max_relative_rmse``. Where both
    rules apply, the judge passes on either, so the ratio is the smaller. None for a check that
    is not elementwise (configs, curves, metrics) or a non-finite ratio.
    """
    measured = check.measured or {}
    if "max_abs_error" not in measured or "worst" not in measured:
        return None
    worst = measured["worst"]
    excess = float(worst[0]["excess"]) if worst else 0.0
    if excess <= 1.0:
        return (excess, "bound") if math.isfinite(excess) else None
    tolerance = check.tolerance or {}
    allowed = float(tolerance.get("max_fraction") or 0.0)
    norm = tolerance.get("max_relative_rmse")
    rules = []
    if fraction_rule_applies(measured, allowed):
        rules.append((float(measured["fraction_out"]) / allowed, "fraction"))
    if norm_rule_applies(measured, norm) and norm:
        rules.append((float(measured["relative_rmse"]) / float(norm), "norm"))
    if rules:
        return min(rules)
    return (excess, "bound") if math.isfinite(excess) else None


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
    ratios: dict[str, list[tuple[float, str]]] = {}
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
    spread = {n: {"min": min(v for v, _ in r), "max": max(v for v, _ in r),
                  "rule": ", ".join(sorted({rule for _, rule in r}))} for n, r in ratios.items()}
    return FlakeReport(repeats, not changed and len(set(codes)) == 1, changed, codes, spread,
                       case=case, levels=tuple(levels), seed=seed)


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
