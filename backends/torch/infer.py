"""Inference from a saved bundle (written by :func:`.train.fit`).

Twin of ``backends/tensorflow/infer.py``. The bundle layout and its framework-free files are
:mod:`parity.bundle`'s; the native checkpoint here is ``model.ckpt``, the torch state dict saved
with ``torch.save`` and loaded with ``weights_only=True``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from backends.torch import _select_device
from backends.torch.model import PtychoPINN
from backends.torch.weights import export_weights
from parity.bundle import BUNDLE_CONFIG, check_checkpoint_agrees, read_bundle, write_bundle
from parity.config import TrainConfig
from parity.contract import PreparedData

__all__ = ["infer", "load_bundle", "predict_patches"]

_CHECKPOINT = "model.ckpt"


def _write_bundle(bundle_dir: Path, model: PtychoPINN, train: TrainConfig, *,
                  probe: np.ndarray, intensity_scale: float,
                  history: Mapping[str, list[float]]) -> None:
    """Save the bundle (:func:`parity.bundle.write_bundle`) of a trained model."""
    state = {name: tensor.detach().to("cpu").contiguous().clone()
             for name, tensor in model.state_dict().items()}
    write_bundle(bundle_dir, backend="torch", model=model.config, train=train, probe=probe,
                 intensity_scale=intensity_scale, history=history,
                 weights=export_weights(model), checkpoint_name=_CHECKPOINT,
                 write_checkpoint=lambda path: torch.save(state, path))


def load_bundle(bundle_dir: str | os.PathLike[str]) -> tuple[PtychoPINN, dict[str, Any]]:
    """Load a bundle saved by :func:`backends.torch.train.fit` (safe in a fresh process).

    Parameters
    ----------
    bundle_dir : str or os.PathLike
        The bundle directory.

    Returns
    -------
    model : PtychoPINN
        In eval mode on the selected device (:mod:`backends.torch`), weights from ``model.ckpt``,
        probe from ``probe.npy`` and ``s`` from ``config.json`` set.
    config : dict
        The parsed ``config.json``.

    Raises
    ------
    FileNotFoundError
        Naming the first bundle file that is missing.
    ValueError
        Naming a file that cannot be read or parsed, a checkpoint that does not fit the
        configured network, or a ``weights.npz`` that disagrees with ``model.ckpt``.
    """
    files = read_bundle(bundle_dir, _CHECKPOINT)
    try:
        state = torch.load(files.checkpoint, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types (pickle, zip, RuntimeError)
        raise ValueError(
            f"{files.checkpoint} is not a readable torch checkpoint: {err}") from err
    model = PtychoPINN(files.model)
    try:
        model.load_state_dict(state, strict=True)
    except (RuntimeError, TypeError, AttributeError) as err:
        raise ValueError(f"{files.checkpoint} does not fit the network of "
                         f"{files.directory / BUNDLE_CONFIG}: {err}") from err
    check_checkpoint_agrees(files, export_weights(model))
    model.to(_select_device())
    model.set_physics(files.probe, files.intensity_scale)
    model.eval()
    return model, files.config


def predict_patches(model: PtychoPINN, data: PreparedData, *, batch_size: int = 64) -> np.ndarray:
    """Predict ``trimmed_obj`` for every group of ``data``.

    Parameters
    ----------
    model : PtychoPINN
        A network with its physics set (e.g. from :func:`load_bundle`), on its device.
    data : PreparedData
        Groups ``(B, C, N, N)``; the network input is ``s * X`` with ``s = data.intensity_scale``
        (the model's first op divides by its own ``s``, as the reference).
    batch_size : int
        Groups per forward pass (keyword-only). The result does not depend on it beyond float
        rounding of batched kernels; the same value gives the same bits.

    Returns
    -------
    numpy.ndarray
        ``(B, N, N)`` complex64.

    Raises
    ------
    ValueError
        If the data's ``N`` or channel count differs from the model's, or ``batch_size < 1``.
    """
    cfg = model.config
    B, C, N, _ = data.diffraction.shape
    if (cfg.channels, cfg.N) != (C, N):
        raise ValueError(f"data groups are (C={C}, N={N}); the model expects "
                         f"(C={cfg.channels}, N={cfg.N})")
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size}; expected >= 1")
    device = next(model.parameters()).device
    pin = device.type == "cuda"
    scale = torch.tensor(data.intensity_scale, dtype=torch.float32, device=device)
    result = torch.empty((B, N, N), dtype=torch.complex64, device=device)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for start in range(0, B, batch_size):
                sl = slice(start, min(start + batch_size, B))
                x = torch.tensor(data.diffraction[sl])
                rel = torch.tensor(data.relative_px[sl])
                if pin:
                    x, rel = x.pin_memory(), rel.pin_memory()
                x = x.to(device, non_blocking=pin)
                rel = rel.to(device, non_blocking=pin)
                result[sl] = model.predict_object(x * scale, rel)
    finally:
        model.train(was_training)
    return result.cpu().numpy()


def infer(bundle_dir: str | os.PathLike[str], data: PreparedData) -> np.ndarray:
    """:func:`load_bundle` then :func:`predict_patches` (default batch size).

    Returns ``trimmed_obj`` ``(B, N, N)`` complex64; the same bundle on the same device gives the
    same array bit for bit, in a fresh process too.
    """
    model, _ = load_bundle(bundle_dir)
    return predict_patches(model, data)
