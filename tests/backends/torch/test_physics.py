"""backends/torch/physics.py against the float64 oracle (parity/oracle/physics.py).

Tolerance: ``helpers.PHYSICS_RTOL`` (conftest) x max|reference| for every function; see its comment for the
measured float32-vs-float64 error it is based on. The geometry of offsets: ``test_geometry.py``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from backends.torch import physics
from parity.oracle import physics as oracle

T = torch.from_numpy


@pytest.mark.parametrize("N", [32, 64, 128])
def test_normalise_probe_matches_oracle(helpers, rng: np.random.Generator, N: int) -> None:
    probe = helpers.noise(rng, N, N)
    got = physics.normalise_probe(T(probe), 4.0).numpy()
    assert got.dtype == np.complex64
    helpers.close(oracle.normalise_probe(probe, 4.0), got, rtol_of_max=helpers.PHYSICS_RTOL,
                    what="normalised probe")


def test_normalise_probe_rejects_zero_disk_and_bad_shape() -> None:
    probe = np.zeros((32, 32), np.complex64)
    probe[0, 0] = 1.0  # outside the normalisation disk
    with pytest.raises(ValueError, match="zero inside the normalisation disk"):
        physics.normalise_probe(T(probe), 4.0)
    with pytest.raises(ValueError, match=r"expected \(N, N\)"):
        physics.normalise_probe(T(np.ones((2, 32, 32), np.complex64)), 4.0)


@pytest.mark.parametrize("N", [32, 128])
@pytest.mark.parametrize("mask", [False, True])
def test_exit_wave_matches_oracle(helpers, rng: np.random.Generator, N: int, mask: bool) -> None:
    probe, patches = helpers.noise(rng, N, N), helpers.noise(rng, 3, 4, N, N)
    got = physics.exit_wave(T(probe), T(patches), mask=mask).numpy()
    helpers.close(oracle.exit_wave(probe, patches, mask=mask), got,
                    rtol_of_max=helpers.PHYSICS_RTOL, what=f"exit wave (mask={mask})")


def test_exit_wave_rejects_probe_size_mismatch(helpers, rng: np.random.Generator) -> None:
    with pytest.raises(ValueError, match=r"probe has shape \(32, 32\); expected \(64, 64\)"):
        physics.exit_wave(T(helpers.noise(rng, 32, 32)), T(helpers.noise(rng, 2, 1, 64, 64)))


@pytest.mark.parametrize("N", [32, 64, 128])
def test_farfield_amplitude_matches_oracle(helpers, rng: np.random.Generator, N: int) -> None:
    psi = helpers.noise(rng, 2, 4, N, N)
    got = physics.farfield_amplitude(T(psi)).numpy()
    assert got.dtype == np.float32
    helpers.close(oracle.farfield_amplitude(psi), got, rtol_of_max=helpers.PHYSICS_RTOL,
                    what="far-field amplitude")
    # Parseval with the orthonormal FFT: sum A**2 == sum |psi|**2 (float32 sums: rtol 1e-5).
    np.testing.assert_allclose((got.astype(np.float64) ** 2).sum(axis=(-2, -1)),
                               (np.abs(psi.astype(np.complex128)) ** 2).sum(axis=(-2, -1)),
                               rtol=1e-5)


def test_losses_match_oracle(rng: np.random.Generator) -> None:
    pred = (30 * np.abs(rng.standard_normal((4, 4, 32, 32)))).astype(np.float32)
    obs = np.sqrt(rng.poisson(pred.astype(np.float64) ** 2)).astype(np.float32)
    nll = float(physics.poisson_nll(T(pred**2), T(obs**2)))
    mae = float(physics.mae_loss(T(pred), T(obs)))
    # 0-d float32 means over 16k elements: measured relative error <= 2e-7; 1e-6 relative.
    np.testing.assert_allclose(nll, oracle.poisson_nll(pred**2, obs**2), rtol=1e-6)
    np.testing.assert_allclose(mae, oracle.mae_loss(pred, obs), rtol=1e-6)
    with pytest.raises(ValueError, match="differ in shape"):
        physics.poisson_nll(T(pred), T(obs[:2]))


def test_farfield_gradient_matches_finite_differences(helpers, rng: np.random.Generator) -> None:
    """float64 gradcheck (torch's default tolerances: atol 1e-5, rtol 1e-3) of the far field of
    the exit wave (the geometry stages: ``test_geometry.py``)."""
    images = torch.tensor(helpers.noise(rng, 1, 2, 6, 6), dtype=torch.complex128,
                          requires_grad=True)
    probe = torch.tensor(helpers.noise(rng, 6, 6), dtype=torch.complex128)
    assert torch.autograd.gradcheck(
        lambda x: physics.farfield_amplitude(physics.exit_wave(probe, x)), (images,))


@pytest.mark.gpu
def test_physics_on_cuda_matches_cpu(helpers, rng: np.random.Generator) -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    patches = helpers.noise(rng, 3, 4, 64, 64)
    psi = T(patches).cuda()
    helpers.close(oracle.farfield_amplitude(patches),
                    physics.farfield_amplitude(psi).cpu().numpy(),
                    rtol_of_max=helpers.PHYSICS_RTOL, what="far field on cuda")
