"""Records of the stage-ladder comparisons: :class:`ArrayComparison` (with its
:class:`WorstElement` list) and :class:`CurveComparison`. NumPy only.

The comparators that build them are in :mod:`parity.compare`. A record reads like a small report
(house rule 11): ``summary()`` is one line, ``report()`` several, and ``to_dict()`` holds the same
numbers, JSON-safe, for ``report.json``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["ArrayComparison", "CurveComparison", "WorstElement"]


def _plain(value: Any) -> Any:
    """JSON-safe scalar: Python float/int, complex as ``[re, im]``, NaN/inf as None."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, complex | np.complexfloating):
        return [_plain(float(value.real)), _plain(float(value.imag))]
    if isinstance(value, int | np.integer):
        return int(value)
    number = float(value)
    return number if math.isfinite(number) else None


@dataclass(frozen=True)
class WorstElement:
    """One element far from its expected value.

    Attributes
    ----------
    index : tuple of int
        Position in the array (C order).
    expected, actual : float or complex
        The two values (complex for complex arrays).
    abs_error : float
        ``|actual - expected|`` (NaN where a non-finite value does not match).
    rel_error : float or None
        ``abs_error / |expected|``; None where ``expected == 0``.
    excess : float
        ``abs_error / (atol + rtol |expected|)``: > 1 means out of tolerance (inf for a
        non-finite mismatch or a non-zero error against a zero bound).
    """

    index: tuple[int, ...]
    expected: float | complex
    actual: float | complex
    abs_error: float
    rel_error: float | None
    excess: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-able: complex values as ``[re, im]``, NaN/inf as None."""
        return {"index": list(self.index), "expected": _plain(self.expected),
                "actual": _plain(self.actual), "diff": _plain(self.abs_error),
                "rel": _plain(self.rel_error), "excess": _plain(self.excess)}


@dataclass(frozen=True)
class ArrayComparison:
    """Outcome of :func:`parity.compare.compare_arrays`.

    Attributes
    ----------
    name : str
        What was compared.
    passed : bool
        Kind, shape and non-finite masks agree and every element is within tolerance.
    kind_ok : bool
        Dtype kind and shape agree (when False, the value fields are None).
    message : str
        Why it failed, or ``"ok"``.
    rtol, atol : float
        The tolerance applied.
    expected_dtype, actual_dtype : str
    expected_shape, actual_shape : tuple of int
    size : int
        Elements compared (0 when the kinds differ).
    count_out : int or None
        Elements out of tolerance, non-finite mismatches included.
    fraction_out : float or None
        ``count_out / size``.
    nonfinite_mismatch : int or None
        Elements where NaN/inf appear on one side only (or as different infinities).
    max_abs_error, mean_abs_error, median_abs_error : float or None
        Over the elements finite on both sides.
    max_rel_error, mean_rel_error, median_rel_error : float or None
        ``|a - e| / |e|`` over those of them with ``e != 0``.
    relative_rmse : float or None
        ``sqrt(sum |a - e|^2 / sum |e|^2)`` (inf when ``e`` is all zero and ``a`` is not).
    cosine_similarity : float or None
        ``Re sum a conj(e) / (||a|| ||e||)``; 1 when both are all zero, 0 when one is.
    max_amplitude_error, mean_amplitude_error : float or None
        Complex only: ``||a| - |e||``.
    max_phase_error_rad, weighted_phase_error_rad : float or None
        Complex only: ``|angle(a conj(e))|`` (safe across the +-pi wrap), the max over
        elements with ``|e| >= PHASE_REPORT_FLOOR_FRACTION max|e|`` (:mod:`parity.compare`) and
        the ``|e|``-weighted mean. Reported, not gated.
    worst : tuple of WorstElement
        Up to :data:`parity.compare.MAX_WORST` elements with a non-zero error, the largest
        ``excess`` first (when passing: the elements closest to the bound).
    """

    name: str
    passed: bool
    kind_ok: bool
    message: str
    rtol: float
    atol: float
    expected_dtype: str
    actual_dtype: str
    expected_shape: tuple[int, ...]
    actual_shape: tuple[int, ...]
    size: int = 0
    count_out: int | None = None
    fraction_out: float | None = None
    nonfinite_mismatch: int | None = None
    max_abs_error: float | None = None
    mean_abs_error: float | None = None
    median_abs_error: float | None = None
    max_rel_error: float | None = None
    mean_rel_error: float | None = None
    median_rel_error: float | None = None
    relative_rmse: float | None = None
    cosine_similarity: float | None = None
    max_amplitude_error: float | None = None
    mean_amplitude_error: float | None = None
    max_phase_error_rad: float | None = None
    weighted_phase_error_rad: float | None = None
    worst: tuple[WorstElement, ...] = ()

    def summary(self) -> str:
        """One line: verdict, what, kinds and shapes, then the error statistics."""
        verdict = "PASS" if self.passed else "FAIL"
        head = (f"{verdict} {self.name}: shape {self.expected_shape} {self.expected_dtype} "
                f"(expected) vs {self.actual_shape} {self.actual_dtype} (actual)")
        if not self.kind_ok:
            return f"{head}: {self.message}"
        tol = f"[rtol={self.rtol:g}, atol={self.atol:g}]"
        if self.size == 0:
            return f"{head}: empty {tol}"
        stats = (f"{self.count_out}/{self.size} out of tolerance "
                 f"({100 * (self.fraction_out or 0.0):.3g}%), max abs "
                 f"{_fmt(self.max_abs_error)}, max rel {_fmt(self.max_rel_error)}, rel rmse "
                 f"{_fmt(self.relative_rmse)}, cosine {_fmt(self.cosine_similarity, 8)}")
        if self.nonfinite_mismatch:
            stats = f"{self.nonfinite_mismatch} NaN/inf on one side only; " + stats
        if self.max_phase_error_rad is not None:
            stats += (f", max amp err {_fmt(self.max_amplitude_error)}, max phase err "
                      f"{_fmt(self.max_phase_error_rad)} rad")
        if not self.passed and self.worst:
            w = self.worst[0]
            stats += (f"; worst at {list(w.index)}: expected {w.expected!r}, actual "
                      f"{w.actual!r}, diff {_fmt(w.abs_error)}")
        return f"{head}: {stats} {tol}"

    def report(self) -> str:
        """Several lines, pytest-regressions style: the summary, then the worst elements."""
        lines = [self.summary()]
        if self.kind_ok and self.size:
            lines.append(f"  abs error: max {_fmt(self.max_abs_error)}, mean "
                         f"{_fmt(self.mean_abs_error)}, median {_fmt(self.median_abs_error)}")
            lines.append(f"  rel error: max {_fmt(self.max_rel_error)}, mean "
                         f"{_fmt(self.mean_rel_error)}, median {_fmt(self.median_rel_error)}")
            if self.worst:
                lines.append("  worst: index | expected | actual | diff | excess")
                lines += [f"    {list(w.index)} | {w.expected!r} | {w.actual!r} | "
                          f"{_fmt(w.abs_error)} | {_fmt(w.excess)}" for w in self.worst]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict: numbers as Python floats/ints, NaN and inf as None, complex values as
        ``[re, im]``, ``worst`` as a list of dicts. The headline numbers come first."""
        keys = ("name", "passed", "kind_ok", "message", "max_abs_error", "max_rel_error",
                "fraction_out", "cosine_similarity", "relative_rmse", "count_out", "size",
                "nonfinite_mismatch", "mean_abs_error", "median_abs_error", "mean_rel_error",
                "median_rel_error", "max_amplitude_error", "mean_amplitude_error",
                "max_phase_error_rad", "weighted_phase_error_rad", "rtol", "atol",
                "expected_dtype", "actual_dtype")
        out: dict[str, Any] = {key: _plain(getattr(self, key)) for key in keys}
        out["expected_shape"] = list(self.expected_shape)
        out["actual_shape"] = list(self.actual_shape)
        out["worst"] = [w.to_dict() for w in self.worst]
        return out


