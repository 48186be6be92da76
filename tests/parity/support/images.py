"""Synthetic test images shared by the alignment, registration and comparison tests."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = ["fourier_shift", "smooth_object"]

def smooth_object(size: int, seed: int) -> np.ndarray:
    """Smooth random complex object: amplitude in (0.2, 1), phase spanning several radians."""
    rng = np.random.default_rng(seed)
    amplitude = 0.6 + 0.4 * np.tanh(3 * ndimage.gaussian_filter(rng.standard_normal((size, size)),
                                                                2.0))
    phase = 6.0 * ndimage.gaussian_filter(rng.standard_normal((size, size)), 2.0)
    return amplitude * np.exp(1j * phase)

def fourier_shift(image: np.ndarray, shift: tuple[float, float]) -> np.ndarray:
    """``image(r - shift)`` on the periodic grid."""
    return np.fft.ifft2(ndimage.fourier_shift(np.fft.fft2(image), shift))
