"""The sub-commands that read past report bundles: ``list``, ``show`` and ``diff``.

Each takes the reports root as ``--out`` and names runs as :func:`parity.report.runs.resolve_run`
understands them (a path, a bundle name, a prefix, ``latest`` or ``-N``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from parity.cli_exit_codes import EXIT_OK

__all__ = ["cmd_diff", "cmd_list", "cmd_show"]


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
    """``parity diff A B``: what changed between two runs.

    Exit 0 whenever the runs were compared, whatever changed (the Verdict line says whether the
    verdict did): 1 would read as "divergence" and 2 is bad input. Bad input (an unknown run, a
    damaged or benchmark bundle) raises, and the CLI exits 2.
    """
    from parity.report.diff import diff_runs
    from parity.report.runs import resolve_run

    root = Path(args.out)
    print(diff_runs(resolve_run(root, args.a), resolve_run(root, args.b)))
    return EXIT_OK
