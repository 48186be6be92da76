"""The ``parity`` entry point (parity/cli.py): the parser loads no framework, an unknown command
exits 2, a closed stdout pipe exits quietly. Each sub-command is tested with its module:
test_cli_run.py, test_cli_inputs.py, test_cli_bundles.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from parity.cli import EXIT_USAGE, main


def test_help_loads_no_framework():
    code = ("import sys\nfrom parity.cli import build_parser\nbuild_parser().format_help()\n"
            "bad = [m for m in ('tensorflow', 'torch') if m in sys.modules]\n"
            "raise SystemExit(1 if bad else 0)")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_unknown_subcommand_exits_2():
    assert main(["frobnicate"]) == EXIT_USAGE


def test_a_closed_stdout_pipe_exits_quietly(tmp_path: Path):
    """``parity cases | head -1``: the reader leaves early; no traceback, the SIGPIPE status."""
    code = ("import sys\nfrom parity.cli import main\n"
            "sys.exit(main(['cases']))")
    reader = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, cwd=tmp_path)
    reader.stdout.close()  # nobody reads: the first write breaks the pipe
    _, stderr = reader.communicate(timeout=60)
    assert reader.returncode == 141, stderr
    assert b"Traceback" not in stderr
