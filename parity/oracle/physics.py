"""Float64 reference of the forward physics (PtychoPINN ``tf_helper`` / ``model`` stages).

Array layouts follow :mod:`parity.conventions`: images ``[..., row, col]``, offsets ``[..., (x, y)]``,
groups ``(B, C, N, N)``.
"""

from __future__ import annotations

import numpy as np

from parity.conventions import (
    FFT_NORM,
    FFT_SHIFT_AXES,
    MERGE_NORM_EPS,
    POISSON_LOG_FLOOR,
    centre_crop_slice,
    centre_mask,
    patch_centre_index,
    probe_mask,
)

__all__ = [
    "bilinear_sample",
    "exit_wave",
    "extract_group",
    "extract_object_patches",
    "farfield_amplitude",
    "mae_loss",
    "merge_group",
    "normalise_probe",
    "pad_to_canvas",
    "poisson_nll",
    "translate",
    "trim_canvas",
]


def _as_float64(array: np.ndarray) -> np.ndarray:
    array = np.asarray(array)
    return array.astype(np.complex128 if array.dtype.kind == "c" else np.float64)


def normalise_probe(probe: np.ndarray, probe_scale: float) -> np.ndarray:
    """Probe normalised as PtychoPINN ``set_probe``: ``P / (probe_scale * mean(|M * P|))``.

    Parameters
    ----------
    probe : numpy.ndarray
        ``(N, N)`` complex probe.
    probe_scale : float
        Normalisation constant (reference default 4).

    Returns
    -------
    numpy.ndarray
        ``(N, N)`` complex128. The mean runs over all ``N**2`` pixels of the masked magnitude, with
        ``M`` = :func:`parity.conventions.probe_mask`.
    """
    p = _as_float64(probe).astype(np.complex128)
    if p.ndim != 2 or p.shape[0] != p.shape[1]:
        raise ValueError(f"probe has shape {p.shape}; expected (N, N)")
    denominator = probe_scale * np.mean(np.abs(probe_mask(p.shape[0]) * p))
    if not denominator > 0:
        raise ValueError("probe is zero inside the normalisation disk; cannot normalise")
    return p / denominator


def exit_wave(probe: np.ndarray, patches: np.ndarray, *, mask: bool = False) -> np.ndarray:
    """Exit wave ``psi = P * O`` (pointwise), optionally times the hard probe mask.

    ``probe`` is ``(N, N)``; ``patches`` is ``(..., N, N)``; the result broadcasts over the leading
    axes and is complex128.
    """
    p = _as_float64(probe).astype(np.complex128)
    psi = p * _as_float64(patches)
    if mask:
        psi = psi * probe_mask(p.shape[-1])
    return psi


def farfield_amplitude(psi: np.ndarray) -> np.ndarray:
    """Far-field amplitude ``sqrt(fftshift(|F psi|**2 / N**2))`` over the last two axes.

    Notes
    -----
    ``F`` is the unnormalised forward DFT ``sum psi[y, x] exp(-2 pi i (u x + v y) / N)``; dividing
    ``|F|**2`` by ``N**2`` equals ``numpy.fft.fft2(norm="ortho")``, so
    ``sum A**2 == sum |psi|**2`` (Parseval). Zero frequency lands at index ``N // 2``.
    """
    field = np.fft.fft2(_as_float64(psi).astype(np.complex128), axes=FFT_SHIFT_AXES,
                        norm=FFT_NORM)
    return np.sqrt(np.fft.fftshift(np.abs(field) ** 2, axes=FFT_SHIFT_AXES))


