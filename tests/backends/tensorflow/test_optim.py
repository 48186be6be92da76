"""backends/tensorflow/optim.py: Keras's own Adam and schedule callbacks, configured from the
TrainConfig, and Keras's plateau behaviour against the NumPy transcription the torch twin's
tests also use (tests/backends/support/keras_reference.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

import keras  # noqa: E402

from backends.tensorflow.optim import keras_adam, keras_callbacks  # noqa: E402
from parity.config import TrainConfig  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))
from keras_reference import keras_adam_steps, keras_plateau_rates  # noqa: E402


def test_adam_takes_the_configured_hyperparameters() -> None:
    train = TrainConfig(learning_rate=2e-3, adam_beta_1=0.8, adam_beta_2=0.99, adam_epsilon=1e-5)
    optimizer = keras_adam(train)
    assert isinstance(optimizer, keras.optimizers.Adam)
    # float32 variables hold the rate: compare at float32 precision (rel 1e-7).
    assert float(optimizer.learning_rate) == pytest.approx(2e-3, rel=1e-7)
    assert (optimizer.beta_1, optimizer.beta_2, optimizer.epsilon) == (0.8, 0.99, 1e-5)


def test_adam_steps_follow_the_keras_formula() -> None:
    """The transcription the torch twin is tested against is Keras's own update (epsilon hat)."""
    rng = np.random.default_rng(1)
    weights = [rng.uniform(-0.5, 0.5, (3, 4)).astype(np.float32)]
    grads = [[(rng.standard_normal((3, 4)) * 10.0 ** rng.uniform(-8, 0, (3, 4)))
              .astype(np.float32)] for _ in range(3)]
    variable = tf.Variable(weights[0])
    optimizer = keras_adam(TrainConfig())
    for (g,) in grads:
        optimizer.apply_gradients([(tf.constant(g), variable)])
    expected = keras_adam_steps(weights, grads, [float(np.float32(1e-3))] * 3, 0.9, 0.999, 1e-7)
    # Three float32 updates of size <= lr on weights <= 0.5: float32 rounding only (measured
    # < 6e-8 for the torch twin); 2e-7 absolute.
    np.testing.assert_allclose(variable.numpy(), expected[0], rtol=0, atol=2e-7)


def test_callbacks_stop_on_loss_and_reduce_on_val_loss_only_with_validation() -> None:
    train = TrainConfig(early_stop_patience=4, plateau_patience=3, plateau_factor=0.25,
                        plateau_min_lr=1e-5, plateau_min_delta=1e-3)
    without = keras_callbacks(train, validation=False)
    assert [type(c) for c in without] == [keras.callbacks.EarlyStopping]
    assert (without[0].monitor, without[0].patience) == ("loss", 4)
    stop, plateau = keras_callbacks(train, validation=True)
    assert isinstance(stop, keras.callbacks.EarlyStopping)
    assert isinstance(plateau, keras.callbacks.ReduceLROnPlateau)
    assert (plateau.monitor, plateau.patience, plateau.factor) == ("val_loss", 3, 0.25)
    assert (plateau.min_lr, plateau.min_delta) == (1e-5, 1e-3)


@pytest.mark.parametrize("patience", [0, 1, 2, 4])
def test_keras_plateau_matches_the_transcription(patience: int) -> None:
    rng = np.random.default_rng(patience)
    val = list(np.cumsum(rng.normal(-2e-4, 1e-3, 25)) + 1.0)
    train = TrainConfig(plateau_factor=0.7, plateau_patience=patience, plateau_min_lr=2e-4,
                        plateau_min_delta=5e-4)
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras_adam(train), loss="mse")
    plateau = keras_callbacks(train, validation=True)[1]
    plateau.set_model(model)
    plateau.on_train_begin()
    used = []
    for epoch, value in enumerate(val):
        used.append(float(model.optimizer.learning_rate))
        plateau.on_epoch_end(epoch, {"val_loss": value})
    expected = keras_plateau_rates(val, lr=train.learning_rate, factor=0.7, patience=patience,
                                   min_lr=2e-4, min_delta=5e-4)
    # Keras holds the rate in a float32 variable: rel 1e-6.
    np.testing.assert_allclose(used, expected, rtol=1e-6)
