"""Shared helpers for the TensorFlow backend tests: synthetic data built with the float64 oracle.

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

from backends.tensorflow import _import_tensorflow

try:  # through the backend's helper, so its environment defaults apply to the tests too
    tf = _import_tensorflow()
except ImportError:  # pragma: no cover - environments without TensorFlow
    pytest.skip("tensorflow is not installed", allow_module_level=True)

from parity.config import ModelConfig, TrainConfig
from parity.container import Container, ContainerMetadata
from parity.contract import PreparedData
from parity.grouping import make_grouping
from parity.oracle import physics as oracle
from parity.prepare import prepare
from parity.scaling import simulation_scale

#: Float32 physics vs the float64 oracle, as a fraction of max|reference|. Measured worst case
#: 2.1e-7 (the far-field amplitude; about 2 float32 ulps of the largest value) over N in
#: {32, 64, 128}, gridsize 1 and 2, 5 seeds, every physics function and the stitcher; 1e-6 leaves
#: a 5x margin and still catches any sign, half-pixel or normalisation bug (errors >= 1e-2).
PHYSICS_RTOL = 1e-6

#: Float32 network forward (same weights) vs the float64 oracle network, fraction of
#: max|reference| per output. Measured worst case 2.5e-6 (the phase head at N=128: up to eleven
#: float32 conv layers of accumulated rounding; 3 seeds, N 64/128, gridsize 1/2, probe_big on and
#: off); 1e-5 leaves a 4x margin. A wrong layer order, activation, padding or layout gives errors
#: of order 1e-1.
NETWORK_RTOL = 1e-5


def pytest_configure(config: pytest.Config) -> None:
    # Shared 2-core machines: one intra-op thread unless the caller set OMP_NUM_THREADS. Must run
    # before TensorFlow's runtime starts (thread counts are fixed after that).
    threads = int(os.environ.get("OMP_NUM_THREADS") or 1)
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:  # already initialised by an earlier plugin: keep its setting
        pass


def assert_close_to(expected: np.ndarray, actual: np.ndarray, *, rtol_of_max: float,
                    what: str) -> float:
    """Fail unless ``max|actual - expected| <= rtol_of_max * max|expected|`` (shapes equal).

    The message reports the worst error, where it is, and the tolerance. Returns the measured
    error as a fraction of ``max|expected|``.
    """
    expected = np.asarray(expected)
    actual = np.asarray(actual)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    error = np.abs(actual.astype(np.complex128) - expected.astype(np.complex128))
    scale = float(np.abs(expected).max()) if expected.size else 0.0
    scale = scale or 1.0
    worst = float(error.max()) if error.size else 0.0
    where = np.unravel_index(int(error.argmax()), error.shape) if error.size else ()
    assert worst <= rtol_of_max * scale, (
        f"{what}: max |error| {worst:.3e} at {where} exceeds {rtol_of_max:.1e} x max|ref| "
        f"{scale:.3e} = {rtol_of_max * scale:.3e} ({int((error > rtol_of_max * scale).sum())} of "
        f"{error.size} elements out of tolerance)"
    )
    return worst / scale


def complex_noise(rng: np.random.Generator, *shape: int) -> np.ndarray:
    """Standard complex Gaussian noise, complex64."""
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)


def smooth_object(rng: np.random.Generator, size: int) -> np.ndarray:
    """``(size, size)`` complex64: smooth random amplitude in [0.5, 1], phase in [-1, 1] rad."""
    from scipy.ndimage import gaussian_filter

    def field() -> np.ndarray:
        smooth = gaussian_filter(rng.standard_normal((size, size)), sigma=size / 24, mode="wrap")
        return (smooth - smooth.min()) / (smooth.max() - smooth.min())

    amplitude = 0.5 + 0.5 * field()
    phase = 2.0 * field() - 1.0
    return (amplitude * np.exp(1j * phase)).astype(np.complex64)


def gaussian_probe(N: int) -> np.ndarray:
    """``(N, N)`` complex64 Gaussian probe (sigma N/8) with a weak quadratic phase."""
    k = np.arange(N) - N // 2
    r2 = k[:, None] ** 2 + k[None, :] ** 2
    return (np.exp(-r2 / (2 * (N / 8) ** 2)) * np.exp(1j * 0.002 * r2)).astype(np.complex64)


def random_batch(rng: np.random.Generator, config: ModelConfig, B: int) -> dict[str, np.ndarray]:
    """A batch (``parity.contract.BATCH_KEYS``) of random positive diffraction, asymmetric
    non-integer relative offsets, a Gaussian probe and ``s`` for 1e6 photons."""
    N, C = config.N, config.channels
    relative = rng.uniform(-3.0, 3.0, size=(B, C, 2))
    if C > 1:
        relative -= relative.mean(axis=1, keepdims=True)
    return {
        "diffraction": np.abs(rng.standard_normal((B, C, N, N))).astype(np.float32),
        "relative_px": relative.astype(np.float32),
        "probe": gaussian_probe(N),
        "intensity_scale": np.asarray(1e3 / (N / 2), dtype=np.float64),
    }


@dataclass(frozen=True)
class SyntheticCase:
    """A simulated container, its config and the prepared data."""

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
    probe = gaussian_probe(N)
    psi = oracle.exit_wave(probe, oracle.extract_object_patches(obj, positions, N))
    energy = float(np.mean(np.sum(np.abs(psi) ** 2, axis=(-2, -1))))
    scale = simulation_scale(nphotons, mean_exit_energy=energy)
    counts = rng.poisson((scale * oracle.farfield_amplitude(psi)) ** 2)
    container = Container(
        diffraction=np.sqrt(counts).astype(np.float32), positions_px=positions, probe=probe,
        object_truth=obj,
        metadata=ContainerMetadata(name="tf-test", nphotons=nphotons, gridsize=gridsize, K=6,
                                   seed=seed),
    )
    config = ModelConfig(N=N, gridsize=gridsize, n_filters_scale=1,
                         stitch_crop_px=min(20, N // 2))
    grouping = make_grouping(positions, gridsize=gridsize, K=6, seed=seed)
    return SyntheticCase(container, config, prepare(container, grouping, config))


class Helpers:
    """What the tests share, handed out as the ``helpers`` fixture (fixtures work under every
    pytest import mode; importing ``conftest`` by name does not)."""

    PHYSICS_RTOL = PHYSICS_RTOL
    NETWORK_RTOL = NETWORK_RTOL
    close = staticmethod(assert_close_to)
    noise = staticmethod(complex_noise)
    smooth_object = staticmethod(smooth_object)
    gaussian_probe = staticmethod(gaussian_probe)
    random_batch = staticmethod(random_batch)
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
    """One short ``fit`` (N=32, gridsize 2, 2 epochs) shared by the infer and adapter tests.

    Returns ``(bundle_dir, case, train_config, train_result)``.
    """
    from backends.tensorflow.train import fit

    case = make_case(N=32, gridsize=2, n_positions=48, seed=3)
    bundle = tmp_path_factory.mktemp("tf_bundle")
    train = TrainConfig(epochs=2, batch_size=8, validation_fraction=0.2, seed=5)
    result = fit(case.config, train, case.data, bundle)
    return bundle, case, train, result
