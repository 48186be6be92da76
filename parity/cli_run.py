"""``parity run``: the stage ladder on a case or a container file, and its own options.

The options ``run`` shares with other sub-commands (levels, backends, device, reports root) are
parsed by :mod:`parity.cli_options`; the ones only ``run`` has (``--seeds``, ``--model`` /
``--train`` overrides, ``--inject``) are parsed here, before any work.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

from parity.cli_exit_codes import UsageError
from parity.cli_options import check_device, parse_levels, parse_names, reports_dir
from parity.results import injection_notice

__all__ = ["cmd_run"]


def _parse_seeds(text: str | None, levels: tuple[str, ...]) -> tuple[int, ...]:
    """``--seeds 0,1,2`` -> ``(0, 1, 2)``; None -> ``()`` (single-seed mode)."""
    if text is None:
        return ()
    parts = [part.strip() for part in text.split(",") if part.strip()]
    if not all(part.isdigit() for part in parts):
        raise UsageError(f"--seeds {text!r}: expected a comma list of integers >= 0, e.g. 0,1,2")
    seeds = tuple(int(part) for part in parts)
    if len(seeds) < 2 or len(set(seeds)) != len(seeds):
        raise UsageError(f"--seeds {text!r}: the equivalence test needs at least 2 distinct "
                         "seeds, e.g. 0,1,2")
    if "L5" not in levels:
        raise UsageError(f"--seeds {text!r} needs level L5 (only L5 trains once per seed); "
                         f"--levels gave {','.join(levels)}")
    return seeds


#: Values typed the Python way that JSON spells otherwise (``True``, ``nan``, ``inf``).
_PYTHON_SPELLINGS: dict[str, Any] = {"true": True, "false": False, "nan": float("nan"),
                                     "inf": float("inf"), "-inf": float("-inf"),
                                     "none": None}


def _parse_overrides(items: Sequence[str] | None, what: str) -> dict[str, Any]:
    """``--model``/``--train`` ``KEY=VALUE`` items -> a dict; each value JSON, else a string.

    ``what`` is the option's name without its dashes, for the messages.
    """
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise UsageError(f"--{what} {item!r}: expected KEY=VALUE")
        key, value = (part.strip() for part in item.split("=", 1))
        if key in out:
            raise UsageError(f"--{what} {key}: given twice ({out[key]!r} and {value!r})")
        try:
            out[key] = json.loads(value)
        except ValueError:
            # Python spellings a user types for JSON's true/false/NaN/Infinity
            out[key] = _PYTHON_SPELLINGS.get(value.lower(), value)
    return out


def _parse_injections(items: Sequence[str] | None) -> dict[str, str]:
    """``--inject BACKEND=INJECTION`` items -> ``{backend: injection}``.

    One injection per backend: a job carries a single injection name, and two injected bugs
    would blur which one the ladder caught, so a repeated backend is a usage error.
    """
    injections: dict[str, str] = {}
    for item in items or []:
        if "=" not in item:
            raise UsageError(f"--inject {item!r}: expected BACKEND=INJECTION")
        backend, name = (part.strip() for part in item.split("=", 1))
        if backend in injections:
            raise UsageError(f"--inject {item!r}: {backend} injected twice "
                             f"({injections[backend]!r} and {name!r}); one injection per backend")
        injections[backend] = name
    return injections


def _progress_printer(quiet: bool) -> Callable[[dict[str, Any]], None]:
    """The run's progress callback: one stderr line per backend/task event (none if quiet)."""
    def show(event: dict[str, Any]) -> None:
        if quiet:
            return
        backend = event.get("backend", "?")
        if event.get("job"):  # a backend's extra job: its noise floor, its L5 cross-inference
            backend = f"{backend}, job {event['job']}"
        kind = event.get("event")
        if kind == "epoch":
            parts = [f"epoch {int(event.get('epoch', 0)) + 1}"]
            for key in ("loss", "val_loss", "lr"):
                if key in event and event[key] is not None:
                    parts.append(f"{key}={float(event[key]):.5g}")
            print(f"  [{backend}] " + " ".join(parts), file=sys.stderr, flush=True)
        elif kind == "start":
            print(f"  [{backend}] {event.get('task')} ...", file=sys.stderr, flush=True)
        elif kind == "end":
            print(f"  [{backend}] {event.get('task')} {event.get('status')} "
                  f"({float(event.get('seconds', 0)):.1f} s)", file=sys.stderr, flush=True)
        elif kind == "backend-end":
            print(f"[{backend}] finished: {event.get('status')} "
                  f"({float(event.get('seconds', 0)):.1f} s)", file=sys.stderr, flush=True)
        elif kind == "backend-start":
            print(f"[{backend}] starting tasks {', '.join(event.get('tasks', []))}",
                  file=sys.stderr, flush=True)

    return show


def cmd_run(args: argparse.Namespace) -> int:
    """``parity run``: the ladder on a case or a container file; writes a bundle."""
    from parity.session import run_and_report

    injections = _parse_injections(args.inject)
    backends = parse_names(args.backends)
    levels = parse_levels(args.levels)
    seeds = _parse_seeds(args.seeds, levels)
    device = check_device(args.device)
    reports_root = reports_dir(args.out)
    notice = injection_notice(injections)
    if notice:
        print(notice, flush=True)
    bundle, result = run_and_report(
        case=args.case, container_path=args.container, levels=levels, seeds=seeds,
        backends=backends, device=device, seed=args.seed,
        model_overrides=_parse_overrides(args.model, "model"),
        train_overrides=_parse_overrides(args.train, "train"),
        reports_root=reports_root, timeout_s=args.timeout, isolation=args.isolation,
        injections=injections, progress=_progress_printer(args.quiet),
        parallel=not args.sequential,
    )
    first = result.first_divergence
    print(f"verdict: {result.verdict} (exit {result.exit_code})"
          + (" [self-test run: see the notice above]" if notice else ""))
    tests = [c for c in result.checks if c.stage == "equivalence"]
    if tests:
        equivalent = sum(1 for c in tests if c.verdict == "pass")
        print(f"equivalence over seeds {list(seeds)}: {equivalent} of {len(tests)} "
              "backend/metric tests equivalent (TOST)")
    if first is not None:
        print(f"first divergent stage: {first.name}: {first.message}")
    known = [c for c in result.checks if c.verdict == "known"]
    if known:  # allowed, not gating: a reviewer must still see them
        print(f"known divergences (within an allowance of the registry): {len(known)}: "
              + "; ".join(c.name for c in known[:10]) + ("; ..." if len(known) > 10 else ""))
    for warning in result.warnings[:10]:
        print(f"warning: {warning}")
    if len(result.warnings) > 10:
        print(f"... and {len(result.warnings) - 10} more warnings in the report")
    for run in result.backend_runs:
        if run.failed:
            first_line = run.message.splitlines()[0] if run.message else ""
            first_line = first_line.removesuffix("; log tail:")  # the tail is in the log
            log = f" (log: {bundle / run.log_path})" if run.log_path else ""
            hint = "; --timeout raises the limit" if run.status == "timeout" else ""
            print(f"backend {run.backend}: {run.status}: {first_line}{hint}{log}")
    print(f"report: {bundle}")
    return result.exit_code
