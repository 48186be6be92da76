"""Tests of parity.registration: known sub-pixel shifts recovered, the sign convention, bad
arguments, and the NaN result asked for on a constant input."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

from parity.registration import register_shift

sys.path.insert(0, str(Path(__file__).resolve().parent / "support"))
from images import fourier_shift as _fourier_shift
from images import smooth_object as _object


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


def test_constant_input_gives_nan_when_asked() -> None:
    constant = np.ones((16, 16), dtype=complex)
    estimate = register_shift(constant, _object(16, 3), if_constant="nan")
    assert all(math.isnan(v) for v in estimate.shift_px) and math.isnan(estimate.error)
    assert estimate.quantity == "complex"
    with pytest.raises(ValueError, match="if_constant"):
        register_shift(constant, constant, if_constant="zero")  # type: ignore[arg-type]
