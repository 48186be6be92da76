"""Tests of parity.comparison_results: one-line summaries, multi-line reports and JSON-safe
records that hold the same numbers."""

from __future__ import annotations

import json
import math

import numpy as np

from parity.compare import compare_arrays
from parity.comparison_results import ArrayComparison, CurveComparison, WorstElement


def test_to_dict_is_json_and_keeps_the_judge_keys() -> None:
    expected = np.array([1 + 1j, 0j, np.nan])
    actual = np.array([1 + 2j, 0j, 1 + 0j])
    record = compare_arrays("z", expected, actual, rtol=1e-5, atol=1e-6).to_dict()
    text = json.dumps(record, allow_nan=False)  # raises on NaN/inf
    for key in ("kind_ok", "fraction_out", "cosine_similarity", "max_abs_error",
                "max_rel_error", "message", "passed", "worst"):
        assert key in record, key
    assert json.loads(text)["worst"][0]["expected"] in ([1.0, 1.0], [None, 0.0])
    assert isinstance(record["max_abs_error"], float) and record["passed"] is False


def test_summary_is_one_line_with_tolerance() -> None:
    line = compare_arrays("x", np.ones(3), np.ones(3), rtol=1e-5, atol=1e-6).summary()
    assert "\n" not in line and line.startswith("PASS x") and "rtol=1e-05" in line


def test_worst_element_to_dict_is_json_safe() -> None:
    element = WorstElement((1, 2), complex(1.0, math.nan), 2 + 0j, math.nan, None, math.inf)
    record = element.to_dict()
    # complex as [re, im], NaN and inf as None: json.dumps with allow_nan=False accepts it
    assert record == {"index": [1, 2], "expected": [1.0, None], "actual": [2.0, 0.0],
                      "diff": None, "rel": None, "excess": None}
    json.dumps(record, allow_nan=False)


def _failing_record() -> ArrayComparison:
    worst = (WorstElement((3,), 1.0, 1.5, 0.5, 0.5, 5.0), WorstElement((0,), 2.0, 2.2, 0.2, 0.1,
                                                                       2.0))
    return ArrayComparison(
        name="loss", passed=False, kind_ok=True, message="2 of 4 elements out of tolerance",
        rtol=0.0, atol=0.1, expected_dtype="float64", actual_dtype="float32",
        expected_shape=(4,), actual_shape=(4,), size=4, count_out=2, fraction_out=0.5,
        nonfinite_mismatch=0, max_abs_error=0.5, mean_abs_error=0.175, median_abs_error=0.1,
        max_rel_error=0.5, mean_rel_error=0.15, median_rel_error=0.1, relative_rmse=0.2,
        cosine_similarity=0.99, worst=worst)


def test_report_puts_the_worst_elements_under_the_summary() -> None:
    record = _failing_record()
    summary = record.summary()
    assert summary.startswith("FAIL loss: shape (4,) float64 (expected) vs (4,) float32")
    assert "2/4 out of tolerance (50%)" in summary and "worst at [3]" in summary
    lines = record.report().splitlines()
    assert lines[0] == summary and "abs error: max 0.5" in lines[1]
    assert lines[-2:] == ["    [3] | 1.0 | 1.5 | 0.5 | 5", "    [0] | 2.0 | 2.2 | 0.2 | 2"]


def test_kind_mismatch_record_has_no_statistics() -> None:
    record = ArrayComparison(name="obj", passed=False, kind_ok=False,
                             message="dtype kind differs", rtol=0.0, atol=0.0,
                             expected_dtype="float64", actual_dtype="complex64",
                             expected_shape=(3,), actual_shape=(3,))
    assert record.summary().endswith(": dtype kind differs")
    assert record.report() == record.summary()
    assert record.to_dict()["max_abs_error"] is None and record.to_dict()["worst"] == []


def test_curve_record_delegates_to_its_elementwise_comparison() -> None:
    curve = CurveComparison(_failing_record(), first_step_outside=3, first_expected=1.0,
                            first_actual=1.5, first_band=0.1, step_of_max_abs_error=3)
    assert curve.name == "loss" and not curve.passed
    assert "first outside the band at step 3" in curve.summary()
    record = curve.to_dict()
    assert record["first_step_outside"] == 3 and record["count_out"] == 2
    assert json.loads(json.dumps(record, allow_nan=False))["worst"][0]["index"] == [3]
    assert record["expected_shape"] == [4] and record["first_band"] == 0.1
