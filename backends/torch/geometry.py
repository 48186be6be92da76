"""Geometry of offsets in PyTorch: translate, pad and trim to the canvas, merge and re-extract.

Twin of ``backends/tensorflow/geometry.py``; float64 reference in :mod:`parity.oracle.physics`.
Images are ``(..., H, W)`` (spatial axes last), groups ``(B, C, N, N)``, canvases ``(B, P, P)``,
and offsets ``(..., 2)`` ordered ``(x, y)`` in pixels (:mod:`parity.conventions`). Sign:
:func:`translate` moves content by ``+t``; :func:`merge_group` places member ``c`` at ``-r_c`` and
:func:`extract_group` reads it back from ``+r_c``.

Translation is an explicit bilinear gather (integer part + fraction per image, four taps, each
tap zero outside its source), not ``grid_sample``: normalised grid coordinates would add rounding
of their own. The gather is one ``index_select`` over a flattened source with channels last, whose
backward (``index_add_``) is deterministic on CUDA under ``torch.use_deterministic_algorithms``.
"""

from __future__ import annotations

import math

import torch

from backends.torch.physics import _check_square, _constant_mask, _real_dtype
from parity.conventions import MERGE_NORM_EPS, centre_crop_slice, support_margin_px

__all__ = ["extract_group", "merge_group", "pad_to_canvas", "translate", "trim_canvas"]


