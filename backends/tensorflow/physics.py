"""Forward physics of PtychoPINN in TensorFlow: batched tensors in, tensors out, on any device.

Twin of ``backends/torch/physics.py``; float64 reference in :mod:`parity.oracle.physics`.
The probe, the exit wave, the far field and the losses; the geometry of offsets (translation,
padding to the canvas, merging and re-extracting a group) is :mod:`backends.tensorflow.geometry`'s,
which shares this module's mask and shape helpers. Every function works on ``(..., N, N)`` tensors
(spatial axes last); groups are ``(B, C, N, N)`` (:mod:`parity.conventions`). Functions take
``tf.Tensor`` (or anything ``tf.convert_to_tensor`` accepts) and work eagerly and inside
``tf.function`` (leading axes may be unknown there).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from backends.tensorflow import _import_tensorflow
from parity.conventions import (
    FFT_NORM,
    FFT_SHIFT_AXES,
    POISSON_LOG_FLOOR,
    centre_mask,
    probe_mask,
)

tf = _import_tensorflow()

__all__ = ["exit_wave", "farfield_amplitude", "mae_loss", "normalise_probe", "poisson_nll"]


@functools.lru_cache(maxsize=64)
def _mask_array(kind: str, N: int) -> np.ndarray:
    masks = {"probe": probe_mask, "centre": centre_mask}
    return masks[kind](N).astype(np.float32)


def _mask(kind: str, N: int, dtype: Any) -> Any:
    """``(N, N)`` mask tensor of ``dtype`` (real, or complex with zero imaginary part)."""
    return tf.constant(_mask_array(kind, N), dtype=dtype)


def _real_dtype(dtype: Any) -> Any:
    return dtype.real_dtype if dtype.is_complex else dtype


def _side(name: str, tensor: Any) -> int:
    """Static side ``N`` of a ``(..., N, N)`` tensor."""
    shape = tensor.shape
    if shape.rank is None or shape.rank < 2 or shape[-1] is None or shape[-1] != shape[-2]:
        raise ValueError(f"{name} has shape {shape}; expected (..., N, N) with static N")
    return int(shape[-1])


def normalise_probe(probe: Any, probe_scale: float) -> Any:
    """Normalise the probe as PtychoPINN ``set_probe``: ``P / (probe_scale * mean(|M P|))``.

    Parameters
    ----------
    probe : tf.Tensor
        ``(N, N)`` complex probe (complex64 in the pipeline).
    probe_scale : float
        Normalisation constant (``ModelConfig.probe_scale``).

    Returns
    -------
    tf.Tensor
        ``(N, N)`` probe of the input dtype. The mean runs over all ``N**2`` pixels of the masked
        magnitude, ``M`` = :func:`parity.conventions.probe_mask`.

    Raises
    ------
    ValueError
        If the probe is not ``(N, N)``, or (eagerly) is zero inside the mask. The zero check reads
        one scalar back to the host: call this once per probe, not per step.
    """
    probe = tf.convert_to_tensor(probe)
    N = _side("probe", probe)
    if probe.shape.rank != 2:
        raise ValueError(f"probe has shape {probe.shape}; expected (N, N)")
    real = _real_dtype(probe.dtype)
    # |M P| = M |P| exactly for a 0/1 mask.
    denominator = probe_scale * tf.reduce_mean(_mask("probe", N, real) * tf.abs(probe))
    if tf.executing_eagerly() and not bool(denominator > 0):
        raise ValueError("probe is zero inside the normalisation disk; cannot normalise")
    return probe / tf.cast(denominator, probe.dtype)


def exit_wave(probe: Any, patches: Any, *, mask: bool = False) -> Any:
    """Exit wave ``psi = P * O`` (pointwise), times the hard probe mask when ``mask``.

    ``probe`` is ``(N, N)`` complex, ``patches`` ``(..., N, N)`` complex; the result broadcasts
    over the leading axes of ``patches``.

    Raises
    ------
    ValueError
        If the probe is not ``(N, N)`` for the patches' ``N``.
    """
    probe = tf.convert_to_tensor(probe)
    patches = tf.convert_to_tensor(patches)
    N = _side("patches", patches)
    if tuple(probe.shape) != (N, N):
        raise ValueError(f"probe has shape {tuple(probe.shape)}; expected ({N}, {N}) to match "
                         "the patches")
    psi = probe * patches
    if mask:
        psi = psi * _mask("probe", N, psi.dtype)
    return psi


def farfield_amplitude(psi: Any) -> Any:
    """Far-field amplitude ``sqrt(fftshift(|F psi|**2 / N**2))`` over the last two axes.

    ``F`` is the unnormalised forward DFT (``tf.signal.fft2d``), so ``|F psi|**2 / N**2`` is the
    orthonormal FFT of :data:`parity.conventions.FFT_NORM`; zero frequency lands at index
    ``N // 2`` (``fftshift`` over :data:`parity.conventions.FFT_SHIFT_AXES`). Returns a real tensor
    of the shape of ``psi``.

    Raises
    ------
    ValueError
        If ``psi`` is not ``(..., N, N)``, or the convention asks for another FFT normalisation.
    """
    psi = tf.convert_to_tensor(psi)
    N = _side("exit wave", psi)
    if FFT_NORM != "ortho":
        raise ValueError(f"FFT_NORM={FFT_NORM!r}; this backend implements 'ortho' only")
    if not psi.dtype.is_complex:
        psi = tf.complex(psi, tf.zeros_like(psi))
    field = tf.signal.fft2d(psi)
    intensity = (tf.square(tf.math.real(field)) + tf.square(tf.math.imag(field))) * (1.0 / N**2)
    return tf.sqrt(tf.signal.fftshift(intensity, axes=FFT_SHIFT_AXES))


def _check_same_shape(what: str, pred: Any, observed: Any) -> None:
    if not pred.shape.is_compatible_with(observed.shape):
        raise ValueError(f"predicted {what} {pred.shape} and observed {observed.shape} differ in "
                         "shape")


def poisson_nll(pred_intensity: Any, observed_intensity: Any) -> Any:
    """Mean Poisson NLL without ``log k!``: ``mean(lam - k * log(lam + POISSON_LOG_FLOOR))``.

    Both inputs are intensities in count units of one shape; the mean runs over every element.
    Returns a 0-d tensor (TF ``log_poisson_loss(compute_full_loss=False)`` on ``log(lam)``).
    """
    lam = tf.convert_to_tensor(pred_intensity)
    k = tf.convert_to_tensor(observed_intensity)
    _check_same_shape("intensity", lam, k)
    return tf.reduce_mean(lam - k * tf.math.log(lam + POISSON_LOG_FLOOR))


def mae_loss(pred_amplitude: Any, observed_amplitude: Any) -> Any:
    """Mean absolute error of amplitudes over every element (0-d tensor)."""
    pred = tf.convert_to_tensor(pred_amplitude)
    obs = tf.convert_to_tensor(observed_amplitude)
    _check_same_shape("amplitude", pred, obs)
    return tf.reduce_mean(tf.abs(pred - obs))
