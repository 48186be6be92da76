"""Sub-pixel registration: the translation of one image relative to another. NumPy and
scikit-image only.

Conventions
-----------
- Arrays are ``(H, W)``, axis order ``(y, x)``; pixel ``(0, 0)`` is the top-left corner.
- A shift ``(dy, dx)`` is the displacement of ``test`` relative to ``reference`` in pixels:
  ``test(y, x) ~ reference(y - dy, x - dx)``. :func:`parity.alignment.apply_alignment` undoes it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from parity.metric_inputs import validate_pair

__all__ = ["RegistrationQuantity", "ShiftEstimate", "register_shift"]

#: What :func:`register_shift` correlates.
RegistrationQuantity = Literal["complex", "amplitude", "phase_gradient"]


@dataclass(frozen=True)
class ShiftEstimate:
    """Result of :func:`register_shift`.

    Attributes
    ----------
    shift_px : tuple of float
        ``(dy, dx)`` displacement of test relative to reference, pixels (NaN when an input had
        nothing to register and ``if_constant="nan"`` was asked for).
    error : float
        Translation-invariant normalised RMS error of the registration (Guizar-Sicairos 2008):
        0 for a pure shift, up to 1 for unrelated images.
    quantity : str
        What was correlated (``complex``, ``amplitude`` or ``phase_gradient``; ``none`` when no
        registration could be made).
    """

    shift_px: tuple[float, float]
    error: float
    quantity: str


def register_shift(reference: np.ndarray, test: np.ndarray, *, upsample_factor: int = 100,
                   quantity: RegistrationQuantity = "complex",
                   if_constant: Literal["raise", "nan"] = "raise") -> ShiftEstimate:
    """Sub-pixel translation of ``test`` relative to ``reference`` by cross-correlation.

    Parameters
    ----------
    reference, test : ndarray
        ``(H, W)``, both real or both complex.
    upsample_factor : int
        Registration resolution is ``1 / upsample_factor`` px.
    quantity : {'complex', 'amplitude', 'phase_gradient'}
        What is correlated (after subtracting its mean): the field itself; its modulus; or the
        ramp-invariant neighbour product ``O[:, 1:] conj(O[:, :-1])`` (a linear phase ramp only
        multiplies it by a constant), for bootstrapping when a ramp may be present.
    if_constant : {'raise', 'nan'}
        What happens when the correlated quantity of an input is constant (no feature to
        register): raise ``ValueError``, or return a :class:`ShiftEstimate` of NaNs so that a
        caller trying several candidates can carry on.

    Returns
    -------
    ShiftEstimate
        ``shift_px = (dy, dx)`` with ``test(y, x) ~ reference(y - dy, x - dx)``.

    Raises
    ------
    TypeError, ValueError
        Bad arrays (see :func:`parity.metric_inputs.validate_pair`), unknown ``quantity`` or
        ``if_constant``, ``upsample_factor < 1``, a constant input with ``if_constant="raise"``.

    Notes
    -----
    ``skimage.registration.phase_cross_correlation(ref, test, upsample_factor=...,
    normalization=None)`` (unnormalised cross-correlation with matrix-multiply DFT refinement,
    more robust to noise than phase correlation); skimage returns the shift that registers test
    ONTO reference, which is the negative of the displacement reported here.

    References
    ----------
    .. [1] M. Guizar-Sicairos, S. T. Thurman, J. R. Fienup, "Efficient subpixel image
       registration algorithms", Opt. Lett. 33, 156 (2008), doi:10.1364/OL.33.000156.

    Examples
    --------
    >>> image = np.random.default_rng(0).standard_normal((32, 32))
    >>> estimate = register_shift(image, np.roll(image, (2, -3), axis=(0, 1)))
    >>> [round(v, 6) for v in estimate.shift_px]
    [2.0, -3.0]
    """
    from skimage.registration import phase_cross_correlation

    ref, tst = validate_pair(reference, test, what="register_shift", allow_complex=True, ndim=2)
    if isinstance(upsample_factor, bool) or int(upsample_factor) != upsample_factor \
            or upsample_factor < 1:
        raise ValueError(f"register_shift: upsample_factor={upsample_factor!r}; expected an "
                         "integer >= 1")
    if if_constant not in ("raise", "nan"):
        raise ValueError(f"register_shift: if_constant={if_constant!r}; expected 'raise' or "
                         "'nan'")
    if quantity == "complex":
        images = [ref, tst]
    elif quantity == "amplitude":
        images = [np.abs(ref), np.abs(tst)]
    elif quantity == "phase_gradient":
        images = [a[:, 1:] * np.conj(a[:, :-1]) for a in (ref, tst)]
    else:
        raise ValueError(f"register_shift: quantity={quantity!r}; expected 'complex', "
                         "'amplitude' or 'phase_gradient'")
    images = [a - a.mean() for a in images]
    if not all(np.any(a) for a in images):
        if if_constant == "nan":
            return ShiftEstimate((math.nan, math.nan), math.nan, quantity)
        raise ValueError(f"register_shift: {quantity} of an input is constant; no feature to "
                         "register")
    shift, error, _ = phase_cross_correlation(images[0], images[1],
                                              upsample_factor=int(upsample_factor),
                                              normalization=None)
    dy, dx = (-float(v) + 0.0 for v in shift)  # + 0.0 turns -0.0 into 0.0
    return ShiftEstimate((dy, dx), float(error), quantity)
