"""parity/report/formatting.py: how every report text prints values, tolerances and the
worst elements of a failed check."""

from __future__ import annotations

import pytest

from parity.report.formatting import element_text, format_measured, format_tolerance, format_value

TOL = {"rtol": 1e-5, "atol": 1e-6, "reason": "f32 FFT vs f64 oracle"}


@pytest.mark.parametrize(("value", "text"), [
    (None, "n/a"), (True, "true"), (3, "3"), (0.0, "0"), (0.5, "0.5"), (1e-6, "1.000e-06"),
    (123456.0, "1.235e+05"), (0.99999, "0.99999"), (0.99999994, "0.9999999"), (2.0, "2"),
    (float("nan"), "nan"), (float("-inf"), "-inf"),
    ([1, 2.5], "[1, 2.5]"), (list(range(10)), "[0, 1, 2, 3, 4, 5, 6, 7, ...]"),
])
def test_format_value(value: object, text: str) -> None:
    assert format_value(value) == text


def test_format_tolerance() -> None:
    assert format_tolerance({}) == "none"
    assert format_tolerance(TOL, with_reason=False) == "rtol=1.000e-05, atol=1.000e-06"


def test_tolerance_cells_leave_out_the_key_calibration_and_neutral_settings() -> None:
    entry = {"level": "L1", "stage": "x", "quantity": "*", "dtype": "float32", "device": "*",
             "rtol": 1e-5, "atol": 1e-6, "atol_scale": "absolute", "max_fraction": 0.0,
             "min_cosine": None, "calibration": "measured 3e-7", "reason": "f32 rounding"}
    assert format_tolerance(entry) == "rtol=1.000e-05, atol=1.000e-06 (f32 rounding)"


def test_worst_elements_and_measured_read_as_text() -> None:
    """The first divergence lists worst elements as index, values, error and its multiple of the
    bound (not raw JSON), and leaves bookkeeping fields out of the measured line."""
    element = {"index": [1, 0, 9, 4], "expected": [0.0, 0.0], "actual": [0.675, 0.414],
               "diff": 0.7918, "rel": None, "excess": 99776.5}
    assert element_text(element) == \
        "[1, 0, 9, 4] expected 0+0j, actual 0.675+0.414j (error 0.79 = 9.98e+04x its bound)"
    real = {"index": [3], "expected": 0.5, "actual": 0.6, "diff": 0.1, "rel": 0.2, "excess": 10.0}
    assert element_text(real) == "[3] expected 0.5, actual 0.6 (error 0.1 = 10x its bound)"
    line = format_measured({"name": "x.x", "passed": False, "kind_ok": True, "message": "m",
                            "max_abs_error": 1.25})
    assert line == "max_abs_error=1.25"
