"""NumPy transcriptions of Keras 3's Adam update and ReduceLROnPlateau, the reference both
backends' optimiser tests compare with (TensorFlow runs Keras's own; torch reimplements it)."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["keras_adam_steps", "keras_plateau_rates"]


def keras_adam_steps(weights: list[np.ndarray], grads: list[list[np.ndarray]], lrs: list[float],
                beta_1: float, beta_2: float, epsilon: float) -> list[np.ndarray]:
    """NumPy float64 transcription of Keras 3 ``Adam.update_step`` over a sequence of steps."""
    w = [x.astype(np.float64) for x in weights]
    m = [np.zeros_like(x) for x in w]
    v = [np.zeros_like(x) for x in w]
    for t, (step_grads, lr) in enumerate(zip(grads, lrs, strict=True), start=1):
        alpha = lr * math.sqrt(1 - beta_2**t) / (1 - beta_1**t)
        for i, g in enumerate(step_grads):
            g = g.astype(np.float64)
            m[i] += (g - m[i]) * (1 - beta_1)
            v[i] += (g * g - v[i]) * (1 - beta_2)
            w[i] -= (m[i] * alpha) / (np.sqrt(v[i]) + epsilon)
    return w


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
