"""Complex-aware comparison of reconstructions: registration, phase offset and ramp, amplitude
scale, twin check, and evaluation against a ground truth. NumPy, SciPy and scikit-image only.

A ptychographic object is defined only up to a global complex factor, a linear phase ramp and a
translation (``research/ecosystem.md`` §3.1). Every function here FITS those quantities and
REPORTS them; nothing is removed unless the caller asks (:func:`apply_alignment`) or the function
says so (:func:`evaluate_against_truth`, which aligns and reports every parameter it removed).
For TF-vs-PyTorch inference with identical weights the fitted values must be ~0 (shift, offset,
ramp) and ~1 (scale): a non-trivial value is itself a convention bug, not something to hide.

Conventions
-----------
- Arrays are ``(H, W)``, axis order ``(y, x)``; pixel ``(0, 0)`` is the top-left corner.
- A shift ``(dy, dx)`` is the displacement of ``test`` relative to ``reference`` in pixels:
  ``test(y, x) ~ reference(y - dy, x - dx)``.
- A phase ramp is ``phi0 + k_x (x - c_x) + k_y (y - c_y)`` with ``(c_y, c_x) = ((H-1)/2,
  (W-1)/2)`` the array centre, so ``phi0`` is the offset at the centre, whatever the ramp.
- Phase differences are ``angle(test * conj(reference))``: exact across the +-pi wrap.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

import numpy as np

from parity.metrics import _validate_pair, frc, mae, psnr, rmse, ssim

__all__ = [
    "CONSTANT_AMPLITUDE_FRACTION",
    "SHIFT_CONVERGENCE_PX",
    "ComplexComparison",
    "PhaseFit",
    "ShiftEstimate",
    "apply_alignment",
    "compare_complex",
    "evaluate_against_truth",
    "fit_amplitude_scale",
    "fit_phase_offset_and_ramp",
    "register_shift",
    "valid_region",
]

RegistrationQuantity = Literal["complex", "amplitude", "phase_gradient"]

#: Alternating shift / ramp estimation stops when the residual shift is below this (px); it is
#: the resolution of the default upsampled registration (1/100 px).
SHIFT_CONVERGENCE_PX = 0.01

#: A truth amplitude whose range is below this fraction of its maximum is constant (a pure-phase
#: object: complex64 rounding alone leaves ~1e-7): its amplitude PSNR/SSIM/FRC are undefined.
CONSTANT_AMPLITUDE_FRACTION = 1e-6

#: Orientations tried by the twin check: name -> transform of the reference.
_ORIENTATIONS = {
    "identity": lambda a: a,
    "conj": np.conj,
    "rot180": lambda a: np.rot90(a, 2),
    "conj_rot180": lambda a: np.conj(np.rot90(a, 2)),
}


@dataclass(frozen=True)
class ShiftEstimate:
    """Result of :func:`register_shift`.

    Attributes
    ----------
    shift_px : tuple of float
        ``(dy, dx)`` displacement of test relative to reference, pixels.
    error : float
        Translation-invariant normalised RMS error of the registration (Guizar-Sicairos 2008):
        0 for a pure shift, up to 1 for unrelated images.
    quantity : str
        What was correlated (``complex``, ``amplitude`` or ``phase_gradient``).
    """

    shift_px: tuple[float, float]
    error: float
    quantity: str


@dataclass(frozen=True)
class PhaseFit:
    """A global phase offset and linear ramp: ``test ~ reference * exp(i phase)``.

    Attributes
    ----------
    phase_offset_rad : float
        ``phi0``, the phase difference at the array centre, in (-pi, pi].
    ramp_x_rad_per_px, ramp_y_rad_per_px : float
        ``k_x``, ``k_y`` in rad per pixel, in (-pi, pi].
    """

    phase_offset_rad: float
    ramp_x_rad_per_px: float
    ramp_y_rad_per_px: float

    def phase_rad(self, shape: tuple[int, int]) -> np.ndarray:
        """``(H, W)`` float64 ``phi0 + k_x (x - c_x) + k_y (y - c_y)``."""
        y, x = _centred_grid(shape)
        return self.phase_offset_rad + self.ramp_x_rad_per_px * x + self.ramp_y_rad_per_px * y


def _centred_grid(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    height, width = shape
    y = np.arange(height, dtype=np.float64)[:, None] - (height - 1) / 2
    x = np.arange(width, dtype=np.float64)[None, :] - (width - 1) / 2
    return y, x


def _weights(weights: Any, shape: tuple[int, ...], *, what: str) -> np.ndarray:
    if weights is None:
        return np.ones(shape, dtype=np.float64)
    w = np.asarray(weights)
    if w.shape != shape:
        raise ValueError(f"{what}: weights have shape {w.shape}; expected {shape}")
    if w.dtype.kind not in "biuf":
        raise TypeError(f"{what}: weights have dtype {w.dtype}; expected bool or real")
    w = w.astype(np.float64)
    if not np.isfinite(w).all() or (w < 0).any():
        raise ValueError(f"{what}: weights must be finite and >= 0")
    if not w.any():
        raise ValueError(f"{what}: all weights are zero; nothing to fit")
    return w


def _pair_2d(reference: Any, test: Any, *, what: str,
             complex_only: bool) -> tuple[np.ndarray, np.ndarray]:
    ref, tst = _validate_pair(reference, test, what=what, allow_complex=True, ndim=2)
    if complex_only and ref.dtype.kind != "c":
        raise TypeError(f"{what}: got real arrays ({np.asarray(reference).dtype}); expected "
                        "complex objects (pass the complex field, not an amplitude or phase)")
    return ref, tst


def register_shift(reference: np.ndarray, test: np.ndarray, *, upsample_factor: int = 100,
                   quantity: RegistrationQuantity = "complex") -> ShiftEstimate:
    """Sub-pixel translation of ``test`` relative to ``reference`` by cross-correlation.

    Parameters
    ----------
    reference, test : ndarray
        ``(H, W)``, both real or both complex.
    upsample_factor : int
        Registration resolution is ``1 / upsample_factor`` px.
    quantity : {'complex', 'amplitude', 'phase_gradient'}
        What is correlated (after subtracting its mean): the field itself; its modulus; or the
        ramp-invariant neighbour product ``O[:, 1:] conj(O[:, :-1])`` (a linear phase ramp only
        multiplies it by a constant), for bootstrapping when a ramp may be present.

    Returns
    -------
    ShiftEstimate
        ``shift_px = (dy, dx)`` with ``test(y, x) ~ reference(y - dy, x - dx)``.

    Raises
    ------
    TypeError, ValueError
        Bad arrays (see :func:`parity.metrics.mae`), unknown ``quantity``,
        ``upsample_factor < 1``.

    Notes
    -----
    ``skimage.registration.phase_cross_correlation(ref, test, upsample_factor=...,
    normalization=None)`` (unnormalised cross-correlation with matrix-multiply DFT refinement,
    more robust to noise than phase correlation); skimage returns the shift that registers test
    ONTO reference, which is the negative of the displacement reported here.

    References
    ----------
    .. [1] M. Guizar-Sicairos, S. T. Thurman, J. R. Fienup, "Efficient subpixel image
       registration algorithms", Opt. Lett. 33, 156 (2008), doi:10.1364/OL.33.000156.
    """
    from skimage.registration import phase_cross_correlation

    ref, tst = _pair_2d(reference, test, what="register_shift", complex_only=False)
    if isinstance(upsample_factor, bool) or int(upsample_factor) != upsample_factor \
            or upsample_factor < 1:
        raise ValueError(f"register_shift: upsample_factor={upsample_factor!r}; expected an "
                         "integer >= 1")
    if quantity == "complex":
        images = [ref, tst]
    elif quantity == "amplitude":
        images = [np.abs(ref), np.abs(tst)]
    elif quantity == "phase_gradient":
        images = [a[:, 1:] * np.conj(a[:, :-1]) for a in (ref, tst)]
    else:
        raise ValueError(f"register_shift: quantity={quantity!r}; expected 'complex', "
                         "'amplitude' or 'phase_gradient'")
    images = [a - a.mean() for a in images]
    if not all(np.any(a) for a in images):
        raise ValueError(f"register_shift: {quantity} of an input is constant; no feature to "
                         "register")
    shift, error, _ = phase_cross_correlation(images[0], images[1],
                                              upsample_factor=int(upsample_factor),
                                              normalization=None)
    dy, dx = (-float(v) + 0.0 for v in shift)  # + 0.0 turns -0.0 into 0.0
    return ShiftEstimate((dy, dx), float(error), quantity)


def fit_phase_offset_and_ramp(reference: np.ndarray, test: np.ndarray, *,
                              weights: np.ndarray | None = None) -> PhaseFit:
    """Global phase offset and linear ramp of ``test`` relative to ``reference``, no unwrapping.

    Parameters
    ----------
    reference, test : ndarray
        ``(H, W)`` complex.
    weights : ndarray, optional
        ``(H, W)`` bool or non-negative real (e.g. a trusted-region mask); default all ones.

    Returns
    -------
    PhaseFit
        ``test ~ reference * exp(i (phi0 + k_x (x - c_x) + k_y (y - c_y)))`` (see the module
        conventions). Reported, not applied.

    Raises
    ------
    TypeError
        Real input.
    ValueError
        Bad shapes or values, or no overlap to fit (every product zero).

    Notes
    -----
    ``S = test conj(reference) w``; ``k_x = angle(sum S[:, 1:] conj(S[:, :-1]))``, ``k_y``
    likewise along y; ``phi0 = angle(sum S exp(-i (k_x x + k_y y)))``. Phasor differences are
    exact for a pure ramp with ``|k| < pi`` rad/px and need no unwrapping (ptychodus
    ``estimate_reconstruction_ambiguities``).
    """
    ref, tst = _pair_2d(reference, test, what="fit_phase_offset_and_ramp", complex_only=True)
    w = _weights(weights, ref.shape, what="fit_phase_offset_and_ramp")
    product = tst * np.conj(ref) * w
    sums = (np.sum(product[:, 1:] * np.conj(product[:, :-1])),
            np.sum(product[1:, :] * np.conj(product[:-1, :])))
    if not all(np.abs(s) > 0 for s in sums):
        raise ValueError("fit_phase_offset_and_ramp: no pair of neighbouring weighted pixels "
                         "with signal in both images; the ramp is undefined")
    k_x, k_y = (float(np.angle(s)) for s in sums)
    y, x = _centred_grid(ref.shape)
    total = np.sum(product * np.exp(-1j * (k_x * x + k_y * y)))
    return PhaseFit(float(np.angle(total)), k_x, k_y)


def fit_amplitude_scale(reference: np.ndarray, test: np.ndarray, *,
                        weights: np.ndarray | None = None) -> float:
    """Least-squares amplitude scale ``s`` with ``|test| ~ s |reference|``.

    Parameters
    ----------
    reference, test : ndarray
        Same shape, real or complex (only the moduli are used, so a phase error does not bias
        the scale).
    weights : ndarray, optional
        Same shape, bool or non-negative real.

    Returns
    -------
    float
        ``s = sum w |ref| |test| / sum w |ref|^2``.

    Raises
    ------
    ValueError
        The weighted reference is zero everywhere.
    """
    ref, tst = _validate_pair(reference, test, what="fit_amplitude_scale", allow_complex=True)
    w = _weights(weights, ref.shape, what="fit_amplitude_scale")
    denominator = float(np.sum(w * np.abs(ref) ** 2))
    if denominator == 0:
        raise ValueError("fit_amplitude_scale: the weighted reference is zero everywhere")
    return float(np.sum(w * np.abs(ref) * np.abs(tst)) / denominator)


def apply_alignment(test: np.ndarray, *, shift_px: tuple[float, float] = (0.0, 0.0),
                    phase: PhaseFit | None = None, amplitude_scale: float = 1.0) -> np.ndarray:
    """Undo a fitted shift, phase offset/ramp and amplitude scale on ``test``.

    Parameters
    ----------
    test : ndarray
        ``(H, W)`` real or complex.
    shift_px : tuple of float
        ``(dy, dx)`` displacement of test (as :func:`register_shift` reports it); test is moved
        by ``(-dy, -dx)`` with a Fourier shift (periodic: see :func:`valid_region`).
    phase : PhaseFit, optional
        Removed as ``test * exp(-i phase)`` after the shift (complex ``test`` only).
    amplitude_scale : float
        ``s > 0``; the result is divided by it.

    Returns
    -------
    ndarray
        ``(H, W)``, complex128 for complex ``test`` (float64 for real ``test``).

    Raises
    ------
    TypeError
        A phase correction on a real image.
    ValueError
        Non-finite input or parameters, ``amplitude_scale <= 0``.
    """
    from scipy.ndimage import fourier_shift

    image = np.asarray(test)
    _validate_pair(image, image, what="apply_alignment", allow_complex=True, ndim=2)
    is_complex = image.dtype.kind == "c"
    if phase is not None and not is_complex:
        raise TypeError("apply_alignment: a phase correction needs a complex test image")
    dy, dx = (float(v) for v in shift_px)
    if not (math.isfinite(dy) and math.isfinite(dx)):
        raise ValueError(f"apply_alignment: shift_px={shift_px}; expected finite values")
    if not (math.isfinite(amplitude_scale) and amplitude_scale > 0):
        raise ValueError(f"apply_alignment: amplitude_scale={amplitude_scale}; expected > 0")
    out = image.astype(np.complex128 if is_complex else np.float64)
    if dy != 0.0 or dx != 0.0:
        moved = np.fft.ifft2(fourier_shift(np.fft.fft2(out), (-dy, -dx)))
        out = moved if is_complex else moved.real
    if phase is not None:
        out = out * np.exp(-1j * phase.phase_rad(out.shape))
    return out / amplitude_scale


def valid_region(shape: tuple[int, int], shift_px: tuple[float, float], *,
                 margin_px: int = 1) -> tuple[slice, slice]:
    """Rows and columns of an array moved back by ``shift_px`` that did not wrap around.

    Parameters
    ----------
    shape : tuple of int
        ``(H, W)``.
    shift_px : tuple of float
        ``(dy, dx)`` as passed to :func:`apply_alignment`.
    margin_px : int
        Extra pixels dropped on the wrapped side (Fourier-shift ringing at the seam).

    Returns
    -------
    tuple of slice
        ``(rows, cols)``; non-empty.

    Raises
    ------
    ValueError
        The shift leaves nothing.
    """
    slices = []
    for size, shift in zip(shape, shift_px, strict=True):
        cut = math.ceil(abs(shift)) + margin_px if shift != 0 else 0
        region = slice(0, size - cut) if shift > 0 else slice(cut, size)
        if region.stop - region.start < 1:
            raise ValueError(f"valid_region: shift {shift_px} leaves no pixel of {shape}")
        slices.append(region)
    return slices[0], slices[1]


def _normalised_error(reference: np.ndarray, test: np.ndarray) -> tuple[float, float]:
    """``(sqrt(sum|A - g B|^2 / sum|A|^2), angle g)`` with ``g = exp(i angle(sum A conj B))``."""
    inner = np.sum(reference * np.conj(test))
    gain = np.exp(1j * np.angle(inner)) if inner != 0 else 1.0 + 0j
    energy = float(np.sum(np.abs(reference) ** 2))
    if energy == 0:
        raise ValueError("normalised complex error: the reference is zero everywhere")
    error = math.sqrt(float(np.sum(np.abs(reference - gain * test) ** 2)) / energy)
    return error, float(np.angle(gain))


def _safe_shift(reference: np.ndarray, test: np.ndarray, *, upsample_factor: int,
                quantity: RegistrationQuantity) -> ShiftEstimate:
    """:func:`register_shift`, or NaN when an input has nothing to register (constant)."""
    try:
        return register_shift(reference, test, upsample_factor=upsample_factor,
                              quantity=quantity)
    except ValueError as err:
        if "constant" not in str(err):
            raise
        return ShiftEstimate((math.nan, math.nan), math.nan, quantity)


@dataclass(frozen=True)
class ComplexComparison:
    """Complex-aware comparison of two objects (:func:`compare_complex`); nothing was aligned.

    Attributes
    ----------
    shape : tuple of int
        ``(H, W)``.
    amplitude_floor_fraction, amplitude_floor : float
        Phase and relative amplitude errors use the pixels with
        ``|ref| >= floor = fraction * max|ref|`` (and ``|ref| > 0``); ``phase_pixel_fraction`` of
        all pixels qualified.
    amplitude_max_abs_error, amplitude_mean_abs_error : float
        ``||test| - |ref||`` over all pixels.
    amplitude_max_rel_error, amplitude_mean_rel_error : float
        ``||test| - |ref|| / |ref|`` above the floor.
    phase_max_abs_error_rad, phase_mean_abs_error_rad, phase_rms_error_rad : float
        ``angle(test conj(ref))`` above the floor (wrap-safe; no offset removed).
    normalised_complex_error : float
        ``sqrt(sum|A - g B|^2 / sum|A|^2)``, ``A = ref``, ``B = test``,
        ``g = exp(i global_phase_rad)``, ``global_phase_rad = angle(sum A conj B)``.
    shift_px : tuple of float
        ``(dy, dx)`` displacement of test (module conventions), fitted jointly with the ramp;
        NaN when an input is constant.
    registration_error : float
        Normalised RMS error of the last registration (:class:`ShiftEstimate`).
    phase_offset_rad, phase_ramp_x_rad_per_px, phase_ramp_y_rad_per_px : float
        :class:`PhaseFit` of test against the reference moved by ``shift_px``, weighted by the
        floor mask, centred on the test grid.
    amplitude_scale : float
        :func:`fit_amplitude_scale` on the raw pair (``|test| ~ s |ref|``).
    orientation_errors : Mapping[str, float]
        Normalised complex error of ``test`` against ``identity``, ``conj``, ``rot180`` and
        ``conj_rot180`` of the reference, each after its own integer-pixel registration (on the
        ramp-invariant neighbour product) and phase offset/ramp fit.
    twin_suspected : bool
        ``conj_rot180`` (the twin image) matches strictly better than ``identity``: the
        signature of a sign or axis convention bug (flipped scan positions, FFT direction).
    """

    shape: tuple[int, int]
    amplitude_floor_fraction: float
    amplitude_floor: float
    phase_pixel_fraction: float
    amplitude_max_abs_error: float
    amplitude_mean_abs_error: float
    amplitude_max_rel_error: float
    amplitude_mean_rel_error: float
    phase_max_abs_error_rad: float
    phase_mean_abs_error_rad: float
    phase_rms_error_rad: float
    normalised_complex_error: float
    global_phase_rad: float
    phase_offset_rad: float
    phase_ramp_x_rad_per_px: float
    phase_ramp_y_rad_per_px: float
    shift_px: tuple[float, float]
    registration_error: float
    amplitude_scale: float
    orientation_errors: Mapping[str, float]
    twin_suspected: bool

    def __post_init__(self) -> None:
        object.__setattr__(self, "orientation_errors",
                           MappingProxyType(dict(self.orientation_errors)))

    @property
    def best_orientation(self) -> str:
        """The orientation of the reference that matches ``test`` best."""
        return min(self.orientation_errors, key=lambda k: self.orientation_errors[k])

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict (floats; NaN and inf as None)."""
        def plain(value: Any) -> Any:
            if isinstance(value, float):
                return value if math.isfinite(value) else None
            if isinstance(value, tuple):
                return [plain(v) for v in value]
            if isinstance(value, Mapping):
                return {k: plain(v) for k, v in value.items()}
            return value

        out = {name: plain(getattr(self, name)) for name in self.__dataclass_fields__}
        out["best_orientation"] = self.best_orientation
        return out

    def summary(self) -> str:
        """One line: the errors, then the fitted quantities."""
        dy, dx = self.shift_px
        twin = "; TWIN SUSPECTED (conj(rot180(ref)) matches better)" if self.twin_suspected \
            else ""
        if self.best_orientation != "identity":
            twin += f"; best match: {self.best_orientation}(ref)"
        return (f"complex {self.shape}: normalised error {self.normalised_complex_error:.3g}, "
                f"amp max abs {self.amplitude_max_abs_error:.3g}, phase max "
                f"{self.phase_max_abs_error_rad:.3g} rad (mean "
                f"{self.phase_mean_abs_error_rad:.3g}) above {self.amplitude_floor_fraction:g} "
                f"max|ref|; fitted shift ({dy:.3g}, {dx:.3g}) px, offset "
                f"{self.phase_offset_rad:.3g} rad, ramp ({self.phase_ramp_y_rad_per_px:.3g}, "
                f"{self.phase_ramp_x_rad_per_px:.3g}) rad/px (y, x), scale "
                f"{self.amplitude_scale:.6g}{twin}")


