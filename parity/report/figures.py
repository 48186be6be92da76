"""Review figures of a run (PNG, matplotlib Agg, headless; no pyplot state is touched).

Evidence keys read (every one optional; a figure whose inputs are missing is not drawn and the
reason is returned in :attr:`FigureSet.skipped`):

- ``<backend>/reconstructed_obj`` (H, W) complex stitched object, and ``<backend>/origin_px``
  (2,) int object-pixel ``(x0, y0)`` of its ``[0, 0]`` element;
- ``truth/object`` (H, W) complex ground truth, origin ``(0, 0)``;
- ``<backend>/frc/frequency``, ``<backend>/frc/curve`` (F,) and ``<backend>/frc/half_bit``
  (F,) threshold curve, or a scalar half-bit crossing frequency;
- ``<backend>/history/loss``, ``<backend>/history/val_loss`` (epochs,); when absent,
  ``RunResult.histories[backend]["loss" | "val_loss"]`` is used.

Against the truth, a backend is drawn as the L5 metrics scored it
(:func:`parity.report._truth_view.aligned_to_truth`: the covered, trimmed box, with the recorded
shift, phase offset/ramp and amplitude scale undone, on the region that was evaluated), which
needs ``RunResult.metrics[backend]["truth"]["alignment"]`` and ``config["model"]
["stitch_crop_px"]``; without them it is drawn unaligned on its canvas and a note says why.

Figures: ``objects.png`` (amplitude and phase of each backend and the truth on the common
region, shared colour limits per row: with a truth, the region all backends were scored on,
aligned), ``differences.png`` (backend A - backend B on their common canvas, unaligned, and
each backend - truth aligned as above: amplitude difference and wrap-safe phase difference
``angle(a * conj(b))``, a residual global phase offset removed; each panel says which),
``frc.png`` (FRC of each backend vs truth with its half-bit threshold),
``loss.png`` (loss and val_loss of every backend, log y when all values are positive),
``divergence.png`` (the run's first divergence: expected, actual and their difference, from
:data:`~parity.results.FIRST_DIVERGENCE_EVIDENCE`; see :mod:`parity.report.divergence_figure`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from parity.report._plotting import (
    DRAWN_NOTE,
    InputError,
    NotApplicable,
    faint,
    limits,
    new_figure,
    save,
)
from parity.report._truth_view import (
    TRUTH,
    Placed,
    aligned_objects,
    common,
    difference_pairs,
    truth_views,
)
from parity.report.divergence_figure import divergence_figure
from parity.results import FIRST_DIVERGENCE_EVIDENCE, RunResult

__all__ = ["DRAWN_NOTE", "FigureSet", "render_figures", "write_figures"]

_log = logging.getLogger(__name__)

@dataclass(frozen=True)
class FigureSet:
    """What :func:`render_figures` produced.

    Attributes
    ----------
    written : tuple[pathlib.Path, ...]
        PNG files written, in drawing order.
    skipped : tuple[str, ...]
        ``"<figure>: <why>"`` for each figure (or part) not drawn, and
        ``"<figure>: drawn with ..."`` (:data:`DRAWN_NOTE`) for one drawn differently.
    """

    written: tuple[Path, ...]
    skipped: tuple[str, ...]


def _backend_names(result: RunResult, evidence: Mapping[str, Any]) -> list[str]:
    """Backends with evidence: the run's order first, then any other prefix (sorted)."""
    prefixes = {key.split("/", 1)[0] for key in evidence if "/" in key} - {TRUTH}
    prefixes -= {key.split("/", 1)[0] for key in FIRST_DIVERGENCE_EVIDENCE}
    ordered = [b for b in result.backends if b in prefixes]
    return ordered + sorted(prefixes - set(ordered))


