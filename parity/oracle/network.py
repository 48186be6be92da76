"""Float64 NumPy forward of the whole PtychoPINN network: the L2 reference.

Follows ``docs/backends.md`` section "model.py" step by step, with the layer ladder, names and
shapes of :func:`parity.architecture.conv_layers` and the physics of :mod:`parity.oracle.physics`.
Internally the convolutions run channel-last ``(B, H, W, C)`` (one matrix product per layer);
every array handed back is in the exchange layout of :mod:`parity.conventions` (channel-first).

Layer semantics (Keras defaults, which the PyTorch backend reproduces):

* conv: 3x3, stride 1, 'same' zero padding, cross-correlation
  ``out[y, x, o] = b[o] + sum_{i, j, c} in[y + i - 1, x + j - 1, c] * K[i, j, c, o]``
  with the kernel in the neutral layout ``(kh, kw, in, out)``;
* max-pool: 2x2 windows, stride 2 ('valid'; every side is even here);
* upsample: nearest neighbour x2 (each pixel repeated into a 2x2 block).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy.special import expit

from parity.architecture import BORDER_CHANNELS, decoder_widths, encoder_widths, weight_shapes
from parity.config import ModelConfig, TrainConfig
from parity.contract import BATCH_KEYS, check_keys, pool_input_keys
from parity.conventions import centre_mask, support_margin_px
from parity.oracle.physics import (
    exit_wave,
    extract_group,
    farfield_amplitude,
    mae_loss,
    merge_group,
    normalise_probe,
    pad_to_canvas,
    poisson_nll,
    trim_canvas,
)

__all__ = [
    "activation",
    "check_batch",
    "check_weights",
    "conv2d_same",
    "forward_outputs",
    "loss_value",
    "max_pool_2x2",
    "pool_windows_2x2",
    "upsample_nearest_2x",
]


def conv2d_same(features: np.ndarray, kernel: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """3x3 'same' convolution (cross-correlation, zero padding), channel-last.

    Parameters
    ----------
    features : numpy.ndarray
        ``(B, H, W, C_in)`` real input.
    kernel : numpy.ndarray
        ``(kh, kw, C_in, C_out)`` kernel (neutral layout); ``kh`` and ``kw`` odd.
    bias : numpy.ndarray
        ``(C_out,)`` bias.

    Returns
    -------
    numpy.ndarray
        ``(B, H, W, C_out)`` float64.

    Notes
    -----
    ``out[b, y, x, o] = bias[o] + sum_{i, j, c} pad(in)[b, y + i, x + j, c] * K[i, j, c, o]``,
    computed as one tensor contraction over a sliding-window view (no loop over pixels).
    """
    x = np.asarray(features, dtype=np.float64)
    k = np.asarray(kernel, dtype=np.float64)
    if x.ndim != 4:
        raise ValueError(f"conv input has shape {x.shape}; expected (B, H, W, C_in)")
    kh, kw, cin, _ = k.shape
    if cin != x.shape[-1]:
        raise ValueError(f"conv kernel expects {cin} input channels; input has {x.shape[-1]}")
    if kh % 2 == 0 or kw % 2 == 0:
        raise ValueError(f"kernel is {kh}x{kw}; 'same' padding here needs odd sizes")
    padded = np.pad(x, ((0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2), (0, 0)))
    # windows: (B, H, W, C_in, kh, kw); contract (C_in, kh, kw) against K's (in, kh, kw) axes.
    windows = np.lib.stride_tricks.sliding_window_view(padded, (kh, kw), axis=(1, 2))
    out = np.tensordot(windows, k, axes=((3, 4, 5), (2, 0, 1)))
    return out + np.asarray(bias, dtype=np.float64)


def pool_windows_2x2(features: np.ndarray, *, height_axis: int) -> np.ndarray:
    """The 2x2, stride-2 max-pool windows of the spatial axes ``height_axis`` and
    ``height_axis + 1`` as a trailing axis of 4 (row-major inside the window); both sides halved.

    ``(B, H, W, C)`` with ``height_axis=1`` -> ``(B, H/2, W/2, C, 4)``; channel-first
    ``(B, F, H, W)`` with ``height_axis=2`` -> ``(B, F, H/2, W/2, 4)``.
    """
    shape = features.shape
    H, W = shape[height_axis], shape[height_axis + 1]
    if H % 2 or W % 2:
        raise ValueError(f"max-pool input is {H}x{W}; expected even sides")
    split = features.reshape((*shape[:height_axis], H // 2, 2, W // 2, 2,
                              *shape[height_axis + 2:]))
    inside = np.moveaxis(split, (height_axis + 1, height_axis + 3), (-2, -1))
    return inside.reshape((*inside.shape[:-2], 4))


def max_pool_2x2(features: np.ndarray) -> np.ndarray:
    """2x2 max-pool with stride 2 of ``(B, H, W, C)`` (H, W even) -> ``(B, H/2, W/2, C)``."""
    return pool_windows_2x2(features, height_axis=1).max(axis=-1)


def upsample_nearest_2x(features: np.ndarray) -> np.ndarray:
    """Nearest-neighbour x2 upsampling of ``(B, H, W, C)`` -> ``(B, 2H, 2W, C)``."""
    return np.repeat(np.repeat(features, 2, axis=1), 2, axis=2)


def activation(name: str, x: np.ndarray) -> np.ndarray:
    """Apply a named activation elementwise (float64).

    ``sigmoid`` = 1/(1+e^-x); ``swish`` = x*sigmoid(x); ``softplus`` = log(1+e^x);
    ``relu`` = max(x, 0); ``pi_tanh`` = pi*tanh(x) (the phase head); ``linear`` = x.
    """
    if name == "sigmoid":
        return expit(x)
    if name == "swish":
        return x * expit(x)
    if name == "softplus":
        return np.logaddexp(0.0, x)
    if name == "relu":
        return np.maximum(x, 0.0)
    if name == "pi_tanh":
        return math.pi * np.tanh(x)
    if name == "linear":
        return x
    raise ValueError(
        f"unknown activation {name!r}; expected sigmoid, swish, softplus, relu, pi_tanh or linear"
    )


def check_weights(config: ModelConfig, weights: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Validate neutral-layout weights against the ladder of ``config``; return float64 copies.

    Raises
    ------
    KeyError
        Naming every missing and every unexpected weight.
    ValueError
        Naming a weight whose shape differs (expected vs got) or that holds NaN/inf.
    """
    expected = weight_shapes(config)
    missing = [name for name in expected if name not in weights]
    unexpected = sorted(set(weights) - set(expected))
    if missing or unexpected:
        raise KeyError(f"weights do not match the network: missing {missing}, "
                       f"unexpected {unexpected}")
    checked: dict[str, np.ndarray] = {}
    for name, shape in expected.items():
        value = np.asarray(weights[name])
        if value.shape != shape:
            raise ValueError(f"weight {name!r} has shape {value.shape}; expected {shape}")
        if value.dtype.kind not in "fiu":
            raise TypeError(f"weight {name!r} has dtype {value.dtype}; expected real floats")
        value = value.astype(np.float64)
        if not np.isfinite(value).all():
            raise ValueError(f"weight {name!r} holds non-finite values")
        checked[name] = value
    return checked


