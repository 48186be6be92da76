"""Tests of parity/container_checks.py: the photon-count estimate and the data-convention checks
shared by the container, the readers and the stitcher."""

from __future__ import annotations

import numpy as np
import pytest

from parity.container_checks import (
    check_centred,
    check_counts_match_nphotons,
    check_extent,
    check_scan_in_pixels,
    estimate_nphotons,
    mean_pattern_peak,
    plain_numbers,
    unit_hint,
)
from parity.conventions import MAX_CANVAS_SIDE_PX

N = 16


def _centred(n: int = 6, seed: int = 0) -> np.ndarray:
    """Flat noise plus a bright zero order at ``(N // 2, N // 2)``."""
    patterns = np.random.default_rng(seed).uniform(0.0, 1.0, size=(n, N, N))
    patterns[:, N // 2, N // 2] += 40.0
    return patterns.astype(np.float32)


def test_estimate_is_the_mean_pattern_energy():
    patterns = _centred()
    expected = float(np.mean(np.sum(patterns.astype(np.float64) ** 2, axis=(1, 2))))
    assert estimate_nphotons(patterns) == pytest.approx(expected, rel=1e-12)
    with pytest.raises(ValueError, match="cannot estimate nphotons"):
        estimate_nphotons(np.zeros((2, N, N)))
    with pytest.raises(ValueError, match="cannot estimate nphotons"):
        estimate_nphotons(np.full((2, N, N), np.nan))
    with pytest.raises(ValueError, match="of dtype complex64"):
        estimate_nphotons(np.ones((2, N, N), np.complex64))


def test_mean_pattern_peak_is_plain_ints():
    peak = mean_pattern_peak(_centred().mean(axis=0))
    assert peak == (N // 2, N // 2) and all(type(i) is int for i in peak)


@pytest.mark.parametrize("corner", [(0, 0), (0, N - 1), (N - 1, 0), (N - 2, 1)])
def test_a_corner_peak_is_refused(corner):
    patterns = np.roll(_centred(), (corner[0] - N // 2, corner[1] - N // 2), axis=(1, 2))
    with pytest.raises(ValueError, match=rf"look ifftshifted \(the mean pattern peaks at the "
                                         rf"corner \({corner[0]}, {corner[1]}\)"):
        check_centred(patterns, error=ValueError)


@pytest.mark.parametrize("patterns", [
    _centred(),
    np.ones((3, N, N)),  # flat: the first maximum is at (0, 0), but there is no zero order
    np.random.default_rng(5).uniform(0, 2, size=(4, N, N)),
    np.roll(_centred(), N // 2, axis=2),  # a peak on an edge, not a corner (fly001's mean)
])
def test_centred_flat_and_edge_patterns_pass(patterns):
    check_centred(patterns, error=ValueError)


def test_counts_are_refused_past_100x_the_recorded_nphotons():
    amplitudes = _centred()
    photons = estimate_nphotons(amplitudes)
    check_counts_match_nphotons(amplitudes, photons, error=ValueError)
    check_counts_match_nphotons(amplitudes, photons / 99.0, error=ValueError)
    check_counts_match_nphotons(amplitudes, photons * 1e4, error=ValueError)  # only too large
    with pytest.raises(ValueError, match=r"times the recorded nphotons=.*store np\.sqrt\(counts\)"):
        check_counts_match_nphotons(amplitudes**2, photons, error=ValueError)


def test_extent_limit():
    check_extent(MAX_CANVAS_SIDE_PX, MAX_CANVAS_SIDE_PX, what="it", error=ValueError)
    with pytest.raises(ValueError, match=rf"^it spans 5 x {MAX_CANVAS_SIDE_PX + 1} px"):
        check_extent(MAX_CANVAS_SIDE_PX + 1, 5, what="it", error=ValueError)


def test_scan_in_pixels_and_unit_hint():
    check_scan_in_pixels(np.array([[0.0, 0.0], [1.0, 0.0]]), error=ValueError)
    check_scan_in_pixels(np.array([[3e-7, 3e-7]]), error=ValueError)  # one position
    check_scan_in_pixels(np.array([[3e-7, 3e-7]] * 2), error=ValueError)  # duplicates: elsewhere
    with pytest.raises(ValueError, match=r"spans 0\.5 x 0 px \(x, y\), less than one pixel"):
        check_scan_in_pixels(np.array([[0.0, 0.0], [0.5, 0.0]]), error=ValueError)
    assert unit_hint(np.array([[1e-3, 0.0]])) == ""
    assert "metres or micrometres" in unit_hint(np.array([[2e-6, -5e-4]]))


def test_plain_numbers():
    assert plain_numbers(np.array([np.inf, 8.041338669864603])) == "[inf, 8.04134]"
