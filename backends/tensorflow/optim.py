"""The optimiser and learning-rate schedule: Keras's own Adam, ReduceLROnPlateau and EarlyStopping.

Twin of ``backends/torch/optim.py``, which reimplements these with Keras semantics (Keras's
"epsilon hat" Adam; the plateau's patience counted as Keras counts it); the two modules share
their role and semantics, not their signatures.
"""

from __future__ import annotations

from typing import Any

from backends.tensorflow import _import_tensorflow
from parity.config import TrainConfig

_import_tensorflow()
import keras  # noqa: E402 - after the TensorFlow import helper has set the environment

__all__ = ["keras_adam", "keras_callbacks"]


def keras_adam(train: TrainConfig) -> Any:
    """``keras.optimizers.Adam`` with the config's learning rate, betas and epsilon."""
    return keras.optimizers.Adam(learning_rate=train.learning_rate, beta_1=train.adam_beta_1,
                                 beta_2=train.adam_beta_2, epsilon=train.adam_epsilon)


def keras_callbacks(train: TrainConfig, *, validation: bool) -> list[Any]:
    """EarlyStopping on the training ``loss`` and, when there are validation groups,
    ReduceLROnPlateau on ``val_loss`` (the torch twin steps its scheduler only then too)."""
    callbacks: list[Any] = [keras.callbacks.EarlyStopping(
        monitor="loss", mode="min", patience=train.early_stop_patience, min_delta=0.0)]
    if validation:
        callbacks.append(keras.callbacks.ReduceLROnPlateau(
            monitor="val_loss", mode="min", factor=train.plateau_factor,
            patience=train.plateau_patience, min_lr=train.plateau_min_lr,
            min_delta=train.plateau_min_delta, verbose=0))
    return callbacks
