"""parity/flake.py: how close each check came to its tolerance."""

from __future__ import annotations

import numpy as np
import pytest

from parity.compare import compare_arrays
from parity.flake import _ratio
from parity.results import Check


def _check(expected: np.ndarray, actual: np.ndarray, *, rtol: float, atol: float) -> Check:
    measured = compare_arrays("x", expected, actual, rtol=rtol, atol=atol).to_dict()
    return Check("L1", "x", "x", "a", "b", "pass", measured, {"rtol": rtol, "atol": atol})


def test_ratio_is_the_worst_elements_error_over_its_own_bound() -> None:
    expected = np.array([1.0, 100.0, 0.0])
    actual = np.array([1.0 + 2e-5, 100.0 + 5e-4, 1e-6])
    # bounds: 1e-6 + 1e-4 * |e| -> 1.01e-4, 1.0001e-2, 1e-6; excesses 0.198, 0.05, 1.0
    ratio = _ratio(_check(expected, actual, rtol=1e-4, atol=1e-6))
    assert ratio == pytest.approx(1.0, rel=1e-6)
    # a check bounded by rtol alone is finite (was inf when rtol was ignored)
    only_rtol = _ratio(_check(expected[:2], actual[:2], rtol=1e-4, atol=0.0))
    assert only_rtol == pytest.approx(2e-5 / 1e-4, rel=1e-6)


def test_exact_match_is_zero_and_non_elementwise_checks_have_no_ratio() -> None:
    same = np.arange(4.0)
    assert _ratio(_check(same, same, rtol=0.0, atol=0.0)) == 0.0
    assert _ratio(Check("L0", "config", "config", "a", "b", "pass", {"differences": []}, {})) \
        is None
