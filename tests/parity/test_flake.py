"""parity/flake.py: how close each check came to failing, under the rule that decides it."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from parity import flake
from parity.compare import compare_arrays
from parity.flake import FlakeReport, _ratio
from parity.results import Check


def _check(expected: np.ndarray, actual: np.ndarray, *, rtol: float, atol: float,
           max_fraction: float = 0.0) -> Check:
    measured = compare_arrays("x", expected, actual, rtol=rtol, atol=atol).to_dict()
    return Check("L1", "x", "x", "a", "b", "pass", measured,
                 {"rtol": rtol, "atol": atol, "max_fraction": max_fraction})


def test_ratio_is_the_worst_elements_error_over_its_own_bound() -> None:
    expected = np.array([1.0, 100.0, 0.0])
    actual = np.array([1.0 + 2e-5, 100.0 + 5e-4, 1e-6])
    # bounds: 1e-6 + 1e-4 * |e| -> 1.01e-4, 1.0001e-2, 1e-6; excesses 0.198, 0.05, 1.0
    ratio, rule = _ratio(_check(expected, actual, rtol=1e-4, atol=1e-6))
    assert ratio == pytest.approx(1.0, rel=1e-6) and rule == "bound"
    # a check bounded by rtol alone is finite (was inf when rtol was ignored)
    only_rtol, _ = _ratio(_check(expected[:2], actual[:2], rtol=1e-4, atol=0.0))
    assert only_rtol == pytest.approx(2e-5 / 1e-4, rel=1e-6)


def test_exact_match_is_zero_and_non_elementwise_checks_have_no_ratio() -> None:
    same = np.arange(4.0)
    assert _ratio(_check(same, same, rtol=0.0, atol=0.0)) == (0.0, "bound")
    assert _ratio(Check("L0", "config", "config", "a", "b", "pass", {"differences": []}, {})) \
        is None


def test_a_check_passed_by_its_allowed_fraction_is_measured_by_that_fraction() -> None:
    """L4/weights/all passed with 40 of 481530 weights beyond atol (max_fraction 1 %): its ratio
    is 8.3e-5 / 0.01, not the worst element's 4.1x over atol, which read as 4x over the bound."""
    expected = np.zeros(1000)
    actual = expected.copy()
    actual[:5] = 4.1e-4  # 5 of 1000 out, 4.1x over atol
    ratio, rule = _ratio(_check(expected, actual, rtol=0.0, atol=1e-4, max_fraction=0.01))
    assert rule == "fraction" and ratio == pytest.approx(0.005 / 0.01, rel=1e-9)
    # nothing out: the worst element against its bound, as without a max_fraction
    ratio, rule = _ratio(_check(expected, actual * 0.5, rtol=0.0, atol=1e-3, max_fraction=0.01))
    assert rule == "bound" and ratio == pytest.approx(0.205, rel=1e-9)


def test_a_check_passed_norm_wise_is_measured_by_its_relative_rms_error() -> None:
    """An L3 gradient with one element beyond the elementwise bound passes norm-wise
    (``max_relative_rmse``): its ratio is relative RMS error over the allowed one, the smaller
    of the two rules where the tolerance also allows a fraction out."""
    expected = np.full(100, 10.0)
    actual = expected.copy()
    actual[7] += 0.5  # 50x over atol 1e-2; relative RMS error 0.5 / 100 = 5e-3
    check = _check(expected, actual, rtol=0.0, atol=1e-2)
    norm_only = dataclasses.replace(check, tolerance={**check.tolerance,
                                                      "max_relative_rmse": 1e-2})
    ratio, rule = _ratio(norm_only)
    assert rule == "norm" and ratio == pytest.approx(5e-3 / 1e-2, rel=1e-9)
    both = dataclasses.replace(norm_only, tolerance={**norm_only.tolerance, "max_fraction": 0.1})
    assert _ratio(both) == (pytest.approx(0.01 / 0.1, rel=1e-9), "fraction")


def _report() -> FlakeReport:
    spread = {"L4/weights/all[torch vs tensorflow]": {"min": 0.0083, "max": 0.0084,
                                                      "rule": "fraction"},
              "L2/encoded/encoded[torch vs oracle]": {"min": 0.03, "max": 0.03, "rule": "bound"}}
    return FlakeReport(3, True, [], [0, 0, 0], spread, case="small", levels=("L0", "L4"), seed=7)


def test_the_text_names_the_run_and_labels_each_ratio() -> None:
    lines = _report().text().splitlines()
    assert lines[0] == ("3 runs of case small, levels L0,L4, seed 7; exit codes [0, 0, 0]: "
                        "verdicts IDENTICAL")
    assert "  L2/encoded/encoded[torch vs oracle]: 0.03 .. 0.03 (max error / bound)" in lines
    assert ("  L4/weights/all[torch vs tensorflow]: 0.0083 .. 0.0084 (fraction out / allowed "
            "fraction)") in lines


def test_the_json_records_case_levels_and_seed(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from parity.cli import main

    seen: dict[str, Any] = {}

    def fake_run_flake(**kwargs: Any) -> FlakeReport:
        seen.update(kwargs)
        return _report()

    monkeypatch.setattr(flake, "run_flake", fake_run_flake)
    out = tmp_path / "flake.json"
    assert main(["flake", "--levels", "L0,L4", "--json", str(out)]) == 0
    record = json.loads(out.read_text())
    assert (record["case"], record["levels"], record["seed"]) == ("small", ["L0", "L4"], 7)
    assert record["spread"]["L4/weights/all[torch vs tensorflow]"]["rule"] == "fraction"
    assert seen["levels"] == ("L0", "L4")
