"""Tests of parity.truth_evaluation: every alignment parameter recovered and reported, metrics
the gate can read, masks, pure-phase truths, and the amplitude floor on the phase errors."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from parity.alignment import PhaseFit
from parity.truth_evaluation import (
    NO_STRUCTURE_CORRELATION,
    RECOMMENDED_AMPLITUDE_FLOOR_FRACTION,
    UNRELIABLE_REGISTRATION_ERROR,
    evaluate_against_truth,
    evaluation_warnings,
)

sys.path.insert(0, str(Path(__file__).resolve().parent / "support"))
from images import fourier_shift as _fourier_shift
from images import smooth_object as _object

#: The floor used where a test is not about the floor: the value parity.evaluation passes.
FLOOR = RECOMMENDED_AMPLITUDE_FLOOR_FRACTION






def _ramp(shape: tuple[int, int], offset: float, k_x: float, k_y: float) -> np.ndarray:
    return PhaseFit(offset, k_x, k_y).phase_rad(shape)


def _distorted(truth: np.ndarray, *, noise: float, seed: int) -> np.ndarray:
    size = truth.shape[0]
    recon = 1.3 * _fourier_shift(truth, (0.6, -0.45))
    recon = recon * np.exp(1j * _ramp((size, size), -2.0, 0.05, 0.02))
    rng = np.random.default_rng(seed)
    return recon + noise * (rng.standard_normal(recon.shape) + 1j * rng.standard_normal(
        recon.shape))


def test_evaluate_recovers_and_reports_every_alignment_parameter() -> None:
    truth = _object(96, 12)
    result = evaluate_against_truth(truth, _distorted(truth, noise=0.0, seed=0),
                                    amplitude_floor_fraction=FLOOR)
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
    result = evaluate_against_truth(truth, _distorted(truth, noise=0.03, seed=1),
                                    amplitude_floor_fraction=FLOOR)
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
    result = evaluate_against_truth(truth, recon, mask=mask, amplitude_floor_fraction=FLOOR)
    # registration inside the mask's box and fits inside the mask: exact to rounding
    assert result["alignment"]["shift_px"] == [0.0, 0.0]
    assert result["alignment"]["phase_offset_rad"] == pytest.approx(0.3, abs=1e-9)
    assert result["phase"]["mae"] < 1e-9  # MAE/RMSE/PSNR are over the mask
    # without the mask the garbage biases every fit
    unmasked = evaluate_against_truth(truth, recon, amplitude_floor_fraction=FLOOR)
    assert abs(unmasked["alignment"]["phase_offset_rad"] - 0.3) > 0.1
    with pytest.raises(ValueError, match="no pixel"):
        evaluate_against_truth(truth, recon, mask=np.zeros(truth.shape, dtype=bool),
                               amplitude_floor_fraction=FLOOR)
    with pytest.raises(ValueError, match="mask"):
        evaluate_against_truth(truth, recon, mask=mask.astype(float),
                               amplitude_floor_fraction=FLOOR)
    with pytest.raises(TypeError, match="complex"):
        evaluate_against_truth(np.abs(truth), np.abs(recon), amplitude_floor_fraction=FLOOR)


def test_evaluate_pure_phase_truth_leaves_amplitude_psnr_ssim_undefined() -> None:
    truth = np.exp(1j * np.angle(_object(32, 15))).astype(np.complex64)
    result = evaluate_against_truth(truth, truth * np.exp(0.2j), amplitude_floor_fraction=FLOOR)
    amplitude = result["amplitude"]
    assert amplitude["psnr"] is None and amplitude["ssim"] is None and amplitude["frc"] is None
    assert "constant" in amplitude["undefined"]
    assert amplitude["mae"] < 1e-6  # complex64 rounding of a unit modulus
    assert result["phase"]["ssim"] > 1 - 1e-6


def test_phase_ssim_uses_the_truth_phase_range() -> None:
    """A flat reconstruction of a phase spanning 0.4 rad: ~0 on the truth's range, while
    PtychoPINN's unit-range convention still reports it as nearly perfect (> 0.9)."""
    rng = np.random.default_rng(4)
    amplitude = 0.5 + 0.5 * ndimage.gaussian_filter(rng.random((48, 48)), 2)
    field = ndimage.gaussian_filter(rng.random((48, 48)), 2)
    phase = 0.2 + 0.4 * (field - field.min()) / np.ptp(field)
    truth = (amplitude * np.exp(1j * phase)).astype(np.complex64)
    flat = (amplitude * np.exp(0.4j)).astype(np.complex64)
    result = evaluate_against_truth(truth, flat, amplitude_floor_fraction=FLOOR, max_iterations=1)
    assert abs(result["phase"]["ssim"]) < 0.1
    assert result["phase"]["ssim_unit_range"] > 0.9  # measured 0.944
    # the truth's range over the evaluated region (the shift's wrapped border is cut)
    assert 0.3 < result["phase"]["data_range"] <= float(np.ptp(np.angle(truth))) + 1e-6


def test_constant_truth_phase_leaves_phase_ssim_undefined() -> None:
    truth = np.abs(_object(32, 16)).astype(np.complex64)
    result = evaluate_against_truth(truth, truth, amplitude_floor_fraction=FLOOR)
    assert result["phase"]["ssim"] is None and result["phase"]["frc"] is None
    assert "constant" in result["phase"]["undefined"]
    assert result["phase"]["ssim_unit_range"] > 1 - 1e-6


# --- amplitude floor on the phase errors ---------------------------------------------------------

