"""The ``parity`` command: usage errors exit 2, listings work without any framework loaded."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from parity.cli import EXIT_USAGE, main
from parity.io.container_npz import read_npz


def test_help_loads_no_framework():
    code = ("import sys\nfrom parity.cli import build_parser\nbuild_parser().format_help()\n"
            "bad = [m for m in ('tensorflow', 'torch') if m in sys.modules]\n"
            "raise SystemExit(1 if bad else 0)")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_cases_lists_the_default_case(capsys):
    assert main(["cases"]) == 0
    out = capsys.readouterr().out
    assert "default" in out and "small" in out


def test_fixtures_writes_a_readable_container(tmp_path, capsys):
    target = tmp_path / "small.npz"
    assert main(["fixtures", "--write", "small", "-o", str(target)]) == 0
    container = read_npz(target)
    assert container.metadata.name == "small"
    assert container.object_truth is not None
    assert np.isfinite(container.diffraction).all()


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["run", "--case", "no-such-case"], "unknown case"),
        (["run", "--backends", "tensorflow,nonexistent", "--case", "small"], "unknown backend"),
        (["run", "--levels", "L9", "--case", "small"], "unknown level"),
        (["run", "--train", "epochs=0", "--case", "small"], "epochs=0"),
        (["run", "--model", "colour=blue", "--case", "small"], "unknown ModelConfig"),
        (["run", "--inject", "torch=no-such-bug", "--case", "small"], "unknown injection"),
        (["run", "--train", "epochs=1", "--train", "epochs=2", "--case", "small"],
         "--train epochs: given twice"),
        (["run", "--levels", "L5", "--seeds", "0,1", "--train", "seed=7", "--case", "small"],
         "--train seed=7 has no effect with --seeds 0,1"),
        (["run", "--levels", "L5", "--train", "validation_fraction=0.999", "--case", "small"],
         "validation_fraction=0.999 leaves no training group"),
        (["run", "--train", "learning_rate=nan", "--case", "small", "--levels", "L0"],
         "learning_rate"),
        (["run", "--model", "gridsize=3", "--case", "small", "--levels", "L0"],
         "gridsize=3 groups C=9 positions"),
    ],
)
def test_bad_options_exit_2_with_a_named_problem(argv, needle, capsys, tmp_path):
    assert main([*argv, "--out", str(tmp_path)]) == EXIT_USAGE
    assert needle in capsys.readouterr().err
    assert not any(tmp_path.iterdir()), "a rejected run must not write a bundle"


def test_unreadable_container_exits_2(tmp_path, capsys):
    bad = tmp_path / "broken.npz"
    bad.write_bytes(b"PK\x03\x04 truncated")
    assert main(["run", "--container", str(bad), "--out", str(tmp_path / "r")]) == EXIT_USAGE
    assert "broken.npz" in capsys.readouterr().err


def test_missing_container_exits_2(tmp_path, capsys):
    assert main(["run", "--container", str(tmp_path / "nope.npz")]) == EXIT_USAGE
    assert "nope.npz" in capsys.readouterr().err


def test_unknown_subcommand_exits_2():
    assert main(["frobnicate"]) == EXIT_USAGE


def test_list_on_an_empty_root(tmp_path: Path, capsys):
    assert main(["list", "--out", str(tmp_path)]) == 0
    assert "no complete runs" in capsys.readouterr().out


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
