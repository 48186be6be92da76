"""Tests of parity/prepare.py: grouping from metadata, normalisation and the intensity scale."""

from __future__ import annotations

import math

import numpy as np
import pytest

from parity.config import ModelConfig
from parity.container import Container, ContainerMetadata
from parity.contract import PreparedData
from parity.grouping import make_grouping
from parity.prepare import group_container, prepare
from parity.scaling import normalisation_factor

N = 32


def _container(gridsize: int = 2) -> Container:
    rng = np.random.default_rng(4)
    n = 20
    positions = np.stack([rng.uniform(20, 60, n), rng.uniform(25, 50, n)], axis=1)
    return Container(
        diffraction=rng.gamma(2.0, 1.0, size=(n, N, N)).astype(np.float32),
        positions_px=positions,
        probe=np.exp(1j * rng.uniform(-1, 1, (N, N))).astype(np.complex64),
        object_truth=np.ones((80, 80), np.complex64),
        metadata=ContainerMetadata(name="prep", nphotons=4e6, gridsize=gridsize, K=5, seed=9),
    )


def test_group_container_uses_metadata_k_and_seed():
    container = _container()
    config = ModelConfig(N=N, gridsize=2)
    grouping = group_container(container, config, n_groups=8)
    direct = make_grouping(container.positions_px, gridsize=2, K=5, n_groups=8, seed=9)
    np.testing.assert_array_equal(grouping.indices, direct.indices)
    reseeded = group_container(container, config, n_groups=8, seed=10)
    assert not np.array_equal(reseeded.indices, grouping.indices)


def test_prepare_shapes_values_and_scale():
    container = _container()
    config = ModelConfig(N=N, gridsize=2)
    grouping = group_container(container, config)
    data = prepare(container, grouping, config)
    B = grouping.n_groups
    assert data.diffraction.shape == (B, 4, N, N) and data.diffraction.dtype == np.float32
    assert data.relative_px.shape == (B, 4, 2) and data.relative_px.dtype == np.float32
    assert data.centres_px.shape == (B, 2) and data.centres_px.dtype == np.float64
    c = normalisation_factor(container.diffraction)
    assert data.normalisation == c
    expected = container.diffraction[grouping.indices].astype(np.float64) * c
    # stored as float32: one rounding of a product, relative error <= 2**-24
    np.testing.assert_allclose(data.diffraction, expected, rtol=2**-23, atol=0)
    centres, relative = grouping.offsets(container.positions_px)
    np.testing.assert_array_equal(data.centres_px, centres)
    np.testing.assert_allclose(data.relative_px, relative, rtol=2**-23, atol=1e-12)
    assert data.intensity_scale == pytest.approx(math.sqrt(4e6) / (N / 2), rel=1e-15)
    np.testing.assert_array_equal(data.probe, container.probe)


def test_prepared_data_round_trip_and_batch():
    container = _container()
    config = ModelConfig(N=N, gridsize=2)
    data = prepare(container, group_container(container, config, n_groups=6), config)
    again = PreparedData.from_arrays(data.to_arrays())
    for key, value in data.to_arrays().items():
        np.testing.assert_array_equal(again.to_arrays()[key], value, err_msg=key)
    batch = data.batch(slice(2, 5))
    assert batch["diffraction"].shape == (3, 4, N, N)
    assert float(batch["intensity_scale"]) == data.intensity_scale


def test_prepare_rejects_mismatches():
    container = _container()
    with pytest.raises(ValueError, match="N=64"):
        group_container(container, ModelConfig(N=64, gridsize=2))
    grouping = group_container(container, ModelConfig(N=N, gridsize=2))
    with pytest.raises(ValueError, match="gridsize 2; config has 1"):
        prepare(container, grouping, ModelConfig(N=N, gridsize=1))
    with pytest.raises(ValueError, match="N=64"):
        prepare(container, grouping, ModelConfig(N=64, gridsize=2))
