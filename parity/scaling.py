"""Photon and statistical scaling of diffraction amplitudes (PtychoPINN ``normalize_data`` and
``calculate_intensity_scale``), computed once in float64 and handed to both backends.

Three scalings are kept apart, as PtychoPINN's ``DATA_NORMALIZATION_GUIDE`` insists:

* statistical normalisation ``c`` makes the mean per-pattern ``sum X**2`` equal ``(N/2)**2``;
* the physics intensity scale ``s = sqrt(nphotons) / (N/2)`` then maps normalised amplitudes back
  to counts (``s * X`` is ~ sqrt(counts)); the model input is ``s * X`` and its first layer divides
  by ``s``;
* display scaling belongs to the reports alone.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["intensity_scale", "normalisation_factor", "simulation_scale"]


def normalisation_factor(diffraction: np.ndarray) -> float:
    """Statistical normalisation ``c = sqrt((N/2)**2 / mean_b sum_xy X**2)``.

    Parameters
    ----------
    diffraction : numpy.ndarray
        ``(..., N, N)`` amplitudes, any real dtype (accumulated in float64).

    Returns
    -------
    float
        The factor that multiplies the amplitudes.

    Raises
    ------
    ValueError
        If the patterns are all zero or not finite.
    """
    data = np.asarray(diffraction, dtype=np.float64)
    N = data.shape[-1]
    energy = np.mean(np.sum(data**2, axis=(-2, -1)))
    if not math.isfinite(energy) or energy <= 0:
        raise ValueError(f"mean pattern energy is {energy}; cannot normalise diffraction")
    return math.sqrt((N / 2) ** 2 / energy)


def intensity_scale(nphotons: float, N: int) -> float:
    """Closed-form physics scale used for training: ``s = sqrt(nphotons) / (N/2)``.

    Exact when the data were normalised with :func:`normalisation_factor`.
    """
    if not (math.isfinite(nphotons) and nphotons > 0):
        raise ValueError(f"nphotons={nphotons}; expected a positive finite number")
    return math.sqrt(nphotons) / (N / 2)


def simulation_scale(nphotons: float, *, mean_exit_energy: float) -> float:
    """Data-derived scale for simulation: ``s = sqrt(nphotons / mean_b sum_xy |psi|**2)``.

    ``mean_exit_energy`` is the mean over patterns of ``sum |psi|**2``. With the orthonormal FFT
    (Parseval) the expected counts per pattern are then ``nphotons``.
    """
    if not (math.isfinite(nphotons) and nphotons > 0):
        raise ValueError(f"nphotons={nphotons}; expected a positive finite number")
    if not (math.isfinite(mean_exit_energy) and mean_exit_energy > 0):
        raise ValueError(f"mean exit-wave energy is {mean_exit_energy}; cannot scale")
    return math.sqrt(nphotons / mean_exit_energy)
