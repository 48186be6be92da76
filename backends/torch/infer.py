"""Inference from a saved bundle, and the bundle format itself (written by :func:`.train.fit`).

Twin of ``backends/tensorflow/infer.py``. A bundle directory holds ``config.json``
(``{"backend", "model", "train", "intensity_scale", "history"}``), ``weights.npz`` (neutral
layout), ``probe.npy`` (raw probe, complex64) and ``model.ckpt`` (the torch state dict, saved with
``torch.save`` and loaded with ``weights_only=True``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from backends.torch import _select_device
from backends.torch.model import PtychoPINN, export_weights
from parity.config import ModelConfig, TrainConfig, config_from_dict
from parity.contract import PreparedData

__all__ = ["infer", "load_bundle", "predict_patches"]

#: Files of a bundle, in the order they are checked.
_CONFIG, _WEIGHTS, _PROBE, _CHECKPOINT = "config.json", "weights.npz", "probe.npy", "model.ckpt"
_BUNDLE_FILES = (_CONFIG, _WEIGHTS, _PROBE, _CHECKPOINT)


def _atomic_write(path: Path, write: Any) -> None:
    """Write through ``write(file_object)`` to a temporary name, then rename onto ``path``."""
    temporary = path.with_name(f".{path.name}.partial")
    with open(temporary, "wb") as handle:
        write(handle)
    os.replace(temporary, path)


def _write_bundle(bundle_dir: Path, model: PtychoPINN, train: TrainConfig, *,
                  probe: np.ndarray, intensity_scale: float,
                  history: Mapping[str, list[float]]) -> None:
    """Save the four bundle files (each written atomically) from a trained model."""
    bundle_dir.mkdir(parents=True, exist_ok=True)
    config = {
        "backend": "torch",
        "model": asdict(model.config),
        "train": asdict(train),
        "intensity_scale": float(intensity_scale),
        "history": {key: [float(v) for v in values] for key, values in history.items()},
    }
    state = {name: tensor.detach().to("cpu").contiguous().clone()
             for name, tensor in model.state_dict().items()}
    weights = export_weights(model)
    _atomic_write(bundle_dir / _CONFIG,
                  lambda f: f.write(json.dumps(config, indent=2).encode("utf-8")))
    _atomic_write(bundle_dir / _WEIGHTS, lambda f: np.savez(f, **weights))
    _atomic_write(bundle_dir / _PROBE,
                  lambda f: np.save(f, np.asarray(probe, dtype=np.complex64)))
    _atomic_write(bundle_dir / _CHECKPOINT, lambda f: torch.save(state, f))


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
    bundle = Path(bundle_dir)
    for name in _BUNDLE_FILES:
        if not (bundle / name).is_file():
            raise FileNotFoundError(f"bundle {bundle} lacks {name}")
    try:
        config = json.loads((bundle / _CONFIG).read_text(encoding="utf-8"))
        model_config = config_from_dict(ModelConfig, dict(config["model"]))
        intensity_scale = float(config["intensity_scale"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{bundle / _CONFIG} is not a valid bundle config: {err!r}") from err
    try:
        state = torch.load(bundle / _CHECKPOINT, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types (pickle, zip, RuntimeError)
        raise ValueError(
            f"{bundle / _CHECKPOINT} is not a readable torch checkpoint: {err}") from err
    model = PtychoPINN(model_config)
    try:
        model.load_state_dict(state, strict=True)
    except (RuntimeError, TypeError, AttributeError) as err:
        raise ValueError(f"{bundle / _CHECKPOINT} does not fit the network of "
                         f"{bundle / _CONFIG}: {err}") from err
    try:
        with np.load(bundle / _WEIGHTS) as npz:
            neutral = {key: npz[key] for key in npz.files}
        probe = np.load(bundle / _PROBE)
    except (OSError, ValueError) as err:
        raise ValueError(f"cannot read {bundle / _WEIGHTS} or {bundle / _PROBE}: {err}") from err
    exported = export_weights(model)
    differing = sorted(k for k in set(exported) | set(neutral)
                       if k not in neutral or k not in exported
                       or not np.array_equal(exported[k], neutral[k]))
    if differing:
        raise ValueError(f"{bundle / _WEIGHTS} disagrees with {bundle / _CHECKPOINT} at "
                         f"{differing[:5]} ({len(differing)} weight(s))")
    model.to(_select_device())
    model.set_physics(probe, intensity_scale)
    model.eval()
    return model, config


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
