"""The bundle commands of ``parity`` (parity/cli_bundles.py); ``show`` and ``diff`` on real
bundles are in report/test_runs.py and report/test_diff.py."""

from __future__ import annotations

from pathlib import Path

from parity.cli import main


def test_list_on_an_empty_root(tmp_path: Path, capsys):
    assert main(["list", "--out", str(tmp_path)]) == 0
    assert "no complete runs" in capsys.readouterr().out
