"""The neutral-weights exchange of the Keras network: export and import.

Twin of ``backends/torch/weights.py``. Each convolution of :class:`.model.PtychoPINN` is a
``keras.layers.Conv2D`` named by its neutral name (``encoder.block0.conv0``), whose HWIO kernel
already has the neutral layout ``(kh, kw, in, out)`` and whose bias is ``(out,)``: export and
import are plain float32 copies, keyed ``<layer>.kernel`` / ``<layer>.bias`` in the order of
:meth:`.model.PtychoPINN.weight_variables` (the layer order of
:func:`parity.architecture.conv_layers`).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from backends.tensorflow.model import PtychoPINN

__all__ = ["export_weights", "import_weights"]


def export_weights(model: PtychoPINN) -> dict[str, np.ndarray]:
    """Every trainable weight in the neutral layout.

    Returns
    -------
    dict[str, numpy.ndarray]
        ``<layer>.kernel`` ``(kh, kw, in, out)`` and ``<layer>.bias`` ``(out,)``, float32, in
        build order (TensorFlow's HWIO kernels are the neutral layout: no conversion).
    """
    return {name: np.array(var.numpy(), dtype=np.float32, copy=True)
            for name, var in model.weight_variables()}


def import_weights(model: PtychoPINN, weights: Mapping[str, np.ndarray]) -> None:
    """Load neutral-layout weights into ``model`` (in place).

    Raises
    ------
    KeyError
        Naming every missing and every unexpected weight name.
    ValueError
        Naming a weight whose shape differs (expected vs got) or that is not finite.
    TypeError
        Naming a weight that is not real floating point.
    """
    variables = model.weight_variables()
    expected = {name for name, _ in variables}
    missing = [name for name, _ in variables if name not in weights]
    unexpected = sorted(set(weights) - expected)
    if missing or unexpected:
        raise KeyError(f"weights do not match the model: missing {missing}, "
                       f"unexpected {unexpected}")
    staged = []
    for name, var in variables:
        value = np.asarray(weights[name])
        if value.shape != tuple(var.shape):
            raise ValueError(f"weight {name} has shape {value.shape}; expected {tuple(var.shape)}")
        if value.dtype.kind not in "fiu":
            raise TypeError(f"weight {name} has dtype {value.dtype}; expected real floats")
        if not np.isfinite(value).all():
            raise ValueError(f"weight {name} has non-finite values")
        staged.append((var, value.astype(np.float32)))
    for var, value in staged:  # validate everything first, then write: no half-imported model
        var.assign(value)
