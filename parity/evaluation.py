"""L5: independent training of each backend, judged on reconstruction quality.

Each backend's stitched object is evaluated against the ground truth (when the case has one) after
alignment whose parameters are reported, and against the measured data (data consistency: how well
the reconstruction re-predicts the normalised diffraction). The gate is on the DIFFERENCE of each
metric between a backend and the baseline, with margins from the tolerance table.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from parity.config import ModelConfig
from parity.container import Container
from parity.contract import PreparedData
from parity.results import Check

__all__ = [
    "GATED_METRICS",
    "data_consistency",
    "independent_checks",
    "reconstruction_warnings",
    "score_against_truth",
    "scored_region",
    "trusted_box",
    "truth_region",
]

#: Metrics whose backend-vs-baseline difference is gated at L5 (``metric -> path in the metrics``).
GATED_METRICS: tuple[str, ...] = ("ssim_amp", "ssim_phase", "mae_amp", "mae_phase")


def truth_region(truth: np.ndarray, obj: np.ndarray,
                 origin_px: Sequence[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cut the truth and the reconstruction to their common region.

    Returns ``(truth_crop, recon_crop, covered)`` on the reconstruction's grid, where ``covered``
    marks pixels inside the truth frame and reached by the stitching (non-zero).
    """
    x0, y0 = (int(v) for v in origin_px)
    height, width = obj.shape
    H, W = truth.shape
    ys = slice(max(y0, 0), min(y0 + height, H))
    xs = slice(max(x0, 0), min(x0 + width, W))
    truth_crop = truth[ys, xs]
    recon_crop = obj[ys.start - y0: ys.stop - y0, xs.start - x0: xs.stop - x0]
    covered = np.abs(recon_crop) > 0
    return truth_crop, recon_crop, covered


def trusted_box(covered: np.ndarray, margin: int) -> tuple[slice, slice]:
    """The ``(rows, cols)`` box L5 scores: the bounding box of the ``covered`` pixels, shrunk by
    ``margin`` (half a stitching crop: the rim a single patch reaches is not trusted).

    Raises ``ValueError`` when nothing is covered.
    """
    rows = np.flatnonzero(covered.any(axis=1))
    cols = np.flatnonzero(covered.any(axis=0))
    if rows.size == 0 or cols.size == 0:
        raise ValueError("the reconstruction covers no pixel of the truth frame")
    return (slice(rows[0] + margin, rows[-1] + 1 - margin),
            slice(cols[0] + margin, cols[-1] + 1 - margin))


def score_against_truth(truth: np.ndarray, obj: np.ndarray, origin_px: Sequence[int],
                        model: ModelConfig) -> dict[str, Any]:
    """Evaluate a stitched object against the ground truth, as L5 does.

    The common region of the truth and ``obj`` (placed at ``origin_px`` ``(x0, y0)``), trimmed by
    ``stitch_crop_px // 2`` inside the covered box (the outer ring is covered by few, partial
    crops), then :func:`parity.truth_evaluation.evaluate_against_truth` with the recommended
    amplitude floor: alignment reported, then amplitude and phase scores.
    """
    from parity.truth_evaluation import RECOMMENDED_AMPLITUDE_FLOOR_FRACTION, evaluate_against_truth

    crop_truth, recon, box = scored_region(truth, obj, origin_px, model.stitch_crop_px)
    return evaluate_against_truth(crop_truth[box], recon[box],
                                  amplitude_floor_fraction=RECOMMENDED_AMPLITUDE_FLOOR_FRACTION)


