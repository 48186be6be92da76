"""backends/torch/adapter.py: lazy imports, registry, every hook through NumPy, device choice."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from backends.torch import _strict_float32
from backends.torch.adapter import TorchAdapter
from backends.torch.infer import infer
from backends.torch.model import build_model, forward_outputs
from backends.torch.steps import loss_and_grads
from backends.torch.weights import import_weights
from parity.architecture import init_weights
from parity.config import ModelConfig, TrainConfig
from parity.contract import HOOKS, PHYSICS_OUTPUT_KEYS, Adapter
from parity.effective import effective_config_dict, shared_part
from parity.oracle import physics as oracle
from parity.oracle.stitch import stitch_patches as oracle_stitch
from parity.registry import load_adapter


def test_importing_the_adapter_imports_no_framework() -> None:
    code = ("import sys, backends.torch, backends.torch.adapter; "
            "from parity.registry import load_adapter; load_adapter('torch'); "
            "print(sorted(m for m in ('torch', 'lightning', 'tensorflow') if m in sys.modules))")
    root = Path(__file__).resolve().parents[3]
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=root, env={**os.environ, "PYTHONPATH": str(root)}, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_registry_finds_the_torch_adapter() -> None:
    adapter = load_adapter("torch", device="cpu")
    assert isinstance(adapter, TorchAdapter)
    assert adapter.name == "torch" and adapter.framework == "torch"
    assert adapter.capabilities == frozenset(HOOKS)


def _physics_inputs(rng: np.random.Generator, helpers, config: ModelConfig) -> dict:
    B, C, N = 2, config.channels, config.N
    rel = rng.uniform(-4, 4, (B, C, 2)) + np.array([0.41, -0.23])
    pred = (25 * np.abs(rng.standard_normal((B, C, N, N)))).astype(np.float32)
    return {
        "probe": helpers.noise(rng, N, N),
        "patches": helpers.noise(rng, B, C, N, N),
        "relative_px": (rel - rel.mean(axis=1, keepdims=True)).astype(np.float32),
        "translations_px": rng.uniform(-9, 9, (B, C, 2)).astype(np.float32),
        "stitch_patches": helpers.noise(rng, 12, N, N),
        "stitch_centres_px": rng.uniform(10, 90, (12, 2)),
        "pred_amplitude": pred,
        "obs_amplitude": np.sqrt(rng.poisson(pred.astype(np.float64) ** 2)).astype(np.float32),
    }


@pytest.mark.parametrize("probe_mask", [False, True])
def test_forward_physics_matches_oracle(helpers, rng: np.random.Generator,
                                        probe_mask: bool) -> None:
    config = ModelConfig(N=32, gridsize=2, probe_mask=probe_mask, stitch_crop_px=12)
    inputs = _physics_inputs(rng, helpers, config)
    out = TorchAdapter(device="cpu").forward_physics(config, inputs)
    assert set(out) == set(PHYSICS_OUTPUT_KEYS)
    probe_n = oracle.normalise_probe(inputs["probe"], config.probe_scale)
    psi = oracle.exit_wave(probe_n.astype(np.complex64), inputs["patches"], mask=probe_mask)
    merged = oracle.merge_group(inputs["patches"], inputs["relative_px"], config.canvas_px)
    stitched = oracle_stitch(inputs["stitch_patches"], inputs["stitch_centres_px"], crop_px=12)
    expected = {
        "probe_normalised": probe_n,
        "exit_wave": psi,
        "farfield_amplitude": oracle.farfield_amplitude(psi.astype(np.complex64)),
        "translated": oracle.translate(inputs["patches"], inputs["translations_px"]),
        "merged_canvas": merged,
        "extracted": oracle.extract_group(merged.astype(np.complex64), inputs["relative_px"],
                                          config.N),
        "stitched": stitched.reconstructed_obj,
    }
    for key, value in expected.items():
        assert out[key].dtype == (np.float32 if key == "farfield_amplitude" else np.complex64)
        helpers.close(value, out[key], rtol_of_max=helpers.PHYSICS_RTOL, what=key)
    assert tuple(out["stitched_origin_px"]) == stitched.origin_px
    for key, value in (("poisson_nll", oracle.poisson_nll(inputs["pred_amplitude"] ** 2,
                                                          inputs["obs_amplitude"] ** 2)),
                       ("mae", oracle.mae_loss(inputs["pred_amplitude"],
                                               inputs["obs_amplitude"]))):
        assert out[key].shape == () and out[key].dtype == np.float64
        assert float(out[key]) == pytest.approx(value, rel=1e-6)  # float32 means (1e-7 measured)


def test_forward_physics_names_missing_inputs_and_probe_mismatch(helpers,
                                                                 rng: np.random.Generator) -> None:
    config = ModelConfig(N=32, gridsize=2, stitch_crop_px=12)
    inputs = _physics_inputs(rng, helpers, config)
    adapter = TorchAdapter(device="cpu")
    with pytest.raises(KeyError, match="obs_amplitude"):
        adapter.forward_physics(config, {k: v for k, v in inputs.items() if k != "obs_amplitude"})
    inputs["probe"] = inputs["probe"][:16, :16]
    with pytest.raises(ValueError, match=r"probe has shape \(16, 16\); expected \(32, 32\)"):
        adapter.forward_physics(config, inputs)


def test_network_forward_and_steps_delegate(make_case) -> None:
    case = make_case(N=32, gridsize=2, n_positions=40, seed=1)
    weights = init_weights(case.config, 9)
    batch = case.data.batch(slice(0, 3))
    adapter = TorchAdapter(device="cpu")
    out = adapter.network_forward(case.config, weights, batch)
    model = build_model(case.config, seed=0)
    import_weights(model, weights)
    direct = forward_outputs(model, batch)
    for key, value in direct.items():
        np.testing.assert_array_equal(out[key], value, err_msg=key)  # same code, same device
    train = TrainConfig()
    hooked = adapter.loss_and_grads(case.config, train, weights, batch)
    plain = loss_and_grads(case.config, train, weights, batch)
    assert set(hooked) == set(plain)
    assert all(np.array_equal(hooked[k], plain[k]) for k in plain)
    steps = adapter.train_steps(case.config, train, weights, [batch, batch])
    assert steps["losses"].shape == (2,)


def test_train_and_infer_hooks(trained_bundle) -> None:
    bundle, case, _ = trained_bundle
    adapter = TorchAdapter(device="cpu")
    np.testing.assert_array_equal(adapter.infer(bundle, case.data), infer(bundle, case.data))
    patches = adapter.infer(bundle, case.data)
    stitched, origin = adapter.stitch(patches, case.data.centres_px, crop_px=12)
    assert stitched.dtype == np.complex64 and len(origin) == 2


def test_predict_with_weights_is_the_inference_pipeline(trained_bundle) -> None:
    """L5's hook: a network built from the bundle's neutral weights predicts what ``infer`` does
    from the bundle (same device, same kernels, same batch size: the same bits)."""
    bundle, case, _ = trained_bundle
    adapter = TorchAdapter(device="cpu")
    with np.load(bundle / "weights.npz") as archive:
        weights = dict(archive)
    got = adapter.predict_with_weights(case.config, weights, case.data)
    np.testing.assert_array_equal(got, adapter.infer(bundle, case.data))
    # And the L2 hook, batch by batch (the contract's default), within float32 rounding.
    default = Adapter.predict_with_weights(adapter, case.config, weights, case.data, batch_size=7)
    np.testing.assert_allclose(got, default, rtol=0, atol=1e-5 * np.abs(got).max())


def test_weights_hooks_round_trip() -> None:
    config = ModelConfig(N=32, gridsize=2, probe_big=True)
    adapter = TorchAdapter(device="cpu")
    model = adapter.build_model(config, seed=1)
    weights = init_weights(config, 2)
    adapter.import_weights(model, weights)
    exported = adapter.export_weights(model)
    assert all(np.array_equal(exported[k], weights[k]) for k in weights)


def test_effective_config_and_environment_are_json() -> None:
    adapter = TorchAdapter(device="cpu")
    config, train = ModelConfig(N=64, gridsize=2), TrainConfig(epochs=3)
    effective = adapter.effective_config(config, train)
    assert shared_part(effective) == shared_part(effective_config_dict(config, train))
    assert effective["framework"]["backend"] == "torch"
    assert effective["framework"]["built_weight_shapes"] == effective["derived"]["weight_shapes"]
    assert "patience=1" in effective["framework"]["plateau_class"]  # Keras 2 -> torch 1
    json.dumps(effective)
    env = adapter.environment()
    json.dumps(env)
    assert env["framework"] == "torch" and env["device"] == "cpu"
    assert env["torch_version"] == torch.__version__
    assert env["matmul_allow_tf32"] is torch.backends.cuda.matmul.allow_tf32


def test_device_choice() -> None:
    auto = TorchAdapter().environment()["device"]
    assert auto == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="not a valid device string"):
        TorchAdapter(device="warp-drive").environment()
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match=r"device 'cuda' requested but "
                                             r"torch.cuda.is_available\(\) is False"):
            TorchAdapter(device="cuda").stitch(np.ones((1, 8, 8), np.complex64),
                                               np.zeros((1, 2)), crop_px=4)
    for other in ("meta", "mps"):  # valid torch devices this backend cannot compute on
        with pytest.raises(ValueError, match=rf"torch device '{other}': this backend runs on "
                                             r"'cpu' or 'cuda' only"):
            TorchAdapter(device=other).environment()


def test_strict_float32_turns_tf32_off() -> None:
    """CUDA devices get IEEE float32 convolutions and matmuls even outside a parity run (PyTorch's
    default leaves cuDNN TF32 on)."""
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    try:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        _strict_float32()
        assert torch.backends.cuda.matmul.allow_tf32 is False
        assert torch.backends.cudnn.allow_tf32 is False
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


@pytest.mark.gpu
def test_cuda_adapter_matches_cpu(helpers, rng: np.random.Generator, make_case) -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    config = ModelConfig(N=32, gridsize=2, stitch_crop_px=12)
    inputs = _physics_inputs(rng, helpers, config)
    cpu = TorchAdapter(device="cpu").forward_physics(config, inputs)
    gpu = TorchAdapter(device="cuda").forward_physics(config, inputs)
    for key in ("exit_wave", "farfield_amplitude", "merged_canvas", "extracted", "stitched"):
        helpers.close(cpu[key], gpu[key], rtol_of_max=helpers.PHYSICS_RTOL, what=key)
    case = make_case(N=32, gridsize=2, n_positions=40, seed=1)
    weights = init_weights(case.config, 9)
    batch = case.data.batch(slice(0, 3))
    out_cpu = TorchAdapter(device="cpu").network_forward(case.config, weights, batch)
    out_gpu = TorchAdapter(device="cuda").network_forward(case.config, weights, batch)
    # cuDNN vs oneDNN convolutions, TF32 off: 1e-5 of max (research/parity_anchors.md L2 GPU).
    for key in ("trimmed_obj", "pred_amplitude"):
        helpers.close(out_cpu[key], out_gpu[key], rtol_of_max=1e-5, what=key)


def test_device_memory_peak_is_per_window_on_cuda_and_none_on_cpu() -> None:
    assert TorchAdapter(device="cpu").device_memory_peak(reset=True) is None
    if not torch.cuda.is_available():
        return
    adapter = TorchAdapter(device="cuda")
    adapter.device_memory_peak(reset=True)
    block = torch.empty(64 * 2**20, dtype=torch.uint8, device="cuda")
    del block
    assert adapter.device_memory_peak(reset=True) >= 64 * 2**20
    assert adapter.device_memory_peak() < 64 * 2**20  # the freed block is not in the new window
