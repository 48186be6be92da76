"""Stitching of patches into the full object on the device (PtychoPINN ``reassemble_position``).

Twin of ``backends/torch/stitch.py``; float64 reference
:func:`parity.oracle.stitch.stitch_patches`.
The canvas geometry (integer origin, size) is computed on the host from the ``(n, 2)`` centres by
:func:`parity.oracle.stitch.canvas_geometry` / :func:`~parity.oracle.stitch.crop_corners`; the
splat runs on the device: the four bilinear taps of every patch are summed on its ``(M+1)**2``
footprint, and all footprints go into one ``tf.math.unsorted_segment_sum`` over a ``(H' W', 3)``
accumulator holding Re, Im and the overlap count, then ``numerator / (count + STITCH_NORM_EPS)``.
``unsorted_segment_sum`` has a deterministic GPU kernel under
``tf.config.experimental.enable_op_determinism()``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from backends.tensorflow import _import_tensorflow
from parity.conventions import STITCH_NORM_EPS, centre_crop_slice
from parity.oracle.stitch import canvas_geometry, crop_corners

tf = _import_tensorflow()

__all__ = ["stitch_patches", "stitch_patches_loop"]

_TAPS = ((0, 0), (0, 1), (1, 0), (1, 1))


def _prepare(patches: Any, centres_px: np.ndarray, crop_px: int,
             ) -> tuple[Any, np.ndarray, np.ndarray, tuple[int, int], tuple[int, int]]:
    """Validate; crops as a complex64 tensor, integer corners and fractions on the host,
    geometry."""
    tensor = tf.convert_to_tensor(patches)
    if tensor.shape.rank != 3 or tensor.shape[1] != tensor.shape[2]:
        raise ValueError(f"patches have shape {tuple(tensor.shape)}; expected (n, N, N)")
    centres = np.asarray(centres_px, dtype=np.float64)
    if centres.shape != (int(tensor.shape[0]), 2):
        raise ValueError(f"centres have shape {centres.shape}; expected ({tensor.shape[0]}, 2)")
    if not np.isfinite(centres).all():
        raise ValueError("centres have non-finite values")
    sl = centre_crop_slice(int(tensor.shape[-1]), crop_px)
    crops = tf.cast(tensor[:, sl, sl], tf.complex64)
    origin, shape = canvas_geometry(centres, crop_px)
    local = crop_corners(centres, crop_px) - np.array(origin, dtype=np.float64)
    integer = np.floor(local)
    return crops, integer.astype(np.int64), local - integer, origin, shape


def _tap_weights(frac: np.ndarray) -> list[np.ndarray]:
    """Bilinear weight of each tap per patch ``(n,)`` float64, tap order :data:`_TAPS`."""
    wy = (1.0 - frac[:, 1], frac[:, 1])
    wx = (1.0 - frac[:, 0], frac[:, 0])
    return [wy[dy] * wx[dx] for dy, dx in _TAPS]


def stitch_patches(patches: Any, centres_px: np.ndarray, *,
                   crop_px: int) -> tuple[np.ndarray, tuple[int, int]]:
    """Stitch patches centred at ``centres_px`` into one object, vectorised on the device.

    Parameters
    ----------
    patches : numpy.ndarray or tf.Tensor
        ``(n, N, N)`` complex patches.
    centres_px : numpy.ndarray
        ``(n, 2)`` patch centres ``(x, y)`` in object pixels.
    crop_px : int
        Side ``M`` of the central crop kept from each patch (keyword-only).

    Returns
    -------
    reconstructed_obj : numpy.ndarray
        ``(H', W')`` complex64; zero where no crop reached.
    origin_px : tuple[int, int]
        Object-pixel ``(x0, y0)`` of ``reconstructed_obj[0, 0]``.

    Raises
    ------
    ValueError
        On misshaped patches or centres, non-finite centres, or a crop that does not fit ``N``.

    Notes
    -----
    ``sum_taps w * crop / (sum_taps w + STITCH_NORM_EPS)`` accumulated over all patches; tap
    weights are computed in float64 on the host (per patch) and splatted in float32. No Python
    loop over patches: the four taps are summed on each patch's ``(M+1)**2`` footprint, then one
    segment sum places every footprint.
    """
    crops, integer, frac, origin, (height, width) = _prepare(patches, centres_px, crop_px)
    n, side = int(crops.shape[0]), crop_px + 1
    weights = tf.constant(np.stack(_tap_weights(frac)).astype(np.float32))[:, :, None, None, None]
    values = tf.stack([tf.math.real(crops), tf.math.imag(crops), tf.ones_like(tf.math.real(crops))],
                      axis=-1)                                           # (n, M, M, 3)
    # The four taps of a patch land on one (M+1)^2 footprint: sum them there first (four padded
    # copies), then ONE segment sum of n (M+1)^2 rows instead of 4 n M^2.
    footprint = tf.add_n([tf.pad(weights[t] * values, [[0, 0], [dy, 1 - dy], [dx, 1 - dx], [0, 0]])
                          for t, (dy, dx) in enumerate(_TAPS)])          # (n, M+1, M+1, 3)
    rows = np.arange(side, dtype=np.int64)
    index = ((integer[:, 1, None, None] + rows[None, :, None]) * width
             + integer[:, 0, None, None] + rows[None, None, :])          # (n, M+1, M+1) host
    accumulator = tf.math.unsorted_segment_sum(
        tf.reshape(footprint, (n * side * side, 3)),
        tf.constant(index.reshape(-1).astype(np.int32)), height * width)
    denominator = accumulator[:, 2] + STITCH_NORM_EPS  # real division of Re and Im alike
    obj = tf.complex(accumulator[:, 0] / denominator, accumulator[:, 1] / denominator)
    return tf.reshape(obj, (height, width)).numpy(), origin


def stitch_patches_loop(patches: Any, centres_px: np.ndarray, *,
                        crop_px: int) -> tuple[np.ndarray, tuple[int, int]]:
    """:func:`stitch_patches` with a plain per-patch loop (kept for the benchmark; same result).

    Same parameters, returns and errors as :func:`stitch_patches`; each patch adds its four
    weighted crops into canvas slices of ``tf.Variable`` accumulators, one eager op per tap.
    """
    crops, integer, frac, origin, (height, width) = _prepare(patches, centres_px, crop_px)
    real = tf.Variable(tf.zeros((height, width), tf.float32))
    imag = tf.Variable(tf.zeros((height, width), tf.float32))
    count = tf.Variable(tf.zeros((height, width), tf.float32))
    tap_weights = _tap_weights(frac)
    crops_re, crops_im = tf.math.real(crops), tf.math.imag(crops)
    for k in range(int(crops.shape[0])):
        x, y = int(integer[k, 0]), int(integer[k, 1])
        for (dy, dx), weight in zip(_TAPS, tap_weights, strict=True):
            w = tf.constant(np.float32(weight[k]))
            rows = slice(y + dy, y + dy + crop_px)
            cols = slice(x + dx, x + dx + crop_px)
            real[rows, cols].assign(real[rows, cols] + w * crops_re[k])
            imag[rows, cols].assign(imag[rows, cols] + w * crops_im[k])
            count[rows, cols].assign(count[rows, cols] + w)
    denominator = count + STITCH_NORM_EPS
    obj = tf.complex(real / denominator, imag / denominator)
    return obj.numpy(), origin
