"""Detector-frame helpers shared by the real-data loaders and the converter.

Bad-pixel convention: a boolean mask with ``True`` = bad (ptychodus ``bad_pixels``; CXI masks are
converted to it by their reader).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = ["BAD_PIXEL_FILLS", "check_counts", "fill_bad_pixels"]

#: Accepted ``method`` values of :func:`fill_bad_pixels`.
BAD_PIXEL_FILLS: tuple[str, ...] = ("neighbours", "zero")


def fill_bad_pixels(frames: np.ndarray, bad: np.ndarray, *, method: str = "neighbours"
                    ) -> np.ndarray:
    """Replace bad detector pixels in every frame.

    Parameters
    ----------
    frames : numpy.ndarray
        ``(n, H, W)`` counts (any real dtype).
    bad : numpy.ndarray
        ``(H, W)`` bool, ``True`` = bad pixel.
    method : {"neighbours", "zero"}
        ``"neighbours"``: each bad pixel takes the mean of its good pixels in the 3x3
        neighbourhood of the same frame; a bad pixel with no good neighbour (a cluster's
        interior) is filled by repeating the pass, so clusters fill from their rim inwards;
        a pixel no pass reaches (a mask that is all bad) is set to zero. ``"zero"``: set to zero
        (PtychoPINN has no detector mask, so a zero is a measured "no photon").

    Returns
    -------
    numpy.ndarray
        ``(n, H, W)`` float64 copy with the bad pixels replaced.

    Raises
    ------
    ValueError
        On a shape mismatch or an unknown method.

    Notes
    -----
    Neighbour filling keeps the local intensity level, which matters inside the bright
    central disk where a zero would look like a deep, unphysical minimum to the Poisson loss.
    """
    frames = np.asarray(frames, dtype=np.float64)
    bad = np.asarray(bad)
    if frames.ndim != 3:
        raise ValueError(f"frames have shape {frames.shape}; expected (n, H, W)")
    if bad.shape != frames.shape[1:]:
        raise ValueError(f"bad-pixel mask has shape {bad.shape}; expected {frames.shape[1:]}")
    if bad.dtype != np.bool_:
        raise ValueError(f"bad-pixel mask has dtype {bad.dtype}; expected bool (True = bad)")
    if method not in BAD_PIXEL_FILLS:
        raise ValueError(f"unknown bad-pixel fill {method!r}; expected one of {BAD_PIXEL_FILLS}")
    filled = frames.copy()
    if method == "zero" or not bad.any():
        filled[:, bad] = 0.0
        return filled
    kernel = np.ones((1, 3, 3))
    remaining = bad.copy()
    filled[:, remaining] = 0.0
    while remaining.any():
        good = (~remaining).astype(np.float64)
        count = ndimage.convolve(good, kernel[0], mode="constant")
        sums = ndimage.convolve(filled * good, kernel, mode="constant")
        reachable = remaining & (count > 0)
        if not reachable.any():
            break  # nothing left to fill from: these stay zero
        filled[:, reachable] = sums[:, reachable] / count[reachable]
        remaining &= ~reachable
    return filled


def check_counts(frames: np.ndarray, *, where: str) -> np.ndarray:
    """Refuse detector frames that are not counts, before anything is estimated from them.

    Parameters
    ----------
    frames : numpy.ndarray
        ``(n, H, W)`` counts, integer or float.
    where : str
        What the frames are (a file name): every message starts with it.

    Returns
    -------
    numpy.ndarray
        ``frames``, unchanged.

    Raises
    ------
    ValueError
        If ``frames`` is not 3-D, not real, holds a non-finite value or a negative one (the
        message names the first such index ``(frame, row, col)``).
    """
    if frames.ndim != 3:
        raise ValueError(f"{where}: patterns have shape {frames.shape}; expected (n, H, W)")
    if frames.dtype.kind not in "iuf":
        raise ValueError(f"{where}: patterns have dtype {frames.dtype}; expected real counts")
    if frames.dtype.kind == "f" and not np.isfinite(frames).all():
        bad = ~np.isfinite(frames)
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"{where}: patterns have {int(bad.sum())} non-finite values (first at "
                         f"index {first})")
    if (frames < 0).any():
        first = tuple(int(i) for i in np.argwhere(frames < 0)[0])
        raise ValueError(f"{where}: patterns are counts and must be >= 0; negative at index "
                         f"{first}")
    return frames
