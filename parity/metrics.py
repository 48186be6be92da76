"""Image quality metrics for reconstructions: MAE, RMSE, PSNR, SSIM and Fourier ring correlation.

NumPy, SciPy and scikit-image only. Every metric takes the reference first (``reference, test``),
accumulates in float64 whatever the input dtype, and rejects non-finite input, mismatched shapes
and complex input where a real image is meant. A metric that needs a data range gets it as an
argument: nothing is guessed from the dtype (``skimage.metrics.peak_signal_noise_ratio`` guesses
255 or 1 when ``data_range`` is missing; PtychoPINN's TF evaluator uses OpenCV's 255).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Real
from typing import Any

import numpy as np

__all__ = [
    "FRC_THRESHOLDS",
    "SSIM_WINDOW_PX",
    "TUKEY_TAPER",
    "FRCResult",
    "bit_threshold",
    "frc",
    "mae",
    "psnr",
    "rmse",
    "ssim",
]

#: Side of SSIM's uniform window (Wang et al. 2004 as implemented by scikit-image's default).
SSIM_WINDOW_PX = 7

#: Fraction of each axis tapered by the Tukey window before the FRC (ptychodus uses 0.2).
TUKEY_TAPER = 0.2

#: The FRC thresholds for which crossings are reported (names used in :meth:`FRCResult.to_dict`).
FRC_THRESHOLDS: tuple[str, ...] = ("half_bit", "one_bit", "fixed_half", "fixed_one_seventh")

_FIXED_THRESHOLDS = {"fixed_half": 0.5, "fixed_one_seventh": 1.0 / 7.0}


def _validate_pair(reference: Any, test: Any, *, what: str, allow_complex: bool,
                   ndim: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Both arrays as float64 (or complex128), after checking kind, rank, shape and finiteness."""
    arrays = {"reference": np.asarray(reference), "test": np.asarray(test)}
    for label, array in arrays.items():
        if array.dtype.kind not in "iufc":
            raise TypeError(f"{what}: {label} has dtype {array.dtype}; expected a real or "
                            "complex numeric array")
        if array.dtype.kind == "c" and not allow_complex:
            # Never drop an imaginary part quietly: the caller chooses amplitude or phase.
            raise TypeError(f"{what}: {label} is complex ({array.dtype}); this metric takes a "
                            "real image: pass np.abs(...) or np.angle(...) explicitly")
        if ndim is not None and array.ndim != ndim:
            raise ValueError(f"{what}: {label} has shape {array.shape}; expected a {ndim}-D "
                             "array")
        if array.size == 0:
            raise ValueError(f"{what}: {label} is empty (shape {array.shape})")
        finite = np.isfinite(array)
        if not finite.all():
            first = tuple(int(i) for i in np.argwhere(~finite)[0])
            raise ValueError(f"{what}: {label} has {int((~finite).sum())} non-finite value(s), "
                             f"the first at index {first}; the metric is undefined")
    ref, tst = arrays["reference"], arrays["test"]
    if ref.shape != tst.shape:
        raise ValueError(f"{what}: reference has shape {ref.shape} but test has shape "
                         f"{tst.shape}; expected equal shapes")
    if (ref.dtype.kind == "c") != (tst.dtype.kind == "c"):
        raise TypeError(f"{what}: reference is {ref.dtype} but test is {tst.dtype}; expected "
                        "both real or both complex")
    dtype = np.complex128 if ref.dtype.kind == "c" else np.float64
    return ref.astype(dtype), tst.astype(dtype)


def _validate_data_range(data_range: Any, *, what: str) -> float:
    if data_range is None or isinstance(data_range, bool) or not isinstance(
            data_range, Real | np.floating | np.integer):
        raise TypeError(f"{what}: data_range={data_range!r}; expected a positive real number "
                        "(it is never guessed from the dtype)")
    value = float(data_range)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{what}: data_range={value}; expected a finite number > 0")
    return value


