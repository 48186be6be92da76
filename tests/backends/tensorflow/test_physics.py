"""``backends.tensorflow.physics`` against the float64 NumPy oracle (``parity.oracle.physics``).

Every comparison uses ``helpers.PHYSICS_RTOL`` (see ``conftest.py`` for the measured float32 error
it is calibrated on). The geometry of offsets: ``test_geometry.py``.
"""

from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from backends.tensorflow import physics  # noqa: E402
from parity.oracle import physics as oracle  # noqa: E402

CASES = [(32, 1), (64, 1), (64, 2), (128, 2)]


@pytest.mark.parametrize("N", [32, 64, 128])
def test_normalise_probe_matches_oracle(N, rng, helpers):
    probe = helpers.noise(rng, N, N)
    got = physics.normalise_probe(tf.constant(probe), 4.0).numpy()
    assert got.dtype == np.complex64
    helpers.close(oracle.normalise_probe(probe, 4.0), got, rtol_of_max=helpers.PHYSICS_RTOL,
                  what="normalised probe")


def test_normalise_probe_rejects_zero_probe():
    with pytest.raises(ValueError, match="zero inside the normalisation disk"):
        physics.normalise_probe(tf.zeros((32, 32), tf.complex64), 4.0)


@pytest.mark.parametrize(("N", "gridsize"), CASES)
@pytest.mark.parametrize("mask", [False, True])
def test_exit_wave_and_farfield_match_oracle(N, gridsize, mask, rng, helpers):
    C = gridsize**2
    probe = helpers.noise(rng, N, N)
    patches = helpers.noise(rng, 3, C, N, N)
    psi = physics.exit_wave(tf.constant(probe), tf.constant(patches), mask=mask)
    expected_psi = oracle.exit_wave(probe, patches, mask=mask)
    helpers.close(expected_psi, psi.numpy(), rtol_of_max=helpers.PHYSICS_RTOL, what="exit wave")
    amplitude = physics.farfield_amplitude(psi).numpy()
    assert amplitude.dtype == np.float32
    helpers.close(oracle.farfield_amplitude(psi.numpy()), amplitude,
                  rtol_of_max=helpers.PHYSICS_RTOL, what="far-field amplitude")


def test_farfield_parseval_and_dc_position(rng, helpers):
    psi = helpers.noise(rng, 2, 1, 64, 64)
    amplitude = physics.farfield_amplitude(tf.constant(psi)).numpy().astype(np.float64)
    energy_in = np.sum(np.abs(psi.astype(np.complex128)) ** 2, axis=(-2, -1))
    energy_out = np.sum(amplitude**2, axis=(-2, -1))
    # float32 FFT of 4096 values: relative energy error ~1e-7; 1e-6 is 10x that.
    np.testing.assert_allclose(energy_out, energy_in, rtol=1e-6)
    flat = np.ones((1, 64, 64), np.complex64)
    dc = physics.farfield_amplitude(tf.constant(flat)).numpy()[0]
    assert np.unravel_index(np.argmax(dc), dc.shape) == (32, 32)


def test_exit_wave_rejects_probe_of_wrong_size(rng, helpers):
    with pytest.raises(ValueError, match=r"probe has shape \(32, 32\); expected \(64, 64\)"):
        physics.exit_wave(tf.constant(helpers.noise(rng, 32, 32)),
                          tf.constant(helpers.noise(rng, 1, 1, 64, 64)))


def test_losses_match_oracle(rng):
    pred = np.abs(rng.standard_normal((4, 1, 32, 32))).astype(np.float32) * 20
    obs = np.round(np.abs(rng.standard_normal((4, 1, 32, 32))) * 20).astype(np.float32)
    nll = float(physics.poisson_nll(tf.constant(pred**2), tf.constant(obs**2)))
    mae = float(physics.mae_loss(tf.constant(pred), tf.constant(obs)))
    # float32 mean of 4096 terms of size ~1e3: relative error ~1e-7; 1e-6 is 10x that.
    np.testing.assert_allclose(nll, oracle.poisson_nll(pred**2, obs**2), rtol=1e-6)
    np.testing.assert_allclose(mae, oracle.mae_loss(pred, obs), rtol=1e-6)
    with pytest.raises(ValueError, match="differ in shape"):
        physics.poisson_nll(tf.constant(pred), tf.constant(obs[:2]))
