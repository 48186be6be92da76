"""Tests of parity.report.junit: JUnit XML of a run."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from parity.report.junit import render_junit
from parity.results import BackendRun, Check, RunResult


def _result() -> RunResult:
    tol = {"rtol": 1e-5, "atol": 1e-6, "reason": "f32 vs f64 <oracle> & co"}
    checks = (
        Check("L0", "grouping", "nn_indices", "pair", "tensorflow", "pass", {"n_mismatch": 0}),
        Check("L1", "farfield_amplitude", "amplitude", "torch", "oracle", "fail",
              {"max_abs_err": 3.2e-4, "fraction_out": 0.125}, tol, 'bad "sign" <here>'),
        Check("L1", "exit_wave", "complex", "torch", "oracle", "fail", {"max_abs_err": 1e-3}, tol),
        Check("L2", "network.trimmed_obj", "amplitude", "pair", "tensorflow", "known",
              {"max_abs_err": 2e-3}, {"rtol": 1e-4, "reason": "registry #3"}),
        Check("L3", "grad", "head.kernel", "pair", "tensorflow", "skipped", message="no torch"),
        Check("L3", "loss", "poisson_nll", "pair", "tensorflow", "error", message="no output"),
    )
    runs = (BackendRun("tensorflow", "ok", 12.5),
            BackendRun("torch", "crashed", 3.25, log_path="logs/torch.log",
                       tasks={"train": {"status": "error", "error": "Segfault"}},
                       message="exit code -11"))
    return RunResult("lines64", "20240131T235959Z", ("L0", "L1", "L2", "L3"),
                     ("tensorflow", "torch"), checks, runs)


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    log = tmp_path / "logs" / "torch.log"
    log.parent.mkdir()
    # ANSI colour codes (\x1b) are illegal in XML 1.0 even escaped; the renderer must cope
    lines = [f"line {i}" for i in range(10)] + ["\x1b[31mFatal <signal> & 11\x1b[0m"]
    log.write_text("\n".join(lines) + "\n")
    return tmp_path


def test_junit_counts_suites_and_outcomes(bundle: Path) -> None:
    root = ET.fromstring(render_junit(_result(), bundle_dir=bundle, log_tail_lines=3))
    assert root.tag == "testsuites"
    assert {k: root.get(k) for k in ("tests", "failures", "errors", "skipped")} == \
        {"tests": "8", "failures": "2", "errors": "2", "skipped": "1"}
    suites = {s.get("name"): s for s in root.findall("testsuite")}
    assert list(suites) == ["L0", "L1", "L2", "L3", "backends"]
    assert suites["L1"].get("failures") == "2" and suites["L1"].get("tests") == "2"
    assert suites["L3"].get("errors") == "1" and suites["L3"].get("skipped") == "1"
    assert suites["L0"].get("timestamp") == "2024-01-31T23:59:59"


def test_junit_failure_carries_numbers_and_names(bundle: Path) -> None:
    root = ET.fromstring(render_junit(_result(), bundle_dir=bundle))
    case = root.find(".//testcase[@classname='L1.farfield_amplitude']")
    assert case is not None and case.get("name") == "amplitude[torch vs oracle]"
    failure = case.find("failure")
    assert failure is not None
    assert failure.get("message") == 'FIRST DIVERGENCE: bad "sign" <here>'  # the first failed check
    assert "max_abs_err=3.200e-04" in failure.text
    assert "rtol=1.000e-05, atol=1.000e-06 (f32 vs f64 <oracle> & co)" in failure.text
    # without a message, the headline is the numbers against the tolerance
    other = root.find(".//testcase[@classname='L1.exit_wave']/failure")
    assert other.get("message") == "max_abs_err=0.001 vs tolerance rtol=1.000e-05, atol=1.000e-06"


def test_junit_known_skipped_error_cases(bundle: Path) -> None:
    root = ET.fromstring(render_junit(_result(), bundle_dir=bundle))
    known = root.find(".//testcase[@classname='L2.network.trimmed_obj']")
    assert known.find("failure") is None and known.find("error") is None
    assert known.find("system-out").text.startswith("known divergence (allowed)")
    assert root.find(".//testcase[@classname='L3.grad']/skipped").get("message") == "no torch"
    assert root.find(".//testcase[@classname='L3.loss']/error").get("message") == "no output"


def test_junit_crashed_backend_is_an_error_with_its_log_tail(bundle: Path) -> None:
    root = ET.fromstring(render_junit(_result(), bundle_dir=bundle, log_tail_lines=3))
    ok = root.find(".//testcase[@name='tensorflow']")
    assert ok.get("classname") == "backends" and len(ok) == 0 and ok.get("time") == "12.500"
    error = root.find(".//testcase[@name='torch']/error")
    assert error.get("type") == "crashed" and error.get("message") == "crashed: exit code -11"
    assert "train: error Segfault" in error.text
    assert "last 3 lines of logs/torch.log" in error.text
    assert "Fatal <signal> & 11" in error.text and "line 9" in error.text
    assert "line 7" not in error.text


def test_junit_without_bundle_dir_says_the_log_was_not_read() -> None:
    root = ET.fromstring(render_junit(_result()))
    assert "log logs/torch.log not read" in root.find(".//testcase[@name='torch']/error").text


def test_junit_names_an_unreadable_log(tmp_path: Path) -> None:
    root = ET.fromstring(render_junit(_result(), bundle_dir=tmp_path))
    assert "logs/torch.log unreadable" in root.find(".//testcase[@name='torch']/error").text


def test_junit_rejects_negative_tail() -> None:
    with pytest.raises(ValueError, match="log_tail_lines is -1"):
        render_junit(_result(), log_tail_lines=-1)
