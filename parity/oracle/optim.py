"""Float64 NumPy transcription of Keras 3's Adam update: the oracle of L3's one Adam step.

Keras's Adam puts its epsilon ("epsilon hat") after the bias correction of the step size::

    alpha = lr * sqrt(1 - beta_2**t) / (1 - beta_1**t)
    m += (g - m) * (1 - beta_1);  v += (g**2 - v) * (1 - beta_2)
    w -= m * alpha / (sqrt(v) + epsilon)

so the first step (``t = 1``, ``m = v = 0``) is ``w - lr * g / (|g| + epsilon / sqrt(1 -
beta_2))``: ``+-lr`` wherever ``|g|`` is well above ``epsilon / sqrt(1 - beta_2)`` (3.2e-6 with
the defaults). PyTorch's ``torch.optim.Adam`` adds its epsilon to the bias-corrected ``sqrt(v)``
instead, a different rule; the torch backend reimplements Keras's.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from parity.config import TrainConfig

__all__ = ["adam_first_step", "keras_adam_steps"]


def keras_adam_steps(weights: Sequence[np.ndarray], grads: Sequence[Sequence[np.ndarray]],
                     lrs: Sequence[float], beta_1: float, beta_2: float,
                     epsilon: float) -> list[np.ndarray]:
    """Keras 3 ``Adam.update_step`` over a sequence of steps, in float64.

    Parameters
    ----------
    weights : sequence of numpy.ndarray
        Starting weights.
    grads : sequence of sequences of numpy.ndarray
        Per step, one gradient per weight (same order and shapes).
    lrs : sequence of float
        The learning rate of each step.
    beta_1, beta_2, epsilon : float
        Keras's Adam hyper-parameters (``epsilon`` is Keras's "epsilon hat").

    Returns
    -------
    list[numpy.ndarray]
        The weights after the last step, float64.
    """
    w = [np.asarray(x, dtype=np.float64).copy() for x in weights]
    m = [np.zeros_like(x) for x in w]
    v = [np.zeros_like(x) for x in w]
    for t, (step_grads, lr) in enumerate(zip(grads, lrs, strict=True), start=1):
        alpha = lr * math.sqrt(1 - beta_2**t) / (1 - beta_1**t)
        for i, g in enumerate(step_grads):
            g = np.asarray(g, dtype=np.float64)
            m[i] += (g - m[i]) * (1 - beta_1)
            v[i] += (g * g - v[i]) * (1 - beta_2)
            w[i] -= (m[i] * alpha) / (np.sqrt(v[i]) + epsilon)
    return w


def adam_first_step(weights: Mapping[str, np.ndarray], grads: Mapping[str, np.ndarray],
                    train: TrainConfig) -> dict[str, np.ndarray]:
    """The weights after ONE Keras Adam step from ``weights`` along ``grads`` (same names), float64.

    The learning rate is taken at float32 precision, as both backends hold it.
    """
    names = list(weights)
    lr = float(np.float32(train.learning_rate))
    stepped = keras_adam_steps([weights[n] for n in names], [[grads[n] for n in names]], [lr],
                               train.adam_beta_1, train.adam_beta_2, train.adam_epsilon)
    return dict(zip(names, stepped, strict=True))
