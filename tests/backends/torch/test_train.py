"""backends/torch/train.py: loss, Keras Adam, plateau mapping, the exact step hooks and ``fit``."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from backends.torch.model import build_model, forward_outputs, import_weights
from backends.torch.train import (
    KerasAdam,
    _keras_plateau,
    configure_numerics,
    fit,
    loss_and_grads,
    loss_value,
    train_steps,
)
from parity.architecture import init_weights
from parity.config import ModelConfig, TrainConfig
from parity.oracle import physics as oracle

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))
from default_case import ssim, train_default_case


def _keras_adam(weights: list[np.ndarray], grads: list[list[np.ndarray]], lrs: list[float],
                beta_1: float, beta_2: float, epsilon: float) -> list[np.ndarray]:
    """NumPy float64 transcription of Keras 3 ``Adam.update_step`` over a sequence of steps."""
    w = [x.astype(np.float64) for x in weights]
    m = [np.zeros_like(x) for x in w]
    v = [np.zeros_like(x) for x in w]
    for t, (step_grads, lr) in enumerate(zip(grads, lrs, strict=True), start=1):
        alpha = lr * math.sqrt(1 - beta_2**t) / (1 - beta_1**t)
        for i, g in enumerate(step_grads):
            g = g.astype(np.float64)
            m[i] += (g - m[i]) * (1 - beta_1)
            v[i] += (g * g - v[i]) * (1 - beta_2)
            w[i] -= (m[i] * alpha) / (np.sqrt(v[i]) + epsilon)
    return w


def _keras_plateau_lrs(val_losses: list[float], *, lr: float, factor: float, patience: int,
                       min_lr: float, min_delta: float) -> list[float]:
    """Keras 3 ``ReduceLROnPlateau.on_epoch_end`` (cooldown 0): the rate used in each epoch."""
    best, wait, used = math.inf, 0, []
    for current in val_losses:
        used.append(lr)
        if current < best - min_delta:
            best, wait = current, 0
        else:
            wait += 1
            if wait >= patience and lr > np.float32(min_lr):
                lr, wait = max(lr * factor, min_lr), 0
    return used


def _torch_plateau_lrs(val_losses: list[float], train: TrainConfig) -> list[float]:
    optimizer = KerasAdam([torch.zeros(1, requires_grad=True)], lr=train.learning_rate)
    scheduler = _keras_plateau(optimizer, train)
    used = []
    for value in val_losses:
        used.append(optimizer.param_groups[0]["lr"])
        scheduler.step(value)
    return used


def test_plateau_trigger_epochs_match_a_hand_computed_keras_sequence() -> None:
    val = [1.0, 0.9, 0.95, 0.92, 0.91, 0.95, 0.96, 0.5, 0.6, 0.7, 0.8, 0.9, 0.9, 0.9, 0.9]
    train = TrainConfig(learning_rate=1e-3, plateau_factor=0.5, plateau_patience=2,
                        plateau_min_lr=1e-4, plateau_min_delta=1e-4)
    # By hand (Keras: reduce when `wait >= 2`): epochs 2, 3 do not improve on 0.9 -> reduce at
    # the end of epoch 3; 4, 5 -> end of 5; 7 improves; 8, 9 -> end of 9; 10, 11 -> end of 11,
    # clamped at min_lr 1e-4 (1.25e-4 * 0.5 < 1e-4); then lr == min_lr: no further change.
    by_hand = [1e-3] * 4 + [5e-4] * 2 + [2.5e-4] * 4 + [1.25e-4] * 2 + [1e-4] * 3
    got = _torch_plateau_lrs(val, train)
    # Rates are products of exact binary factors of 1e-3: compare to float64 rounding (1e-12).
    np.testing.assert_allclose(got, by_hand, rtol=1e-12)
    np.testing.assert_allclose(
        _keras_plateau_lrs(val, lr=1e-3, factor=0.5, patience=2, min_lr=1e-4, min_delta=1e-4),
        by_hand, rtol=1e-12)


@pytest.mark.parametrize("patience", [0, 1, 2, 3, 5])
@pytest.mark.parametrize("seed", range(4))
def test_plateau_matches_keras_on_random_curves(patience: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    # A noisy, slowly improving loss curve whose steps are often smaller than min_delta.
    val = list(np.cumsum(rng.normal(-2e-4, 1e-3, 40)) + 1.0)
    train = TrainConfig(plateau_factor=0.7, plateau_patience=patience, plateau_min_lr=2e-4,
                        plateau_min_delta=5e-4)
    expected = _keras_plateau_lrs(val, lr=train.learning_rate, factor=0.7, patience=patience,
                                  min_lr=2e-4, min_delta=5e-4)
    np.testing.assert_allclose(_torch_plateau_lrs(val, train), expected, rtol=1e-12)


def test_keras_adam_matches_numpy_keras_formula_over_steps() -> None:
    rng = np.random.default_rng(0)
    shapes = [(3, 3, 4, 5), (5,), (7,)]
    weights = [rng.uniform(-0.5, 0.5, s).astype(np.float32) for s in shapes]
    # Gradients from tiny (where eps placement matters) to large, and a rate change at step 4.
    grads = [[(rng.standard_normal(s) * 10.0 ** rng.uniform(-8, 1, s)).astype(np.float32)
              for s in shapes] for _ in range(6)]
    lrs = [1e-3, 1e-3, 1e-3, 5e-4, 5e-4, 5e-4]
    params = [torch.tensor(w, requires_grad=True) for w in weights]
    optimizer = KerasAdam(params, lr=1e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-7)
    for step_grads, lr in zip(grads, lrs, strict=True):
        optimizer.param_groups[0]["lr"] = lr
        for p, g in zip(params, step_grads, strict=True):
            p.grad = torch.from_numpy(g)
        optimizer.step()
    lrs32 = [float(np.float32(lr)) for lr in lrs]  # Keras holds the rate in a float32 variable
    expected = _keras_adam(weights, grads, lrs32, 0.9, 0.999, 1e-7)
    for p, e in zip(params, expected, strict=True):
        # Six float32 updates of size <= lr on weights <= 0.5: float32 rounding of w (3e-8 per
        # step) dominates; measured max 6e-8. Allow 2e-7 absolute.
        np.testing.assert_allclose(p.detach().numpy(), e, rtol=0, atol=2e-7)


def test_keras_adam_differs_from_torch_adam_for_small_gradients() -> None:
    """Why KerasAdam exists: with |g| ~ eps the epsilon placement changes the first step."""
    g = torch.full((4,), 3e-7)
    steps = []
    for cls, kwargs in ((KerasAdam, {"epsilon": 1e-7}), (torch.optim.Adam, {"eps": 1e-7})):
        p = torch.zeros(4, requires_grad=True)
        optimizer = cls([p], lr=1e-3, **kwargs)
        p.grad = g.clone()
        optimizer.step()
        steps.append(float(-p.detach()[0]))
    # Keras, t=1: alpha = 1e-3 sqrt(1e-3)/0.1 = 3.162e-4; m = 0.1 g = 3e-8; sqrt(v) = 9.487e-9;
    # step = alpha m / (sqrt(v) + eps) = 3.162e-4 * 3e-8 / 1.0949e-7 = 8.665e-5.
    # torch: m_hat / (sqrt(v_hat) + eps) = g / (g + eps) -> 1e-3 * 0.75 = 7.5e-4 (8.7x larger).
    # rel 1e-3: float32 arithmetic of a handful of operations.
    assert steps[0] == pytest.approx(8.665e-5, rel=1e-3)
    assert steps[1] == pytest.approx(7.5e-4, rel=1e-3)


def test_loss_value_matches_oracle(rng: np.random.Generator) -> None:
    pred = (20 * np.abs(rng.standard_normal((2, 4, 32, 32)))).astype(np.float32)
    obs = np.sqrt(rng.poisson(pred.astype(np.float64) ** 2)).astype(np.float32)
    train = TrainConfig(nll_weight=0.7, mae_weight=0.4)
    got = float(loss_value(torch.from_numpy(pred), torch.from_numpy(obs), train))
    expected = (0.7 * oracle.poisson_nll(pred.astype(np.float64) ** 2, obs.astype(np.float64) ** 2)
                + 0.4 * oracle.mae_loss(pred, obs))
    # float32 squares and means over 8k elements: measured 1e-7 relative; allow 1e-6.
    assert got == pytest.approx(expected, rel=1e-6)


@pytest.fixture(scope="module")
def step_setup(make_case) -> tuple:
    case = make_case(N=32, gridsize=2, n_positions=40, seed=1)
    weights = init_weights(case.config, 2)
    batches = [case.data.batch(slice(i, i + 4)) for i in (0, 4, 8)]
    return case.config, weights, batches


def test_loss_and_grads_loss_equals_forward_loss(step_setup) -> None:
    config, weights, batches = step_setup
    train = TrainConfig(mae_weight=0.3)
    result = loss_and_grads(config, train, weights, batches[0])
    assert result["loss"].shape == () and result["loss"].dtype == np.float64
    model = build_model(config, seed=0)
    import_weights(model, weights)
    out = forward_outputs(model, batches[0])
    s = np.float32(batches[0]["intensity_scale"])
    obs = batches[0]["diffraction"] * s  # the float32 product the step computes
    pred = out["pred_amplitude"].astype(np.float64)
    expected = (oracle.poisson_nll(pred**2, obs.astype(np.float64) ** 2)
                + 0.3 * oracle.mae_loss(pred, obs))
    # Same forward (bit-identical pred); the loss differs only by float32 reduction: 1e-6 rel.
    assert float(result["loss"]) == pytest.approx(expected, rel=1e-6)


def test_loss_and_grads_step_is_keras_adam(step_setup) -> None:
    config, weights, batches = step_setup
    train = TrainConfig()
    result = loss_and_grads(config, train, weights, batches[0])
    names = list(weights)
    assert {f"grad/{n}" for n in names} | {f"stepped/{n}" for n in names} | {"loss"} == set(result)
    grads = [result[f"grad/{n}"] for n in names]
    assert all(np.isfinite(g).all() and g.shape == weights[n].shape for n, g in zip(names, grads,
                                                                                      strict=True))
    assert any(np.abs(g).max() > 0 for g in grads)
    expected = _keras_adam([weights[n] for n in names], [grads], [float(np.float32(1e-3))],
                           train.adam_beta_1, train.adam_beta_2, train.adam_epsilon)
    for name, e in zip(names, expected, strict=True):
        # One update of size <= lr from the returned float32 gradients: float32 rounding of the
        # weight (<= 6e-8 for |w| < 1) plus update rounding (~1e-10); allow 1e-7 absolute.
        np.testing.assert_allclose(result[f"stepped/{name}"], e, rtol=0, atol=1e-7, err_msg=name)


def test_train_steps_continue_from_loss_and_grads(step_setup) -> None:
    config, weights, batches = step_setup
    train = TrainConfig()
    one = loss_and_grads(config, train, weights, batches[0])
    steps = train_steps(config, train, weights, batches)
    assert steps["losses"].shape == (3,) and steps["losses"].dtype == np.float64
    # Same device, same kernels, same order: the first loss is the same float32 number.
    assert steps["losses"][0] == one["loss"]
    single = train_steps(config, train, weights, batches[:1])
    for name in weights:
        np.testing.assert_array_equal(single[f"weights/{name}"], one[f"stepped/{name}"])
        assert not np.array_equal(steps[f"weights/{name}"], single[f"weights/{name}"]) or \
            not np.abs(one[f"grad/{name}"]).any()
    with pytest.raises(ValueError, match="at least one batch"):
        train_steps(config, train, weights, [])


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
    with _device_scope("cuda"):
        result = fit(case.config, TrainConfig(epochs=2, batch_size=8, validation_fraction=0.2),
                     case.data, tmp_path, fast=fast)
        first = infer(tmp_path, case.data)
        again = infer(tmp_path, case.data)
    assert all(np.isfinite(result.history[k]).all() for k in ("loss", "val_loss", "lr"))
    np.testing.assert_array_equal(first, again)  # same bundle, same device: the same bits
    assert torch.cuda.max_memory_allocated() > 0


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
