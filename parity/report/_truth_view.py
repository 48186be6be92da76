"""Objects on the truth's pixel grid for the review figures, and a reconstruction as the L5
metrics saw it against the truth.

A stitched object sits at its ``origin_px`` on the object grid, with an uncovered zero border
around the scanned area. The L5 metrics (:func:`parity.evaluation.score_against_truth`) do not
score that canvas: they cut the covered box (trimmed by ``stitch_crop_px // 2``), undo the
fitted phase ramp, shift and amplitude scale, and keep the rows and columns the shift did not
wrap (:func:`parity.truth_evaluation.evaluate_against_truth`). :func:`aligned_to_truth` rebuilds
that view from the alignment the run recorded (``RunResult.metrics[backend]["truth"]
["alignment"]``) with the same functions, so a figure shows what was scored.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from parity.alignment import PhaseFit
from parity.evaluation import scored_region  # the L5 crop and alignment themselves, not copies
from parity.report._plotting import DRAWN_NOTE, InputError
from parity.truth_evaluation import deramp_and_shift

__all__ = ["TRUTH", "Placed", "TruthView", "aligned_objects", "aligned_to_truth", "common",
           "difference_pairs", "recorded_alignment", "truth_views"]

#: Evidence prefix and label of the ground truth.
TRUTH = "truth"


@dataclass(frozen=True)
class Placed:
    """A 2-D complex array on the object pixel grid, ``values[0, 0]`` at pixel ``(x0, y0)``."""

    label: str
    values: np.ndarray  # (H, W) complex128
    x0: int
    y0: int

    @property
    def x1(self) -> int:
        return self.x0 + self.values.shape[1]

    @property
    def y1(self) -> int:
        return self.y0 + self.values.shape[0]

    @property
    def span(self) -> str:
        """``x[x0,x1) y[y0,y1)``, in object pixels."""
        return f"x[{self.x0},{self.x1}) y[{self.y0},{self.y1})"


@dataclass(frozen=True)
class TruthView:
    """A reconstruction as the L5 metrics scored it, on the truth's grid.

    Attributes
    ----------
    placed : Placed
        The aligned reconstruction (phase offset and ramp, shift and amplitude scale undone) on
        the region the metrics evaluated, at its truth pixel.
    shift_px : tuple[float, float]
        ``(dy, dx)`` undone (:mod:`parity.alignment` conventions).
    amplitude_scale : float
        Divided out.
    """

    placed: Placed
    shift_px: tuple[float, float]
    amplitude_scale: float

    @property
    def description(self) -> str:
        """Two lines for a panel title: the shift and scale undone, and the region scored."""
        dy, dx = self.shift_px
        return (f"aligned as L5: shift (dy, dx) = ({dy:.3g}, {dx:.3g}) px\n"
                f"scale {self.amplitude_scale:.3g}; scored region {self.placed.span}")


def common(items: list[Placed]) -> list[np.ndarray]:
    """Crop every array to the region all of them cover.

    Raises
    ------
    InputError
        They share no pixel (the message gives each one's span).
    """
    x0, y0 = max(p.x0 for p in items), max(p.y0 for p in items)
    x1, y1 = min(p.x1 for p in items), min(p.y1 for p in items)
    if x1 <= x0 or y1 <= y0:
        spans = ", ".join(f"{p.label} {p.span}" for p in items)
        raise InputError(f"no common region ({spans})")
    return [p.values[y0 - p.y0:y1 - p.y0, x0 - p.x0:x1 - p.x0] for p in items]


def recorded_alignment(metrics: Mapping[str, Any], config: Mapping[str, Any],
                       backend: str) -> tuple[Mapping[str, Any], int]:
    """The alignment L5 recorded for ``backend`` against the truth, and ``stitch_crop_px``.

    Raises
    ------
    InputError
        The run recorded no such alignment (no L5 truth evaluation, or it failed) or no
        ``config.model.stitch_crop_px``.
    """
    entry = metrics.get(backend)
    truth = entry.get("truth") if isinstance(entry, Mapping) else None
    alignment = truth.get("alignment") if isinstance(truth, Mapping) else None
    if not isinstance(alignment, Mapping):
        raise InputError(f"metrics.{backend}.truth.alignment missing (no L5 evaluation "
                         "against the truth)")
    model = config.get("model")
    crop = model.get("stitch_crop_px") if isinstance(model, Mapping) else None
    if isinstance(crop, bool) or not isinstance(crop, int) or crop < 0:
        raise InputError(f"config.model.stitch_crop_px is {crop!r}; expected an integer >= 0")
    return alignment, crop


def aligned_to_truth(truth: np.ndarray, recon: Placed, alignment: Mapping[str, Any], *,
                     stitch_crop_px: int) -> TruthView:
    """``recon`` as :func:`parity.evaluation.score_against_truth` scored it against ``truth``.

    Parameters
    ----------
    truth : numpy.ndarray
        ``(H, W)`` complex ground truth, origin ``(0, 0)``.
    recon : Placed
        The stitched object at its ``origin_px``.
    alignment : mapping
        ``evaluate_against_truth(...)["alignment"]`` as the run recorded it.
    stitch_crop_px : int
        The run's ``ModelConfig.stitch_crop_px`` (the trusted box is trimmed by half of it).

    Returns
    -------
    TruthView

    Raises
    ------
    InputError
        The alignment record is malformed or does not fit this reconstruction (another run's
        object, or no covered pixel).

    Notes
    -----
    ``aligned = deramp_and_shift(box, fit, shift)[rows, cols] / scale``, as
    :func:`~parity.truth_evaluation.evaluate_against_truth` computes it.
    """
    try:
        fit = PhaseFit(float(alignment["phase_offset_rad"]),
                       float(alignment["phase_ramp_x_rad_per_px"]),
                       float(alignment["phase_ramp_y_rad_per_px"]))
        dy, dx = (float(v) for v in alignment["shift_px"])
        scale = float(alignment["amplitude_scale"])
        kept = (slice(*(int(v) for v in alignment["rows"])),
                slice(*(int(v) for v in alignment["cols"])))
        evaluated = tuple(int(v) for v in alignment["evaluated_shape"])
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{recon.label}: the recorded alignment is malformed ({exc!r})") from exc
    try:
        crop_truth, crop_recon, box = scored_region(truth, recon.values, (recon.x0, recon.y0),
                                                    stitch_crop_px)
        scored_truth = crop_truth[box][kept]
        aligned = deramp_and_shift(crop_recon[box], fit, (dy, dx))[kept] / scale
    except ValueError as exc:
        raise InputError(f"{recon.label}: cannot rebuild the L5 view ({exc})") from exc
    if aligned.shape != evaluated:
        raise InputError(f"{recon.label}: the region rebuilt is {aligned.shape}, the metrics "
                         f"evaluated {evaluated}; the alignment is not this object's")
    # truth_region cuts the truth from max(origin, 0): the scored region's truth pixel
    x0 = max(recon.x0, 0) + box[1].start + kept[1].start
    y0 = max(recon.y0, 0) + box[0].start + kept[0].start
    if not np.array_equal(truth[y0:y0 + evaluated[0], x0:x0 + evaluated[1]], scored_truth):
        raise InputError(f"{recon.label}: the scored region could not be placed on the truth")
    return TruthView(Placed(recon.label, aligned, x0, y0), (dy, dx), scale)


def truth_views(metrics: Mapping[str, Any], config: Mapping[str, Any],
                placed: list[Placed]) -> dict[str, TruthView | str]:
    """Per backend in ``placed``, its :class:`TruthView` (from the run's ``metrics`` and
    ``config``), or why it has none; empty when ``placed`` holds no truth."""
    truth = next((p.values for p in placed if p.label == TRUTH), None)
    if truth is None:
        return {}
    views: dict[str, TruthView | str] = {}
    for item in placed:
        if item.label == TRUTH:
            continue
        try:
            alignment, crop = recorded_alignment(metrics, config, item.label)
            views[item.label] = aligned_to_truth(truth, item, alignment, stitch_crop_px=crop)
        except InputError as exc:
            views[item.label] = str(exc)
    return views


def aligned_objects(placed: list[Placed], views: Mapping[str, TruthView | str],
                    notes: list[str]) -> tuple[list[Placed], str]:
    """What ``objects.png`` shows, and the title's words for it.

    Every backend aligned to the truth, with the truth, when each has a view and their scored
    regions overlap; else ``placed`` as it is, and a note (``objects: drawn with no alignment
    ...``) says why.
    """
    missing = [f"{label}: {why}" for label, why in views.items() if isinstance(why, str)]
    if views and not missing:
        shown = [v.placed for v in views.values() if isinstance(v, TruthView)]
        shown += [p for p in placed if p.label == TRUTH]
        try:
            common(shown)
            return shown, ("aligned to the truth as the L5 metrics (shift, phase offset/ramp, "
                           "amplitude scale undone)\nscored region")
        except InputError as exc:
            missing = [f"the scored regions do not overlap: {exc}"]
    if missing:
        notes.append(f"objects: {DRAWN_NOTE}no alignment to the truth ({'; '.join(missing)})")
    return placed, "unaligned" + (" (uncovered border included)" if views else "") + \
        "\ncommon region"


def difference_pairs(placed: list[Placed], views: Mapping[str, TruthView | str],
                     notes: list[str]) -> list[tuple[Placed, Placed, str]]:
    """``(a, b, how)`` per row of ``differences.png``; ``how`` is for the panel titles.

    Backend pairs on their common canvas, unaligned (the same stitching grid: a shift between
    them is a bug to see, not to remove); each backend against the truth as L5 scored it
    (:func:`aligned_to_truth`), or unaligned without a recorded alignment, noted
    (``differences: drawn with no alignment ...``).
    """
    backends = [p for p in placed if p.label != TRUTH]
    truth = [p for p in placed if p.label == TRUTH]
    pairs = [(a, b, "same canvas, unaligned") for a, b in itertools.combinations(backends, 2)]
    for label, view in views.items():
        if isinstance(view, TruthView):
            pairs.append((view.placed, truth[0], view.description))
            continue
        notes.append(f"differences: {DRAWN_NOTE}no alignment for {label} - {TRUTH} ({view})")
        pairs.append((next(p for p in backends if p.label == label), truth[0],
                       "NOT aligned (no L5 alignment recorded)"))
    return pairs
