"""The judge (parity/judge.py): it keeps the arrays of every failed comparison, so the run can
put those of its first divergence into the bundle's evidence."""

from __future__ import annotations

import numpy as np
import pytest

from parity.divergences import load_registry
from parity.judge import Judge, fraction_rule_applies, norm_rule_applies
from parity.results import FIRST_DIVERGENCE_EVIDENCE
from parity.tolerances import load_table


def _judge() -> Judge:
    return Judge(load_table(), load_registry(), device="cpu")


def test_a_failed_comparison_keeps_its_arrays_and_a_passed_one_does_not() -> None:
    judge = _judge()
    expected = np.linspace(0.5, 1.5, 64, dtype=np.float32).reshape(8, 8)
    same = judge.compare(level="L1", stage="farfield_amplitude", quantity="amplitude",
                         backend="torch", reference="oracle", expected=expected,
                         actual=expected.copy())
    moved = expected.copy()
    moved[3, 4] += 0.25  # far beyond the L1 tolerance (rtol 1e-4)
    failed = judge.compare(level="L1", stage="farfield_amplitude", quantity="amplitude",
                           backend="tensorflow", reference="oracle", expected=expected,
                           actual=moved)
    assert (same.verdict, failed.verdict) == ("pass", "fail")
    assert judge.evidence_of(same) == {}
    assert judge.evidence_of(None) == {}
    kept = judge.evidence_of(failed)
    assert list(kept) == list(FIRST_DIVERGENCE_EVIDENCE)
    np.testing.assert_array_equal(kept[FIRST_DIVERGENCE_EVIDENCE[0]], expected)
    np.testing.assert_array_equal(kept[FIRST_DIVERGENCE_EVIDENCE[1]], moved)


def test_a_shared_nan_does_not_change_the_scale_of_a_max_abs_tolerance() -> None:
    """``atol_scale = max_abs`` scales atol by the largest |expected|; one NaN on both sides
    (agreed, judged by the non-finite masks) used to drop that scale to 1, so an element near
    zero failed by 1000x although the same arrays without the NaN pass."""
    judge = _judge()
    expected = np.array([1e4, 0.0, 5e3, 2e3], dtype=np.float32)
    actual = expected.copy()
    actual[1] = 0.01  # within atol 1e-5 * 1e4 = 0.1 (L1 translated: rtol 1e-5, atol 1e-5 max_abs)
    key = {"level": "L1", "stage": "translated", "quantity": "translated", "backend": "torch",
           "reference": "oracle"}
    clean = judge.compare(**key, expected=expected, actual=actual)
    expected[3] = actual[3] = np.nan
    shared_nan = judge.compare(**key, expected=expected, actual=actual)
    assert (clean.verdict, shared_nan.verdict) == ("pass", "pass"), shared_nan.message
    assert shared_nan.measured["atol_effective"] == clean.measured["atol_effective"]
    actual[3] = 1.0  # a NaN on one side only is still a divergence
    assert judge.compare(**key, expected=expected, actual=actual).verdict == "fail"


def test_nan_against_nan_compares_nothing_and_never_passes() -> None:
    """L5 r_factor was NaN on both sides (no pattern inside the stitched region) and scored
    PASS: two uncomputable metrics agree on nothing."""
    judge = _judge()
    key = {"level": "L5", "stage": "independent", "quantity": "r_factor", "backend": "torch",
           "reference": "tensorflow"}
    nan = np.asarray(np.nan)
    both = judge.compare(**key, expected=nan, actual=nan, undefined_reason="no pattern inside")
    assert both.verdict == "error"
    assert both.message == ("ERROR: nothing compared: no element is finite on either side "
                            "(both NaN/inf): no pattern inside")
    assert both.tolerance["atol"] == 0.06  # the entry that would have applied is kept
    assert judge.compare(**key, expected=nan, actual=np.asarray(0.2)).verdict == "fail"
    assert judge.compare(**key, expected=np.asarray(0.2), actual=np.asarray(0.21)).verdict \
        == "pass"
    all_nan = np.full(4, np.nan)
    assert judge.compare(level="L1", stage="translated", quantity="translated", backend="torch",
                         reference="oracle", expected=all_nan, actual=all_nan).verdict == "error"


@pytest.mark.parametrize(("measured", "max_fraction", "applies"), [
    ({"fraction_out": 0.01, "nonfinite_mismatch": 0}, 0.05, True),
    ({"fraction_out": 0.01, "nonfinite_mismatch": 0}, 0.0, False),  # no fraction allowed
    ({"fraction_out": 0.01, "nonfinite_mismatch": 2}, 0.05, False),  # NaN is never forgiven
    ({"fraction_out": 0.01, "kind_ok": False}, 0.05, False),  # complex vs real
    ({"nonfinite_mismatch": 0}, 0.05, False),  # nothing counted
])
def test_the_allowed_fraction_rule_applies_only_where_it_can_decide(measured, max_fraction,
                                                                   applies):
    assert fraction_rule_applies(measured, max_fraction) is applies


@pytest.mark.parametrize(("measured", "bound", "applies"), [
    ({"relative_rmse": 1e-4, "nonfinite_mismatch": 0}, 2e-3, True),
    ({"relative_rmse": 1e-4, "nonfinite_mismatch": 0}, None, False),  # no norm-wise bound
    ({"relative_rmse": 1e-4, "nonfinite_mismatch": 1}, 2e-3, False),  # NaN is never forgiven
    ({"relative_rmse": 1e-4, "kind_ok": False}, 2e-3, False),  # complex vs real
    ({"relative_rmse": None, "nonfinite_mismatch": 0}, 2e-3, False),  # zero reference norm
])
def test_the_norm_rule_applies_only_where_it_can_decide(measured, bound, applies):
    assert norm_rule_applies(measured, bound) is applies


def test_a_gradient_with_one_element_moved_by_a_relu_kink_passes_norm_wise() -> None:
    """n128 grouped with seed 9: a ReLU input rounded across zero moved one element of
    encoder.block2.conv0.bias (128 elements, RMS ~18, its layer's largest gradient 54) by 0.15,
    30x the elementwise bound's atol (1e-4 * 54) and 300x the jitter floor; relative RMS error
    7.2e-4 for the array."""
    judge = _judge()
    rng = np.random.default_rng(9)
    expected, layer_max = rng.normal(0.0, 18.0, 128), 54.0
    actual = expected * (1 + rng.normal(0.0, 1e-6, expected.shape))
    actual[98] += 0.15
    key = {"level": "L3", "stage": "grad", "quantity": "encoder.block2.conv0.bias",
           "backend": "torch", "reference": "tensorflow", "group_max_abs": layer_max}
    check = judge.compare(**key, expected=expected, actual=actual)
    assert 5e-4 < check.measured["relative_rmse"] < 1e-3  # the measured case, reproduced
    assert check.verdict == "pass", check.message
    assert check.message.startswith("PASS norm-wise: relative RMS error")
    assert "1 of 128 elements beyond the elementwise bound" in check.message
    # the same array scaled by 1 % (a wrong loss weight): every element out, and norm-wise out
    scaled = judge.compare(**key, expected=expected, actual=expected * 1.01)
    assert scaled.verdict == "fail" and scaled.measured["relative_rmse"] > 2e-3
    # a NaN where the baseline has a number is never forgiven, however small the rest
    nan = actual.copy()
    nan[3] = np.nan
    assert judge.compare(**key, expected=expected, actual=nan).verdict == "fail"
