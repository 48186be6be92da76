"""Tests of parity.complex_comparison: raw errors and fitted ambiguities reported (not applied),
the twin check, wrap-safe phase errors masked below the amplitude floor."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parity.alignment import PhaseFit
from parity.complex_comparison import (
    amplitude_floor_mask,
    compare_complex,
    normalised_complex_error,
)

sys.path.insert(0, str(Path(__file__).resolve().parent / "support"))
from images import fourier_shift as _fourier_shift
from images import smooth_object as _object

SETTINGS = settings(max_examples=20, deadline=None, derandomize=True, database=None)






def _ramp(shape: tuple[int, int], offset: float, k_x: float, k_y: float) -> np.ndarray:
    return PhaseFit(offset, k_x, k_y).phase_rad(shape)


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


def test_amplitude_floor_mask_and_its_errors() -> None:
    amplitude = np.array([[2.0, 0.09], [0.1, 0.0]])
    mask, floor = amplitude_floor_mask(amplitude, amplitude_floor_fraction=0.05, what="t")
    assert floor == pytest.approx(0.1, abs=1e-15)  # 0.05 * 2
    assert mask.tolist() == [[True, False], [True, False]]  # the floor itself is kept
    mask, floor = amplitude_floor_mask(amplitude, amplitude_floor_fraction=0.0, what="t")
    assert floor == 0.0 and mask.tolist() == [[True, True], [True, False]]  # exact 0 never
    with pytest.raises(ValueError, match="zero everywhere"):
        amplitude_floor_mask(np.zeros(3), amplitude_floor_fraction=0.05, what="t")
    with pytest.raises(TypeError, match=r"np\.abs"):
        amplitude_floor_mask(np.ones(3, dtype=complex), amplitude_floor_fraction=0.05, what="t")
    with pytest.raises(ValueError, match=">= 0"):
        amplitude_floor_mask(np.array([1.0, -0.5]), amplitude_floor_fraction=0.05, what="t")


def test_normalised_complex_error_removes_one_global_phase() -> None:
    reference = _object(16, 17)
    error, global_phase = normalised_complex_error(reference, reference * np.exp(-0.8j))
    # a global phase only: removed exactly, up to rounding
    assert error < 1e-12 and global_phase == pytest.approx(0.8, abs=1e-12)
    half = normalised_complex_error(reference, 0.5 * reference)[0]
    assert half == pytest.approx(0.5, abs=1e-12)  # sqrt(sum |A - A/2|^2 / sum |A|^2)
    with pytest.raises(ValueError, match="zero everywhere"):
        normalised_complex_error(np.zeros(4, dtype=complex), np.ones(4, dtype=complex))
