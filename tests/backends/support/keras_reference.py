"""NumPy transcriptions of Keras 3's Adam update and ReduceLROnPlateau, the reference both
backends' optimiser tests compare with (TensorFlow runs Keras's own; torch reimplements it).

The Adam update is the harness's own oracle (:func:`parity.oracle.optim.keras_adam_steps`, which
L3 judges each backend's step by), re-exported here."""

from __future__ import annotations

import math

import numpy as np

from parity.oracle.optim import keras_adam_steps

__all__ = ["keras_adam_steps", "keras_plateau_rates"]


def keras_plateau_rates(val_losses: list[float], *, lr: float, factor: float, patience: int,
                       min_lr: float, min_delta: float) -> list[float]:
    """Keras 3 ``ReduceLROnPlateau.on_epoch_end`` (cooldown 0): the rate used in each epoch."""
    best, wait, used = math.inf, 0, []
    for current in val_losses:
        used.append(lr)
        if current < best - min_delta:
            best, wait = current, 0
        else:
            wait += 1
            if wait >= patience and lr > np.float32(min_lr):
                lr, wait = max(lr * factor, min_lr), 0
    return used
