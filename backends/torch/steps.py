"""The exact single-step hooks of the stage ladder: L3 ``loss_and_grads``, L4 ``train_steps``.

Twin of ``backends/tensorflow/steps.py``. Each builds the network from neutral weights on the
selected device (:mod:`backends.torch`) and runs :meth:`.train.PtychoPINNModule.exact_step`, the
step ``fit`` runs too: zero_grad -> loss (:func:`.train.loss_value`) -> backward -> one Keras Adam
step (:class:`.optim.KerasAdam`). Weights and gradients come back in the neutral layout
(:mod:`backends.torch.weights`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from backends.torch import _select_device
from backends.torch.model import _batch_tensors, build_model
from backends.torch.train import PtychoPINNModule
from backends.torch.weights import _neutral, export_weights, import_weights
from parity.config import ModelConfig, TrainConfig

__all__ = ["loss_and_grads", "train_steps"]


def _prepared_module(config: ModelConfig, train: TrainConfig,
                     weights: Mapping[str, np.ndarray]) -> tuple[PtychoPINNModule, Any]:
    """Network with ``weights`` on the selected device, its module and a fresh Keras Adam."""
    model = build_model(config, seed=0)
    import_weights(model, weights)
    model.to(_select_device())
    module = PtychoPINNModule(model, train)
    return module, module.configure_optimizers()["optimizer"]


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
    """
    module, optimizer = _prepared_module(config, train, weights)
    tensors = _batch_tensors(module.model, batch, module.model.probe.device)
    loss, grads = module.exact_step(tensors, optimizer, record_grads=True)
    out: dict[str, np.ndarray] = {"loss": np.asarray(float(loss), dtype=np.float64)}
    out.update(_neutral(module.model, grads, "grad/"))
    out.update({f"stepped/{k}": v for k, v in export_weights(module.model).items()})
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
        If ``batches`` is empty, or a batch is malformed (see ``forward_outputs``).
    """
    if not batches:
        raise ValueError("train_steps needs at least one batch")
    module, optimizer = _prepared_module(config, train, weights)
    device = module.model.probe.device
    losses = []
    for batch in batches:
        tensors = _batch_tensors(module.model, batch, device)
        loss, _ = module.exact_step(tensors, optimizer)
        losses.append(loss)
    out: dict[str, np.ndarray] = {
        "losses": torch.stack(losses).to("cpu", torch.float64).numpy()}
    out.update({f"weights/{k}": v for k, v in export_weights(module.model).items()})
    return out
