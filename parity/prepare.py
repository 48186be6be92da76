"""Preparation of the data both backends see: grouping, statistical normalisation, scaling.

Done once by the harness (framework-free) so that the two backends start from identical arrays.
"""

from __future__ import annotations

from parity.config import ModelConfig
from parity.container import Container
from parity.contract import PreparedData
from parity.grouping import Grouping, make_grouping
from parity.scaling import intensity_scale, normalisation_factor

__all__ = ["group_container", "prepare"]


def group_container(container: Container, config: ModelConfig, *, seed: int | None = None,
                    n_groups: int | None = None) -> Grouping:
    """Group the container's scan for ``config.gridsize`` (K and seed from its metadata)."""
    if container.N != config.N:
        raise ValueError(
            f"container patterns are {container.N}x{container.N} but the model expects N={config.N}"
        )
    meta = container.metadata
    return make_grouping(container.positions_px, gridsize=config.gridsize, K=meta.K,
                         n_groups=n_groups, seed=meta.seed if seed is None else seed,
                         source=meta.provenance.get("source_file"))


def prepare(container: Container, grouping: Grouping, config: ModelConfig) -> PreparedData:
    """Grouped, normalised data plus the intensity scale, for both backends.

    Notes
    -----
    ``diffraction = c * X[indices]`` with ``c`` from :func:`parity.scaling.normalisation_factor`
    over the whole container, and ``s = sqrt(nphotons) / (N/2)``.
    """
    if container.N != config.N:
        raise ValueError(
            f"container patterns are {container.N}x{container.N} but the model expects N={config.N}"
        )
    if grouping.gridsize != config.gridsize:
        raise ValueError(f"grouping is for gridsize {grouping.gridsize}; config has {config.gridsize}")
    c = normalisation_factor(container.diffraction)
    centres, relative = grouping.offsets(container.positions_px)
    return PreparedData(
        diffraction=container.diffraction[grouping.indices] * c,
        relative_px=relative,
        centres_px=centres,
        probe=container.probe,
        intensity_scale=intensity_scale(container.metadata.nphotons, config.N),
        normalisation=c,
    )
