"""``divergence.png``: the arrays behind the run's first divergence, side by side.

Reads :attr:`RunResult.first_divergence <parity.results.RunResult.first_divergence>` (what
failed, its message and its bound) and the evidence keys
:data:`~parity.results.FIRST_DIVERGENCE_EVIDENCE` (``expected``, ``actual``: the arrays exactly as
the judge compared them, any shape). A reviewer opening a failed bundle sees where the stage
differs, not only by how much.

Layout:

- an array with two axes of at least :data:`MIN_IMAGE_SIDE` elements is shown as images: the
  plane through its worst element (the judge's first listed, the furthest beyond its bound, as
  in the summary; else the largest ``|actual - expected|``, a NaN/inf on one side only counting
  as worst), the other axes fixed at that element's index. Of the pairs of axes that qualify,
  the one with the longest shorter side is drawn, the later axes winning a tie: a spatial
  ``8 x 8`` plane of a ``(batch, 128, 8, 8)`` feature map, not a ``128 x 8`` strip across its
  channels (a plane longer than :data:`MAX_ASPECT` to one is stretched to fill its panel).
  Complex: amplitude of expected and actual and the amplitude difference, then the phases
  (blank where that side's amplitude is below
  :data:`~parity.report._plotting.PHASE_MASK_FRACTION` of its maximum) and the wrap-safe phase
  difference ``angle(actual * conj(expected))`` (blank where either is); real: expected, actual
  and ``actual - expected``. Expected and actual share a colour scale unless the range of one is
  :data:`OWN_SCALE_RATIO` times the other's (a wrong scale factor), when each gets its own and
  the panel title says so. The worst element is marked.
- anything else (scalars, curves, thin arrays) is drawn over the flattened index (magnitudes
  when complex): up to :data:`LONG_VECTOR` elements as curves of expected and actual, with the
  tolerance band, and ``actual - expected`` below; longer ones (every weight of a network
  pooled into one check) in :data:`BINS` bins, as the largest ``|actual - expected|`` per bin
  against the tolerance bound (log scale) and the share of each bin out of tolerance (log
  scale too when the check allows a share, so that the allowed share stays visible next to
  bins near 1), so that the part of the vector that diverges stands out. The worst element is
  marked.

The title wraps the check's name and message to the figure's width (at most
:data:`MESSAGE_LINES` lines of message).
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from parity.compare import ElementErrors, element_errors
from parity.report._plotting import (
    FIGURE_DPI,
    InputError,
    NotApplicable,
    faint,
    limits,
    new_figure,
    save,
)
from parity.results import FIRST_DIVERGENCE_EVIDENCE, Check, RunResult

__all__ = ["BINS", "LONG_VECTOR", "MAX_ASPECT", "MESSAGE_LINES", "MIN_IMAGE_SIDE",
           "OWN_SCALE_RATIO", "divergence_figure", "worst_plane"]

#: Smallest length of both image axes for an array to be drawn as images, not as curves.
MIN_IMAGE_SIDE: int = 4

#: A plane longer than this to one is drawn stretched (``aspect="auto"``), not as a thin strip.
MAX_ASPECT: float = 4.0

#: Expected and actual get their own colour scales when the range of one is this many times the
#: other's: on a shared scale the smaller one would be a flat field.
OWN_SCALE_RATIO: float = 10.0

#: Flattened arrays longer than this are drawn in bins, not as raw curves (a line through
#: hundreds of thousands of weights is a solid band).
LONG_VECTOR: int = 2048

#: Number of bins of a long flattened array.
BINS: int = 400

#: Lines of the check's message in the title (wrapped to the figure's width; the rest is cut).
MESSAGE_LINES: int = 3

#: Width of a title character at font size 9, in pixels at FIGURE_DPI (generous: DejaVu Sans
#: averages about 6 px; digits and capitals are wider).
_TITLE_CHAR_PX = 7.5


def _largest_first(errors: ElementErrors) -> np.ndarray:
    """Per flattened element, how bad it is by size: ``|actual - expected|``, ``inf`` where
    NaN/inf is on one side only, 0 where both hold the same non-finite value."""
    return np.where(errors.mismatch, np.inf, np.nan_to_num(errors.abs_error, nan=0.0))


def _plane_axes(shape: tuple[int, ...]) -> tuple[int, int] | None:
    """The two axes to draw as an image (module docstring), or ``None``."""
    pairs = [(a, b) for a in range(len(shape)) for b in range(a + 1, len(shape))
             if min(shape[a], shape[b]) >= MIN_IMAGE_SIDE]
    if not pairs:
        return None
    return max(pairs, key=lambda pair: (min(shape[pair[0]], shape[pair[1]]), pair[1], pair[0]))


def worst_plane(expected: np.ndarray, actual: np.ndarray, *,
                worst: tuple[int, ...] | None = None,
                ) -> tuple[tuple[int | slice, ...] | None, tuple[int, ...]]:
    """Where to look: ``(index, worst)``.

    ``worst`` is the multi-index of the element to show: the one given (the judge's worst, the
    furthest beyond its bound) when it is a valid index of the arrays, else the largest error
    (:func:`_largest_first`). ``index`` selects the 2-D plane through it (module docstring: of the
    pairs of axes at least :data:`MIN_IMAGE_SIDE` long, the one with the longest shorter side,
    later axes winning a tie), or is ``None`` when no two axes are that long.
    """
    valid = worst is not None and len(worst) == expected.ndim and all(
        0 <= i < n for i, n in zip(worst, expected.shape, strict=True))
    if worst is None or not valid:
        badness = _largest_first(element_errors(expected, actual, rtol=0.0, atol=0.0))
        worst = tuple(int(i) for i in np.unravel_index(int(np.argmax(badness)),
                                                        expected.shape)) if badness.size else ()
    axes = _plane_axes(expected.shape)
    if axes is None:
        return None, worst
    index = tuple(slice(None) if axis in axes else worst[axis]
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


def _bound_of(check: Check) -> tuple[float, float] | None:
    """``(rtol, atol)`` in absolute units of the check's elementwise bound
    ``atol + rtol * |expected|``, or ``None`` when the check does not record both."""
    rtol, atol = check.tolerance.get("rtol"), check.measured.get("atol_effective")
    ok = all(isinstance(v, int | float) and not isinstance(v, bool) and np.isfinite(v)
             for v in (rtol, atol))
    return (float(rtol), float(atol)) if ok else None  # type: ignore[arg-type]


def _describe(index: tuple[int | slice, ...]) -> str:
    return "[" + ", ".join(":" if isinstance(i, slice) else str(i) for i in index) + "]"


def _image_rows(expected: np.ndarray, actual: np.ndarray,
                ) -> list[tuple[str, list[tuple[str, np.ndarray, str]]]]:
    """Panels per row: ``(row title, [(panel title, image, kind)])``, kind ``value``,
    ``phase`` or ``difference``."""
    if np.iscomplexobj(expected) or np.iscomplexobj(actual):
        amp_e, amp_a = np.abs(expected), np.abs(actual)
        # the phase of a near-zero value is noise, not a divergence
        faint_e, faint_a = faint(amp_e), faint(amp_a)
        with np.errstate(invalid="ignore"):
            phase_d = np.where(faint_e | faint_a, np.nan, np.angle(actual * np.conj(expected)))
        return [("amplitude", [("expected", amp_e, "value"), ("actual", amp_a, "value"),
                               ("|actual| - |expected|", amp_a - amp_e, "difference")]),
                ("phase (rad)", [("expected", np.where(faint_e, np.nan, np.angle(expected)),
                                  "phase"),
                                 ("actual", np.where(faint_a, np.nan, np.angle(actual)),
                                  "phase"),
                                 ("angle(actual conj(expected))", phase_d, "difference")])]
    expected, actual = expected.astype(np.float64), actual.astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        difference = actual - expected
    return [("value", [("expected", expected, "value"), ("actual", actual, "value"),
                       ("actual - expected", difference, "difference")])]


def _value_limits(images: list[np.ndarray]) -> list[tuple[tuple[float, float], bool]]:
    """Colour limits of each value panel and whether it has its own scale (module docstring)."""
    own = [limits([image]) for image in images]
    spans = [high - low for low, high in own]
    if len(images) > 1 and max(spans) > OWN_SCALE_RATIO * min(spans):
        return [(lim, True) for lim in own]
    shared = limits(images)
    return [(shared, False) for _ in images]


def _draw_images(figure: Any, expected: np.ndarray, actual: np.ndarray,
                 worst_yx: tuple[int, int]) -> None:
    rows = _image_rows(expected, actual)
    axes = figure.subplots(len(rows), 3, squeeze=False)
    height, width = expected.shape
    aspect = "auto" if max(height, width) > MAX_ASPECT * min(height, width) else "equal"
    for row, (row_title, panels) in enumerate(rows):
        scales = iter(_value_limits([image for _, image, kind in panels if kind == "value"]))
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
                (vmin, vmax), own = next(scales)
                cmap = "viridis"
                title = f"{title}\n(own colour scale)" if own else title
            shown = ax.imshow(np.where(np.isfinite(image), image, np.nan), cmap=cmap,
                              vmin=vmin, vmax=vmax, interpolation="nearest", aspect=aspect)
            if kind == "difference":
                ax.plot(worst_yx[1], worst_yx[0], marker="o", markersize=9, fillstyle="none",
                        color="black")
            ax.set_title(f"{row_title}: {title}", fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
            figure.colorbar(shown, ax=ax, shrink=0.8)


def _draw_curves(figure: Any, expected: np.ndarray, actual: np.ndarray, worst: int,
                 bound: tuple[float, float] | None) -> None:
    from matplotlib.ticker import MaxNLocator

    complex_values = np.iscomplexobj(expected) or np.iscomplexobj(actual)
    flat_e, flat_a = expected.reshape(-1), actual.reshape(-1)
    if complex_values:
        flat_e, flat_a = np.abs(flat_e), np.abs(flat_a)
    flat_e, flat_a = flat_e.astype(np.float64), flat_a.astype(np.float64)
    index = np.arange(flat_e.size)
    top, bottom = figure.subplots(2, 1, sharex=True)
    marker = "o" if flat_e.size <= 64 else None
    if bound is not None:
        rtol, atol = bound
        width = element_errors(expected, actual, rtol=rtol, atol=atol).bound
        if marker:  # a few points: a bar at each
            top.errorbar(index, flat_e, yerr=width, fmt="none", ecolor="C0", alpha=0.5,
                         capsize=6, label="tolerance")
        else:
            top.fill_between(index, flat_e - width, flat_e + width, color="C0", alpha=0.2,
                             label="tolerance")
        bottom.plot(index, width, color="grey", linestyle=":", linewidth=1, label="+-bound")
        bottom.plot(index, -width, color="grey", linestyle=":", linewidth=1)
    top.plot(index, flat_e, marker=marker, label="expected")
    top.plot(index, flat_a, marker=marker, linestyle="--", label="actual")
    top.set_ylabel("|value|" if complex_values else "value")
    with np.errstate(invalid="ignore", over="ignore"):
        bottom.plot(index, flat_a - flat_e, marker=marker, color="C3")
    bottom.axhline(0.0, color="grey", linewidth=0.8)
    bottom.set_ylabel("actual - expected")
    for ax in (top, bottom):
        ax.axvline(worst, color="black", linestyle=":", linewidth=1,
                   label=f"worst element [{worst}]" if ax is top else None)
    top.legend(fontsize=8)
    bottom.xaxis.set_major_locator(MaxNLocator(integer=True))
    if flat_e.size == 1:
        bottom.set_xlim(-1.0, 1.0)
    bottom.set_xlabel("flattened index" + (f" of shape {expected.shape}" if expected.ndim > 1
                                           else ""))


def _draw_binned(figure: Any, expected: np.ndarray, actual: np.ndarray, worst: int,
                 bound: tuple[float, float] | None, max_fraction: float) -> None:
    """Per-bin view of a long flattened array (module docstring)."""
    rtol, atol = bound if bound is not None else (0.0, 0.0)
    errors = element_errors(expected, actual, rtol=rtol, atol=atol)
    error = _largest_first(errors)
    size = error.size
    edges = np.unique(np.linspace(0, size, min(size, BINS) + 1).astype(np.int64))
    starts, counts = edges[:-1], np.diff(edges)
    largest = np.maximum.reduceat(error, starts)
    top, bottom = figure.subplots(2, 1, sharex=True)
    shown = np.where(np.isfinite(largest) & (largest > 0), largest, np.nan)
    top.stairs(shown, edges, color="C3", baseline=None,
               label="largest |actual - expected| in the bin")
    if bound is not None:
        top.stairs(np.minimum.reduceat(errors.bound, starts), edges, color="grey",
                   linestyle="--", baseline=None, label="tolerance bound (smallest in the bin)")
        share = np.add.reduceat(errors.out.astype(np.float64), starts) / counts
        _draw_share(bottom, share, edges, max_fraction)
    else:
        flat_e, flat_a = np.abs(expected.reshape(-1)), np.abs(actual.reshape(-1))
        for values, label, style in ((flat_e, "expected", "-"), (flat_a, "actual", "--")):
            finite = np.where(np.isfinite(values), values, 0.0).astype(np.float64)
            bottom.stairs(np.maximum.reduceat(finite, starts), edges, linestyle=style,
                          baseline=None, label=f"largest |{label}| in the bin")
        bottom.legend(fontsize=8)
    nonfinite = ~np.isfinite(largest)
    if nonfinite.any():
        top.plot((starts[nonfinite] + edges[1:][nonfinite]) / 2, np.full(nonfinite.sum(), 0.95),
                 "x", color="black", transform=top.get_xaxis_transform(),
                 label="NaN/inf on one side")
    if np.isfinite(shown).any():
        top.set_yscale("log")
    for ax in (top, bottom):
        ax.axvline(worst, color="black", linestyle=":", linewidth=1,
                   label=f"worst element [{worst}]" if ax is top else None)
    top.legend(fontsize=7, framealpha=0.8)
    top.set_ylabel("|actual - expected|")
    bottom.set_xlabel(f"flattened index of {size} elements, in {len(starts)} bins of "
                      f"<= {int(counts.max())}" + (f" (shape {expected.shape})"
                                                   if expected.ndim > 1 else ""))


def _share_floor(max_fraction: float, largest_bin: int) -> float:
    """Bottom of the log axis of the share out of tolerance: a decade below the smaller of the
    allowed share and the smallest non-zero share of a bin (one element of the largest bin), so
    both sit well above it. Bins with no element out are drawn at the floor."""
    return 0.1 * min(max_fraction, 1.0 / largest_bin)


def _draw_share(ax: Any, share: np.ndarray, edges: np.ndarray, max_fraction: float) -> None:
    """Share out of tolerance per bin, against the allowed share overall (module docstring).

    With an allowed share (``max_fraction > 0``) the axis is logarithmic down to
    :func:`_share_floor`: on a linear axis up to a share near 1 an allowed 0.001 lay on the
    x axis, hidden.
    """
    if max_fraction <= 0:
        ax.stairs(share, edges, color="C3", fill=True, alpha=0.6)
        ax.set_ylabel("share out of tolerance")
        ax.set_ylim(0.0, 1.1 * float(share.max()) or 1.0)
        return
    floor = _share_floor(max_fraction, int(np.diff(edges).max()))
    ax.stairs(np.maximum(share, floor), edges, color="C3", fill=True, alpha=0.6,
              baseline=floor)
    ax.axhline(max_fraction, color="grey", linestyle="--", linewidth=1,
               label=f"allowed overall ({max_fraction:g})")
    ax.legend(fontsize=8)
    ax.set_yscale("log")
    ax.set_ylim(floor, 1.5)
    ax.set_ylabel(f"share out of tolerance\n(log; none out drawn at {floor:.2g})")


def _title(first: Check, where: str, width_in: float) -> str:
    """Check name, message and ``where``, wrapped to the figure's width."""
    chars = max(40, int(width_in * FIGURE_DPI / _TITLE_CHAR_PX))
    lines = textwrap.wrap(f"first divergence {first.name}", chars)
    lines += textwrap.wrap(first.message, chars, max_lines=MESSAGE_LINES, placeholder=" ...")
    lines += textwrap.wrap(where, chars)
    return "\n".join(lines)


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
                         "configuration or layout, a missing or reshaped output, or a metric)")
    expected, actual = np.asarray(evidence[expected_key]), np.asarray(evidence[actual_key])
    if expected.shape != actual.shape:
        raise InputError(f"{first.name}: expected has shape {expected.shape}, actual "
                         f"{actual.shape}; nothing to draw element by element")
    if expected.dtype.kind not in "fciub" or actual.dtype.kind not in "fciub" \
            or expected.size == 0:
        raise InputError(f"{first.name}: arrays of dtype {expected.dtype} / {actual.dtype} and "
                         f"size {expected.size}; expected non-empty numbers")
    index, worst = worst_plane(expected, actual, worst=_judged_worst(first.measured))
    bound = _bound_of(first)
    if index is None:
        width_in = 8.0
        figure = new_figure(width_in, 5.5)
        flat_worst = int(np.ravel_multi_index(worst, expected.shape)) if worst else 0
        if expected.size > LONG_VECTOR:
            max_fraction = first.tolerance.get("max_fraction")
            _draw_binned(figure, expected, actual, flat_worst, bound,
                         float(max_fraction) if isinstance(max_fraction, int | float) else 0.0)
            where = f"worst element {list(worst)}"
        else:
            _draw_curves(figure, expected, actual, flat_worst, bound)
            where = f"worst element {list(worst)}" if worst else "scalar"
    else:
        rows = 2 if np.iscomplexobj(expected) or np.iscomplexobj(actual) else 1
        width_in = 10.0
        figure = new_figure(width_in, 3.2 * rows + 1.2)
        image_axes = [axis for axis, i in enumerate(index) if isinstance(i, slice)]
        _draw_images(figure, expected[index], actual[index],
                     (worst[image_axes[0]], worst[image_axes[1]]))
        where = f"plane {_describe(index)} of shape {expected.shape}; worst element {list(worst)}"
    figure.suptitle(_title(first, where, width_in), fontsize=9)
    return save(figure, out_dir / "divergence.png")
