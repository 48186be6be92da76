"""Tests of parity.report.runs: listing, showing and resolving bundles, and checking reports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from parity.cli import EXIT_USAGE
from parity.report import bundle as bundle_module
from parity.report._bundle_files import file_manifest
from parity.report.bundle import new_bundle_dir
from parity.report.diff import diff_runs
from parity.report.runs import (
    BundleError,
    format_run_list,
    format_scan,
    list_runs,
    load_report,
    resolve_run,
    scan_runs,
    show_run,
)
from parity.results import RunResult


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
    with pytest.raises(BundleError, match="is incomplete: no COMPLETE marker"):
        show_run(reports / "20240104T000000Z_lines64")
    with pytest.raises(BundleError, match=r"is damaged: report\.json does not parse"):
        show_run(reports / "20240105T000000Z_lines64")
    with pytest.raises(FileNotFoundError, match="no bundle directory"):
        show_run(reports / "nope")


def test_resolve_run(reports: Path) -> None:
    first, second = (reports / "20240101T000000Z_lines64", reports / "20240102T000000Z_lines64")
    assert resolve_run(reports, "latest") == second
    assert resolve_run(reports, "-1") == second
    assert resolve_run(reports, "-2") == first
    assert resolve_run(reports, "20240101") == first
    assert resolve_run(reports, first.name) == first
    assert resolve_run(reports, str(second)) == second
    with pytest.raises(FileNotFoundError, match="'-3' is out of range: 2 complete runs"):
        resolve_run(reports, "-3")
    with pytest.raises(ValueError, match="ambiguous"):
        resolve_run(reports, "2024010")
    with pytest.raises(FileNotFoundError, match="no run '1999'"):
        resolve_run(reports, "1999")
    with pytest.raises(BundleError, match="no COMPLETE marker"):
        resolve_run(reports, str(reports / "20240104T000000Z_lines64"))


def test_resolve_run_by_name_says_a_bundle_is_damaged(reports: Path) -> None:
    """A damaged bundle named (or prefixed) under the root is not "no such run"."""
    with pytest.raises(BundleError, match=r"20240105T000000Z_lines64 is damaged: report\.json "
                                          "does not parse"):
        resolve_run(reports, "20240105T000000Z_lines64")
    with pytest.raises(BundleError, match=r"20240104T000000Z_lines64 is incomplete: no "
                                          "COMPLETE marker: the run was interrupted"):
        resolve_run(reports, "20240104")


def _drop_check_verdict(report: dict) -> None:
    del report["checks"][1]["verdict"]


def _drop_backend_name(report: dict) -> None:
    del report["backend_runs"][0]["backend"]


@pytest.mark.parametrize(("damage", "problem"), [
    ({"exit_code": None}, "exit_code is null, expected an integer"),
    ({"exit_code": "x"}, "exit_code is a string, expected an integer"),
    ({"exit_code": True}, "exit_code is a boolean, expected an integer"),
    ({"backends": 5}, "backends is an integer, expected a list"),
    ({"backends": ["torch", 3]}, "backends[1] is an integer, expected a string"),
    ({"first_divergence": "L1"}, "first_divergence is a string, expected an object or null"),
    ({"checks": 5}, "checks is an integer, expected a list"),
    ({"counts": {"pass": "3"}}, "counts.pass is a string, expected an integer"),
    ({"config": []}, "config is a list, expected an object"),
    (_drop_check_verdict, "checks[1].verdict is missing, expected a string"),
    (_drop_backend_name, "backend_runs[0].backend is missing, expected a string"),
])
def test_a_report_with_wrong_types_is_named_and_skipped(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], damage: object, problem: str,
        write_run, run_cli) -> None:
    good = write_run(tmp_path, "20240101T000000Z")
    bad = write_run(tmp_path, "20240102T000000Z", diverged=True)
    report = json.loads((bad / "report.json").read_text())
    if callable(damage):
        damage(report)
    else:
        report.update(damage)
    (bad / "report.json").write_text(json.dumps(report))
    expected = f"bundle {bad} is damaged: report.json: {problem}"
    for call in (lambda: load_report(bad), lambda: show_run(bad), lambda: diff_runs(good, bad),
                 lambda: resolve_run(tmp_path, bad.name), lambda: resolve_run(tmp_path, str(bad))):
        with pytest.raises(BundleError) as caught:
            call()
        assert str(caught.value) == expected
    assert [r.path for r in list_runs(tmp_path)] == [good]
    assert format_scan(scan_runs(tmp_path)).splitlines()[-1] == (
        f"skipped 1 damaged bundle: {bad.name} (report.json: {problem})")
    for argv in (["list"], ["show", bad.name], ["diff", good.name, bad.name], ["diff", str(bad)]):
        code, out, err = run_cli(capsys, *argv, "--out", str(tmp_path))
        if argv == ["list"]:
            assert code == 0 and good.name in out and problem in out
        else:
            assert code == EXIT_USAGE and bad.name in err and problem in err


def test_list_counts_several_damaged_bundles(reports: Path) -> None:
    lines = format_scan(scan_runs(reports)).splitlines()
    assert lines[-3:] == [
        "skipped 2 damaged bundles:",
        "  20240104T000000Z_lines64 (no COMPLETE marker: the run was interrupted or is still "
        "writing)",
        lines[-1],
    ]
    assert lines[-1].startswith("  20240105T000000Z_lines64 (report.json does not parse:")


def test_bench_bundles_are_shown_counted_and_not_diffed(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], write_run, write_bench, run_cli) -> None:
    run = write_run(tmp_path, "20240101T000000Z")
    bench = write_bench(tmp_path, "20240102T000000Z")
    assert bench.name == "20240102T000000Z_bench-lines64"
    assert [r.path for r in list_runs(tmp_path)] == [run]
    assert format_scan(scan_runs(tmp_path)).splitlines()[-1] == (
        f"not listed: 1 benchmark bundle (latest {bench.name}; `parity show NAME` prints its "
        "bench.md)")
    assert resolve_run(tmp_path, "latest") == run  # latest means the latest run
    assert show_run(resolve_run(tmp_path, "20240102")) == "# Benchmark: lines64\n"
    assert show_run(resolve_run(tmp_path, str(bench))) == "# Benchmark: lines64\n"
    with pytest.raises(ValueError, match=r"is a benchmark bundle .*compare bench\.json "
                                         "files by hand"):
        diff_runs(run, bench)
    code, out, _ = run_cli(capsys, "show", bench.name, "--out", str(tmp_path))
    assert code == 0 and out.startswith("# Benchmark: lines64")
    code, _, err = run_cli(capsys, "diff", run.name, bench.name, "--out", str(tmp_path))
    assert code == EXIT_USAGE and bench.name in err and "benchmark bundle" in err


@pytest.mark.parametrize(("argv", "needle"), [
    (["list", "--out", "{file}"], "is not a directory"),
    (["show", "--out", "{file}"], "is not a directory"),
    (["show", "--out", "{missing}"], "no reports directory"),
    (["diff", "latest", "--out", "{missing}"], "no reports directory"),
    (["show", "-99", "--out", "{root}"], "'-99' is out of range: 1 complete run in"),
    (["show", "", "--out", "{root}"], "empty run name"),
    (["show", "   ", "--out", "{root}"], "empty run name"),
    (["show", "{foreign}"], "is not a run bundle (it has no report.json"),
    (["show", "{file}"], "is not a directory; expected a run bundle"),
    (["show", "{missing}/x"], "no bundle directory"),
    (["list", "--out", "{bundle}"], "is a bundle, not a reports directory"),
])
def test_bad_roots_and_references_exit_2_with_a_named_problem(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], needle: str,
        write_run, run_cli) -> None:
    root = tmp_path / "reports"
    bundle = write_run(root, "20240101T000000Z")
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "passwd").write_text("root:x:0:0")
    places = {"file": tmp_path / "foreign" / "passwd", "missing": tmp_path / "nonexistent",
              "root": root, "foreign": tmp_path / "foreign", "bundle": bundle}
    code, out, err = run_cli(capsys, *(arg.format(**places) for arg in argv))
    assert code == EXIT_USAGE, (out, err)
    assert needle in err and "interrupted" not in err and len(err.splitlines()) == 1


def test_list_of_a_missing_root_says_so_and_exits_0(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], run_cli) -> None:
    code, out, _ = run_cli(capsys, "list", "--out", str(tmp_path / "nonexistent" / "x"))
    assert code == 0
    assert out == f"no reports directory {tmp_path / 'nonexistent' / 'x'}\n"


def _forge_verdict(bundle: Path) -> None:
    """summary.md says PARITY where it said DIVERGENCE, at the same size (only a hash sees it)."""
    summary = bundle / "summary.md"
    text = summary.read_text()
    assert "**Verdict: DIVERGENCE**" in text
    summary.write_text(text.replace("**Verdict: DIVERGENCE**", "**Verdict: PARITY**    "))


def test_show_and_diff_check_every_file_against_the_manifest(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], write_run, run_cli) -> None:
    """A forged summary.md was shown as is, and diff noticed nothing."""
    good = write_run(tmp_path, "20240101T000000Z")
    forged = write_run(tmp_path, "20240102T000000Z", diverged=True)
    _forge_verdict(forged)
    expected = (f"bundle {forged} is damaged: summary.md has changed since the run: its SHA-256 "
                "differs from provenance.json's")
    for call in (lambda: show_run(forged), lambda: diff_runs(good, forged),
                 lambda: load_report(forged)):
        with pytest.raises(BundleError) as caught:
            call()
        assert str(caught.value) == expected
    for argv in (["show", forged.name], ["show", "latest"], ["diff", good.name, forged.name],
                 ["diff", str(forged), str(good)]):
        code, _, err = run_cli(capsys, *argv, "--out", str(tmp_path))
        assert code == EXIT_USAGE and "summary.md has changed since the run" in err, argv
    # a listing compares sizes only (a stat per file; see the module doc): still listed
    assert [r.path for r in list_runs(tmp_path)] == [good, forged]


@pytest.mark.parametrize(("damage", "problem"), [
    (lambda b: (b / "evidence.npz").write_bytes(bytes(100)),
     "evidence.npz has 100 bytes; provenance.json lists {size}"),
    (lambda b: (b / "summary.md").unlink(), "summary.md is missing; provenance.json lists it"),
    (lambda b: (b / "provenance.json").unlink(),
     "no provenance.json (its manifest lists the bundle's files)"),
    (lambda b: (b / "provenance.json").write_text("{}"),
     "provenance.json has no file manifest (bundle.files)"),
])
def test_a_file_missing_or_of_the_wrong_size_marks_the_bundle_damaged(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], damage: object, problem: str,
        write_run, run_cli) -> None:
    good = write_run(tmp_path, "20240101T000000Z")
    bad = write_run(tmp_path, "20240102T000000Z", diverged=True)
    problem = problem.format(size=(bad / "evidence.npz").stat().st_size)
    damage(bad)  # type: ignore[operator]
    assert [r.path for r in list_runs(tmp_path)] == [good]
    assert format_scan(scan_runs(tmp_path)).splitlines()[-1] == (
        f"skipped 1 damaged bundle: {bad.name} ({problem})")
    for argv in (["show", bad.name], ["diff", good.name, str(bad)]):
        code, _, err = run_cli(capsys, *argv, "--out", str(tmp_path))
        assert code == EXIT_USAGE and f"{bad.name} is damaged: {problem}" in err, argv


def test_a_changed_bench_md_is_not_shown(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                         write_bench, run_cli) -> None:
    bench = write_bench(tmp_path, "20240102T000000Z")
    (bench / "bench.md").write_text("# Benchmark: lines65\n")  # same size, other bytes
    code, out, err = run_cli(capsys, "show", bench.name, "--out", str(tmp_path))
    assert code == EXIT_USAGE and out == ""
    assert "bench.md has changed since the run" in err


def _write_injected(root: Path, stamp: str, injections: object) -> Path:
    result = RunResult("lines64", stamp, ("L1",), ("tensorflow", "torch"), (), (),
                       config={"injections": injections})
    with new_bundle_dir(root, "lines64", stamp=stamp) as writer:
        return writer.commit(result, {})


def test_runs_with_injected_bugs_are_marked_as_self_tests(tmp_path: Path, write_run) -> None:
    real = write_run(tmp_path, "20240101T000000Z")
    injected = _write_injected(tmp_path, "20240102T000000Z", {"torch": "offset_sign"})
    runs = list_runs(tmp_path)
    assert [dict(r.injections) for r in runs] == [{}, {"torch": "offset_sign"}]
    lines = format_scan(scan_runs(tmp_path)).splitlines()
    assert [line.split()[0] for line in lines[1:3]] == [real.name, injected.name]
    assert not lines[1].endswith("]")
    assert lines[2].endswith("  [self-test: torch=offset_sign]")
    assert lines[3].startswith("[self-test: ...]: bugs injected on purpose")
    odd = _write_injected(tmp_path, "20240103T000000Z", {"torch": "offset_sign"})
    report = json.loads((odd / "report.json").read_text())
    report["config"]["injections"] = ["torch"]
    (odd / "report.json").write_text(json.dumps(report))
    provenance = json.loads((odd / "provenance.json").read_text())  # a consistent manifest
    provenance["bundle"]["files"]["report.json"] = file_manifest(odd)["report.json"]
    (odd / "provenance.json").write_text(json.dumps(provenance))
    assert format_scan(scan_runs(tmp_path)).splitlines()[-1] == (
        f"skipped 1 damaged bundle: {odd.name} (report.json: config.injections is ['torch'], "
        "expected an object of backend -> injection name)")


def test_list_of_a_missing_relative_root_prints_it_absolute(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        run_cli) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, _ = run_cli(capsys, "list", "--out", "reports")
    assert code == 0 and out == f"no reports directory {tmp_path / 'reports'}\n"
    code, _, err = run_cli(capsys, "show", "latest", "--out", "reports")
    assert code == EXIT_USAGE and f"no reports directory {tmp_path / 'reports'}" in err
