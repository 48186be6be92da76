"""``backends.tensorflow.adapter``: the contract hooks against the float64 oracle adapter."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from backends.tensorflow.adapter import TensorFlowAdapter  # noqa: E402
from parity.architecture import init_weights  # noqa: E402
from parity.config import ModelConfig, TrainConfig  # noqa: E402
from parity.contract import (  # noqa: E402
    HOOKS,
    NETWORK_OUTPUT_KEYS,
    PHYSICS_INPUT_KEYS,
    PHYSICS_OUTPUT_KEYS,
    Adapter,
)
from parity.effective import shared_part  # noqa: E402
from parity.oracle.adapter import OracleAdapter  # noqa: E402

REPO = Path(__file__).resolve().parents[3]


def test_import_does_not_load_tensorflow():
    code = ("import sys, json\nimport backends.tensorflow\nimport backends.tensorflow.adapter\n"
            "from parity.registry import load_adapter\nadapter = load_adapter('tensorflow')\n"
            "print(json.dumps([type(adapter).__name__, sorted(adapter.capabilities), "
            "[m for m in ('tensorflow', 'keras', 'torch') if m in sys.modules]]))")
    completed = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                               text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr[-3000:]
    name, capabilities, loaded = json.loads(completed.stdout.strip().splitlines()[-1])
    assert name == "TensorFlowAdapter" and capabilities == sorted(HOOKS)
    assert loaded == []


def _physics_inputs(rng, helpers, config: ModelConfig) -> dict[str, np.ndarray]:
    N, C, B = config.N, config.channels, 2
    relative = rng.uniform(-2.5, 3.5, size=(B, C, 2))
    return {
        "probe": helpers.gaussian_probe(N) * np.complex64(1.3 - 0.4j),
        "patches": helpers.noise(rng, B, C, N, N),
        "relative_px": relative.astype(np.float32),
        "translations_px": (rng.uniform(-5, 5, size=(B, C, 2)) + np.array([0.3, -0.6])).astype(np.float32),
        "stitch_patches": helpers.noise(rng, 12, N, N),
        "stitch_centres_px": rng.uniform(30, 70, size=(12, 2)),
        "pred_amplitude": (np.abs(rng.standard_normal((B, C, N, N))) * 10).astype(np.float32),
        "obs_amplitude": np.sqrt(rng.poisson(50.0, size=(B, C, N, N))).astype(np.float32),
    }


@pytest.mark.parametrize("config", [ModelConfig(N=64, gridsize=1),
                                    ModelConfig(N=32, gridsize=2, probe_mask=True,
                                                stitch_crop_px=16)],
                         ids=["N64-g1", "N32-g2-mask"])
def test_forward_physics_matches_oracle_adapter(config, rng, helpers):
    inputs = _physics_inputs(rng, helpers, config)
    got = TensorFlowAdapter().forward_physics(config, inputs)
    expected = OracleAdapter().forward_physics(config, inputs)
    assert set(got) == set(PHYSICS_OUTPUT_KEYS)
    np.testing.assert_array_equal(got["stitched_origin_px"], expected["stitched_origin_px"])
    for key in PHYSICS_OUTPUT_KEYS:
        if key in ("stitched_origin_px", "poisson_nll", "mae"):
            continue
        helpers.close(expected[key], got[key], rtol_of_max=helpers.PHYSICS_RTOL, what=key)
    for key in ("poisson_nll", "mae"):
        assert got[key].dtype == np.float64 and got[key].shape == ()
        # float32 means of a few thousand terms: ~1e-7 relative; 1e-6 is 10x that.
        np.testing.assert_allclose(got[key], expected[key], rtol=1e-6, err_msg=key)


def test_forward_physics_names_missing_inputs_and_wrong_probe(rng, helpers):
    config = ModelConfig(N=32, stitch_crop_px=16)
    inputs = _physics_inputs(rng, helpers, config)
    with pytest.raises(KeyError, match="translations_px"):
        TensorFlowAdapter().forward_physics(
            config, {k: v for k, v in inputs.items() if k != "translations_px"})
    assert set(PHYSICS_INPUT_KEYS) <= set(inputs)
    with pytest.raises(ValueError, match=r"probe has shape \(64, 64\); expected \(32, 32\)"):
        TensorFlowAdapter().forward_physics(config, dict(inputs, probe=helpers.gaussian_probe(64)))


def test_network_forward_matches_oracle_adapter(rng, helpers):
    config = ModelConfig(N=32, gridsize=2, probe_big=True, stitch_crop_px=16)
    weights = init_weights(config, seed=9)
    batch = helpers.random_batch(rng, config, B=2)
    got = TensorFlowAdapter().network_forward(config, weights, batch)
    expected = OracleAdapter().network_forward(config, weights, batch)
    for key in NETWORK_OUTPUT_KEYS:
        helpers.close(expected[key], got[key], rtol_of_max=helpers.NETWORK_RTOL, what=key)


def test_effective_config_matches_the_shared_derivation():
    model, train = ModelConfig(N=64, gridsize=2, probe_big=True), TrainConfig(seed=4)
    ours = TensorFlowAdapter().effective_config(model, train)
    reference = OracleAdapter().effective_config(model, train)
    assert shared_part(ours) == shared_part(reference)
    assert ours["framework"]["conv_layout"] == "NHWC"
    assert ours["framework"]["built_weight_shapes"] == ours["derived"]["weight_shapes"]
    json.dumps(ours)


def test_environment_is_jsonable_and_reports_numerics():
    adapter = TensorFlowAdapter()
    adapter.configure_numerics(seed=0, deterministic=True)
    env = adapter.environment()
    json.dumps(env)
    assert env["framework"] == "tensorflow" and env["tensorflow_version"] == tf.__version__
    assert env["op_determinism"] is True and env["tensor_float_32_execution"] is False
    assert "tf_enable_onednn_opts" in env and env["intra_op_threads"] >= 0


def test_every_tensorflow_import_turns_tf32_off_and_grows_gpu_memory():
    """The library API computes in IEEE float32 too (TF enables TF32 by default on Ampere+), and
    TensorFlow does not map every GPU's memory at start-up (the torch job shares the GPU)."""
    from backends.tensorflow import ENV_DEFAULTS, _import_tensorflow

    tf.config.experimental.enable_tensor_float_32_execution(True)
    try:
        _import_tensorflow()
        assert tf.config.experimental.tensor_float_32_execution_enabled() is False
    finally:
        tf.config.experimental.enable_tensor_float_32_execution(False)
    assert ENV_DEFAULTS["TF_FORCE_GPU_ALLOW_GROWTH"] == "true"
    assert "TF_FORCE_GPU_ALLOW_GROWTH" in os.environ  # set (unless the caller had) before import


