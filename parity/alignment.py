"""Alignment of a reconstruction to a reference: phase offset and ramp, amplitude scale, and the
joint fit of shift and phase; undoing them. NumPy and SciPy only.

A ptychographic object is defined only up to a global complex factor, a linear phase ramp and a
translation (``research/ecosystem.md`` §3.1). Every function here FITS those quantities and
REPORTS them; nothing is removed unless the caller asks (:func:`apply_alignment`). For
TF-vs-PyTorch inference with identical weights the fitted values must be ~0 (shift, offset,
ramp) and ~1 (scale): a non-trivial value is itself a convention bug, not something to hide.
The translation alone is :func:`parity.registration.register_shift`; the comparisons built on
these fits are :func:`parity.complex_comparison.compare_complex` and
:func:`parity.truth_evaluation.evaluate_against_truth`.

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
from dataclasses import dataclass

import numpy as np

from parity.metric_inputs import validate_complex_images, validate_pair, validate_weights
from parity.registration import ShiftEstimate, register_shift

__all__ = [
    "SHIFT_CONVERGENCE_PX",
    "PhaseFit",
    "align_shift_and_phase",
    "apply_alignment",
    "fit_amplitude_scale",
    "fit_phase_offset_and_ramp",
    "valid_region",
]

#: Alternating shift / ramp estimation stops when the residual shift is below this (px); it is
#: the resolution of the default upsampled registration (1/100 px).
SHIFT_CONVERGENCE_PX = 0.01


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
    ref, tst = validate_complex_images(reference, test, what="fit_phase_offset_and_ramp")
    w = validate_weights(weights, ref.shape, what="fit_phase_offset_and_ramp")
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
    ref, tst = validate_pair(reference, test, what="fit_amplitude_scale", allow_complex=True)
    w = validate_weights(weights, ref.shape, what="fit_amplitude_scale")
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
        ``(dy, dx)`` displacement of test (as :func:`~parity.registration.register_shift` reports
        it); test is moved by ``(-dy, -dx)`` with a Fourier shift (periodic: see
        :func:`valid_region`).
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
    validate_pair(image, image, what="apply_alignment", allow_complex=True, ndim=2)
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


def align_shift_and_phase(reference: np.ndarray, test: np.ndarray, *,
                          weights: np.ndarray | None = None, upsample_factor: int = 100,
                          max_iterations: int = 4) -> tuple[ShiftEstimate, PhaseFit, int]:
    """Joint shift and phase offset/ramp of ``test`` against ``reference``.

    Parameters
    ----------
    reference, test : ndarray
        ``(H, W)`` complex.
    weights : ndarray, optional
        ``(H, W)`` bool or non-negative real: pixels used for the ramp fit; the registration
        uses their bounding box (a box, not the mask itself: mask edges common to both images
        would bias the shift to 0). Default all ones.
    upsample_factor : int
        Registration resolution ``1 / upsample_factor`` px.
    max_iterations : int
        Rounds of alternating registration and ramp fitting, ``>= 1``.

    Returns
    -------
    shift : ShiftEstimate
        ``(dy, dx)`` displacement of test (module conventions); ``(0, 0)`` with NaN error and
        quantity ``none`` when an input has nothing to register (constant).
    phase : PhaseFit
        Of test against the reference moved by the shift, centred on the test grid.
    rounds : int
        Rounds run (``<= max_iterations``).

    Raises
    ------
    TypeError, ValueError
        Bad arrays or weights (:mod:`parity.metric_inputs`), ``max_iterations < 1``.

    Notes
    -----
    Model: ``test(r) ~ s reference(r - d) exp(i phase(r))`` with the ramp centred on the test
    grid. Registration and ramp bias each other, so they alternate: the shift is bootstrapped
    on the ramp-invariant neighbour product; then, each round, the REFERENCE is moved by ``d``
    (moving a ramped test by a Fourier shift would ring at its non-periodic seam), the ramp is
    fitted where the moved reference did not wrap, and ``d`` is re-registered on the de-ramped
    complex test, until it changes by less than :data:`SHIFT_CONVERGENCE_PX`.
    """
    what = "align_shift_and_phase"
    reference, test = validate_complex_images(reference, test, what=what)
    w = validate_weights(weights, reference.shape, what=what)
    if isinstance(max_iterations, bool) or int(max_iterations) != max_iterations \
            or max_iterations < 1:
        raise ValueError(f"{what}: max_iterations={max_iterations!r}; expected an integer >= 1")
    rows_in, cols_in = np.flatnonzero(w.any(axis=1)), np.flatnonzero(w.any(axis=0))
    box = (slice(rows_in[0], rows_in[-1] + 1), slice(cols_in[0], cols_in[-1] + 1))
    estimate = register_shift(reference[box], test[box], upsample_factor=upsample_factor,
                              quantity="phase_gradient", if_constant="nan")
    if not all(map(math.isfinite, estimate.shift_px)):
        estimate = ShiftEstimate((0.0, 0.0), math.nan, "none")
    fit = PhaseFit(0.0, 0.0, 0.0)
    for rounds in range(1, max_iterations + 1):
        dy, dx = estimate.shift_px
        moved = apply_alignment(reference, shift_px=(-dy, -dx))
        rows, cols = valid_region(reference.shape, (-dy, -dx))
        region = np.zeros(reference.shape, dtype=np.float64)
        region[rows, cols] = 1.0
        fit = fit_phase_offset_and_ramp(moved, test, weights=w * region)
        refined = register_shift(reference[box], apply_alignment(test, phase=fit)[box],
                                 upsample_factor=upsample_factor, quantity="complex",
                                 if_constant="nan")
        if not all(map(math.isfinite, refined.shift_px)):
            return estimate, fit, rounds
        change = max(abs(a - b) for a, b in zip(refined.shift_px, estimate.shift_px,
                                                 strict=True))
        estimate = refined
        if change < SHIFT_CONVERGENCE_PX:
            break
    return estimate, fit, rounds
