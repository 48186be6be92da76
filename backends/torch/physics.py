"""Forward physics of PtychoPINN in PyTorch: batched tensors in, tensors out, on any device.

Twin of ``backends/tensorflow/physics.py``; float64 reference in :mod:`parity.oracle.physics`.
The probe, the exit wave, the far field and the losses; the geometry of offsets (translation,
padding to the canvas, merging and re-extracting a group) is :mod:`backends.torch.geometry`'s, which
shares this module's mask and shape helpers. Every function works on ``(..., N, N)`` arrays
(spatial axes last); groups are ``(B, C, N, N)`` (:mod:`parity.conventions`).
"""

from __future__ import annotations

import functools

import torch

from parity.conventions import (
    FFT_NORM,
    FFT_SHIFT_AXES,
    POISSON_LOG_FLOOR,
    centre_mask,
    probe_mask,
)

__all__ = ["exit_wave", "farfield_amplitude", "mae_loss", "normalise_probe", "poisson_nll"]


@functools.lru_cache(maxsize=64)
def _constant_mask(kind: str, N: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Cached ``(N, N)`` mask tensor (built once per size, device and dtype; never modified).

    Built outside inference mode so that a mask first needed by inference can later enter
    autograd.
    """
    masks = {"probe": probe_mask, "centre": centre_mask}
    with torch.inference_mode(False):
        return torch.as_tensor(masks[kind](N), dtype=dtype, device=device)


def _real_dtype(dtype: torch.dtype) -> torch.dtype:
    return {torch.complex64: torch.float32, torch.complex128: torch.float64}.get(dtype, dtype)


def _check_square(name: str, tensor: torch.Tensor) -> int:
    if tensor.ndim < 2 or tensor.shape[-1] != tensor.shape[-2]:
        raise ValueError(f"{name} has shape {tuple(tensor.shape)}; expected (..., N, N)")
    return int(tensor.shape[-1])


def normalise_probe(probe: torch.Tensor, probe_scale: float) -> torch.Tensor:
    """Normalise the probe as PtychoPINN ``set_probe``: ``P / (probe_scale * mean(|M P|))``.

    Parameters
    ----------
    probe : torch.Tensor
        ``(N, N)`` complex probe (complex64 in the pipeline).
    probe_scale : float
        Normalisation constant (``ModelConfig.probe_scale``).

    Returns
    -------
    torch.Tensor
        ``(N, N)`` probe of the input dtype, on the input device. The mean runs over all ``N**2``
        pixels of the masked magnitude, ``M`` = :func:`parity.conventions.probe_mask`.

    Raises
    ------
    ValueError
        If the probe is not ``(N, N)`` or is zero inside the mask. The zero check reads one scalar
        back to the host: call this once per probe (the model caches the result), not per step.
    """
    N = _check_square("probe", probe)
    if probe.ndim != 2:
        raise ValueError(f"probe has shape {tuple(probe.shape)}; expected (N, N)")
    mask = _constant_mask("probe", N, probe.device, _real_dtype(probe.dtype))
    denominator = probe_scale * torch.mean(torch.abs(mask * probe))
    if not bool(denominator > 0):
        raise ValueError("probe is zero inside the normalisation disk; cannot normalise")
    return probe / denominator


def exit_wave(probe: torch.Tensor, patches: torch.Tensor, *, mask: bool = False) -> torch.Tensor:
    """Exit wave ``psi = P * O`` (pointwise), times the hard probe mask when ``mask``.

    ``probe`` is ``(N, N)`` complex, ``patches`` ``(..., N, N)`` complex; the result broadcasts
    over the leading axes of ``patches``.
    """
    N = _check_square("patches", patches)
    if tuple(probe.shape) != (N, N):
        raise ValueError(f"probe has shape {tuple(probe.shape)}; expected ({N}, {N}) to match "
                         "the patches")
    psi = probe * patches
    if mask:
        psi = psi * _constant_mask("probe", N, psi.device, _real_dtype(psi.dtype))
    return psi


def farfield_amplitude(psi: torch.Tensor) -> torch.Tensor:
    """Far-field amplitude ``sqrt(fftshift(|F psi|**2 / N**2))`` over the last two axes.

    ``F`` is the forward DFT; ``|F psi|**2 / N**2`` is taken as the orthonormal FFT
    (:data:`parity.conventions.FFT_NORM`), zero frequency lands at index ``N // 2``. Returns a real
    tensor of the shape of ``psi``.
    """
    _check_square("exit wave", psi)
    # The transform always covers both spatial axes; the shift axes are the convention constant
    # (read at call time, so the harness self-test can rebind it here).
    field = torch.fft.fft2(psi, dim=(-2, -1), norm=FFT_NORM)
    intensity = torch.abs(field) ** 2
    return torch.sqrt(torch.fft.fftshift(intensity, dim=FFT_SHIFT_AXES))


def poisson_nll(pred_intensity: torch.Tensor, observed_intensity: torch.Tensor) -> torch.Tensor:
    """Mean Poisson NLL without ``log k!``: ``mean(lam - k * log(lam + POISSON_LOG_FLOOR))``.

    Both inputs are intensities in count units of one shape; the mean runs over every element.
    Returns a 0-d tensor.
    """
    if pred_intensity.shape != observed_intensity.shape:
        raise ValueError(f"predicted intensity {tuple(pred_intensity.shape)} and observed "
                         f"{tuple(observed_intensity.shape)} differ in shape")
    lam = pred_intensity
    return torch.mean(lam - observed_intensity * torch.log(lam + POISSON_LOG_FLOOR))


def mae_loss(pred_amplitude: torch.Tensor, observed_amplitude: torch.Tensor) -> torch.Tensor:
    """Mean absolute error of amplitudes over every element (0-d tensor)."""
    if pred_amplitude.shape != observed_amplitude.shape:
        raise ValueError(f"predicted amplitude {tuple(pred_amplitude.shape)} and observed "
                         f"{tuple(observed_amplitude.shape)} differ in shape")
    return torch.mean(torch.abs(pred_amplitude - observed_amplitude))
