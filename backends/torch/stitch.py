"""Stitching of patches into the full object on the device (PtychoPINN ``reassemble_position``).

Twin of ``backends/tensorflow/stitch.py``; float64 reference
:func:`parity.oracle.stitch.stitch_patches`.
The canvas geometry (integer origin, size) is computed on the host from the ``(n, 2)`` centres by
:func:`parity.oracle.stitch.canvas_geometry` / :func:`~parity.oracle.stitch.crop_corners`; the
splat runs on the device: the four bilinear taps of every patch are summed on its ``(M+1)**2``
footprint, and all footprints go into one ``index_add_`` on a complex numerator (and one on the
real overlap count), then
``numerator / (count + STITCH_NORM_EPS)``. ``index_add_`` is deterministic on CUDA under
``torch.use_deterministic_algorithms(True)``.
"""

from __future__ import annotations

import numpy as np
import torch

from backends.torch import _select_device
from parity.conventions import STITCH_NORM_EPS, centre_crop_slice
from parity.oracle.stitch import canvas_geometry, crop_corners

__all__ = ["stitch_patches", "stitch_patches_loop"]

_TAPS = ((0, 0), (0, 1), (1, 0), (1, 1))


def _prepare(patches: np.ndarray | torch.Tensor, centres_px: np.ndarray, crop_px: int,
             ) -> tuple[torch.Tensor, np.ndarray, np.ndarray, tuple[int, int], tuple[int, int]]:
    """Validate; crops on the device, integer corners and fractions on the host, geometry."""
    tensor = patches if torch.is_tensor(patches) else torch.as_tensor(np.asarray(patches))
    if tensor.ndim != 3 or tensor.shape[1] != tensor.shape[2]:
        raise ValueError(f"patches have shape {tuple(tensor.shape)}; expected (n, N, N)")
    centres = np.asarray(centres_px, dtype=np.float64)
    if centres.shape != (tensor.shape[0], 2):
        raise ValueError(f"centres have shape {centres.shape}; expected ({tensor.shape[0]}, 2)")
    if not np.isfinite(centres).all():
        raise ValueError("centres have non-finite values")
    device = tensor.device if torch.is_tensor(patches) else _select_device()
    sl = centre_crop_slice(int(tensor.shape[-1]), crop_px)
    crops = tensor[:, sl, sl].to(device=device, dtype=torch.complex64)
    origin, shape = canvas_geometry(centres, crop_px)
    local = crop_corners(centres, crop_px) - np.array(origin, dtype=np.float64)
    integer = np.floor(local)
    return crops, integer.astype(np.int64), local - integer, origin, shape


def _tap_weights(frac: np.ndarray) -> list[np.ndarray]:
    """Bilinear weight of each tap per patch ``(n,)`` float64, tap order :data:`_TAPS`."""
    wy = (1.0 - frac[:, 1], frac[:, 1])
    wx = (1.0 - frac[:, 0], frac[:, 0])
    return [wy[dy] * wx[dx] for dy, dx in _TAPS]


def stitch_patches(patches: np.ndarray | torch.Tensor, centres_px: np.ndarray, *,
                   crop_px: int) -> tuple[np.ndarray, tuple[int, int]]:
    """Stitch patches centred at ``centres_px`` into one object, vectorised on the device.

    Parameters
    ----------
    patches : numpy.ndarray or torch.Tensor
        ``(n, N, N)`` complex patches (a tensor stays on its device; an array goes to the
        selected device, :mod:`backends.torch`).
    centres_px : numpy.ndarray
        ``(n, 2)`` patch centres ``(x, y)`` in object pixels.
    crop_px : int
        Side ``M`` of the central crop kept from each patch (keyword-only).

    Returns
    -------
    reconstructed_obj : numpy.ndarray
        ``(H', W')`` complex64; zero where no crop reached.
    origin_px : tuple[int, int]
        Object-pixel ``(x0, y0)`` of ``reconstructed_obj[0, 0]``.

    Raises
    ------
    ValueError
        On misshaped patches or centres, non-finite centres, or a crop that does not fit ``N``.

    Notes
    -----
    ``sum_taps w * crop / (sum_taps w + STITCH_NORM_EPS)`` accumulated over all patches; taps are
    weighted in float64 on the host (per patch) and splatted in float32. No Python loop over
    patches: the four taps are summed on each patch's ``(M+1)**2`` footprint, then one
    ``index_add_`` places every footprint.
    """
    crops, integer, frac, origin, (height, width) = _prepare(patches, centres_px, crop_px)
    device = crops.device
    n, side = crops.shape[0], crop_px + 1
    weights = torch.as_tensor(np.stack(_tap_weights(frac)), dtype=torch.float32, device=device)
    # The four taps of a patch land on one (M+1)^2 footprint: sum them there first (four shifted
    # slices), then ONE index_add_ of n (M+1)^2 values instead of 4 n M^2 (complex numerator and
    # real overlap count side by side: no stacking of Re, Im and count into one tensor).
    footprint = torch.zeros((n, side, side), dtype=torch.complex64, device=device)
    coverage = torch.zeros((n, side, side), dtype=torch.float32, device=device)
    for t, (dy, dx) in enumerate(_TAPS):  # four taps, not patches
        tap = weights[t][:, None, None]
        footprint[:, dy:dy + crop_px, dx:dx + crop_px] += tap * crops
        coverage[:, dy:dy + crop_px, dx:dx + crop_px] += tap
    rows = torch.arange(side, device=device, dtype=torch.int64)
    corner = torch.as_tensor(integer, device=device)
    index = ((corner[:, 1, None, None] + rows[None, :, None]) * width
             + corner[:, 0, None, None] + rows[None, None, :]).reshape(-1)  # (n (M+1)^2,)
    numerator = torch.zeros(height * width, dtype=torch.complex64, device=device)
    numerator.index_add_(0, index, footprint.reshape(-1))
    count = torch.zeros(height * width, dtype=torch.float32, device=device)
    count.index_add_(0, index, coverage.reshape(-1))
    obj = numerator / (count + STITCH_NORM_EPS)
    return obj.reshape(height, width).cpu().numpy(), origin


def stitch_patches_loop(patches: np.ndarray | torch.Tensor, centres_px: np.ndarray, *,
                        crop_px: int) -> tuple[np.ndarray, tuple[int, int]]:
    """:func:`stitch_patches` with a plain per-patch loop (kept for the benchmark; same result).

    Same parameters, returns and errors as :func:`stitch_patches`; each patch adds its four
    weighted crops into canvas slices on the device.
    """
    crops, integer, frac, origin, (height, width) = _prepare(patches, centres_px, crop_px)
    device = crops.device
    numerator = torch.zeros((height, width), dtype=torch.complex64, device=device)
    count = torch.zeros((height, width), dtype=torch.float32, device=device)
    tap_weights = _tap_weights(frac)
    for k in range(crops.shape[0]):
        x, y = int(integer[k, 0]), int(integer[k, 1])
        for (dy, dx), weight in zip(_TAPS, tap_weights, strict=True):
            w = float(np.float32(weight[k]))
            numerator[y + dy : y + dy + crop_px, x + dx : x + dx + crop_px] += w * crops[k]
            count[y + dy : y + dy + crop_px, x + dx : x + dx + crop_px] += w
    return (numerator / (count + STITCH_NORM_EPS)).cpu().numpy(), origin
