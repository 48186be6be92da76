"""The PtychoPINN autoencoder described as data: layer ladder, neutral weight names and shapes.

Both backends build their network from :func:`conv_layers`, in this order, under these names, so
that weights move between them by name (:mod:`parity.conventions` fixes the array layout:
kernels ``(kh, kw, in, out)``, biases ``(out,)``).

Architecture (PtychoPINN ``ptycho/model.py``, skip-less, no batch-norm):

* encoder: ``log2(N/8)`` blocks of [conv3x3-ReLU, conv3x3-ReLU, max-pool 2], widths
  ``f * (2048/N) * 2**i`` (N=64, f=1: 32, 64, 128), down to 8x8;
* two decoders (amplitude, phase), each ``log2(N/8) - 1`` blocks of [conv-ReLU, conv-ReLU,
  nearest upsample 2] with the encoder widths reversed (minus the deepest), ending at ``N/2``
  (``f * 32`` channels for N >= 64);
* head: conv3x3 on all but the last 4 channels -> ``C_out`` channels -> activation (sigmoid
  amplitude, ``pi * tanh`` phase) -> zero-pad ``N/4`` per side (the object lives in the central
  ``N/2`` square);
* optional border branch (``probe_big``): [conv-ReLU, conv-ReLU, upsample 2] of width
  ``f * 2048/N`` on the last 4 channels, conv3x3 -> ``C_out``, swish, times the border mask.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from parity.config import ModelConfig

__all__ = [
    "BORDER_CHANNELS",
    "PHASE_SCALE_RAD",
    "ConvLayer",
    "conv_layers",
    "decoder_widths",
    "encoder_widths",
    "init_weights",
    "weight_shapes",
]

#: Channels of the decoder output reserved for the border branch (the reference's ``[..., -4:]``).
BORDER_CHANNELS: int = 4

#: Scale of the phase head: ``phase = PHASE_SCALE_RAD * tanh(x)`` (PtychoPINN: pi, so the phase
#: spans the full (-pi, pi) range). Backends import this name; the self-test rebinds it in one
#: backend to reproduce an activation-scale port bug.
PHASE_SCALE_RAD: float = math.pi


@dataclass(frozen=True)
class ConvLayer:
    """One 3x3 'same' convolution of the network.

    Attributes
    ----------
    name : str
        Neutral name; weights are ``<name>.kernel`` and ``<name>.bias``.
    in_channels, out_channels : int
        Channel counts.
    activation : str
        ``relu``, ``linear`` (heads: activation applied by the head itself).
    """

    name: str
    in_channels: int
    out_channels: int
    activation: str = "relu"
    kernel_size: int = 3


def encoder_widths(config: ModelConfig) -> list[int]:
    """Widths of the encoder blocks, shallow to deep."""
    depth = int(math.log2(config.N // 8))
    base = config.n_filters_scale * 2048 // config.N
    return [base * 2**i for i in range(depth)]


def decoder_widths(config: ModelConfig) -> list[int]:
    """Widths of the decoder-base blocks, deep to shallow."""
    return list(reversed(encoder_widths(config)[:-1]))


def conv_layers(config: ModelConfig) -> list[ConvLayer]:
    """Every convolution of the network, in build order, with neutral names."""
    layers: list[ConvLayer] = []
    channels = config.channels
    for i, width in enumerate(encoder_widths(config)):
        layers.append(ConvLayer(f"encoder.block{i}.conv0", channels, width))
        layers.append(ConvLayer(f"encoder.block{i}.conv1", width, width))
        channels = width
    bottleneck = channels
    for branch in ("decoder_amp", "decoder_phase"):
        channels = bottleneck
        for i, width in enumerate(decoder_widths(config)):
            layers.append(ConvLayer(f"{branch}.block{i}.conv0", channels, width))
            layers.append(ConvLayer(f"{branch}.block{i}.conv1", width, width))
            channels = width
        layers.append(ConvLayer(f"{branch}.head", channels - BORDER_CHANNELS,
                                config.output_channels, activation="linear"))
        if config.probe_big:
            border = config.n_filters_scale * 2048 // config.N
            layers.append(ConvLayer(f"{branch}.border.conv0", BORDER_CHANNELS, border))
            layers.append(ConvLayer(f"{branch}.border.conv1", border, border))
            layers.append(ConvLayer(f"{branch}.border_head", border, config.output_channels,
                                    activation="linear"))
    return layers


def weight_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Neutral name -> shape of every trainable weight, in build order."""
    shapes: dict[str, tuple[int, ...]] = {}
    for layer in conv_layers(config):
        k = layer.kernel_size
        shapes[f"{layer.name}.kernel"] = (k, k, layer.in_channels, layer.out_channels)
        shapes[f"{layer.name}.bias"] = (layer.out_channels,)
    return shapes


def init_weights(config: ModelConfig, seed: int) -> dict[str, np.ndarray]:
    """Glorot-uniform kernels and zero biases (Keras defaults), float32, from a NumPy seed.

    The same seed gives the same weights on every machine, so both backends can start from one set.

    Notes
    -----
    ``limit = sqrt(6 / (fan_in + fan_out))`` with ``fan_in = kh*kw*in`` and ``fan_out = kh*kw*out``.
    """
    rng = np.random.default_rng(seed)
    weights: dict[str, np.ndarray] = {}
    for name, shape in weight_shapes(config).items():
        if name.endswith(".kernel"):
            kh, kw, cin, cout = shape
            limit = math.sqrt(6.0 / (kh * kw * cin + kh * kw * cout))
            weights[name] = rng.uniform(-limit, limit, size=shape).astype(np.float32)
        else:
            weights[name] = np.zeros(shape, dtype=np.float32)
    return weights
