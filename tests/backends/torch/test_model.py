"""backends/torch/model.py: network build, forward outputs, input errors (weights: test_weights.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from backends.torch.model import build_model, forward_outputs
from backends.torch.weights import export_weights, import_weights
from parity.architecture import conv_layers, decoder_widths, init_weights, weight_shapes
from parity.config import ModelConfig
from parity.contract import NETWORK_OUTPUT_KEYS, pool_input_keys
from parity.oracle import network as oracle_network
from parity.oracle import physics as oracle


def _batch(rng: np.random.Generator, config: ModelConfig, B: int = 2) -> dict[str, np.ndarray]:
    N, C = config.N, config.channels
    rel = rng.uniform(-3.5, 3.5, (B, C, 2)) + np.array([0.31, -0.17])
    rel = rel - rel.mean(axis=1, keepdims=True)
    k = np.arange(N) - N // 2
    probe = np.exp(-(k[:, None] ** 2 + k[None, :] ** 2) / (2 * (N / 8) ** 2))
    return {
        "diffraction": rng.uniform(0.0, 2.0, (B, C, N, N)).astype(np.float32),
        "relative_px": rel.astype(np.float32),
        "probe": (probe * np.exp(0.3j)).astype(np.complex64),
        "intensity_scale": np.asarray(12.5),
    }


def _model(config: ModelConfig, seed: int = 7) -> torch.nn.Module:
    model = build_model(config, seed=0)
    import_weights(model, init_weights(config, seed))
    return model


@pytest.mark.parametrize("N", [64, 128])
@pytest.mark.parametrize("gridsize", [1, 2])
@pytest.mark.parametrize("probe_big", [False, True])
def test_forward_with_neutral_weights(helpers, rng: np.random.Generator, N: int, gridsize: int,
                                      probe_big: bool) -> None:
    config = ModelConfig(N=N, gridsize=gridsize, probe_big=probe_big, probe_mask=probe_big)
    batch = _batch(rng, config)
    out = forward_outputs(_model(config), batch)
    assert set(out) == {*NETWORK_OUTPUT_KEYS, *pool_input_keys(config)}
    B, C, q = 2, config.channels, N // 4
    widths = [layer.out_channels for layer in conv_layers(config)]
    expected = {
        "encoded": ((B, widths[2 * int(math.log2(N // 8)) - 1], 8, 8), np.float32),
        "decoded_amp": ((B, decoder_widths(config)[-1], N // 2, N // 2), np.float32),
        "amplitude": ((B, C, N, N), np.float32),
        "phase": ((B, C, N, N), np.float32),
        "object_patches": ((B, C, N, N), np.complex64),
        "trimmed_obj": ((B, N, N), np.complex64),
        "pred_amplitude": ((B, C, N, N), np.float32),
    }
    for key, (shape, dtype) in expected.items():
        assert out[key].shape == shape and out[key].dtype == dtype, (key, out[key].shape)
        assert np.isfinite(out[key]).all(), key
    border = np.ones((N, N), bool)
    border[q:-q, q:-q] = False
    # Without the border branch the decoder writes only the central N/2 square (exact zeros).
    assert (out["amplitude"][..., border] == 0).all() != probe_big
    assert np.abs(out["phase"]).max() <= math.pi
    # The physics after the heads against the float64 oracle, from the heads' own outputs.
    patches = out["amplitude"] * np.exp(1j * out["phase"].astype(np.float64))
    helpers.close(patches, out["object_patches"], rtol_of_max=helpers.PHYSICS_RTOL,
                  what="object patches")
    canvas = oracle.merge_group(out["object_patches"], batch["relative_px"], config.canvas_px)
    helpers.close(oracle.trim_canvas(canvas, N), out["trimmed_obj"],
                  rtol_of_max=helpers.PHYSICS_RTOL, what="trimmed_obj")
    psi = oracle.exit_wave(oracle.normalise_probe(batch["probe"], config.probe_scale),
                           oracle.extract_group(canvas, batch["relative_px"], N),
                           mask=config.probe_mask)
    # A chain of five float32 stages (merge, extract, probe, exit wave, FFT), each within
    # ~2.5e-7 of max: measured <= 6e-7 end to end; 2e-6 of max|ref| leaves a 3x margin.
    helpers.close(12.5 * oracle.farfield_amplitude(psi), out["pred_amplitude"],
                  rtol_of_max=2e-6, what="pred_amplitude")


@pytest.mark.parametrize("N", [32, 64, 128])
@pytest.mark.parametrize("gridsize", [1, 2])
@pytest.mark.parametrize("probe_big", [False, True])
def test_forward_matches_float64_oracle_network(helpers, rng: np.random.Generator, N: int,
                                                gridsize: int, probe_big: bool) -> None:
    config = ModelConfig(N=N, gridsize=gridsize, probe_big=probe_big, probe_mask=probe_big)
    batch = _batch(rng, config)
    weights = init_weights(config, 7)
    expected = oracle_network.forward_outputs(config, weights, batch)
    model = _model(config)
    for channels_last in (False, True):  # the fast path runs channels-last: same formulas
        out = forward_outputs(model.use_channels_last(channels_last), batch)
        for key in (*NETWORK_OUTPUT_KEYS, *pool_input_keys(config)):
            # Up to eleven float32 conv layers of rounding: measured worst 4.5e-6 of max|ref|
            # (phase head), over N in {32, 64, 128}, gridsize 1/2, probe_big on/off, both
            # layouts; 1e-5 leaves a 2x margin. A wrong layer order, activation, padding or
            # kernel layout gives errors of order 1e-1.
            helpers.close(expected[key], out[key], rtol_of_max=1e-5,
                          what=f"{key} (channels_last={channels_last})")


def test_forward_without_object_big(rng: np.random.Generator) -> None:
    config = ModelConfig(N=64, gridsize=2, object_big=False)
    out = forward_outputs(_model(config), _batch(rng, config))
    assert out["object_patches"].shape == (2, 1, 64, 64)
    assert out["pred_amplitude"].shape == (2, 4, 64, 64)
    # One decoded patch, padded: the trimmed object is that patch itself.
    np.testing.assert_array_equal(out["trimmed_obj"], out["object_patches"][:, 0])


def test_first_convolution_is_keras_cross_correlation(rng: np.random.Generator) -> None:
    """A neutral HWIO kernel means the same thing here as in Keras ('same', cross-correlation)."""
    config = ModelConfig(N=64, gridsize=2)
    weights = init_weights(config, 3)
    weights["encoder.block0.conv0.bias"] = rng.uniform(-0.1, 0.1, 32).astype(np.float32)
    model = build_model(config, seed=0)
    import_weights(model, weights)
    captured: list[torch.Tensor] = []
    model.encoder.block0.conv0.register_forward_hook(lambda m, i, o: captured.append(o))
    batch = _batch(rng, config)
    forward_outputs(model, batch)
    x = (batch["diffraction"] * np.float32(12.5) / np.float32(12.5)).astype(np.float64)
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    kernel = weights["encoder.block0.conv0.kernel"].astype(np.float64)  # (kh, kw, in, out)
    expected = np.zeros((2, 32, 64, 64)) + weights["encoder.block0.conv0.bias"][:, None, None]
    for dy in range(3):
        for dx in range(3):
            window = padded[:, :, dy : dy + 64, dx : dx + 64]
            expected += np.einsum("bihw,io->bohw", window, kernel[dy, dx])
    # 36-term float32 dot products of O(1) values: measured 4e-7 of max; allow 5e-6 of max.
    scale = np.abs(expected).max()
    assert np.abs(captured[0].numpy() - expected).max() <= 5e-6 * scale


def test_build_model_native_init_is_seeded_glorot() -> None:
    config = ModelConfig(N=64, gridsize=2)
    first = export_weights(build_model(config, seed=4))
    again = export_weights(build_model(config, seed=4))
    other = export_weights(build_model(config, seed=5))
    for name, shape in weight_shapes(config).items():
        np.testing.assert_array_equal(first[name], again[name])
        if name.endswith(".bias"):
            assert not first[name].any()
            continue
        kh, kw, cin, cout = shape
        limit = math.sqrt(6.0 / (kh * kw * (cin + cout)))
        assert np.abs(first[name]).max() <= limit
        # Uniform(-l, l) has std l/sqrt(3); with >= 36 draws the sample std is within 40 %.
        assert abs(first[name].std() / (limit / math.sqrt(3)) - 1) < 0.4, name
        assert not np.array_equal(first[name], other[name])


def test_bad_batches_raise_clear_errors(rng: np.random.Generator) -> None:
    config = ModelConfig(N=64)
    model = _model(config)
    wrong_n = _batch(rng, ModelConfig(N=32))
    with pytest.raises(ValueError, match=r"diffraction has shape \(2, 1, 32, 32\); expected "
                                         r"\(B, \*\(1, 64, 64\)\) for N=64"):
        forward_outputs(model, wrong_n)
    bad_probe = _batch(rng, config)
    bad_probe["probe"] = bad_probe["probe"][:32, :32]
    with pytest.raises(ValueError, match=r"probe has shape \(32, 32\); expected \(64, 64\)"):
        forward_outputs(model, bad_probe)
    nan = _batch(rng, config)
    nan["diffraction"][1, 0, 5, 7] = np.nan
    with pytest.raises(ValueError, match=r"diffraction has 1 non-finite value"):
        forward_outputs(model, nan)
