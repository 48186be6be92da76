"""Tests of parity.metric_inputs: kind before value, every rejection names what and where."""

from __future__ import annotations

import numpy as np
import pytest

from parity.metric_inputs import (
    validate_amplitude_floor_fraction,
    validate_complex_images,
    validate_data_range,
    validate_pair,
    validate_weights,
)


def test_validate_pair_returns_float64_or_complex128_copies() -> None:
    reference = np.arange(4, dtype=np.int16)
    ref, tst = validate_pair(reference, np.ones(4, dtype=np.float32), what="f",
                             allow_complex=False)
    assert ref.dtype == np.float64 and tst.dtype == np.float64
    ref, tst = validate_pair(np.ones(2, dtype=np.complex64), np.ones(2, dtype=np.complex64),
                             what="f", allow_complex=True)
    assert ref.dtype == np.complex128 and tst.dtype == np.complex128
    ref[0] = 5  # a copy: the caller's array is untouched
    assert reference[0] == 0


@pytest.mark.parametrize(("reference", "test", "error", "message"), [
    (np.array(["a"]), np.array(["b"]), TypeError, r"f: reference has dtype <U1"),
    (np.ones(2, dtype=complex), np.ones(2, dtype=complex), TypeError, r"np\.abs"),
    (np.ones(3), np.ones(4), ValueError, r"\(3,\) but test has shape \(4,\)"),
    (np.ones(0), np.ones(0), ValueError, "empty"),
    (np.ones(3), np.array([1.0, np.inf, np.nan]), ValueError,
     r"test has 2 non-finite value\(s\), the first at index \(1,\)"),
])
def test_validate_pair_rejections_name_the_problem(reference: np.ndarray, test: np.ndarray,
                                                   error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        validate_pair(reference, test, what="f", allow_complex=False)


def test_validate_pair_rejects_one_real_and_one_complex() -> None:
    with pytest.raises(TypeError, match="reference is float64 but test is complex128"):
        validate_pair(np.ones(3), np.ones(3, dtype=complex), what="f", allow_complex=True)


def test_validate_pair_rank_and_complex_images() -> None:
    with pytest.raises(ValueError, match="expected a 2-D array"):
        validate_pair(np.ones(3), np.ones(3), what="f", allow_complex=True, ndim=2)
    field = np.ones((4, 4), dtype=np.complex64)
    ref, _ = validate_complex_images(field, field, what="g")
    assert ref.dtype == np.complex128 and ref.shape == (4, 4)
    with pytest.raises(TypeError, match="g: got real arrays"):
        validate_complex_images(np.ones((4, 4)), np.ones((4, 4)), what="g")
    with pytest.raises(ValueError, match="2-D"):
        validate_complex_images(np.ones(4, dtype=complex), np.ones(4, dtype=complex), what="g")


def test_validate_data_range() -> None:
    assert validate_data_range(np.float32(2.5), what="psnr") == 2.5
    for bad, error in ((None, TypeError), (True, TypeError), ("1", TypeError),
                       (0.0, ValueError), (-1.0, ValueError), (np.inf, ValueError)):
        with pytest.raises(error, match="psnr: data_range"):
            validate_data_range(bad, what="psnr")


def test_validate_weights() -> None:
    ones = validate_weights(None, (2, 3), what="fit")
    assert ones.dtype == np.float64 and ones.shape == (2, 3) and np.all(ones == 1.0)
    mask = np.array([[True, False, True], [False, False, True]])
    np.testing.assert_array_equal(validate_weights(mask, (2, 3), what="fit"), mask.astype(float))
    with pytest.raises(ValueError, match=r"fit: weights have shape \(3,\); expected \(2, 3\)"):
        validate_weights(np.ones(3), (2, 3), what="fit")
    with pytest.raises(TypeError, match="bool or real"):
        validate_weights(np.ones((2, 3), dtype=complex), (2, 3), what="fit")
    with pytest.raises(ValueError, match="finite and >= 0"):
        validate_weights(-np.ones((2, 3)), (2, 3), what="fit")
    with pytest.raises(ValueError, match="all weights are zero"):
        validate_weights(np.zeros((2, 3)), (2, 3), what="fit")


def test_validate_amplitude_floor_fraction() -> None:
    assert validate_amplitude_floor_fraction(0, what="e") == 0.0
    assert validate_amplitude_floor_fraction(np.float32(0.25), what="e") == 0.25
    for bad, error in ((None, TypeError), (False, TypeError), ("0.1", TypeError),
                       (1.0, ValueError), (-0.01, ValueError), (np.nan, ValueError)):
        with pytest.raises(error, match="e: amplitude_floor_fraction"):
            validate_amplitude_floor_fraction(bad, what="e")