def _object(evidence: Mapping[str, Any], key: str) -> np.ndarray:
    values = np.asarray(evidence[key])
    while values.ndim > 2 and values.shape[0] == 1:
        values = values[0]
    if values.ndim != 2 or values.size == 0:
        raise InputError(f"{key} has shape {values.shape}; expected a non-empty (H, W) array")
    if values.dtype.kind not in "fciu":
        raise InputError(f"{key} has dtype {values.dtype}; expected complex or real numbers")
    return values.astype(np.complex128)


def _placed_objects(result: RunResult, evidence: Mapping[str, Any],
                    notes: list[str]) -> list[Placed]:
    placed: list[Placed] = []
    for backend in _backend_names(result, evidence):
        key = f"{backend}/reconstructed_obj"
        if key not in evidence:
            continue
        try:
            values = _object(evidence, key)
        except InputError as exc:
            notes.append(f"objects: {exc}")
            continue
        origin_key = f"{backend}/origin_px"
        if origin_key not in evidence:
            notes.append(f"objects: {origin_key} missing; {backend} placed at (0, 0)")
            origin = np.zeros(2)
        else:
            origin = np.asarray(evidence[origin_key], dtype=np.float64).reshape(-1)
            if origin.shape != (2,) or not np.all(np.isfinite(origin)) \
                    or not np.array_equal(origin, np.round(origin)):
                notes.append(f"objects: {origin_key} is {origin.tolist()}; expected 2 integers "
                             f"(x0, y0); {backend} left out")
                continue
        placed.append(Placed(backend, values, int(origin[0]), int(origin[1])))
    if f"{TRUTH}/object" in evidence:
        try:
            placed.append(Placed(TRUTH, _object(evidence, f"{TRUTH}/object"), 0, 0))
        except InputError as exc:
            notes.append(f"objects: {exc}")
    return placed


