"""Geometry of offsets in TensorFlow: translate, pad and trim to the canvas, merge and re-extract.

Twin of ``backends/torch/geometry.py``; float64 reference in :mod:`parity.oracle.physics`.
Images are ``(..., H, W)`` (spatial axes last), groups ``(B, C, N, N)``, canvases ``(B, P, P)``,
and offsets ``(..., 2)`` ordered ``(x, y)`` in pixels (:mod:`parity.conventions`). Sign:
:func:`translate` moves content by ``+t``; :func:`merge_group` places member ``c`` at ``-r_c`` and
:func:`extract_group` reads it back from ``+r_c``. Functions take ``tf.Tensor`` (or anything
``tf.convert_to_tensor`` accepts) and work eagerly and inside ``tf.function`` (leading axes may be
unknown there).

Translation is an explicit bilinear gather, as PtychoPINN's ``translate_xla``: per image an integer
part and a fraction of the shift, four taps, each tap zero where it falls outside its source, all
images and taps served by ONE ``tf.gather`` over the flattened channels-last source (complex
values travel as a (Re, Im) channel pair, which bilinear interpolation treats alike by linearity).
No Python loop over the batch. The fractions are computed in float64 from the given offsets (the
fraction ``x - floor(x)`` is exact in binary floating point) and cast once, as the oracle does.
"""

from __future__ import annotations

from typing import Any

from backends.tensorflow import _import_tensorflow
from backends.tensorflow.physics import _mask, _real_dtype, _side
from parity.conventions import MERGE_NORM_EPS, centre_crop_slice, support_margin_px

tf = _import_tensorflow()

__all__ = ["extract_group", "merge_group", "pad_to_canvas", "translate", "trim_canvas"]

#: Bilinear tap order ``(dy, dx)``, summed in this order as the oracle does.
_TAPS = ((0, 0), (0, 1), (1, 0), (1, 1))


def _check_offsets(offsets: Any, lead: Any, what: str) -> None:
    expected = tf.TensorShape([*lead, 2])
    if not offsets.shape.is_compatible_with(expected):
        raise ValueError(f"{what} have shape {offsets.shape}; expected {expected}")
    if not offsets.dtype.is_floating:
        raise TypeError(f"{what} have dtype {offsets.dtype.name}; expected a real floating dtype")


def _tap_axis(shift: Any, size_out: int, size_src: int, origin: int, weight_dtype: Any, *,
              adjoint: bool = False) -> tuple[list[Any], list[Any]]:
    """Indices and weights of the two bilinear taps along one axis.

    ``shift`` ``(S,)`` translations; output index ``r`` samples source coordinate
    ``r - shift - origin``: with ``b = floor(-shift)`` and ``f = -shift - b``, tap ``d`` reads
    source ``r + b + d - origin`` with weight ``(1 - f, f)[d]``, zero where that falls outside
    ``[0, size_src)``. Returns per tap clamped int32 indices ``(S, size_out)`` and weights
    ``(S, size_out)``.

    With ``adjoint``, the transpose map: for each source index ``u`` in ``[0, size_src)`` the
    output index ``u - b - d + origin`` that tap ``d`` sent it to, zero weight where that falls
    outside ``[0, size_out)``; shapes ``(S, size_src)``.
    """
    neg = -tf.cast(shift, tf.float64)
    base = tf.floor(neg)
    frac = neg - base
    base = tf.cast(base, tf.int64)[:, None]
    positions, limit = (size_src, size_out) if adjoint else (size_out, size_src)
    rows = tf.range(positions, dtype=tf.int64)[None, :]
    indices, weights = [], []
    for d, w in ((0, 1.0 - frac), (1, frac)):
        target = rows - (base + (d - origin)) if adjoint else rows + (base + (d - origin))
        inside = (target >= 0) & (target < limit)
        indices.append(tf.cast(tf.clip_by_value(target, 0, limit - 1), tf.int32))
        weights.append(tf.cast(tf.where(inside, w[:, None], 0.0), weight_dtype))
    return indices, weights


