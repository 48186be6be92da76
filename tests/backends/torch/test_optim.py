"""backends/torch/optim.py: Keras-semantics Adam and the plateau mapping, against NumPy
transcriptions of Keras (tests/backends/support/keras_reference.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from backends.torch.optim import KerasAdam, keras_plateau
from parity.config import TrainConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))
from keras_reference import keras_adam_steps, keras_plateau_rates


def _torch_plateau_lrs(val_losses: list[float], train: TrainConfig) -> list[float]:
    optimizer = KerasAdam([torch.zeros(1, requires_grad=True)], lr=train.learning_rate)
    scheduler = keras_plateau(optimizer, train)
    used = []
    for value in val_losses:
        used.append(optimizer.param_groups[0]["lr"])
        scheduler.step(value)
    return used


def test_plateau_trigger_epochs_match_a_hand_computed_keras_sequence() -> None:
    val = [1.0, 0.9, 0.95, 0.92, 0.91, 0.95, 0.96, 0.5, 0.6, 0.7, 0.8, 0.9, 0.9, 0.9, 0.9]
    train = TrainConfig(learning_rate=1e-3, plateau_factor=0.5, plateau_patience=2,
                        plateau_min_lr=1e-4, plateau_min_delta=1e-4)
    # By hand (Keras: reduce when `wait >= 2`): epochs 2, 3 do not improve on 0.9 -> reduce at
    # the end of epoch 3; 4, 5 -> end of 5; 7 improves; 8, 9 -> end of 9; 10, 11 -> end of 11,
    # clamped at min_lr 1e-4 (1.25e-4 * 0.5 < 1e-4); then lr == min_lr: no further change.
    by_hand = [1e-3] * 4 + [5e-4] * 2 + [2.5e-4] * 4 + [1.25e-4] * 2 + [1e-4] * 3
    got = _torch_plateau_lrs(val, train)
    # Rates are products of exact binary factors of 1e-3: compare to float64 rounding (1e-12).
    np.testing.assert_allclose(got, by_hand, rtol=1e-12)
    np.testing.assert_allclose(
        keras_plateau_rates(val, lr=1e-3, factor=0.5, patience=2, min_lr=1e-4, min_delta=1e-4),
        by_hand, rtol=1e-12)


@pytest.mark.parametrize("patience", [0, 1, 2, 3, 5])
@pytest.mark.parametrize("seed", range(4))
def test_plateau_matches_keras_on_random_curves(patience: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    # A noisy, slowly improving loss curve whose steps are often smaller than min_delta.
    val = list(np.cumsum(rng.normal(-2e-4, 1e-3, 40)) + 1.0)
    train = TrainConfig(plateau_factor=0.7, plateau_patience=patience, plateau_min_lr=2e-4,
                        plateau_min_delta=5e-4)
    expected = keras_plateau_rates(val, lr=train.learning_rate, factor=0.7, patience=patience,
                                  min_lr=2e-4, min_delta=5e-4)
    np.testing.assert_allclose(_torch_plateau_lrs(val, train), expected, rtol=1e-12)


def test_keras_adam_matches_numpy_keras_formula_over_steps() -> None:
    rng = np.random.default_rng(0)
    shapes = [(3, 3, 4, 5), (5,), (7,)]
    weights = [rng.uniform(-0.5, 0.5, s).astype(np.float32) for s in shapes]
    # Gradients from tiny (where eps placement matters) to large, and a rate change at step 4.
    grads = [[(rng.standard_normal(s) * 10.0 ** rng.uniform(-8, 1, s)).astype(np.float32)
              for s in shapes] for _ in range(6)]
    lrs = [1e-3, 1e-3, 1e-3, 5e-4, 5e-4, 5e-4]
    params = [torch.tensor(w, requires_grad=True) for w in weights]
    optimizer = KerasAdam(params, lr=1e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-7)
    for step_grads, lr in zip(grads, lrs, strict=True):
        optimizer.param_groups[0]["lr"] = lr
        for p, g in zip(params, step_grads, strict=True):
            p.grad = torch.from_numpy(g)
        optimizer.step()
    lrs32 = [float(np.float32(lr)) for lr in lrs]  # Keras holds the rate in a float32 variable
    expected = keras_adam_steps(weights, grads, lrs32, 0.9, 0.999, 1e-7)
    for p, e in zip(params, expected, strict=True):
        # Six float32 updates of size <= lr on weights <= 0.5: float32 rounding of w (3e-8 per
        # step) dominates; measured max 6e-8. Allow 2e-7 absolute.
        np.testing.assert_allclose(p.detach().numpy(), e, rtol=0, atol=2e-7)


def test_keras_adam_differs_from_torch_adam_for_small_gradients() -> None:
    """Why KerasAdam exists: with |g| ~ eps the epsilon placement changes the first step."""
    g = torch.full((4,), 3e-7)
    steps = []
    for cls, kwargs in ((KerasAdam, {"epsilon": 1e-7}), (torch.optim.Adam, {"eps": 1e-7})):
        p = torch.zeros(4, requires_grad=True)
        optimizer = cls([p], lr=1e-3, **kwargs)
        p.grad = g.clone()
        optimizer.step()
        steps.append(float(-p.detach()[0]))
    # Keras, t=1: alpha = 1e-3 sqrt(1e-3)/0.1 = 3.162e-4; m = 0.1 g = 3e-8; sqrt(v) = 9.487e-9;
    # step = alpha m / (sqrt(v) + eps) = 3.162e-4 * 3e-8 / 1.0949e-7 = 8.665e-5.
    # torch: m_hat / (sqrt(v_hat) + eps) = g / (g + eps) -> 1e-3 * 0.75 = 7.5e-4 (8.7x larger).
    # rel 1e-3: float32 arithmetic of a handful of operations.
    assert steps[0] == pytest.approx(8.665e-5, rel=1e-3)
    assert steps[1] == pytest.approx(7.5e-4, rel=1e-3)
