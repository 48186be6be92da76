"""The ``parity`` command: a thin layer over importable functions.

Exit codes (stable): 0 parity holds, 1 divergence beyond tolerance, 2 bad input or usage (one
``parity: error: ...`` line on stderr, never a traceback), 3 a backend failed to run, 4 an
internal error of the harness itself (with its traceback: a bug to report), 130 interrupted
(Ctrl-C), 143 terminated (SIGTERM), 141 the reader of stdout went away (``parity show | head``:
the shell's SIGPIPE status, quietly). An interrupted or terminated run writes no bundle.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

from parity.cli_options import check_device, parse_levels, parse_names, reports_dir

__all__ = [
    "EXIT_BACKEND_FAILED",
    "EXIT_BROKEN_PIPE",
    "EXIT_DIVERGENCE",
    "EXIT_INTERNAL",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_TERMINATED",
    "EXIT_USAGE",
    "main",
]

EXIT_OK = 0
EXIT_DIVERGENCE = 1
EXIT_USAGE = 2
EXIT_BACKEND_FAILED = 3
#: A harness bug; without it Python's own exit status 1 would read as "divergence".
EXIT_INTERNAL = 4
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143
EXIT_BROKEN_PIPE = 141

DEFAULT_REPORTS = Path("reports")


class UsageError(Exception):
    """Bad input or options (exit code 2)."""


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C would be, so that the same clean-up runs.

    A subclass of ``KeyboardInterrupt``: the runner kills the backend's process group and the
    bundle writer drops its staging directory for both alike.
    """


class _Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors become :class:`UsageError` (one line, exit 2).

    argparse's own ``error`` prints the usage block and exits; ``main`` prints one
    ``parity: error:`` line instead, the same as for every other bad input.
    """

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message} (see `{self.prog} --help`)")


def _one_line(message: object) -> str:
    return "; ".join(line.strip() for line in str(message).splitlines() if line.strip())


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
    import json

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


def _progress_printer(quiet: bool) -> Any:
    def show(event: dict[str, Any]) -> None:
        if quiet:
            return
        backend = event.get("backend", "?")
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

    injections = {}
    for item in args.inject or []:
        if "=" not in item:
            raise UsageError(f"--inject {item!r}: expected BACKEND=INJECTION")
        backend, name = item.split("=", 1)
        injections[backend] = name
    backends = parse_names(args.backends)
    levels = parse_levels(args.levels)
    seeds = _parse_seeds(args.seeds, levels)
    device = check_device(args.device)
    reports_root = reports_dir(args.out)
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
    print(f"verdict: {result.verdict} (exit {result.exit_code})")
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
            print(f"backend {run.backend}: {run.status}: {first_line}{log}")
    print(f"report: {bundle}")
    return result.exit_code


def cmd_cases(args: argparse.Namespace) -> int:
    """``parity cases``: list the built-in cases."""
    from fixtures.cases import case_names, get_case

    for name in case_names():
        case = get_case(name)
        print(f"{name:14s} {case.description}")
    return EXIT_OK


def cmd_fixtures(args: argparse.Namespace) -> int:
    """``parity fixtures``: list the cases, or write one to an NPZ container file.

    The case name, the seed and the output file are checked before the case is built: the output
    must be a ``.npz`` file name in an existing, writable directory, and an existing file is
    replaced only with ``--force``.
    """
    from fixtures.cases import build_case, get_case
    from parity.cli_options import output_file
    from parity.io.container_npz import write_npz

    if args.write is None:
        return cmd_cases(args)
    get_case(args.write)  # an unknown case is named before anything else
    if args.seed < 0:
        raise UsageError(f"--seed {args.seed}: expected an integer >= 0")
    target = output_file(args.output or f"{args.write}.npz", option="--output")
    if target.suffix.lower() != ".npz":
        raise UsageError(f"--output {str(target)!r}: fixtures writes a container NPZ; give a file "
                         "name ending in .npz")
    if target.exists() and not args.force:
        raise UsageError(f"--output {str(target)!r} already exists; choose another name, or pass "
                         "--force to replace it")
    container = build_case(args.write, seed=args.seed)
    path = write_npz(container, target)
    print(f"wrote {path} ({container.n_patterns} patterns, N={container.N}, "
          f"hash {container.content_hash()[:12]})")
    return EXIT_OK


def cmd_adapters(args: argparse.Namespace) -> int:
    """``parity adapters``: every registered backend adapter and where it comes from."""
    from parity.registry import adapter_table

    for name, target, source in adapter_table():
        print(f"{name:14s} {target:45s} {source}")
    return EXIT_OK


def cmd_list(args: argparse.Namespace) -> int:
    """``parity list``: past runs, newest last; then the bundles it skipped, and why."""
    from parity.report.runs import format_scan, scan_runs

    print(format_scan(scan_runs(Path(args.out))), end="")
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    """``parity show RUN``: a run's summary."""
    from parity.report.runs import resolve_run, show_run

    print(show_run(resolve_run(Path(args.out), args.run)))
    return EXIT_OK


