"""``backends.tensorflow.model``: the network against the float64 oracle network, errors (weights:
``test_weights.py``)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from backends.tensorflow import model as tf_model  # noqa: E402
from backends.tensorflow import weights as tf_weights  # noqa: E402
from parity.architecture import init_weights, weight_shapes  # noqa: E402
from parity.config import ModelConfig  # noqa: E402
from parity.contract import NETWORK_OUTPUT_KEYS, pool_input_keys  # noqa: E402
from parity.oracle import network as oracle_network  # noqa: E402

FORWARD_CASES = [
    ModelConfig(N=64, gridsize=1),
    ModelConfig(N=64, gridsize=1, probe_big=True, probe_mask=True),
    ModelConfig(N=64, gridsize=2),
    ModelConfig(N=64, gridsize=2, probe_big=True, amp_activation="swish"),
    ModelConfig(N=128, gridsize=1, probe_big=True),
    ModelConfig(N=128, gridsize=2),
    ModelConfig(N=32, gridsize=2, object_big=False, probe_big=True, stitch_crop_px=16),
]


def _ids(config: ModelConfig) -> str:
    return (f"N{config.N}-g{config.gridsize}-big{int(config.probe_big)}"
            f"-obj{int(config.object_big)}-{config.amp_activation}")


@pytest.mark.parametrize("config", FORWARD_CASES, ids=_ids)
def test_forward_matches_oracle_network(config, rng, helpers):
    weights = init_weights(config, seed=7)
    model = tf_model.build_model(config, seed=0)
    tf_weights.import_weights(model, weights)
    batch = helpers.random_batch(rng, config, B=2)
    got = tf_model.forward_outputs(model, batch)
    expected = oracle_network.forward_outputs(config, weights, batch)
    keys = (*NETWORK_OUTPUT_KEYS, *pool_input_keys(config))
    assert set(got) == set(keys)
    for key in keys:
        want_dtype = np.complex64 if np.iscomplexobj(expected[key]) else np.float32
        assert got[key].dtype == want_dtype, f"{key}: dtype {got[key].dtype}, want {want_dtype}"
        helpers.close(expected[key], got[key], rtol_of_max=helpers.NETWORK_RTOL, what=key)


def test_shapes_in_exchange_layout(rng, helpers):
    config = ModelConfig(N=64, gridsize=2)
    out = tf_model.forward_outputs(tf_model.build_model(config, seed=1),
                                   helpers.random_batch(rng, config, B=3))
    assert out["encoded"].shape == (3, 128, 8, 8)
    assert out["decoded_amp"].shape == out["decoded_phase"].shape == (3, 32, 32, 32)
    assert out["amplitude"].shape == out["object_patches"].shape == (3, 4, 64, 64)
    assert out["trimmed_obj"].shape == (3, 64, 64)
    assert out["pred_amplitude"].shape == (3, 4, 64, 64)
    # The object lives in the central N/2 square without probe_big: exact zeros outside.
    assert not np.any(out["amplitude"][..., :16, :])


def test_native_init_is_seeded_glorot_with_zero_bias():
    config = ModelConfig(N=64)
    first = tf_weights.export_weights(tf_model.build_model(config, seed=11))
    again = tf_weights.export_weights(tf_model.build_model(config, seed=11))
    other = tf_weights.export_weights(tf_model.build_model(config, seed=12))
    for name, shape in weight_shapes(config).items():
        np.testing.assert_array_equal(first[name], again[name], err_msg=name)
        if name.endswith(".bias"):
            assert not first[name].any(), name
            continue
        kh, kw, cin, cout = shape
        limit = np.sqrt(6.0 / (kh * kw * (cin + cout)))
        assert np.abs(first[name]).max() <= limit, name
        assert not np.array_equal(first[name], other[name]), name
    # Distinct layers of one shape get distinct draws (one derived seed per layer).
    assert not np.array_equal(first["decoder_amp.block0.conv1.kernel"],
                              first["decoder_phase.block0.conv1.kernel"])


def test_bad_batches_get_clear_errors(rng, helpers):
    config = ModelConfig(N=64, gridsize=2)
    model = tf_model.build_model(config, seed=0)
    batch = helpers.random_batch(rng, config, B=2)
    wrong_n = dict(batch, diffraction=batch["diffraction"][..., :32, :32])
    with pytest.raises(ValueError, match=r"diffraction has shape \(2, 4, 32, 32\); expected "
                                         r"\(B, \*\(4, 64, 64\)\) for N=64, gridsize=2"):
        tf_model.forward_outputs(model, wrong_n)
    wrong_c = dict(batch, diffraction=batch["diffraction"][:, :1])
    with pytest.raises(ValueError, match="gridsize=2"):
        tf_model.forward_outputs(model, wrong_c)
    small_probe = dict(batch, probe=helpers.gaussian_probe(32))
    with pytest.raises(ValueError, match=r"probe has shape \(32, 32\); expected \(64, 64\)"):
        tf_model.forward_outputs(model, small_probe)
    nan = batch["diffraction"].copy()
    nan[1, 2, 5, 7] = np.nan
    with pytest.raises(ValueError, match=r"1 non-finite value\(s\).*\(1, 2, 5, 7\)"):
        tf_model.forward_outputs(model, dict(batch, diffraction=nan))
    with pytest.raises(ValueError, match="relative_px has shape"):
        tf_model.forward_outputs(model, dict(batch, relative_px=batch["relative_px"][:, :2]))
    with pytest.raises(KeyError, match="intensity_scale"):
        tf_model.forward_outputs(model, {k: v for k, v in batch.items()
                                         if k != "intensity_scale"})
    with pytest.raises(ValueError, match=r"intensity_scale=-1\.0"):
        tf_model.forward_outputs(model, dict(batch, intensity_scale=np.float64(-1.0)))


def test_forward_needs_physics():
    model = tf_model.build_model(ModelConfig(N=32, stitch_crop_px=16), seed=0)
    inputs = {"diffraction_scaled": tf.zeros((1, 1, 32, 32)), "relative_px": tf.zeros((1, 1, 2))}
    with pytest.raises(RuntimeError, match="set_physics"):
        model(inputs)


def test_phase_scale_constant_is_read_at_trace_time(rng, helpers, monkeypatch):
    """The self-test's activation-scale injection rebinds PHASE_SCALE_RAD in this module."""
    config = ModelConfig(N=32, stitch_crop_px=16)
    weights = init_weights(config, seed=1)
    model = tf_model.build_model(config, seed=0)
    tf_weights.import_weights(model, weights)
    batch = helpers.random_batch(rng, config, B=1)
    phase = tf_model.forward_outputs(model, batch)["phase"]
    monkeypatch.setattr(tf_model, "PHASE_SCALE_RAD", float(np.pi / 2))
    halved = tf_model.forward_outputs(model, batch)["phase"]
    np.testing.assert_allclose(halved, phase / 2, rtol=1e-6, atol=1e-7)  # float32 scaling only
    assert dataclasses.asdict(config) == dataclasses.asdict(model.config)
