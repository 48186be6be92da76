"""Self-test: prove the gate catches each classic port bug at its stage, and passes the clean pair.

For every injection in :data:`parity.injections.INJECTIONS`, run the ladder (levels L0-L3: every
injection is expected by L3) with the bug applied to ONE backend, and check that the run exits 1
and that its first divergent check is at the expected level. The unmodified baseline job is run
once and reused from a cache for all injections. The detection rate is reported.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from parity.injections import INJECTIONS

__all__ = ["SELFTEST_LEVELS", "SelftestOutcome", "add_selftest_command", "run_selftest"]

#: Levels the self-test evaluates (no training: every injection is expected by L3).
SELFTEST_LEVELS = ("L0", "L1", "L2", "L3")


@dataclass(frozen=True)
class SelftestOutcome:
    """One self-test row.

    Attributes
    ----------
    injection : str
        ``clean`` for the unmodified pair, else the injection name.
    expected_level : str or None
        Where it must be caught (None for ``clean``: must pass).
    exit_code : int
        Exit code of the run.
    first_divergence : str or None
        Name of the first failed check.
    caught : bool
        True when the outcome is what the self-test requires.
    """

    injection: str
    expected_level: str | None
    exit_code: int
    first_divergence: str | None
    first_level: str | None
    caught: bool

    def line(self) -> str:
        """One line for the console."""
        status = "OK  " if self.caught else "MISS"
        where = self.first_divergence or "no divergence"
        expect = f"expected {self.expected_level}" if self.expected_level else "expected parity"
        return f"{status} {self.injection:20s} exit {self.exit_code} ({expect}); first: {where}"


def run_selftest(*, case: str = "small", target: str = "torch", baseline: str = "tensorflow",
                 injections: list[str] | None = None, seed: int = 0,
                 timeout_s: float = 600.0, progress: Any = None,
                 announce: Callable[[str], None] | None = None) -> list[SelftestOutcome]:
    """Run the clean pair and each injection; return one outcome per run (clean first).

    ``progress`` receives each run's events (as ``parity run``'s); ``announce``, when given, one
    line as each run starts (``selftest [2/9] offset_sign into torch ...``) and one as it ends
    (``selftest [2/9] OK   offset_sign ... (41 s)``).
    """
    from parity.engine import RunPlan, run_parity
    from parity.registry import check_backend_names
    from parity.session import resolve_inputs

    check_backend_names((baseline, target), what=f"--baseline {baseline!r} / --target {target!r}")
    names = injections or list(INJECTIONS)
    unknown = [n for n in names if n not in INJECTIONS]
    if unknown:
        raise ValueError(f"--only: unknown injection(s) {unknown}; known: {', '.join(INJECTIONS)}")
    container, model, train, sizing = resolve_inputs(case=case, container_path=None,
                                                     model_overrides={}, train_overrides={},
                                                     seed=seed)
    outcomes: list[SelftestOutcome] = []
    runs = ["clean", *names]
    tell = announce or (lambda line: None)
    with tempfile.TemporaryDirectory(prefix="parity-selftest-") as tmp:
        cache = Path(tmp) / "cache"
        for number, name in enumerate(runs, start=1):
            counter = f"selftest [{number}/{len(runs)}]"
            what = "clean pair" if name == "clean" else f"{name} into {target}"
            tell(f"{counter} {what} ({', '.join(SELFTEST_LEVELS)}) ...")
            started = time.monotonic()
            plan = RunPlan(container=container, model=model, train=train,
                           backends=(baseline, target), levels=SELFTEST_LEVELS, seed=seed,
                           timeout_s=timeout_s, injections={} if name == "clean"
                           else {target: name}, sizing=sizing, cache_dir=cache)
            result, _ = run_parity(plan, Path(tmp) / name, progress=progress)
            first = result.first_divergence
            expected = None if name == "clean" else INJECTIONS[name].expected_level
            if name == "clean":
                caught = result.exit_code == 0
            else:
                caught = result.exit_code == 1 and first is not None and first.level == expected
            outcomes.append(SelftestOutcome(name, expected, result.exit_code,
                                            first.name if first else None,
                                            first.level if first else None, caught))
            tell(f"{counter} {outcomes[-1].line()} ({time.monotonic() - started:.0f} s)")
    return outcomes


def _stderr_line(line: str) -> None:
    """Print one progress line to stderr at once (stdout keeps the results)."""
    print(line, file=sys.stderr, flush=True)


def add_selftest_command(sub: Any) -> None:
    """Register ``parity selftest``."""
    parser = sub.add_parser(
        "selftest", help="inject known port bugs; prove each is caught",
        description="Run the clean pair and each injected port bug (L0-L3); exit 0 when the "
                    "clean pair passes and every bug is caught at its level, 1 otherwise, 3 when "
                    "the clean pair could not run, 2 for a bad option.")
    parser.add_argument("--case", default="small", help="built-in case (default: small)")
    parser.add_argument("--target", default="torch", help="backend that receives the bugs")
    parser.add_argument("--baseline", default="tensorflow", help="the reference backend")
    parser.add_argument("--only", action="append", metavar="INJECTION[,INJECTION...]",
                        help="run only these injections (repeatable, or a comma list)")
    parser.add_argument("--json", default=None,
                        help="also write the outcomes as JSON to this file (replaced if it exists)")
    parser.add_argument("--quiet", action="store_true",
                        help="no progress lines (one per run as it starts and ends, on stderr)")
    parser.set_defaults(func=_cmd_selftest)


def _cmd_selftest(args: argparse.Namespace) -> int:
    """Exit 0 when every injection is caught at its level and the clean pair passes; 3 when the
    clean pair could not run (a backend failed: nothing can be concluded); else 1."""
    from parity.cli_options import output_file, parse_names

    json_path = output_file(args.json, option="--json") if args.json else None
    only = [name for item in args.only or [] for name in parse_names(item)]
    if args.only is not None and not only:
        raise ValueError(f"--only {args.only}: no injection named")
    outcomes = run_selftest(case=args.case, target=args.target, baseline=args.baseline,
                            injections=only or None,
                            announce=None if args.quiet else _stderr_line)
    for outcome in outcomes:
        print(outcome.line())
    injected = [o for o in outcomes if o.injection != "clean"]
    caught = sum(o.caught for o in injected)
    clean_ok = outcomes[0].caught
    print(f"detection rate: {caught}/{len(injected)} injected divergences caught at their stage; "
          f"clean pair {'passes' if clean_ok else 'FAILS'}")
    if json_path is not None:
        json_path.write_text(json.dumps([o.__dict__ for o in outcomes], indent=1))
    sys.stdout.flush()
    if outcomes[0].exit_code == 3:
        print("the clean pair did not run (a backend failed; see its log): the self-test shows "
              "nothing", file=sys.stderr)
        return 3
    return 0 if clean_ok and caught == len(injected) else 1
