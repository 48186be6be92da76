"""The L3-L5 stage checks (parity/ladder_training.py) on synthetic backend outputs, no backend
run."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest

from parity.config import TrainConfig
from parity.divergences import load_registry
from parity.judge import Judge
from parity.ladder_training import (
    adam_step_check,
    level3_checks,
    level4_checks,
    within_noise_floor,
)
from parity.results import Check
from parity.runner import BackendOutcome
from parity.tolerances import load_table


def _l4_outputs(rng: np.random.Generator, *, flipped: int, shifted_fraction: float) -> tuple:
    """Baseline and backend ``train_steps`` outputs of a 10 000-element network."""
    shapes = {"weights/encoder.block0.conv0.kernel": (3, 3, 1, 32), "weights/head.bias": (32,),
              "weights/decoder.block0.conv0.kernel": (3, 3, 32, 34)}
    base = {k: rng.normal(size=s).astype(np.float32) for k, s in shapes.items()}
    ours = {k: v.copy() for k, v in base.items()}
    ours["weights/head.bias"][:flipped] += 2e-3  # Adam's +-lr step on a ~0 gradient, flipped
    kernel = ours["weights/decoder.block0.conv0.kernel"].reshape(-1)
    kernel[: int(shifted_fraction * kernel.size)] += 4e-3  # a wrong update rule: 4 steps of lr
    losses = np.array([1.0, 0.9, 0.8, 0.7], np.float32)
    outcome = BackendOutcome(backend="x", status="ok", seconds=0.0, manifest={}, message="")
    return ({"tf": {"train_steps": {"losses": losses, **base}},
             "pt": {"train_steps": {"losses": losses, **ours}}},
            {"tf": outcome, "pt": outcome})


@pytest.mark.parametrize(("flipped", "shifted", "verdict"),
                         [(0, 0.0, "pass"), (1, 0.0, "pass"), (1, 0.5, "fail")])
def test_l4_weights_are_pooled_over_the_network(flipped: int, shifted: float, verdict: str) -> None:
    """One flipped Adam step in a 32-element bias (3 % of that array) is within the pooled
    fraction; half of a kernel moved by 4 lr is not, and the message names the worst array."""

    outputs, outcomes = _l4_outputs(np.random.default_rng(0), flipped=flipped,
                                    shifted_fraction=shifted)
    judge = Judge(load_table(), load_registry(), device="cpu")
    checks = level4_checks(judge, "pt", "tf", outcomes, outputs)
    weights = [c for c in checks if c.stage == "weights"]
    assert len(weights) == 1 and weights[0].quantity == "all"
    assert weights[0].verdict == verdict, weights[0].message
    if verdict == "fail":
        assert "decoder.block0.conv0.kernel" in weights[0].message
        # the pooled worst element is traced back to its array and its place in it
        found = re.search(r"pooled element \[(\d+)\] is (weights/[\w.]+)\[([\d, ]+)\]",
                          weights[0].message)
        assert found, weights[0].message
        flat, key, local = int(found[1]), found[2], tuple(int(i) for i in found[3].split(","))
        base = outputs["tf"]["train_steps"]
        keys = sorted(k for k in base if k.startswith("weights/"))
        start = sum(base[k].size for k in keys[:keys.index(key)])
        assert key == "weights/decoder.block0.conv0.kernel"
        assert flat == start + int(np.ravel_multi_index(local, base[key].shape))
        assert weights[0].measured["worst"][0]["index"] == [flat]


@pytest.mark.parametrize(("noise_scale", "verdict"), [(1.0, "pass"), (0.01, "fail")])
def test_l4_judges_chaotic_steps_against_the_baselines_noise_floor(noise_scale: float,
                                                                    verdict: str) -> None:
    """Half of the weights moved by 4 lr fails the elementwise bound; it passes when the
    baseline's own rerun from jittered weights spreads as far (chaos), not when it stays close."""

    rng = np.random.default_rng(3)
    outputs, outcomes = _l4_outputs(rng, flipped=0, shifted_fraction=0.5)
    base, ours = outputs["tf"]["train_steps"], outputs["pt"]["train_steps"]
    noise = {k: (base[k] + noise_scale * (ours[k] - base[k]) * rng.choice((-1, 1), base[k].shape)
                 ).astype(np.float32) for k in base if k.startswith("weights/")}
    outputs["tf"]["train_steps_noise"] = {"losses": base["losses"], **noise}
    judge = Judge(load_table(), load_registry(), device="cpu")
    weights = next(c for c in level4_checks(judge, "pt", "tf", outcomes, outputs) if c.stage == "weights")
    assert weights.verdict == verdict, weights.message
    assert weights.measured["noise_floor_ratio"] == pytest.approx(1 / noise_scale, rel=1e-3)