def cmd_diff(args: argparse.Namespace) -> int:
    """``parity diff A B``: what changed between two runs."""
    from parity.report.diff import diff_runs
    from parity.report.runs import resolve_run

    root = Path(args.out)
    print(diff_runs(resolve_run(root, args.a), resolve_run(root, args.b)))
    return EXIT_OK


def cmd_convert(args: argparse.Namespace) -> int:
    """``parity convert SRC DST``: container NPZ <-> ptychodus product (HDF5/NPZ).

    The source, the numeric options and the destination are checked before any conversion:
    DST may not be a directory, one of the inputs, or (without ``--force``) an existing file.
    Prints the path and the kind of file written.
    """
    import math

    from parity.cli_options import output_file
    from parity.io.convert import check_destination, convert, detect_format

    src = Path(args.src)
    src_kind = detect_format(src)  # a missing, unreadable or unknown source is named first
    for option, value in (("--nphotons", args.nphotons), ("--pixel-size-m", args.pixel_size_m),
                          ("--detector-distance-m", args.detector_distance_m),
                          ("--photon-energy-ev", args.photon_energy_ev)):
        if value is not None and not (math.isfinite(value) and value > 0):
            raise UsageError(f"{option} {value:g}: expected a finite number > 0")
    dst = output_file(args.dst, option="DST")
    inputs = [src] if args.diffraction is None else [src, Path(args.diffraction)]
    check_destination(dst, inputs=inputs, overwrite=args.force, force_option="--force")
    out = convert(src, dst, to=args.to, diffraction=args.diffraction,
                  nphotons=args.nphotons, pixel_size_m=args.pixel_size_m,
                  detector_distance_m=args.detector_distance_m,
                  photon_energy_eV=args.photon_energy_ev, overwrite=args.force)
    kind = detect_format(out)
    print(f"wrote {out} ({kind})")
    if src_kind.startswith("product-") and kind == "product-npz" and args.to is None:
        print("note: a ptychodus product holds no diffraction patterns, so this is a product NPZ; "
              "for a container NPZ pass --diffraction <container NPZ or ptychodus diffraction "
              "file>")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (importable for docs and tests)."""
    parser = _Parser(
        prog="parity",
        description="TensorFlow vs PyTorch parity harness for PtychoPINN reconstructions. "
                    "Exit codes: 0 parity, 1 divergence, 2 bad input/usage, 3 backend failed, "
                    "4 internal error, 130 interrupted, 143 terminated, 141 stdout closed.")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the stage ladder and write a report bundle")
    source = run.add_mutually_exclusive_group()
    source.add_argument("--case", default=None, help="built-in case (see `parity cases`); "
                        "default: 'default'")
    source.add_argument("--container", default=None, help="a container NPZ file instead of a case")
    run.add_argument("--levels", default="all", help="comma list of L0..L5, or 'all'")
    run.add_argument("--backends", default="tensorflow,torch",
                     help="comma list of adapters; the first is the baseline")
    run.add_argument("--device", default=None, help="device request, e.g. cpu or cuda")
    run.add_argument("--seed", type=int, default=0, help="seed of stage inputs and weights")
    run.add_argument("--seeds", default=None, metavar="S1,S2,...",
                     help="L5 multi-seed mode: a comma list of at least 2 distinct training seeds "
                          "(e.g. 0,1,2; not a count). Each backend trains once per seed "
                          "(TrainConfig.seed = that seed) and L5 is judged by a paired "
                          "equivalence test (TOST) per metric, with the margins pre-registered "
                          "in parity/tolerances.toml [[equivalence]]; L0-L4 stay single-seed. "
                          "Needs level L5; default: one training with train.seed")
    run.add_argument("--sequential", action="store_true",
                     help="run the backends one after another with every core each, instead of "
                          "side by side with the cores shared out (the default)")
    run.add_argument("--model", action="append", metavar="KEY=VALUE",
                     help="ModelConfig override (repeatable)")
    run.add_argument("--train", action="append", metavar="KEY=VALUE",
                     help="TrainConfig override (repeatable), e.g. epochs=3")
    run.add_argument("--timeout", type=float, default=900.0,
                     help="per-backend timeout, s (default 900)")
    run.add_argument("--isolation", choices=("subprocess", "inprocess"), default="subprocess")
    run.add_argument("--inject", action="append", metavar="BACKEND=INJECTION",
                     help="apply a known port bug to one backend (self-test)")
    run.add_argument("--out", default=str(DEFAULT_REPORTS), help="reports root")
    run.add_argument("--quiet", action="store_true", help="no progress lines")
    run.set_defaults(func=cmd_run)

    adapters = sub.add_parser("adapters", help="list the registered backend adapters")
    adapters.set_defaults(func=cmd_adapters)

    cases = sub.add_parser("cases", help="list built-in cases")
    cases.set_defaults(func=cmd_cases)

    fixtures = sub.add_parser("fixtures", help="list cases or write one as a container NPZ")
    fixtures.add_argument("--write", metavar="CASE", default=None)
    fixtures.add_argument("--output", "-o", default=None,
                          help="container NPZ to write (a .npz name in an existing directory); "
                               "default: CASE.npz")
    fixtures.add_argument("--seed", type=int, default=0, help="seed of the case (>= 0)")
    fixtures.add_argument("--force", action="store_true",
                          help="replace an existing output file (default: refuse)")
    fixtures.set_defaults(func=cmd_fixtures)

    for name, func, help_text in (("list", cmd_list, "list past runs"),):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--out", default=str(DEFAULT_REPORTS))
        p.set_defaults(func=func)
    show = sub.add_parser("show", help="show a run's summary (path, name, prefix or 'latest')")
    show.add_argument("run", nargs="?", default="latest")
    show.add_argument("--out", default=str(DEFAULT_REPORTS))
    show.set_defaults(func=cmd_show)
    diff = sub.add_parser("diff", help="what changed between two runs")
    diff.add_argument("a")
    diff.add_argument("b", nargs="?", default="latest")
    diff.add_argument("--out", default=str(DEFAULT_REPORTS))
    diff.set_defaults(func=cmd_diff)

    convert = sub.add_parser("convert", help="convert container NPZ <-> ptychodus product")
    convert.add_argument("src", help="container NPZ or ptychodus product (HDF5/NPZ)")
    convert.add_argument("dst", help="file to write (in an existing directory; never SRC): "
                                     ".h5/.hdf5/.hdf -> product HDF5; "
                                     ".npz -> a product NPZ from a container, a container NPZ "
                                     "from a product with --diffraction (without it: a product "
                                     "NPZ)")
    convert.add_argument("--to", choices=("container-npz", "product-h5", "product-npz"), default=None,
                         help="output kind when the suffix is ambiguous (it must still match: "
                              ".npz for the NPZ kinds, .h5/.hdf5/.hdf for product-h5)")
    convert.add_argument("--diffraction", default=None,
                         help="patterns to pair with a product, needed for a container: a "
                              "container NPZ or a ptychodus diffraction file")
    convert.add_argument("--nphotons", type=float, default=None,
                         help="container photon count (> 0); default: the pattern source's")
    convert.add_argument("--pixel-size-m", type=float, default=None,
                         help="object pixel size in metres (> 0), if the container lacks it")
    convert.add_argument("--detector-distance-m", type=float, default=None,
                         help="sample-detector distance in metres (> 0), if the container lacks it")
    convert.add_argument("--photon-energy-ev", type=float, default=None,
                         help="photon energy in eV (> 0), if the container lacks it")
    convert.add_argument("--force", action="store_true",
                         help="replace an existing DST (default: refuse; DST is never SRC)")
    convert.set_defaults(func=cmd_convert)

    from parity.cli_extra import add_extra_commands

    add_extra_commands(sub)
    return parser


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise _Terminated(f"signal {signal.Signals(signum).name}")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``parity`` console script; returns the exit code (see module doc)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help and --version exit 0 through argparse
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    except UsageError as err:
        print(f"parity: error: {_one_line(err)}", file=sys.stderr)
        return EXIT_USAGE
    try:  # only the main thread may set handlers (main() may be called from a test's thread)
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
        installed = True
    except ValueError:
        previous, installed = None, False
    try:
        code = int(args.func(args))
        sys.stdout.flush()  # a closed pipe breaks here, inside the handlers below
        return code
    except (UsageError, ValueError, FileNotFoundError) as err:
        print(f"parity: error: {_one_line(err)}", file=sys.stderr)
        return EXIT_USAGE
    except _Terminated:
        print("parity: terminated (SIGTERM); no bundle was written for this run",
              file=sys.stderr)
        return EXIT_TERMINATED
    except KeyboardInterrupt:
        print("parity: interrupted; no bundle was written for this run", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # Python would report the failed flush of the closed pipe again at exit.
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except Exception as err:  # a harness bug: say so, keep the traceback, and do not exit 1
        traceback.print_exc()
        print(f"parity: internal error ({type(err).__name__}: {_one_line(err)}); this is a "
              "bug in the harness, not a verdict", file=sys.stderr)
        return EXIT_INTERNAL
    finally:
        if installed:
            signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


if __name__ == "__main__":
    sys.exit(main())
