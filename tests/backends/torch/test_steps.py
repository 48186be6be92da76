"""backends/torch/steps.py: the exact step hooks, L3 ``loss_and_grads`` and L4 ``train_steps``."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from backends.torch.model import build_model, forward_outputs
from backends.torch.steps import loss_and_grads, train_steps
from backends.torch.weights import import_weights
from parity.architecture import init_weights
from parity.config import TrainConfig
from parity.oracle import physics as oracle

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))
from keras_reference import keras_adam_steps


@pytest.fixture(scope="module")
def step_setup(make_case) -> tuple:
    case = make_case(N=32, gridsize=2, n_positions=40, seed=1)
    weights = init_weights(case.config, 2)
    batches = [case.data.batch(slice(i, i + 4)) for i in (0, 4, 8)]
    return case.config, weights, batches


def test_loss_and_grads_loss_equals_forward_loss(step_setup) -> None:
    config, weights, batches = step_setup
    train = TrainConfig(mae_weight=0.3)
    result = loss_and_grads(config, train, weights, batches[0])
    assert result["loss"].shape == () and result["loss"].dtype == np.float64
    model = build_model(config, seed=0)
    import_weights(model, weights)
    out = forward_outputs(model, batches[0])
    s = np.float32(batches[0]["intensity_scale"])
    obs = batches[0]["diffraction"] * s  # the float32 product the step computes
    pred = out["pred_amplitude"].astype(np.float64)
    expected = (oracle.poisson_nll(pred**2, obs.astype(np.float64) ** 2)
                + 0.3 * oracle.mae_loss(pred, obs))
    # Same forward (bit-identical pred); the loss differs only by float32 reduction: 1e-6 rel.
    assert float(result["loss"]) == pytest.approx(expected, rel=1e-6)


def test_loss_and_grads_step_iskeras_adam_steps(step_setup) -> None:
    config, weights, batches = step_setup
    train = TrainConfig()
    result = loss_and_grads(config, train, weights, batches[0])
    names = list(weights)
    assert {f"grad/{n}" for n in names} | {f"stepped/{n}" for n in names} | {"loss"} == set(result)
    grads = [result[f"grad/{n}"] for n in names]
    assert all(np.isfinite(g).all() and g.shape == weights[n].shape for n, g in zip(names, grads,
                                                                                      strict=True))
    assert any(np.abs(g).max() > 0 for g in grads)
    expected = keras_adam_steps([weights[n] for n in names], [grads], [float(np.float32(1e-3))],
                           train.adam_beta_1, train.adam_beta_2, train.adam_epsilon)
    for name, e in zip(names, expected, strict=True):
        # One update of size <= lr from the returned float32 gradients: float32 rounding of the
        # weight (<= 6e-8 for |w| < 1) plus update rounding (~1e-10); allow 1e-7 absolute.
        np.testing.assert_allclose(result[f"stepped/{name}"], e, rtol=0, atol=1e-7, err_msg=name)


def test_train_steps_continue_from_loss_and_grads(step_setup) -> None:
    config, weights, batches = step_setup
    train = TrainConfig()
    one = loss_and_grads(config, train, weights, batches[0])
    steps = train_steps(config, train, weights, batches)
    assert steps["losses"].shape == (3,) and steps["losses"].dtype == np.float64
    # Same device, same kernels, same order: the first loss is the same float32 number.
    assert steps["losses"][0] == one["loss"]
    single = train_steps(config, train, weights, batches[:1])
    for name in weights:
        np.testing.assert_array_equal(single[f"weights/{name}"], one[f"stepped/{name}"])
        assert not np.array_equal(steps[f"weights/{name}"], single[f"weights/{name}"]) or \
            not np.abs(one[f"grad/{name}"]).any()
    with pytest.raises(ValueError, match="at least one batch"):
        train_steps(config, train, weights, [])
