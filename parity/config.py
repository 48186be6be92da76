"""Effective configuration of the method: model, stitching and training options, one source of defaults.

Both backends receive these frozen dataclasses and report back the configuration they actually used
(:meth:`parity.contract.Adapter.effective_config`); the ladder's L0 compares the two dumps exactly.

Defaults follow PtychoPINN's dataclass configuration (``ptycho/config/config.py``) except where a
comment says why not (CPU-sized filter scale; a fixed intensity scale instead of TF's inert
trainable ``log_scale``).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import typing
from dataclasses import dataclass
from typing import Any

import numpy as np

from parity.conventions import SUPPORTED_N

__all__ = ["AMP_ACTIVATIONS", "ModelConfig", "TrainConfig", "config_from_dict", "validation_split"]

#: Amplitude head activations the reference offers (``amp_activation``).
AMP_ACTIVATIONS: tuple[str, ...] = ("sigmoid", "swish", "softplus", "relu")


def _check_field_types(config: Any) -> None:
    """Raise ValueError naming the first field whose value is not of its declared type.

    Accepted values are stored as the declared Python type (``np.int64(64)`` becomes ``64``).

    ``int`` fields take integers (NumPy's too) but not ``bool``; ``float`` fields take any finite
    real number but not ``bool``; ``bool`` and ``str`` fields take exactly that. Values often
    arrive from JSON or the command line, where ``"64"``, ``64.0``, ``true`` or ``1e999`` would
    otherwise be compared with numbers (a bare TypeError) or accepted and crash a backend later.
    """
    for name, kind in typing.get_type_hints(type(config)).items():
        value = getattr(config, name)
        is_bool = isinstance(value, bool | np.bool_)
        if kind is bool:
            ok = is_bool
        elif kind is int:
            ok = isinstance(value, numbers.Integral) and not is_bool
        elif kind is float:
            ok = isinstance(value, numbers.Real) and not is_bool
            if ok and not math.isfinite(value):
                raise ValueError(f"{type(config).__name__} option {name}={value!r}: "
                                 "expected a finite number")
        elif kind is str:
            ok = isinstance(value, str)
        else:  # a type this check does not know: __post_init__ validates it
            continue
        if not ok:
            raise ValueError(f"{type(config).__name__} option {name}={value!r} is "
                             f"{type(value).__name__}; expected {kind.__name__}")
        # NumPy scalars become Python ones: configs go into JSON and compare exactly at L0.
        object.__setattr__(config, name, kind(value))


@dataclass(frozen=True)
class ModelConfig:
    """Network, physics and stitching options.

    Attributes
    ----------
    N : int
        Patch and diffraction side in pixels; one of :data:`parity.conventions.SUPPORTED_N`.
    gridsize : int
        Group side ``g``; each sample is a group of ``C = g**2`` neighbouring scan positions.
    n_filters_scale : int
        Multiplier of every conv ladder width. The reference default is 2; 1 is the CPU-sized default.
    object_big : bool
        Merge the ``C`` predicted patches onto a shared canvas before re-extracting them (overlap
        constraint). When False the decoder predicts one patch that is re-extracted per position.
    probe_big : bool
        Add the SiLU border branch that predicts the object outside the central ``N/2`` square.
    probe_mask : bool
        Multiply the illuminated field by the hard disk mask of diameter ``N/2``.
    amp_activation : str
        Amplitude head activation, one of :data:`AMP_ACTIVATIONS`. Phase is always ``pi * tanh``.
    probe_scale : float
        Probe normalisation constant: ``P / (probe_scale * mean|M P|)``.
    offset_px : int
        Nominal intra-group spacing used to size the merge canvas.
    max_position_jitter_px : int
        Extra canvas margin for positions off the nominal grid.
    stitch_crop_px : int
        Side ``M`` of the central crop of each patch kept when stitching (reference: 20).
    """

    N: int = 64
    gridsize: int = 1
    n_filters_scale: int = 1
    object_big: bool = True
    probe_big: bool = False
    probe_mask: bool = False
    amp_activation: str = "sigmoid"
    probe_scale: float = 4.0
    offset_px: int = 4
    max_position_jitter_px: int = 10
    stitch_crop_px: int = 20

    def __post_init__(self) -> None:
        _check_field_types(self)
        if self.N not in SUPPORTED_N:
            raise ValueError(f"N={self.N} is not supported; expected one of {SUPPORTED_N}")
        if not 1 <= self.gridsize <= 4:
            raise ValueError(f"gridsize={self.gridsize}; expected an integer in 1..4")
        if self.n_filters_scale < 1:
            raise ValueError(f"n_filters_scale={self.n_filters_scale}; expected >= 1")
        if self.amp_activation not in AMP_ACTIVATIONS:
            raise ValueError(
                f"amp_activation={self.amp_activation!r}; expected one of {AMP_ACTIVATIONS}"
            )
        if not (math.isfinite(self.probe_scale) and self.probe_scale > 0):
            raise ValueError(f"probe_scale={self.probe_scale}; expected a positive finite number")
        if self.offset_px < 0 or self.max_position_jitter_px < 0:
            raise ValueError("offset_px and max_position_jitter_px must be >= 0")
        if self.max_position_jitter_px % 2 or ((self.gridsize - 1) * self.offset_px) % 2:
            raise ValueError("the canvas margin must be even so that the canvas centre is a pixel")
        if not (2 <= self.stitch_crop_px <= self.N and (self.N - self.stitch_crop_px) % 2 == 0):
            raise ValueError(
                f"stitch_crop_px={self.stitch_crop_px}; expected an even size in 2..N={self.N}"
            )

    @property
    def channels(self) -> int:
        """Patches per group, ``C = gridsize**2``."""
        return self.gridsize**2

    @property
    def output_channels(self) -> int:
        """Channels the decoder heads emit: ``C`` with ``object_big``, else 1."""
        return self.channels if self.object_big else 1

    @property
    def canvas_px(self) -> int:
        """Side of the in-model merge canvas: ``N + (g - 1) * offset + max_position_jitter``."""
        return self.N + (self.gridsize - 1) * self.offset_px + self.max_position_jitter_px


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation options (PtychoPINN ``model.train`` semantics).

    Attributes
    ----------
    epochs : int
        Maximum number of epochs (early stopping may end sooner).
    batch_size : int
        Groups per optimiser step (reference: 16).
    learning_rate : float
        Adam initial learning rate (reference: 1e-3, hard-coded).
    adam_beta_1, adam_beta_2 : float
        Adam moment decay rates.
    adam_epsilon : float
        Keras-style epsilon ("epsilon hat"), added to ``sqrt(v)`` before bias correction. The PyTorch
        backend implements the same update, so the same number means the same step.
    validation_fraction : float
        Fraction of groups, taken from the END before any shuffling, held out for ``val_loss``.
    plateau_factor, plateau_patience, plateau_min_lr, plateau_min_delta : float, int, float, float
        ReduceLROnPlateau on ``val_loss`` (Keras semantics: reduce after ``patience`` epochs without
        an improvement of at least ``min_delta``).
    early_stop_patience : int
        EarlyStopping on the training ``loss`` (Keras semantics, ``min_delta = 0``).
    nll_weight, mae_weight : float
        Weights of the Poisson NLL and the amplitude MAE terms (each in [0, 1]).
    seed : int
        Seeds the framework RNGs (initialisation, shuffling).
    deterministic : bool
        Deterministic kernels (TF op determinism; torch deterministic algorithms) and TF32 off.
    shuffle : bool
        Shuffle training groups every epoch.
    """

    epochs: int = 10
    batch_size: int = 16
    learning_rate: float = 1e-3
    adam_beta_1: float = 0.9
    adam_beta_2: float = 0.999
    adam_epsilon: float = 1e-7
    validation_fraction: float = 0.05
    plateau_factor: float = 0.5
    plateau_patience: int = 2
    plateau_min_lr: float = 1e-4
    plateau_min_delta: float = 1e-4
    early_stop_patience: int = 3
    nll_weight: float = 1.0
    mae_weight: float = 0.0
    seed: int = 0
    deterministic: bool = True
    shuffle: bool = True

    def __post_init__(self) -> None:
        _check_field_types(self)
        if self.epochs < 1:
            raise ValueError(f"epochs={self.epochs}; expected >= 1")
        if self.batch_size < 1:
            raise ValueError(f"batch_size={self.batch_size}; expected >= 1")
        for name in ("learning_rate", "adam_epsilon", "plateau_factor", "plateau_min_lr"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name}={value}; expected a positive finite number")
        for name in ("adam_beta_1", "adam_beta_2"):
            value = getattr(self, name)
            if not 0 <= value < 1:
                raise ValueError(f"{name}={value}; expected a value in [0, 1)")
        if not 0 <= self.validation_fraction < 1:
            raise ValueError(f"validation_fraction={self.validation_fraction}; expected [0, 1)")
        for name in ("nll_weight", "mae_weight"):
            value = getattr(self, name)
            if not 0 <= value <= 1:
                raise ValueError(f"{name}={value}; expected a value in [0, 1]")
        if self.nll_weight == 0 and self.mae_weight == 0:
            raise ValueError("nll_weight and mae_weight are both 0: the loss would be empty")
        if self.plateau_patience < 0 or self.early_stop_patience < 1:
            raise ValueError("plateau_patience must be >= 0 and early_stop_patience >= 1")


def config_from_dict(cls: type, values: dict[str, Any]) -> Any:
    """Build ``cls`` (a config dataclass) from a dict, naming any unknown key.

    Raises
    ------
    ValueError
        If ``values`` holds a key that is not a field of ``cls``.
    """
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - fields)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} option(s) {unknown}; known: {sorted(fields)}")
    return cls(**values)


def validation_split(n_groups: int, fraction: float) -> tuple[range, range]:
    """Training and validation group indices: the LAST ``fraction`` of groups, before shuffling.

    Keras ``fit(validation_split=...)`` semantics: ``split_at = floor(n * (1 - fraction))``. Both
    backends call this one function so that they hold out the same groups.
    """
    if n_groups < 1:
        raise ValueError(f"n_groups={n_groups}; expected >= 1")
    split_at = math.floor(n_groups * (1.0 - fraction))
    if split_at < 1:
        raise ValueError(f"validation_fraction={fraction} leaves no training group of {n_groups}")
    return range(0, split_at), range(split_at, n_groups)
