"""Complex-aware comparison of two objects (house rule 9): amplitude error, wrap-safe phase error
masked where the amplitude is tiny, every alignment ambiguity fitted and REPORTED (never
applied), and the twin-image check. NumPy, SciPy and scikit-image only.

Conventions are those of :mod:`parity.alignment`: arrays ``(H, W)`` in ``(y, x)`` order, a shift
``(dy, dx)`` with ``test(y, x) ~ reference(y - dy, x - dx)``, phase differences
``angle(test * conj(reference))`` (exact across the +-pi wrap).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np

from parity.alignment import align_shift_and_phase, fit_amplitude_scale, fit_phase_offset_and_ramp
from parity.metric_inputs import (
    validate_amplitude_floor_fraction,
    validate_complex_images,
    validate_pair,
)
from parity.registration import register_shift

__all__ = [
    "ComplexComparison",
    "amplitude_floor_mask",
    "compare_complex",
    "normalised_complex_error",
]

#: Orientations tried by the twin check: name -> transform of the reference.
_ORIENTATIONS = {
    "identity": lambda a: a,
    "conj": np.conj,
    "rot180": lambda a: np.rot90(a, 2),
    "conj_rot180": lambda a: np.conj(np.rot90(a, 2)),
}


def amplitude_floor_mask(amplitude: np.ndarray, *, amplitude_floor_fraction: float,
                         what: str) -> tuple[np.ndarray, float]:
    """Pixels whose amplitude is high enough for their phase to mean something.

    Parameters
    ----------
    amplitude : ndarray
        Reference (or truth) amplitude ``|O|``, any shape, real, finite, ``>= 0``.
    amplitude_floor_fraction : float
        In ``[0, 1)``: the floor is this fraction of ``max(amplitude)``.
    what : str
        Name of the calling function, quoted in every error.

    Returns
    -------
    mask : ndarray
        Bool, shape of ``amplitude``: ``amplitude >= floor`` and ``amplitude > 0`` (the phase
        of an exact zero is undefined whatever the floor). Holds at least the brightest pixel.
    floor : float
        ``amplitude_floor_fraction * max(amplitude)``, in the units of ``amplitude``.

    Raises
    ------
    TypeError
        A fraction that is not a real number; a complex or non-numeric amplitude.
    ValueError
        A fraction outside ``[0, 1)``; an empty, NaN/inf or negative amplitude; an amplitude
        that is zero everywhere.

    Examples
    --------
    >>> mask, floor = amplitude_floor_mask(np.array([1.0, 0.04, 0.0, 0.5]),
    ...                                    amplitude_floor_fraction=0.05, what="example")
    >>> mask.tolist(), floor
    ([True, False, False, True], 0.05)
    """
    fraction = validate_amplitude_floor_fraction(amplitude_floor_fraction, what=what)
    amplitude = np.asarray(amplitude)
    if amplitude.dtype.kind not in "iuf":
        raise TypeError(f"{what}: amplitude has dtype {amplitude.dtype}; expected a real array "
                        "(pass np.abs(...))")
    if amplitude.size == 0 or not np.isfinite(amplitude).all() or (amplitude < 0).any():
        raise ValueError(f"{what}: amplitude (shape {amplitude.shape}) must be non-empty, "
                         "finite and >= 0")
    peak = float(np.max(amplitude))
    if peak == 0:
        raise ValueError(f"{what}: the amplitude is zero everywhere; the phase is undefined")
    floor = fraction * peak
    return (amplitude >= floor) & (amplitude > 0), floor


def normalised_complex_error(reference: np.ndarray, test: np.ndarray) -> tuple[float, float]:
    """Complex error of ``test`` against ``reference`` after removing one global phase.

    Parameters
    ----------
    reference, test : ndarray
        Complex, same shape (any rank).

    Returns
    -------
    error : float
        ``sqrt(sum|A - g B|^2 / sum|A|^2)``, ``A = reference``, ``B = test``; 0 for a perfect
        match up to a global phase.
    global_phase_rad : float
        ``angle(g)``, ``g = exp(i angle(sum A conj B))`` (1 when the inner product is 0).

    Raises
    ------
    TypeError, ValueError
        Bad arrays (:func:`parity.metric_inputs.validate_pair`), a reference that is zero
        everywhere.
    """
    reference, test = validate_pair(reference, test, what="normalised_complex_error",
                                    allow_complex=True)
    inner = np.sum(reference * np.conj(test))
    gain = np.exp(1j * np.angle(inner)) if inner != 0 else 1.0 + 0j
    energy = float(np.sum(np.abs(reference) ** 2))
    if energy == 0:
        raise ValueError("normalised_complex_error: the reference is zero everywhere")
    error = math.sqrt(float(np.sum(np.abs(reference - gain * test) ** 2)) / energy)
    return error, float(np.angle(gain))


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
        ``(dy, dx)`` displacement of test (:mod:`parity.alignment` conventions), fitted jointly
        with the ramp (:func:`~parity.alignment.align_shift_and_phase`); ``(0, 0)`` with a NaN
        ``registration_error`` when an input is constant.
    registration_error : float
        Normalised RMS error of the last registration
        (:class:`~parity.registration.ShiftEstimate`).
    phase_offset_rad, phase_ramp_x_rad_per_px, phase_ramp_y_rad_per_px : float
        :class:`~parity.alignment.PhaseFit` of test against the reference moved by ``shift_px``,
        weighted by the floor mask, centred on the test grid.
    amplitude_scale : float
        :func:`~parity.alignment.fit_amplitude_scale` on the raw pair (``|test| ~ s |ref|``).
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
        Rounds of alternating registration and ramp fitting
        (:func:`parity.alignment.align_shift_and_phase`).

    Returns
    -------
    ComplexComparison
        Errors of the RAW pair plus every fitted quantity, reported and not applied.

    Raises
    ------
    TypeError
        Real input or bad dtypes, a floor fraction that is not a number.
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
    what = "compare_complex"
    ref, tst = validate_complex_images(reference, test, what=what)
    amp_ref, amp_tst = np.abs(ref), np.abs(tst)
    above, floor = amplitude_floor_mask(amp_ref, amplitude_floor_fraction=amplitude_floor_fraction,
                                        what=what)
    amp_err = np.abs(amp_tst - amp_ref)
    rel_err = amp_err[above] / amp_ref[above]
    phase_err = np.abs(np.angle(tst[above] * np.conj(ref[above])))
    normalised, global_phase = normalised_complex_error(ref, tst)
    shift, fit, _ = align_shift_and_phase(ref, tst, weights=above,
                                          upsample_factor=upsample_factor,
                                          max_iterations=max_iterations)
    orientation_errors = {}
    for name, transform in _ORIENTATIONS.items():
        candidate = transform(ref)
        coarse = register_shift(candidate, tst, upsample_factor=1, quantity="phase_gradient",
                                if_constant="nan")
        roll = tuple(round(v) if math.isfinite(v) else 0 for v in coarse.shift_px)
        candidate = np.roll(candidate, roll, axis=(0, 1))
        # conj, rot180 and roll keep the set of amplitudes: same maximum, same floor
        weights, _ = amplitude_floor_mask(np.abs(candidate),
                                          amplitude_floor_fraction=amplitude_floor_fraction,
                                          what=what)
        ramp = fit_phase_offset_and_ramp(candidate, tst, weights=weights)
        orientation_errors[name] = normalised_complex_error(
            candidate * np.exp(1j * ramp.phase_rad(candidate.shape)), tst)[0]
    return ComplexComparison(
        shape=(int(ref.shape[0]), int(ref.shape[1])),
        amplitude_floor_fraction=float(amplitude_floor_fraction), amplitude_floor=floor,
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
