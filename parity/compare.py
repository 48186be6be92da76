"""Comparators for the stage ladder: arrays, scalars and curves. NumPy only.

Kind before value: dtype kind (bool, int, uint, float, complex) and shape are checked first, and a
mismatch fails naming both sides; then the NaN/inf masks must agree (a NaN on one side only is a
failure, never skipped); only then ``|actual - expected| <= atol + rtol |expected|`` elementwise
(complex: on the modulus of the complex difference, as ``np.isclose`` does). A precision change
inside a kind (float32 against a float64 oracle) is allowed and reported in the dtypes.

No comparator has a default tolerance: ``rtol`` and ``atol`` are required keyword arguments,
read by the caller from the tolerance table (``parity/tolerances.toml``). A failure reads like a
pytest-regressions report: shape, count and fraction out of tolerance, max/mean/median of the
absolute and relative error, and the worst elements with expected, actual and difference.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Real
from typing import Any

import numpy as np

__all__ = [
    "MAX_WORST",
    "ArrayComparison",
    "CurveComparison",
    "WorstElement",
    "compare_arrays",
    "compare_curves",
    "compare_scalars",
]

#: Worst elements listed per comparison.
MAX_WORST = 10

#: Complex phase errors are reported (never gated) over elements whose expected modulus is at
#: least this fraction of the largest: below it the phase of a float32 value is rounding noise.
PHASE_REPORT_FLOOR_FRACTION = 1e-3

_KINDS = {"b": "bool", "i": "int", "u": "uint", "f": "float", "c": "complex"}


def _tolerance(label: str, value: Any, name: str) -> float:
    if value is None:
        raise TypeError(f"{name}: {label} is required (got None); every comparison states its "
                        "tolerance, read from the tolerance table")
    if isinstance(value, bool) or not isinstance(value, Real | np.floating | np.integer):
        raise TypeError(f"{name}: {label}={value!r}; expected a real number")
    number = float(value)
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"{name}: {label}={number}; expected a finite number >= 0")
    return number


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
    """Outcome of :func:`compare_arrays`.

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
        elements with ``|e| >= PHASE_REPORT_FLOOR_FRACTION max|e|`` and the ``|e|``-weighted
        mean. Reported, not gated.
    worst : tuple of WorstElement
        Up to :data:`MAX_WORST` elements with a non-zero error, the largest ``excess`` first
        (when passing: the elements closest to the bound).
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


def _kind_message(expected: np.ndarray, actual: np.ndarray) -> str:
    problems = []
    if expected.dtype.kind != actual.dtype.kind:
        problems.append(f"dtype kind differs: expected {expected.dtype} "
                        f"({_KINDS[expected.dtype.kind]}), actual {actual.dtype} "
                        f"({_KINDS[actual.dtype.kind]})")
    if expected.shape != actual.shape:
        problems.append(f"shape differs: expected {expected.shape}, actual {actual.shape}")
    return "; ".join(problems)


def _same_nonfinite(expected: np.ndarray, actual: np.ndarray) -> np.ndarray:
    """Elementwise: both NaN, or the same infinity (per component for complex)."""
    def same(e: np.ndarray, a: np.ndarray) -> np.ndarray:
        return (e == a) | (np.isnan(e) & np.isnan(a))

    if expected.dtype.kind == "c":
        return same(expected.real, actual.real) & same(expected.imag, actual.imag)
    return same(expected, actual)


