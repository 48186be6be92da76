"""Run bundles for the tests of parity/report/runs.py and diff.py: two runs of one case (the
second diverged), and the things a listing must skip."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from parity.cli import main
from parity.report.bundle import new_bundle_dir
from parity.results import BackendRun, Check, RunResult

TOL = {"atol": 1e-6, "reason": "f32 FFT"}


def _make_result(stamp: str, *, diverged: bool) -> RunResult:
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
            writer.commit(_make_result(stamp, diverged=diverged), {})
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


def _write_run(root: Path, stamp: str, *, case: str = "lines64", diverged: bool = False) -> Path:
    result = _make_result(stamp, diverged=diverged)
    result = RunResult(case, stamp, result.levels, result.backends, result.checks,
                       result.backend_runs, metrics=result.metrics, config=result.config,
                       provenance=result.provenance)
    with new_bundle_dir(root, case, stamp=stamp) as writer:
        return writer.commit(result, {})


def _write_bench(root: Path, stamp: str) -> Path:
    with new_bundle_dir(root, "bench-lines64", stamp=stamp) as writer:
        writer.write_json("bench.json", {"case": "lines64"})
        writer.write_text("bench.md", "# Benchmark: lines64\n")
        return writer.commit_plain(provenance={"kind": "bench"})


def _run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def make_result():
    """``make_result(stamp, *, diverged)``: a RunResult of case lines64 (three checks)."""
    return _make_result


@pytest.fixture
def write_run():
    """``write_run(root, stamp, *, case="lines64", diverged=False)``: a complete bundle's path."""
    return _write_run


@pytest.fixture
def write_bench():
    """``write_bench(root, stamp)``: a benchmark bundle's path."""
    return _write_bench


@pytest.fixture
def run_cli():
    """``run_cli(capsys, *argv)``: ``(exit code, stdout, stderr)`` of ``parity ARGV``."""
    return _run_cli
