"""Tests of parity.metrics: hand-computed MAE/RMSE/PSNR, required data ranges, SSIM."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import ndimage

from parity.metrics import mae, psnr, rmse, ssim

# Few derandomized examples, no example database: pure NumPy code, reproducible.
SETTINGS = settings(max_examples=25, deadline=None, derandomize=True, database=None)


def _smooth_image(size: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return ndimage.gaussian_filter(rng.standard_normal((size, size)), 2.0)


# --- MAE, RMSE, PSNR -----------------------------------------------------------------------------

def test_mae_and_rmse_hand_computed() -> None:
    reference = np.array([1.0, 2.0, 3.0, 4.0])
    test = np.array([1.0, 3.0, 1.0, 4.0])  # differences 0, 1, -2, 0
    assert mae(reference, test) == pytest.approx(0.75, abs=1e-15)  # 3 / 4
    assert rmse(reference, test) == pytest.approx(math.sqrt(5 / 4), abs=1e-15)


def test_complex_mae_and_rmse_use_the_modulus() -> None:
    reference = np.zeros(2, dtype=np.complex64)
    test = np.array([3 + 4j, 0j], dtype=np.complex64)
    assert mae(reference, test) == pytest.approx(2.5, abs=1e-12)  # (5 + 0) / 2
    assert rmse(reference, test) == pytest.approx(math.sqrt(12.5), abs=1e-12)


def test_psnr_hand_computed_and_identical_is_infinite() -> None:
    reference = np.zeros(4)
    test = np.array([0.1, -0.1, 0.1, -0.1])  # MSE 0.01
    # 10 log10(2^2 / 0.01) = 10 log10(400) = 26.0206
    assert psnr(reference, test, data_range=2.0) == pytest.approx(26.020599913, abs=1e-8)
    assert psnr(reference, reference, data_range=1.0) == math.inf


@pytest.mark.parametrize(("data_range", "error"), [
    (None, TypeError), (True, TypeError), ("1", TypeError), (0.0, ValueError),
    (-1.0, ValueError), (math.nan, ValueError),
])
def test_data_range_is_required_and_validated(data_range: object,
                                              error: type[Exception]) -> None:
    image = _smooth_image(16, 0)
    with pytest.raises(error, match="data_range"):
        psnr(image, image, data_range=data_range)  # type: ignore[arg-type]
    with pytest.raises(error, match="data_range"):
        ssim(image, image, data_range=data_range)  # type: ignore[arg-type]


def test_data_range_has_no_default() -> None:
    with pytest.raises(TypeError):
        psnr(np.zeros(3), np.zeros(3))  # type: ignore[call-arg]


def test_bad_inputs_are_rejected_with_names() -> None:
    with pytest.raises(ValueError, match=r"\(3,\).*\(4,\)"):
        mae(np.zeros(3), np.zeros(4))
    with pytest.raises(TypeError, match="complex"):
        psnr(np.zeros(3, dtype=complex), np.zeros(3, dtype=complex), data_range=1.0)
    with pytest.raises(TypeError, match="both real or both complex"):
        mae(np.zeros(3), np.zeros(3, dtype=complex))
    bad = np.ones(3)
    bad[1] = np.nan
    with pytest.raises(ValueError, match=r"non-finite.*index \(1,\)"):
        rmse(np.ones(3), bad)


# --- SSIM ----------------------------------------------------------------------------------------

def test_ssim_of_an_image_with_itself_is_one_and_with_noise_less() -> None:
    image = _smooth_image(48, 1)
    data_range = float(image.max() - image.min())
    # SSIM(x, x) = 1 exactly up to rounding of the local moments.
    assert ssim(image, image, data_range=data_range) == pytest.approx(1.0, abs=1e-12)
    noisy = image + 0.2 * image.std() * np.random.default_rng(2).standard_normal(image.shape)
    value = ssim(image, noisy, data_range=data_range)
    assert 0.0 < value < 0.99


def test_ssim_rejects_complex_and_images_smaller_than_the_window() -> None:
    with pytest.raises(ValueError, match=">= 7"):
        ssim(np.ones((6, 8)), np.ones((6, 8)), data_range=1.0)
    with pytest.raises(TypeError, match=r"np\.abs"):
        ssim(np.ones((8, 8), dtype=complex), np.ones((8, 8), dtype=complex), data_range=1.0)


# --- properties ----------------------------------------------------------------------------------

@SETTINGS
@given(hnp.arrays(np.float64, st.tuples(st.integers(1, 20), st.integers(1, 20)),
                  elements={"min_value": -10.0, "max_value": 10.0, "allow_subnormal": False}),
       st.integers(0, 2**16))
def test_rmse_bounds_mae(image: np.ndarray, seed: int) -> None:
    other = image + np.random.default_rng(seed).standard_normal(image.shape)
    assert rmse(image, other) >= mae(image, other) - 1e-12  # Jensen; 1e-12 for rounding