def _fmt(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}g}"


@dataclass(frozen=True)
class CurveComparison:
    """Outcome of :func:`parity.compare.compare_curves`: a band check on a 1-D curve (e.g. loss
    per step).

    Attributes
    ----------
    elementwise : ArrayComparison
        The full comparison (statistics, worst steps).
    first_step_outside : int or None
        First step outside the band ``expected +- (atol + rtol |expected|)`` (or with NaN/inf
        on one side only); None when every step is inside.
    first_expected, first_actual, first_band : float or None
        The values and the band half-width at that step.
    step_of_max_abs_error : int or None
        Where ``|actual - expected|`` peaks.
    """

    elementwise: ArrayComparison
    first_step_outside: int | None
    first_expected: float | None
    first_actual: float | None
    first_band: float | None
    step_of_max_abs_error: int | None

    @property
    def passed(self) -> bool:
        """Every step inside the band (and kinds and lengths agree)."""
        return self.elementwise.passed

    @property
    def name(self) -> str:
        """What was compared."""
        return self.elementwise.name

    def summary(self) -> str:
        """One line: verdict, first step outside the band, how many, the largest deviation."""
        result = self.elementwise
        if not result.kind_ok:
            return result.summary()
        verdict = "PASS" if self.passed else "FAIL"
        text = f"{verdict} {self.name}: {result.size} steps"
        if self.first_step_outside is not None:
            text += (f", first outside the band at step {self.first_step_outside} (expected "
                     f"{_fmt(self.first_expected, 6)}, actual {_fmt(self.first_actual, 6)}, "
                     f"band +-{_fmt(self.first_band)}); {result.count_out} steps outside")
        if self.step_of_max_abs_error is not None:
            text += (f", max |diff| {_fmt(result.max_abs_error)} at step "
                     f"{self.step_of_max_abs_error}")
        return f"{text} [rtol={result.rtol:g}, atol={result.atol:g}]"

    def to_dict(self) -> dict[str, Any]:
        """:meth:`ArrayComparison.to_dict` plus the curve fields."""
        return {**self.elementwise.to_dict(), "first_step_outside": self.first_step_outside,
                "first_expected": _plain(self.first_expected),
                "first_actual": _plain(self.first_actual),
                "first_band": _plain(self.first_band),
                "step_of_max_abs_error": self.step_of_max_abs_error}
