"""Tests of parity/grouping.py on asymmetric, non-integer scans (symmetric ones hide sign bugs)."""

from __future__ import annotations

import numpy as np
import pytest

from parity.conventions import LOCAL_OFFSET_SIGN
from parity.grouping import Grouping, make_grouping


def _scan(n: int = 40, seed: int = 7) -> np.ndarray:
    # A jittered, anisotropic scan: x spans 0..50, y spans 0..30, nothing on integer pixels.
    rng = np.random.default_rng(seed)
    return np.stack([rng.uniform(0.0, 50.0, n), rng.uniform(0.0, 30.0, n)], axis=1)


@pytest.mark.parametrize("n_groups", [None, 12])
def test_seeded_grouping_is_reproducible(n_groups):
    positions = _scan()
    first = make_grouping(positions, gridsize=2, K=6, n_groups=n_groups, seed=3)
    again = make_grouping(positions, gridsize=2, K=6, n_groups=n_groups, seed=3)
    np.testing.assert_array_equal(first.indices, again.indices)
    other = make_grouping(positions, gridsize=2, K=6, n_groups=n_groups, seed=4)
    assert not np.array_equal(first.indices, other.indices)
    assert first.indices.shape == (n_groups or len(positions), 4)
    assert first.indices.dtype == np.int64 and not first.indices.flags.writeable


def test_members_are_distinct_and_among_the_k_nearest():
    positions = _scan()
    K = 5
    grouping = make_grouping(positions, gridsize=2, K=K, seed=11)
    distances = np.linalg.norm(positions[:, None] - positions[None], axis=-1)
    for seed_index, members in enumerate(grouping.indices):  # n_groups=None: seed i is group i
        order = np.argsort(distances[seed_index], kind="stable")
        nearest = set(order[1 : K + 1].tolist())  # brute force, the seed itself excluded
        assert len(set(members.tolist())) == 4, members
        assert set(members.tolist()) <= nearest, (seed_index, members, nearest)


def test_relative_offsets_sum_to_zero_with_the_convention_sign():
    positions = _scan()
    grouping = make_grouping(positions, gridsize=3, K=10, seed=2)
    centres, relative = grouping.offsets(positions)
    members = positions[grouping.indices]
    np.testing.assert_allclose(centres, members.mean(axis=1), rtol=0, atol=1e-12)
    # |positions| <= 50, so the float64 rounding of a sum of 9 is far below 1e-12
    np.testing.assert_allclose(relative.sum(axis=1), 0.0, rtol=0, atol=1e-12)
    np.testing.assert_allclose(relative, LOCAL_OFFSET_SIGN * (members - centres[:, None]),
                               rtol=0, atol=1e-12)


def test_hand_computed_asymmetric_offsets():
    # Four members, non-integer, asymmetric; the mean is (1.875, 2.125) and every value is an
    # exact binary fraction, so the comparison is exact.
    positions = np.array([[0.5, 0.25], [3.75, 1.0], [1.0, 4.5], [2.25, 2.75], [9.0, 9.0]])
    grouping = Grouping(indices=np.array([[0, 1, 2, 3]]), gridsize=2, K=4, seed=0)
    centres, relative = grouping.offsets(positions)
    np.testing.assert_array_equal(centres, [[1.875, 2.125]])
    assert LOCAL_OFFSET_SIGN == -1.0  # the literal values below assume PtychoPINN's sign
    np.testing.assert_array_equal(
        relative, [[[1.375, 1.875], [-1.875, 1.125], [0.875, -2.375], [-0.375, -0.625]]]
    )


def test_gridsize_one_shortcut():
    positions = _scan(n=9)
    every = make_grouping(positions, gridsize=1, K=4, seed=0)
    np.testing.assert_array_equal(every.indices, np.arange(9)[:, None])
    subset = make_grouping(positions, gridsize=1, K=4, n_groups=4, seed=5)
    chosen = subset.indices[:, 0]
    assert len(set(chosen.tolist())) == 4 and np.all(np.diff(chosen) > 0)  # sorted, distinct
    _, relative = subset.offsets(positions)
    np.testing.assert_array_equal(relative, 0.0)


@pytest.mark.parametrize(
    ("n", "kwargs", "match"),
    [
        (40, {"gridsize": 2, "K": 3}, "K=3 neighbours cannot supply 4 distinct members: use K >= 4"),
        (4, {"gridsize": 2, "K": 4}, "4 positions; grouping with K=4 needs at least 5"),
        (40, {"gridsize": 2, "n_groups": 0}, "n_groups=0"),
        (40, {"gridsize": 2, "n_groups": 41}, "n_groups=41"),
        (40, {"gridsize": 0}, "gridsize=0"),
    ],
)
def test_bad_grouping_requests(n, kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_grouping(_scan(n=n), **kwargs)


def test_grouping_errors_name_the_source():
    with pytest.raises(ValueError, match=r"^scan\.npz: the scan has 3 positions; grouping with "
                                         r"K=4 needs at least 5$"):
        make_grouping(_scan(n=3), gridsize=2, K=4, source="scan.npz")
    with pytest.raises(ValueError, match=r"^scan\.npz: gridsize=2 groups C=4"):
        make_grouping(_scan(n=40), gridsize=2, K=3, source="scan.npz")


def test_bad_positions_and_indices():
    with pytest.raises(ValueError, match=r"expected \(n, 2\)"):
        make_grouping(np.zeros((5, 3)), gridsize=1)
    with pytest.raises(ValueError, match=r"expected \(n_groups, 4\)"):
        Grouping(indices=np.zeros((3, 2), dtype=int), gridsize=2, K=4, seed=0)
    with pytest.raises(ValueError, match="non-negative"):
        Grouping(indices=np.array([[-1]]), gridsize=1, K=4, seed=0)
    grouping = Grouping(indices=np.array([[7]]), gridsize=1, K=4, seed=0)
    with pytest.raises(ValueError, match="refers to pattern 7 but the scan has 3"):
        grouping.group_positions(np.zeros((3, 2)))
