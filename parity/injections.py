"""Injectable divergences: the classic TF->PyTorch port bugs, applied to ONE backend at run time.

An injection never edits a backend's source. It acts in that backend's worker process only, in one
of four ways:

* ``wrap``: replace a public backend function (``geometry.translate``, ...) by a wrapper, in every
  module of the backend package that holds it;
* ``constant``: rebind a convention constant (e.g. ``FFT_SHIFT_AXES``) that the backend imported
  from :mod:`parity.conventions`;
* ``silent_config``: hand the hooks a changed config while ``effective_config`` still reports the
  original (the backend "says" one thing and does another);
* ``inputs``: alter the NumPy inputs that backend receives (axis order, precision).

Each injection names the ladder level where the self-test expects it to be caught
(:data:`INJECTIONS`). The wrappers use only operators that TensorFlow and PyTorch tensors share
(unary minus, scalar arithmetic), so nothing here branches on a framework.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from parity.config import ModelConfig, TrainConfig

__all__ = ["INJECTIONS", "Injection", "apply_injection", "transform_inputs"]


@dataclass(frozen=True)
class Injection:
    """One injectable divergence.

    Attributes
    ----------
    name : str
        Registry name (``parity run --inject NAME``).
    description : str
        The port bug it reproduces.
    expected_level : str
        Ladder level where it must be caught first.
    mechanism : str
        ``wrap``, ``constant``, ``silent_config`` or ``inputs``.
    """

    name: str
    description: str
    expected_level: str
    mechanism: str


INJECTIONS: dict[str, Injection] = {
    inj.name: inj
    for inj in (
        Injection("offset_sign", "translation offsets negated (the reassembly sign bug)", "L1",
                  "wrap"),
        # Reading (y, x) as (x, y) transposes the stitched canvas of a non-square scan: the
        # output layout itself changes, which L0 names before any value is compared.
        Injection("axis_order", "offsets and positions read as (y, x) instead of (x, y)", "L0",
                  "inputs"),
        Injection("fftshift_axes", "FFT and fftshift over the column axis only", "L1",
                  "constant"),
        Injection("fft_normalisation", "unnormalised FFT (|F| instead of |F|/N)", "L1", "wrap"),
        Injection("probe_normalisation", "probe divided by probe_scale twice", "L1", "wrap"),
        Injection("loss_reduction", "Poisson NLL summed instead of averaged", "L1", "wrap"),
        Injection("stitching_offset", "stitching positions shifted by one pixel in x", "L1",
                  "wrap"),
        Injection("dtype_downcast", "diffraction read at float16 precision", "L2", "inputs"),
        Injection("amp_activation", "amplitude head uses swish while reporting sigmoid", "L2",
                  "silent_config"),
        Injection("activation_scale", "phase head scaled by pi/2 instead of pi", "L2", "constant"),
        Injection("optimizer_epsilon", "Adam epsilon 1e-8 (torch default) while reporting 1e-7",
                  "L3", "silent_config"),
    )
}


def _check(name: str) -> Injection:
    if name not in INJECTIONS:
        raise ValueError(f"unknown injection {name!r}; known: {', '.join(INJECTIONS)}")
    return INJECTIONS[name]


def _backend_modules(package: str) -> list[Any]:
    pkg = importlib.import_module(package)
    for info in pkgutil.walk_packages(pkg.__path__, prefix=package + "."):
        importlib.import_module(info.name)
    return [m for n, m in sorted(sys.modules.items())
            if m is not None and (n == package or n.startswith(package + "."))]


def _wrap(package: str, attribute: str, make: Callable[[Callable[..., Any]], Callable[..., Any]]
          ) -> int:
    modules = _backend_modules(package)
    originals = {getattr(m, attribute) for m in modules if hasattr(m, attribute)}
    if len(originals) != 1:
        raise RuntimeError(f"{package} has {len(originals)} distinct {attribute!r} functions; "
                           "cannot inject")
    original = originals.pop()
    wrapped = make(original)
    patched = 0
    for module in modules:
        if getattr(module, attribute, None) is original:
            setattr(module, attribute, wrapped)
            patched += 1
    return patched


def _rebind(package: str, attribute: str, value: Any) -> int:
    patched = 0
    for module in _backend_modules(package):
        if attribute in vars(module):
            setattr(module, attribute, value)
            patched += 1
    if not patched:
        raise RuntimeError(f"no module of {package} binds {attribute!r}: the backend does not read "
                           "this convention from parity, so it cannot be injected")
    return patched


def apply_injection(name: str, package: str, model: ModelConfig,
                    train: TrainConfig) -> tuple[ModelConfig, TrainConfig]:
    """Apply injection ``name`` to the backend package ``package`` (e.g. ``backends.torch``).

    Returns the configs the hooks must run with (changed only by ``silent_config`` injections).
    """
    _check(name)
    if name == "offset_sign":
        _wrap(package, "translate", lambda f: lambda images, offsets_px: f(images, -offsets_px))
    elif name == "fft_normalisation":
        _wrap(package, "farfield_amplitude",
              lambda f: lambda psi: f(psi) * float(int(psi.shape[-1])))
    elif name == "probe_normalisation":
        _wrap(package, "normalise_probe",
              lambda f: lambda probe, probe_scale: f(probe, probe_scale) / probe_scale)
    elif name == "loss_reduction":
        def _sum(f: Callable[..., Any]) -> Callable[..., Any]:
            def summed(pred_intensity: Any, observed_intensity: Any) -> Any:
                count = float(np.prod([int(d) for d in pred_intensity.shape]))
                return f(pred_intensity, observed_intensity) * count
            return summed
        _wrap(package, "poisson_nll", _sum)
    elif name == "stitching_offset":
        def _shifted(f: Callable[..., Any]) -> Callable[..., Any]:
            def stitched(patches: Any, centres_px: Any, *, crop_px: int) -> Any:
                return f(patches, np.asarray(centres_px) + np.array([1.0, 0.0]), crop_px=crop_px)
            return stitched
        _wrap(package, "stitch_patches", _shifted)
    elif name == "fftshift_axes":
        _rebind(package, "FFT_SHIFT_AXES", (-1,))
    elif name == "activation_scale":
        _rebind(package, "PHASE_SCALE_RAD", float(np.pi / 2))
    elif name == "amp_activation":
        model = dataclasses.replace(model, amp_activation="swish")
    elif name == "optimizer_epsilon":
        train = dataclasses.replace(train, adam_epsilon=1e-8)
    return model, train


def transform_inputs(name: str | None, arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Apply an ``inputs`` injection to the NumPy arrays a backend receives."""
    out = dict(arrays)
    if name == "axis_order":
        for key in ("relative_px", "translations_px", "stitch_centres_px", "centres_px"):
            if key in out:
                out[key] = np.ascontiguousarray(out[key][..., ::-1])
    elif name == "dtype_downcast" and "diffraction" in out:
        out["diffraction"] = out["diffraction"].astype(np.float16).astype(np.float32)
    return out