def compare_complex(reference: np.ndarray, test: np.ndarray, *, amplitude_floor_fraction: float,
                    upsample_factor: int = 100, max_iterations: int = 4) -> ComplexComparison:
    """Compare two complex objects as complex: amplitude, wrap-safe phase, fitted ambiguities.

    Parameters
    ----------
    reference, test : ndarray
        ``(H, W)`` complex (any precision; compared in complex128).
    amplitude_floor_fraction : float
        In ``[0, 1)``: phase is undefined where the amplitude is tiny, so phase and relative
        amplitude errors skip pixels with ``|ref| < fraction * max|ref|``. Required.
    upsample_factor : int
        Registration resolution ``1 / upsample_factor`` px.
    max_iterations : int
        Rounds of alternating registration and ramp fitting (see :func:`evaluate_against_truth`).

    Returns
    -------
    ComplexComparison
        Errors of the RAW pair plus every fitted quantity, reported and not applied.

    Raises
    ------
    TypeError
        Real input or bad dtypes.
    ValueError
        Bad shapes or values, a floor fraction outside ``[0, 1)``, an all-zero reference.

    Notes
    -----
    Twin check: ``O'(r) = conj(O(-r))`` reproduces every diffraction intensity when the scan
    positions are also negated, so with known positions a reconstruction that matches
    ``conj(rot180(ref))`` better than ``ref`` points at a sign or axis bug (ecosystem.md §3.1).
    Each orientation is registered to the nearest pixel first, because ``rot180`` of a
    DC-centred even-sized array lands one pixel off.
    """
    ref, tst = _pair_2d(reference, test, what="compare_complex", complex_only=True)
    fraction = float(amplitude_floor_fraction)
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"compare_complex: amplitude_floor_fraction={fraction}; expected [0, 1)")
    amp_ref, amp_tst = np.abs(ref), np.abs(tst)
    peak = float(amp_ref.max())
    if peak == 0:
        raise ValueError("compare_complex: the reference is zero everywhere")
    floor = fraction * peak
    above = (amp_ref >= floor) & (amp_ref > 0)
    amp_err = np.abs(amp_tst - amp_ref)
    rel_err = amp_err[above] / amp_ref[above]
    phase_err = np.abs(np.angle(tst[above] * np.conj(ref[above])))
    normalised, global_phase = _normalised_error(ref, tst)
    shift, fit, _ = _align(ref, tst, above.astype(np.float64), upsample_factor=upsample_factor,
                           max_iterations=max_iterations)
    orientation_errors = {}
    for name, transform in _ORIENTATIONS.items():
        candidate = transform(ref)
        coarse = _safe_shift(candidate, tst, upsample_factor=1, quantity="phase_gradient")
        roll = tuple(round(v) if math.isfinite(v) else 0 for v in coarse.shift_px)
        candidate = np.roll(candidate, roll, axis=(0, 1))
        weights = (np.abs(candidate) >= floor) & (np.abs(candidate) > 0)
        ramp = fit_phase_offset_and_ramp(candidate, tst, weights=weights)
        orientation_errors[name] = _normalised_error(
            candidate * np.exp(1j * ramp.phase_rad(candidate.shape)), tst)[0]
    return ComplexComparison(
        shape=(int(ref.shape[0]), int(ref.shape[1])),
        amplitude_floor_fraction=fraction, amplitude_floor=floor,
        phase_pixel_fraction=float(above.mean()),
        amplitude_max_abs_error=float(amp_err.max()),
        amplitude_mean_abs_error=float(amp_err.mean()),
        amplitude_max_rel_error=float(rel_err.max()),
        amplitude_mean_rel_error=float(rel_err.mean()),
        phase_max_abs_error_rad=float(phase_err.max()),
        phase_mean_abs_error_rad=float(phase_err.mean()),
        phase_rms_error_rad=float(np.sqrt(np.mean(phase_err**2))),
        normalised_complex_error=normalised, global_phase_rad=global_phase,
        phase_offset_rad=fit.phase_offset_rad, phase_ramp_x_rad_per_px=fit.ramp_x_rad_per_px,
        phase_ramp_y_rad_per_px=fit.ramp_y_rad_per_px,
        shift_px=shift.shift_px, registration_error=shift.error,
        amplitude_scale=fit_amplitude_scale(ref, tst),
        orientation_errors=orientation_errors,
        twin_suspected=orientation_errors["conj_rot180"] < orientation_errors["identity"],
    )