def scored_region(truth: np.ndarray, obj: np.ndarray, origin_px: Sequence[int],
                  stitch_crop_px: int) -> tuple[np.ndarray, np.ndarray, tuple[slice, slice]]:
    """The region L5 scores: the truth and ``obj`` (placed at ``origin_px`` ``(x0, y0)``) cut to
    their common region (:func:`truth_region`), and the box inside it trimmed by
    ``stitch_crop_px // 2`` (:func:`trusted_box`). Returns ``(crop_truth, crop_obj, box)``."""
    crop_truth, recon, covered = truth_region(truth, np.asarray(obj), origin_px)
    return crop_truth, recon, trusted_box(covered, margin=stitch_crop_px // 2)


def data_consistency(obj: np.ndarray, origin_px: Sequence[int], container: Container,
                     data: PreparedData, model: ModelConfig) -> dict[str, Any]:
    """How well a stitched object re-predicts the measured (normalised) diffraction.

    Patches of the object at each scan position (oracle extraction, on the object grid) times the
    normalised probe, far-field amplitude, one least-squares global scale ``k``; reports the
    R-factor ``sum|k A - X| / sum X`` over patterns whose whole patch lies inside the stitched
    region, ``k``, and ``patterns`` (those used) of ``patterns_total``. When no pattern lies
    inside, the R-factor and scale are NaN and ``undefined`` says why.
    """
    from parity.oracle.physics import (
        exit_wave,
        extract_object_patches,
        farfield_amplitude,
        normalise_probe,
    )

    x0, y0 = (int(v) for v in origin_px)
    positions = container.positions_px - np.array([x0, y0], dtype=np.float64)
    half = model.N // 2
    height, width = obj.shape
    inside = ((positions[:, 0] - half >= 0) & (positions[:, 0] + half < width)
              & (positions[:, 1] - half >= 0) & (positions[:, 1] + half < height))
    total = int(positions.shape[0])
    if not inside.any():
        return {"r_factor": float("nan"), "scale": float("nan"), "patterns": 0,
                "patterns_total": total, "undefined": _no_pattern_inside(obj.shape, positions,
                                                                         model)}
    probe = normalise_probe(container.probe, model.probe_scale)
    predicted = farfield_amplitude(exit_wave(probe, extract_object_patches(
        obj, positions[inside], model.N), mask=model.probe_mask))
    measured = container.diffraction[inside].astype(np.float64) * data.normalisation
    k = float(np.sum(predicted * measured) / max(np.sum(predicted**2), 1e-30))
    r_factor = float(np.sum(np.abs(k * predicted - measured)) / np.sum(measured))
    return {"r_factor": r_factor, "scale": k, "patterns": int(inside.sum()),
            "patterns_total": total}


def _no_pattern_inside(shape: Sequence[int], positions: np.ndarray, model: ModelConfig) -> str:
    """Why :func:`data_consistency` found no pattern whose whole patch is in the object."""
    span_x, span_y = (float(np.ptp(positions[:, axis])) for axis in (0, 1))
    return (f"no pattern lies inside the stitched region: a whole {model.N} x {model.N} patch "
            f"must fit in the {shape[0]} x {shape[1]} px stitched object, which spans about the scan "
            f"plus stitch_crop_px={model.stitch_crop_px}, so the scan must be at least "
            f"N - stitch_crop_px + 1 = {model.N - model.stitch_crop_px + 1} px wide on each "
            f"axis (this one spans {span_x:.1f} px in x, {span_y:.1f} px in y)")


def independent_checks(judge: Any, backends: Sequence[str], container: Container,
                       data: PreparedData, model: ModelConfig, outcomes: Mapping[str, Any],
                       outputs: Mapping[str, Any]
                       ) -> tuple[list[Check], dict[str, Any], dict[str, np.ndarray]]:
    """Metrics per backend, their differences, and the L5 ``independent`` checks."""
    metrics: dict[str, Any] = {}
    evidence: dict[str, np.ndarray] = {}
    checks: list[Check] = []
    baseline = backends[0]
    for backend in backends:
        trained = outputs[backend].get("train", {})
        if "reconstructed_obj" not in trained:
            continue
        obj = np.asarray(trained["reconstructed_obj"])
        origin = np.asarray(trained["origin_px"]).tolist()
        entry: dict[str, Any] = {"data_consistency": data_consistency(obj, origin, container,
                                                                      data, model)}
        if container.object_truth is not None:
            try:
                evaluation = score_against_truth(container.object_truth, obj, origin, model)
            except (ValueError, TypeError) as err:  # e.g. NaN in a diverged reconstruction
                checks.append(Check("L5", "independent", "evaluation", backend, "truth", "error",
                                    message=f"{backend}: cannot evaluate against truth: {err}"))
                metrics[backend] = entry
                continue
            entry["truth"] = evaluation
            entry["gated"] = _gated(evaluation)
            frc = evaluation.get("frc") or {}
            for key in ("frequency", "curve", "half_bit"):
                if frc.get(key) is not None:
                    values = [np.nan if v is None else v for v in frc[key]]
                    evidence[f"{backend}/frc/{key}"] = np.asarray(values, dtype=np.float64)
        metrics[backend] = entry
    if baseline not in metrics:
        return checks, metrics, evidence
    deltas: dict[str, Any] = {}
    for backend in backends[1:]:
        if backend not in metrics:
            continue
        base_gated = metrics[baseline].get("gated", {})
        ours_gated = metrics[backend].get("gated", {})
        names = list(GATED_METRICS) if base_gated else []
        deltas[backend] = {}
        for name in names:
            expected, actual = base_gated.get(name), ours_gated.get(name)
            if expected is None and actual is None:  # undefined for this truth (e.g. flat phase)
                continue
            if expected is None or actual is None:
                checks.append(Check("L5", "independent", name, backend, baseline, "error",
                                    message=f"metric {name} missing"))
                continue
            deltas[backend][name] = float(actual) - float(expected)
            checks.append(judge.compare(level="L5", stage="independent", quantity=name,
                                        backend=backend, reference=baseline,
                                        expected=np.asarray(expected, dtype=np.float64),
                                        actual=np.asarray(actual, dtype=np.float64)))
        base_dc = metrics[baseline]["data_consistency"]
        ours_dc = metrics[backend]["data_consistency"]
        deltas[backend]["r_factor"] = ours_dc["r_factor"] - base_dc["r_factor"]
        checks.append(judge.compare(
            level="L5", stage="independent", quantity="r_factor", backend=backend,
            reference=baseline, expected=np.asarray(base_dc["r_factor"]),
            actual=np.asarray(ours_dc["r_factor"]),
            undefined_reason=base_dc.get("undefined") or ours_dc.get("undefined") or ""))
    metrics["delta"] = deltas
    return checks, metrics, evidence


def reconstruction_warnings(metrics: Mapping[str, Any]) -> list[str]:
    """Warnings on the reconstructions of an L5 metrics record (``RunResult.metrics``).

    Per backend, :func:`parity.truth_evaluation.evaluation_warnings` of its truth evaluation
    (registration failed, no better than a constant). Warnings, not failures: the L5 gate is the
    AGREEMENT of the backends, which two equally poor reconstructions still satisfy.
    """
    from parity.truth_evaluation import evaluation_warnings

    found = []
    for backend, entry in metrics.items():
        if backend == "delta" or not isinstance(entry, Mapping):
            continue
        truth = entry.get("truth")
        if isinstance(truth, Mapping):
            found += [f"L5 {backend}: {text}" for text in evaluation_warnings(truth)]
    return found


def _gated(evaluation: Mapping[str, Any]) -> dict[str, float | None]:
    """The gated metrics (:data:`GATED_METRICS`) from an ``evaluate_against_truth`` result."""
    amplitude = evaluation.get("amplitude", {})
    phase = evaluation.get("phase", {})
    return {"ssim_amp": amplitude.get("ssim"), "ssim_phase": phase.get("ssim"),
            "mae_amp": amplitude.get("mae"), "mae_phase": phase.get("mae")}
