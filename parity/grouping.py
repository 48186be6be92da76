"""Grouping of scan positions into solution regions of ``C = gridsize**2`` neighbours.

Computed ONCE by the harness and handed to both backends, so that neither backend's random number
generator decides which data the other sees (PtychoPINN ``RawData.generate_grouped_data``,
"sample-then-group").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from parity.conventions import relative_offsets

__all__ = ["Grouping", "make_grouping"]


@dataclass(frozen=True)
class Grouping:
    """Indices of the scan positions that form each group.

    Attributes
    ----------
    indices : numpy.ndarray
        ``(n_groups, C)`` int64 indices into the container's patterns; channel ``c`` of a group is
        grid cell ``(c // g, c % g)``.
    gridsize : int
        Group side ``g``.
    K : int
        Neighbours considered per seed position.
    seed : int
        Seed of the NumPy generator that chose seeds and neighbours.
    """

    indices: np.ndarray
    gridsize: int
    K: int
    seed: int

    def __post_init__(self) -> None:
        indices = np.asarray(self.indices)
        C = self.gridsize**2
        if indices.ndim != 2 or indices.shape[1] != C or indices.shape[0] == 0:
            raise ValueError(f"grouping indices have shape {indices.shape}; expected (n_groups, {C})")
        if indices.dtype.kind not in "iu" or indices.min() < 0:
            raise ValueError("grouping indices must be non-negative integers")
        frozen = indices.astype(np.int64, copy=True)
        frozen.flags.writeable = False
        object.__setattr__(self, "indices", frozen)

    @property
    def n_groups(self) -> int:
        """Number of groups."""
        return int(self.indices.shape[0])

    @property
    def channels(self) -> int:
        """Patches per group ``C``."""
        return int(self.indices.shape[1])

    def group_positions(self, positions_px: np.ndarray) -> np.ndarray:
        """``(n_groups, C, 2)`` positions of each member, last axis ``(x, y)``."""
        positions = np.asarray(positions_px, dtype=np.float64)
        if self.indices.max() >= positions.shape[0]:
            raise ValueError(
                f"grouping refers to pattern {int(self.indices.max())} but the scan has "
                f"{positions.shape[0]} positions"
            )
        return positions[self.indices]

    def offsets(self, positions_px: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Group centres ``(n_groups, 2)`` and signed relative offsets ``(n_groups, C, 2)``.

        See :func:`parity.conventions.relative_offsets` for the sign.
        """
        return relative_offsets(self.group_positions(positions_px))


def make_grouping(positions_px: np.ndarray, *, gridsize: int, K: int = 4,
                  n_groups: int | None = None, seed: int = 0,
                  source: str | None = None) -> Grouping:
    """Form groups of ``C = gridsize**2`` nearby positions.

    Parameters
    ----------
    positions_px : numpy.ndarray
        ``(n, 2)`` scan positions, last axis ``(x, y)``.
    gridsize : int
        Group side ``g``.
    K : int
        Nearest neighbours (excluding the seed itself) each group is drawn from; ``K >= C``.
    n_groups : int, optional
        Number of groups. Default: one per position.
    seed : int
        Seed of the ``numpy.random.default_rng`` that picks seeds and neighbours.
    source : str, optional
        Where the positions come from (a container file); the error messages name it.

    Returns
    -------
    Grouping

    Raises
    ------
    ValueError
        If ``K < C``, the scan has fewer than ``K + 1`` positions (for ``C > 1``), or ``n_groups``
        exceeds the number of positions.

    Notes
    -----
    ``C = 1``: groups are the seed positions themselves, in scan order when ``n_groups`` is None,
    else a seeded random subset sorted in scan order. ``C > 1``: for each seed, query its ``K + 1``
    nearest neighbours, drop the seed, and pick ``C`` of the ``K`` without replacement; the seed is
    not necessarily a member of its own group (as in the reference).
    """
    positions = np.asarray(positions_px, dtype=np.float64)
    if positions.ndim != 2 or positions.shape[1] != 2:
        raise ValueError(f"positions have shape {positions.shape}; expected (n, 2)")
    n = positions.shape[0]
    C = gridsize**2
    if gridsize < 1:
        raise ValueError(f"gridsize={gridsize}; expected >= 1")
    if n_groups is not None and not 1 <= n_groups <= n:
        raise ValueError(f"n_groups={n_groups}; expected 1..{n} (one seed per position at most)")
    rng = np.random.default_rng(seed)
    if n_groups is None or n_groups == n:
        seeds = np.arange(n)
    else:
        seeds = np.sort(rng.choice(n, size=n_groups, replace=False))
    if C == 1:
        return Grouping(indices=seeds[:, None], gridsize=gridsize, K=K, seed=seed)
    where = f"{source}: " if source else ""
    if K < C:
        raise ValueError(f"{where}gridsize={gridsize} groups C={C} positions, but K={K} neighbours "
                         f"cannot supply {C} distinct members: use K >= {C} (the container's "
                         "_metadata K) or a smaller gridsize")
    if n < K + 1:
        raise ValueError(f"{where}the scan has {n} positions; grouping with K={K} needs at least "
                         f"{K + 1}")
    _, neighbours = cKDTree(positions).query(positions[seeds], k=K + 1)
    neighbours = neighbours[:, 1:]  # drop the seed itself
    picks = np.stack([rng.choice(K, size=C, replace=False) for _ in range(len(seeds))])
    members = np.take_along_axis(neighbours, picks, axis=1)
    return Grouping(indices=members, gridsize=gridsize, K=K, seed=seed)