def check_batch(config: ModelConfig, batch: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray,
                                                                       np.ndarray, float]:
    """Validate a batch (:data:`parity.contract.BATCH_KEYS`) against ``config``.

    Returns
    -------
    diffraction : numpy.ndarray
        ``(B, C, N, N)`` float64 normalised amplitudes.
    relative_px : numpy.ndarray
        ``(B, C, 2)`` float64 relative offsets (x, y).
    probe : numpy.ndarray
        ``(N, N)`` complex128 raw probe.
    intensity_scale : float
        ``s``.

    Raises
    ------
    KeyError
        If a batch key is missing.
    ValueError
        On a shape that does not match ``config`` or a non-positive intensity scale.
    """
    check_keys("batch", batch, BATCH_KEYS)
    N, C = config.N, config.channels
    diffraction = np.asarray(batch["diffraction"], dtype=np.float64)
    if diffraction.ndim != 4 or diffraction.shape[1:] != (C, N, N):
        raise ValueError(f"batch diffraction has shape {diffraction.shape}; expected (B, {C}, {N}, "
                         f"{N}) for N={N}, gridsize={config.gridsize}")
    B = diffraction.shape[0]
    relative = np.asarray(batch["relative_px"], dtype=np.float64)
    if relative.shape != (B, C, 2):
        raise ValueError(f"batch relative_px has shape {relative.shape}; expected {(B, C, 2)}")
    probe = np.asarray(batch["probe"])
    if probe.shape != (N, N):
        raise ValueError(f"batch probe has shape {probe.shape}; expected {(N, N)}")
    scale = float(np.asarray(batch["intensity_scale"]))
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"intensity_scale={scale}; expected a positive finite number")
    return diffraction, relative, probe.astype(np.complex128), scale


def _conv(h: np.ndarray, w: Mapping[str, np.ndarray], name: str, act: str) -> np.ndarray:
    return activation(act, conv2d_same(h, w[f"{name}.kernel"], w[f"{name}.bias"]))


def _decoder(config: ModelConfig, w: Mapping[str, np.ndarray], encoded: np.ndarray,
             branch: str, head_activation: str) -> tuple[np.ndarray, np.ndarray]:
    """Decoder base, head and optional border branch of one branch; channel-last in and out."""
    h = encoded
    for i in range(len(decoder_widths(config))):
        h = _conv(h, w, f"{branch}.block{i}.conv0", "relu")
        h = _conv(h, w, f"{branch}.block{i}.conv1", "relu")
        h = upsample_nearest_2x(h)
    base = h  # (B, N/2, N/2, F')
    q = support_margin_px(config.N)
    head = _conv(base[..., :-BORDER_CHANNELS], w, f"{branch}.head", head_activation)
    out = np.pad(head, ((0, 0), (q, q), (q, q), (0, 0)))
    if config.probe_big:
        b = _conv(base[..., -BORDER_CHANNELS:], w, f"{branch}.border.conv0", "relu")
        b = _conv(b, w, f"{branch}.border.conv1", "relu")
        b = upsample_nearest_2x(b)
        b = _conv(b, w, f"{branch}.border_head", "swish")
        out = out + b * (1.0 - centre_mask(config.N))[None, :, :, None]
    return base, out


