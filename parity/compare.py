"""Comparators for the stage ladder: arrays, scalars and curves. NumPy only.

Kind before value: dtype kind (bool, int, uint, float, complex) and shape are checked first, and a
mismatch fails naming both sides; then the NaN/inf masks must agree (a NaN on one side only is a
failure, never skipped); only then ``|actual - expected| <= atol + rtol |expected|`` elementwise
(complex: on the modulus of the complex difference, as ``np.isclose`` does). A precision change
inside a kind (float32 against a float64 oracle) is allowed and reported in the dtypes.

No comparator has a default tolerance: ``rtol`` and ``atol`` are required keyword arguments,
read by the caller from the tolerance table (``parity/tolerances.toml``). A failure reads like a
pytest-regressions report: shape, count and fraction out of tolerance, max/mean/median of the
absolute and relative error, and the worst elements with expected, actual and difference. The
records are defined in :mod:`parity.comparison_results`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Real
from typing import Any

import numpy as np

from parity.comparison_results import ArrayComparison, CurveComparison, WorstElement

__all__ = [
    "MAX_WORST",
    "PHASE_REPORT_FLOOR_FRACTION",
    "ElementErrors",
    "compare_arrays",
    "compare_curves",
    "compare_scalars",
    "element_errors",
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


@dataclass(frozen=True)
class ElementErrors:
    """The elementwise rule of every array comparison, per element of the flattened arrays.

    Attributes
    ----------
    finite : numpy.ndarray
        bool: both sides finite.
    mismatch : numpy.ndarray
        bool: NaN/inf on one side only, or different non-finite values (always out).
    abs_error : numpy.ndarray
        float64 ``|actual - expected|`` (complex: modulus of the difference); NaN unless finite.
    bound : numpy.ndarray
        float64 ``atol + rtol |expected|``.
    out : numpy.ndarray
        bool: beyond the bound, or a mismatch.
    excess : numpy.ndarray
        ``abs_error / bound`` (> 1 is out); ``inf`` for a mismatch or an error against a zero
        bound, ``-inf`` where both sides hold the same non-finite value.
    """

    finite: np.ndarray
    mismatch: np.ndarray
    abs_error: np.ndarray
    bound: np.ndarray
    out: np.ndarray
    excess: np.ndarray


def element_errors(expected: Any, actual: Any, *, rtol: float, atol: float) -> ElementErrors:
    """:class:`ElementErrors` of ``actual`` against ``expected`` (same shape; flattened, in
    float64 or complex128). The one statement of the elementwise rule: the comparators and the
    review figures both call it."""
    kind = np.result_type(np.asarray(expected).dtype, np.asarray(actual).dtype).kind
    work = np.complex128 if kind == "c" else np.float64
    e = np.asarray(expected).astype(work, copy=False).ravel()
    a = np.asarray(actual).astype(work, copy=False).ravel()
    finite = np.isfinite(e) & np.isfinite(a)
    mismatch = ~finite & ~_same_nonfinite(e, a)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        abs_err = np.where(finite, np.abs(a - e), np.nan)
        bound = atol + rtol * np.abs(e)
        out = (finite & (abs_err > bound)) | mismatch
        excess = np.where(bound > 0, abs_err / bound, np.where(abs_err > 0, np.inf, 0.0))
    excess = np.where(mismatch, np.inf, np.where(finite, excess, -np.inf))
    return ElementErrors(finite, mismatch, abs_err, bound, out, excess)


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
    errors = element_errors(e, a, rtol=rtol_v, atol=atol_v)
    finite, mismatch, out = errors.finite, errors.mismatch, errors.out
    abs_err, excess = errors.abs_error, errors.excess
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        rel = np.where(finite & (e != 0), abs_err / np.abs(e), np.nan)
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