@pytest.mark.parametrize(("scales", "verdict"), [((0.01, 1.0, 0.02), "pass"),
                                                 ((0.01, 0.02, 0.03), "fail")])
def test_l4_noise_floor_is_the_largest_spread_of_the_reruns(scales: tuple[float, ...],
                                                             verdict: str) -> None:
    """One rerun that happens to stay close to the baseline (chaos is not uniform) must not set
    the bar alone: the floor is the largest spread of any rerun, for the weights and the losses."""
    rng = np.random.default_rng(4)
    outputs, outcomes = _l4_outputs(rng, flipped=0, shifted_fraction=0.5)
    base, ours = outputs["tf"]["train_steps"], outputs["pt"]["train_steps"]
    ours["losses"] = base["losses"] + np.float32(1e-3)  # 1e-3 apart: fails rtol 1e-4 alone
    for rerun, scale in enumerate(scales):
        noise = {k: (base[k] + scale * (ours[k] - base[k])).astype(np.float32)
                 for k in base if k.startswith("weights/")}
        name = "train_steps_noise" + (f"_{rerun}" if rerun else "")
        outputs["tf"][name] = {"losses": base["losses"] + np.float32(scale * 1e-3), **noise}
    judge = Judge(load_table(), load_registry(), device="cpu")
    checks = {c.stage: c for c in level4_checks(judge, "pt", "tf", outcomes, outputs)}
    for stage in ("loss_curve", "weights"):
        assert checks[stage].verdict == verdict, checks[stage].message
        assert checks[stage].measured["noise_floor_ratio"] == pytest.approx(1 / max(scales),
                                                                            rel=1e-2)


def _l3_outputs(shift: float) -> tuple:
    rng = np.random.default_rng(5)
    names = ("encoder.block0.conv0.kernel", "encoder.block0.conv0.bias",
             "encoder.block1.conv0.kernel", "decoder_amp.head.kernel")
    base = {f"grad/{n}": rng.normal(size=(3, 3, 2, 4) if n.endswith("kernel") else (4,))
            .astype(np.float32) for n in names}
    ours = {k: v.copy() for k, v in base.items()}
    for key in ("grad/encoder.block0.conv0.kernel", "grad/encoder.block0.conv0.bias"):
        ours[key][0] += np.float32(shift)  # one window routed elsewhere: a local change
    loss = np.float64(1.0)
    outcome = BackendOutcome(backend="x", status="ok", seconds=0.0, manifest={}, message="")
    outputs = {"tf": {"loss_and_grads": {"loss": loss, **base}},
               "pt": {"loss_and_grads": {"loss": loss, **ours}}}
    return outputs, {"tf": outcome, "pt": outcome}


