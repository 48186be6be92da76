"""Float64 reference of stitching patches into the full object (PtychoPINN ``reassemble_position``).

Algorithm: keep the central ``M x M`` crop of each patch; place it so that its centre lands on the
patch's position (content moved by ``+offset``, bilinear, zero fill); sum; divide by the summed
all-ones crops plus ``STITCH_NORM_EPS`` (plain overlap averaging).

One deliberate difference from the reference: the reference centres its canvas on the positions'
centre of mass, a non-integer point, so its pixels are off the object grid. Here the canvas origin
is an integer object pixel (:attr:`StitchedObject.origin_px`), so the result sits on the same grid
as the ground truth and the positions; the interpolation and weighting are identical.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from parity.container_checks import check_extent
from parity.conventions import STITCH_NORM_EPS, centre_crop_slice

__all__ = ["StitchedObject", "canvas_geometry", "crop_corners", "stitch_patches"]


@dataclass(frozen=True)
class StitchedObject:
    """A stitched reconstruction on the object pixel grid.

    Attributes
    ----------
    reconstructed_obj : numpy.ndarray
        ``(H', W')`` complex; zero where no patch reached.
    origin_px : tuple[int, int]
        Object-pixel ``(x, y)`` of ``reconstructed_obj[0, 0]``.
    coverage : numpy.ndarray
        ``(H', W')`` float summed overlap weights (0 = not covered).
    """

    reconstructed_obj: np.ndarray
    origin_px: tuple[int, int]
    coverage: np.ndarray

    @property
    def recon_amp(self) -> np.ndarray:
        """Amplitude ``|reconstructed_obj|``."""
        return np.abs(self.reconstructed_obj)

    @property
    def recon_phase(self) -> np.ndarray:
        """Phase ``angle(reconstructed_obj)`` in radians, wrapped to [-pi, pi]."""
        return np.angle(self.reconstructed_obj)


def crop_corners(centres_px: np.ndarray, crop_px: int) -> np.ndarray:
    """Object-pixel ``(x, y)`` of each crop's ``[0, 0]`` pixel: ``centre - M // 2``."""
    return np.asarray(centres_px, dtype=np.float64) - crop_px // 2


def canvas_geometry(centres_px: np.ndarray, crop_px: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """Integer canvas origin ``(x0, y0)`` and shape ``(H', W')`` that hold every crop.

    The origin is one pixel before the lowest crop corner (room for the bilinear spread) and the
    extent one pixel past the highest corner plus ``M``.

    Raises
    ------
    ValueError
        If the centres are not ``(n, 2)``, or a canvas side would exceed
        :data:`parity.conventions.MAX_CANVAS_SIDE_PX` (positions not in object pixels); every
        stitcher and writer takes its canvas from here, so none allocates one that large.
    """
    corners = crop_corners(centres_px, crop_px)
    if corners.ndim != 2 or corners.shape[1] != 2 or corners.shape[0] == 0:
        raise ValueError(f"centres have shape {np.shape(centres_px)}; expected (n, 2), n >= 1")
    x0 = math.floor(corners[:, 0].min()) - 1
    y0 = math.floor(corners[:, 1].min()) - 1
    width = math.ceil(corners[:, 0].max()) + crop_px + 2 - x0
    height = math.ceil(corners[:, 1].max()) + crop_px + 2 - y0
    check_extent(height, width, what=f"the stitching canvas (crop M={crop_px})", error=ValueError)
    return (x0, y0), (height, width)


def stitch_patches(patches: np.ndarray, centres_px: np.ndarray, *, crop_px: int) -> StitchedObject:
    """Stitch ``(n, N, N)`` patches centred at ``centres_px`` ``(n, 2)`` (x, y) into one object.

    Vectorised bilinear splatting with ``numpy.add.at`` (no Python loop over patches).

    Returns
    -------
    StitchedObject
        complex128 object on an integer-origin canvas; see the module docstring.
    """
    arr = np.asarray(patches)
    if arr.ndim != 3 or arr.shape[1] != arr.shape[2]:
        raise ValueError(f"patches have shape {arr.shape}; expected (n, N, N)")
    centres = np.asarray(centres_px, dtype=np.float64)
    if centres.shape != (arr.shape[0], 2):
        raise ValueError(f"centres have shape {centres.shape}; expected ({arr.shape[0]}, 2)")
    sl = centre_crop_slice(arr.shape[-1], crop_px)
    crops = arr[:, sl, sl].astype(np.complex128)
    (x0, y0), (height, width) = canvas_geometry(centres, crop_px)
    local = crop_corners(centres, crop_px) - np.array([x0, y0], dtype=np.float64)
    integer = np.floor(local)
    frac = local - integer
    integer = integer.astype(np.int64)
    rows = np.arange(crop_px)
    numerator = np.zeros(height * width, dtype=np.complex128)
    count = np.zeros(height * width, dtype=np.float64)
    for dy, wy in ((0, 1 - frac[:, 1]), (1, frac[:, 1])):
        for dx, wx in ((0, 1 - frac[:, 0]), (1, frac[:, 0])):
            weight = (wy * wx)[:, None, None]
            yy = integer[:, 1, None, None] + dy + rows[None, :, None]
            xx = integer[:, 0, None, None] + dx + rows[None, None, :]
            flat = (yy * width + xx).ravel()
            np.add.at(numerator, flat, (weight * crops).ravel())
            np.add.at(count, flat, np.broadcast_to(weight, crops.shape).ravel())
    numerator = numerator.reshape(height, width)
    count = count.reshape(height, width)
    return StitchedObject(
        reconstructed_obj=numerator / (count + STITCH_NORM_EPS),
        origin_px=(x0, y0),
        coverage=count,
    )
