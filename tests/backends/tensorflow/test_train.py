"""``backends.tensorflow.train``: the loss, numerics, Keras Adam, ``fit`` (exact steps:
``test_steps.py``)."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from backends.tensorflow import train as tf_train  # noqa: E402
from parity.config import ModelConfig, TrainConfig  # noqa: E402
from parity.oracle import network as oracle_network  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))
from default_case import ssim, train_default_case  # noqa: E402


@pytest.mark.parametrize(("nll", "mae"), [(1.0, 0.0), (0.0, 1.0), (0.3, 0.7)])
def test_loss_value_matches_oracle(nll, mae, rng):
    train = TrainConfig(nll_weight=nll, mae_weight=mae)
    pred = (np.abs(rng.standard_normal((3, 4, 32, 32))) * 30).astype(np.float32)
    obs = (np.abs(rng.standard_normal((3, 4, 32, 32))) * 30).astype(np.float32)
    got = float(tf_train.loss_value(tf.constant(pred), tf.constant(obs), train))
    # float32 means over 12288 terms of size ~1e3: ~1e-7 relative; 1e-6 is 10x that.
    np.testing.assert_allclose(got, oracle_network.loss_value(pred, obs, train), rtol=1e-6)


def test_configure_numerics_reports_flags():
    flags = tf_train.configure_numerics(seed=3, deterministic=True)
    assert flags["op_determinism"] is True
    assert flags["tensor_float_32_execution"] is False
    assert flags["seed"] == 3 and flags["intra_op_threads"] >= 0


def _tiny_fit(make_case, tmp_path, **train_options):
    case = make_case(N=32, gridsize=1, n_positions=40, seed=1)
    train = TrainConfig(**{"epochs": 3, "batch_size": 8, "validation_fraction": 0.2, "seed": 2,
                           **train_options})
    logs = []
    result = tf_train.fit(case.config, train, case.data, tmp_path,
                          progress=lambda epoch, log: logs.append((epoch, dict(log))))
    return case, result, logs


@pytest.mark.slow  # covered in the default run by the CI gate's training
def test_fit_is_deterministic_and_reports_history(make_case, tmp_path):
    _, first, logs = _tiny_fit(make_case, tmp_path / "a")
    _, second, _ = _tiny_fit(make_case, tmp_path / "b")
    assert first.epochs_run == 3 and first.seconds > 0
    assert set(first.history) == {"loss", "val_loss", "lr"}
    assert all(len(values) == 3 for values in first.history.values())
    assert [epoch for epoch, _ in logs] == [0, 1, 2]
    assert set(logs[0][1]) == {"loss", "val_loss", "lr"}
    assert first.history == second.history  # seeded init and shuffling, deterministic kernels
    a = np.load(tmp_path / "a" / "weights.npz")
    b = np.load(tmp_path / "b" / "weights.npz")
    for name in a.files:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_fit_plateau_follows_keras_semantics(make_case, tmp_path):
    # min_delta larger than any change: only the first epoch counts as an improvement, then the
    # rate halves after every epoch (patience 1) down to min_lr.
    _, result, _ = _tiny_fit(make_case, tmp_path, epochs=5, shuffle=False, plateau_patience=1,
                             plateau_factor=0.5, plateau_min_delta=1e9, plateau_min_lr=3e-4,
                             early_stop_patience=10)
    expected = np.float32([1e-3, 1e-3, 5e-4, 3e-4, 3e-4])  # 2.5e-4 clipped to min_lr
    np.testing.assert_array_equal(np.float32(result.history["lr"]), expected)


def test_fit_early_stopping_on_a_flat_training_loss(make_case, tmp_path):
    # A learning rate of 1e-30 leaves the float32 losses unchanged; without shuffling the epoch
    # loss repeats exactly, so patience 1 stops after the second epoch.
    _, result, _ = _tiny_fit(make_case, tmp_path, epochs=6, shuffle=False, learning_rate=1e-30,
                             early_stop_patience=1)
    assert result.epochs_run == 2
    assert result.history["loss"][0] == result.history["loss"][1]


@pytest.mark.slow  # covered in the default run by the CI gate's training
def test_fit_without_validation_groups(make_case, tmp_path):
    _, result, _ = _tiny_fit(make_case, tmp_path, epochs=1, validation_fraction=0.0)
    assert result.history["val_loss"] == [] and len(result.history["loss"]) == 1


def test_fit_rejects_data_of_another_size(make_case, tmp_path):
    case = make_case(N=32, gridsize=1, n_positions=40, seed=1)
    with pytest.raises(ValueError, match="data patterns are 32x32; the model expects N=64"):
        tf_train.fit(ModelConfig(N=64), TrainConfig(epochs=1), case.data, tmp_path)
    with pytest.raises(ValueError, match="gridsize 2 expects C=4"):
        tf_train.fit(dataclasses.replace(case.config, gridsize=2), TrainConfig(epochs=1),
                     case.data, tmp_path)


def test_fit_on_the_default_case_starts_reconstructing(tmp_path):
    """The default case, 4 epochs (~40 s on 2 cores).

    Measured: amplitude / phase SSIM 0.417 / 0.325 (1 thread), registered shift < 0.15 px.
    Thresholds 0.33 / 0.25 sit below by a margin for thread count and platform, and well above
    the untrained network; the registered shift must stay under 2 px (a twin or drifting
    reconstruction registers far off).
    """
    result, before, after = train_default_case("tensorflow", tmp_path, epochs=4)
    loss = result.history["loss"]
    assert result.epochs_run == 4 and loss[-1] < loss[0] - 20, loss
    amplitude, phase = ssim(after)
    assert amplitude >= 0.33 and phase >= 0.25, (ssim(before), ssim(after))
    assert amplitude > ssim(before)[0] + 0.1
    assert max(abs(v) for v in after["alignment"]["shift_px"]) < 2.0, after["alignment"]


@pytest.mark.slow
def test_fit_reconstructs_the_default_case(tmp_path):
    """The default case for 10 epochs (~90 s on 2 cores; ``parity run`` trains it for 8).

    Measured: amplitude SSIM 0.51-0.52, phase 0.32-0.37, registered shift <= 0.1 px (1 and 2
    threads). Thresholds 0.42 / 0.25.
    """
    result, _, after = train_default_case("tensorflow", tmp_path, epochs=10)
    assert result.history["loss"][-1] < result.history["loss"][0]
    amplitude, phase = ssim(after)
    assert amplitude >= 0.42 and phase >= 0.25, ssim(after)
    assert max(abs(v) for v in after["alignment"]["shift_px"]) < 1.0, after["alignment"]