@pytest.mark.parametrize(("rounding_only", "verdict"), [(True, "pass"), (False, "fail")])
def test_l3_judges_gradients_above_a_rounding_flip_by_the_tie_routed_rule(
        rounding_only: bool, verdict: str) -> None:
    """A 1 %-of-max change in encoder block 0's gradients fails the strict rule; it passes as
    ``grad_tie_routed`` only when L2 showed a max-pool winner flipped at a float64 tie there."""
    from parity.ladder import PoolRouting

    judge = Judge(load_table(), load_registry(), device="cpu")
    outputs, outcomes = _l3_outputs(shift=0.02)
    routing = PoolRouting({"encoder.block0": 1, "encoder.block1": 0},
                          {"encoder.block0": 0 if rounding_only else 1, "encoder.block1": 0})
    checks = {c.quantity: c for c in level3_checks(judge, "pt", "tf", outcomes, outputs,
                                                   routing=routing) if c.level == "L3"}
    block0 = checks["encoder.block0.conv0.kernel"]
    assert block0.stage == ("grad_tie_routed" if rounding_only else "grad")
    assert block0.verdict == verdict, block0.message
    assert "max-pool winners differ" in block0.message
    assert checks["encoder.block1.conv0.kernel"].stage == "grad"  # after the flipped pool: strict
    assert checks["decoder_amp.head.kernel"].stage == "grad"
    strict = {c.quantity: c for c in level3_checks(judge, "pt", "tf", outcomes, outputs)}
    assert strict["encoder.block0.conv0.kernel"].verdict == "fail"  # no routing: strict


@pytest.mark.parametrize(("noise_scale", "verdict"), [(0.1, "pass"), (0.01, "fail")])
def test_l3_gradient_passes_within_the_baselines_own_noise_floor(noise_scale: float,
                                                                 verdict: str) -> None:
    """A 1 %-of-max gradient difference fails the strict bound; it passes when the baseline's
    own gradients from 1e-7-jittered weights spread a tenth as far (ratio 10 <= 30), not a
    hundredth (ratio 100)."""
    judge = Judge(load_table(), load_registry(), device="cpu")
    outputs, outcomes = _l3_outputs(shift=0.02)
    base = outputs["tf"]["loss_and_grads"]
    ours = outputs["pt"]["loss_and_grads"]
    noise = {k: (base[k] + noise_scale * (ours[k] - base[k])).astype(np.float32)
             for k in base if k.startswith("grad/")}
    outputs["tf"]["loss_and_grads_noise"] = {"loss": base["loss"], **noise}
    checks = {c.quantity: c for c in level3_checks(judge, "pt", "tf", outcomes, outputs)}
    kernel = checks["encoder.block0.conv0.kernel"]
    assert kernel.verdict == verdict, kernel.message
    assert kernel.measured["noise_floor_ratio"] == pytest.approx(1 / noise_scale, rel=1e-3)
    assert checks["decoder_amp.head.kernel"].verdict == "pass"  # identical: never judged by it


def test_a_noise_floor_ratio_that_overflows_is_inf_without_a_warning() -> None:
    """A huge spread over a zero floor (e.g. an injected summed loss) overflows the ratio: it is
    recorded as inf and fails, and no NumPy RuntimeWarning reaches the console."""
    judge = Judge(load_table(), load_registry(), device="cpu")
    failed = Check("L4", "loss_curve", "losses", "pt", "tf", "fail", message="bound failed")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check = within_noise_floor(judge, failed, np.array([1e300]), np.array([0.0]))
    assert check.verdict == "fail"
    assert check.measured["noise_floor_ratio"] == float("inf")


def _adam_outputs(rng: np.random.Generator, *, epsilon: float = 1e-7, lr: float = 1e-3,
                  torch_placement: bool = False) -> tuple[dict, dict, dict]:
    """Starting weights, and a backend's ``loss_and_grads`` whose step is computed in float32
    from its own gradients (a quarter of them near zero, where Adam's step is steep)."""
    shapes = {"encoder.block0.conv0.kernel": (3, 3, 1, 32), "encoder.block0.conv0.bias": (32,),
              "head.kernel": (3, 3, 32, 2)}
    weights = {k: rng.normal(0.0, 0.2, s).astype(np.float32) for k, s in shapes.items()}
    weights["encoder.block0.conv0.bias"][:] = 0.0  # biases start at zero
    out: dict[str, np.ndarray] = {"loss": np.asarray(1.0)}
    b1, b2 = np.float32(0.9), np.float32(0.999)
    for name, w in weights.items():
        g = rng.normal(0.0, 1e-2, w.shape).astype(np.float32)
        g.ravel()[::4] *= np.float32(1e-4)  # ~1e-6: where epsilon decides the step
        m, v = (1 - b1) * g, (1 - b2) * g * g
        if torch_placement:  # PyTorch: epsilon after the bias correction of sqrt(v)
            step = np.float32(lr) * (m / (1 - b1)) / (np.sqrt(v / (1 - b2)) + np.float32(epsilon))
        else:
            alpha = np.float32(lr) * np.sqrt(1 - b2) / (1 - b1)
            step = m * alpha / (np.sqrt(v) + np.float32(epsilon))
        out[f"grad/{name}"] = g
        out[f"stepped/{name}"] = (w - step).astype(np.float32)
    return weights, {"pt": {"loss_and_grads": out}}, {"pt": _OUTCOME}


