"""The conventions every part of ptycho-parity reads from: one module, one place each.

Backends, the float64 oracle and the fixtures import these names; nothing else restates them.

Axis order of positions
    Scan positions and offsets are stored with the last axis ``(x, y)`` = (column, row), in object
    pixels, as PtychoPINN's ``xcoords``/``ycoords`` and its offsets tensor ``[x, y]``. Images are
    indexed ``[row, col]`` = ``[y, x]``. :data:`POSITION_AXES` names the order.

Patch centre
    An ``N x N`` patch "at position p" holds object pixel ``(y = p_y + i - N//2, x = p_x + j - N//2)``
    at patch index ``[i, j]``: the centre pixel is index ``N // 2`` (:func:`patch_centre_index`).

Translation (sign of offsets)
    ``translate(img, t)`` returns ``out[y, x] = img(y - t_y, x - t_x)`` sampled bilinearly, each of
    the four taps that falls outside the image contributing zero: content moves by ``+t``.

Relative offsets inside a group
    ``relative_c = LOCAL_OFFSET_SIGN * (p_c - mean_c p_c)`` with ``LOCAL_OFFSET_SIGN = -1``, as in
    PtychoPINN (``ptycho/raw_data.py``). The in-model merge translates patch ``c`` by
    ``-relative_c`` (its content moves to ``+(p_c - mean)``); extraction translates the canvas by
    ``+relative_c`` and crops the centre. These two are exact inverses.

FFT normalisation and shift
    Far-field amplitude of an exit wave ``psi`` (N x N): ``A = sqrt(fftshift(|F psi|**2 / N**2))``
    with ``F`` the unnormalised forward DFT; this equals the orthonormal FFT, so Parseval holds as
    ``sum A**2 == sum |psi|**2``. The shift acts on the last two (spatial) axes only, putting zero
    frequency at index ``N // 2`` (:data:`FFT_NORM`, :data:`FFT_SHIFT_AXES`).

Complex layout
    Complex arrays cross process and framework boundaries as complex64 NumPy arrays (never as a
    real/imag channel pair). Inside a framework, complex values are assembled from real heads.

Group array layout (the exchange layout)
    Arrays of a group of ``C = gridsize**2`` patches cross the adapter contract as
    ``(B, C, N, N)``; offsets as ``(B, C, 2)`` with the last axis ``(x, y)``. Channel ``c`` maps to
    grid cell ``(row, col) = (c // g, c % g)``. Backends convert to their native layout inside.

Neutral weight layout
    Conv kernels ``(kh, kw, in, out)`` (TensorFlow's HWIO), biases ``(out,)``, named as in
    :mod:`parity.architecture`. PyTorch's OIHW kernels are converted with
    :func:`kernel_to_oihw` / :func:`kernel_from_oihw`, the one documented place.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "CENTRE_MASK_RADIUS_FRACTION",
    "FFT_NORM",
    "FFT_SHIFT_AXES",
    "LOCAL_OFFSET_SIGN",
    "MAX_CANVAS_SIDE_PX",
    "MERGE_NORM_EPS",
    "POISSON_LOG_FLOOR",
    "POSITION_AXES",
    "STITCH_NORM_EPS",
    "SUPPORTED_N",
    "centre_crop_slice",
    "centre_mask",
    "kernel_from_oihw",
    "kernel_to_oihw",
    "patch_centre_index",
    "probe_mask",
    "relative_offsets",
    "support_margin_px",
]

#: Order of the last axis of positions and offsets: column (x) first, then row (y).
POSITION_AXES: tuple[str, str] = ("x", "y")

#: Relative offsets are the negated deviation from the group mean (PtychoPINN ``local_offset_sign``).
LOCAL_OFFSET_SIGN: float = -1.0

#: Far-field FFT normalisation: "ortho" (|F|^2 / N^2 with the unnormalised forward DFT).
FFT_NORM: str = "ortho"

#: fftshift acts on the two spatial axes, the last two of every array.
FFT_SHIFT_AXES: tuple[int, int] = (-2, -1)

#: Added to the in-model merge denominator (PtychoPINN ``mk_norm``: count + 0.001).
MERGE_NORM_EPS: float = 1e-3

#: Added to the stitching overlap count (PtychoPINN ``reassemble_position``: count + 1e-9).
STITCH_NORM_EPS: float = 1e-9

#: Floor added to the predicted intensity before its log in the Poisson NLL (lambda > 0).
POISSON_LOG_FLOOR: float = 1e-12

#: The hard probe mask is a disk of radius N * this fraction on centred indices k - N/2 + 0.5.
CENTRE_MASK_RADIUS_FRACTION: float = 0.25

#: Largest side, in object pixels, of a scan's extent (bounding box plus N) and of a stitching
#: canvas. Real scans span a few thousand pixels; positions in nm or other physical units span tens
#: of thousands and would ask for a canvas of tens of GB.
MAX_CANVAS_SIDE_PX: int = 16384

#: Patch sizes the network ladders are defined for (encoder depth log2(N / 8)).
SUPPORTED_N: tuple[int, ...] = (32, 64, 128, 256)


def patch_centre_index(N: int) -> int:
    """Index of the pixel that sits on the scan position in an ``N x N`` patch (``N // 2``)."""
    return N // 2


def centre_crop_slice(size: int, crop: int) -> slice:
    """Slice of length ``crop`` centred so that index ``size // 2`` maps to ``crop // 2``.

    Raises
    ------
    ValueError
        If ``crop`` exceeds ``size`` or their parities differ (the centre would move by half a pixel).
    """
    if crop > size:
        raise ValueError(f"crop {crop} is larger than the array side {size}")
    if (size - crop) % 2:
        raise ValueError(f"crop {crop} and side {size} differ by an odd number; centre is ambiguous")
    start = size // 2 - crop // 2
    return slice(start, start + crop)


def probe_mask(N: int) -> np.ndarray:
    """Hard disk used to normalise the probe: ``hypot(k - N/2 + 0.5) < N / 4``.

    Returns
    -------
    numpy.ndarray
        ``(N, N)`` float64, 1 inside the disk of diameter ``N / 2``, 0 outside.
    """
    k = np.arange(N, dtype=np.float64) - N / 2 + 0.5
    radius = np.hypot(k[:, None], k[None, :])
    return (radius < N * CENTRE_MASK_RADIUS_FRACTION).astype(np.float64)


def support_margin_px(N: int) -> int:
    """Zero border of a decoded patch: the object lives in the central ``N/2`` square, so the
    decoder pads ``N // 4`` pixels on every side (PtychoPINN ``pad_object``)."""
    return N // 4


def centre_mask(N: int) -> np.ndarray:
    """Ones on the central ``N/2 x N/2`` square of an ``N x N`` patch, zeros elsewhere.

    This is the object support the decoder predicts (``pad_object``: N/4 zero border) and the
    weight of the in-model merge denominator.
    """
    mask = np.zeros((N, N), dtype=np.float64)
    q = support_margin_px(N)
    mask[q : N - q, q : N - q] = 1.0
    return mask


def relative_offsets(group_positions_px: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split group positions into group centres and signed relative offsets.

    Parameters
    ----------
    group_positions_px : numpy.ndarray
        ``(B, C, 2)`` positions of each group member, last axis ``(x, y)``, object pixels.

    Returns
    -------
    centres_px : numpy.ndarray
        ``(B, 2)`` float64 mean position of each group.
    relative_px : numpy.ndarray
        ``(B, C, 2)`` float64 ``LOCAL_OFFSET_SIGN * (p_c - centre)``.
    """
    positions = np.asarray(group_positions_px, dtype=np.float64)
    if positions.ndim != 3 or positions.shape[-1] != 2:
        raise ValueError(f"group positions have shape {positions.shape}; expected (B, C, 2)")
    centres = positions.mean(axis=1)
    return centres, LOCAL_OFFSET_SIGN * (positions - centres[:, None, :])


def kernel_to_oihw(kernel: np.ndarray) -> np.ndarray:
    """Neutral conv kernel ``(kh, kw, in, out)`` to PyTorch's ``(out, in, kh, kw)``."""
    if kernel.ndim != 4:
        raise ValueError(f"conv kernel has shape {kernel.shape}; expected (kh, kw, in, out)")
    return np.ascontiguousarray(np.transpose(kernel, (3, 2, 0, 1)))


def kernel_from_oihw(weight: np.ndarray) -> np.ndarray:
    """PyTorch conv weight ``(out, in, kh, kw)`` to the neutral ``(kh, kw, in, out)``."""
    if weight.ndim != 4:
        raise ValueError(f"conv weight has shape {weight.shape}; expected (out, in, kh, kw)")
    return np.ascontiguousarray(np.transpose(weight, (2, 3, 1, 0)))