def _gather_taps(values: Any, slot: Any, ys: list[Any], wys: list[Any], xs: list[Any],
                 wxs: list[Any]) -> Any:
    """``out[i, r, c] = sum_taps wy[i, r] wx[i, c] values[slot[i], ys[i, r], xs[i, c]]``.

    ``values`` ``(S, H, W, K)``; ``slot`` ``(R,)`` int32; per tap ``ys``/``wys`` ``(R, h)`` and
    ``xs``/``wxs`` ``(R, w)``. One ``tf.gather`` over the flattened values; returns
    ``(R, h, w, K)``, taps summed in :data:`_TAPS` order.
    """
    H, W, K = (int(d) for d in values.shape[1:])
    slot_base = (slot * (H * W))[:, None, None]
    index = tf.stack([slot_base + ys[dy][:, :, None] * W + xs[dx][:, None, :]
                      for dy, dx in _TAPS])                          # (4, R, h, w)
    taps = tf.gather(tf.reshape(values, (-1, K)), index)             # (4, R, h, w, K)
    out = None
    for tap, (dy, dx) in enumerate(_TAPS):
        term = (wys[dy][:, :, None] * wxs[dx][:, None, :])[..., None] * taps[tap]
        out = term if out is None else out + term
    return out


def _bilinear_gather(source: Any, shifts: Any, out_hw: tuple[int, int],
                     origin: tuple[int, int]) -> Any:
    """Translate each source image by several offsets: ``(L, Hs, Ws, K)`` -> ``(L, M, h, w, K)``.

    ``out[l, m, r, c, k] = source_l(r - t_y - origin_y, c - t_x - origin_x)[k]`` sampled
    bilinearly, each of the four taps zero outside the source; ``shifts`` is ``(L, M, 2)`` as
    (x, y) and ``origin`` the (x, y) position of ``source[:, 0, 0]`` in the output frame. One
    ``tf.gather`` over the flattened source serves every image, offset and tap.

    The gradient with respect to ``source`` is the exact transpose of this linear map, written as
    a gather too (each source pixel collects its four weighted output taps) instead of
    TensorFlow's default scatter-add (``unsorted_segment_sum``) for ``tf.gather``: faster on the
    CPU and free of atomic adds on a GPU. No gradient flows into ``shifts`` (offsets are data).
    """
    Hs, Ws, K = (int(d) for d in source.shape[1:])
    h, w = out_hw
    dims = tf.shape(shifts)
    L, M = dims[0], dims[1]
    flat_shift = tf.reshape(tf.stop_gradient(shifts), (-1, 2))
    slot = tf.repeat(tf.range(L, dtype=tf.int32), M)

    @tf.custom_gradient
    def gather(values: Any) -> Any:
        ys, wys = _tap_axis(flat_shift[:, 1], h, Hs, origin[1], values.dtype)
        xs, wxs = _tap_axis(flat_shift[:, 0], w, Ws, origin[0], values.dtype)
        out = _gather_taps(values, slot, ys, wys, xs, wxs)

        def transpose(upstream: Any) -> Any:
            ays, awys = _tap_axis(flat_shift[:, 1], h, Hs, origin[1], upstream.dtype,
                                  adjoint=True)
            axs, awxs = _tap_axis(flat_shift[:, 0], w, Ws, origin[0], upstream.dtype,
                                  adjoint=True)
            each = _gather_taps(upstream, tf.range(L * M, dtype=tf.int32), ays, awys, axs, awxs)
            return tf.reduce_sum(tf.reshape(each, tf.stack([L, M, Hs, Ws, K])), axis=1)

        return out, transpose

    return tf.reshape(gather(source), tf.stack([L, M, h, w, K]))


def _channels_last(images: Any) -> Any:
    """``(L, H, W)`` real or complex -> ``(L, H, W, K)`` real (K = 1 real, 2 complex)."""
    if images.dtype.is_complex:
        return tf.stack([tf.math.real(images), tf.math.imag(images)], axis=-1)
    return images[..., None]


