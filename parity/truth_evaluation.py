"""Evaluation of a reconstruction against a ground truth: align, report the alignment, then score.
NumPy, SciPy and scikit-image only.

The reconstruction is aligned to the truth (shift, phase offset and ramp, amplitude scale: the
ambiguities of ptychography, ``research/ecosystem.md`` §3.1); every parameter removed is
reported next to the scores. Conventions are those of :mod:`parity.alignment`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from parity.alignment import (
    PhaseFit,
    align_shift_and_phase,
    apply_alignment,
    fit_amplitude_scale,
    valid_region,
)
from parity.complex_comparison import amplitude_floor_mask, normalised_complex_error
from parity.frc import frc
from parity.metric_inputs import validate_amplitude_floor_fraction, validate_complex_images
from parity.metrics import mae, psnr, rmse, ssim

__all__ = [
    "CONSTANT_AMPLITUDE_FRACTION",
    "CONSTANT_PHASE_RAD",
    "NO_STRUCTURE_CORRELATION",
    "RECOMMENDED_AMPLITUDE_FLOOR_FRACTION",
    "UNRELIABLE_REGISTRATION_ERROR",
    "deramp_and_shift",
    "evaluate_against_truth",
    "evaluation_warnings",
    "pearson_correlation",
]

#: A truth amplitude whose range is below this fraction of its maximum is constant (a pure-phase
#: object: complex64 rounding alone leaves ~1e-7): its amplitude PSNR/SSIM/FRC are undefined.
CONSTANT_AMPLITUDE_FRACTION = 1e-6

#: A truth phase whose range is below this (rad) is constant: complex64 rounding of a pure
#: amplitude object leaves phases of ~1e-7 rad; its truth-range phase SSIM is undefined.
CONSTANT_PHASE_RAD = 1e-5

#: Recommended ``amplitude_floor_fraction`` for :func:`evaluate_against_truth`: a complex error
#: ``e`` at amplitude ``A`` moves the phase by up to ``|e| / A`` rad, so at 5 % of the peak an
#: error of 1 % of the peak already reads as 0.2 rad; below that the phase measures noise, not
#: the reconstruction.
RECOMMENDED_AMPLITUDE_FLOOR_FRACTION = 0.05


#: A registration error (Guizar-Sicairos: 0 for a pure shift, 1 for unrelated images) at or
#: above this means the normalised cross-correlation peak is below sqrt(1 - 0.9**2) ~ 0.44:
#: the reconstruction hardly resembles the truth, so the fitted shift, ramp and scale (and every
#: score after them) are not meaningful. Measured on a 44 x 29 px GRF region: complex noise of
#: 40 % of the mean amplitude already gives ~0.89, a constant reconstruction ~0.92.
UNRELIABLE_REGISTRATION_ERROR = 0.9

#: A Pearson correlation with the truth (amplitude or phase) below this means the reconstruction
#: holds no more of the truth's structure than a constant (whose correlation is 0 or undefined);
#: 0.2 leaves room for the chance correlation of a small, misregistered region. Measured on a
#: 44 x 29 px GRF region: complex noise of 40 % of the mean amplitude still gives 0.23
#: (amplitude) and 0.52 (phase); the 3-epoch CPU ``small`` run gave -0.12 and -0.21. The phase
#: is scored after the fitted ramp, which alone lends a flat phase ~0.25 on a smooth object: there
#: the amplitude and the registration error are what flag a flat reconstruction.
NO_STRUCTURE_CORRELATION = 0.2


def evaluation_warnings(evaluation: Mapping[str, Any]) -> list[str]:
    """What makes an :func:`evaluate_against_truth` result unreliable, one sentence each.

    A registration error at or above :data:`UNRELIABLE_REGISTRATION_ERROR`, and an amplitude or
    phase correlation with the truth below :data:`NO_STRUCTURE_CORRELATION` (or undefined for a
    constant reconstruction of a structured truth). Empty when the evaluation looks sound.
    """
    found: list[str] = []
    alignment = evaluation.get("alignment") or {}
    error = alignment.get("registration_error")
    if isinstance(error, int | float) and error >= UNRELIABLE_REGISTRATION_ERROR:
        shift = alignment.get("shift_px") or []
        where = (f"; fitted shift (dy, dx) = ({shift[0]:.3g}, {shift[1]:.3g}) px"
                 if len(shift) == 2 else "")
        found.append(f"registration to the truth failed: error {error:.3g} >= "
                     f"{UNRELIABLE_REGISTRATION_ERROR} (0 = pure shift, 1 = unrelated images"
                     f"{where}); the alignment and the truth metrics are not meaningful")
    for part in ("amplitude", "phase"):
        scores = evaluation.get(part) or {}
        if "correlation" not in scores or scores.get("undefined"):
            continue  # not measured, or a constant truth: nothing to resemble
        value = scores["correlation"]
        if value is None or value < NO_STRUCTURE_CORRELATION:
            shown = "undefined (constant)" if value is None else f"{value:.3g}"
            found.append(f"{part} is no better than a constant: its correlation with the truth "
                         f"is {shown} (< {NO_STRUCTURE_CORRELATION}); the reconstruction did "
                         "not converge (more epochs or more data?)")
    return found


def pearson_correlation(reference: np.ndarray, test: np.ndarray) -> float | None:
    """Pearson correlation of two real arrays of the same shape (None when either is constant).

    Scale- and offset-free, so a reconstruction with the right structure scores near 1 whatever
    its amplitude scale, and a constant one (no structure at all) has none: None, as a flat
    image's correlation is undefined.

    Examples
    --------
    >>> round(pearson_correlation(np.array([1.0, 2.0, 3.0]), np.array([2.0, 4.0, 6.5])), 4)
    0.9979
    """
    ref = np.asarray(reference, dtype=np.float64).ravel()
    rec = np.asarray(test, dtype=np.float64).ravel()
    ref, rec = ref - ref.mean(), rec - rec.mean()
    norm = math.sqrt(float(np.sum(ref**2)) * float(np.sum(rec**2)))
    return None if norm == 0 else float(np.sum(ref * rec) / norm)


def deramp_and_shift(recon: np.ndarray, fit: PhaseFit, shift_px: Sequence[float]) -> np.ndarray:
    """A reconstruction brought onto the truth by a fitted alignment: the phase ramp and offset
    ``fit`` off on the reconstruction's own grid first, then the sub-pixel ``shift_px``
    ``(dy, dx)`` (the order :func:`parity.alignment.align_shift_and_phase` fits them in)."""
    return apply_alignment(apply_alignment(recon, phase=fit), shift_px=shift_px)


def evaluate_against_truth(truth: np.ndarray, recon: np.ndarray, *,
                           amplitude_floor_fraction: float, mask: np.ndarray | None = None,
                           upsample_factor: int = 100,
                           max_iterations: int = 4) -> dict[str, Any]:
    """Align a reconstruction to the ground truth, report the alignment, then score it.

    Parameters
    ----------
    truth, recon : ndarray
        ``(H, W)`` complex objects on the same grid (already cut to the trusted region).
    amplitude_floor_fraction : float
        Required, in ``[0, 1)``. The phase is undefined where the amplitude is tiny, so the
        phase MAE, RMSE and PSNR skip evaluated pixels whose TRUTH amplitude is below
        ``amplitude_floor_fraction * max|truth|`` (max over the evaluated pixels), and pixels
        where it is exactly 0. Recommended: :data:`RECOMMENDED_AMPLITUDE_FLOOR_FRACTION`
        (0.05); 0 keeps every pixel with a non-zero truth amplitude.
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
        ``correlation`` (:func:`pearson_correlation` with the truth over the MAE's pixels;
        None for a constant image), ``data_range`` and ``frc``
        (:meth:`parity.frc.FRCResult.to_dict`) — phase values in
        rad; for a constant truth amplitude (pure-phase object, see
        :data:`CONSTANT_AMPLITUDE_FRACTION`) the amplitude ``psnr``, ``ssim`` and ``frc`` are
        None and ``undefined`` says why; ``phase`` also holds ``amplitude_floor_fraction``,
        ``amplitude_floor`` (in truth amplitude units), ``pixels_evaluated`` (pixels in its
        MAE/RMSE/PSNR) and ``pixels_excluded_low_amplitude`` (evaluated pixels left out by the
        floor); ``complex``: ``normalised_error``; ``frc``: FRC of the complex fields. Python
        floats and ints; PSNR is ``inf`` for a perfect match.

    Raises
    ------
    TypeError, ValueError
        Non-complex or mismatched inputs, NaN/inf, a bad or empty mask, a floor fraction that
        is missing, not a number or outside ``[0, 1)``, a truth that is zero everywhere.

    Notes
    -----
    Order: shift (bootstrapped on the ramp-invariant neighbour product, refined on the
    de-ramped complex field, up to ``max_iterations`` rounds:
    :func:`parity.alignment.align_shift_and_phase`); phase offset and ramp; amplitude scale;
    then the wrapped border of the Fourier shift is cut from both images. Amplitude PSNR/SSIM
    use ``data_range = max - min`` of the truth amplitude; phase errors are wrap-safe
    ``angle(recon conj(truth))`` above the amplitude floor (PSNR with ``L = 2 pi``, equal to
    PSNR of ``(phi + pi)/(2 pi)`` with ``L = 1``). Phase ``ssim`` uses ``data_range = max - min``
    of the truth phase, like the amplitude: PtychoPINN's convention (``ssim_unit_range``: SSIM
    of ``(phi + pi) / (2 pi)`` with ``data_range = 1``, also reported) lets the SSIM constants
    ``C1 = (0.01 L)**2``, ``C2 = (0.03 L)**2`` swamp a phase that spans a fraction of a radian,
    so a flat, structureless reconstruction of such an object scores ~0.98 there (measured)
    while the truth-range SSIM scores ~0. For a constant truth phase the truth-range value is
    None, as is its FRC (``undefined`` says why). Phase SSIM and FRC need the full rectangle, so they are NOT
    masked by the floor: noise phase in a dark region lowers them.
    """
    what = "evaluate_against_truth"
    ref, rec = validate_complex_images(truth, recon, what=what)
    # Checked before the alignment, which is the slow part.
    floor_fraction = validate_amplitude_floor_fraction(amplitude_floor_fraction, what=what)
    if mask is None:
        weights = np.ones(ref.shape, dtype=np.float64)
    else:
        mask_array = np.asarray(mask)
        if mask_array.dtype.kind != "b" or mask_array.shape != ref.shape:
            raise ValueError(f"{what}: mask has dtype {mask_array.dtype} and shape "
                             f"{mask_array.shape}; expected bool {ref.shape}")
        if not mask_array.any():
            raise ValueError(f"{what}: mask selects no pixel")
        weights = mask_array.astype(np.float64)
    shift, fit, rounds = align_shift_and_phase(ref, rec, weights=weights,
                                               upsample_factor=upsample_factor,
                                               max_iterations=max_iterations)
    rows, cols = valid_region(ref.shape, shift.shift_px)
    region = np.zeros(ref.shape, dtype=bool)
    region[rows, cols] = True
    deramped = deramp_and_shift(rec, fit, shift.shift_px)
    scale = fit_amplitude_scale(ref, deramped, weights=weights * region)
    aligned = deramped[rows, cols] / scale
    ref = ref[rows, cols]
    keep = weights[rows, cols] > 0
    amp_ref, amp_rec = np.abs(ref), np.abs(aligned)
    amp_range = float(amp_ref.max() - amp_ref.min())
    amplitude: dict[str, Any] = {"mae": mae(amp_ref[keep], amp_rec[keep]),
                                 "rmse": rmse(amp_ref[keep], amp_rec[keep]),
                                 "correlation": pearson_correlation(amp_ref[keep], amp_rec[keep]),
                                 "data_range": amp_range}
    if amp_range > CONSTANT_AMPLITUDE_FRACTION * float(amp_ref.max()):
        amplitude.update(psnr=psnr(amp_ref[keep], amp_rec[keep], data_range=amp_range),
                         ssim=ssim(amp_ref, amp_rec, data_range=amp_range),
                         frc=frc(amp_ref, amp_rec).to_dict())
    else:
        amplitude.update(psnr=None, ssim=None, frc=None, undefined=(
            f"truth amplitude is constant (range {amp_range:.3g}): PSNR, SSIM and FRC of the "
            "amplitude need a data range > 0"))
    phase_defined, floor = amplitude_floor_mask(amp_ref[keep],
                                                amplitude_floor_fraction=floor_fraction,
                                                what=what)
    phase_ref, phase_rec = np.angle(ref), np.angle(aligned)
    phase_err = np.angle(aligned * np.conj(ref))[keep][phase_defined]
    phase_ref_defined = phase_ref[keep][phase_defined]
    phase_mse = float(np.mean(phase_err**2))
    phase_range = float(phase_ref.max() - phase_ref.min())
    phase_ssim: dict[str, Any] = {"ssim_unit_range": ssim(
        (phase_ref + np.pi) / (2 * np.pi), (phase_rec + np.pi) / (2 * np.pi), data_range=1.0)}
    if phase_range > CONSTANT_PHASE_RAD:
        phase_ssim.update(ssim=ssim(phase_ref, phase_rec, data_range=phase_range),
                          frc=frc(phase_ref, phase_rec).to_dict())
    else:
        phase_ssim.update(ssim=None, frc=None, undefined=(
            f"truth phase is constant (range {phase_range:.3g} rad): its SSIM and FRC need a "
            "data range > 0; ssim_unit_range (PtychoPINN's convention) is reported"))
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
            # truth phase + wrap-safe error: the reconstruction's phase unwrapped to the truth's
            "correlation": pearson_correlation(phase_ref_defined,
                                               phase_ref_defined + phase_err),
            "rmse": math.sqrt(phase_mse),
            "psnr": math.inf if phase_mse == 0 else
            float(10 * np.log10((2 * np.pi) ** 2 / phase_mse)),
            **phase_ssim,
            "data_range": phase_range,
            "amplitude_floor_fraction": floor_fraction,
            "amplitude_floor": floor,
            "pixels_evaluated": int(phase_defined.sum()),
            "pixels_excluded_low_amplitude": int(phase_defined.size - phase_defined.sum()),
        },
        "complex": {"normalised_error": normalised_complex_error(ref, aligned)[0]},
        "frc": frc(ref, aligned).to_dict(),
    }
