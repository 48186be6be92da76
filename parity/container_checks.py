"""Sanity checks of a container's data conventions, shared by every place that needs one.

:class:`parity.container.Container` checks the scan's units and extent, the NPZ reader
(:mod:`parity.io.container_npz`) checks that the patterns are centred amplitudes, and
:func:`parity.oracle.stitch.canvas_geometry` checks the canvas size. Each check takes the exception
class to raise (the container raises its ``ContainerError``, the stitcher a plain ``ValueError``),
so this module imports nothing of the container and anyone can use it.

:func:`estimate_nphotons` is the one photon-count estimate for files that record none (the NPZ and
ptychodus readers).
"""

from __future__ import annotations

import numpy as np

from parity.conventions import MAX_CANVAS_SIDE_PX, patch_centre_index

__all__ = [
    "NPHOTONS_ESTIMATE_NOTE",
    "check_centred",
    "check_counts_match_nphotons",
    "check_extent",
    "check_scan_in_pixels",
    "estimate_nphotons",
    "mean_pattern_peak",
    "plain_numbers",
    "unit_hint",
]

#: How a photon count estimated by :func:`estimate_nphotons` is described in provenance notes.
NPHOTONS_ESTIMATE_NOTE = "estimated: mean sum(amplitude**2) per pattern"

#: Largest ratio of mean ``sum(d**2)`` per pattern to the recorded ``nphotons`` before the data
#: are taken for counts (their squares sum to about ``nphotons**2 / N**2``, far above it).
_COUNTS_RATIO = 100.0
#: A mean pattern is taken for an ifftshifted one only when its corner peak is this many times
#: its median: flat or noisy patterns (and hot pixels of a real detector, averaged over the
#: scan) have no such zero-order peak.
_CORNER_PEAK_CONTRAST = 10.0
#: Positions smaller than this everywhere (|p|) look like metres or micrometres.
_TINY_POSITION = 1e-3
#: A scan spanning less than this on both axes cannot be in object pixels.
_MIN_SCAN_SPAN_PX = 1.0


def plain_numbers(values: np.ndarray) -> str:
    """``values`` as ``[inf, 8.04134]``: plain numbers, without NumPy's padded repr."""
    return "[" + ", ".join(f"{float(v):g}" for v in np.ravel(values)) + "]"


def estimate_nphotons(diffraction: np.ndarray) -> float:
    """Photon count per pattern estimated from amplitudes: ``mean_b sum_xy d**2`` (float64).

    Right when the amplitudes are ``sqrt(counts)``; describe the result with
    :data:`NPHOTONS_ESTIMATE_NOTE`.

    Raises
    ------
    ValueError
        If the patterns are not real numbers or the estimate is not finite and > 0 (NaN or
        all-zero patterns).
    """
    data = np.asarray(diffraction)
    if data.dtype.kind not in "buif":  # complex, strings, objects: not amplitudes
        raise ValueError(f"cannot estimate nphotons from diffraction of dtype {data.dtype}")
    data = data.astype(np.float64)
    value = float(np.mean(np.sum(data**2, axis=(-2, -1)))) if data.ndim >= 2 else float("nan")
    if not (np.isfinite(value) and value > 0):
        raise ValueError(f"cannot estimate nphotons from the diffraction: mean sum(d**2) per "
                         f"pattern is {value:g}")
    return value


def mean_pattern_peak(mean_pattern: np.ndarray) -> tuple[int, int]:
    """``(row, col)`` of the brightest pixel of a (mean) pattern, as plain ints.

    Zero frequency sits at ``(N // 2, N // 2)`` in a centred pattern
    (:func:`parity.conventions.patch_centre_index`).
    """
    flat = int(np.argmax(mean_pattern))
    row, col = np.unravel_index(flat, np.shape(mean_pattern))
    return int(row), int(col)


def check_extent(height_px: int, width_px: int, *, what: str, error: type[Exception]) -> None:
    """Refuse an extent past :data:`parity.conventions.MAX_CANVAS_SIDE_PX` on either side.

    ``what`` says what spans it and starts the message, e.g. ``"positions_px: the scan (bounding
    box plus N=32)"``.
    """
    if max(height_px, width_px) > MAX_CANVAS_SIDE_PX:
        raise error(f"{what} spans {width_px} x {height_px} px (limit {MAX_CANVAS_SIDE_PX} px a "
                    "side): positions must be in object pixels, not nm or another physical unit")


def unit_hint(positions_px: np.ndarray) -> str:
    """A hint about units when every position is tiny (``|p| <`` 1e-3), else ``""``."""
    largest = float(np.max(np.abs(positions_px))) if np.size(positions_px) else 0.0
    if largest >= _TINY_POSITION:
        return ""
    return (f"; every |position| is below {_TINY_POSITION:g} (largest {largest:.3g}): they look "
            "like metres or micrometres, but positions must be in object pixels")


def check_scan_in_pixels(positions_px: np.ndarray, *, error: type[Exception]) -> None:
    """Refuse a scan of distinct positions spanning less than one pixel on both axes.

    A single position, or identical ones (the duplicate check names those), passes.
    """
    span = np.ptp(np.asarray(positions_px, dtype=np.float64), axis=0)
    if span.max() == 0 or span.max() >= _MIN_SCAN_SPAN_PX:
        return
    raise error(f"positions_px: the scan spans {span[0]:.3g} x {span[1]:.3g} px (x, y), less "
                "than one pixel on both axes: positions must be in object pixels, not metres or "
                "micrometres (x_px = x_m / pixel_size_m)")


def check_counts_match_nphotons(diffraction: np.ndarray, nphotons: float, *,
                                error: type[Exception]) -> None:
    """Refuse patterns whose mean ``sum(d**2)`` is over 100x the recorded ``nphotons``.

    The container holds amplitudes ``sqrt(counts)``, so ``sum(d**2)`` per pattern is about the
    photon count; patterns of counts square it.
    """
    energy = estimate_nphotons(diffraction)
    if energy > _COUNTS_RATIO * nphotons:
        raise error(f"diffraction: mean sum(d**2) per pattern is {energy:.4g}, {energy / nphotons:.3g}"
                    f" times the recorded nphotons={nphotons:.4g} (more than {_COUNTS_RATIO:g}x): "
                    "the patterns look like counts, not amplitudes; store np.sqrt(counts)")


def check_centred(diffraction: np.ndarray, *, error: type[Exception]) -> None:
    """Refuse patterns whose mean has a strong peak at a corner (zero frequency not centred).

    A peak within one pixel of a corner and :data:`_CORNER_PEAK_CONTRAST` times the mean
    pattern's median is the zero order of ifftshifted patterns.
    """
    mean = np.mean(np.asarray(diffraction, dtype=np.float64), axis=0)
    N = mean.shape[-1]
    row, col = mean_pattern_peak(mean)
    near_edge = {0, 1, N - 2, N - 1}
    if row not in near_edge or col not in near_edge:
        return
    if mean[row, col] <= _CORNER_PEAK_CONTRAST * float(np.median(mean)):
        return
    centre = patch_centre_index(N)
    raise error(f"diffraction: patterns look ifftshifted (the mean pattern peaks at the corner "
                f"({row}, {col}), not at the centre ({centre}, {centre})); the container stores "
                "them centred: apply np.fft.fftshift(d, axes=(-2, -1))")
