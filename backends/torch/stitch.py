"""Stitching of patches into the full object on the device (PtychoPINN ``reassemble_position``).

Twin of ``backends/tensorflow/stitch.py``; float64 reference
:func:`parity.oracle.stitch.stitch_patches`.
The canvas geometry (integer origin, size) is computed on the host from the ``(n, 2)`` centres by
:func:`parity.oracle.stitch.canvas_geometry` / :func:`~parity.oracle.stitch.crop_corners`. On the
device, each crop is moved by its sub-pixel fraction onto an ``(M+1)**2`` footprint (bilinear,
x then y, over shifted views of the zero-padded crops), and one ``scatter_add_``
sums every footprint into the complex numerator. The overlap count depends on the positions only:
it is computed on the host, exactly, as a float64 summed-area table
(:func:`_inverse_overlap`), and the object is ``numerator / (count + STITCH_NORM_EPS)``.
``scatter_add_`` on a 1-D tensor is deterministic on CUDA under
``torch.use_deterministic_algorithms(True)``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F  # noqa: N812 - the usual torch idiom

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


def _axis_weights(frac: np.ndarray) -> np.ndarray:
    """Bilinear weights ``(1 - fx, fx, 1 - fy, fy)`` per patch, ``(4, n)``: float64 rounded once
    to float32, so each is accurate RELATIVE to its size.

    Not ``torch.lerp``: its weight on the far operand is ``1 - w`` computed from a float32 ``w``,
    off by up to 3e-8 absolute; where two crop edges of weight ~1e-4 overlap at the rim of the
    scan, that moved the stitched pixel by 1e-4 relative (found by the property test).
    """
    fx, fy = frac[:, 0], frac[:, 1]
    return np.stack([1.0 - fx, fx, 1.0 - fy, fy]).astype(np.float32)


def _footprints(crops: torch.Tensor, weights: np.ndarray) -> torch.Tensor:
    """Each ``(M, M)`` crop moved by ``+frac`` onto its ``(n, M+1, M+1)`` complex64 footprint.

    Along one axis ``footprint[j] = (1 - f) crop[j] + f crop[j - 1]`` with ``crop[-1] =
    crop[M] = 0``: two shifted views of the zero-padded crop, weighted (x, then y), on the real
    view; ``weights`` from :func:`_axis_weights`.
    """
    padded = torch.view_as_real(F.pad(crops, (1, 1, 1, 1)))  # (n, M+2, M+2, 2)
    w = torch.as_tensor(weights[:, :, None, None, None], device=crops.device)
    along_x = padded[:, :, 1:] * w[0]  # (n, M+2, M+1, 2)
    along_x.addcmul_(padded[:, :, :-1], w[1])
    footprint = along_x[:, 1:] * w[2]  # (n, M+1, M+1, 2)
    return torch.view_as_complex(footprint.addcmul_(along_x[:, :-1], w[3]))


def _inverse_overlap(integer: np.ndarray, weights: np.ndarray, crop_px: int,
                     shape: tuple[int, int]) -> np.ndarray:
    """``1 / (count + STITCH_NORM_EPS)`` on the ``(H', W')`` canvas, float32.

    A patch's overlap weight is the outer product of two 1-D profiles; along y it is ``wy0`` on
    rows ``oy .. oy+M-1`` plus ``wy1`` on rows ``oy+1 .. oy+M`` (same along x), with the float32
    weights of :func:`_axis_weights` the footprints use. So the 2-D weight is four boxes, each
    four signed corners in a difference image whose 2-D cumulative sum (a summed-area table,
    float64) is the count: 16 values per patch instead of ``(M+1)**2``. The running sums cancel,
    so the count is exact to ~1e-14 ABSOLUTE (not relative): that matters only on rim pixels
    whose total weight is near ``STITCH_NORM_EPS`` (a centre 1e-9 px below an integer), and moves
    them by <= ~1e-6 of max|object| (measured 6e-7; the L1 tolerance is 1e-5).
    ``canvas_geometry`` leaves a pixel past the last footprint row and column, so every corner (at
    most ``o + M + 1``) lies inside the canvas.
    """
    height, width = shape
    steps = np.array([0, 1, crop_px, crop_px + 1])  # box edges: +w0, +w1, -w0, -w1
    rows = (integer[:, 1:2] + steps) * width
    cols = integer[:, 0:1] + steps
    wx, wy = weights[0:2].T.astype(np.float64), weights[2:4].T.astype(np.float64)  # (n, 2)
    row_signs = np.concatenate([wy, -wy], axis=1)
    col_signs = np.concatenate([wx, -wx], axis=1)
    delta = np.bincount((rows[:, :, None] + cols[:, None, :]).ravel(),
                        (row_signs[:, :, None] * col_signs[:, None, :]).ravel(),
                        minlength=height * width)
    count = torch.from_numpy(delta).view(height, width).cumsum_(0).cumsum_(1).numpy()  # float64
    return (1.0 / (count + STITCH_NORM_EPS)).astype(np.float32)


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
    ``sum_taps w * crop / (sum_taps w + STITCH_NORM_EPS)`` accumulated over all patches. No Python
    loop over patches: bilinear footprints in float32 on the device (:func:`_footprints`), one
    ``scatter_add_`` of ``n (M+1)**2`` values, the overlap count in float64 on the host
    (:func:`_inverse_overlap`).
    """
    crops, integer, frac, origin, (height, width) = _prepare(patches, centres_px, crop_px)
    weights = _axis_weights(frac)
    device = crops.device
    rows = np.arange(crop_px + 1)
    offsets = (rows[:, None] * width + rows).reshape(1, -1)  # footprint pixel -> canvas offset
    corner = integer[:, 1:2] * width + integer[:, 0:1]  # (n, 1) flat canvas index of [0, 0]
    index = torch.as_tensor(corner, device=device) + torch.as_tensor(offsets, device=device)
    numerator = torch.zeros(height * width, dtype=torch.complex64, device=device)
    numerator.scatter_add_(0, index.view(-1), _footprints(crops, weights).reshape(-1))
    inverse = _inverse_overlap(integer, weights, crop_px, (height, width))
    return numerator.cpu().numpy().reshape(height, width) * inverse, origin


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
