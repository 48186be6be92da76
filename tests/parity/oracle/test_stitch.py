"""Stitching a known object from its own patches (parity/oracle/stitch.py)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parity.oracle.physics import extract_object_patches
from parity.oracle.stitch import StitchedObject, canvas_geometry, crop_corners, stitch_patches

PROPERTY = settings(max_examples=25, deadline=None)


def _truth_window(obj: np.ndarray, stitched: StitchedObject) -> np.ndarray:
    """The object on the stitched canvas's pixels (the canvas may stick out: zero there)."""
    x0, y0 = stitched.origin_px
    height, width = stitched.reconstructed_obj.shape
    padded = np.pad(obj, ((height, height), (width, width)))
    return padded[y0 + height : y0 + 2 * height, x0 + width : x0 + 2 * width]


@PROPERTY
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 8), crop=st.sampled_from([4, 8, 12]),
       data=st.data())
def test_integer_positions_reproduce_the_object(seed, n, crop, data):
    N = 16
    rng = np.random.default_rng(seed)
    obj = rng.normal(size=(40, 52)) + 1j * rng.normal(size=(40, 52))
    xs = data.draw(st.lists(st.integers(N // 2, 51 - N // 2), min_size=n, max_size=n,
                            unique=True))
    ys = data.draw(st.lists(st.integers(N // 2, 39 - N // 2), min_size=n, max_size=n))
    positions = np.stack([xs, ys], axis=1).astype(np.float64)
    stitched = stitch_patches(extract_object_patches(obj, positions, N), positions,
                              crop_px=crop)
    covered = stitched.coverage > 0
    # every covered pixel is covered by whole crops: the count is a positive integer
    np.testing.assert_array_equal(stitched.coverage[covered],
                                  np.round(stitched.coverage[covered]))
    assert covered.sum() >= crop * crop
    truth = _truth_window(obj, stitched)
    # value * count / (count + 1e-9): relative error <= 1e-9, plus summation rounding ~1e-15
    np.testing.assert_allclose(stitched.reconstructed_obj[covered], truth[covered], rtol=2e-9,
                               atol=1e-13)
    np.testing.assert_array_equal(stitched.reconstructed_obj[~covered], 0)


def test_fractional_positions_smooth_object():
    # Plane wave O = exp(i k.r). Patches are sampled analytically at the fractional positions, so
    # only the stitching's bilinear splat is under test. On pixels reached by crop INTERIORS only
    # (integer coverage), each crop's two taps per axis average O at points f and 1-f away with
    # weights 1-f and f: the first-order error cancels and the error is at most
    # (kx^2 + ky^2) / 8. A placement error of d pixels would add |k.d| (first order).
    k = np.array([0.31, -0.23])  # (kx, ky) rad/px
    N, crop = 16, 10
    rng = np.random.default_rng(42)
    positions = np.stack([rng.uniform(10, 40, 25), rng.uniform(10, 30, 25)], axis=1)
    grid = np.arange(N) - N // 2
    ys = positions[:, 1, None, None] + grid[None, :, None]
    xs = positions[:, 0, None, None] + grid[None, None, :]
    patches = np.exp(1j * (k[0] * xs + k[1] * ys))
    stitched = stitch_patches(patches, positions, crop_px=crop)
    x0, y0 = stitched.origin_px
    rows, cols = np.indices(stitched.coverage.shape)
    truth = np.exp(1j * (k[0] * (cols + x0) + k[1] * (rows + y0)))
    interior = (stitched.coverage > 0.5) & (np.abs(stitched.coverage
                                                   - np.round(stitched.coverage)) < 1e-9)
    assert interior.sum() > 200  # the mask is not trivially small (301 px here)
    error = np.abs(stitched.reconstructed_obj - truth)[interior]
    bound = (k @ k) / 8 + 1e-9  # + the 1e-9 relative bias of STITCH_NORM_EPS
    assert error.max() <= bound, (error.max(), bound)
    # everywhere covered (crop edges included) the splat mixes values at most 1 px away per axis
    covered = stitched.coverage > 0
    lipschitz = np.abs(k).sum() * 1.0 + 1e-9
    assert np.abs(stitched.reconstructed_obj - truth)[covered].max() <= lipschitz


def test_geometry_origin_and_extent():
    centres = np.array([[10.25, 20.5], [30.0, 12.75]])
    corners = crop_corners(centres, 8)
    np.testing.assert_array_equal(corners, centres - 4)
    (x0, y0), (height, width) = canvas_geometry(centres, 8)
    assert (x0, y0) == (5, 7)  # floor(min corner) - 1
    assert (height, width) == (int(np.ceil(16.5)) + 8 + 2 - 7, 26 + 8 + 2 - 5)
    with pytest.raises(ValueError, match=r"expected \(n, 2\)"):
        canvas_geometry(np.zeros((0, 2)), 8)


def test_geometry_refuses_a_canvas_past_the_limit():
    # Positions in nm, not px: a 45000 x 45000 canvas is never allocated by any stitcher.
    centres = np.array([[0.0, 0.0], [45000.0, 100.0]])
    with pytest.raises(ValueError, match=r"the stitching canvas \(crop M=16\) spans 45019 x 119 "
                                         r"px \(limit 16384 px a side\): positions must be in "
                                         r"object pixels"):
        canvas_geometry(centres, 16)
    with pytest.raises(ValueError, match=r"limit 16384"):
        stitch_patches(np.zeros((2, 16, 16)), centres, crop_px=16)
    (_, _), (height, width) = canvas_geometry(np.array([[0.0, 0.0], [16000.0, 5.0]]), 16)
    assert width == 16019 and height == 24  # within the limit


def test_stitch_rejects_bad_shapes():
    with pytest.raises(ValueError, match=r"expected \(n, N, N\)"):
        stitch_patches(np.zeros((2, 8, 6)), np.zeros((2, 2)), crop_px=4)
    with pytest.raises(ValueError, match=r"expected \(2, 2\)"):
        stitch_patches(np.zeros((2, 8, 8)), np.zeros((3, 2)), crop_px=4)


def test_amplitude_and_phase_properties():
    patches = np.full((1, 8, 8), 2.0 * np.exp(0.5j))
    stitched = stitch_patches(patches, np.array([[10.0, 10.0]]), crop_px=4)
    covered = stitched.coverage > 0
    # 2 * count / (count + 1e-9) with count = 1
    np.testing.assert_allclose(stitched.recon_amp[covered], 2.0, rtol=2e-9, atol=0)
    np.testing.assert_allclose(stitched.recon_phase[covered], 0.5, rtol=0, atol=1e-12)
