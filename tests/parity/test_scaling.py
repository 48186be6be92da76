"""Tests of parity/scaling.py: statistical normalisation, intensity scale, simulation scale."""

from __future__ import annotations

import math

import numpy as np
import pytest

from parity.scaling import intensity_scale, normalisation_factor, simulation_scale


def test_normalisation_makes_mean_energy_n_over_2_squared():
    rng = np.random.default_rng(0)
    data = rng.gamma(2.0, 3.0, size=(7, 32, 32)).astype(np.float32)
    c = normalisation_factor(data)
    energy = np.mean(np.sum((c * data.astype(np.float64)) ** 2, axis=(-2, -1)))
    assert energy == pytest.approx(16.0**2, rel=1e-12)  # float64 accumulation: ~1e-15 relative
    # scaling the data by k scales the factor by 1/k
    assert normalisation_factor(3.0 * data.astype(np.float64)) == pytest.approx(c / 3.0, rel=1e-12)


@pytest.mark.parametrize("bad", [np.zeros((2, 8, 8)), np.full((2, 8, 8), np.nan)])
def test_normalisation_rejects_empty_or_non_finite(bad):
    with pytest.raises(ValueError, match="mean pattern energy"):
        normalisation_factor(bad)


def test_intensity_scale_formula():
    assert intensity_scale(1e6, 64) == pytest.approx(1000.0 / 32.0, rel=1e-15)
    # with normalised data, s^2 (N/2)^2 = nphotons: the expected counts per pattern
    assert intensity_scale(1e9, 128) ** 2 * 64**2 == pytest.approx(1e9, rel=1e-12)


@pytest.mark.parametrize("nphotons", [0.0, -5.0, math.nan, math.inf])
def test_scales_reject_bad_photons(nphotons):
    with pytest.raises(ValueError, match="nphotons"):
        intensity_scale(nphotons, 64)
    with pytest.raises(ValueError, match="nphotons"):
        simulation_scale(nphotons, mean_exit_energy=1.0)


def test_simulation_scale_sets_expected_counts():
    s = simulation_scale(1e5, mean_exit_energy=250.0)
    assert s**2 * 250.0 == pytest.approx(1e5, rel=1e-12)
    with pytest.raises(ValueError, match="exit-wave energy"):
        simulation_scale(1e5, mean_exit_energy=0.0)
