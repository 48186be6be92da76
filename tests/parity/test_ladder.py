"""The ladder's stage checks (parity/ladder.py) on synthetic backend outputs, no backend run."""

from __future__ import annotations

import numpy as np
import pytest

from parity.divergences import load_registry
from parity.judge import Judge
from parity.ladder import level4_checks
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
