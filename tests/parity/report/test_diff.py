"""Tests of parity.report.diff: what changed between two runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from parity.report import diff as diff_module
from parity.report.diff import diff_runs


def test_diff_runs(reports: Path) -> None:
    text = diff_runs(reports / "20240101T000000Z_lines64", reports / "20240102T000000Z_lines64")
    lines = text.splitlines()
    assert "Verdict (changed): parity (exit 0) -> divergence (exit 1)" in lines
    assert "First divergence: none -> L1/farfield_amplitude/amplitude[torch vs oracle]" in lines
    assert "  L1/farfield_amplitude/amplitude[torch vs oracle]: pass -> fail" in lines
    assert ("  L1/farfield_amplitude/amplitude[torch vs oracle] max_abs_err: 1.000e-07 -> "
            "5.000e-04 (+499900.0%)") in lines
    assert ("  L1/farfield_amplitude/amplitude[torch vs oracle] fraction_out: 0 -> 0.2 "
            "(from 0)") in lines
    assert not any("exit_wave" in line for line in lines)  # moved 5 %, under the 10 % bar
    # the largest relative changes first: from zero (unbounded), then +499900 %
    moved = lines[lines.index(next(x for x in lines if x.startswith("Measured values"))) + 1:]
    assert moved[0].endswith("(from 0)") and moved[1].endswith("(+499900.0%)")
    assert "  ~ git_rev: aaa -> bbb" in lines and "  ~ data_sha256: ff00 -> ee11" in lines
    assert not any("host" in line for line in lines)
    assert "  ~ torch.torch_version: 2.13.0 -> 2.14.0" in lines
    assert "Config: no change" in lines
    assert "Provenance: keys that differ: 2" in lines
    assert "Check counts: pass 3 -> 2, fail 0 -> 1" in lines
    assert "  torch.amp.ssim: 0.9 -> 0.8 (delta -0.1) (moved)" in lines
    same = diff_runs(reports / "20240101T000000Z_lines64", reports / "20240101T000000Z_lines64")
    assert "Verdict (unchanged)" in same and "Check counts: unchanged" in same
    assert "Checks whose verdict changed: none" in same


def test_only_the_largest_moves_are_listed(reports: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(diff_module, "MOVED_SHOWN", 1)
    text = diff_runs(reports / "20240101T000000Z_lines64", reports / "20240102T000000Z_lines64")
    lines = text.splitlines()
    start = lines.index(next(x for x in lines if x.startswith("Measured values")))
    assert lines[start + 1].endswith("(from 0)")
    assert lines[start + 2].startswith("  ... and ") and lines[start + 2].endswith(" more")


def test_diff_runs_rejects_bad_threshold(reports: Path) -> None:
    with pytest.raises(ValueError, match="rel_threshold is 0"):
        diff_runs(reports / "20240101T000000Z_lines64", reports / "20240102T000000Z_lines64",
                  rel_threshold=0)


def test_diff_says_when_both_sides_are_the_same_bundle(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], write_run, run_cli) -> None:
    write_run(tmp_path, "20240101T000000Z")
    latest = write_run(tmp_path, "20240102T000000Z", diverged=True)
    expected = f"both sides are the same bundle {latest.name}: nothing below can differ"
    assert diff_runs(latest, latest).splitlines()[0] == expected
    for argv in (["diff", "latest", "latest"], ["diff", latest.name], ["diff", "-1", str(latest)]):
        code, out, _ = run_cli(capsys, *argv, "--out", str(tmp_path))
        assert code == 0 and out.splitlines()[0] == expected
    code, out, _ = run_cli(capsys, "diff", "-2", "--out", str(tmp_path))
    assert code == 0 and out.startswith("diff 20240101T000000Z_lines64 -> ")


def test_diff_warns_about_runs_of_different_cases(tmp_path: Path, write_run) -> None:
    star = write_run(tmp_path, "20240101T000000Z", case="siemens-star")
    n128 = write_run(tmp_path, "20240102T000000Z", case="n128", diverged=True)
    lines = diff_runs(star, n128).splitlines()
    assert lines[0] == ("warning: the runs are of different cases: A is siemens-star, B is n128; "
                        "verdict changes below reflect that")
    assert lines[1] == f"diff {star.name} -> {n128.name}"
