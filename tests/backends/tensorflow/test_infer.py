"""``backends.tensorflow.infer``: the bundle written by ``fit``, reloaded in a fresh process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from backends.tensorflow import infer as tf_infer  # noqa: E402
from backends.tensorflow import model as tf_model  # noqa: E402

REPO = Path(__file__).resolve().parents[3]


def test_bundle_holds_the_four_files(trained_bundle):
    bundle, case, train, result = trained_bundle
    assert result.bundle_dir == bundle
    assert sorted(p.name for p in bundle.iterdir() if not p.name.startswith(".")) == [
        "config.json", "model.weights.h5", "probe.npy", "weights.npz"]
    config = json.loads((bundle / "config.json").read_text())
    assert config["backend"] == "tensorflow"
    assert config["model"]["N"] == case.config.N and config["train"]["seed"] == train.seed
    assert config["intensity_scale"] == case.data.intensity_scale
    assert config["history"] == {k: list(v) for k, v in result.history.items()}
    np.testing.assert_array_equal(np.load(bundle / "probe.npy"), case.data.probe)


def test_infer_in_a_fresh_process_is_bit_identical(trained_bundle, tmp_path):
    bundle, case, _, _ = trained_bundle
    here = tf_infer.infer(bundle, case.data)
    assert here.shape == (case.data.diffraction.shape[0], case.config.N, case.config.N)
    assert here.dtype == np.complex64
    np.savez(tmp_path / "data.npz", **case.data.to_arrays())
    script = (
        "import sys, numpy as np\n"
        "from parity.contract import PreparedData\n"
        "from backends.tensorflow.infer import infer\n"
        "data = PreparedData.from_arrays(dict(np.load(sys.argv[2])))\n"
        "np.save(sys.argv[3], infer(sys.argv[1], data))\n"
    )
    # The fresh process must run the kernels with this process's thread count (set by the
    # conftest or by configure_numerics, whichever started TensorFlow's runtime first): thread
    # partitioning changes float32 reduction order.
    threads = tf.config.threading.get_intra_op_parallelism_threads()
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    completed = subprocess.run(
        [sys.executable, "-c", script, str(bundle), str(tmp_path / "data.npz"),
         str(tmp_path / "fresh.npy")], cwd=REPO, env=env, capture_output=True, text=True,
        timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]
    np.testing.assert_array_equal(np.load(tmp_path / "fresh.npy"), here)


def test_predict_patches_matches_the_forward_pass(trained_bundle, helpers):
    bundle, case, _, _ = trained_bundle
    model, _ = tf_infer.load_bundle(bundle)
    predicted = tf_infer.predict_patches(model, case.data, batch_size=16)
    again = tf_infer.predict_patches(model, case.data, batch_size=16)
    np.testing.assert_array_equal(predicted, again)
    forward = tf_model.forward_outputs(model, case.data.batch(slice(0, 16)))["trimmed_obj"]
    # Traced inference vs the eager forward pass: float32 rounding of fused kernels only.
    helpers.close(forward, predicted[:16], rtol_of_max=helpers.NETWORK_RTOL,
                  what="trimmed_obj (infer vs forward)")
    other_batching = tf_infer.predict_patches(model, case.data, batch_size=5)
    helpers.close(predicted, other_batching, rtol_of_max=helpers.NETWORK_RTOL,
                  what="trimmed_obj (batch 16 vs 5)")
    with pytest.raises(ValueError, match="batch_size=0"):
        tf_infer.predict_patches(model, case.data, batch_size=0)


@pytest.mark.parametrize("name", ["config.json", "weights.npz", "probe.npy", "model.weights.h5"])
def test_missing_bundle_file_is_named(trained_bundle, tmp_path, name):
    bundle, case, _, _ = trained_bundle
    copy = tmp_path / "bundle"
    shutil.copytree(bundle, copy)
    (copy / name).unlink()
    with pytest.raises(FileNotFoundError, match=name.replace(".", r"\.")):
        tf_infer.infer(copy, case.data)


def test_unreadable_or_inconsistent_bundle_is_named(trained_bundle, tmp_path):
    bundle = trained_bundle[0]
    broken = tmp_path / "broken"
    shutil.copytree(bundle, broken)
    (broken / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"config\.json"):
        tf_infer.load_bundle(broken)
    shutil.copy(bundle / "config.json", broken / "config.json")
    (broken / "model.weights.h5").write_bytes(b"not an h5 file")
    with pytest.raises(ValueError, match=r"model\.weights\.h5"):
        tf_infer.load_bundle(broken)
    shutil.copy(bundle / "model.weights.h5", broken / "model.weights.h5")
    weights = dict(np.load(bundle / "weights.npz"))
    weights["encoder.block0.conv0.bias"] = weights["encoder.block0.conv0.bias"] + 1.0
    np.savez(broken / "weights.npz", **weights)
    with pytest.raises(ValueError, match=r"weights\.npz disagrees.*encoder\.block0\.conv0\.bias"):
        tf_infer.load_bundle(broken)


def test_predict_rejects_data_of_another_shape(trained_bundle, make_case):
    bundle, _, _, _ = trained_bundle
    model, _ = tf_infer.load_bundle(bundle)
    other = make_case(N=32, gridsize=1, n_positions=40, seed=1)
    with pytest.raises(ValueError, match=r"data groups are \(C=1, N=32\); the model expects "
                                         r"\(C=4, N=32\)"):
        tf_infer.predict_patches(model, other.data)