def mae(reference: np.ndarray, test: np.ndarray) -> float:
    """Mean absolute error ``mean|test - reference|``.

    Parameters
    ----------
    reference, test : ndarray
        Same shape, any rank; both real or both complex (complex: modulus of the difference).

    Returns
    -------
    float
        In the units of the inputs.

    Raises
    ------
    TypeError
        Non-numeric input, or one real and one complex.
    ValueError
        Shapes differ, an array is empty or holds NaN/inf.

    Examples
    --------
    >>> mae(np.array([0.0, 1.0, 2.0]), np.array([0.0, 2.0, 0.0]))
    1.0
    """
    ref, tst = _validate_pair(reference, test, what="mae", allow_complex=True)
    return float(np.mean(np.abs(tst - ref)))


def rmse(reference: np.ndarray, test: np.ndarray) -> float:
    """Root-mean-square error ``sqrt(mean|test - reference|^2)``.

    Parameters, returns and errors as :func:`mae`.

    Examples
    --------
    >>> rmse(np.array([0.0, 0.0]), np.array([3.0, 4.0]))  # sqrt((9 + 16) / 2)
    3.5355339059327378
    """
    ref, tst = _validate_pair(reference, test, what="rmse", allow_complex=True)
    return float(np.sqrt(np.mean(np.abs(tst - ref) ** 2)))


def psnr(reference: np.ndarray, test: np.ndarray, *, data_range: float) -> float:
    """Peak signal-to-noise ratio ``10 log10(L^2 / MSE)`` in dB.

    Parameters
    ----------
    reference, test : ndarray
        Real, same shape, any rank.
    data_range : float
        ``L``, the value range of the reference (e.g. ``max - min`` of the truth; 1 for phase
        mapped to ``(phi + pi) / (2 pi)``). Required: guessing it from the dtype is how a float
        image gets scored against a 255 peak.

    Returns
    -------
    float
        dB; ``inf`` when the images are identical.

    Raises
    ------
    TypeError
        Complex input, or ``data_range`` missing or not a number.
    ValueError
        As :func:`mae`, or ``data_range`` not finite and positive.

    Examples
    --------
    >>> psnr(np.zeros(4), np.full(4, 0.1), data_range=1.0)  # 10 log10(1 / 0.01)
    20.0
    """
    L = _validate_data_range(data_range, what="psnr")
    ref, tst = _validate_pair(reference, test, what="psnr", allow_complex=False)
    mse = float(np.mean((tst - ref) ** 2))
    if mse == 0.0:
        return math.inf
    return float(10.0 * np.log10(L * L / mse))


def ssim(reference: np.ndarray, test: np.ndarray, *, data_range: float) -> float:
    """Mean structural similarity (Wang et al. 2004) with a 7x7 uniform window.

    Parameters
    ----------
    reference, test : ndarray
        ``(H, W)`` real images, ``H, W >= 7``.
    data_range : float
        ``L`` in ``C1 = (0.01 L)^2``, ``C2 = (0.03 L)^2``. Required (see :func:`psnr`).

    Returns
    -------
    float
        In ``[-1, 1]``; 1 for identical images.

    Raises
    ------
    TypeError, ValueError
        As :func:`psnr`; also an image smaller than the window.

    Notes
    -----
    ``skimage.metrics.structural_similarity(reference, test, win_size=7, data_range=L,
    gaussian_weights=False)``, i.e. sample covariances over each window and the mean over the
    valid interior.

    References
    ----------
    .. [1] Z. Wang, A. C. Bovik, H. R. Sheikh, E. P. Simoncelli, "Image quality assessment: from
       error visibility to structural similarity", IEEE Trans. Image Process. 13, 600 (2004),
       doi:10.1109/TIP.2003.819861.
    """
    from skimage.metrics import structural_similarity

    L = _validate_data_range(data_range, what="ssim")
    ref, tst = _validate_pair(reference, test, what="ssim", allow_complex=False, ndim=2)
    if min(ref.shape) < SSIM_WINDOW_PX:
        raise ValueError(f"ssim: images have shape {ref.shape}; expected both sides >= "
                         f"{SSIM_WINDOW_PX} (the window)")
    return float(structural_similarity(ref, tst, win_size=SSIM_WINDOW_PX, data_range=L,
                                       gaussian_weights=False))


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
        As :func:`mae`; also an image that is constant (no signal to correlate) or too small.

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

    ref, tst = _validate_pair(reference, test, what="frc", allow_complex=True, ndim=2)
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