def _align(reference: np.ndarray, test: np.ndarray, weights: np.ndarray, *,
           upsample_factor: int, max_iterations: int) -> tuple[ShiftEstimate, PhaseFit, int]:
    """Joint shift and phase offset/ramp of ``test`` against ``reference``.

    Model: ``test(r) ~ s reference(r - d) exp(i phase(r))`` with the ramp centred on the test
    grid. Registration and ramp bias each other, so they alternate: the shift is bootstrapped
    on the ramp-invariant neighbour product; then, each round, the REFERENCE is moved by ``d``
    (moving a ramped test by a Fourier shift would ring at its non-periodic seam), the ramp is
    fitted where the moved reference did not wrap, and ``d`` is re-registered on the de-ramped
    complex test, until it changes by less than :data:`SHIFT_CONVERGENCE_PX`.
    Returns the shift, the phase fit and the number of rounds.
    """
    if isinstance(max_iterations, bool) or int(max_iterations) != max_iterations \
            or max_iterations < 1:
        raise ValueError(f"max_iterations={max_iterations!r}; expected an integer >= 1")
    # Register inside the bounding box of the weights: pixels outside a trusted region must not
    # pull the shift (a box, not the mask itself: mask edges common to both would bias to 0).
    rows_in, cols_in = np.flatnonzero(weights.any(axis=1)), np.flatnonzero(weights.any(axis=0))
    box = (slice(rows_in[0], rows_in[-1] + 1), slice(cols_in[0], cols_in[-1] + 1))
    estimate = _safe_shift(reference[box], test[box], upsample_factor=upsample_factor,
                           quantity="phase_gradient")
    if not all(map(math.isfinite, estimate.shift_px)):
        estimate = ShiftEstimate((0.0, 0.0), math.nan, "none")
    fit = PhaseFit(0.0, 0.0, 0.0)
    for rounds in range(1, max_iterations + 1):
        dy, dx = estimate.shift_px
        moved = apply_alignment(reference, shift_px=(-dy, -dx))
        rows, cols = valid_region(reference.shape, (-dy, -dx))
        region = np.zeros(reference.shape, dtype=np.float64)
        region[rows, cols] = 1.0
        fit = fit_phase_offset_and_ramp(moved, test, weights=weights * region)
        refined = _safe_shift(reference[box], apply_alignment(test, phase=fit)[box],
                              upsample_factor=upsample_factor, quantity="complex")
        if not all(map(math.isfinite, refined.shift_px)):
            return estimate, fit, rounds
        change = max(abs(a - b) for a, b in zip(refined.shift_px, estimate.shift_px,
                                                 strict=True))
        estimate = refined
        if change < SHIFT_CONVERGENCE_PX:
            break
    return estimate, fit, rounds


