"""The optimiser and learning-rate schedule with Keras semantics, for the Lightning module.

Twin of ``backends/tensorflow/optim.py``, which uses Keras's own Adam and callbacks; here they
are reimplemented, so the two modules share their role and semantics, not their signatures
(torch's optimiser takes the parameters; its plateau is a scheduler, not a callback).

Why not ``torch.optim.Adam``: it divides the bias-corrected moments, ``m_hat / (sqrt(v_hat) +
eps)``, so its ``eps`` is added *after* bias correction; Keras folds the corrections into the step
size, ``alpha = lr sqrt(1 - b2^t) / (1 - b1^t)``, and adds ``eps`` to the *uncorrected*
``sqrt(v)`` ("epsilon hat"). The same ``eps`` number then means different steps (markedly so in the
first steps, where ``sqrt(1 - b2^t)`` is small), so :class:`KerasAdam` implements the Keras update.

ReduceLROnPlateau: Keras reduces when ``wait >= patience`` (``wait`` counts epochs without an
improvement of more than ``min_delta``); torch reduces when ``num_bad_epochs > patience``. So Keras
``patience = p`` is torch ``patience = max(p - 1, 0)`` (Keras 0 and 1 both reduce on every
non-improving epoch), with ``threshold = min_delta``, ``threshold_mode = 'abs'`` (Keras compares
``current < best - min_delta``) and ``eps = 0`` (Keras reduces whenever ``lr > min_lr``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch
from torch.optim.lr_scheduler import ReduceLROnPlateau

from parity.config import TrainConfig

__all__ = ["KerasAdam", "keras_plateau"]


class KerasAdam(torch.optim.Optimizer):
    """Adam with Keras semantics ("epsilon hat"; see the module docstring for why).

    Per step ``t`` (1-based) and weight ``w`` with gradient ``g``, in the weight dtype::

        alpha = lr * sqrt(1 - b2**t) / (1 - b1**t)
        m += (g - m) * (1 - b1);  v += (g*g - v) * (1 - b2)
        w -= (m * alpha) / (sqrt(v) + eps)

    ``alpha`` is computed on the host in float32 from the Python step count (as Keras, whose
    ``iterations`` and powers are float32), so a step reads nothing back from the device.

    Parameters
    ----------
    params : iterable of torch.Tensor
        Weights.
    lr, beta_1, beta_2, epsilon : float
        Keyword-only; ``TrainConfig.learning_rate``, ``adam_beta_1``, ``adam_beta_2``,
        ``adam_epsilon``.
    """

    def __init__(self, params: Iterable[torch.Tensor], *, lr: float = 1e-3, beta_1: float = 0.9,
                 beta_2: float = 0.999, epsilon: float = 1e-7) -> None:
        if not (math.isfinite(lr) and lr > 0):
            raise ValueError(f"lr={lr}; expected a positive finite number")
        if not (0 <= beta_1 < 1 and 0 <= beta_2 < 1):
            raise ValueError(f"betas ({beta_1}, {beta_2}); expected values in [0, 1)")
        if not epsilon > 0:
            raise ValueError(f"epsilon={epsilon}; expected > 0")
        super().__init__(params, {"lr": lr, "beta_1": beta_1, "beta_2": beta_2,
                                  "epsilon": epsilon, "iterations": 0})

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:  # type: ignore[override]
        """One Keras Adam update of every weight that has a gradient."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            group["iterations"] += 1
            t = np.float32(group["iterations"])
            b1, b2 = np.float32(group["beta_1"]), np.float32(group["beta_2"])
            one = np.float32(1.0)
            alpha = float(np.float32(group["lr"]) * np.sqrt(one - b2**t) / (one - b1**t))
            grads = [p.grad for p in params]
            for p in params:
                if not self.state[p]:
                    self.state[p]["m"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    self.state[p]["v"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            ms = [self.state[p]["m"] for p in params]
            vs = [self.state[p]["v"] for p in params]
            delta_m = torch._foreach_sub(grads, ms)
            torch._foreach_mul_(delta_m, 1.0 - group["beta_1"])
            torch._foreach_add_(ms, delta_m)
            delta_v = torch._foreach_mul(grads, grads)
            torch._foreach_sub_(delta_v, vs)
            torch._foreach_mul_(delta_v, 1.0 - group["beta_2"])
            torch._foreach_add_(vs, delta_v)
            denominator = torch._foreach_sqrt(vs)
            torch._foreach_add_(denominator, group["epsilon"])
            update = torch._foreach_mul(ms, alpha)
            torch._foreach_div_(update, denominator)
            torch._foreach_sub_(params, update)
        return loss


def keras_plateau(optimizer: torch.optim.Optimizer, train: TrainConfig) -> ReduceLROnPlateau:
    """``ReduceLROnPlateau`` with Keras semantics (mapping in the module docstring).

    Torch only: TensorFlow uses ``keras.callbacks.ReduceLROnPlateau`` itself
    (``backends.tensorflow.optim.keras_callbacks``).
    """
    return ReduceLROnPlateau(optimizer, mode="min", factor=train.plateau_factor,
                             patience=max(train.plateau_patience - 1, 0),
                             threshold=train.plateau_min_delta, threshold_mode="abs",
                             min_lr=train.plateau_min_lr, eps=0.0)
