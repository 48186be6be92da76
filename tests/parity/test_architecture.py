"""Tests of parity/architecture.py: ladders, names, shapes and the seeded Glorot initialisation."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from parity.architecture import (
    BORDER_CHANNELS,
    conv_layers,
    decoder_widths,
    encoder_widths,
    init_weights,
    weight_shapes,
)
from parity.config import ModelConfig


@pytest.mark.parametrize(
    ("N", "f", "encoder", "decoder"),
    [
        (64, 2, [64, 128, 256], [128, 64]),  # the reference ladder (research brief §2.1)
        (64, 1, [32, 64, 128], [64, 32]),
        (128, 1, [16, 32, 64, 128], [64, 32, 16]),
        (32, 1, [64, 128], [64]),
    ],
)
def test_ladders(N, f, encoder, decoder):
    config = ModelConfig(N=N, n_filters_scale=f)
    assert encoder_widths(config) == encoder
    assert decoder_widths(config) == decoder
    assert N // 2 ** len(encoder) == 8  # bottleneck 8x8
    assert 8 * 2 ** len(decoder) == N // 2  # decoder base ends at N/2


@pytest.mark.parametrize("probe_big", [False, True])
@pytest.mark.parametrize("gridsize", [1, 2])
def test_layer_chain_is_consistent(probe_big, gridsize):
    config = ModelConfig(N=64, gridsize=gridsize, probe_big=probe_big)
    layers = conv_layers(config)
    names = [layer.name for layer in layers]
    assert len(names) == len(set(names))
    by_name = {layer.name: layer for layer in layers}
    assert by_name["encoder.block0.conv0"].in_channels == config.channels
    for branch in ("decoder_amp", "decoder_phase"):
        head = by_name[f"{branch}.head"]
        assert head.in_channels == decoder_widths(config)[-1] - BORDER_CHANNELS
        assert head.out_channels == config.output_channels
        assert head.activation == "linear"
        assert (f"{branch}.border_head" in by_name) == probe_big
        if probe_big:
            assert by_name[f"{branch}.border.conv0"].in_channels == BORDER_CHANNELS
            assert by_name[f"{branch}.border.conv1"].out_channels == 2048 // 64
    # inside each path, a conv's input width is the previous conv's output width
    for prefix in ("encoder.", "decoder_amp.block", "decoder_phase.block"):
        chain = [layer for layer in layers if layer.name.startswith(prefix)]
        for before, after in itertools.pairwise(chain):
            assert after.in_channels == before.out_channels, (before.name, after.name)


def test_weight_shapes_follow_layers():
    config = ModelConfig(N=32, gridsize=2, probe_big=True)
    shapes = weight_shapes(config)
    layers = conv_layers(config)
    assert len(shapes) == 2 * len(layers)
    for layer in layers:
        assert shapes[f"{layer.name}.kernel"] == (3, 3, layer.in_channels, layer.out_channels)
        assert shapes[f"{layer.name}.bias"] == (layer.out_channels,)


def test_init_weights_seeded_glorot():
    config = ModelConfig(N=64)
    weights = init_weights(config, seed=5)
    again = init_weights(config, seed=5)
    other = init_weights(config, seed=6)
    assert list(weights) == list(weight_shapes(config))
    for name, value in weights.items():
        assert value.dtype == np.float32 and value.shape == weight_shapes(config)[name]
        np.testing.assert_array_equal(value, again[name])
        if name.endswith(".bias"):
            np.testing.assert_array_equal(value, 0.0)
        else:
            kh, kw, cin, cout = value.shape
            limit = math.sqrt(6.0 / (kh * kw * (cin + cout)))
            assert np.abs(value).max() <= limit
            assert not np.array_equal(value, other[name])
    big = weights["encoder.block2.conv1.kernel"]  # 3*3*128*128 samples of U(-l, l)
    limit = math.sqrt(6.0 / (9 * 256))
    # std of U(-l, l) is l/sqrt(3); with 147k samples the sample std is within 1 % (about 20 sigma)
    assert abs(big.std() - limit / math.sqrt(3)) < 0.01 * limit / math.sqrt(3)
