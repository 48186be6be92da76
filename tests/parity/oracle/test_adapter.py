"""The oracle adapter (parity/oracle/adapter.py): hooks, shapes, and agreement with the oracle."""

from __future__ import annotations

import json

import numpy as np
import pytest

from parity.architecture import init_weights
from parity.config import ModelConfig, TrainConfig
from parity.contract import HOOKS, NETWORK_OUTPUT_KEYS, PHYSICS_OUTPUT_KEYS, Adapter, pool_input_keys
from parity.effective import FRAMEWORK_SECTION, effective_config_dict
from parity.oracle.adapter import OracleAdapter
from parity.oracle.network import forward_outputs
from parity.oracle.physics import normalise_probe, poisson_nll
from parity.oracle.stitch import stitch_patches


def physics_inputs(config: ModelConfig, B: int = 2, n_stitch: int = 5,
                   seed: int = 0) -> dict[str, np.ndarray]:
    """Inputs of forward_physics in the documented exchange dtypes."""
    rng = np.random.default_rng(seed)
    N, C = config.N, config.channels

    def complex64(shape):
        return (rng.normal(size=shape) + 1j * rng.normal(size=shape)).astype(np.complex64)

    relative = rng.uniform(-2, 2, size=(B, C, 2))
    relative -= relative.mean(axis=1, keepdims=True)
    return {
        "probe": complex64((N, N)),
        "patches": complex64((B, C, N, N)),
        "relative_px": relative.astype(np.float32),
        "translations_px": rng.uniform(-3, 3, size=(B, C, 2)).astype(np.float32),
        "stitch_patches": complex64((n_stitch, N, N)),
        "stitch_centres_px": rng.uniform(30, 60, size=(n_stitch, 2)),
        "pred_amplitude": rng.uniform(0.1, 4, size=(B, C, N, N)).astype(np.float32),
        "obs_amplitude": rng.uniform(0, 4, size=(B, C, N, N)).astype(np.float32),
    }


def test_identity_and_capabilities():
    adapter = OracleAdapter()
    assert isinstance(adapter, Adapter)
    assert (adapter.name, adapter.framework) == ("oracle", "numpy")
    assert adapter.capabilities == {"effective_config", "forward_physics", "network_forward",
                                    "stitch"}
    assert adapter.capabilities <= set(HOOKS)
    env = adapter.environment()
    json.dumps(env)  # JSON-able
    assert env["numpy"] == np.__version__ and env["compute_dtype"] == "float64"


def test_hooks_outside_capabilities_say_so():
    adapter = OracleAdapter()
    with pytest.raises(NotImplementedError, match="oracle does not implement train_steps"):
        adapter.train_steps(ModelConfig(), TrainConfig(), {}, [])
    with pytest.raises(NotImplementedError, match="oracle does not implement loss_and_grads"):
        adapter.loss_and_grads(ModelConfig(), TrainConfig(), {}, {})


@pytest.mark.parametrize("gridsize", [1, 2])
def test_forward_physics_keys_shapes_and_values(gridsize):
    config = ModelConfig(N=32, gridsize=gridsize, probe_mask=True)
    inputs = physics_inputs(config)
    out = OracleAdapter().forward_physics(config, inputs)
    B, C, N, P = 2, config.channels, 32, config.canvas_px
    assert set(out) == set(PHYSICS_OUTPUT_KEYS)
    shapes = {"probe_normalised": (N, N), "exit_wave": (B, C, N, N),
              "farfield_amplitude": (B, C, N, N), "translated": (B, C, N, N),
              "merged_canvas": (B, P, P), "extracted": (B, C, N, N), "stitched_origin_px": (2,),
              "poisson_nll": (), "mae": ()}
    for key, shape in shapes.items():
        assert out[key].shape == shape, key
    assert out["stitched"].ndim == 2
    assert out["stitched_origin_px"].dtype == np.int64
    # reference precision: float64 / complex128 (documented in the adapter)
    assert out["exit_wave"].dtype == np.complex128 and out["poisson_nll"].dtype == np.float64
    probe = normalise_probe(inputs["probe"], config.probe_scale)
    np.testing.assert_array_equal(out["probe_normalised"], probe)
    stitched = stitch_patches(inputs["stitch_patches"], inputs["stitch_centres_px"],
                              crop_px=config.stitch_crop_px)
    np.testing.assert_array_equal(out["stitched"], stitched.reconstructed_obj)
    pred = inputs["pred_amplitude"].astype(np.float64)
    obs = inputs["obs_amplitude"].astype(np.float64)
    assert float(out["poisson_nll"]) == poisson_nll(pred**2, obs**2)