def _evaluate(name: str, expected: Any, actual: Any, rtol: Any,
              atol: Any) -> tuple[ArrayComparison, np.ndarray | None]:
    """The comparison and the boolean ``(shape)`` mask of failing elements (None on kind
    mismatch)."""
    rtol_v, atol_v = _tolerance("rtol", rtol, name), _tolerance("atol", atol, name)
    exp, act = np.asarray(expected), np.asarray(actual)
    for label, array in (("expected", exp), ("actual", act)):
        if array.dtype.kind not in _KINDS:
            raise TypeError(f"{name}: {label} has dtype {array.dtype}; expected bool, integer, "
                            "float or complex")
    head = {"name": name, "rtol": rtol_v, "atol": atol_v, "expected_dtype": str(exp.dtype),
            "actual_dtype": str(act.dtype), "expected_shape": tuple(exp.shape),
            "actual_shape": tuple(act.shape)}
    problem = _kind_message(exp, act)
    if problem:
        return ArrayComparison(passed=False, kind_ok=False, message=problem, **head), None
    work = np.complex128 if exp.dtype.kind == "c" else np.float64
    # Integers compare exactly in float64 up to 2**53; beyond that the check is approximate.
    e, a = exp.astype(work).ravel(), act.astype(work).ravel()
    size = e.size
    if size == 0:
        return ArrayComparison(passed=True, kind_ok=True, message="ok", count_out=0,
                               nonfinite_mismatch=0, **head), np.zeros(exp.shape, dtype=bool)
    finite = np.isfinite(e) & np.isfinite(a)
    mismatch = ~finite & ~_same_nonfinite(e, a)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        abs_err = np.where(finite, np.abs(a - e), np.nan)
        bound = atol_v + rtol_v * np.abs(e)
        out = (finite & (abs_err > bound)) | mismatch
        rel = np.where(finite & (e != 0), abs_err / np.abs(e), np.nan)
        excess = np.where(bound > 0, abs_err / bound, np.where(abs_err > 0, np.inf, 0.0))
    excess = np.where(mismatch, np.inf, np.where(finite, excess, -np.inf))
    fields: dict[str, Any] = {}
    if finite.any():
        fe, fa, ferr = e[finite], a[finite], abs_err[finite]
        frel = rel[finite & (e != 0)]
        # relative RMSE and cosine are scale-free: divide by the largest magnitude first so that
        # squares of values near the float64 limit do not overflow.
        scale = max(float(np.max(np.abs(fe))), float(np.max(np.abs(fa))))
        scale = scale if 0 < scale < math.inf else 1.0  # |complex| can overflow to inf
        se, sa = fe / scale, fa / scale
        err_energy = float(np.sum(np.abs(sa - se) ** 2))
        ref_energy = float(np.sum(np.abs(se) ** 2))
        norm_e, norm_a = math.sqrt(ref_energy), float(np.linalg.norm(sa))
        fields.update(
            max_abs_error=float(ferr.max()), mean_abs_error=float(ferr.mean()),
            median_abs_error=float(np.median(ferr)),
            max_rel_error=float(frel.max()) if frel.size else None,
            mean_rel_error=float(frel.mean()) if frel.size else None,
            median_rel_error=float(np.median(frel)) if frel.size else None,
            relative_rmse=(math.sqrt(err_energy / ref_energy) if ref_energy > 0
                           else (0.0 if err_energy == 0 else math.inf)),
            cosine_similarity=(float(np.real(np.vdot(se, sa))) / (norm_e * norm_a)
                               if norm_e > 0 and norm_a > 0
                               else (1.0 if norm_e == norm_a else 0.0)),
        )
        if exp.dtype.kind == "c":
            amp_e = np.abs(fe)
            phase_err = np.abs(np.angle(fa * np.conj(fe)))
            significant = amp_e >= PHASE_REPORT_FLOOR_FRACTION * amp_e.max()
            fields.update(
                max_amplitude_error=float(np.max(np.abs(np.abs(fa) - amp_e))),
                mean_amplitude_error=float(np.mean(np.abs(np.abs(fa) - amp_e))),
                max_phase_error_rad=(float(phase_err[significant].max())
                                     if amp_e.max() > 0 else None),
                weighted_phase_error_rad=(float(np.sum(amp_e * phase_err) / amp_e.sum())
                                          if amp_e.sum() > 0 else None),
            )
    n_worst = min(MAX_WORST, size)
    order = np.argpartition(-excess, n_worst - 1)[:n_worst] if n_worst < size \
        else np.arange(size)
    order = order[np.argsort(-excess[order], kind="stable")]
    worst = tuple(
        WorstElement(tuple(int(i) for i in np.unravel_index(k, exp.shape)),
                     _scalar(e[k]), _scalar(a[k]), float(abs_err[k]),
                     None if not np.isfinite(rel[k]) else float(rel[k]), float(excess[k]))
        for k in order if excess[k] > 0)  # exact matches and matching NaN/inf are not listed
    count_out, n_mismatch = int(out.sum()), int(mismatch.sum())
    passed = count_out == 0
    if passed:
        message = "ok"
    else:
        parts = [f"{count_out} of {size} elements out of tolerance"]
        if n_mismatch:
            parts.append(f"{n_mismatch} with NaN/inf on one side only or different infinities")
        message = "; ".join(parts)
    comparison = ArrayComparison(
        passed=passed, kind_ok=True, message=message, size=size, count_out=count_out,
        fraction_out=count_out / size, nonfinite_mismatch=n_mismatch, worst=worst,
        **fields, **head)
    return comparison, out.reshape(exp.shape)


