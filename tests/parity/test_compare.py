"""Tests of parity.compare: kind before value, NaN/inf masks, tolerance semantics, the worst
elements, scalars and curves."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from parity.compare import compare_arrays, compare_curves, compare_scalars, element_errors

# Few derandomized examples, no deadline and no example database: pure NumPy code, reproducible.
SETTINGS = settings(max_examples=40, deadline=None, derandomize=True, database=None)


# --- kind before value -------------------------------------------------------------------------

def test_dtype_kind_mismatch_fails_naming_both_sides() -> None:
    result = compare_arrays("obj", np.zeros(3), np.zeros(3, dtype=np.complex64), rtol=1e-5,
                            atol=1e-6)
    assert not result.passed and not result.kind_ok
    assert "float64" in result.message and "complex64" in result.message
    assert result.count_out is None and result.max_abs_error is None
    assert "FAIL obj" in result.summary()


def test_int_against_float_is_a_kind_mismatch() -> None:
    result = compare_arrays("idx", np.arange(4), np.arange(4.0), rtol=0.0, atol=0.0)
    assert not result.passed and "int64" in result.message and "float64" in result.message


def test_precision_change_within_a_kind_is_compared_and_reported() -> None:
    expected = np.linspace(0, 1, 7)
    result = compare_arrays("amp", expected, expected.astype(np.float32), rtol=1e-6, atol=0.0)
    # float32 rounding is <= 2**-24 relative (6e-8), well inside rtol 1e-6.
    assert result.passed and result.kind_ok
    assert (result.expected_dtype, result.actual_dtype) == ("float64", "float32")


def test_shape_mismatch_fails_naming_both_shapes() -> None:
    result = compare_arrays("w", np.zeros((3, 4)), np.zeros((4, 3)), rtol=1e-5, atol=1e-6)
    assert not result.passed and not result.kind_ok
    assert "(3, 4)" in result.message and "(4, 3)" in result.message


def test_both_kind_and_shape_mismatch_are_named() -> None:
    result = compare_arrays("w", np.zeros(3), np.zeros(4, dtype=np.int32), rtol=0, atol=0)
    assert "dtype kind differs" in result.message and "shape differs" in result.message


def test_non_numeric_dtype_is_rejected() -> None:
    with pytest.raises(TypeError, match="expected bool, integer, float or complex"):
        compare_arrays("s", np.array(["a"]), np.array(["a"]), rtol=0, atol=0)


# --- tolerances are required ---------------------------------------------------------------------

@pytest.mark.parametrize(("rtol", "atol", "error"), [
    (None, 1e-6, TypeError), (1e-5, None, TypeError), (True, 0.0, TypeError),
    ("1e-5", 0.0, TypeError), (-1e-5, 0.0, ValueError), (1e-5, math.inf, ValueError),
])
def test_tolerances_are_required_and_validated(rtol: object, atol: object,
                                               error: type[Exception]) -> None:
    with pytest.raises(error, match=r"rtol|atol"):
        compare_arrays("x", np.zeros(2), np.zeros(2), rtol=rtol, atol=atol)  # type: ignore[arg-type]


def test_no_default_tolerance() -> None:
    with pytest.raises(TypeError):
        compare_arrays("x", np.zeros(2), np.zeros(2))  # type: ignore[call-arg]


# --- non-finite masks ----------------------------------------------------------------------------

@pytest.mark.parametrize("side", ["expected", "actual"])
def test_one_sided_nan_fails(side: str) -> None:
    clean = np.ones(5)
    dirty = clean.copy()
    dirty[3] = np.nan
    expected, actual = (dirty, clean) if side == "expected" else (clean, dirty)
    # Huge tolerances: the NaN must fail on its own, not through the value bound.
    result = compare_arrays("x", expected, actual, rtol=1e9, atol=1e9)
    assert not result.passed and result.nonfinite_mismatch == 1 and result.count_out == 1
    assert result.worst[0].index == (3,) and math.isinf(result.worst[0].excess)


def test_matching_nan_and_inf_pass_but_opposite_infinities_fail() -> None:
    expected = np.array([1.0, np.nan, np.inf, -np.inf])
    assert compare_arrays("x", expected, expected.copy(), rtol=0.0, atol=0.0).passed
    flipped = expected.copy()
    flipped[2] = -np.inf
    result = compare_arrays("x", expected, flipped, rtol=0.0, atol=0.0)
    assert not result.passed and result.nonfinite_mismatch == 1


def test_complex_nan_in_one_component_only_fails() -> None:
    expected = np.array([1 + 1j, 2 + 2j])
    actual = np.array([1 + 1j, complex(2, np.nan)])
    result = compare_arrays("z", expected, actual, rtol=1.0, atol=1.0)
    assert not result.passed and result.nonfinite_mismatch == 1


# --- values --------------------------------------------------------------------------------------

def test_bound_is_inclusive_and_relative_to_expected() -> None:
    # atol + rtol*|e| = 0.5 + 0.25*2 = 1.0 exactly in binary floating point.
    assert compare_arrays("x", np.array([2.0]), np.array([3.0]), rtol=0.25, atol=0.5).passed
    assert not compare_arrays("x", np.array([2.0]), np.array([3.0000001]), rtol=0.25,
                              atol=0.5).passed
    # Asymmetric: with expected 3 the bound is 0.5 + 0.75, so the swapped pair passes more.
    assert compare_arrays("x", np.array([3.0]), np.array([2.0]), rtol=0.25, atol=0.5).passed


def test_worst_index_and_values_are_reported() -> None:
    expected = np.linspace(-1, 1, 120).reshape(4, 5, 6)
    actual = expected.copy()
    actual[2, 1, 3] += 0.25
    actual[0, 4, 5] += 0.05
    result = compare_arrays("t", expected, actual, rtol=0.0, atol=0.01)
    assert not result.passed and result.count_out == 2
    assert result.fraction_out == pytest.approx(2 / 120, rel=1e-12)
    first, second = result.worst[:2]
    assert first.index == (2, 1, 3) and second.index == (0, 4, 5)
    assert first.expected == expected[2, 1, 3] and first.actual == actual[2, 1, 3]
    # 0.25 added to a float64: the difference is exact to ~1e-16.
    assert first.abs_error == pytest.approx(0.25, abs=1e-12)
    assert result.max_abs_error == pytest.approx(0.25, abs=1e-12)
    assert "[2, 1, 3]" in result.summary() and "[2, 1, 3]" in result.report()


def test_worst_lists_at_most_ten_and_skips_exact_matches() -> None:
    expected = np.zeros(50)
    actual = np.arange(50) * 1e-3
    result = compare_arrays("x", expected, actual, rtol=0.0, atol=1.0)
    assert result.passed and len(result.worst) == 10
    assert result.worst[0].index == (49,)  # closest to the bound first
    assert all(w.abs_error > 0 for w in result.worst)


def test_complex_uses_modulus_of_difference_and_reports_phase_stats() -> None:
    expected = np.array([1 + 0j])
    assert compare_arrays("z", expected, np.array([1 + 0.1j]), rtol=0.0, atol=0.1).passed
    # Each component within 0.1 (as torch.testing would judge) but |diff| = 0.113 > 0.1.
    assert not compare_arrays("z", expected, np.array([1.08 + 0.08j]), rtol=0.0,
                              atol=0.1).passed
    # Wrap-safety: pi - 0.01 against -pi + 0.01 is 0.02 rad apart, not 2 pi - 0.02.
    wrapped = compare_arrays("z", np.exp(1j * np.array([np.pi - 0.01])),
                             np.exp(1j * np.array([-np.pi + 0.01])), rtol=0.0, atol=1.0)
    assert wrapped.max_phase_error_rad == pytest.approx(0.02, abs=1e-12)
    assert wrapped.max_amplitude_error == pytest.approx(0.0, abs=1e-15)


def test_relative_rmse_and_cosine_hand_computed() -> None:
    result = compare_arrays("g", np.array([3.0, 4.0]), np.array([3.0, 5.0]), rtol=0.0, atol=2.0)
    assert result.relative_rmse == pytest.approx(1 / 5, rel=1e-12)  # sqrt(1 / 25)
    # (9 + 20) / (5 sqrt(34))
    assert result.cosine_similarity == pytest.approx(29 / (5 * math.sqrt(34)), rel=1e-12)
    assert result.max_rel_error == pytest.approx(0.25, rel=1e-12)  # 1 / 4


def test_cosine_of_zero_vectors() -> None:
    zeros = np.zeros(3)
    assert compare_arrays("g", zeros, zeros, rtol=0, atol=0).cosine_similarity == 1.0
    assert compare_arrays("g", zeros, np.ones(3), rtol=0, atol=2).cosine_similarity == 0.0


def test_empty_arrays_pass() -> None:
    result = compare_arrays("e", np.zeros((0, 3)), np.zeros((0, 3)), rtol=0, atol=0)
    assert result.passed and result.size == 0 and result.fraction_out is None


# --- scalars and curves --------------------------------------------------------------------------

def test_compare_scalars() -> None:
    assert compare_scalars("loss", 1.0, 1.0 + 1e-9, rtol=1e-6, atol=0.0).passed
    assert not compare_scalars("loss", 1.0, 1.1, rtol=1e-6, atol=0.0).passed
    assert not compare_scalars("n", 1, 1.0, rtol=0.0, atol=0.0).kind_ok
    assert compare_scalars("x", np.float32(0.5), np.asarray(0.5), rtol=0, atol=0).passed
    with pytest.raises(ValueError, match="expected a scalar"):
        compare_scalars("x", np.zeros(2), 0.0, rtol=0, atol=0)


def test_compare_curves_reports_first_step_outside_the_band() -> None:
    expected = np.linspace(1.0, 0.1, 10)
    actual = expected.copy()
    actual[3] += 0.02
    actual[6] += 0.05
    result = compare_curves("loss", expected, actual, atol=0.01, rtol=0.0)
    assert not result.passed and result.first_step_outside == 3
    assert result.first_expected == expected[3] and result.first_actual == actual[3]
    assert result.first_band == pytest.approx(0.01, abs=0)
    assert result.step_of_max_abs_error == 6 and result.elementwise.count_out == 2
    assert "step 3" in result.summary()
    json.dumps(result.to_dict(), allow_nan=False)


def test_compare_curves_passes_inside_the_band_and_flags_nan_step() -> None:
    expected = np.linspace(1.0, 0.1, 8)
    assert compare_curves("loss", expected, expected * (1 + 1e-7), atol=0.0, rtol=1e-6).passed
    diverged = expected.copy()
    diverged[5:] = np.nan
    result = compare_curves("loss", expected, diverged, atol=1.0, rtol=1.0)
    assert not result.passed and result.first_step_outside == 5


def test_compare_curves_length_mismatch_and_bad_rank() -> None:
    result = compare_curves("loss", np.zeros(5), np.zeros(6), atol=0.1, rtol=0.0)
    assert not result.passed and "(5,)" in result.summary() and "(6,)" in result.summary()
    with pytest.raises(ValueError, match="1-D"):
        compare_curves("loss", np.zeros((2, 2)), np.zeros((2, 2)), atol=0.1, rtol=0.0)


# --- properties ----------------------------------------------------------------------------------

_finite = {"allow_nan": False, "allow_infinity": False, "allow_subnormal": False}


_shapes = hnp.array_shapes(min_dims=0, max_dims=3, max_side=6)
# Explicit per-dtype element strategies: dict-style kwargs resolved against a sampled dtype
# raised InvalidArgument inside Hypothesis 6.155 when this module ran after others.
_any_finite_array = st.one_of(
    hnp.arrays(np.float32, _shapes, elements=st.floats(-(2.0**100), 2.0**100, width=32, **_finite)),
    hnp.arrays(np.float64, _shapes, elements=st.floats(-(2.0**100), 2.0**100, **_finite)),
    # max_magnitude exact in float32: Hypothesis rounds the drawn imaginary part to the
    # component width, and 1e30 rounds UP in float32, so cathetus(1e30, zi) became sqrt(< 0) =
    # NaN and the strategy raised InvalidArgument (min_value=nan) on some seeds
    hnp.arrays(np.complex64, _shapes, elements=st.complex_numbers(
        max_magnitude=2.0**100, width=64, allow_nan=False, allow_infinity=False,
        allow_subnormal=False)),
    hnp.arrays(np.complex128, _shapes, elements=st.complex_numbers(
        max_magnitude=2.0**100, allow_nan=False, allow_infinity=False, allow_subnormal=False)),
    hnp.arrays(st.sampled_from([np.int8, np.int64, np.uint16, np.bool_]), _shapes),
)


@SETTINGS
@given(_any_finite_array)
def test_array_against_itself_passes_with_zero_error(x: np.ndarray) -> None:
    result = compare_arrays("x", x, x.copy(), rtol=0.0, atol=0.0)
    assert result.passed and result.count_out == 0
    assert result.max_abs_error in (0.0, None) and result.worst == ()


@SETTINGS
@given(hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=2, max_side=8),
                  elements={**_finite, "min_value": -1e3, "max_value": 1e3}),
       st.floats(0.01, 10.0))
def test_uniform_offset_beyond_atol_fails_every_element(x: np.ndarray, offset: float) -> None:
    result = compare_arrays("x", x, x + offset, rtol=0.0, atol=offset / 2)
    assert not result.passed and result.count_out == x.size


@SETTINGS
@given(hnp.arrays(np.float64, st.integers(1, 20),
                  elements={"min_value": -np.pi, "max_value": np.pi}),
       st.floats(-0.5, 0.5))
def test_phase_error_is_wrap_safe(phase: np.ndarray, delta: float) -> None:
    result = compare_arrays("z", np.exp(1j * phase), np.exp(1j * (phase + delta)), rtol=0.0,
                            atol=2.0)
    # Unit-modulus phasors: the phase error is |delta| for every element, wrap or not;
    # 1e-9 covers the rounding of exp/angle near +-pi.
    assert result.max_phase_error_rad == pytest.approx(abs(delta), abs=1e-9)


def test_element_errors_is_the_rule_compare_arrays_applies() -> None:
    """One statement of the elementwise rule, shared with the review figures."""
    expected = np.array([1.0, 2.0, np.nan, np.inf, 0.0, 5.0])
    actual = np.array([1.05, 2.5, np.nan, 1.0, 0.0, np.nan])
    errors = element_errors(expected, actual, rtol=0.0, atol=0.1)
    np.testing.assert_array_equal(errors.mismatch, [False, False, False, True, False, True])
    np.testing.assert_array_equal(errors.out, [False, True, False, True, False, True])
    finite = np.isfinite(expected)
    np.testing.assert_allclose(errors.bound[finite], np.full(int(finite.sum()), 0.1), rtol=0,
                               atol=0)
    assert errors.excess[2] == -np.inf and errors.excess[3] == np.inf
    assert errors.excess[1] == pytest.approx(5.0, rel=1e-12)
    result = compare_arrays("x", expected, actual, rtol=0.0, atol=0.1)
    assert result.count_out == int(errors.out.sum()) == 3
