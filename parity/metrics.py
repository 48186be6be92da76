"""Image quality metrics for reconstructions: MAE, RMSE, PSNR and SSIM.

NumPy, SciPy and scikit-image only. Every metric takes the reference first (``reference, test``),
accumulates in float64 whatever the input dtype, and rejects non-finite input, mismatched shapes
and complex input where a real image is meant (:mod:`parity.metric_inputs`). A metric that needs a
data range gets it as an argument: nothing is guessed from the dtype
(``skimage.metrics.peak_signal_noise_ratio`` guesses 255 or 1 when ``data_range`` is missing;
PtychoPINN's TF evaluator uses OpenCV's 255). The Fourier ring correlation is in
:mod:`parity.frc`.
"""

from __future__ import annotations

import math

import numpy as np

from parity.metric_inputs import validate_data_range, validate_pair

__all__ = ["SSIM_WINDOW_PX", "mae", "psnr", "rmse", "ssim"]

#: Side of SSIM's uniform window (Wang et al. 2004 as implemented by scikit-image's default).
SSIM_WINDOW_PX = 7


def mae(reference: np.ndarray, test: np.ndarray) -> float:
    """Mean absolute error ``mean|test - reference|``.

    Parameters
    ----------
    reference, test : ndarray
        Same shape, any rank; both real or both complex (complex: modulus of the difference).

    Returns
    -------
    float
        In the units of the inputs.

    Raises
    ------
    TypeError
        Non-numeric input, or one real and one complex.
    ValueError
        Shapes differ, an array is empty or holds NaN/inf.

    Examples
    --------
    >>> mae(np.array([0.0, 1.0, 2.0]), np.array([0.0, 2.0, 0.0]))
    1.0
    """
    ref, tst = validate_pair(reference, test, what="mae", allow_complex=True)
    return float(np.mean(np.abs(tst - ref)))


def rmse(reference: np.ndarray, test: np.ndarray) -> float:
    """Root-mean-square error ``sqrt(mean|test - reference|^2)``.

    Parameters, returns and errors as :func:`mae`.

    Examples
    --------
    >>> rmse(np.array([0.0, 0.0]), np.array([3.0, 4.0]))  # sqrt((9 + 16) / 2)
    3.5355339059327378
    """
    ref, tst = validate_pair(reference, test, what="rmse", allow_complex=True)
    return float(np.sqrt(np.mean(np.abs(tst - ref) ** 2)))


def psnr(reference: np.ndarray, test: np.ndarray, *, data_range: float) -> float:
    """Peak signal-to-noise ratio ``10 log10(L^2 / MSE)`` in dB.

    Parameters
    ----------
    reference, test : ndarray
        Real, same shape, any rank.
    data_range : float
        ``L``, the value range of the reference (e.g. ``max - min`` of the truth; 1 for phase
        mapped to ``(phi + pi) / (2 pi)``). Required: guessing it from the dtype is how a float
        image gets scored against a 255 peak.

    Returns
    -------
    float
        dB; ``inf`` when the images are identical.

    Raises
    ------
    TypeError
        Complex input, or ``data_range`` missing or not a number.
    ValueError
        As :func:`mae`, or ``data_range`` not finite and positive.

    Examples
    --------
    >>> psnr(np.zeros(4), np.full(4, 0.1), data_range=1.0)  # 10 log10(1 / 0.01)
    20.0
    """
    L = validate_data_range(data_range, what="psnr")
    ref, tst = validate_pair(reference, test, what="psnr", allow_complex=False)
    mse = float(np.mean((tst - ref) ** 2))
    if mse == 0.0:
        return math.inf
    return float(10.0 * np.log10(L * L / mse))


def ssim(reference: np.ndarray, test: np.ndarray, *, data_range: float) -> float:
    """Mean structural similarity (Wang et al. 2004) with a 7x7 uniform window.

    Parameters
    ----------
    reference, test : ndarray
        ``(H, W)`` real images, ``H, W >= 7``.
    data_range : float
        ``L`` in ``C1 = (0.01 L)^2``, ``C2 = (0.03 L)^2``. Required (see :func:`psnr`).

    Returns
    -------
    float
        In ``[-1, 1]``; 1 for identical images.

    Raises
    ------
    TypeError, ValueError
        As :func:`psnr`; also an image smaller than the window.

    Notes
    -----
    ``skimage.metrics.structural_similarity(reference, test, win_size=7, data_range=L,
    gaussian_weights=False)``, i.e. sample covariances over each window and the mean over the
    valid interior.

    References
    ----------
    .. [1] Z. Wang, A. C. Bovik, H. R. Sheikh, E. P. Simoncelli, "Image quality assessment: from
       error visibility to structural similarity", IEEE Trans. Image Process. 13, 600 (2004),
       doi:10.1109/TIP.2003.819861.
    """
    from skimage.metrics import structural_similarity

    L = validate_data_range(data_range, what="ssim")
    ref, tst = validate_pair(reference, test, what="ssim", allow_complex=False, ndim=2)
    if min(ref.shape) < SSIM_WINDOW_PX:
        raise ValueError(f"ssim: images have shape {ref.shape}; expected both sides >= "
                         f"{SSIM_WINDOW_PX} (the window)")
    return float(structural_similarity(ref, tst, win_size=SSIM_WINDOW_PX, data_range=L,
                                       gaussian_weights=False))
