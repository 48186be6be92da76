"""Fixed, seeded inputs for the ladder's stage checks (L1-L4), built once by the harness.

Offsets are asymmetric and non-integer on purpose: symmetric or integer cases hide sign and
axis-order bugs.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from parity.architecture import init_weights
from parity.config import ModelConfig, TrainConfig, validation_split
from parity.container import Container
from parity.contract import PreparedData
from parity.conventions import centre_mask

__all__ = ["L4_NOISE_RERUNS", "NOISE_FLOOR_JITTER", "initial_weights", "l4_batches", "network_batch",
           "perturbed_weights", "physics_inputs"]


def _smooth_complex(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    from scipy import ndimage

    raw = rng.normal(size=shape) + 1j * rng.normal(size=shape)
    smooth = (ndimage.gaussian_filter(raw.real, sigma=(0,) * (len(shape) - 2) + (2, 2))
              + 1j * ndimage.gaussian_filter(raw.imag, sigma=(0,) * (len(shape) - 2) + (2, 2)))
    amplitude = 0.5 + 0.5 * np.abs(smooth) / np.abs(smooth).max()
    return amplitude * np.exp(1j * np.angle(smooth))


def physics_inputs(container: Container, config: ModelConfig, *, seed: int,
                   batch: int = 2) -> dict[str, np.ndarray]:
    """Inputs of :meth:`parity.contract.Adapter.forward_physics` (``PHYSICS_INPUT_KEYS``).

    Patches are smooth random complex fields, zero outside the centre mask (the decoder's
    support); relative offsets are asymmetric, non-integer and sum to zero per group;
    translations are arbitrary non-integer shifts of both signs; the stitch set uses the first
    container positions; loss inputs are positive amplitudes in count units.
    """
    rng = np.random.default_rng(seed)
    N, C = config.N, config.channels
    patches = _smooth_complex(rng, (batch, C, N, N)) * centre_mask(N)
    relative = rng.uniform(-3.7, 4.3, size=(batch, C, 2))
    if C > 1:  # a lone patch keeps its non-zero offset, so the merge sign is still exercised
        relative -= relative.mean(axis=1, keepdims=True)
    translations = rng.uniform(-4.6, 5.3, size=(batch, C, 2))
    n_stitch = min(container.n_patterns, 24)
    stitch = _smooth_complex(rng, (n_stitch, N, N))
    obs = rng.uniform(0.5, 30.0, size=(batch, C, N, N))
    pred = obs * rng.uniform(0.7, 1.3, size=obs.shape)
    return {
        "probe": container.probe.astype(np.complex64),
        "patches": patches.astype(np.complex64),
        "relative_px": relative.astype(np.float32),
        "translations_px": translations.astype(np.float32),
        "stitch_patches": stitch.astype(np.complex64),
        "stitch_centres_px": container.positions_px[:n_stitch].astype(np.float64),
        "pred_amplitude": pred.astype(np.float32),
        "obs_amplitude": obs.astype(np.float32),
    }


def network_batch(data: PreparedData, *, size: int = 4) -> dict[str, np.ndarray]:
    """The first ``size`` groups as a batch for L2/L3."""
    return data.batch(slice(0, min(size, data.diffraction.shape[0])))


def l4_batches(data: PreparedData, train: TrainConfig, *, steps: int,
               seed: int) -> dict[str, np.ndarray]:
    """``steps`` batches in a fixed, seeded order from the training groups, stacked on axis 0.

    Both backends receive this exact order, so their trajectories are comparable step by step.
    """
    train_idx, _ = validation_split(data.diffraction.shape[0], train.validation_fraction)
    order = np.random.default_rng(seed).permutation(np.asarray(train_idx))
    size = min(train.batch_size, len(order) // max(steps, 1))
    if size < 1:
        raise ValueError(f"{len(order)} training groups cannot fill {steps} batches")
    chosen = order[: steps * size].reshape(steps, size)
    return {
        "diffraction": data.diffraction[chosen],
        "relative_px": data.relative_px[chosen],
        "probe": data.probe,
        "intensity_scale": np.asarray(data.intensity_scale, dtype=np.float64),
    }


def initial_weights(config: ModelConfig, *, seed: int) -> dict[str, np.ndarray]:
    """The NumPy-initialised weights pushed into every backend for L2-L4."""
    return init_weights(config, seed)


#: Relative jitter of the L4 noise-floor weights: a few float32 ulps (2**-23 ~ 1.2e-7).
NOISE_FLOOR_JITTER = 1e-7


#: How many differently jittered weight sets the baseline reruns the L4 steps from; the floor is
#: the largest spread. Where the trajectory is chaotic one rerun is a poor estimate: on
#: siemens-star (seed 0) a single rerun once came out 15x closer to the baseline than the
#: typical spread, and the backends, as far apart as usual, failed at 23x that floor.
L4_NOISE_RERUNS = 3


def perturbed_weights(weights: Mapping[str, np.ndarray], *, seed: int,
                      rerun: int = 0) -> dict[str, np.ndarray]:
    """``weights`` times ``1 + NOISE_FLOOR_JITTER * (+-1)`` elementwise (seeded signs).

    The baseline reruns the L4 steps from these to measure its own chaotic spread: how far float
    rounding alone carries a few Adam steps (Adam turns noise in a ~0 gradient into a +-lr step).
    Zero weights (initial biases) stay zero; the kernels' jitter reaches every output. ``rerun``
    picks one of :data:`L4_NOISE_RERUNS` independent sign patterns (0: the one L3 also uses).
    """
    rng = np.random.default_rng([int(seed), 7] + ([int(rerun)] if rerun else []))
    return {name: (np.asarray(value, np.float64)
                   * (1 + NOISE_FLOOR_JITTER * rng.choice((-1.0, 1.0), np.shape(value))))
            .astype(np.asarray(value).dtype) for name, value in weights.items()}
