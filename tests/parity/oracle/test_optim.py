"""The float64 Keras-Adam oracle (parity/oracle/optim.py) against its closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parity.config import TrainConfig
from parity.oracle.optim import adam_first_step, keras_adam_steps


@settings(max_examples=50, deadline=None)
@given(g=st.floats(-1e3, 1e3, allow_nan=False), w=st.floats(-10, 10, allow_nan=False),
       lr=st.floats(1e-5, 1e-1), eps=st.floats(1e-9, 1e-3))
def test_the_first_step_is_lr_g_over_abs_g_plus_epsilon_hat(g, w, lr, eps) -> None:
    """Keras puts epsilon after the bias correction: ``w - lr g / (|g| + eps / sqrt(1 - b2))``
    at step 1, a step of at most lr."""
    train = TrainConfig(learning_rate=lr, adam_epsilon=eps)
    stepped = adam_first_step({"w": np.array([w])}, {"w": np.array([g])}, train)["w"][0]
    lr32 = float(np.float32(lr))
    closed = w - lr32 * g / (abs(g) + eps / math.sqrt(1 - train.adam_beta_2))
    assert stepped == pytest.approx(closed, rel=1e-12, abs=1e-15)
    assert abs(stepped - w) <= lr32 * (1 + 1e-12)


def test_a_zero_gradient_leaves_the_weight_and_the_inputs_are_not_changed() -> None:
    weights = {"k": np.array([0.5, -0.25], np.float32)}
    before = weights["k"].copy()
    stepped = adam_first_step(weights, {"k": np.zeros(2, np.float32)}, TrainConfig())
    np.testing.assert_array_equal(stepped["k"], before.astype(np.float64))
    np.testing.assert_array_equal(weights["k"], before)
    assert stepped["k"].dtype == np.float64


def test_the_second_step_uses_the_bias_corrected_rate() -> None:
    """Two steps with the same gradient: m and v are then exactly g and g^2 after the bias
    correction, so each step is again ``lr g / (|g| + eps)`` in Keras's placement at t = 2."""
    lr, b1, b2, eps = 1e-3, 0.9, 0.999, 1e-7
    g = np.array([2e-3])
    w2, = keras_adam_steps([np.array([1.0])], [[g], [g]], [lr, lr], b1, b2, eps)
    m = (1 - b1) * g * (1 + b1)  # after two steps, before correction
    v = (1 - b2) * g * g * (1 + b2)
    first = lr * g / (abs(g) + eps / math.sqrt(1 - b2))
    second = lr * math.sqrt(1 - b2**2) / (1 - b1**2) * m / (np.sqrt(v) + eps)
    np.testing.assert_allclose(w2, 1.0 - first - second, rtol=1e-14, atol=0)
