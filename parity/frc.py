"""Fourier ring correlation (FRC) of two images and the van Heel & Schatz information thresholds.

NumPy and SciPy only. Takes the reference first (``reference, test``), works in float64 (or
complex128) whatever the input dtype, and rejects non-finite, mismatched or too small input
(:mod:`parity.metric_inputs`). Frequencies are in cycles per pixel (Nyquist 0.5); resolutions are
full periods in pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from parity.metric_inputs import validate_pair

__all__ = ["FRC_THRESHOLDS", "TUKEY_TAPER", "FRCResult", "bit_threshold", "frc"]

#: Fraction of each axis tapered by the Tukey window before the FRC (ptychodus uses 0.2).
TUKEY_TAPER = 0.2

#: The FRC thresholds for which crossings are reported (names used in :meth:`FRCResult.to_dict`).
FRC_THRESHOLDS: tuple[str, ...] = ("half_bit", "one_bit", "fixed_half", "fixed_one_seventh")

_FIXED_THRESHOLDS = {"fixed_half": 0.5, "fixed_one_seventh": 1.0 / 7.0}


def bit_threshold(n_pixels: np.ndarray | float, *, bits: float) -> np.ndarray:
    """The van Heel & Schatz b-bit information threshold for an FRC ring of ``n`` pixels.

    Parameters
    ----------
    n_pixels : array_like
        Pixels in each ring (> 0).
    bits : float
        0.5 for the half-bit curve, 1 for the 1-bit curve (> 0).

    Returns
    -------
    ndarray
        float64, same shape as ``n_pixels``.

    Raises
    ------
    ValueError
        ``bits <= 0`` or any ``n <= 0``.

    Notes
    -----
    With ``sigma = (2^b - 1) / 2``:
    ``T_b(n) = (sigma + (2 sqrt(sigma) + 1) / sqrt(n)) / (sigma + 1 + 2 sqrt(sigma) / sqrt(n))``.
    Half-bit: ``(0.2071 + 1.9102/sqrt n) / (1.2071 + 0.9102/sqrt n)``; 1-bit:
    ``(0.5 + 2.4142/sqrt n) / (1.5 + 1.4142/sqrt n)``. ``T(1) = 1`` for every ``b``; as
    ``n -> inf``, ``T -> sigma / (sigma + 1)`` (0.1716 half-bit, 1/3 one-bit).

    References
    ----------
    .. [1] M. van Heel, M. Schatz, "Fourier shell correlation threshold criteria", J. Struct.
       Biol. 151, 250-262 (2005), doi:10.1016/j.jsb.2005.05.009.

    Examples
    --------
    >>> float(bit_threshold(1.0, bits=0.5))
    1.0
    """
    if not bits > 0:
        raise ValueError(f"bits={bits}; expected > 0 (0.5 half-bit, 1 one-bit)")
    n = np.asarray(n_pixels, dtype=np.float64)
    if np.any(n <= 0):
        raise ValueError(f"n_pixels must be > 0; got minimum {float(n.min())}")
    sigma = (2.0**bits - 1.0) / 2.0
    root_sigma, root_n = math.sqrt(sigma), np.sqrt(n)
    return (sigma + (2.0 * root_sigma + 1.0) / root_n) / (sigma + 1.0 + 2.0 * root_sigma / root_n)


@dataclass(frozen=True)
class FRCResult:
    """A Fourier ring correlation curve, its thresholds and where it crosses them.

    Attributes
    ----------
    frequency_cycles_per_px : ndarray
        ``(R,)`` float64 ring frequency ``k / min(H, W)``, ``k = 1 .. min(H, W) // 2`` (Nyquist
        0.5). The DC ring is left out: after mean subtraction it holds no signal.
    curve : ndarray
        ``(R,)`` float64 signed FRC; NaN in a ring where either image has no power.
    n_pixels : ndarray
        ``(R,)`` int64 Fourier pixels per ring.
    half_bit, one_bit : ndarray
        ``(R,)`` float64 threshold curves (:func:`bit_threshold` with b = 0.5 and 1).
    crossing_half_bit_cycles_per_px, crossing_one_bit_cycles_per_px,
    crossing_fixed_half_cycles_per_px, crossing_fixed_one_seventh_cycles_per_px : float or None
        Frequency where the curve first drops below the half-bit, 1-bit, 0.5 and 1/7 thresholds
        (linear interpolation between the rings on either side). ``None``: it never drops below
        up to Nyquist (resolution at or finer than 2 px, not measurable here). ``0.0``: it is
        already below at the first ring (nothing resolved).
    """

    frequency_cycles_per_px: np.ndarray
    curve: np.ndarray
    n_pixels: np.ndarray
    half_bit: np.ndarray
    one_bit: np.ndarray
    crossing_half_bit_cycles_per_px: float | None
    crossing_one_bit_cycles_per_px: float | None
    crossing_fixed_half_cycles_per_px: float | None
    crossing_fixed_one_seventh_cycles_per_px: float | None

    def __post_init__(self) -> None:
        length = np.shape(self.frequency_cycles_per_px)
        for name in ("frequency_cycles_per_px", "curve", "n_pixels", "half_bit", "one_bit"):
            array = np.array(getattr(self, name), copy=True)
            if array.shape != length or array.ndim != 1:
                raise ValueError(f"FRCResult.{name} has shape {array.shape}; expected {length}")
            array.flags.writeable = False
            object.__setattr__(self, name, array)

    def crossing_cycles_per_px(self, threshold: str) -> float | None:
        """Crossing frequency for one of :data:`FRC_THRESHOLDS` (see the attributes)."""
        if threshold not in FRC_THRESHOLDS:
            raise ValueError(f"unknown FRC threshold {threshold!r}; expected one of "
                             f"{FRC_THRESHOLDS}")
        return getattr(self, f"crossing_{threshold}_cycles_per_px")

    def resolution_px(self, threshold: str) -> float | None:
        """Full-period resolution ``1 / f_cross`` in pixels for one of :data:`FRC_THRESHOLDS`.

        ``None`` when the curve never drops below the threshold (resolution <= 2 px, the
        Nyquist period, and not measurable); ``inf`` when it is below from the first ring.
        """
        crossing = self.crossing_cycles_per_px(threshold)
        if crossing is None:
            return None
        return math.inf if crossing == 0.0 else 1.0 / crossing

    @property
    def resolution_half_bit_px(self) -> float | None:
        """:meth:`resolution_px` at the half-bit threshold (the X-ray ptychography norm)."""
        return self.resolution_px("half_bit")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form: lists of floats (NaN as None) and, per threshold, ``crossing_<t>_
        cycles_per_px``, ``resolution_<t>_px`` and ``status_<t>`` (``crossed``,
        ``above_to_nyquist`` or ``below_at_first_ring``; the resolution is None in both of the
        last two)."""
        out: dict[str, Any] = {
            "frequency": [float(v) for v in self.frequency_cycles_per_px],
            "curve": [float(v) if math.isfinite(v) else None for v in self.curve],
            "n": [int(v) for v in self.n_pixels],
            "half_bit": [float(v) for v in self.half_bit],
            "one_bit": [float(v) for v in self.one_bit],
        }
        for name in FRC_THRESHOLDS:
            crossing = self.crossing_cycles_per_px(name)
            resolution = self.resolution_px(name)
            out[f"crossing_{name}_cycles_per_px"] = crossing
            out[f"resolution_{name}_px"] = (resolution if resolution is not None
                                            and math.isfinite(resolution) else None)
            out[f"status_{name}"] = ("above_to_nyquist" if crossing is None else
                                     "below_at_first_ring" if crossing == 0.0 else "crossed")
        return out


