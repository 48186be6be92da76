"""``backends.tensorflow.steps``: the exact steps, L3 ``loss_and_grads`` and L4 ``train_steps``."""

from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from backends.tensorflow import model as tf_model  # noqa: E402
from backends.tensorflow import steps as tf_steps  # noqa: E402
from backends.tensorflow import train as tf_train  # noqa: E402
from backends.tensorflow import weights as tf_weights  # noqa: E402
from parity.architecture import init_weights  # noqa: E402
from parity.config import ModelConfig, TrainConfig  # noqa: E402
from parity.oracle import network as oracle_network  # noqa: E402
from parity.oracle.optim import adam_first_step  # noqa: E402

#: Loss of the exact step (a traced tf.function) vs loss_value of the eager forward_outputs, as a
#: relative difference. Measured 0 (bit-identical) on CPU; graph rewrites may fuse kernels on
#: other devices, which changes float32 rounding only, so 1e-5 (still far below a wrong term,
#: weight or scale, >= 1e-3).
LOSS_PATH_RTOL = 1e-5

SMALL = ModelConfig(N=32, gridsize=2, stitch_crop_px=16)


def _obs(batch):
    """Observed amplitude in count units as the model sees it: ``X * float32(s)``."""
    return batch["diffraction"] * np.float32(batch["intensity_scale"])


def test_loss_and_grads_loss_is_loss_value_of_forward_outputs(rng, helpers):
    train = TrainConfig(nll_weight=0.8, mae_weight=0.2)
    weights = init_weights(SMALL, seed=2)
    batch = helpers.random_batch(rng, SMALL, B=3)
    result = tf_steps.loss_and_grads(SMALL, train, weights, batch)
    assert result["loss"].dtype == np.float64 and result["loss"].shape == ()
    model = tf_model.build_model(SMALL, seed=0)
    tf_weights.import_weights(model, weights)
    outputs = tf_model.forward_outputs(model, batch)
    eager = float(tf_train.loss_value(tf.constant(outputs["pred_amplitude"]),
                                      tf.constant(_obs(batch)), train))
    np.testing.assert_allclose(float(result["loss"]), eager, rtol=LOSS_PATH_RTOL)
    reference = oracle_network.loss_value(
        oracle_network.forward_outputs(SMALL, weights, batch)["pred_amplitude"],
        batch["diffraction"] * float(batch["intensity_scale"]), train)
    # float32 network + physics vs the float64 oracle (NETWORK_RTOL of the amplitudes, which
    # enter the loss squared): 1e-5 relative.
    np.testing.assert_allclose(float(result["loss"]), reference, rtol=1e-5)


def test_gradients_match_oracle_directional_derivatives(rng, helpers):
    """<grad, d> against a central difference of the float64 oracle loss along random d.

    ReLU networks are piecewise linear, so the difference step must stay inside one linear
    piece: h = 1e-7 (float64 loss ~1e4: rounding of the difference ~1e-5 of the slope)."""
    config = ModelConfig(N=32, gridsize=1, stitch_crop_px=16)
    train = TrainConfig()
    weights = init_weights(config, seed=4)
    batch = helpers.random_batch(rng, config, B=2)
    result = tf_steps.loss_and_grads(config, train, weights, batch)
    obs = batch["diffraction"] * float(batch["intensity_scale"])

    def loss(w):
        pred = oracle_network.forward_outputs(config, w, batch)["pred_amplitude"]
        return oracle_network.loss_value(pred, obs, train)

    base = {k: v.astype(np.float64) for k, v in weights.items()}
    h = 1e-7
    for name in ("encoder.block0.conv0.kernel", "decoder_amp.head.kernel",
                 "decoder_phase.block0.conv1.bias", None):
        names = [name] if name else list(weights)
        direction = {k: rng.standard_normal(weights[k].shape) for k in names}
        plus = {k: base[k] + h * direction[k] if k in direction else base[k] for k in base}
        minus = {k: base[k] - h * direction[k] if k in direction else base[k] for k in base}
        numeric = (loss(plus) - loss(minus)) / (2 * h)
        analytic = sum(float(np.sum(result[f"grad/{k}"] * direction[k])) for k in names)
        scale = sum(float(np.sum(np.abs(result[f"grad/{k}"] * direction[k]))) for k in names)
        # Relative to sum|g_i d_i| (the sum itself may cancel): measured <= 2.6e-5 (float32
        # backprop vs float64, two seeds); 1e-3 leaves room for a ReLU kink crossed by the step.
        # A wrong sign, scale or missing path is off by O(1).
        assert abs(analytic - numeric) <= 1e-3 * scale, (name, analytic, numeric, scale)


def test_one_step_is_keras_adam_with_epsilon_hat(rng, helpers):
    train = TrainConfig(learning_rate=2e-3, adam_beta_1=0.8, adam_beta_2=0.99, adam_epsilon=1e-3)
    weights = init_weights(SMALL, seed=5)
    result = tf_steps.loss_and_grads(SMALL, train, weights, helpers.random_batch(rng, SMALL, B=2))
    stepped = adam_first_step(weights, {n: result[f"grad/{n}"] for n in weights}, train)
    for name, expected in stepped.items():
        # Measured <= 4.8e-9 (float32 rounding of weights ~0.1); the large eps makes the Keras
        # formula differ from torch-style Adam (eps after bias correction) by far more.
        np.testing.assert_allclose(result[f"stepped/{name}"], expected, rtol=0, atol=5e-8,
                                   err_msg=name)


def test_train_steps_records_each_loss_before_its_step(rng, helpers):
    train = TrainConfig()
    weights = init_weights(SMALL, seed=6)
    batches = [helpers.random_batch(rng, SMALL, B=2) for _ in range(3)]
    one = tf_steps.loss_and_grads(SMALL, train, weights, batches[0])
    steps = tf_steps.train_steps(SMALL, train, weights, batches)
    assert steps["losses"].shape == (3,) and steps["losses"].dtype == np.float64
    assert steps["losses"][0] == one["loss"]  # same weights, same traced step: same bits
    first = tf_steps.train_steps(SMALL, train, weights, batches[:1])
    for name in weights:
        np.testing.assert_array_equal(first[f"weights/{name}"], one[f"stepped/{name}"],
                                      err_msg=name)
    two = tf_steps.train_steps(SMALL, train, weights, batches[:2])
    after_two = {name: two[f"weights/{name}"] for name in weights}
    third = tf_steps.loss_and_grads(SMALL, train, after_two, batches[2])
    assert steps["losses"][2] == third["loss"]
    assert steps["losses"][1] != steps["losses"][0]
    with pytest.raises(ValueError, match="at least one batch"):
        tf_steps.train_steps(SMALL, train, weights, [])
