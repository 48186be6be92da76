"""The bundle commands of ``parity`` (parity/cli_bundles.py); ``show`` and ``diff`` on real
bundles are in report/test_runs.py and report/test_diff.py."""

from __future__ import annotations

from pathlib import Path

from parity.cli import main


def test_list_on_an_empty_root(tmp_path: Path, capsys):
    assert main(["list", "--out", str(tmp_path)]) == 0
    assert "no complete runs" in capsys.readouterr().out


def test_help_of_list_show_diff_explains_out_run_names_and_exit_codes(capsys) -> None:
    texts = {}
    for command in ("list", "show", "diff"):
        assert main([command, "--help"]) == 0
        texts[command] = " ".join(capsys.readouterr().out.split())
    for text in texts.values():
        assert "--out OUT reports root holding the run bundles (default: reports)" in text
    for command in ("show", "diff"):
        assert "a unique prefix of one" in texts[command]
        assert "'latest' (the newest complete run) or -N (-1 newest" in texts[command]
    assert "[self-test: ...]" in texts["list"]
    assert "Exit 0 when the runs were compared, whatever changed" in texts["diff"]
    assert "2 for an unknown or ambiguous run" in texts["diff"]
