"""backends/torch/infer.py: the bundle, reloading it in a fresh process, and its errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch

from backends.torch.infer import infer, load_bundle, predict_patches
from backends.torch.weights import export_weights
from parity.contract import PreparedData

BUNDLE_FILES = ("config.json", "weights.npz", "probe.npy", "model.ckpt")


def test_bundle_layout(trained_bundle) -> None:
    bundle, case, result = trained_bundle
    assert result.bundle_dir == bundle and result.epochs_run == 1
    assert all((bundle / name).is_file() for name in BUNDLE_FILES)
    config = json.loads((bundle / "config.json").read_text())
    assert set(config) == {"backend", "model", "train", "intensity_scale", "history"}
    assert config["backend"] == "torch"
    assert config["model"] == asdict(case.config)
    assert config["intensity_scale"] == case.data.intensity_scale
    assert config["history"] == {k: list(v) for k, v in result.history.items()}
    np.testing.assert_array_equal(np.load(bundle / "probe.npy"), case.data.probe)
    state = torch.load(bundle / "model.ckpt", weights_only=True)
    model, _ = load_bundle(bundle)
    assert set(state) == set(model.state_dict())
    with np.load(bundle / "weights.npz") as npz:
        exported = export_weights(model)
        assert set(npz.files) == set(exported)
        for name in npz.files:
            np.testing.assert_array_equal(npz[name], exported[name])


def test_infer_in_a_fresh_process_is_bit_identical(trained_bundle, tmp_path: Path) -> None:
    bundle, case, _ = trained_bundle
    expected = infer(bundle, case.data)
    assert expected.shape == (case.data.diffraction.shape[0], 32, 32)
    assert expected.dtype == np.complex64 and np.isfinite(expected).all()
    np.savez(tmp_path / "data.npz", **case.data.to_arrays())
    script = textwrap.dedent(f"""
        import sys, numpy as np, torch
        torch.set_num_threads({torch.get_num_threads()})
        from parity.contract import PreparedData
        from backends.torch.infer import infer
        with np.load({str(tmp_path / "data.npz")!r}) as npz:
            data = PreparedData.from_arrays({{k: npz[k] for k in npz.files}})
        np.save({str(tmp_path / "out.npy")!r}, infer({str(bundle)!r}, data))
        assert "tensorflow" not in sys.modules
    """)
    root = Path(__file__).resolve().parents[3]
    env = {**os.environ, "PYTHONPATH": str(root)}
    done = subprocess.run([sys.executable, "-c", script], env=env, cwd=root,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    # Same bundle, same device, same threads: the same bits (tolerance 0).
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), expected)


@pytest.mark.parametrize("missing", BUNDLE_FILES)
def test_missing_bundle_file_is_named(trained_bundle, tmp_path: Path, missing: str) -> None:
    bundle, case, _ = trained_bundle
    copy = Path(shutil.copytree(bundle, tmp_path / "bundle"))
    (copy / missing).unlink()
    with pytest.raises(FileNotFoundError, match=missing.replace(".", r"\.")):
        infer(copy, case.data)


def test_unreadable_bundle_files_are_named(trained_bundle, tmp_path: Path) -> None:
    bundle, _, _ = trained_bundle
    copy = Path(shutil.copytree(bundle, tmp_path / "bundle"))
    (copy / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"config\.json is not a valid bundle config"):
        load_bundle(copy)
    shutil.copy(bundle / "config.json", copy / "config.json")
    (copy / "model.ckpt").write_bytes(b"garbage")
    with pytest.raises(ValueError, match=r"model\.ckpt is not a readable torch checkpoint"):
        load_bundle(copy)
    shutil.copy(bundle / "model.ckpt", copy / "model.ckpt")
    with np.load(bundle / "weights.npz") as npz:
        weights = {k: npz[k] for k in npz.files}
    weights["encoder.block0.conv0.bias"] = weights["encoder.block0.conv0.bias"] + 1.0
    np.savez(copy / "weights.npz", **weights)
    with pytest.raises(ValueError, match=r"weights\.npz disagrees with .*model\.ckpt at "
                                         r"\['encoder\.block0\.conv0\.bias'\]"):
        load_bundle(copy)


def test_predict_patches_batching_and_errors(trained_bundle, make_case) -> None:
    bundle, case, _ = trained_bundle
    model, _ = load_bundle(bundle)
    full = predict_patches(model, case.data, batch_size=64)
    np.testing.assert_array_equal(predict_patches(model, case.data, batch_size=64), full)
    small = predict_patches(model, case.data, batch_size=5)
    # Different batch shapes may pick different conv kernels: float32 rounding only (1e-5 of max).
    assert np.abs(small - full).max() <= 1e-5 * np.abs(full).max()
    other = make_case(N=64, gridsize=2, n_positions=20, seed=4).data
    with pytest.raises(ValueError, match=r"data groups are \(C=4, N=64\); the model expects "
                                         r"\(C=4, N=32\)"):
        predict_patches(model, other)
    with pytest.raises(ValueError, match="batch_size=0"):
        predict_patches(model, case.data, batch_size=0)
    nan = case.data.to_arrays()
    nan["diffraction"] = nan["diffraction"].copy()
    nan["diffraction"][0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="non-finite"):  # PreparedData rejects NaN on the way in
        PreparedData.from_arrays(nan)
