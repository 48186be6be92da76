"""The neutral-weights exchange of the torch network: export, import, torch names -> neutral.

Twin of ``backends/tensorflow/weights.py``. A neutral name ``encoder.block0.conv0`` is the torch
module path (:func:`backends.torch.model._conv_modules`), so ``encoder.block0.conv0.weight`` (OIHW)
holds ``encoder.block0.conv0.kernel`` (``(kh, kw, in, out)``), converted only by
:func:`parity.conventions.kernel_to_oihw` / :func:`~parity.conventions.kernel_from_oihw`; the bias
``(out,)`` is the same in both. Neutral arrays are float32 NumPy, in the layer order of
:func:`parity.architecture.conv_layers`.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from backends.torch.model import PtychoPINN, _conv_modules
from parity.conventions import kernel_from_oihw, kernel_to_oihw

__all__ = ["export_weights", "import_weights"]


def export_weights(model: PtychoPINN) -> dict[str, np.ndarray]:
    """Every trainable weight in the neutral layout.

    Returns
    -------
    dict[str, numpy.ndarray]
        ``<layer>.kernel`` ``(kh, kw, in, out)`` and ``<layer>.bias`` ``(out,)``, float32, in build
        order.
    """
    weights: dict[str, np.ndarray] = {}
    for name, conv in _conv_modules(model).items():
        kernel = conv.weight.detach().to("cpu", torch.float32).contiguous().numpy()
        weights[f"{name}.kernel"] = kernel_from_oihw(kernel)
        weights[f"{name}.bias"] = conv.bias.detach().to("cpu", torch.float32).numpy().copy()
    return weights


def import_weights(model: PtychoPINN, weights: Mapping[str, np.ndarray]) -> None:
    """Load neutral-layout weights into ``model`` (in place, on the model's device).

    Raises
    ------
    KeyError
        Naming every missing and every unexpected weight name.
    ValueError
        Naming a weight whose shape differs (expected vs got) or that is not finite.
    """
    convs = _conv_modules(model)
    expected = {f"{n}.{k}" for n in convs for k in ("kernel", "bias")}
    missing = sorted(expected - set(weights))
    unexpected = sorted(set(weights) - expected)
    if missing or unexpected:
        raise KeyError(f"weights do not match the model: missing {missing}, "
                       f"unexpected {unexpected}")
    staged: list[tuple[torch.Tensor, np.ndarray]] = []
    for name, conv in convs.items():
        for key, param, convert in (("kernel", conv.weight, kernel_to_oihw),
                                    ("bias", conv.bias, np.asarray)):
            value = np.asarray(weights[f"{name}.{key}"])
            neutral_shape = (tuple(kernel_from_oihw(np.empty(param.shape)).shape)
                             if key == "kernel" else tuple(param.shape))
            if value.shape != neutral_shape:
                raise ValueError(f"weight {name}.{key} has shape {value.shape}; expected "
                                 f"{neutral_shape}")
            if not np.isfinite(value).all():
                raise ValueError(f"weight {name}.{key} has non-finite values")
            staged.append((param, convert(value.astype(np.float32))))
    with torch.no_grad():  # validate everything first, then write: no half-imported model
        for param, value in staged:
            param.copy_(torch.from_numpy(np.ascontiguousarray(value)))


def _neutral(model: PtychoPINN, tensors: Mapping[str, torch.Tensor],
             prefix: str) -> dict[str, np.ndarray]:
    """Torch-named tensors (``<layer>.weight`` / ``.bias``) -> neutral-layout NumPy arrays."""
    out: dict[str, np.ndarray] = {}
    for name in _conv_modules(model):
        kernel = tensors[f"{name}.weight"].to("cpu", torch.float32).contiguous().numpy()
        out[f"{prefix}{name}.kernel"] = kernel_from_oihw(kernel)
        out[f"{prefix}{name}.bias"] = tensors[f"{name}.bias"].to("cpu", torch.float32).numpy()
    return out