def evaluate_against_truth(truth: np.ndarray, recon: np.ndarray, *,
                           mask: np.ndarray | None = None, upsample_factor: int = 100,
                           max_iterations: int = 4) -> dict[str, Any]:
    """Align a reconstruction to the ground truth, report the alignment, then score it.

    Parameters
    ----------
    truth, recon : ndarray
        ``(H, W)`` complex objects on the same grid (already cut to the trusted region).
    mask : ndarray, optional
        ``(H, W)`` bool: pixels used to fit the phase ramp and scale and for MAE/RMSE/PSNR;
        registration uses the mask's bounding box; SSIM and FRC need the full rectangle.
        Default: all.
    upsample_factor : int
        Registration resolution ``1 / upsample_factor`` px.
    max_iterations : int
        Rounds of alternating registration and ramp fitting.

    Returns
    -------
    dict
        ``alignment``: ``shift_px`` ``[dy, dx]``, ``registration_error``,
        ``registration_rounds``, ``phase_offset_rad``, ``phase_ramp_x_rad_per_px``,
        ``phase_ramp_y_rad_per_px``, ``amplitude_scale``, ``rows``/``cols`` (kept region,
        ``[start, stop)``) and ``evaluated_shape``;
        ``amplitude`` and ``phase``: ``mae``, ``rmse``, ``psnr`` (dB), ``ssim``,
        ``data_range`` and ``frc`` (:meth:`FRCResult.to_dict`) — phase values in rad; for a
        constant truth amplitude (pure-phase object, see :data:`CONSTANT_AMPLITUDE_FRACTION`)
        the amplitude ``psnr``, ``ssim`` and ``frc`` are None and ``undefined`` says why;
        ``complex``: ``normalised_error``; ``frc``: FRC of the complex fields. Python floats;
        PSNR is ``inf`` for a perfect match.

    Raises
    ------
    TypeError, ValueError
        Non-complex or mismatched inputs, NaN/inf, a bad or empty mask.

    Notes
    -----
    Order: shift (bootstrapped on the ramp-invariant neighbour product, refined on the
    de-ramped complex field, up to ``max_iterations`` rounds); phase offset and ramp; amplitude
    scale; then the wrapped border of the Fourier shift is cut from both images. Amplitude
    PSNR/SSIM use ``data_range = max - min`` of the truth amplitude; phase errors are wrap-safe
    ``angle(recon conj(truth))`` (PSNR with ``L = 2 pi``, equal to PSNR of ``(phi + pi)/(2 pi)``
    with ``L = 1``); phase SSIM is on ``(phi + pi) / (2 pi)`` with ``data_range = 1``
    (PtychoPINN's convention; a wrap inside the image lowers it).
    """
    ref, rec = _pair_2d(truth, recon, what="evaluate_against_truth", complex_only=True)
    if mask is None:
        weights = np.ones(ref.shape, dtype=np.float64)
    else:
        mask_array = np.asarray(mask)
        if mask_array.dtype.kind != "b" or mask_array.shape != ref.shape:
            raise ValueError(f"evaluate_against_truth: mask has dtype {mask_array.dtype} and "
                             f"shape {mask_array.shape}; expected bool {ref.shape}")
        if not mask_array.any():
            raise ValueError("evaluate_against_truth: mask selects no pixel")
        weights = mask_array.astype(np.float64)
    shift, fit, rounds = _align(ref, rec, weights, upsample_factor=upsample_factor,
                                max_iterations=max_iterations)
    rows, cols = valid_region(ref.shape, shift.shift_px)
    region = np.zeros(ref.shape, dtype=bool)
    region[rows, cols] = True
    # Ramp off on the reconstruction's own grid first, then the shift (see _align).
    deramped = apply_alignment(apply_alignment(rec, phase=fit), shift_px=shift.shift_px)
    scale = fit_amplitude_scale(ref, deramped, weights=weights * region)
    aligned = deramped[rows, cols] / scale
    ref = ref[rows, cols]
    keep = weights[rows, cols] > 0
    amp_ref, amp_rec = np.abs(ref), np.abs(aligned)
    amp_range = float(amp_ref.max() - amp_ref.min())
    amplitude: dict[str, Any] = {"mae": mae(amp_ref[keep], amp_rec[keep]),
                                 "rmse": rmse(amp_ref[keep], amp_rec[keep]),
                                 "data_range": amp_range}
    if amp_range > CONSTANT_AMPLITUDE_FRACTION * float(amp_ref.max()):
        amplitude.update(psnr=psnr(amp_ref[keep], amp_rec[keep], data_range=amp_range),
                         ssim=ssim(amp_ref, amp_rec, data_range=amp_range),
                         frc=frc(amp_ref, amp_rec).to_dict())
    else:
        amplitude.update(psnr=None, ssim=None, frc=None, undefined=(
            f"truth amplitude is constant (range {amp_range:.3g}): PSNR, SSIM and FRC of the "
            "amplitude need a data range > 0"))
    phase_ref, phase_rec = np.angle(ref), np.angle(aligned)
    phase_err = np.angle(aligned * np.conj(ref))[keep]
    phase_mse = float(np.mean(phase_err**2))
    return {
        "alignment": {
            "shift_px": [float(v) for v in shift.shift_px],
            "registration_error": shift.error,
            "registration_rounds": rounds,
            "phase_offset_rad": fit.phase_offset_rad,
            "phase_ramp_x_rad_per_px": fit.ramp_x_rad_per_px,
            "phase_ramp_y_rad_per_px": fit.ramp_y_rad_per_px,
            "amplitude_scale": scale,
            "rows": [rows.start, rows.stop],
            "cols": [cols.start, cols.stop],
            "evaluated_shape": list(ref.shape),
        },
        "amplitude": amplitude,
        "phase": {
            "mae": float(np.mean(np.abs(phase_err))),
            "rmse": math.sqrt(phase_mse),
            "psnr": math.inf if phase_mse == 0 else
            float(10 * np.log10((2 * np.pi) ** 2 / phase_mse)),
            "ssim": ssim((phase_ref + np.pi) / (2 * np.pi), (phase_rec + np.pi) / (2 * np.pi),
                         data_range=1.0),
            "data_range": 2 * math.pi,
            "frc": frc(phase_ref, phase_rec).to_dict(),
        },
        "complex": {"normalised_error": _normalised_error(ref, aligned)[0]},
        "frc": frc(ref, aligned).to_dict(),
    }
