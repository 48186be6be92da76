"""The adapter contract every backend implements, in NumPy terms only.

An adapter wraps one framework's implementation of the method. The engine talks to it only through
the methods below, passing and receiving NumPy arrays in the exchange layout of
:mod:`parity.conventions` (groups ``(B, C, N, N)``, offsets ``(B, C, 2)`` as (x, y), complex64),
weights in the neutral layout of :mod:`parity.architecture`, and configs from :mod:`parity.config`.

Stage hooks feed the ladder (README, "What a run does"; ../shared/DESIGN.md):

* L0 :meth:`Adapter.effective_config`
* L1 :meth:`Adapter.forward_physics` (keys :data:`PHYSICS_INPUT_KEYS` -> :data:`PHYSICS_OUTPUT_KEYS`)
* L2 :meth:`Adapter.network_forward` (:data:`BATCH_KEYS` -> :data:`NETWORK_OUTPUT_KEYS`)
* L3 :meth:`Adapter.loss_and_grads`
* L4 :meth:`Adapter.train_steps`
* L5 :meth:`Adapter.train`, :meth:`Adapter.infer`, :meth:`Adapter.stitch`

An adapter lists the hooks it implements in :attr:`Adapter.capabilities`; the worker does not
call a hook missing from it and reports the stage as "not supported by <adapter>" (its checks
``skipped``), and the backend's run as incomplete (exit 3): a stage that was asked for and not
run never lets a run pass. A listed hook that raises is an error of that backend.

Outputs cross the boundary as NumPy arrays (a framework tensor is refused with the hook and key
named); hooks must not print lines containing ``PARITY-PROGRESS`` (the worker's progress
protocol on stdout, recognised anywhere in a line; other output goes to the backend's log).
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from parity.config import ModelConfig, TrainConfig

__all__ = [
    "BATCH_KEYS",
    "HOOKS",
    "NETWORK_OUTPUT_KEYS",
    "PHYSICS_INPUT_KEYS",
    "PHYSICS_OUTPUT_KEYS",
    "POOL_INPUT_PREFIX",
    "Adapter",
    "PreparedData",
    "TrainResult",
    "check_keys",
]

#: Every hook name an adapter may list in ``capabilities``.
HOOKS: tuple[str, ...] = (
    "effective_config",
    "forward_physics",
    "network_forward",
    "loss_and_grads",
    "train_steps",
    "train",
    "infer",
    "stitch",
    "weights",
)

#: Inputs of :meth:`Adapter.forward_physics` (all NumPy):
#: ``probe`` (N, N) c64 raw probe; ``patches`` (B, C, N, N) c64 object patches;
#: ``relative_px`` (B, C, 2) f32 relative offsets; ``translations_px`` (B, C, 2) f32 arbitrary
#: translations for the translation stage; ``stitch_patches`` (n, N, N) c64;
#: ``stitch_centres_px`` (n, 2) f64; ``pred_amplitude`` / ``obs_amplitude`` (B, C, N, N) f32
#: amplitudes in count units for the losses.
PHYSICS_INPUT_KEYS: tuple[str, ...] = (
    "probe",
    "patches",
    "relative_px",
    "translations_px",
    "stitch_patches",
    "stitch_centres_px",
    "pred_amplitude",
    "obs_amplitude",
)

#: Outputs of :meth:`Adapter.forward_physics`:
#: ``probe_normalised`` (N, N); ``exit_wave`` (B, C, N, N) = normalised probe x patches (x mask
#: when ``probe_mask``); ``farfield_amplitude`` (B, C, N, N) of the exit wave; ``translated``
#: (B, C, N, N) patches translated by ``translations_px``; ``merged_canvas`` (B, P, P) in-model
#: merge; ``extracted`` (B, C, N, N) re-extraction from ``merged_canvas``; ``stitched`` (H', W')
#: and ``stitched_origin_px`` (2,) int; ``poisson_nll`` and ``mae`` scalars (f64 0-d arrays).
PHYSICS_OUTPUT_KEYS: tuple[str, ...] = (
    "probe_normalised",
    "exit_wave",
    "farfield_amplitude",
    "translated",
    "merged_canvas",
    "extracted",
    "stitched",
    "stitched_origin_px",
    "poisson_nll",
    "mae",
)

#: A training batch: ``diffraction`` (B, C, N, N) f32 normalised amplitudes (NOT multiplied by the
#: intensity scale; the adapter does that), ``relative_px`` (B, C, 2) f32, ``probe`` (N, N) c64 raw,
#: ``intensity_scale`` 0-d f64.
BATCH_KEYS: tuple[str, ...] = ("diffraction", "relative_px", "probe", "intensity_scale")

#: Outputs of :meth:`Adapter.network_forward`, all in exchange (channel-first) layout:
#: ``encoded`` (B, F, 8, 8); ``decoded_amp`` / ``decoded_phase`` (B, F', N/2, N/2) decoder-base
#: features; ``amplitude`` / ``phase`` (B, C_out, N, N) head outputs after activation and padding;
#: ``object_patches`` (B, C_out, N, N) c64; ``trimmed_obj`` (B, N, N) c64; ``pred_amplitude``
#: (B, C, N, N) f32 predicted far-field amplitude times the intensity scale.
NETWORK_OUTPUT_KEYS: tuple[str, ...] = (
    "encoded",
    "decoded_amp",
    "decoded_phase",
    "amplitude",
    "phase",
    "object_patches",
    "trimmed_obj",
    "pred_amplitude",
)

#: Prefix of the optional diagnostic outputs of :meth:`Adapter.network_forward`
#: (:func:`pool_input_keys`).
POOL_INPUT_PREFIX = "pool_input."


def pool_input_keys(config: ModelConfig) -> tuple[str, ...]:
    """Optional outputs of :meth:`Adapter.network_forward`: each encoder block's activation just
    before its 2x2 max-pool, ``(B, F_i, H_i, W_i)`` channel-first, float32.

    L2 compares them like the other outputs; L3 uses them to tell a max-pool window whose winner
    float32 rounding flipped between the backends (a float64 near tie: the gradient below it is
    routed through another pixel) from a port bug. An adapter that omits them loses only that
    diagnosis: its L3 gradients are then judged by the ordinary gradient rule.
    """
    from parity.architecture import encoder_widths

    return tuple(f"{POOL_INPUT_PREFIX}encoder.block{i}"
                 for i in range(len(encoder_widths(config))))


def check_keys(what: str, arrays: Mapping[str, Any], required: tuple[str, ...]) -> None:
    """Raise ``KeyError`` naming every required key that ``arrays`` lacks."""
    missing = [k for k in required if k not in arrays]
    if missing:
        raise KeyError(f"{what} lacks key(s) {missing}; has {sorted(arrays)}")


@dataclass(frozen=True)
class PreparedData:
    """What both backends train and infer on, prepared once by the harness.

    Attributes
    ----------
    diffraction : numpy.ndarray
        ``(B, C, N, N)`` float32 grouped amplitudes after statistical normalisation.
    relative_px : numpy.ndarray
        ``(B, C, 2)`` float32 relative offsets (sign per :mod:`parity.conventions`).
    centres_px : numpy.ndarray
        ``(B, 2)`` float64 group centres in object pixels (x, y).
    probe : numpy.ndarray
        ``(N, N)`` complex64 raw probe.
    intensity_scale : float
        ``s``; the model input is ``s * diffraction``.
    normalisation : float
        Statistical normalisation factor ``c`` already applied to ``diffraction``.
    """

    diffraction: np.ndarray
    relative_px: np.ndarray
    centres_px: np.ndarray
    probe: np.ndarray
    intensity_scale: float
    normalisation: float

    def __post_init__(self) -> None:
        d = np.asarray(self.diffraction)
        if d.ndim != 4 or d.shape[2] != d.shape[3]:
            raise ValueError(f"prepared diffraction has shape {d.shape}; expected (B, C, N, N)")
        B, C, N, _ = d.shape
        if np.shape(self.relative_px) != (B, C, 2):
            raise ValueError(f"relative_px has shape {np.shape(self.relative_px)}; expected {(B, C, 2)}")
        if np.shape(self.centres_px) != (B, 2):
            raise ValueError(f"centres_px has shape {np.shape(self.centres_px)}; expected {(B, 2)}")
        if np.shape(self.probe) != (N, N):
            raise ValueError(f"probe has shape {np.shape(self.probe)}; expected {(N, N)}")
        for name, array, dtype in (
            ("diffraction", d, np.float32),
            ("relative_px", self.relative_px, np.float32),
            ("centres_px", self.centres_px, np.float64),
            ("probe", self.probe, np.complex64),
        ):
            copy = np.array(array, dtype=dtype, copy=True)
            if not np.isfinite(copy).all():
                raise ValueError(f"prepared {name} has non-finite values")
            copy.flags.writeable = False
            object.__setattr__(self, name, copy)

    def batch(self, indices: np.ndarray | slice) -> dict[str, np.ndarray]:
        """A training batch (keys :data:`BATCH_KEYS`) of the groups at ``indices``."""
        return {
            "diffraction": self.diffraction[indices],
            "relative_px": self.relative_px[indices],
            "probe": self.probe,
            "intensity_scale": np.asarray(self.intensity_scale, dtype=np.float64),
        }

    def to_arrays(self) -> dict[str, np.ndarray]:
        """All fields as NumPy arrays (for an NPZ hand-over to a subprocess)."""
        return {
            "diffraction": self.diffraction,
            "relative_px": self.relative_px,
            "centres_px": self.centres_px,
            "probe": self.probe,
            "intensity_scale": np.asarray(self.intensity_scale, dtype=np.float64),
            "normalisation": np.asarray(self.normalisation, dtype=np.float64),
        }

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray]) -> PreparedData:
        """Inverse of :meth:`to_arrays`."""
        check_keys("prepared data", arrays,
                   ("diffraction", "relative_px", "centres_px", "probe", "intensity_scale",
                    "normalisation"))
        return cls(
            diffraction=arrays["diffraction"],
            relative_px=arrays["relative_px"],
            centres_px=arrays["centres_px"],
            probe=arrays["probe"],
            intensity_scale=float(arrays["intensity_scale"]),
            normalisation=float(arrays["normalisation"]),
        )


@dataclass(frozen=True)
class TrainResult:
    """Outcome of :meth:`Adapter.train`.

    Attributes
    ----------
    bundle_dir : pathlib.Path
        Directory that :meth:`Adapter.infer` can load in a fresh process: ``weights.npz``
        (neutral layout), ``config.json`` (effective config + intensity scale) and the native
        checkpoint.
    history : Mapping[str, list[float]]
        Per-epoch ``loss``, ``val_loss`` (may be empty without validation) and ``lr``.
    epochs_run : int
        Epochs actually run (early stopping may end sooner).
    seconds : float
        Wall time of the training loop.
    """

    bundle_dir: Path
    history: Mapping[str, list[float]] = field(default_factory=dict)
    epochs_run: int = 0
    seconds: float = 0.0


class Adapter(abc.ABC):
    """One backend's implementation of the method, seen through NumPy.

    Subclasses set :attr:`name`, :attr:`framework` and :attr:`capabilities` and implement the
    hooks they list. Constructors do no I/O and import no framework (imports are lazy).
    """

    #: Registry name (entry-point name).
    name: ClassVar[str] = ""
    #: Framework this adapter runs on ("tensorflow", "torch", "numpy", ...).
    framework: ClassVar[str] = ""
    #: Hooks implemented (subset of :data:`HOOKS`).
    capabilities: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, *, device: str | None = None) -> None:
        self.device_request = device

    # -- environment --------------------------------------------------------------------------
    @abc.abstractmethod
    def environment(self) -> dict[str, Any]:
        """Versions, device, numeric flags (TF32, determinism, oneDNN) as a JSON-able dict."""

    def configure_numerics(self, *, seed: int, deterministic: bool) -> None:  # noqa: B027
        """Seed the framework RNGs and pin deterministic kernels / TF32 off when asked."""

    def device_memory_peak(self, *, reset: bool = False) -> int | None:
        """Peak bytes allocated on this backend's accelerator since the last reset.

        ``None`` when it computes on a CPU (host memory is the process's RSS) or its framework
        does not track it. With ``reset``, a new window starts after reading (the benchmark reads
        one window per sweep point).
        """
        return None

    # -- L0 -----------------------------------------------------------------------------------
    def effective_config(self, model: ModelConfig, train: TrainConfig) -> dict[str, Any]:
        """The configuration this backend will actually run with (JSON-able), for exact L0 diff."""
        raise NotImplementedError(f"{self.name} does not implement effective_config")

    # -- L1 -----------------------------------------------------------------------------------
    def forward_physics(self, config: ModelConfig,
                        inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Each physics stage on fixed inputs (:data:`PHYSICS_INPUT_KEYS` -> OUTPUT_KEYS)."""
        raise NotImplementedError(f"{self.name} does not implement forward_physics")

    # -- L2 -----------------------------------------------------------------------------------
    def network_forward(self, config: ModelConfig, weights: Mapping[str, np.ndarray],
                        batch: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Forward pass with the given neutral weights (:data:`NETWORK_OUTPUT_KEYS`)."""
        raise NotImplementedError(f"{self.name} does not implement network_forward")

    # -- L3 -----------------------------------------------------------------------------------
    def loss_and_grads(self, config: ModelConfig, train: TrainConfig,
                       weights: Mapping[str, np.ndarray],
                       batch: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Loss, gradients and the weights after ONE optimiser step.

        Returns ``loss`` (0-d f64), ``grad/<name>`` and ``stepped/<name>`` for every weight.
        """
        raise NotImplementedError(f"{self.name} does not implement loss_and_grads")

    # -- L4 -----------------------------------------------------------------------------------
    def train_steps(self, config: ModelConfig, train: TrainConfig,
                    weights: Mapping[str, np.ndarray],
                    batches: list[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
        """``k`` optimiser steps over ``batches`` in the given order, from ``weights``.

        Returns ``losses`` (k,) f64 (loss of each batch before its step) and ``weights/<name>``.
        """
        raise NotImplementedError(f"{self.name} does not implement train_steps")

    # -- L5 -----------------------------------------------------------------------------------
    def train(self, config: ModelConfig, train: TrainConfig, data: PreparedData, workdir: Path,
              *, initial_weights: Mapping[str, np.ndarray] | None = None,
              progress: Any = None) -> TrainResult:
        """Train from scratch (native init unless ``initial_weights``); save a bundle."""
        raise NotImplementedError(f"{self.name} does not implement train")

    def infer(self, bundle_dir: Path, data: PreparedData) -> np.ndarray:
        """Load a bundle (fresh process safe) and predict ``trimmed_obj`` (B, N, N) complex64."""
        raise NotImplementedError(f"{self.name} does not implement infer")

    def predict_with_weights(self, config: ModelConfig, weights: Mapping[str, np.ndarray],
                             data: PreparedData, *, batch_size: int = 64) -> np.ndarray:
        """``trimmed_obj`` (B, N, N) for every group of ``data`` from a network holding the given
        neutral-layout ``weights`` (L5 runs one backend's trained weights through another).

        Default: :meth:`network_forward` batch by batch (it builds the network per call and also
        returns the L2 diagnostics). A backend overrides this with its inference pipeline on one
        network built from ``weights``; the result must be what :meth:`infer` gives for a bundle
        holding the same weights.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size}; expected >= 1")
        parts = [np.asarray(self.network_forward(
                     config, weights, data.batch(slice(start, start + batch_size)))["trimmed_obj"])
                 for start in range(0, data.diffraction.shape[0], batch_size)]
        return np.concatenate(parts, axis=0)

    def stitch(self, patches: np.ndarray, centres_px: np.ndarray, *,
               crop_px: int) -> tuple[np.ndarray, tuple[int, int]]:
        """Stitch (n, N, N) patches at centres (n, 2) -> (object (H', W') c64, origin (x0, y0))."""
        raise NotImplementedError(f"{self.name} does not implement stitch")

    # -- weights ------------------------------------------------------------------------------
    def build_model(self, config: ModelConfig, *, seed: int) -> Any:
        """A native model with native (framework) initialisation."""
        raise NotImplementedError(f"{self.name} does not implement build_model")

    def export_weights(self, model: Any) -> dict[str, np.ndarray]:
        """All trainable weights of a native model in the neutral layout (float32)."""
        raise NotImplementedError(f"{self.name} does not implement export_weights")

    def import_weights(self, model: Any, weights: Mapping[str, np.ndarray]) -> None:
        """Load neutral-layout weights into a native model, naming any missing or misshaped one."""
        raise NotImplementedError(f"{self.name} does not implement import_weights")
