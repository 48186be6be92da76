"""``divergence.png``: the arrays behind the run's first divergence, side by side.

Reads :attr:`RunResult.first_divergence <parity.results.RunResult.first_divergence>` (what
failed, and its message) and the evidence keys :data:`~parity.results.FIRST_DIVERGENCE_EVIDENCE`
(``expected``, ``actual``: the arrays exactly as the judge compared them, any shape). A reviewer
opening a failed L1/L2 bundle sees where the stage differs, not only by how much.

Layout:

- an array with two axes of at least :data:`MIN_IMAGE_SIDE` elements is shown as images: the
  plane through its worst element (the judge's first listed, the furthest beyond its bound, as
  in the summary; else the largest ``|actual - expected|``, a NaN/inf on one side only counting
  as worst) along its two longest axes, the other axes fixed at that element's index.
  Complex: amplitude of expected and actual and the amplitude difference, then the phases and
  the wrap-safe phase difference ``angle(actual * conj(expected))`` (blank where either
  amplitude is below :data:`~parity.report._plotting.PHASE_MASK_FRACTION` of its maximum);
  real: expected, actual and ``actual - expected``. The worst element is marked.
- anything else (scalars, curves, thin arrays) is drawn as curves over the flattened index
  (magnitudes when complex), with ``actual - expected`` below.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from parity.report._plotting import (
    PHASE_MASK_FRACTION,
    InputError,
    NotApplicable,
    limits,
    new_figure,
    save,
)
from parity.results import FIRST_DIVERGENCE_EVIDENCE, RunResult

__all__ = ["MIN_IMAGE_SIDE", "divergence_figure", "worst_plane"]

#: Smallest length of both image axes for an array to be drawn as images, not as curves.
MIN_IMAGE_SIDE: int = 4

#: The check's message is cut to this many characters in the figure title.
_TITLE_CHARS = 160


def _badness(expected: np.ndarray, actual: np.ndarray) -> np.ndarray:
    """``|actual - expected|`` as float64; ``inf`` where exactly one side is not finite, 0 where
    both are the same non-finite value."""
    with np.errstate(invalid="ignore", over="ignore"):
        error = np.abs(actual.astype(np.complex128) - expected.astype(np.complex128))
    finite_e, finite_a = np.isfinite(expected), np.isfinite(actual)
    error = np.where(finite_e != finite_a, np.inf, error)
    same_nonfinite = ~finite_e & ~finite_a & ((expected == actual) | (np.isnan(expected)
                                                                        & np.isnan(actual)))
    return np.where(same_nonfinite, 0.0, np.nan_to_num(error, nan=np.inf))


def worst_plane(expected: np.ndarray, actual: np.ndarray, *,
                worst: tuple[int, ...] | None = None,
                ) -> tuple[tuple[int | slice, ...] | None, tuple[int, ...]]:
    """Where to look: ``(index, worst)``.

    ``worst`` is the multi-index of the element to show: the one given (the judge's worst, the
    furthest beyond its bound) when it is a valid index of the arrays, else the largest error
    (:func:`_badness`). ``index`` selects the 2-D plane through it along the array's two longest
    axes (the later axis wins a tie), or is ``None`` when the array has fewer than two axes of at
    least :data:`MIN_IMAGE_SIDE`.
    """
    valid = worst is not None and len(worst) == expected.ndim and all(
        0 <= i < n for i, n in zip(worst, expected.shape, strict=True))
    if worst is None or not valid:
        badness = _badness(expected, actual)
        worst = tuple(int(i) for i in np.unravel_index(int(np.argmax(badness)),
                                                        badness.shape)) if badness.size else ()
    if expected.ndim < 2:
        return None, worst
    longest = sorted(range(expected.ndim), key=lambda axis: (expected.shape[axis], axis))[-2:]
    if min(expected.shape[axis] for axis in longest) < MIN_IMAGE_SIDE:
        return None, worst
    index = tuple(slice(None) if axis in longest else worst[axis]
                  for axis in range(expected.ndim))
    return index, worst


def _judged_worst(measured: Mapping[str, Any]) -> tuple[int, ...] | None:
    """The index of the judge's first listed worst element (``measured["worst"][0]["index"]``,
    the one furthest beyond its bound, as the summary lists it), or ``None``."""
    listed = measured.get("worst")
    try:
        index = listed[0]["index"]  # type: ignore[index]
        return tuple(int(i) for i in index)
    except (TypeError, KeyError, IndexError, ValueError):
        return None


def _describe(index: tuple[int | slice, ...]) -> str:
    return "[" + ", ".join(":" if isinstance(i, slice) else str(i) for i in index) + "]"


def _image_rows(expected: np.ndarray, actual: np.ndarray,
                ) -> list[tuple[str, list[tuple[str, np.ndarray, str]]]]:
    """Panels per row: ``(row title, [(panel title, image, kind)])``, kind ``value``,
    ``phase`` or ``difference``."""
    if np.iscomplexobj(expected) or np.iscomplexobj(actual):
        amp_e, amp_a = np.abs(expected), np.abs(actual)
        with np.errstate(invalid="ignore"):
            phase_d = np.angle(actual * np.conj(expected))
        # the phase of a near-zero value is noise, not a divergence
        faint = (amp_e < PHASE_MASK_FRACTION * np.nanmax(amp_e, initial=0.0)) | \
                (amp_a < PHASE_MASK_FRACTION * np.nanmax(amp_a, initial=0.0))
        phase_d = np.where(faint, np.nan, phase_d)
        return [("amplitude", [("expected", amp_e, "value"), ("actual", amp_a, "value"),
                               ("|actual| - |expected|", amp_a - amp_e, "difference")]),
                ("phase (rad)", [("expected", np.angle(expected), "phase"),
                                 ("actual", np.angle(actual), "phase"),
                                 ("angle(actual conj(expected))", phase_d, "difference")])]
    expected, actual = expected.astype(np.float64), actual.astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        difference = actual - expected
    return [("value", [("expected", expected, "value"), ("actual", actual, "value"),
                       ("actual - expected", difference, "difference")])]


def _draw_images(figure: Any, expected: np.ndarray, actual: np.ndarray,
                 worst_yx: tuple[int, int]) -> None:
    rows = _image_rows(expected, actual)
    axes = figure.subplots(len(rows), 3, squeeze=False)
    for row, (row_title, panels) in enumerate(rows):
        shared = limits([image for _, image, kind in panels if kind == "value"])
        for col, (title, image, kind) in enumerate(panels):
            ax = axes[row, col]
            if kind == "phase":
                vmin, vmax, cmap = -np.pi, np.pi, "twilight"
            elif kind == "difference":
                finite = image[np.isfinite(image)]
                peak = float(np.abs(finite).max()) if finite.size else 0.0
                vmin, vmax, cmap = -(peak or 1.0), peak or 1.0, "RdBu_r"
                title = f"{title}\nmax |d| = {peak:.3g}"
            else:
                (vmin, vmax), cmap = shared, "viridis"
            shown = ax.imshow(np.where(np.isfinite(image), image, np.nan), cmap=cmap,
                              vmin=vmin, vmax=vmax, interpolation="nearest")
            if kind == "difference":
                ax.plot(worst_yx[1], worst_yx[0], marker="o", markersize=9, fillstyle="none",
                        color="black")
            ax.set_title(f"{row_title}: {title}", fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
            figure.colorbar(shown, ax=ax, shrink=0.8)


def _draw_curves(figure: Any, expected: np.ndarray, actual: np.ndarray) -> None:
    complex_values = np.iscomplexobj(expected) or np.iscomplexobj(actual)
    flat_e, flat_a = expected.reshape(-1), actual.reshape(-1)
    if complex_values:
        flat_e, flat_a = np.abs(flat_e), np.abs(flat_a)
    flat_e, flat_a = flat_e.astype(np.float64), flat_a.astype(np.float64)
    index = np.arange(flat_e.size)
    top, bottom = figure.subplots(2, 1, sharex=True)
    marker = "o" if flat_e.size <= 64 else None
    top.plot(index, flat_e, marker=marker, label="expected")
    top.plot(index, flat_a, marker=marker, linestyle="--", label="actual")
    top.set_ylabel("|value|" if complex_values else "value")
    top.legend(fontsize=8)
    with np.errstate(invalid="ignore", over="ignore"):
        bottom.plot(index, flat_a - flat_e, marker=marker, color="C3")
    bottom.axhline(0.0, color="grey", linewidth=0.8)
    bottom.set_ylabel("actual - expected")
    bottom.set_xlabel("flattened index" + (f" of shape {expected.shape}" if expected.ndim > 1
                                           else ""))


def divergence_figure(result: RunResult, evidence: Mapping[str, Any], out_dir: Path,
                      notes: list[str]) -> Path:
    """Draw ``divergence.png`` (module docstring).

    Raises
    ------
    NotApplicable
        The run has no divergence (it passed, or its first problem is an ``error``).
    InputError
        No arrays for the divergence in the evidence, or arrays that cannot be compared.
    """
    first = result.first_divergence
    if first is None or first.verdict != "fail":
        raise NotApplicable("no divergence in this run")
    expected_key, actual_key = FIRST_DIVERGENCE_EVIDENCE
    if expected_key not in evidence or actual_key not in evidence:
        raise InputError(f"{first.name} has no arrays in the evidence (an exact check of "
                         "configuration or layout, or a metric)")
    expected, actual = np.asarray(evidence[expected_key]), np.asarray(evidence[actual_key])
    if expected.shape != actual.shape:
        raise InputError(f"{first.name}: expected has shape {expected.shape}, actual "
                         f"{actual.shape}; nothing to draw element by element")
    if expected.dtype.kind not in "fciub" or actual.dtype.kind not in "fciub" \
            or expected.size == 0:
        raise InputError(f"{first.name}: arrays of dtype {expected.dtype} / {actual.dtype} and "
                         f"size {expected.size}; expected non-empty numbers")
    index, worst = worst_plane(expected, actual, worst=_judged_worst(first.measured))
    message = first.message if len(first.message) <= _TITLE_CHARS \
        else first.message[:_TITLE_CHARS - 3] + "..."
    if index is None:
        figure = new_figure(7.0, 5.0)
        _draw_curves(figure, expected, actual)
        where = f"worst element {list(worst)}" if worst else "scalar"
    else:
        rows = 2 if np.iscomplexobj(expected) or np.iscomplexobj(actual) else 1
        figure = new_figure(10.0, 3.2 * rows + 0.9)
        image_axes = [axis for axis, i in enumerate(index) if isinstance(i, slice)]
        _draw_images(figure, expected[index], actual[index],
                     (worst[image_axes[0]], worst[image_axes[1]]))
        where = f"plane {_describe(index)} of shape {expected.shape}; worst element {list(worst)}"
    figure.suptitle(f"first divergence {first.name}\n{message}\n{where}", fontsize=9)
    return save(figure, out_dir / "divergence.png")
