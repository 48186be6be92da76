"""Drawing primitives shared by the review figures: headless matplotlib figures (Agg, no pyplot
state), PNG output, colour limits that ignore non-finite values."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["DRAWN_NOTE", "FIGURE_DPI", "PHASE_MASK_FRACTION", "InputError", "NotApplicable",
           "faint", "limits", "new_figure", "save"]

#: Start of a note about a figure that WAS drawn, differently from usual, right after its
#: ``"<figure>: "`` (``loss: drawn with a linear y axis ...``); every other note says why
#: something was left out.
DRAWN_NOTE = "drawn with "

#: Small PNGs: a bundle is an artifact people download.
FIGURE_DPI: int = 100

#: Phase differences are blanked where either amplitude is below this fraction of its maximum:
#: the phase of a near-zero value (uncovered border, zero fill) is noise, not a divergence.
PHASE_MASK_FRACTION: float = 0.01


class InputError(Exception):
    """A figure's inputs are missing or unusable; the message says which (it becomes the
    figure's note in the bundle, not an error of the run)."""


class NotApplicable(Exception):  # noqa: N818 - a signal, not an error
    """The figure has no place in this run (e.g. a divergence figure for a run that passed): it
    is left out without a note."""


def faint(amplitude: np.ndarray) -> np.ndarray:
    """Bool mask of the elements whose phase is not drawn: amplitude below
    :data:`PHASE_MASK_FRACTION` of its largest finite value (NaN-tolerant, unlike the metrics'
    :func:`parity.complex_comparison.amplitude_floor_mask`, which refuses NaN)."""
    return amplitude < PHASE_MASK_FRACTION * np.nanmax(amplitude, initial=0.0)


def limits(arrays: list[np.ndarray]) -> tuple[float, float]:
    """Shared colour limits ``(low, high)`` over the finite values of ``arrays``; ``(0, 1)`` when
    there are none, widened by 0.5 either side when they are all equal."""
    finite = [a[np.isfinite(a)] for a in arrays]
    finite = [f for f in finite if f.size]
    if not finite:
        return 0.0, 1.0
    low, high = min(float(f.min()) for f in finite), max(float(f.max()) for f in finite)
    return (low, high) if high > low else (low - 0.5, high + 0.5)


def new_figure(width_in: float, height_in: float) -> Any:
    """A matplotlib ``Figure`` on its own Agg canvas (thread-safe; pyplot is never touched)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width_in, height_in), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def save(figure: Any, path: Path) -> Path:
    """Write ``figure`` as a PNG at :data:`FIGURE_DPI`; returns ``path``."""
    figure.savefig(path, dpi=FIGURE_DPI, format="png")
    return path
