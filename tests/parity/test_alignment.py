"""Tests of parity.alignment: phase offset/ramp and scale recovered and reported, undoing them,
the valid region after a Fourier shift, and the joint shift-and-phase fit."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

from parity.alignment import (
    PhaseFit,
    align_shift_and_phase,
    apply_alignment,
    fit_amplitude_scale,
    fit_phase_offset_and_ramp,
    valid_region,
)

sys.path.insert(0, str(Path(__file__).resolve().parent / "support"))
from images import fourier_shift as _fourier_shift
from images import smooth_object as _object


def _ramp(shape: tuple[int, int], offset: float, k_x: float, k_y: float) -> np.ndarray:
    return PhaseFit(offset, k_x, k_y).phase_rad(shape)


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


# --- joint shift and phase -----------------------------------------------------------------------

def test_joint_fit_recovers_shift_and_ramp_together() -> None:
    reference = _object(64, 16)
    shift, offset, k_x, k_y = (-1.3, 0.7), 0.9, -0.05, 0.03
    test = _fourier_shift(reference, shift) * np.exp(1j * _ramp((64, 64), offset, k_x, k_y))
    estimate, phase, rounds = align_shift_and_phase(reference, test)
    np.testing.assert_allclose(estimate.shift_px, shift, rtol=0, atol=0.02)  # 0.01 px grid
    # exact periodic model; 1e-3 leaves room for the 0.01 px quantisation of the shift
    assert phase.ramp_x_rad_per_px == pytest.approx(k_x, abs=1e-3)
    assert phase.ramp_y_rad_per_px == pytest.approx(k_y, abs=1e-3)
    assert phase.phase_offset_rad == pytest.approx(offset, abs=1e-2)
    assert 1 <= rounds <= 4


def test_joint_fit_of_a_constant_pair_and_bad_iterations() -> None:
    constant = np.full((16, 16), 2.0 + 0j)
    estimate, phase, _ = align_shift_and_phase(constant, constant * np.exp(0.4j))
    # nothing to register: no shift, NaN error, and the offset is still fitted (exact)
    assert estimate.shift_px == (0.0, 0.0) and math.isnan(estimate.error)
    assert phase.phase_offset_rad == pytest.approx(0.4, abs=1e-12)
    with pytest.raises(ValueError, match="max_iterations"):
        align_shift_and_phase(constant, constant, max_iterations=0)
    with pytest.raises(TypeError, match="complex"):
        align_shift_and_phase(np.abs(constant), np.abs(constant))
