"""Inference from a saved bundle, and the bundle format itself (written by :func:`.train.fit`).

Twin of ``backends/torch/infer.py``. A bundle directory holds ``config.json``
(``{"backend", "model", "train", "intensity_scale", "history"}``), ``weights.npz`` (neutral
layout), ``probe.npy`` (raw probe, complex64) and ``model.weights.h5`` (the Keras 3 native
checkpoint, ``Model.save_weights`` / ``load_weights``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from backends.tensorflow import _import_tensorflow
from backends.tensorflow.model import PtychoPINN, build_model, export_weights
from parity.config import ModelConfig, TrainConfig, config_from_dict
from parity.contract import PreparedData

tf = _import_tensorflow()

__all__ = ["infer", "load_bundle", "predict_patches"]

#: Files of a bundle, in the order they are checked.
_CONFIG, _WEIGHTS, _PROBE, _CHECKPOINT = "config.json", "weights.npz", "probe.npy", "model.weights.h5"
_BUNDLE_FILES = (_CONFIG, _WEIGHTS, _PROBE, _CHECKPOINT)


def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Write through ``write(temporary_path)``, then rename onto ``path`` (never half a file).

    The temporary name keeps the final suffixes (Keras insists on ``.weights.h5``).
    """
    temporary = path.with_name(f".partial-{path.name}")
    write(temporary)
    os.replace(temporary, path)


def _write_npz(arrays: Mapping[str, np.ndarray]) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        with open(path, "wb") as handle:
            np.savez(handle, **arrays)
    return write


def _write_bundle(bundle_dir: Path, model: PtychoPINN, train: TrainConfig, *,
                  probe: np.ndarray, intensity_scale: float,
                  history: Mapping[str, list[float]]) -> None:
    """Save the four bundle files (each written atomically) from a trained model."""
    bundle_dir.mkdir(parents=True, exist_ok=True)
    config = {
        "backend": "tensorflow",
        "model": asdict(model.config),
        "train": asdict(train),
        "intensity_scale": float(intensity_scale),
        "history": {key: [float(v) for v in values] for key, values in history.items()},
    }
    _atomic_write(bundle_dir / _CONFIG,
                  lambda p: p.write_text(json.dumps(config, indent=2), encoding="utf-8"))
    _atomic_write(bundle_dir / _WEIGHTS, _write_npz(export_weights(model)))

    def write_probe(path: Path) -> None:
        with open(path, "wb") as handle:
            np.save(handle, np.asarray(probe, dtype=np.complex64))

    _atomic_write(bundle_dir / _PROBE, write_probe)
    _atomic_write(bundle_dir / _CHECKPOINT, lambda p: model.save_weights(str(p)))


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
    bundle = Path(bundle_dir)
    for name in _BUNDLE_FILES:
        if not (bundle / name).is_file():
            raise FileNotFoundError(f"bundle {bundle} lacks {name} ({bundle / name})")
    try:
        config = json.loads((bundle / _CONFIG).read_text(encoding="utf-8"))
        model_config = config_from_dict(ModelConfig, dict(config["model"]))
        intensity_scale = float(config["intensity_scale"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{bundle / _CONFIG} is not a valid bundle config: {err!r}") from err
    train_config = _train_config(bundle, config)
    # The numerics the bundle was trained under (threads, op determinism, TF32 off): inference
    # in a fresh process then runs the same kernels with the same partitioning, bit for bit.
    from backends.tensorflow.train import configure_numerics

    configure_numerics(seed=train_config.seed, deterministic=train_config.deterministic)
    model = build_model(model_config, seed=0)
    try:
        model.load_weights(str(bundle / _CHECKPOINT))
    except Exception as err:  # Keras/h5py raise several types (OSError, ValueError, KeyError)
        raise ValueError(f"{bundle / _CHECKPOINT} is not a readable checkpoint of the network of "
                         f"{bundle / _CONFIG}: {err}") from err
    try:
        with np.load(bundle / _WEIGHTS) as npz:
            neutral = {key: npz[key] for key in npz.files}
    except (OSError, ValueError) as err:
        raise ValueError(f"cannot read {bundle / _WEIGHTS}: {err}") from err
    try:
        probe = np.load(bundle / _PROBE)
    except (OSError, ValueError) as err:
        raise ValueError(f"cannot read {bundle / _PROBE}: {err}") from err
    exported = export_weights(model)
    differing = sorted(k for k in set(exported) | set(neutral)
                       if k not in neutral or k not in exported
                       or not np.array_equal(exported[k], neutral[k]))
    if differing:
        raise ValueError(f"{bundle / _WEIGHTS} disagrees with {bundle / _CHECKPOINT} at "
                         f"{differing[:5]} ({len(differing)} weight(s))")
    model.set_physics(probe, intensity_scale)
    return model, config


def _train_config(bundle: Path, config: Mapping[str, Any]) -> TrainConfig:
    try:
        return config_from_dict(TrainConfig, dict(config.get("train", {})))
    except (TypeError, ValueError) as err:
        raise ValueError(f"{bundle / _CONFIG} holds an invalid train config: {err}") from err


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