def _scalar(value: np.generic) -> float | complex:
    return complex(value) if np.iscomplexobj(value) else float(value)


def compare_arrays(name: str, expected: np.ndarray, actual: np.ndarray, *, rtol: float,
                   atol: float) -> ArrayComparison:
    """Compare ``actual`` with ``expected``: kind and shape, non-finite masks, then values.

    Parameters
    ----------
    name : str
        What is compared (appears in every message).
    expected : ndarray
        The reference (oracle or baseline backend); any shape, bool/int/float/complex.
    actual : ndarray
        The array under test.
    rtol, atol : float
        Required, ``>= 0``: ``|actual - expected| <= atol + rtol |expected|`` elementwise
        (asymmetric: relative to ``expected``). Complex: ``|.|`` is the complex modulus.

    Returns
    -------
    ArrayComparison
        ``passed`` False on a kind or shape mismatch (named in ``message``, both sides given),
        on NaN/inf present on one side only, or on any element out of tolerance.

    Raises
    ------
    TypeError
        ``rtol`` or ``atol`` missing (None) or not a number; a non-numeric dtype.
    ValueError
        A negative or non-finite tolerance.

    Examples
    --------
    >>> result = compare_arrays("x", np.array([1.0, 2.0]), np.array([1.0, 2.5]), rtol=0.0,
    ...                         atol=0.1)
    >>> result.passed, result.count_out, result.worst[0].index
    (False, 1, (1,))
    """
    return _evaluate(name, expected, actual, rtol, atol)[0]


def compare_scalars(name: str, expected: Any, actual: Any, *, rtol: float,
                    atol: float) -> ArrayComparison:
    """:func:`compare_arrays` for two scalars (Python or NumPy numbers, or 0-d arrays).

    A Python ``int`` is kind ``int`` and a ``float`` kind ``float``: comparing one with the
    other fails on kind, as for arrays.

    Raises
    ------
    ValueError
        Either value is not a scalar.
    """
    for label, value in (("expected", expected), ("actual", actual)):
        if np.ndim(value) != 0:
            raise ValueError(f"{name}: {label} has shape {np.shape(value)}; expected a scalar "
                             "(use compare_arrays)")
    return compare_arrays(name, np.asarray(expected), np.asarray(actual), rtol=rtol, atol=atol)


@dataclass(frozen=True)
class CurveComparison:
    """Outcome of :func:`compare_curves`: a band check on a 1-D curve (e.g. loss per step).

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


def compare_curves(name: str, expected: np.ndarray, actual: np.ndarray, *, atol: float,
                   rtol: float) -> CurveComparison:
    """Band check of a curve (loss or metric per step) against a reference curve.

    Parameters
    ----------
    name : str
        What is compared.
    expected, actual : ndarray
        ``(steps,)`` real curves (a length mismatch fails, naming both lengths).
    atol, rtol : float
        Required: step ``t`` is inside when ``|a_t - e_t| <= atol + rtol |e_t|``.

    Returns
    -------
    CurveComparison

    Raises
    ------
    TypeError
        Missing tolerances, a non-numeric or complex curve.
    ValueError
        A curve that is not 1-D.
    """
    for label, value in (("expected", expected), ("actual", actual)):
        array = np.asarray(value)
        if array.ndim != 1:
            raise ValueError(f"{name}: {label} curve has shape {array.shape}; expected 1-D")
        if array.dtype.kind == "c":
            raise TypeError(f"{name}: {label} curve is complex ({array.dtype}); expected real")
    result, out = _evaluate(name, expected, actual, rtol, atol)
    if out is None or result.size == 0:
        return CurveComparison(result, None, None, None, None, None)
    exp, act = np.asarray(expected, dtype=np.float64), np.asarray(actual, dtype=np.float64)
    outside = np.flatnonzero(out)
    first = int(outside[0]) if outside.size else None
    with np.errstate(invalid="ignore"):
        deviation = np.abs(act - exp)
    peak = int(np.nanargmax(deviation)) if np.isfinite(deviation).any() else None
    return CurveComparison(
        result, first,
        None if first is None else float(exp[first]),
        None if first is None else float(act[first]),
        None if first is None else result.atol + result.rtol * abs(float(exp[first])),
        peak)
