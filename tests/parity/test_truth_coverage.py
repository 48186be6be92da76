"""Tests of parity/truth_coverage.py: a scan must leave L5 a region of the truth to score."""

from __future__ import annotations

import numpy as np
import pytest

from parity.container import Container, ContainerError
from parity.truth_coverage import check_truth_coverage

N = 8


def _container(x: np.ndarray, *, truth: bool = True) -> Container:
    """Patterns of side N at centres ``(x, y)`` on a 40x32 truth (y as in test_container.py)."""
    y = np.array([12.25, 12.5, 13.0, 20.5, 21.0])
    return Container(
        diffraction=np.ones((x.size, N, N), np.float32),
        positions_px=np.stack([x, y[: x.size]], axis=1),
        probe=np.ones((N, N), np.complex64),
        object_truth=np.ones((40, 32), np.complex64) if truth else None,
    )


def test_edge_patches_partly_outside_the_object_are_accepted():
    # A scan from edge to edge: the edge patches stick out, the middle ones are scored.
    container = _container(np.array([0.0, 8.0, 16.0, 24.0, 31.0]))
    check_truth_coverage(container)  # the default crop, min(20, N) = 8
    check_truth_coverage(container, crop_px=8)
    with pytest.raises(ContainerError, match=r"too small for the 40-px stitching crop"):
        check_truth_coverage(container, crop_px=40)


def test_a_scan_along_one_edge_leaves_nothing_to_score():
    # Every centre within 2 px of the left edge: the scored box (centres at least N/2 = 4 px
    # inside the edge) is empty along x; y is fine.
    container = _container(1.0 + 0.2 * np.arange(5))
    with pytest.raises(ContainerError, match=r"along x the patch centres span 1\.\.1\.8 px, but "
                                             r"only centres in \[4, 27\]") as info:
        check_truth_coverage(container)
    assert "along y" not in str(info.value)
    check_truth_coverage(_container(1.0 + 0.2 * np.arange(5), truth=False))  # no truth: no-op
