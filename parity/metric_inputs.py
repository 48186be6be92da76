"""Input checks shared by the metrics, the FRC, the alignment fits and the complex comparisons.

NumPy only. Each check looks at kind before value (house rule 9): dtype kind, rank and shape, then
finiteness, and names the function (``what``), the argument, what was expected and what it got.
Nothing is coerced quietly: a complex array where a real image is meant is rejected rather than
having its imaginary part dropped, and a data range is never guessed from the dtype.
"""

from __future__ import annotations

import math
from numbers import Real
from typing import Any

import numpy as np

__all__ = [
    "validate_amplitude_floor_fraction",
    "validate_complex_images",
    "validate_data_range",
    "validate_pair",
    "validate_weights",
]


def validate_pair(reference: Any, test: Any, *, what: str, allow_complex: bool,
                  ndim: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Check a ``(reference, test)`` pair and return it as float64 (or complex128).

    Parameters
    ----------
    reference, test : array_like
        Numeric arrays of equal shape, both real or both complex.
    what : str
        Name of the calling function, quoted in every error.
    allow_complex : bool
        False where a real image is meant (the caller chooses amplitude or phase).
    ndim : int, optional
        Required rank; any rank when None.

    Returns
    -------
    tuple of ndarray
        ``(reference, test)`` copies, float64 or complex128, same shape as the inputs.

    Raises
    ------
    TypeError
        Non-numeric dtype; complex input when ``allow_complex`` is False; one real and one
        complex.
    ValueError
        Wrong rank, an empty array, NaN/inf (the count and the first index are named), shapes
        that differ.
    """
    arrays = {"reference": np.asarray(reference), "test": np.asarray(test)}
    for label, array in arrays.items():
        if array.dtype.kind not in "iufc":
            raise TypeError(f"{what}: {label} has dtype {array.dtype}; expected a real or "
                            "complex numeric array")
        if array.dtype.kind == "c" and not allow_complex:
            # Never drop an imaginary part quietly: the caller chooses amplitude or phase.
            raise TypeError(f"{what}: {label} is complex ({array.dtype}); this metric takes a "
                            "real image: pass np.abs(...) or np.angle(...) explicitly")
        if ndim is not None and array.ndim != ndim:
            raise ValueError(f"{what}: {label} has shape {array.shape}; expected a {ndim}-D "
                             "array")
        if array.size == 0:
            raise ValueError(f"{what}: {label} is empty (shape {array.shape})")
        finite = np.isfinite(array)
        if not finite.all():
            first = tuple(int(i) for i in np.argwhere(~finite)[0])
            raise ValueError(f"{what}: {label} has {int((~finite).sum())} non-finite value(s), "
                             f"the first at index {first}; the metric is undefined")
    ref, tst = arrays["reference"], arrays["test"]
    if ref.shape != tst.shape:
        raise ValueError(f"{what}: reference has shape {ref.shape} but test has shape "
                         f"{tst.shape}; expected equal shapes")
    if (ref.dtype.kind == "c") != (tst.dtype.kind == "c"):
        raise TypeError(f"{what}: reference is {ref.dtype} but test is {tst.dtype}; expected "
                        "both real or both complex")
    dtype = np.complex128 if ref.dtype.kind == "c" else np.float64
    return ref.astype(dtype), tst.astype(dtype)


def validate_complex_images(reference: Any, test: Any, *,
                            what: str) -> tuple[np.ndarray, np.ndarray]:
    """:func:`validate_pair` for two ``(H, W)`` complex objects, returned as complex128.

    Raises
    ------
    TypeError
        As :func:`validate_pair`, or real arrays (an amplitude or phase passed for the field).
    ValueError
        As :func:`validate_pair`, or a rank other than 2.
    """
    ref, tst = validate_pair(reference, test, what=what, allow_complex=True, ndim=2)
    if ref.dtype.kind != "c":
        raise TypeError(f"{what}: got real arrays ({np.asarray(reference).dtype}); expected "
                        "complex objects (pass the complex field, not an amplitude or phase)")
    return ref, tst


def validate_data_range(data_range: Any, *, what: str) -> float:
    """The data range ``L`` of a metric as a float: a finite real number > 0.

    Raises
    ------
    TypeError
        None, a bool, or not a real number (it is never guessed from the dtype).
    ValueError
        Not finite, or ``<= 0``.
    """
    if data_range is None or isinstance(data_range, bool) or not isinstance(
            data_range, Real | np.floating | np.integer):
        raise TypeError(f"{what}: data_range={data_range!r}; expected a positive real number "
                        "(it is never guessed from the dtype)")
    value = float(data_range)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{what}: data_range={value}; expected a finite number > 0")
    return value


def validate_weights(weights: Any, shape: tuple[int, ...], *, what: str) -> np.ndarray:
    """Fit weights as float64 of ``shape``; all ones when ``weights`` is None.

    Parameters
    ----------
    weights : array_like or None
        Bool or non-negative real, of ``shape`` (e.g. a trusted-region mask).
    shape : tuple of int
        The shape of the images being fitted.
    what : str
        Name of the calling function, quoted in every error.

    Returns
    -------
    ndarray
        ``shape`` float64, ``>= 0``, not all zero.

    Raises
    ------
    TypeError
        A dtype other than bool, integer or float.
    ValueError
        Wrong shape, NaN/inf or negative values, or all zero (nothing to fit).
    """
    if weights is None:
        return np.ones(shape, dtype=np.float64)
    w = np.asarray(weights)
    if w.shape != shape:
        raise ValueError(f"{what}: weights have shape {w.shape}; expected {shape}")
    if w.dtype.kind not in "biuf":
        raise TypeError(f"{what}: weights have dtype {w.dtype}; expected bool or real")
    w = w.astype(np.float64)
    if not np.isfinite(w).all() or (w < 0).any():
        raise ValueError(f"{what}: weights must be finite and >= 0")
    if not w.any():
        raise ValueError(f"{what}: all weights are zero; nothing to fit")
    return w


def validate_amplitude_floor_fraction(fraction: Any, *, what: str) -> float:
    """An amplitude floor, as a fraction of the peak amplitude, as a float in ``[0, 1)``.

    Raises
    ------
    TypeError
        None, a bool, or not a real number (the floor is always chosen by the caller).
    ValueError
        Outside ``[0, 1)`` (1 or more would leave no pixel with a phase to compare).
    """
    if fraction is None or isinstance(fraction, bool) or not isinstance(
            fraction, Real | np.floating | np.integer):
        raise TypeError(f"{what}: amplitude_floor_fraction={fraction!r}; expected a real number "
                        "in [0, 1)")
    value = float(fraction)
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{what}: amplitude_floor_fraction={value}; expected [0, 1)")
    return value
