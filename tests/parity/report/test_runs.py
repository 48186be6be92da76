"""Tests of parity.report.runs: listing, showing, resolving and diffing bundles."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from parity.report import bundle as bundle_module
from parity.report.bundle import new_bundle_dir
from parity.report.runs import diff_runs, format_run_list, list_runs, resolve_run, show_run
from parity.results import BackendRun, Check, RunResult

TOL = {"atol": 1e-6, "reason": "f32 FFT"}


def _result(stamp: str, *, diverged: bool) -> RunResult:
    checks = (
        Check("L1", "exit_wave", "complex", "torch", "oracle", "pass",
              {"max_abs_err": 2e-8 if not diverged else 2.1e-8}, TOL),  # moved 5 %: not listed
        Check("L1", "farfield_amplitude", "amplitude", "torch", "oracle",
              "fail" if diverged else "pass",
              {"max_abs_err": 5e-4 if diverged else 1e-7, "fraction_out": 0.2 if diverged else 0.0},
              TOL),
        Check("L2", "network.encoded", "features", "pair", "tensorflow", "pass",
              {"max_abs_err": 1e-6}, TOL),
    )
    runs = (BackendRun("tensorflow", "ok", 1.0, environment={"tensorflow_version": "2.21.0"}),
            BackendRun("torch", "ok", 1.0,
                       environment={"torch_version": "2.13.0" if not diverged else "2.14.0"}))
    return RunResult(
        "lines64", stamp, ("L1", "L2"), ("tensorflow", "torch"), checks, runs,
        metrics={"torch": {"amp": {"ssim": 0.9 if not diverged else 0.8}}},
        config={"model": {"N": 64}, "sizing": "cpu-default"},
        provenance={"git_rev": "aaa" if not diverged else "bbb",
                    "data_sha256": "ff00" if not diverged else "ee11", "host": "ci"},
    )


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("reports")
    for stamp, diverged in (("20240101T000000Z", False), ("20240102T000000Z", True)):
        with new_bundle_dir(root, "lines64", stamp=stamp) as writer:
            writer.commit(_result(stamp, diverged=diverged), {})
    # things that must not be listed: a staging dir, an incomplete dir, a corrupt report, a file
    (root / ".staging-20240103T000000Z_lines64-1-abcd").mkdir()
    incomplete = root / "20240104T000000Z_lines64"
    incomplete.mkdir()
    (incomplete / "report.json").write_text("{}")
    corrupt = root / "20240105T000000Z_lines64"
    shutil.copytree(root / "20240101T000000Z_lines64", corrupt)
    (corrupt / "report.json").write_text("{not json")
    (root / "notes.txt").write_text("hello")
    return root


def test_list_runs_only_complete_oldest_first(reports: Path) -> None:
    runs = list_runs(reports)
    assert [r.name for r in runs] == ["20240101T000000Z_lines64", "20240102T000000Z_lines64"]
    assert runs[0].verdict == "parity" and runs[0].exit_code == 0
    assert runs[1].verdict == "divergence" and runs[1].exit_code == 1
    assert runs[1].first_divergence == "L1/farfield_amplitude/amplitude[torch vs oracle]"
    assert runs[1].counts["fail"] == 1 and runs[1].backends == ("tensorflow", "torch")
    assert list_runs(reports, case="other") == []
    assert list_runs(reports / "missing") == []
    table = format_run_list(runs)
    assert "20240102T000000Z_lines64" in table and "divergence" in table


@pytest.mark.parametrize("case", ["c", "run-3"])  # a case's own "-3" is not a suffix
def test_same_second_suffixes_sort_after_the_base(tmp_path: Path, case: str) -> None:
    stamp = "20240101T000000Z"
    for _ in range(11):  # "-10" and "-11" must sort after "-9", not after "-1"
        with new_bundle_dir(tmp_path, case, stamp=stamp) as writer:
            writer.commit(RunResult(case, stamp, (), (), (), ()), {})
    names = [r.name for r in list_runs(tmp_path)]
    assert names == [f"{stamp}_{case}"] + [f"{stamp}_{case}-{k}" for k in range(2, 12)]


def test_failed_cleanup_leaves_only_a_hidden_staging_dir(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(path: object) -> None:
        raise PermissionError(f"cannot remove {path}")

    monkeypatch.setattr(bundle_module.shutil, "rmtree", refuse)
    with pytest.raises(KeyboardInterrupt), new_bundle_dir(tmp_path, "lines64") as writer:
        writer.write_text("report-draft.txt", "half")
        raise KeyboardInterrupt
    assert [p.name.startswith(".staging-") for p in tmp_path.iterdir()] == [True]
    assert list_runs(tmp_path) == []


def test_show_run(reports: Path) -> None:
    text = show_run(reports / "20240102T000000Z_lines64")
    assert text.startswith("# Parity report: lines64")
    assert "**Verdict: DIVERGENCE** (exit code 1)" in text
    with pytest.raises(FileNotFoundError, match="no COMPLETE marker"):
        show_run(reports / "20240104T000000Z_lines64")
    with pytest.raises(ValueError, match="does not parse"):
        show_run(reports / "20240105T000000Z_lines64")
    with pytest.raises(FileNotFoundError, match="not a bundle directory"):
        show_run(reports / "nope")


def test_resolve_run(reports: Path) -> None:
    first, second = (reports / "20240101T000000Z_lines64", reports / "20240102T000000Z_lines64")
    assert resolve_run(reports, "latest") == second
    assert resolve_run(reports, "-1") == second
    assert resolve_run(reports, "-2") == first
    assert resolve_run(reports, "20240101") == first
    assert resolve_run(reports, first.name) == first
    assert resolve_run(reports, str(second)) == second
    with pytest.raises(FileNotFoundError, match="'-3': 2 complete runs"):
        resolve_run(reports, "-3")
    with pytest.raises(ValueError, match="ambiguous"):
        resolve_run(reports, "2024010")
    with pytest.raises(FileNotFoundError, match="no complete run '1999'"):
        resolve_run(reports, "1999")
    with pytest.raises(FileNotFoundError, match="no COMPLETE marker"):
        resolve_run(reports, str(reports / "20240104T000000Z_lines64"))


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


def test_diff_runs_rejects_bad_threshold(reports: Path) -> None:
    with pytest.raises(ValueError, match="rel_threshold is 0"):
        diff_runs(reports / "20240101T000000Z_lines64", reports / "20240102T000000Z_lines64",
                  rel_threshold=0)
