"""The ``parity`` command: a thin layer over importable functions.

Exit codes (stable): 0 parity holds, 1 divergence beyond tolerance, 2 bad input or usage (one
``parity: error: ...`` line on stderr, never a traceback), 3 a backend failed to run, 4 an
internal error of the harness itself (with its traceback: a bug to report), 130 interrupted
(Ctrl-C), 143 terminated (SIGTERM), 141 the reader of stdout went away (``parity show | head``:
the shell's SIGPIPE status, quietly). An interrupted or terminated run writes no bundle.

This module holds the argument parser and the entry point (signals, exit codes, error lines);
the sub-commands live in ``parity.cli_run`` (``run``), ``parity.cli_inputs`` (``cases``,
``adapters``, ``fixtures``, ``convert``), ``parity.cli_bundles`` (``list``, ``show``, ``diff``)
and ``parity.cli_extra`` (``selftest``, ``bench``, ``flake``).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import traceback
from collections.abc import Sequence
from types import FrameType
from typing import NoReturn

from parity.cli_bundles import cmd_diff, cmd_list, cmd_show
from parity.cli_exit_codes import (
    EXIT_BACKEND_FAILED,
    EXIT_BROKEN_PIPE,
    EXIT_DIVERGENCE,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_TERMINATED,
    EXIT_USAGE,
    UsageError,
)
from parity.cli_inputs import cmd_adapters, cmd_cases, cmd_convert, cmd_fixtures
from parity.cli_options import DEFAULT_REPORTS
from parity.cli_run import cmd_run
from parity.results import DEFAULT_TIMEOUT_S

#: The exit codes are part of this entry point's interface (see the module doc) and stay
#: importable from here; they are defined, with ``UsageError``, in ``parity.cli_exit_codes``.
__all__ = [
    "DEFAULT_REPORTS",
    "EXIT_BACKEND_FAILED",
    "EXIT_BROKEN_PIPE",
    "EXIT_DIVERGENCE",
    "EXIT_INTERNAL",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_TERMINATED",
    "EXIT_USAGE",
    "build_parser",
    "main",
]



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
    run.add_argument("--timeout", type=float, default=None,
                     help=f"limit of each backend job, s (default {DEFAULT_TIMEOUT_S:g} per L5 "
                          f"training: {DEFAULT_TIMEOUT_S:g} x the number of --seeds)")
    run.add_argument("--isolation", choices=("subprocess", "inprocess"), default="subprocess")
    run.add_argument("--inject", action="append", metavar="BACKEND=INJECTION",
                     help="apply a known port bug to one backend (self-test; repeatable for "
                          "other backends, one injection per backend)")
    run.add_argument("--out", default=str(DEFAULT_REPORTS), help="reports root")
    run.add_argument("--quiet", action="store_true", help="no progress lines")
    run.set_defaults(func=cmd_run)

    adapters = sub.add_parser("adapters", help="list the registered backend adapters")
    adapters.set_defaults(func=cmd_adapters)

    cases = sub.add_parser("cases", help="list built-in cases")
    cases.set_defaults(func=cmd_cases)

    fixtures = sub.add_parser("fixtures", help="list cases or write one as a container NPZ")
    fixtures.add_argument("--write", metavar="CASE", default=None,
                          help="build the built-in case CASE (see `parity cases`) and write it as "
                               "a container NPZ for `parity run --container`; without it, list "
                               "the cases")
    fixtures.add_argument("--output", "-o", default=None,
                          help="container NPZ to write (a .npz name in an existing directory); "
                               "default: CASE.npz; needs --write")
    fixtures.add_argument("--seed", type=int, default=None,
                          help="seed of the case (>= 0, default 0; recorded in the file's "
                               "_metadata as provenance.fixture_seed); needs --write")
    fixtures.add_argument("--force", action="store_true",
                          help="replace an existing output file (default: refuse); needs --write")
    fixtures.set_defaults(func=cmd_fixtures)

    out_help = f"reports root holding the run bundles (default: {DEFAULT_REPORTS})"
    run_ref = ("a bundle path; a bundle name under --out; a unique prefix of one (e.g. its stamp "
               "20240101); 'latest' (the newest complete run) or -N (-1 newest, -2 the one "
               "before, ...)")
    damaged = ("a damaged bundle (no COMPLETE marker, a bad report.json, or a file missing or "
               "changed against the manifest in provenance.json; the first bad file is named)")
    listing = sub.add_parser(
        "list", help="list past runs",
        description="List the complete runs under --out, oldest first: verdict, exit code, "
                    "first divergence; runs with bugs injected on purpose end in [self-test: "
                    "...]. Then the bundles skipped as damaged, and why (here files are checked "
                    "by size; show and diff check their SHA-256 too). Exit 0; 2 when --out is "
                    "not a reports directory.")
    listing.add_argument("--out", default=str(DEFAULT_REPORTS), help=out_help)
    listing.set_defaults(func=cmd_list)
    show = sub.add_parser(
        "show", help="show a run's summary (path, name, prefix, 'latest' or -N)",
        description="Print a run's summary.md (a benchmark bundle's bench.md) once every file of "
                    "the bundle matches its manifest. Exit 0; 2 for an unknown or ambiguous run "
                    f"or {damaged}.")
    show.add_argument("run", nargs="?", default="latest", help=f"{run_ref}; default: latest")
    show.add_argument("--out", default=str(DEFAULT_REPORTS), help=out_help)
    show.set_defaults(func=cmd_show)
    diff = sub.add_parser(
        "diff", help="what changed between two runs",
        description="What changed from run A to run B: verdicts, checks, measured values, "
                    "config, provenance, environments, metrics. Exit 0 when the runs were "
                    "compared, whatever changed (read the Verdict line); 2 for an unknown or "
                    f"ambiguous run, a benchmark bundle, or {damaged}.")
    diff.add_argument("a", help=f"the older run A: {run_ref}")
    diff.add_argument("b", nargs="?", default="latest",
                      help="the newer run B, named likewise; default: latest")
    diff.add_argument("--out", default=str(DEFAULT_REPORTS), help=out_help)
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
                         help="product -> container only: patterns to pair with the product, "
                              "needed for a container: a container NPZ or a ptychodus "
                              "diffraction file")
    convert.add_argument("--nphotons", type=float, default=None,
                         help="product -> container only: container photon count (> 0); "
                              "default: the pattern source's, else the product's record, else "
                              "estimated")
    convert.add_argument("--object-as-truth", action="store_true",
                         help="product -> container only: keep the product's object as the "
                              "container's objectGuess (ground truth); use it when the object "
                              "is the truth (a product written by convert from a container with "
                              "objectGuess: comments say 'object = ground truth'), not for a "
                              "reconstruction")
    convert.add_argument("--pixel-size-m", type=float, default=None,
                         help="container -> product only: object pixel size in metres (> 0), if "
                              "the container lacks it (a recorded one may be repeated, not changed)")
    convert.add_argument("--detector-distance-m", type=float, default=None,
                         help="container -> product only: sample-detector distance in metres "
                              "(> 0), if the container lacks it")
    convert.add_argument("--photon-energy-ev", type=float, default=None,
                         help="container -> product only: photon energy in eV (> 0), if the "
                              "container lacks it")
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