def _tap_rows(shift: torch.Tensor, size_out: int, size_src: int, origin: int,
              weight_dtype: torch.dtype) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Source indices and weights of the two bilinear taps along one axis.

    ``shift`` ``(L,)`` translations; output index ``r`` samples source coordinate
    ``r - shift - origin``. Returns, per tap ``d`` in (0, 1), clamped indices ``(L, size_out)``
    int64 and weights ``(L, size_out)`` (zero where the tap falls outside the source).
    """
    # The fraction of -t is exact in binary floating point (x - floor(x) loses no bits), so it is
    # computed in float64 from the given offsets, as the float64 oracle does, then cast once.
    neg = -shift.to(torch.float64)
    base = torch.floor(neg)
    frac = neg - base
    rows = torch.arange(size_out, device=shift.device, dtype=torch.int64)
    indices, weights = [], []
    for d, w in ((0, 1.0 - frac), (1, frac)):
        source = rows[None, :] + (base.to(torch.int64) + d - origin)[:, None]
        inside = (source >= 0) & (source < size_src)
        indices.append(source.clamp(0, size_src - 1))
        weights.append((w[:, None] * inside).to(weight_dtype))
    return indices, weights


def _bilinear_gather(source: torch.Tensor, shifts: torch.Tensor, out_hw: tuple[int, int],
                     origin: tuple[int, int]) -> torch.Tensor:
    """Translate each source image by several offsets: ``(L, Hs, Ws, K)`` -> ``(L, M, h, w, K)``.

    ``out[l, m, r, c, k] = source_l(r - t_y - origin_y, c - t_x - origin_x)[k]`` sampled bilinearly,
    each of the four taps zero outside the source; ``shifts`` is ``(L, M, 2)`` as (x, y).
    ``origin`` is the (x, y) position of ``source[0, 0]`` in the output frame. One
    ``index_select`` over the flattened source serves all images, offsets and taps at once.
    """
    L, Hs, Ws, K = source.shape
    M = shifts.shape[1]
    h, w = out_hw
    flat_shift = shifts.reshape(L * M, 2)
    ys, wys = _tap_rows(flat_shift[:, 1], h, Hs, origin[1], source.dtype)
    xs, wxs = _tap_rows(flat_shift[:, 0], w, Ws, origin[0], source.dtype)
    image = torch.arange(L, device=source.device, dtype=torch.int64).repeat_interleave(M)
    image_base = (image * (Hs * Ws))[:, None, None]
    # Tap order (dy, dx) = (0,0), (0,1), (1,0), (1,1), summed in that order as the oracle does.
    pairs = [(0, 0), (0, 1), (1, 0), (1, 1)]
    index = torch.stack([image_base + ys[dy][:, :, None] * Ws + xs[dx][:, None, :]
                         for dy, dx in pairs])
    taps = source.reshape(L * Hs * Ws, K).index_select(0, index.reshape(-1))
    taps = taps.reshape(4, L * M, h, w, K)
    out = None
    for tap, (dy, dx) in enumerate(pairs):
        weight = (wys[dy][:, :, None] * wxs[dx][:, None, :])[..., None]
        term = weight * taps[tap]
        out = term if out is None else out + term
    return out.reshape(L, M, h, w, K)


def _channels_last(images: torch.Tensor) -> torch.Tensor:
    """``(L, H, W)`` real or complex -> ``(L, H, W, K)`` real (K = 1 real, 2 complex)."""
    images = images.contiguous()
    if images.is_complex():
        return torch.view_as_real(images)
    return images.unsqueeze(-1)


def _from_channels_last(values: torch.Tensor, complex_out: bool) -> torch.Tensor:
    if complex_out:
        return torch.view_as_complex(values.contiguous())
    return values[..., 0]


def _check_offsets(offsets: torch.Tensor, lead: tuple[int, ...], what: str) -> None:
    if tuple(offsets.shape) != (*lead, 2):
        raise ValueError(f"{what} have shape {tuple(offsets.shape)}; expected {(*lead, 2)}")
    if offsets.is_complex() or not offsets.is_floating_point():
        raise TypeError(f"{what} have dtype {offsets.dtype}; expected a real floating dtype")


def translate(images: torch.Tensor, offsets_px: torch.Tensor) -> torch.Tensor:
    """Translate images: content moves by ``+t``, bilinear, each tap zero outside the image.

    Parameters
    ----------
    images : torch.Tensor
        ``(..., H, W)`` real or complex (complex: Re and Im translated alike).
    offsets_px : torch.Tensor
        ``(..., 2)`` translations ``(t_x, t_y)`` in pixels, one per image (the leading axes of
        ``images``), real floating dtype.

    Returns
    -------
    torch.Tensor
        ``out[..., y, x] = images(..., y - t_y, x - t_x)``, same shape and dtype as ``images``.

    Raises
    ------
    ValueError
        If ``offsets_px`` does not have shape ``images.shape[:-2] + (2,)``.
    """
    if images.ndim < 2:
        raise ValueError(f"images have shape {tuple(images.shape)}; expected (..., H, W)")
    lead = tuple(images.shape[:-2])
    _check_offsets(offsets_px, lead, "offsets")
    H, W = images.shape[-2:]
    L = math.prod(lead)
    source = _channels_last(images.reshape(L, H, W))
    out = _bilinear_gather(source, offsets_px.reshape(L, 1, 2), (H, W), (0, 0))
    return _from_channels_last(out, images.is_complex()).reshape(images.shape)


def pad_to_canvas(patches: torch.Tensor, canvas_px: int) -> torch.Tensor:
    """Zero-pad ``(..., N, N)`` symmetrically to ``(..., canvas_px, canvas_px)`` (centre kept).

    Raises
    ------
    ValueError
        If ``canvas_px - N`` is negative or odd.
    """
    N = _check_square("patches", patches)
    pad = canvas_px - N
    if pad < 0 or pad % 2:
        raise ValueError(f"canvas {canvas_px} must exceed N={N} by an even number of pixels")
    canvas = patches.new_zeros((*patches.shape[:-2], canvas_px, canvas_px))
    q = pad // 2
    canvas[..., q : q + N, q : q + N] = patches
    return canvas


def trim_canvas(canvas: torch.Tensor, N: int) -> torch.Tensor:
    """Central ``N x N`` crop of ``(..., P, P)`` (inverse of :func:`pad_to_canvas`); a view."""
    _check_square("canvas", canvas)
    sl = centre_crop_slice(int(canvas.shape[-1]), N)
    return canvas[..., sl, sl]


def _merge_count(relative_px: torch.Tensor, N: int, canvas_px: int,
                 dtype: torch.dtype) -> torch.Tensor:
    """``sum_c T(pad(M), -r_c)`` ``(B, P, P)`` for the square centre mask ``M``.

    The mask and the bilinear weights with per-tap zero fill are both separable, so each
    translated mask is the outer product of a row profile and a column profile; the sum over the
    group is one batched matrix product instead of a gather.
    """
    B, C, _ = relative_px.shape
    q, pad = support_margin_px(N), (canvas_px - N) // 2
    profiles = []
    for axis in (1, 0):  # rows follow y, columns x
        idx, wts = _tap_rows(-relative_px[..., axis].reshape(B * C), canvas_px, N, pad, dtype)
        inside_mask = [((i >= q) & (i < N - q)).to(dtype) for i in idx]
        profile = wts[0] * inside_mask[0] + wts[1] * inside_mask[1]
        profiles.append(profile.reshape(B, C, canvas_px))
    return torch.bmm(profiles[0].transpose(1, 2), profiles[1])


def merge_group(patches: torch.Tensor, relative_px: torch.Tensor, canvas_px: int) -> torch.Tensor:
    """In-model merge of a group's patches onto one canvas (PtychoPINN ``ReassemblePatchesLayer``).

    Parameters
    ----------
    patches : torch.Tensor
        ``(B, C, N, N)`` complex object patches.
    relative_px : torch.Tensor
        ``(B, C, 2)`` relative offsets (x, y), signed by ``LOCAL_OFFSET_SIGN``.
    canvas_px : int
        Canvas side ``P`` (``ModelConfig.canvas_px``).

    Returns
    -------
    torch.Tensor
        ``(B, P, P)`` complex
        ``sum_c T(pad(O_c M), -r_c) / (sum_c T(pad(M), -r_c) + MERGE_NORM_EPS)``,
        ``M`` = :func:`parity.conventions.centre_mask` (co-masked numerator, as the oracle).

    Notes
    -----
    Padding is folded into the gather (the source ``N x N`` patch sits at ``(P - N) / 2`` in the
    canvas frame), which samples the same values as translating the padded patch.
    """
    if patches.ndim != 4:
        raise ValueError(f"patches have shape {tuple(patches.shape)}; expected (B, C, N, N)")
    B, C, N, _ = patches.shape
    _check_square("patches", patches)
    _check_offsets(relative_px, (B, C), "relative offsets")
    if canvas_px < N or (canvas_px - N) % 2:
        raise ValueError(f"canvas {canvas_px} must exceed N={N} by an even number of pixels")
    real = _real_dtype(patches.dtype)
    mask = _constant_mask("centre", N, patches.device, real)
    pad = (canvas_px - N) // 2
    source = _channels_last((patches * mask).reshape(B * C, N, N))
    moved = _bilinear_gather(source, -relative_px.reshape(B * C, 1, 2),
                             (canvas_px, canvas_px), (pad, pad))
    numerator = moved.reshape(B, C, canvas_px, canvas_px, -1).sum(dim=1)
    numerator = _from_channels_last(numerator, patches.is_complex())
    count = _merge_count(relative_px, N, canvas_px, real)
    return numerator / (count + MERGE_NORM_EPS)


def extract_group(canvas: torch.Tensor, relative_px: torch.Tensor, N: int) -> torch.Tensor:
    """Re-extract each member's patch: translate the canvas by ``+r_c`` and crop the centre ``N``.

    Parameters
    ----------
    canvas : torch.Tensor
        ``(B, P, P)`` real or complex canvas.
    relative_px : torch.Tensor
        ``(B, C, 2)`` relative offsets (x, y).
    N : int
        Patch side.

    Returns
    -------
    torch.Tensor
        ``(B, C, N, N)``; only the cropped pixels are sampled (same values as translating the full
        canvas and cropping).
    """
    if canvas.ndim != 3:
        raise ValueError(f"canvas has shape {tuple(canvas.shape)}; expected (B, P, P)")
    P = _check_square("canvas", canvas)
    B = int(canvas.shape[0])
    if relative_px.ndim != 3:
        raise ValueError(f"relative offsets have shape {tuple(relative_px.shape)}; "
                         "expected (B, C, 2)")
    C = int(relative_px.shape[1])
    _check_offsets(relative_px, (B, C), "relative offsets")
    q = (P - N) // 2
    centre_crop_slice(P, N)  # validates the crop (N <= P, even difference)
    moved = _bilinear_gather(_channels_last(canvas), relative_px, (N, N), (-q, -q))
    return _from_channels_last(moved, canvas.is_complex())