def _channel_first(features: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.moveaxis(features, -1, 1))


def forward_outputs(config: ModelConfig, weights: Mapping[str, np.ndarray],
                    batch: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Forward pass of the PtychoPINN network in float64, every stage of the L2 contract.

    Parameters
    ----------
    config : ModelConfig
        Architecture and physics options.
    weights : Mapping[str, numpy.ndarray]
        Neutral-layout weights (:func:`parity.architecture.weight_shapes`), any real dtype;
        computed in float64.
    batch : Mapping[str, numpy.ndarray]
        :data:`parity.contract.BATCH_KEYS`: ``diffraction`` (B, C, N, N) normalised amplitudes X,
        ``relative_px`` (B, C, 2) (x, y) pixels, ``probe`` (N, N) raw complex probe,
        ``intensity_scale`` 0-d ``s``.

    Returns
    -------
    dict[str, numpy.ndarray]
        Every key of :data:`parity.contract.NETWORK_OUTPUT_KEYS`, channel-first, float64 or
        complex128: ``encoded`` (B, F, 8, 8); ``decoded_amp`` / ``decoded_phase``
        (B, F', N/2, N/2) decoder-base features (all channels, border ones included);
        ``amplitude`` / ``phase`` (B, C_out, N, N) final head outputs (activation, N/4 zero pad,
        plus the border branch with ``probe_big``); ``object_patches`` (B, C_out, N, N);
        ``trimmed_obj`` (B, N, N); ``pred_amplitude`` (B, C, N, N) in count units; then the
        optional :func:`parity.contract.pool_input_keys` (each encoder block before its pool).

    Raises
    ------
    KeyError, ValueError, TypeError
        From :func:`check_weights` and :func:`check_batch`.

    Notes
    -----
    ``pred_amplitude = s * |F(normalise(P) * extract(merge(A exp(i phi))))|`` with the encoder fed
    ``(s X) / s`` (the reference's input and its IntensityScaler).
    """
    w = check_weights(config, weights)
    diffraction, relative, probe, s = check_batch(config, batch)
    h = np.moveaxis((s * diffraction) / s, 1, -1)  # IntensityScaler, then channel-last
    pool_inputs = {}
    for key, i in zip(pool_input_keys(config), range(len(encoder_widths(config))), strict=True):
        h = _conv(h, w, f"encoder.block{i}.conv0", "relu")
        h = _conv(h, w, f"encoder.block{i}.conv1", "relu")
        pool_inputs[key] = _channel_first(h)
        h = max_pool_2x2(h)
    encoded = h
    decoded_amp, amplitude = _decoder(config, w, encoded, "decoder_amp", config.amp_activation)
    decoded_phase, phase = _decoder(config, w, encoded, "decoder_phase", "pi_tanh")
    amplitude = _channel_first(amplitude)
    phase = _channel_first(phase)
    object_patches = amplitude * np.exp(1j * phase)
    if config.object_big:
        canvas = merge_group(object_patches, relative, config.canvas_px)
    else:
        canvas = pad_to_canvas(object_patches, config.canvas_px)[:, 0]
    trimmed_obj = np.ascontiguousarray(trim_canvas(canvas, config.N))
    patches = extract_group(canvas, relative, config.N)
    psi = exit_wave(normalise_probe(probe, config.probe_scale), patches, mask=config.probe_mask)
    outputs = {
        "encoded": _channel_first(encoded),
        "decoded_amp": _channel_first(decoded_amp),
        "decoded_phase": _channel_first(decoded_phase),
        "amplitude": amplitude,
        "phase": phase,
        "object_patches": object_patches,
        "trimmed_obj": trimmed_obj,
        "pred_amplitude": s * farfield_amplitude(psi),
        **pool_inputs,
    }
    return outputs


def loss_value(pred_amplitude: np.ndarray, observed_amplitude: np.ndarray,
               train: TrainConfig) -> float:
    """Training loss in float64: twin of the backends' ``train.loss_value``.

    Parameters
    ----------
    pred_amplitude : numpy.ndarray
        ``(B, C, N, N)`` predicted amplitude ``s * A_hat`` (count units).
    observed_amplitude : numpy.ndarray
        Same shape, observed ``s * X``.
    train : TrainConfig
        Supplies ``nll_weight`` and ``mae_weight``.

    Returns
    -------
    float
        ``nll_weight * poisson_nll(pred**2, obs**2) + mae_weight * mae_loss(pred, obs)``, each
        term a mean over every element.
    """
    pred = np.asarray(pred_amplitude, dtype=np.float64)
    obs = np.asarray(observed_amplitude, dtype=np.float64)
    if pred.shape != obs.shape:
        raise ValueError(f"pred_amplitude has shape {pred.shape}; observed has {obs.shape}")
    return float(train.nll_weight * poisson_nll(pred**2, obs**2)
                 + train.mae_weight * mae_loss(pred, obs))
