"""backends/torch/train.py: the loss, numerics and ``fit`` (exact steps: test_steps.py; optimiser:
test_optim.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from backends.torch.train import configure_numerics, fit, loss_value
from parity.config import ModelConfig, TrainConfig
from parity.oracle import physics as oracle

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))
from default_case import ssim, train_default_case


def test_loss_value_matches_oracle(rng: np.random.Generator) -> None:
    pred = (20 * np.abs(rng.standard_normal((2, 4, 32, 32)))).astype(np.float32)
    obs = np.sqrt(rng.poisson(pred.astype(np.float64) ** 2)).astype(np.float32)
    train = TrainConfig(nll_weight=0.7, mae_weight=0.4)
    got = float(loss_value(torch.from_numpy(pred), torch.from_numpy(obs), train))
    expected = (0.7 * oracle.poisson_nll(pred.astype(np.float64) ** 2, obs.astype(np.float64) ** 2)
                + 0.4 * oracle.mae_loss(pred, obs))
    # float32 squares and means over 8k elements: measured 1e-7 relative; allow 1e-6.
    assert got == pytest.approx(expected, rel=1e-6)


def test_configure_numerics_reports_its_flags() -> None:
    flags = configure_numerics(seed=3, deterministic=True)
    assert flags["deterministic_algorithms"] is True and torch.are_deterministic_algorithms_enabled()
    assert flags["matmul_allow_tf32"] is False and flags["cudnn_allow_tf32"] is False
    assert flags["num_threads"] == torch.get_num_threads() >= 1
    first = torch.rand(3)
    configure_numerics(seed=3, deterministic=True)
    np.testing.assert_array_equal(first.numpy(), torch.rand(3).numpy())


def test_fit_rejects_data_of_the_wrong_size(make_case, tmp_path) -> None:
    case = make_case(N=32, gridsize=1, n_positions=20, seed=2)
    with pytest.raises(ValueError, match=r"data patterns are 32x32; the model expects N=64"):
        fit(ModelConfig(N=64), TrainConfig(epochs=1), case.data, tmp_path)
    with pytest.raises(ValueError, match=r"C=1 patterns; gridsize 2 expects C=4"):
        fit(ModelConfig(N=32, gridsize=2), TrainConfig(epochs=1), case.data, tmp_path)


def test_fit_on_the_default_case_starts_reconstructing(tmp_path) -> None:
    """The default case, 4 epochs (~30 s on 2 cores); history, progress and the CSV log.

    Measured: amplitude / phase SSIM 0.427 / 0.342 (1 thread), registered shift < 0.15 px.
    Thresholds 0.33 / 0.25 sit below by a margin for thread count and platform, and well above
    the untrained network; the registered shift must stay under 2 px (a twin or drifting
    reconstruction registers far off).
    """
    seen: list[tuple[int, dict]] = []
    result, before, after = train_default_case(
        "torch", tmp_path, epochs=4, progress=lambda epoch, logs: seen.append((epoch, logs)))
    history = result.history
    assert result.epochs_run == 4 and all(len(history[k]) == 4 for k in ("loss", "val_loss", "lr"))
    assert [epoch for epoch, _ in seen] == list(range(4))
    assert [logs["loss"] for _, logs in seen] == history["loss"]
    assert [logs["val_loss"] for _, logs in seen] == history["val_loss"]
    assert history["lr"][0] == float(np.float32(1e-3))
    assert all(b <= a for a, b in zip(history["lr"], history["lr"][1:], strict=False))
    assert history["loss"][-1] < history["loss"][0] - 20, history["loss"]
    log = tmp_path / "lightning_logs" / "version_0" / "metrics.csv"
    header = log.read_text().splitlines()[0].split(",")
    assert {"loss", "val_loss", "lr"} <= set(header)
    amplitude, phase = ssim(after)
    assert amplitude >= 0.33 and phase >= 0.25, (ssim(before), ssim(after))
    assert amplitude > ssim(before)[0] + 0.1
    assert max(abs(v) for v in after["alignment"]["shift_px"]) < 2.0, after["alignment"]


@pytest.mark.slow
def test_fit_reconstructs_the_default_case(tmp_path) -> None:
    """The default case for 10 epochs (~60 s on 2 cores; ``parity run`` trains it for 8).

    Measured: amplitude SSIM 0.46-0.47, phase 0.29-0.31, registered shift <= 0.03 px (1 and 2
    threads). Thresholds 0.40 / 0.24.
    """
    result, _, after = train_default_case("torch", tmp_path, epochs=10)
    assert result.history["loss"][-1] < result.history["loss"][0]
    amplitude, phase = ssim(after)
    assert amplitude >= 0.40 and phase >= 0.24, ssim(after)
    assert max(abs(v) for v in after["alignment"]["shift_px"]) < 1.0, after["alignment"]


def test_fit_stops_early_and_reduces_the_rate_as_keras(make_case, tmp_path) -> None:
    """With a rate of 1e-30 the weights cannot move (every update is far below one float32 ulp
    of the weights and of the loss), so every epoch repeats the same ``loss`` and ``val_loss``.
    Keras then: ReduceLROnPlateau(patience 1) halves the rate at the end of epochs 1, 2, ...;
    EarlyStopping(patience 2) stops after epoch 2 (wait reaches 2): three epochs run."""
    case = make_case(N=32, gridsize=1, n_positions=40, seed=6)
    train = TrainConfig(epochs=10, batch_size=16, learning_rate=1e-30, shuffle=False,
                        validation_fraction=0.2, plateau_patience=1, plateau_factor=0.5,
                        plateau_min_lr=1e-32, early_stop_patience=2)
    result = fit(case.config, train, case.data, tmp_path)
    history = result.history
    assert result.epochs_run == 3
    assert history["loss"] == [history["loss"][0]] * 3
    assert history["val_loss"] == [history["val_loss"][0]] * 3
    assert history["lr"] == [float(np.float32(v)) for v in (1e-30, 1e-30, 5e-31)]


@pytest.mark.gpu
@pytest.mark.parametrize("fast", [False, True])
def test_fit_and_infer_on_cuda(make_case, tmp_path, fast: bool) -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    from backends.torch import _device_scope
    from backends.torch.infer import infer

    case = make_case(N=32, gridsize=2, n_positions=48, seed=3)
    train = TrainConfig(epochs=2, batch_size=8, validation_fraction=0.2)
    torch.cuda.reset_peak_memory_stats()
    with _device_scope("cuda"):
        result = fit(case.config, train, case.data, tmp_path / "cuda", fast=fast)
        first = infer(tmp_path / "cuda", case.data)
        again = infer(tmp_path / "cuda", case.data)
    assert torch.cuda.max_memory_allocated() > 0  # this training ran on the GPU
    assert all(np.isfinite(result.history[k]).all() for k in ("loss", "val_loss", "lr"))
    np.testing.assert_array_equal(first, again)  # same bundle, same device: the same bits
    if not fast:  # cuDNN vs oneDNN, TF32 off: one epoch of float32 rounding apart (as fast vs eager)
        with _device_scope("cpu"):
            cpu = fit(case.config, train, case.data, tmp_path / "cpu")
        assert result.history["loss"][0] == pytest.approx(cpu.history["loss"][0], rel=1e-3)


@pytest.mark.slow
def test_fast_path_trains_like_the_parity_path(make_case, tmp_path) -> None:
    """``fast=True`` (torch.compile; bf16 only on CUDA) on the CPU: same first-epoch loss up to
    the rounding of fused kernels (rtol 1e-3: one epoch of a chaotic optimisation in float32)."""
    case = make_case(N=32, gridsize=1, n_positions=40, seed=6)
    train = TrainConfig(epochs=1, batch_size=8, validation_fraction=0.2)
    eager = fit(case.config, train, case.data, tmp_path / "eager")
    fast = fit(case.config, train, case.data, tmp_path / "fast", fast=True)
    assert fast.history["loss"][0] == pytest.approx(eager.history["loss"][0], rel=1e-3)
    assert fast.history["val_loss"][0] == pytest.approx(eager.history["val_loss"][0], rel=1e-3)
