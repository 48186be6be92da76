"""PyTorch + Lightning backend of ptycho-parity.

Modules (twins of ``backends/tensorflow``, same names and signatures): :mod:`.physics` (probe,
exit wave, far field, losses), :mod:`.geometry` (translation, canvas, merge and extract of a
group), :mod:`.model` (the plain ``nn.Module`` network), :mod:`.weights` (neutral-weights export
and import), :mod:`.train` (numerics, loss, LightningModule, ``fit``), :mod:`.steps` (the exact
L3/L4 steps), :mod:`.optim`, :mod:`.infer`, :mod:`.stitch`, :mod:`.adapter`.

Importing this package, or :mod:`backends.torch.adapter`, does not import torch: the adapter imports
the other modules inside its methods, and the names below resolve lazily (module ``__getattr__``).

Device placement (torch only)
    Every tensor a backend function creates lives on one device, chosen once per call by
    :func:`_select_device`: the request of the innermost :func:`_device_scope` (the adapter wraps
    each hook in one with its ``device`` argument), else the environment variable
    :data:`DEVICE_ENV_VAR`, else ``cuda`` when ``torch.cuda.is_available()``, else ``cpu``. The
    functions of :mod:`.physics` and :mod:`.geometry` run on whatever device their input tensors
    are on.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch

__all__ = ["DEVICE_ENV_VAR", "adapter", "geometry", "infer", "model", "optim", "physics", "steps",
           "stitch", "train", "weights"]

#: Environment variable that names the torch device when no adapter ``device`` is given
#: (e.g. ``cpu``, ``cuda``, ``cuda:1``).
DEVICE_ENV_VAR: str = "PTYCHO_PARITY_TORCH_DEVICE"

_SUBMODULES = ("adapter", "geometry", "infer", "model", "optim", "physics", "steps", "stitch",
               "train", "weights")

_DEVICE_REQUEST: ContextVar[str | None] = ContextVar("ptycho_parity_torch_device", default=None)


def __getattr__(name: str) -> Any:
    # Lazy submodules: `backends.torch.physics` imports torch only when first touched.
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@contextmanager
def _device_scope(request: str | None) -> Iterator[None]:
    """Run the enclosed backend calls on ``request`` (``None``: automatic choice)."""
    token = _DEVICE_REQUEST.set(request)
    try:
        yield
    finally:
        _DEVICE_REQUEST.reset(token)


def _select_device() -> torch.device:
    """The device backend calls use now (see the module docstring for the order of choice).

    Raises
    ------
    ValueError
        If the requested device is not a valid torch device string, is neither CPU nor CUDA, or
        asks for CUDA that this process cannot use.
    """
    import torch

    request = _DEVICE_REQUEST.get() or os.environ.get(DEVICE_ENV_VAR) or None
    if request is None or request == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(request)
    except RuntimeError as err:
        raise ValueError(f"torch device {request!r} is not a valid device string: {err}") from err
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {request!r} requested but torch.cuda.is_available() is False")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(
                f"device {request!r} requested but only {torch.cuda.device_count()} CUDA "
                "device(s) exist"
            )
    elif device.type != "cpu":
        raise ValueError(f"torch device {request!r}: this backend runs on 'cpu' or 'cuda' only "
                         f"(float64 host arithmetic and Lightning's accelerators assume one of them)")
    if device.type == "cuda":
        _strict_float32()
    return device


def _strict_float32() -> None:
    """Compute float32 matmuls and convolutions in IEEE float32, never TF32.

    PyTorch leaves TF32 on for cuDNN convolutions by default (``torch.backends.cudnn.allow_tf32``;
    matmuls default to off): on Ampere and newer GPUs that rounds conv inputs to a 10-bit mantissa,
    ~1e-3 relative, far above any parity tolerance. Every tensor this backend creates gets its
    device from :func:`_select_device`, which calls this for CUDA, so the library API (e.g.
    ``infer.load_bundle``) computes like a parity run does (``train.configure_numerics`` records
    the flags). Twin of ``backends.tensorflow._strict_float32``.
    """
    import torch

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