def bilinear_sample(image: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """Sample ``image[..., H, W]`` at fractional ``(ys, xs)`` with zero fill per tap.

    ``ys`` and ``xs`` broadcast against each other and against the leading axes of ``image`` as
    ``(..., h, w)`` coordinate grids. Each of the four bilinear taps that falls outside the image
    contributes zero (TF ``translate_xla`` "zeros" fill).
    """
    img = _as_float64(image)
    H, W = img.shape[-2:]
    y0 = np.floor(ys)
    x0 = np.floor(xs)
    fy = ys - y0
    fx = xs - x0
    y0 = y0.astype(np.int64)
    x0 = x0.astype(np.int64)
    out = 0
    for dy, wy in ((0, 1 - fy), (1, fy)):
        for dx, wx in ((0, 1 - fx), (1, fx)):
            yy = y0 + dy
            xx = x0 + dx
            inside = (yy >= 0) & (yy < H) & (xx >= 0) & (xx < W)
            yc = np.clip(yy, 0, H - 1)
            xc = np.clip(xx, 0, W - 1)
            taps = _gather(img, yc, xc)
            out = out + np.where(inside, wy * wx, 0.0) * taps
    return out


def _gather(img: np.ndarray, yc: np.ndarray, xc: np.ndarray) -> np.ndarray:
    lead = img.shape[:-2]
    yc, xc = np.broadcast_arrays(yc, xc)
    if img.ndim == 2:  # one image, any coordinate grid
        return img[yc, xc]
    if yc.ndim == 2:  # one coordinate grid shared by every image
        return img[..., yc, xc]
    # per-image coordinate grids: (..., h, w) matched to the leading axes of img
    flat = img.reshape((-1, *img.shape[-2:]))
    yb = np.broadcast_to(yc, lead + yc.shape[-2:]).reshape((-1, *yc.shape[-2:]))
    xb = np.broadcast_to(xc, lead + xc.shape[-2:]).reshape((-1, *xc.shape[-2:]))
    idx = np.arange(flat.shape[0])[:, None, None]
    return flat[idx, yb, xb].reshape(lead + yc.shape[-2:])


def translate(images: np.ndarray, offsets_px: np.ndarray) -> np.ndarray:
    """Translate images by ``offsets_px``: content moves by ``+t`` (bilinear, zero fill per tap).

    Parameters
    ----------
    images : numpy.ndarray
        ``(..., H, W)`` real or complex (complex: Re and Im translated alike, which bilinear
        interpolation does by linearity).
    offsets_px : numpy.ndarray
        ``(..., 2)`` translations ``(t_x, t_y)`` matching the leading axes of ``images``.

    Returns
    -------
    numpy.ndarray
        ``out[..., y, x] = images(..., y - t_y, x - t_x)``, float64 or complex128.
    """
    img = _as_float64(images)
    t = np.asarray(offsets_px, dtype=np.float64)
    if t.shape != (*img.shape[:-2], 2):
        raise ValueError(f"offsets have shape {t.shape}; expected {(*img.shape[:-2], 2)}")
    H, W = img.shape[-2:]
    rows = np.arange(H, dtype=np.float64)[:, None]
    cols = np.arange(W, dtype=np.float64)[None, :]
    ys = rows - t[..., 1, None, None]
    xs = cols - t[..., 0, None, None]
    return bilinear_sample(img, ys, xs)


def pad_to_canvas(patches: np.ndarray, canvas_px: int) -> np.ndarray:
    """Zero-pad ``(..., N, N)`` symmetrically to ``(..., canvas_px, canvas_px)`` (centre kept)."""
    arr = _as_float64(patches)
    N = arr.shape[-1]
    pad = canvas_px - N
    if pad < 0 or pad % 2:
        raise ValueError(f"canvas {canvas_px} must exceed N={N} by an even number of pixels")
    widths = [(0, 0)] * (arr.ndim - 2) + [(pad // 2, pad // 2)] * 2
    return np.pad(arr, widths)


def trim_canvas(canvas: np.ndarray, N: int) -> np.ndarray:
    """Central ``N x N`` crop of ``(..., P, P)`` (inverse of :func:`pad_to_canvas`)."""
    sl = centre_crop_slice(canvas.shape[-1], N)
    return np.asarray(canvas)[..., sl, sl]


def merge_group(patches: np.ndarray, relative_px: np.ndarray, canvas_px: int) -> np.ndarray:
    """In-model merge of a group's patches onto one canvas (PtychoPINN ``ReassemblePatchesLayer``).

    Parameters
    ----------
    patches : numpy.ndarray
        ``(B, C, N, N)`` complex patches.
    relative_px : numpy.ndarray
        ``(B, C, 2)`` relative offsets (signed by ``LOCAL_OFFSET_SIGN``).
    canvas_px : int
        Canvas side ``P``.

    Returns
    -------
    numpy.ndarray
        ``(B, P, P)`` complex128 ``sum_c T(pad(O_c * M), -r_c) / (sum_c T(pad(M), -r_c) + 1e-3)``.

    Notes
    -----
    ``M`` is the centre mask (:func:`parity.conventions.centre_mask`). Masking the numerator too
    (the co-masked variant PtychoPINN's PyTorch port adopted) equals the TF literal formula when
    the patches are zero outside the centre (``probe_big=False``) and avoids the x1000 border gain
    otherwise; both backends implement this one formula.
    """
    arr = _as_float64(patches).astype(np.complex128)
    if arr.ndim != 4:
        raise ValueError(f"patches have shape {arr.shape}; expected (B, C, N, N)")
    N = arr.shape[-1]
    mask = centre_mask(N)
    shift = -np.asarray(relative_px, dtype=np.float64)
    numerator = translate(pad_to_canvas(arr * mask, canvas_px), shift).sum(axis=1)
    weights = np.broadcast_to(mask, arr.shape)
    count = translate(pad_to_canvas(weights, canvas_px), shift).sum(axis=1)
    return numerator / (count + MERGE_NORM_EPS)


def extract_group(canvas: np.ndarray, relative_px: np.ndarray, N: int) -> np.ndarray:
    """Re-extract each member's patch: translate the canvas by ``+r_c`` and crop the centre ``N``.

    ``canvas`` is ``(B, P, P)``; ``relative_px`` ``(B, C, 2)``; returns ``(B, C, N, N)``.
    """
    cv = _as_float64(canvas)
    C = np.asarray(relative_px).shape[1]
    stacked = np.repeat(cv[:, None], C, axis=1)
    return trim_canvas(translate(stacked, relative_px), N)


def extract_object_patches(obj: np.ndarray, positions_px: np.ndarray, N: int) -> np.ndarray:
    """Patches of an object centred on scan positions (bilinear, zero outside the object).

    ``patch[k, i, j] = obj(y = p_y + i - N//2, x = p_x + j - N//2)`` for position ``p`` = (x, y),
    the PtychoPINN ``get_image_patches`` convention. Returns ``(n, N, N)`` complex128.
    """
    positions = np.asarray(positions_px, dtype=np.float64)
    c = patch_centre_index(N)
    grid = np.arange(N, dtype=np.float64) - c
    ys = positions[:, 1, None, None] + grid[None, :, None]
    xs = positions[:, 0, None, None] + grid[None, None, :]
    image = _as_float64(obj)
    if image.ndim != 2:
        raise ValueError(f"object has shape {image.shape}; expected (H, W)")
    return bilinear_sample(image, ys, xs)


def poisson_nll(pred_intensity: np.ndarray, observed_intensity: np.ndarray) -> float:
    """Mean Poisson negative log-likelihood without the ``log k!`` term.

    ``mean(lambda - k * log(lambda + floor))`` over every element, ``lambda`` predicted and ``k``
    observed intensities in count units (TF ``log_poisson_loss(compute_full_loss=False)``).
    """
    lam = np.asarray(pred_intensity, dtype=np.float64)
    k = np.asarray(observed_intensity, dtype=np.float64)
    return float(np.mean(lam - k * np.log(lam + POISSON_LOG_FLOOR)))


def mae_loss(pred_amplitude: np.ndarray, observed_amplitude: np.ndarray) -> float:
    """Mean absolute error of amplitudes over every element."""
    pred = np.asarray(pred_amplitude, dtype=np.float64)
    obs = np.asarray(observed_amplitude, dtype=np.float64)
    return float(np.mean(np.abs(pred - obs)))
