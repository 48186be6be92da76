"""Tests of parity/io/detector.py: bad-pixel filling."""

from __future__ import annotations

import numpy as np
import pytest

from parity.io.detector import check_counts, fill_bad_pixels


def test_single_bad_pixel_takes_the_neighbour_mean():
    frames = np.arange(2 * 5 * 5, dtype=np.float64).reshape(2, 5, 5) ** 1.5
    bad = np.zeros((5, 5), dtype=bool)
    bad[2, 3] = True
    filled = fill_bad_pixels(frames, bad)
    window = frames[:, 1:4, 2:5]
    expected = (window.sum(axis=(1, 2)) - frames[:, 2, 3]) / 8
    # Mean of eight float64 values: 1e-12 relative.
    np.testing.assert_allclose(filled[:, 2, 3], expected, rtol=1e-12)
    np.testing.assert_array_equal(filled[:, ~bad], frames[:, ~bad])


def test_cluster_fills_from_the_rim_and_zero_method():
    frames = np.full((1, 7, 7), 4.0)
    bad = np.zeros((7, 7), dtype=bool)
    bad[2:5, 2:5] = True
    frames[0, bad] = 1e6  # bad values must not leak into the fill
    filled = fill_bad_pixels(frames, bad)
    # A flat frame stays flat whatever the pass order (float64 means of 4.0: exact).
    np.testing.assert_array_equal(filled, np.full((1, 7, 7), 4.0))
    zeroed = fill_bad_pixels(frames, bad, method="zero")
    assert (zeroed[0, bad] == 0).all() and (zeroed[0, ~bad] == 4.0).all()
    assert (fill_bad_pixels(frames, np.ones((7, 7), dtype=bool)) == 0).all()


@pytest.mark.parametrize(("bad", "method", "match"), [
    (np.zeros((4, 4), dtype=bool), "neighbours", r"mask has shape \(4, 4\)"),
    (np.zeros((7, 7), dtype=np.uint8), "neighbours", "expected bool"),
    (np.zeros((7, 7), dtype=bool), "median", "unknown bad-pixel fill 'median'"),
])
def test_errors(bad, method, match):
    with pytest.raises(ValueError, match=match):
        fill_bad_pixels(np.ones((1, 7, 7)), bad, method=method)


@pytest.mark.parametrize(("frames", "match"), [
    (np.ones((4, 4)), r"scan\.h5: patterns have shape \(4, 4\); expected \(n, H, W\)"),
    (np.ones((1, 4, 4), np.complex64), r"scan\.h5: patterns have dtype complex64"),
    (np.where(np.arange(32).reshape(2, 4, 4) == 21, np.inf, 1.0),
     r"scan\.h5: patterns have 1 non-finite values \(first at index \(1, 1, 1\)\)"),
    (np.where(np.arange(32).reshape(2, 4, 4) == 6, -3, 1), r"negative at index \(0, 1, 2\)"),
])
def test_check_counts_names_the_first_bad_value(frames: np.ndarray, match: str):
    with pytest.raises(ValueError, match=match):
        check_counts(frames, where="scan.h5")


def test_check_counts_passes_counts_through():
    frames = np.arange(2 * 3 * 3, dtype=np.uint16).reshape(2, 3, 3)
    assert check_counts(frames, where="scan.h5") is frames