def _first_crossing(frequency: np.ndarray, curve: np.ndarray,
                    threshold: np.ndarray) -> float | None:
    """Frequency where ``curve`` first goes below ``threshold`` (rings with NaN skipped)."""
    margin = curve - threshold
    finite = np.isfinite(margin)
    freq, margin = frequency[finite], margin[finite]
    below = np.flatnonzero(margin < 0)
    if below.size == 0:
        return None
    i = int(below[0])
    if i == 0:
        return 0.0
    f0, f1, m0, m1 = freq[i - 1], freq[i], margin[i - 1], margin[i]  # m0 >= 0 > m1
    return float(f0 + (f1 - f0) * m0 / (m0 - m1))


def frc(reference: np.ndarray, test: np.ndarray) -> FRCResult:
    """Fourier ring correlation of two images, with half-bit, 1-bit, 0.5 and 1/7 crossings.

    Parameters
    ----------
    reference, test : ndarray
        ``(H, W)``, both real or both complex (a complex object is correlated as a complex
        field), ``min(H, W) >= 8``.

    Returns
    -------
    FRCResult
        Rings 1 .. ``min(H, W) // 2`` (frequency ``k / min(H, W)`` cycles/px, up to Nyquist).

    Raises
    ------
    TypeError, ValueError
        As :func:`parity.metric_inputs.validate_pair` (non-numeric, NaN/inf, shapes or kinds that
        differ); also an image that is constant (no signal to correlate) or too small.

    Notes
    -----
    Each image has its Tukey-window-weighted mean subtracted and is multiplied by a separable
    Tukey window (taper :data:`TUKEY_TAPER`) to suppress the edge cross. Ring ``k`` holds the
    Fourier pixels with ``round(|f| min(H, W)) == k`` and ``|f| <= 0.5`` (inside the inscribed
    Nyquist circle). ``FRC(k) = Re sum F_A conj(F_B) / sqrt(sum |F_A|^2 sum |F_B|^2)``: the
    signed real part, because the modulus is biased upward by about ``0.886 / sqrt(n)``.
    An image with itself gives 1 in every ring.

    References
    ----------
    .. [1] M. van Heel, M. Schatz, J. Struct. Biol. 151, 250 (2005),
       doi:10.1016/j.jsb.2005.05.009 (thresholds).
    .. [2] J. Vila-Comamala et al., "Characterization of high-resolution diffractive X-ray
       optics by ptychographic coherent diffractive imaging", Opt. Express 19, 21333 (2011),
       doi:10.1364/OE.19.021333 (half-bit criterion in X-ray ptychography).
    """
    from scipy.signal.windows import tukey

    ref, tst = validate_pair(reference, test, what="frc", allow_complex=True, ndim=2)
    height, width = ref.shape
    side = min(height, width)
    if side < 8:
        raise ValueError(f"frc: images have shape {ref.shape}; expected both sides >= 8 "
                         "(at least 4 rings)")
    window = np.outer(tukey(height, alpha=TUKEY_TAPER), tukey(width, alpha=TUKEY_TAPER))
    spectra = []
    for label, image in (("reference", ref), ("test", tst)):
        centred = (image - np.sum(window * image) / np.sum(window)) * window
        if not np.any(centred):
            raise ValueError(f"frc: {label} is constant after windowing; the FRC is undefined")
        spectra.append(np.fft.fft2(centred))
    fa, fb = spectra
    radius = np.hypot(np.fft.fftfreq(height)[:, None], np.fft.fftfreq(width)[None, :])
    ring = np.rint(radius * side).astype(np.int64)
    n_rings = side // 2
    # 1e-12: fftfreq's Nyquist sample is exactly 0.5; the slack only absorbs hypot rounding.
    inside = (radius <= 0.5 + 1e-12) & (ring >= 1) & (ring <= n_rings)
    index = ring[inside]

    def ring_sum(values: np.ndarray) -> np.ndarray:
        return np.bincount(index, weights=values[inside], minlength=n_rings + 1)[1:]

    cross = ring_sum(np.real(fa * np.conj(fb)))
    power_a = ring_sum(np.abs(fa) ** 2)
    power_b = ring_sum(np.abs(fb) ** 2)
    n_pixels = np.bincount(index, minlength=n_rings + 1)[1:].astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        curve = np.where(power_a * power_b > 0, cross / np.sqrt(power_a * power_b), np.nan)
    frequency = np.arange(1, n_rings + 1, dtype=np.float64) / side
    half_bit = bit_threshold(n_pixels, bits=0.5)
    one_bit = bit_threshold(n_pixels, bits=1.0)
    fixed = {name: np.full(n_rings, value) for name, value in _FIXED_THRESHOLDS.items()}
    return FRCResult(
        frequency_cycles_per_px=frequency, curve=curve, n_pixels=n_pixels,
        half_bit=half_bit, one_bit=one_bit,
        crossing_half_bit_cycles_per_px=_first_crossing(frequency, curve, half_bit),
        crossing_one_bit_cycles_per_px=_first_crossing(frequency, curve, one_bit),
        crossing_fixed_half_cycles_per_px=_first_crossing(frequency, curve,
                                                          fixed["fixed_half"]),
        crossing_fixed_one_seventh_cycles_per_px=_first_crossing(
            frequency, curve, fixed["fixed_one_seventh"]),
    )
