"""The exact single-step hooks of the stage ladder: L3 ``loss_and_grads``, L4 ``train_steps``.

Twin of ``backends/torch/steps.py``. Each builds the network from neutral weights and runs ONE
compiled exact step (``tf.function``, no XLA) of :class:`.train.PtychoPINNTrainer`: the loss
(:func:`.train.loss_value`, the one loss path ``fit`` runs too) and its gradients under a tape,
then one Keras Adam update (:func:`.optim.keras_adam`). Weights and gradients come back in the
neutral layout (:mod:`backends.tensorflow.weights`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from backends.tensorflow import _import_tensorflow
from backends.tensorflow.model import _batch_tensors, build_model
from backends.tensorflow.optim import keras_adam
from backends.tensorflow.train import PtychoPINNTrainer
from backends.tensorflow.weights import export_weights, import_weights
from parity.config import ModelConfig, TrainConfig

tf = _import_tensorflow()

__all__ = ["loss_and_grads", "train_steps"]


def _prepared_trainer(config: ModelConfig, train: TrainConfig,
                      weights: Mapping[str, np.ndarray]) -> tuple[PtychoPINNTrainer, Any, Any]:
    """Network with ``weights``, its trainer, a built Keras Adam and ONE compiled exact step.

    The step returns ``(loss, gradients)`` of the batch and then applies the Adam update.
    """
    network = build_model(config, seed=0)
    import_weights(network, weights)
    trainer = PtychoPINNTrainer(network, train)
    optimizer = keras_adam(train)
    optimizer.build([var for _, var in network.weight_variables()])

    @tf.function(jit_compile=False, reduce_retracing=True)
    def exact_step(diffraction: Any, relative_px: Any) -> tuple[Any, list[Any]]:
        loss, gradients = trainer.loss_and_gradients({"diffraction": diffraction,
                                                       "relative_px": relative_px})
        trainer.apply_update(optimizer, gradients)
        return loss, gradients

    return trainer, optimizer, exact_step


def loss_and_grads(config: ModelConfig, train: TrainConfig, weights: Mapping[str, np.ndarray],
                   batch: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Loss, gradients and the weights after ONE Keras Adam step at ``train.learning_rate``.

    Parameters
    ----------
    config, train : ModelConfig, TrainConfig
        Options.
    weights : mapping
        Neutral starting weights.
    batch : mapping
        ``parity.contract.BATCH_KEYS`` (diffraction NOT times ``s``).

    Returns
    -------
    dict[str, numpy.ndarray]
        ``loss`` 0-d float64, ``grad/<name>`` and ``stepped/<name>`` in the neutral layout.

    Raises
    ------
    KeyError, ValueError
        On bad weights (named) or a malformed batch (see ``model.forward_outputs``).
    """
    trainer, _, exact_step = _prepared_trainer(config, train, weights)
    diffraction, relative = _batch_tensors(trainer.network, batch)
    loss, gradients = exact_step(diffraction, relative)
    out: dict[str, np.ndarray] = {"loss": np.asarray(float(loss), dtype=np.float64)}
    for (name, _), gradient in zip(trainer.network.weight_variables(), gradients, strict=True):
        out[f"grad/{name}"] = np.asarray(gradient.numpy(), dtype=np.float32)
    out.update({f"stepped/{k}": v for k, v in export_weights(trainer.network).items()})
    return out


def train_steps(config: ModelConfig, train: TrainConfig, weights: Mapping[str, np.ndarray],
                batches: list[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """``k`` Keras Adam steps over ``batches`` in order, from ``weights``.

    Returns
    -------
    dict[str, numpy.ndarray]
        ``losses`` ``(k,)`` float64 (each batch's loss before its step) and ``weights/<name>``.

    Raises
    ------
    ValueError
        If ``batches`` is empty, or a batch is malformed (see ``model.forward_outputs``).
    """
    if not batches:
        raise ValueError("train_steps needs at least one batch")
    trainer, _, exact_step = _prepared_trainer(config, train, weights)
    losses = []
    for batch in batches:
        diffraction, relative = _batch_tensors(trainer.network, batch)
        loss, _ = exact_step(diffraction, relative)
        losses.append(loss)
    out: dict[str, np.ndarray] = {
        "losses": np.asarray([float(v) for v in losses], dtype=np.float64)}
    out.update({f"weights/{k}": v for k, v in export_weights(trainer.network).items()})
    return out