def _with_dark_noise_region(seed: int) -> tuple[np.ndarray, np.ndarray, tuple[slice, slice]]:
    """Truth and reconstruction equal except in a dark 24 x 24 block, where the amplitude is
    1e-6 of the object's (zero to float32 precision) and the phase is independent uniform
    noise in each. (The amplitude is not exactly 0 because ``angle(0)`` is 0: an exact zero
    carries no phase to disagree about, and is excluded whatever the floor.)"""
    truth = _object(64, seed)
    rng = np.random.default_rng(seed + 1)
    dark = (slice(20, 44), slice(16, 40))
    truth[dark] = 1e-6 * np.exp(1j * rng.uniform(-np.pi, np.pi, (24, 24)))
    recon = truth.copy()
    recon[dark] = 1e-6 * np.exp(1j * rng.uniform(-np.pi, np.pi, (24, 24)))
    return truth, recon, dark


def test_phase_errors_skip_pixels_below_the_truth_amplitude_floor() -> None:
    truth, recon, dark = _with_dark_noise_region(18)
    floored = evaluate_against_truth(truth, recon, amplitude_floor_fraction=FLOOR)
    unfloored = evaluate_against_truth(truth, recon, amplitude_floor_fraction=0.0)
    for result in (floored, unfloored):
        # the dark block is 1e-6 of the signal: it cannot move the fits
        assert result["alignment"]["shift_px"] == [0.0, 0.0]
        assert abs(result["alignment"]["phase_offset_rad"]) < 1e-9
    phase = floored["phase"]
    # with the floor, only identical pixels are scored: zero up to rounding
    assert phase["mae"] < 1e-12 and phase["rmse"] < 1e-12 and phase["psnr"] > 200
    assert phase["amplitude_floor_fraction"] == FLOOR
    assert phase["amplitude_floor"] == pytest.approx(FLOOR * np.abs(truth).max(), rel=1e-12)
    assert phase["pixels_excluded_low_amplitude"] == truth[dark].size  # exact counts
    assert phase["pixels_evaluated"] == truth.size - truth[dark].size
    # without it the noise phase counts: 576 of 4096 pixels with |error| ~ U(0, pi), mean
    # pi/2, so the MAE is ~0.22 rad; 0.1 leaves room for the draw
    assert unfloored["phase"]["mae"] > 0.1 and unfloored["phase"]["psnr"] < 40
    assert unfloored["phase"]["pixels_excluded_low_amplitude"] == 0
    # the amplitude metrics do not depend on the floor
    assert floored["amplitude"]["mae"] == unfloored["amplitude"]["mae"]


def test_amplitude_floor_is_required_and_validated() -> None:
    truth = _object(16, 20)
    with pytest.raises(TypeError, match="amplitude_floor_fraction"):
        evaluate_against_truth(truth, truth)  # type: ignore[call-arg]
    for bad, error in ((1.0, ValueError), (-0.1, ValueError), (None, TypeError),
                       (True, TypeError)):
        with pytest.raises(error, match="amplitude_floor_fraction"):
            evaluate_against_truth(truth, truth, amplitude_floor_fraction=bad)  # type: ignore[arg-type]


def test_a_faithful_reconstruction_correlates_with_the_truth_and_raises_no_warning() -> None:
    truth = _object(96, 12)
    result = evaluate_against_truth(truth, _distorted(truth, noise=0.01, seed=1),
                                    amplitude_floor_fraction=FLOOR)
    assert result["amplitude"]["correlation"] > 0.99  # 1 % noise: well above any threshold
    assert result["phase"]["correlation"] > 0.99
    assert evaluation_warnings(result) == []


def test_a_flat_reconstruction_warns_it_is_no_better_than_a_constant() -> None:
    """The 3-epoch ``small`` run: flat reconstructions, amplitude SSIM 0.12, registration error
    0.93 and a 15 px shift on a 59 px object, and no word of it in the summary."""
    truth = _object(64, 12)
    rng = np.random.default_rng(3)
    flat = 0.7 * np.exp(0.2j) + 1e-3 * (rng.standard_normal(truth.shape)
                                         + 1j * rng.standard_normal(truth.shape))
    result = evaluate_against_truth(truth, flat, amplitude_floor_fraction=FLOOR)
    assert abs(result["amplitude"]["correlation"]) < NO_STRUCTURE_CORRELATION
    warnings = evaluation_warnings(result)
    assert any(w.startswith("amplitude is no better than a constant") for w in warnings)
    assert result["alignment"]["registration_error"] >= UNRELIABLE_REGISTRATION_ERROR
    assert warnings[0].startswith("registration to the truth failed")
    record = {**result, "alignment": {**result["alignment"], "registration_error": 0.93,
                                      "shift_px": [15.28, -0.44]}}
    failed = evaluation_warnings(record)[0]
    assert failed.startswith(f"registration to the truth failed: error 0.93 >= "
                             f"{UNRELIABLE_REGISTRATION_ERROR}")
    assert "(dy, dx) = (15.3, -0.44) px" in failed


def test_deramp_and_shift_removes_the_ramp_before_the_shift() -> None:
    """A zero fit and zero shift leave the reconstruction as it is; a pure offset is taken off
    (phase back to 0 within 1e-12 rad, float64)."""
    from parity.alignment import PhaseFit
    from parity.truth_evaluation import deramp_and_shift

    recon = np.exp(1j * 0.3) * np.ones((6, 6))
    same = deramp_and_shift(recon, PhaseFit(0.0, 0.0, 0.0), (0.0, 0.0))
    np.testing.assert_allclose(same, recon, rtol=0, atol=1e-12)
    flat = deramp_and_shift(recon, PhaseFit(0.3, 0.0, 0.0), (0.0, 0.0))
    np.testing.assert_allclose(np.angle(flat), 0.0, rtol=0, atol=1e-12)