def _from_channels_last(values: Any, complex_out: bool) -> Any:
    if complex_out:
        return tf.complex(values[..., 0], values[..., 1])
    return values[..., 0]


def translate(images: Any, offsets_px: Any) -> Any:
    """Translate images: content moves by ``+t``, bilinear, each tap zero outside the image.

    Parameters
    ----------
    images : tf.Tensor
        ``(..., H, W)`` real or complex (complex: Re and Im translated alike).
    offsets_px : tf.Tensor
        ``(..., 2)`` translations ``(t_x, t_y)`` in pixels, one per image (the leading axes of
        ``images``), real floating dtype.

    Returns
    -------
    tf.Tensor
        ``out[..., y, x] = images(..., y - t_y, x - t_x)``, same shape and dtype as ``images``.

    Raises
    ------
    ValueError
        If ``offsets_px`` does not have shape ``images.shape[:-2] + (2,)``.
    TypeError
        If ``offsets_px`` is not a real floating tensor.
    """
    images = tf.convert_to_tensor(images)
    offsets_px = tf.convert_to_tensor(offsets_px)
    if images.shape.rank is None or images.shape.rank < 2:
        raise ValueError(f"images have shape {images.shape}; expected (..., H, W)")
    _check_offsets(offsets_px, images.shape[:-2], "offsets")
    H, W = int(images.shape[-2]), int(images.shape[-1])
    source = _channels_last(tf.reshape(images, (-1, H, W)))
    moved = _bilinear_gather(source, tf.reshape(offsets_px, (-1, 1, 2)), (H, W), (0, 0))
    return tf.reshape(_from_channels_last(moved, images.dtype.is_complex), tf.shape(images))


def pad_to_canvas(patches: Any, canvas_px: int) -> Any:
    """Zero-pad ``(..., N, N)`` symmetrically to ``(..., canvas_px, canvas_px)`` (centre kept).

    Raises
    ------
    ValueError
        If ``canvas_px - N`` is negative or odd.
    """
    patches = tf.convert_to_tensor(patches)
    N = _side("patches", patches)
    pad = canvas_px - N
    if pad < 0 or pad % 2:
        raise ValueError(f"canvas {canvas_px} must exceed N={N} by an even number of pixels")
    q = pad // 2
    return tf.pad(patches, [[0, 0]] * (patches.shape.rank - 2) + [[q, q], [q, q]])


def trim_canvas(canvas: Any, N: int) -> Any:
    """Central ``N x N`` crop of ``(..., P, P)`` (inverse of :func:`pad_to_canvas`).

    Raises
    ------
    ValueError
        If ``N`` exceeds ``P`` or ``P - N`` is odd.
    """
    canvas = tf.convert_to_tensor(canvas)
    sl = centre_crop_slice(_side("canvas", canvas), N)
    return canvas[..., sl, sl]