def test_forward_physics_names_missing_and_misshaped_inputs():
    config = ModelConfig(N=32, gridsize=2)
    inputs = physics_inputs(config)
    adapter = OracleAdapter()
    with pytest.raises(KeyError, match="translations_px"):
        adapter.forward_physics(config, {k: v for k, v in inputs.items()
                                         if k != "translations_px"})
    with pytest.raises(ValueError, match=r"probe has shape \(16, 16\); expected \(32, 32\)"):
        adapter.forward_physics(config, {**inputs, "probe": inputs["probe"][:16, :16]})
    with pytest.raises(ValueError, match="relative_px has shape"):
        adapter.forward_physics(config, {**inputs, "relative_px": inputs["relative_px"][:, :2]})


def test_network_forward_and_stitch_delegate():
    config = ModelConfig(N=32, gridsize=2)
    weights = init_weights(config, seed=3)
    rng = np.random.default_rng(1)
    batch = {"diffraction": rng.uniform(0, 1, (1, 4, 32, 32)).astype(np.float32),
             "relative_px": np.array([[[1, 1], [-1, 1], [1, -1], [-1, -1]]], np.float32),
             "probe": np.ones((32, 32), np.complex64), "intensity_scale": np.float64(2.0)}
    out = OracleAdapter().network_forward(config, weights, batch)
    direct = forward_outputs(config, weights, batch)
    assert list(out) == [*NETWORK_OUTPUT_KEYS, *pool_input_keys(config)]
    for key in out:
        np.testing.assert_array_equal(out[key], direct[key], err_msg=key)  # deterministic
    patches = out["trimmed_obj"]
    obj, origin = OracleAdapter().stitch(patches, np.array([[20.0, 21.5]]), crop_px=8)
    assert obj.dtype == np.complex128 and len(origin) == 2


def test_predict_with_weights_default_runs_network_forward_batch_by_batch():
    """The contract's default (used by the oracle and any adapter without its own): every group
    through :meth:`network_forward`, whatever the batch size."""
    config = ModelConfig(N=32, gridsize=1)
    weights = init_weights(config, seed=4)
    rng = np.random.default_rng(2)
    from parity.contract import PreparedData

    data = PreparedData(diffraction=rng.uniform(0, 1, (5, 1, 32, 32)).astype(np.float32),
                        relative_px=np.zeros((5, 1, 2)), centres_px=rng.uniform(20, 40, (5, 2)),
                        probe=np.ones((32, 32), np.complex64), intensity_scale=2.0,
                        normalisation=1.0)
    adapter = OracleAdapter()
    whole = adapter.network_forward(config, weights, data.batch(slice(0, 5)))["trimmed_obj"]
    for batch_size in (1, 2, 64):
        got = adapter.predict_with_weights(config, weights, data, batch_size=batch_size)
        # float64, one group's forward does not depend on the others: 1e-12 of max at most.
        np.testing.assert_allclose(got, whole, rtol=0, atol=1e-12 * np.abs(whole).max())
    with pytest.raises(ValueError, match="batch_size=0"):
        adapter.predict_with_weights(config, weights, data, batch_size=0)


def test_effective_config_is_the_shared_dict():
    model, train = ModelConfig(N=64, gridsize=2), TrainConfig(epochs=2)
    effective = OracleAdapter().effective_config(model, train)
    assert json.loads(json.dumps(effective)) == effective  # JSON round trip is exact
    shared = effective_config_dict(model, train)
    assert {k: v for k, v in effective.items() if k != FRAMEWORK_SECTION} == {
        k: v for k, v in shared.items() if k != FRAMEWORK_SECTION}
    assert effective[FRAMEWORK_SECTION]["backend"] == "oracle"