def test_weights_hooks_round_trip():
    adapter = TensorFlowAdapter(device="cpu")
    config = ModelConfig(N=32, stitch_crop_px=16)
    model = adapter.build_model(config, seed=1)
    weights = init_weights(config, seed=2)
    adapter.import_weights(model, weights)
    exported = adapter.export_weights(model)
    for name in weights:
        np.testing.assert_array_equal(exported[name], weights[name], err_msg=name)


def test_unavailable_gpu_request_is_an_error():
    if tf.config.list_logical_devices("GPU"):
        pytest.skip("a GPU is visible: the request would be valid")
    with pytest.raises(ValueError, match="TensorFlow sees no GPU"):
        TensorFlowAdapter(device="gpu").build_model(ModelConfig(N=32, stitch_crop_px=16), seed=0)


def test_predict_with_weights_is_the_inference_pipeline(trained_bundle):
    """L5's hook: a network built from the bundle's neutral weights predicts what ``infer`` does
    from the bundle (same kernels, same batch size: the same bits)."""
    bundle, case, _, _ = trained_bundle
    adapter = TensorFlowAdapter()
    with np.load(bundle / "weights.npz") as archive:
        weights = dict(archive)
    got = adapter.predict_with_weights(case.config, weights, case.data)
    np.testing.assert_array_equal(got, adapter.infer(bundle, case.data))
    # And the L2 hook, batch by batch (the contract's default), within float32 rounding.
    default = Adapter.predict_with_weights(adapter, case.config, weights, case.data, batch_size=7)
    np.testing.assert_allclose(got, default, rtol=0, atol=1e-5 * np.abs(got).max())


def test_train_infer_stitch_through_the_adapter(trained_bundle, tmp_path, helpers):
    bundle, case, _, _ = trained_bundle
    adapter = TensorFlowAdapter()
    patches = adapter.infer(bundle, case.data)
    obj, origin = adapter.stitch(patches, case.data.centres_px,
                                 crop_px=case.config.stitch_crop_px)
    reference, ref_origin = OracleAdapter().stitch(patches, case.data.centres_px,
                                                   crop_px=case.config.stitch_crop_px)
    assert origin == ref_origin
    helpers.close(reference, obj, rtol_of_max=helpers.PHYSICS_RTOL, what="adapter stitch")
    result = adapter.train(case.config, TrainConfig(epochs=1, batch_size=16), case.data,
                           tmp_path, initial_weights=init_weights(case.config, seed=0))
    assert result.epochs_run == 1 and (tmp_path / "model.weights.h5").is_file()


def test_device_memory_peak_is_none_on_cpu():
    assert TensorFlowAdapter(device="cpu").device_memory_peak(reset=True) is None
    if not tf.config.list_logical_devices("GPU"):
        assert TensorFlowAdapter().device_memory_peak() is None  # own placement: the CPU
