"""Shared helpers for the torch backend tests: synthetic data built with the float64 oracle.

Every data set here is small and seeded: a smooth random complex object, random non-integer scan
positions, patches cut with ``parity.oracle.extract_object_patches``, exit waves, far-field
amplitudes and Poisson counts, grouped with ``parity.grouping.make_grouping`` and prepared with
``parity.prepare.prepare``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from parity.config import ModelConfig  # noqa: E402
from parity.container import Container, ContainerMetadata  # noqa: E402
from parity.contract import PreparedData  # noqa: E402
from parity.grouping import make_grouping  # noqa: E402
from parity.oracle import physics as oracle  # noqa: E402
from parity.prepare import prepare  # noqa: E402
from parity.scaling import simulation_scale  # noqa: E402

#: Float32 physics vs the float64 oracle, as a fraction of max|reference|. Measured worst case
#: 2.5e-7 (about 2 float32 ulps) over N in {32, 64, 128}, gridsize 1 and 2, 5 seeds, for every
#: physics function and the stitcher; 1e-6 leaves a 4x margin and still catches any sign,
#: half-pixel or normalisation bug (those give errors of order 1e-2 or more).
PHYSICS_RTOL = 1e-6


def pytest_configure(config: pytest.Config) -> None:
    # Shared 2-core machines: one intra-op thread unless the caller set OMP_NUM_THREADS.
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS") or 1))


def assert_close_to(expected: np.ndarray, actual: np.ndarray, *, rtol_of_max: float,
                    what: str) -> None:
    """Fail unless ``max|actual - expected| <= rtol_of_max * max|expected|`` (shapes equal).

    The message reports the worst error, where it is, and the tolerance.
    """
    expected = np.asarray(expected)
    actual = np.asarray(actual)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    error = np.abs(actual.astype(np.complex128) - expected.astype(np.complex128))
    scale = float(np.abs(expected).max()) or 1.0
    worst = float(error.max()) if error.size else 0.0
    where = np.unravel_index(int(error.argmax()), error.shape) if error.size else ()
    assert worst <= rtol_of_max * scale, (
        f"{what}: max |error| {worst:.3e} at {where} exceeds {rtol_of_max:.1e} x max|ref| "
        f"{scale:.3e} = {rtol_of_max * scale:.3e}"
    )


def complex_noise(rng: np.random.Generator, *shape: int) -> np.ndarray:
    """Standard complex Gaussian noise, complex64."""
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)


def smooth_object(rng: np.random.Generator, size: int) -> np.ndarray:
    """``(size, size)`` complex64: smooth random amplitude in [0.7, 1], phase in [-1, 1] rad.

    The amplitude range matters for training tests: after the data normalisation the network
    must output ``|O|`` times a data-derived factor (about 0.7 here) through a sigmoid, so an
    object with more amplitude contrast would ask the sigmoid for values near or above 1.
    """
    from scipy.ndimage import gaussian_filter

    def field() -> np.ndarray:
        smooth = gaussian_filter(rng.standard_normal((size, size)), sigma=size / 24, mode="wrap")
        return (smooth - smooth.min()) / (smooth.max() - smooth.min())

    amplitude = 0.7 + 0.3 * field()
    phase = 2.0 * field() - 1.0
    return (amplitude * np.exp(1j * phase)).astype(np.complex64)


def gaussian_probe(N: int) -> np.ndarray:
    """``(N, N)`` complex64 Gaussian probe (sigma N/12) with a weak quadratic phase.

    Confined to the central ``N/2`` square where the network's object lives (amplitude 1 % at
    radius N/4); the quadratic phase breaks the twin-image symmetry of a real symmetric probe.
    """
    k = np.arange(N) - N // 2
    r2 = k[:, None] ** 2 + k[None, :] ** 2
    return (np.exp(-r2 / (2 * (N / 12) ** 2)) * np.exp(1j * 0.004 * r2)).astype(np.complex64)


@dataclass(frozen=True)
class SyntheticCase:
    """A simulated container, its grouping-ready config and the prepared data."""

    container: Container
    config: ModelConfig
    data: PreparedData


def simulate_case(*, N: int, gridsize: int, n_positions: int, seed: int,
                  nphotons: float = 1e6, object_px: int | None = None) -> SyntheticCase:
    """Simulate ``n_positions`` Poisson patterns of a smooth object at random positions."""
    rng = np.random.default_rng(seed)
    size = object_px or 2 * N
    obj = smooth_object(rng, size)
    positions = rng.uniform(N / 4, size - 1 - N / 4, size=(n_positions, 2))
    psi = oracle.exit_wave(gaussian_probe(N), oracle.extract_object_patches(obj, positions, N))
    energy = float(np.mean(np.sum(np.abs(psi) ** 2, axis=(-2, -1))))
    scale = simulation_scale(nphotons, mean_exit_energy=energy)
    counts = rng.poisson((scale * oracle.farfield_amplitude(psi)) ** 2)
    container = Container(
        diffraction=np.sqrt(counts).astype(np.float32), positions_px=positions,
        probe=gaussian_probe(N), object_truth=obj,
        metadata=ContainerMetadata(name="torch-test", nphotons=nphotons, gridsize=gridsize,
                                   K=6, seed=seed),
    )
    config = ModelConfig(N=N, gridsize=gridsize, n_filters_scale=1,
                         stitch_crop_px=min(20, N // 2))
    grouping = make_grouping(positions, gridsize=gridsize, K=6, seed=seed)
    return SyntheticCase(container, config, prepare(container, grouping, config))


class Helpers:
    """What the tests share, handed out as the ``helpers`` fixture (fixtures work under every
    pytest import mode; importing ``conftest`` by name does not)."""

    PHYSICS_RTOL = PHYSICS_RTOL
    close = staticmethod(assert_close_to)
    noise = staticmethod(complex_noise)
    simulate_case = staticmethod(simulate_case)


@pytest.fixture(scope="session")
def helpers() -> type[Helpers]:
    return Helpers


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture(scope="session")
def make_case() -> Callable[..., SyntheticCase]:
    """Factory fixture: ``make_case(N=32, gridsize=2, n_positions=40, seed=0)`` (cached)."""
    cache: dict[tuple, SyntheticCase] = {}

    def build(*, N: int = 32, gridsize: int = 1, n_positions: int = 40,
              seed: int = 0) -> SyntheticCase:
        key = (N, gridsize, n_positions, seed)
        if key not in cache:
            cache[key] = simulate_case(N=N, gridsize=gridsize, n_positions=n_positions,
                                       seed=seed)
        return cache[key]

    return build


@pytest.fixture(scope="session")
def trained_bundle(tmp_path_factory: pytest.TempPathFactory,
                   make_case: Callable[..., SyntheticCase]) -> tuple:
    """One short ``fit`` (N=32, gridsize 2, 1 epoch) shared by the infer and adapter tests.

    Returns ``(bundle_dir, case, train_result)``.
    """
    from backends.torch.train import fit
    from parity.config import TrainConfig

    case = make_case(N=32, gridsize=2, n_positions=48, seed=3)
    bundle = tmp_path_factory.mktemp("torch_bundle")
    train = TrainConfig(epochs=1, batch_size=8, validation_fraction=0.2, seed=5)
    result = fit(case.config, train, case.data, bundle)
    return bundle, case, result