_OUTCOME = BackendOutcome(backend="pt", status="ok", seconds=0.0, manifest={}, message="")


def _judge() -> Judge:
    return Judge(load_table(), load_registry(), device="cpu")


@pytest.mark.parametrize(("kwargs", "verdict"), [
    ({}, "pass"),  # Keras's Adam in float32: within rounding of the float64 rule
    ({"epsilon": 1e-8}, "fail"),  # the optimizer_epsilon port bug (torch's default epsilon)
    ({"torch_placement": True}, "fail"),  # torch.optim.Adam's epsilon placement
    ({"lr": 1.1e-3}, "fail"),  # a learning rate 10 % off
])
def test_l3_adam_step_is_keras_adam_on_the_backends_own_gradients(kwargs, verdict) -> None:
    weights, outputs, outcomes = _adam_outputs(np.random.default_rng(3), **kwargs)
    checks = adam_step_check(_judge(), "pt", outcomes["pt"], outputs, weights, TrainConfig())
    assert [(c.stage, c.quantity, c.reference, c.verdict) for c in checks] == [
        ("adam_step", "all", "oracle", verdict)], checks[0].message


def test_l3_adam_step_is_indifferent_to_which_way_a_near_zero_gradient_rounded() -> None:
    """Default case, seed 1: the two backends' stepped weights were a full lr apart at 0.118 %
    of the network (gradients ~1e-7 of opposite sign); each step is right for its gradient."""
    weights, outputs, outcomes = _adam_outputs(np.random.default_rng(4))
    ours = outputs["pt"]["loss_and_grads"]
    grad = ours["grad/head.kernel"].ravel()
    grad[:50] = -np.sign(grad[:50]) * np.float32(1e-7)  # rounding put these across zero
    stepped = ours["stepped/head.kernel"].ravel()
    stepped[:50] = (weights["head.kernel"].ravel()[:50]
                    - np.float32(1e-3) * grad[:50] / (np.abs(grad[:50]) + np.float32(3.16e-6)))
    check, = adam_step_check(_judge(), "pt", outcomes["pt"], outputs, weights, TrainConfig())
    assert check.verdict == "pass", check.message


def test_l3_adam_step_names_a_missing_task_and_a_misshapen_gradient() -> None:
    weights, outputs, outcomes = _adam_outputs(np.random.default_rng(5))
    failed = BackendOutcome(backend="pt", status="crashed", seconds=0.0,
                            manifest={"tasks": {"loss_and_grads": {"error": "boom"}}}, message="")
    missing, = adam_step_check(_judge(), "pt", failed, {"pt": {}}, weights, TrainConfig())
    assert missing.verdict == "error" and "pt loss_and_grads: boom" in missing.message
    outputs["pt"]["loss_and_grads"]["grad/head.kernel"] = np.zeros(3, np.float32)
    bad = adam_step_check(_judge(), "pt", outcomes["pt"], outputs, weights, TrainConfig())
    assert [(c.quantity, c.verdict) for c in bad] == [("head.kernel", "fail")]
    assert "returned grad/head.kernel with shape (3,); expected (3, 3, 32, 2)" in bad[0].message
