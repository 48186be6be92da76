"""TensorFlow 2 / Keras 3 baseline backend of ptycho-parity.

Modules (twins of ``backends/torch``, same names and signatures): :mod:`.physics` (probe, exit
wave, far field, losses), :mod:`.geometry` (translation, canvas, merge and extract of a group),
:mod:`.model` (the Keras network), :mod:`.weights` (neutral-weights export and import),
:mod:`.train` (numerics, loss, Keras trainer, ``fit``), :mod:`.steps` (the exact L3/L4 steps),
:mod:`.optim`, :mod:`.infer`, :mod:`.stitch`, :mod:`.adapter`.

Importing this package, or :mod:`backends.tensorflow.adapter`, does not import TensorFlow: the
adapter imports the other modules inside its methods, and the names below resolve lazily (module
``__getattr__``). Every module that needs TensorFlow gets it from :func:`_import_tensorflow`, which
sets the environment defaults first.

Device placement (TensorFlow only)
    TensorFlow places ops itself (a GPU when one is visible, else the CPU). The adapter wraps each
    hook in ``tf.device(device)`` when it is given a ``device`` string (``"/CPU:0"``, ``"cpu"``,
    ``"/GPU:0"``, ``"gpu"``); see :func:`_device_scope`.

Environment defaults (set with ``os.environ.setdefault`` before the first TensorFlow import, so a
value the caller exported wins): ``TF_CPP_MIN_LOG_LEVEL=2`` (no C++ info chatter).
``TF_ENABLE_ONEDNN_OPTS`` is left as the caller set it (oneDNN kernels round differently from the
plain Eigen ones); :meth:`.adapter.TensorFlowAdapter.environment` records it.
"""

from __future__ import annotations

import contextlib
import importlib
import os
from collections.abc import Iterator
from typing import Any

__all__ = ["ENV_DEFAULTS", "adapter", "geometry", "infer", "model", "optim", "physics", "steps",
           "stitch", "train", "weights"]

#: Environment variables set (if unset) before TensorFlow is first imported. ``TF_FORCE_GPU_ALLOW_
#: GROWTH``: by default TensorFlow maps nearly all memory of every visible GPU when its runtime
#: starts, which would starve the torch job that runs beside it on the same GPU.
ENV_DEFAULTS: dict[str, str] = {"TF_CPP_MIN_LOG_LEVEL": "2", "TF_FORCE_GPU_ALLOW_GROWTH": "true"}

_SUBMODULES = ("adapter", "geometry", "infer", "model", "optim", "physics", "steps", "stitch",
               "train", "weights")


def __getattr__(name: str) -> Any:
    # Lazy submodules: `backends.tensorflow.physics` imports TensorFlow only when first touched.
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _import_tensorflow() -> Any:
    """Set :data:`ENV_DEFAULTS`, import ``tensorflow``, turn TF32 off (:func:`_strict_float32`)
    and return the module."""
    for key, value in ENV_DEFAULTS.items():
        os.environ.setdefault(key, value)
    import tensorflow as tf

    _strict_float32(tf)
    return tf


def _strict_float32(tf: Any) -> None:
    """Compute float32 matmuls and convolutions in IEEE float32, never TF32.

    TensorFlow enables TF32 by default on Ampere and newer GPUs (10-bit mantissa inputs: ~1e-3
    relative error, far above any parity tolerance). Every module of this backend imports
    TensorFlow through :func:`_import_tensorflow`, so this holds for the library API too, not only
    for parity runs (``train.configure_numerics`` records it). Twin of
    ``backends.torch._strict_float32``.
    """
    tf.config.experimental.enable_tensor_float_32_execution(False)


_DEVICE_ALIASES = {"cpu": "/CPU:0", "gpu": "/GPU:0", "cuda": "/GPU:0"}


def _device_name(request: str | None) -> str | None:
    """Normalise a device request (``cpu``, ``gpu``, ``cuda:1``, ``/GPU:0``, ...) or None."""
    if request is None or request == "auto":
        return None
    lowered = request.lower()
    if lowered in _DEVICE_ALIASES:
        return _DEVICE_ALIASES[lowered]
    if lowered.startswith(("cuda:", "gpu:")):
        return f"/GPU:{lowered.split(':', 1)[1]}"
    if lowered.startswith("cpu:"):
        return f"/CPU:{lowered.split(':', 1)[1]}"
    return request


@contextlib.contextmanager
def _device_scope(request: str | None) -> Iterator[None]:
    """Run the enclosed TensorFlow ops on ``request`` (``None``: TensorFlow's own placement).

    Raises
    ------
    ValueError
        If a GPU is requested but TensorFlow sees none.
    """
    name = _device_name(request)
    if name is None:
        yield
        return
    tf = _import_tensorflow()
    if "GPU" in name.upper() and not tf.config.list_logical_devices("GPU"):
        raise ValueError(f"device {request!r} requested but TensorFlow sees no GPU")
    with tf.device(name):
        yield