def merge_group(patches: Any, relative_px: Any, canvas_px: int) -> Any:
    """In-model merge of a group's patches onto one canvas (PtychoPINN ``ReassemblePatchesLayer``).

    Parameters
    ----------
    patches : tf.Tensor
        ``(B, C, N, N)`` complex (or real) object patches.
    relative_px : tf.Tensor
        ``(B, C, 2)`` relative offsets (x, y), signed by ``LOCAL_OFFSET_SIGN``.
    canvas_px : int
        Canvas side ``P`` (``ModelConfig.canvas_px``).

    Returns
    -------
    tf.Tensor
        ``(B, P, P)`` of the patches' dtype,
        ``sum_c T(pad(O_c M), -r_c) / (sum_c T(pad(M), -r_c) + MERGE_NORM_EPS)``,
        ``M`` = :func:`parity.conventions.centre_mask` (co-masked numerator, as the oracle).

    Raises
    ------
    ValueError
        On misshaped patches or offsets, or a canvas that does not fit ``N``.

    Notes
    -----
    Padding is folded into the gather (the ``N x N`` source sits at ``(P - N) / 2`` in the canvas
    frame), which samples the same values as translating the padded patch. The overlap count
    uses the same taps, factored per axis (see ``_merge_count``).
    """
    patches = tf.convert_to_tensor(patches)
    relative_px = tf.convert_to_tensor(relative_px)
    if patches.shape.rank != 4:
        raise ValueError(f"patches have shape {patches.shape}; expected (B, C, N, N)")
    N = _side("patches", patches)
    _check_offsets(relative_px, patches.shape[:2], "relative offsets")
    if canvas_px < N or (canvas_px - N) % 2:
        raise ValueError(f"canvas {canvas_px} must exceed N={N} by an even number of pixels")
    real = _real_dtype(patches.dtype)
    pad = (canvas_px - N) // 2
    dims = tf.shape(patches)
    B, C = dims[0], dims[1]
    source = _channels_last(tf.reshape(patches, (-1, N, N))) * _mask("centre", N, real)[..., None]
    moved = _bilinear_gather(source, -tf.reshape(relative_px, (-1, 1, 2)),
                             (canvas_px, canvas_px), (pad, pad))
    K = int(source.shape[-1])
    summed = tf.reduce_sum(tf.reshape(moved, tf.stack([B, C, canvas_px, canvas_px, K])), axis=1)
    count = _merge_count(relative_px, N, canvas_px, real) + MERGE_NORM_EPS
    # Real division of Re and Im alike: no complex division, no complex cast in the gradient.
    return _from_channels_last(summed / count[..., None], patches.dtype.is_complex)


def _merge_count(relative_px: Any, N: int, canvas_px: int, dtype: Any) -> Any:
    """``sum_c T(pad(M), -r_c)`` ``(B, P, P)`` for the square centre mask ``M``; no gradient.

    The centre mask and the per-tap bilinear weights are both separable, so each translated mask
    is the outer product of a row profile and a column profile (the same taps as the gather), and
    the sum over the group is one contraction over ``C``.
    """
    q, pad = support_margin_px(N), (canvas_px - N) // 2
    shifts = -tf.reshape(relative_px, (-1, 2))
    profiles = []
    for axis in (1, 0):  # rows follow y, columns follow x
        indices, weights = _tap_axis(shifts[:, axis], canvas_px, N, pad, dtype)
        profile = None
        for index, weight in zip(indices, weights, strict=True):
            term = weight * tf.cast((index >= q) & (index < N - q), dtype)
            profile = term if profile is None else profile + term
        profiles.append(tf.reshape(profile, tf.concat([tf.shape(relative_px)[:2], [canvas_px]],
                                                      axis=0)))
    return tf.stop_gradient(tf.einsum("bcy,bcx->byx", profiles[0], profiles[1]))


def extract_group(canvas: Any, relative_px: Any, N: int) -> Any:
    """Re-extract each member's patch: translate the canvas by ``+r_c`` and crop the centre ``N``.

    Parameters
    ----------
    canvas : tf.Tensor
        ``(B, P, P)`` real or complex canvas.
    relative_px : tf.Tensor
        ``(B, C, 2)`` relative offsets (x, y).
    N : int
        Patch side.

    Returns
    -------
    tf.Tensor
        ``(B, C, N, N)``; only the cropped pixels are sampled (the same values as translating the
        whole canvas and cropping).

    Raises
    ------
    ValueError
        On misshaped inputs or a crop that does not fit the canvas.
    """
    canvas = tf.convert_to_tensor(canvas)
    relative_px = tf.convert_to_tensor(relative_px)
    if canvas.shape.rank != 3:
        raise ValueError(f"canvas has shape {canvas.shape}; expected (B, P, P)")
    P = _side("canvas", canvas)
    if relative_px.shape.rank != 3:
        raise ValueError(f"relative offsets have shape {relative_px.shape}; expected (B, C, 2)")
    _check_offsets(relative_px, [canvas.shape[0], relative_px.shape[1]], "relative offsets")
    centre_crop_slice(P, N)  # validates the crop (N <= P, even difference)
    q = (P - N) // 2
    moved = _bilinear_gather(_channels_last(canvas), relative_px, (N, N), (-q, -q))
    return _from_channels_last(moved, canvas.dtype.is_complex)