def _objects_figure(result: RunResult, evidence: Mapping[str, Any], out_dir: Path,
                    notes: list[str]) -> Path:
    placed = _placed_objects(result, evidence, notes)
    if not any(p.label != TRUTH for p in placed):  # the truth alone reviews nothing
        raise InputError("no <backend>/reconstructed_obj in the evidence (no L5 training)"
                         + ("; the truth alone is not drawn" if placed else ""))
    placed, how = aligned_objects(placed, truth_views(result.metrics, result.config, placed),
                                  notes)
    crops = common(placed)
    rows = [("amplitude", [np.abs(c) for c in crops], "viridis"),
            ("phase (rad)", [np.angle(c) for c in crops], "twilight")]
    figure = new_figure(3.0 * len(crops) + 0.8, 5.6)
    axes = figure.subplots(2, len(crops), squeeze=False)
    for row, (title, images, cmap) in enumerate(rows):
        # phase on its whole circle: a cyclic map stretched over the data range would give both
        # extremes nearly the same colour
        vmin, vmax = (-np.pi, np.pi) if cmap == "twilight" else limits(images)
        for col, (item, image) in enumerate(zip(placed, images, strict=True)):
            ax = axes[row, col]
            shown = ax.imshow(image, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
            ax.set_title(f"{item.label}: {title}", fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
        figure.colorbar(shown, ax=list(axes[row]), shrink=0.8)
    height, width = crops[0].shape
    x0, y0 = max(p.x0 for p in placed), max(p.y0 for p in placed)
    figure.suptitle(f"{result.case}: {how} {width}x{height} px at x[{x0},{x0 + width}) "
                    f"y[{y0},{y0 + height})", fontsize=10)
    return save(figure, out_dir / "objects.png")


def _difference_row(a: Placed, b: Placed) -> tuple[np.ndarray, np.ndarray, float]:
    """Amplitude difference, phase difference (blank where either is faint) and the global
    phase offset removed from it, on the common region of ``a`` and ``b``."""
    crop_a, crop_b = common([a, b])
    amp_a, amp_b = np.abs(crop_a), np.abs(crop_b)
    # a global phase offset is not an error of the reconstruction (the metrics remove it
    # too): take it out, or it paints the whole panel and hides the local differences
    cross = crop_a * np.conj(crop_b)
    offset = float(np.angle(np.sum(cross))) if np.abs(np.sum(cross)) > 0 else 0.0
    phase = np.angle(cross * np.exp(-1j * offset))
    blank = faint(amp_a) | faint(amp_b)
    return amp_a - amp_b, np.where(blank, np.nan, phase), offset


def _differences_figure(result: RunResult, evidence: Mapping[str, Any], out_dir: Path,
                        notes: list[str]) -> Path:
    placed = _placed_objects(result, evidence, [])  # placement notes come from the objects figure
    pairs = difference_pairs(placed, truth_views(result.metrics, result.config, placed), notes)
    if not pairs:
        raise InputError(f"needs two objects; have {[p.label for p in placed] or 'none'}")
    rows = []
    for a, b, how in pairs:
        try:
            rows.append((f"{a.label} - {b.label}", how, *_difference_row(a, b)))
        except InputError as exc:
            notes.append(f"differences: {a.label} - {b.label}: {exc}")
    if not rows:
        raise InputError("no pair of objects overlaps")
    figure = new_figure(7.0, 3.2 * len(rows) + 0.6)
    axes = figure.subplots(len(rows), 2, squeeze=False)
    for row, (label, how, d_amp, d_phase, offset) in enumerate(rows):
        for col, (kind, image, note) in enumerate((
                ("amplitude", d_amp, ""),
                ("phase (rad)", d_phase, f"; offset {offset:+.3g} rad removed"))):
            ax = axes[row, col]
            finite = image[np.isfinite(image)]
            peak = float(np.abs(finite).max()) if finite.size else 0.0
            bound = peak if peak > 0 else 1.0
            shown = ax.imshow(image, cmap="RdBu_r", vmin=-bound, vmax=bound,
                              interpolation="nearest")
            ax.set_title(f"{label}: {kind}\n{how}\nmax |d| = {peak:.3g}{note}", fontsize=7)
            ax.set_xticks([])
            ax.set_yticks([])
            figure.colorbar(shown, ax=ax, shrink=0.8)
    figure.suptitle(f"{result.case}: differences\nbackend pairs on the same canvas, unaligned; "
                    "vs truth as the L5 metrics scored it", fontsize=9)
    return save(figure, out_dir / "differences.png")


def _frc_figure(result: RunResult, evidence: Mapping[str, Any], out_dir: Path,
                notes: list[str]) -> Path:
    figure = new_figure(6.0, 4.0)
    ax = figure.subplots()
    drawn = 0
    for index, backend in enumerate(_backend_names(result, evidence)):
        keys = [f"{backend}/frc/frequency", f"{backend}/frc/curve"]
        if not all(k in evidence for k in keys):
            if any(k in evidence for k in keys):
                notes.append(f"frc: {backend} lacks {[k for k in keys if k not in evidence]}")
            continue
        freq = np.asarray(evidence[keys[0]], dtype=np.float64).reshape(-1)
        curve = np.asarray(evidence[keys[1]], dtype=np.float64).reshape(-1)
        if freq.shape != curve.shape:
            notes.append(f"frc: {backend} frequency {freq.shape} and curve {curve.shape} differ")
            continue
        colour = f"C{index % 10}"
        ax.plot(freq, curve, color=colour, label=f"{backend} vs truth")
        drawn += 1
        half_bit = evidence.get(f"{backend}/frc/half_bit")
        if half_bit is None:
            notes.append(f"frc: {backend}/frc/half_bit missing; threshold not drawn")
            continue
        half_bit = np.asarray(half_bit, dtype=np.float64).reshape(-1)
        if half_bit.shape == freq.shape:
            ax.plot(freq, half_bit, color=colour, linestyle="--", linewidth=0.8,
                    label=f"{backend} half-bit threshold")
        elif half_bit.size == 1 and np.isfinite(half_bit[0]):
            ax.axvline(half_bit[0], color=colour, linestyle=":",
                       label=f"{backend} half-bit crossing {half_bit[0]:.3g}")
        else:
            notes.append(f"frc: {backend}/frc/half_bit has shape {half_bit.shape}; expected "
                         f"{freq.shape} or a scalar")
    if not drawn:
        raise InputError("no <backend>/frc/frequency + <backend>/frc/curve in the evidence")
    ax.set_xlabel("spatial frequency (cycles/px; Nyquist 0.5)")
    ax.set_ylabel("FRC")
    ax.set_ylim(top=1.05)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(f"{result.case}: Fourier ring correlation vs truth", fontsize=10)
    return save(figure, out_dir / "frc.png")


def _history(result: RunResult, evidence: Mapping[str, Any], backend: str,
             name: str) -> np.ndarray | None:
    values = evidence.get(f"{backend}/history/{name}")
    if values is None:
        history = result.histories.get(backend)
        values = history.get(name) if isinstance(history, Mapping) else None
    if values is None:
        return None
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    return array if array.size else None


def _loss_figure(result: RunResult, evidence: Mapping[str, Any], out_dir: Path,
                 notes: list[str]) -> Path:
    figure = new_figure(6.0, 4.0)
    ax = figure.subplots()
    names = list(dict.fromkeys([*_backend_names(result, evidence), *result.histories]))
    curves = []
    for index, backend in enumerate(names):
        for name, style in (("loss", "-"), ("val_loss", "--")):
            values = _history(result, evidence, backend, name)
            if values is not None:
                curves.append(values)
                ax.plot(np.arange(1, values.size + 1), values, color=f"C{index % 10}",
                        linestyle=style, marker="." if values.size < 30 else None,
                        label=f"{backend} {name}")
    if not curves:
        raise InputError("no loss history in the evidence or in RunResult.histories")
    finite = np.concatenate([c[np.isfinite(c)] for c in curves])
    scale = "log"
    if finite.size == 0 or finite.min() <= 0:
        scale = "linear"
        notes.append(f"loss: {DRAWN_NOTE}a linear y axis (non-positive values rule out log)")
    from matplotlib.ticker import MaxNLocator

    ax.set_yscale(scale)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"loss ({scale})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(f"{result.case}: training curves", fontsize=10)
    return save(figure, out_dir / "loss.png")


_FIGURES: tuple[tuple[str, Callable[..., Path]], ...] = (
    ("objects", _objects_figure),
    ("differences", _differences_figure),
    ("frc", _frc_figure),
    ("loss", _loss_figure),
    ("divergence", divergence_figure),
)


def render_figures(result: RunResult, evidence: Mapping[str, Any], out_dir: Path) -> FigureSet:
    """Draw every figure whose inputs exist; never raise on missing or malformed evidence.

    Parameters
    ----------
    result : RunResult
        The run (case name, backend order, histories).
    evidence : mapping of str to numpy.ndarray
        Arrays keyed as described in the module docstring.
    out_dir : pathlib.Path
        Directory for the PNGs (created if missing).

    Returns
    -------
    FigureSet
        Files written and the reason for each figure or part left out. A figure that fails for
        an unexpected reason is reported in ``skipped`` with the exception, and logged.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    notes: list[str] = []
    for name, draw in _FIGURES:
        try:
            written.append(draw(result, evidence, out_dir, notes))
        except NotApplicable:
            continue
        except InputError as exc:
            notes.append(f"{name}: {exc}")
        except Exception as exc:  # a figure must never cost the bundle
            _log.warning("figure %s failed", name, exc_info=True)
            notes.append(f"{name}: failed ({type(exc).__name__}: {exc})")
    return FigureSet(tuple(written), tuple(notes))


def write_figures(result: RunResult, evidence: Mapping[str, Any], out_dir: Path) -> list[Path]:
    """Draw the figures (see :func:`render_figures`); log what was left out and why.

    Returns
    -------
    list of pathlib.Path
        The PNG files written.
    """
    figures = render_figures(result, evidence, out_dir)
    for note in figures.skipped:
        _log.info("figure not drawn: %s", note)
    return list(figures.written)
