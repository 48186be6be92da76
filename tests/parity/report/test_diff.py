"""Tests of parity.report.diff: what changed between two runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from parity.report import diff as diff_module
from parity.report.bundle import new_bundle_dir
from parity.report.diff import _metrics_diff, _relative_text, _value_text, diff_runs
from parity.results import RunResult


def test_diff_runs(reports: Path) -> None:
    text = diff_runs(reports / "20240101T000000Z_lines64", reports / "20240102T000000Z_lines64")
    lines = text.splitlines()
    assert "Verdict (changed): parity (exit 0) -> divergence (exit 1)" in lines
    assert "First divergence: none -> L1/farfield_amplitude/amplitude[torch vs oracle]" in lines
    assert "  L1/farfield_amplitude/amplitude[torch vs oracle]: pass -> fail" in lines
    assert ("  L1/farfield_amplitude/amplitude[torch vs oracle] max_abs_err: 1.000e-07 -> "
            "5.000e-04 (5000-fold)") in lines
    assert ("  L1/farfield_amplitude/amplitude[torch vs oracle] fraction_out: 0 -> 0.2 "
            "(from 0)") in lines
    assert not any("exit_wave" in line for line in lines)  # moved 5 %, under the 10 % bar
    # the largest relative changes first: from zero (unbounded), then 5000-fold
    moved = lines[lines.index(next(x for x in lines if x.startswith("Measured values"))) + 1:]
    assert moved[0].endswith("(from 0)") and moved[1].endswith("(5000-fold)")
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


def _write_levels(root: Path, stamp: str, result: RunResult, levels: tuple[str, ...],
                  drop: tuple[str, ...]) -> Path:
    """``result`` as a run of ``levels``, without the checks whose stage is in ``drop``."""
    checks = tuple(c for c in result.checks if c.level in levels and c.stage not in drop)
    run = RunResult(result.case, stamp, levels, result.backends, checks, result.backend_runs,
                    metrics=result.metrics, config=result.config, provenance=result.provenance)
    with new_bundle_dir(root, result.case, stamp=stamp) as writer:
        return writer.commit(run, {})


def test_runs_of_different_levels_count_absent_checks_apart(tmp_path: Path, make_result) -> None:
    """A check of a level B did not run is not a verdict change (was ``pass -> absent``); one
    that vanished from a level both ran is named."""
    result = make_result("20240101T000000Z", diverged=False)
    a = _write_levels(tmp_path, "20240101T000000Z", result, ("L0", "L1", "L2"), ())
    b = _write_levels(tmp_path, "20240102T000000Z", result, ("L0", "L1"), ("exit_wave",))
    lines = diff_runs(a, b).splitlines()
    assert lines[0].startswith("levels: L0-L2 -> L0,L1 (checks of a level one run did not cover")
    assert "Checks whose verdict changed: none" in lines
    assert not any("absent" in line for line in lines)
    start = lines.index("Checks in one run only: 2")
    assert lines[start + 1:start + 3] == ["  only in A: 2 (L1: 1, L2: 1)",
                                          "    L1/exit_wave/complex[torch vs oracle]"]
    assert not any(line.startswith("    L2/") for line in lines)


@pytest.mark.parametrize(("old", "new", "text"), [
    (1.0, 1.5, "+50.0%"),
    (1.0, 11.0, "+1000.0%"),  # FOLD_FROM itself is still a percentage
    (1.0, 12.0, "12-fold"),
    (1.427e-08, 1.205, "8.444e+07-fold"),  # was +8444288617.6%
    (-0.00409, 1.0, "244.5-fold, sign flipped"),
    (0.0, 3.0, "from 0"),
])
def test_huge_relative_changes_read_as_folds(old: float, new: float, text: str) -> None:
    assert _relative_text(old, new) == text


def test_a_cosine_near_one_prints_its_distance_from_one() -> None:
    assert _value_text("cosine_similarity", 0.999999999999999) == "1-1e-15"  # was 15 nines
    assert _value_text("x.cosine_similarity", 0.9) == "0.9"
    assert _value_text("max_abs_error", 0.999999999999999) == "0.999999999999999"


def test_metrics_in_one_run_only_are_counted_never_printed_as_n_a_to_n_a() -> None:
    old = {"torch": {"frc": {"resolution_px": None, "ssim": 0.9}, "mae": 0.1}}
    new = {"torch": {"mae": 0.1}}
    assert _metrics_diff(old, new, 0.1) == [
        "Metrics: values that changed: none; in one run only: 2",
        "  only in A: 2 (torch.frc: 2)"]
    assert _metrics_diff(new, new, 0.1) == ["Metrics: no change"]
