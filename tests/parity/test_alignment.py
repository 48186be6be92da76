"""Tests of parity.alignment: shift, phase offset/ramp and scale recovered and reported; the twin
check; wrap-safe phase errors; evaluation against a ground truth."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage

from parity.alignment import (
    PhaseFit,
    apply_alignment,
    compare_complex,
    evaluate_against_truth,
    fit_amplitude_scale,
    fit_phase_offset_and_ramp,
    register_shift,
    valid_region,
)

SETTINGS = settings(max_examples=20, deadline=None, derandomize=True, database=None)


def _object(size: int, seed: int) -> np.ndarray:
    """Smooth random complex object: amplitude in (0.2, 1), phase spanning several radians."""
    rng = np.random.default_rng(seed)
    amplitude = 0.6 + 0.4 * np.tanh(3 * ndimage.gaussian_filter(rng.standard_normal((size, size)),
                                                                2.0))
    phase = 6.0 * ndimage.gaussian_filter(rng.standard_normal((size, size)), 2.0)
    return amplitude * np.exp(1j * phase)


def _fourier_shift(image: np.ndarray, shift: tuple[float, float]) -> np.ndarray:
    """``image(r - shift)`` on the periodic grid."""
    return np.fft.ifft2(ndimage.fourier_shift(np.fft.fft2(image), shift))


def _ramp(shape: tuple[int, int], offset: float, k_x: float, k_y: float) -> np.ndarray:
    return PhaseFit(offset, k_x, k_y).phase_rad(shape)


# --- registration --------------------------------------------------------------------------------

@pytest.mark.parametrize("shift", [(0.37, -1.23), (-2.71, 0.46), (0.0, 0.05)])
def test_known_subpixel_shift_is_recovered(shift: tuple[float, float]) -> None:
    reference = _object(64, 0)
    estimate = register_shift(reference, _fourier_shift(reference, shift))
    # upsample 100 -> 0.01 px grid; 0.02 px is the brief's bound (one grid step of slack).
    np.testing.assert_allclose(estimate.shift_px, shift, rtol=0, atol=0.02)
    assert estimate.error < 1e-3  # a pure periodic shift registers with ~zero residual


def test_shift_sign_convention_with_an_integer_roll() -> None:
    reference = _object(48, 1)
    moved = np.roll(reference, (3, -5), axis=(0, 1))  # moved(y, x) = reference(y - 3, x + 5)
    for quantity in ("complex", "amplitude"):
        estimate = register_shift(reference, moved, quantity=quantity)  # type: ignore[arg-type]
        # integer rolls are exact; 1e-9 absorbs the DFT refinement rounding
        np.testing.assert_allclose(estimate.shift_px, (3.0, -5.0), rtol=0, atol=1e-9)
        assert estimate.quantity == quantity
    # The neighbour product is one column narrower, so a roll is not a roll of it: only close
    # (it bootstraps the alternation, which refines on the complex field); measured 0.02 px.
    bootstrap = register_shift(reference, moved, quantity="phase_gradient")
    np.testing.assert_allclose(bootstrap.shift_px, (3.0, -5.0), rtol=0, atol=0.1)


def test_register_shift_rejects_bad_arguments() -> None:
    image = _object(16, 2)
    with pytest.raises(ValueError, match="quantity"):
        register_shift(image, image, quantity="phase")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="upsample_factor"):
        register_shift(image, image, upsample_factor=0)
    with pytest.raises(ValueError, match="constant"):
        register_shift(np.ones((16, 16)), np.ones((16, 16)))


# --- phase offset, ramp, scale -------------------------------------------------------------------

@pytest.mark.parametrize(("offset", "k_x", "k_y"), [(0.7, 0.13, -0.21), (3.1, -0.02, 0.4),
                                                   (-3.1, 0.0, 0.0)])
def test_known_phase_offset_and_ramp_are_recovered(offset: float, k_x: float,
                                                   k_y: float) -> None:
    reference = _object(64, 3)
    test = 1.7 * reference * np.exp(1j * _ramp(reference.shape, offset, k_x, k_y))
    fit = fit_phase_offset_and_ramp(reference, test)
    # Noise-free: phasor differences are exact up to rounding of the sums (~1e-15 relative).
    assert fit.ramp_x_rad_per_px == pytest.approx(k_x, abs=1e-10)
    assert fit.ramp_y_rad_per_px == pytest.approx(k_y, abs=1e-10)
    # wrap-safe comparison of the offset: 3.1 rad and -3.1 rad sit next to the +-pi cut
    assert abs(np.angle(np.exp(1j * (fit.phase_offset_rad - offset)))) < 1e-10
    assert fit_amplitude_scale(reference, test) == pytest.approx(1.7, rel=1e-12)


def test_phase_fit_with_noise_and_weights() -> None:
    reference = _object(64, 4)
    rng = np.random.default_rng(5)
    test = reference * np.exp(1j * _ramp(reference.shape, -1.2, 0.05, 0.03))
    test = test + 0.05 * (rng.standard_normal(test.shape) + 1j * rng.standard_normal(test.shape))
    weights = np.zeros(test.shape, dtype=bool)
    weights[8:56, 8:56] = True
    test[~weights] = 0  # garbage outside the weighted region must not matter
    fit = fit_phase_offset_and_ramp(reference, test, weights=weights)
    # 5 % complex noise over 2300 px: the phasor sums average it out; measured errors were
    # 4e-4 rad/px and 1.1e-3 rad, so the bounds below hold with a 5x margin.
    assert fit.ramp_x_rad_per_px == pytest.approx(0.05, abs=2e-3)
    assert fit.ramp_y_rad_per_px == pytest.approx(0.03, abs=2e-3)
    assert fit.phase_offset_rad == pytest.approx(-1.2, abs=0.02)
    with pytest.raises(ValueError, match="all weights are zero"):
        fit_phase_offset_and_ramp(reference, test, weights=np.zeros(test.shape))
    with pytest.raises(TypeError, match="complex"):
        fit_phase_offset_and_ramp(np.abs(reference), np.abs(test))


def test_apply_alignment_inverts_a_known_distortion() -> None:
    reference = _object(32, 6)
    shift, phase, scale = (1.25, -0.6), PhaseFit(0.4, -0.07, 0.11), 0.8
    # apply_alignment undoes shift first, then phase, then scale: build the forward model so.
    distorted = scale * _fourier_shift(reference * np.exp(1j * phase.phase_rad((32, 32))),
                                       shift)
    restored = apply_alignment(distorted, shift_px=shift, phase=phase, amplitude_scale=scale)
    # periodic Fourier shift there and back is exact to rounding
    np.testing.assert_allclose(restored, reference, rtol=0, atol=1e-12)
    with pytest.raises(TypeError, match="complex"):
        apply_alignment(np.abs(reference), phase=phase)
    with pytest.raises(ValueError, match="amplitude_scale"):
        apply_alignment(reference, amplitude_scale=0.0)


def test_valid_region_cuts_the_wrapped_side() -> None:
    # dy = 1.5 -> ceil 2 + 1 margin = 3 rows off the bottom; dx = -2.2 -> 3 + 1 off the left.
    assert valid_region((10, 12), (1.5, -2.2)) == (slice(0, 7), slice(4, 12))
    assert valid_region((10, 12), (0.0, 0.0)) == (slice(0, 10), slice(0, 12))
    with pytest.raises(ValueError, match="leaves no pixel"):
        valid_region((4, 4), (3.5, 0.0))


# --- compare_complex -----------------------------------------------------------------------------

def test_compare_complex_of_identical_objects() -> None:
    reference = _object(48, 7)
    result = compare_complex(reference, reference.astype(np.complex64),
                             amplitude_floor_fraction=0.05)
    # complex64 rounding only: 2**-24 relative
    assert result.normalised_complex_error < 1e-6
    assert result.phase_max_abs_error_rad < 1e-6 and result.amplitude_max_abs_error < 1e-6
    np.testing.assert_allclose(result.shift_px, (0.0, 0.0), rtol=0, atol=1e-6)
    assert abs(result.phase_offset_rad) < 1e-6 and result.amplitude_scale == pytest.approx(1.0)
    assert not result.twin_suspected and result.best_orientation == "identity"
    record = result.to_dict()
    assert record["best_orientation"] == "identity" and record["shift_px"] == [0.0, 0.0]


def test_compare_complex_reports_but_does_not_remove_ambiguities() -> None:
    reference = _object(64, 8)
    shift, offset, k_x, k_y = (0.4, -0.7), 1.1, 0.06, -0.04
    test = 0.9 * _fourier_shift(reference, shift) * np.exp(1j * _ramp((64, 64), offset, k_x,
                                                                       k_y))
    result = compare_complex(reference, test, amplitude_floor_fraction=0.05)
    np.testing.assert_allclose(result.shift_px, shift, rtol=0, atol=0.02)  # 0.01 px grid
    # The joint fit is exact for this noise-free periodic model; 1e-3 leaves room for the
    # 0.01 px quantisation of the shift that the ramp is fitted after.
    assert result.phase_ramp_x_rad_per_px == pytest.approx(k_x, abs=1e-3)
    assert result.phase_ramp_y_rad_per_px == pytest.approx(k_y, abs=1e-3)
    assert result.phase_offset_rad == pytest.approx(offset, abs=1e-2)
    assert result.amplitude_scale == pytest.approx(0.9, abs=0.01)
    # not removed: the raw errors are large
    assert result.normalised_complex_error > 0.3 and result.phase_max_abs_error_rad > 1.0
    assert not result.twin_suspected and result.best_orientation == "identity"
    assert "fitted shift" in result.summary()


@pytest.mark.parametrize("roll", [(0, 0), (1, 1)])
def test_twin_image_is_detected(roll: tuple[int, int]) -> None:
    reference = _object(48, 9)
    # (1, 1): the twin about the DC-centred origin of an even grid lands one pixel off rot90.
    twin = np.roll(np.conj(np.rot90(reference, 2)), roll, axis=(0, 1))
    twin = twin * np.exp(1j * _ramp((48, 48), 0.3, 0.02, 0.0))  # plus a harmless ramp
    result = compare_complex(reference, twin, amplitude_floor_fraction=0.05)
    assert result.twin_suspected and result.best_orientation == "conj_rot180"
    assert result.orientation_errors["conj_rot180"] < 1e-6  # exact up to rounding
    assert "TWIN SUSPECTED" in result.summary()


def test_phase_errors_are_masked_below_the_amplitude_floor() -> None:
    reference = _object(32, 10)
    reference[:4] *= 1e-4  # near-zero amplitude: phase is meaningless there
    test = reference.copy()
    test[:4] *= np.exp(1j * 2.5)  # garbage phase where the amplitude is tiny
    result = compare_complex(reference, test, amplitude_floor_fraction=0.01)
    assert result.phase_max_abs_error_rad < 1e-12
    assert result.phase_pixel_fraction == pytest.approx(28 / 32, abs=1e-12)
    unmasked = compare_complex(reference, test, amplitude_floor_fraction=0.0)
    assert unmasked.phase_max_abs_error_rad == pytest.approx(2.5, abs=1e-9)
    with pytest.raises(ValueError, match="amplitude_floor_fraction"):
        compare_complex(reference, test, amplitude_floor_fraction=1.0)


@SETTINGS
@given(st.floats(-np.pi, np.pi), st.floats(-0.4, 0.4))
def test_phase_error_is_wrap_safe_near_pi(base: float, delta: float) -> None:
    reference = _object(16, 11)
    reference = np.abs(reference) * np.exp(1j * base)  # uniform phase, possibly at the cut
    test = reference * np.exp(1j * delta)
    result = compare_complex(reference, test, amplitude_floor_fraction=0.0)
    # every pixel is |delta| apart however close base + delta is to +-pi; 1e-9 for rounding
    assert result.phase_max_abs_error_rad == pytest.approx(abs(delta), abs=1e-9)
    assert abs(np.angle(np.exp(1j * (result.phase_offset_rad - delta)))) < 1e-9


# --- evaluate_against_truth ----------------------------------------------------------------------

def _distorted(truth: np.ndarray, *, noise: float, seed: int) -> np.ndarray:
    size = truth.shape[0]
    recon = 1.3 * _fourier_shift(truth, (0.6, -0.45))
    recon = recon * np.exp(1j * _ramp((size, size), -2.0, 0.05, 0.02))
    rng = np.random.default_rng(seed)
    return recon + noise * (rng.standard_normal(recon.shape) + 1j * rng.standard_normal(
        recon.shape))


def test_evaluate_recovers_and_reports_every_alignment_parameter() -> None:
    truth = _object(96, 12)
    result = evaluate_against_truth(truth, _distorted(truth, noise=0.0, seed=0))
    alignment = result["alignment"]
    np.testing.assert_allclose(alignment["shift_px"], (0.6, -0.45), rtol=0, atol=0.02)
    # Exact model (ramp on the reconstruction's own grid): recovered to rounding; 1e-6 margin.
    assert alignment["phase_offset_rad"] == pytest.approx(-2.0, abs=1e-6)
    assert alignment["phase_ramp_x_rad_per_px"] == pytest.approx(0.05, abs=1e-6)
    assert alignment["phase_ramp_y_rad_per_px"] == pytest.approx(0.02, abs=1e-6)
    assert alignment["amplitude_scale"] == pytest.approx(1.3, abs=1e-6)
    # wrapped border: ceil(0.6) + 1 rows off the bottom, ceil(0.45) + 1 columns off the left
    assert alignment["rows"] == [0, 94] and alignment["cols"] == [2, 96]
    for part in ("amplitude", "phase"):
        assert result[part]["mae"] < 1e-9 and result[part]["ssim"] > 1 - 1e-9
        assert result[part]["psnr"] > 150
    assert result["complex"]["normalised_error"] < 1e-9
    assert result["frc"]["status_half_bit"] == "above_to_nyquist"


def test_evaluate_with_noise_gives_finite_metrics_the_gate_can_read() -> None:
    truth = _object(96, 13)
    result = evaluate_against_truth(truth, _distorted(truth, noise=0.03, seed=1))
    # 3 % complex noise: alignment still recovered well inside the tolerances below (measured:
    # shift on the 0.01 px grid point of the truth, ramp within 2e-4 rad/px, scale 1.3017: noise
    # adds power to |recon|, so the least-squares scale is biased up by ~1e-3).
    np.testing.assert_allclose(result["alignment"]["shift_px"], (0.6, -0.45), rtol=0, atol=0.03)
    assert result["alignment"]["amplitude_scale"] == pytest.approx(1.3, abs=0.01)
    assert 0.5 < result["amplitude"]["ssim"] < 1.0 and 0.5 < result["phase"]["ssim"] < 1.0
    assert result["amplitude"]["data_range"] == pytest.approx(
        float(np.ptp(np.abs(truth[0:94, 2:96]))), rel=1e-12)
    # what parity.evaluation reads: the gated metrics and the complex FRC evidence
    for part in ("amplitude", "phase"):
        for name in ("ssim", "mae"):
            value = result[part][name]
            assert isinstance(value, float) and math.isfinite(value), (part, name)
    for key in ("frequency", "curve", "half_bit"):
        assert len(result["frc"][key]) == 47, key  # rings 1 .. 94 // 2 of the evaluated region


def test_evaluate_with_a_mask_and_its_errors() -> None:
    truth = _object(48, 14)
    recon = truth * np.exp(1j * 0.3)
    mask = np.zeros(truth.shape, dtype=bool)
    mask[10:40, 10:40] = True
    recon[~mask] = 0.5  # garbage outside the mask: the offset is fitted inside only
    result = evaluate_against_truth(truth, recon, mask=mask)
    # registration inside the mask's box and fits inside the mask: exact to rounding
    assert result["alignment"]["shift_px"] == [0.0, 0.0]
    assert result["alignment"]["phase_offset_rad"] == pytest.approx(0.3, abs=1e-9)
    assert result["phase"]["mae"] < 1e-9  # MAE/RMSE/PSNR are over the mask
    unmasked = evaluate_against_truth(truth, recon)  # the garbage now biases every fit
    assert abs(unmasked["alignment"]["phase_offset_rad"] - 0.3) > 0.1
    with pytest.raises(ValueError, match="no pixel"):
        evaluate_against_truth(truth, recon, mask=np.zeros(truth.shape, dtype=bool))
    with pytest.raises(ValueError, match="mask"):
        evaluate_against_truth(truth, recon, mask=mask.astype(float))
    with pytest.raises(TypeError, match="complex"):
        evaluate_against_truth(np.abs(truth), np.abs(recon))



def test_evaluate_pure_phase_truth_leaves_amplitude_psnr_ssim_undefined() -> None:
    truth = np.exp(1j * np.angle(_object(32, 15))).astype(np.complex64)
    result = evaluate_against_truth(truth, truth * np.exp(0.2j))
    amplitude = result["amplitude"]
    assert amplitude["psnr"] is None and amplitude["ssim"] is None and amplitude["frc"] is None
    assert "constant" in amplitude["undefined"]
    assert amplitude["mae"] < 1e-6  # complex64 rounding of a unit modulus
    assert result["phase"]["ssim"] > 1 - 1e-6
