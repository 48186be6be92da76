"""Inference from a saved bundle (written by :func:`.train.fit`).

Twin of ``backends/torch/infer.py``. The bundle layout and its framework-free files are
:mod:`parity.bundle`'s; the native checkpoint here is ``model.weights.h5`` (Keras 3
``Model.save_weights`` / ``load_weights``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from backends.tensorflow import _import_tensorflow
from backends.tensorflow.model import PtychoPINN, build_model
from backends.tensorflow.weights import export_weights
from parity.bundle import BUNDLE_CONFIG, check_checkpoint_agrees, read_bundle, write_bundle
from parity.config import TrainConfig
from parity.contract import PreparedData

tf = _import_tensorflow()

__all__ = ["infer", "load_bundle", "predict_patches"]

_CHECKPOINT = "model.weights.h5"


def _write_bundle(bundle_dir: Path, model: PtychoPINN, train: TrainConfig, *,
                  probe: np.ndarray, intensity_scale: float,
                  history: Mapping[str, list[float]]) -> None:
    """Save the bundle (:func:`parity.bundle.write_bundle`) of a trained model."""
    write_bundle(bundle_dir, backend="tensorflow", model=model.config, train=train, probe=probe,
                 intensity_scale=intensity_scale, history=history,
                 weights=export_weights(model), checkpoint_name=_CHECKPOINT,
                 write_checkpoint=lambda path: model.save_weights(str(path)))


def load_bundle(bundle_dir: str | os.PathLike[str]) -> tuple[PtychoPINN, dict[str, Any]]:
    """Load a bundle saved by :func:`backends.tensorflow.train.fit` (safe in a fresh process).

    Parameters
    ----------
    bundle_dir : str or os.PathLike
        The bundle directory.

    Returns
    -------
    model : PtychoPINN
        Weights from ``model.weights.h5``, probe from ``probe.npy`` and ``s`` from
        ``config.json`` set. Numerics are configured as for training
        (:func:`backends.tensorflow.train.configure_numerics` with the bundle's seed and
        ``deterministic``), so a fresh process computes with the same thread count and kernels.
    config : dict
        The parsed ``config.json``.

    Raises
    ------
    FileNotFoundError
        Naming the first bundle file that is missing.
    ValueError
        Naming a file that cannot be read or parsed, a checkpoint that does not fit the
        configured network, or a ``weights.npz`` that disagrees with ``model.weights.h5``.
    """
    files = read_bundle(bundle_dir, _CHECKPOINT)
    # The numerics the bundle was trained under (threads, op determinism, TF32 off): inference
    # in a fresh process then runs the same kernels with the same partitioning, bit for bit.
    from backends.tensorflow.train import configure_numerics

    configure_numerics(seed=files.train.seed, deterministic=files.train.deterministic)
    model = build_model(files.model, seed=0)
    try:
        model.load_weights(str(files.checkpoint))
    except Exception as err:  # Keras/h5py raise several types (OSError, ValueError, KeyError)
        raise ValueError(f"{files.checkpoint} is not a readable checkpoint of the network of "
                         f"{files.directory / BUNDLE_CONFIG}: {err}") from err
    check_checkpoint_agrees(files, export_weights(model))
    model.set_physics(files.probe, files.intensity_scale)
    return model, files.config


def _predict_function(model: PtychoPINN) -> Any:
    """One traced ``tf.function`` per model: ``(X, relative, s) -> trimmed_obj`` (input ``s X``)."""
    cached = getattr(model, "_trimmed_obj_function", None)
    if cached is None:
        N, C = model.config.N, model.config.channels

        @tf.function(input_signature=[tf.TensorSpec((None, C, N, N), tf.float32),
                                      tf.TensorSpec((None, C, 2), tf.float32),
                                      tf.TensorSpec((), tf.float32)],
                     jit_compile=False)
        def predict(diffraction: Any, relative_px: Any, scale: Any) -> Any:
            return model.predict_object(diffraction * scale, relative_px)

        cached = predict
        model._trimmed_obj_function = cached
    return cached


def predict_patches(model: PtychoPINN, data: PreparedData, *, batch_size: int = 64) -> np.ndarray:
    """Predict ``trimmed_obj`` for every group of ``data``.

    Parameters
    ----------
    model : PtychoPINN
        A network with its physics set (e.g. from :func:`load_bundle`).
    data : PreparedData
        Groups ``(B, C, N, N)``; the network input is ``s * X`` with ``s = data.intensity_scale``
        in float32 (the model's first op divides by its own ``s``, as the reference).
    batch_size : int
        Groups per forward pass (keyword-only). The same value gives the same bits.

    Returns
    -------
    numpy.ndarray
        ``(B, N, N)`` complex64.

    Raises
    ------
    ValueError
        If the data's ``N`` or channel count differs from the model's, or ``batch_size < 1``.
    RuntimeError
        If the model's physics was never set.
    """
    cfg = model.config
    B, C, N, _ = data.diffraction.shape
    if (cfg.channels, cfg.N) != (C, N):
        raise ValueError(f"data groups are (C={C}, N={N}); the model expects "
                         f"(C={cfg.channels}, N={cfg.N})")
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size}; expected >= 1")
    if not model.physics_ready:
        raise RuntimeError("call set_physics(probe, intensity_scale) before predict_patches")
    scale = tf.constant(data.intensity_scale, dtype=tf.float32)
    predict = _predict_function(model)
    parts = []
    for start in range(0, B, batch_size):
        sl = slice(start, min(start + batch_size, B))
        parts.append(predict(tf.constant(data.diffraction[sl]), tf.constant(data.relative_px[sl]),
                             scale).numpy())
    return np.concatenate(parts, axis=0).astype(np.complex64, copy=False)


def infer(bundle_dir: str | os.PathLike[str], data: PreparedData) -> np.ndarray:
    """:func:`load_bundle` then :func:`predict_patches` (default batch size).

    Returns ``trimmed_obj`` ``(B, N, N)`` complex64; the same bundle on the same device gives the
    same array bit for bit, in a fresh process too.
    """
    model, _ = load_bundle(bundle_dir)
    return predict_patches(model, data)
