"""The effective configuration every adapter reports at L0, derived in ONE place.

Each adapter's :meth:`~parity.contract.Adapter.effective_config` returns
:func:`effective_config_dict` of the configs it actually runs with, adding only facts about its
framework (``framework`` section). Everything outside that section is derived here from the two
config dataclasses and :mod:`parity.conventions`, so two backends that were handed the same configs
report identical dicts unless one of them changed a config on the way (the bug class L0 exists
for). The ``framework`` section holds what a backend states about itself (conv layout, compiled or
not, ...); it may legitimately differ between frameworks, so :func:`shared_part` drops it for the
exact comparison.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

from parity import conventions
from parity.architecture import BORDER_CHANNELS, decoder_widths, encoder_widths, weight_shapes
from parity.config import ModelConfig, TrainConfig

__all__ = [
    "ADAM_FORMULA",
    "EARLY_STOP_SEMANTICS",
    "FRAMEWORK_SECTION",
    "LOSS_REDUCTION",
    "PLATEAU_SEMANTICS",
    "VALIDATION_SPLIT_RULE",
    "effective_config_dict",
    "shared_part",
]

#: Adam update both backends implement (``docs/backends.md``, train.py): Keras "epsilon hat",
#: ``alpha = lr*sqrt(1-b2^t)/(1-b1^t)``, ``w -= alpha*m/(sqrt(v)+eps)``.
ADAM_FORMULA: str = "keras-epsilon-hat"

#: Reduction of both loss terms.
LOSS_REDUCTION: str = "mean over all elements"

#: ReduceLROnPlateau semantics (Keras: monitor val_loss, reduce after ``patience`` epochs without
#: an absolute improvement of at least ``min_delta``).
PLATEAU_SEMANTICS: str = "keras"

#: EarlyStopping semantics (Keras: monitor the training loss, ``min_delta = 0``).
EARLY_STOP_SEMANTICS: str = "keras"

#: How validation groups are chosen (:func:`parity.config.validation_split`).
VALIDATION_SPLIT_RULE: str = "last fraction before shuffling (keras validation_split)"

#: Key of the section that holds a backend's statements about its own framework.
FRAMEWORK_SECTION: str = "framework"


def effective_config_dict(model: ModelConfig, train: TrainConfig,
                          **backend_specific: Any) -> dict[str, Any]:
    """JSON-able effective configuration: configs, derived values, shared semantics.

    Parameters
    ----------
    model : ModelConfig
        The model configuration the backend runs with.
    train : TrainConfig
        The training configuration the backend runs with.
    **backend_specific
        Facts about the framework implementation (e.g. ``conv_layout="NHWC"``), stored under
        :data:`FRAMEWORK_SECTION`; values must be JSON-serialisable.

    Returns
    -------
    dict[str, Any]
        ``model`` and ``train`` (``dataclasses.asdict``); ``derived`` (``channels``,
        ``output_channels``, ``canvas_px``, ``encoder_widths``, ``decoder_widths``,
        ``head_in_channels``, ``border_width`` or None, ``weight_shapes`` name -> list,
        ``n_parameters``); ``optimizer``; ``loss``; ``callbacks``; ``conventions``; and
        ``framework`` (``backend_specific``). Lists, never tuples, so a JSON round trip is exact.

    Raises
    ------
    TypeError
        If ``model``/``train`` are not the config dataclasses, or a backend-specific value is not
        JSON-serialisable (the key is named).
    """
    if not isinstance(model, ModelConfig) or not isinstance(train, TrainConfig):
        raise TypeError(f"expected (ModelConfig, TrainConfig); got ({type(model).__name__}, "
                        f"{type(train).__name__})")
    for key, value in backend_specific.items():
        try:
            json.dumps(value)
        except TypeError as err:
            raise TypeError(f"backend-specific value {key}={value!r} is not JSON-serialisable: "
                            f"{err}") from err
    shapes = weight_shapes(model)
    decoder = decoder_widths(model)
    effective: dict[str, Any] = {
        "model": dataclasses.asdict(model),
        "train": dataclasses.asdict(train),
        "derived": {
            "channels": model.channels,
            "output_channels": model.output_channels,
            "canvas_px": model.canvas_px,
            "encoder_widths": encoder_widths(model),
            "decoder_widths": decoder,
            "decoded_px": model.N // 2,
            "head_in_channels": decoder[-1] - BORDER_CHANNELS,
            "border_width": (model.n_filters_scale * 2048 // model.N) if model.probe_big else None,
            "weight_shapes": {name: list(shape) for name, shape in shapes.items()},
            "n_parameters": sum(math.prod(shape) for shape in shapes.values()),
        },
        "optimizer": {
            "name": "adam",
            "formula": ADAM_FORMULA,
            "learning_rate": train.learning_rate,
            "beta_1": train.adam_beta_1,
            "beta_2": train.adam_beta_2,
            "epsilon": train.adam_epsilon,
        },
        "loss": {
            "formula": "nll_weight * poisson_nll(pred**2, obs**2) + mae_weight * mae(pred, obs)",
            "reduction": LOSS_REDUCTION,
            "nll_weight": train.nll_weight,
            "mae_weight": train.mae_weight,
            "poisson_log_floor": conventions.POISSON_LOG_FLOOR,
        },
        "callbacks": {
            "plateau": {"semantics": PLATEAU_SEMANTICS, "monitor": "val_loss",
                        "factor": train.plateau_factor, "patience": train.plateau_patience,
                        "min_lr": train.plateau_min_lr, "min_delta": train.plateau_min_delta},
            "early_stopping": {"semantics": EARLY_STOP_SEMANTICS, "monitor": "loss",
                               "patience": train.early_stop_patience, "min_delta": 0.0},
            "validation_split": VALIDATION_SPLIT_RULE,
        },
        "conventions": {
            "position_axes": list(conventions.POSITION_AXES),
            "local_offset_sign": conventions.LOCAL_OFFSET_SIGN,
            "fft_norm": conventions.FFT_NORM,
            "fft_shift_axes": list(conventions.FFT_SHIFT_AXES),
            "merge_norm_eps": conventions.MERGE_NORM_EPS,
            "stitch_norm_eps": conventions.STITCH_NORM_EPS,
        },
        FRAMEWORK_SECTION: dict(backend_specific),
    }
    return effective


def shared_part(effective: dict[str, Any]) -> dict[str, Any]:
    """``effective`` without its :data:`FRAMEWORK_SECTION`: the part L0 compares exactly."""
    return {key: value for key, value in effective.items() if key != FRAMEWORK_SECTION}
