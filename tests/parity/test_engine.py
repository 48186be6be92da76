"""The engine end to end with framework-free adapters (the float64 oracle and doctored copies).

These run in process and prove the judging logic: a clean pair passes, an injected physics bug is
named at the right stage, a crashing backend is reported (exit 3) while the other's results are
kept.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest

from fixtures.cases import get_case
from parity.engine import RunPlan, run_parity
from parity.oracle.adapter import OracleAdapter

LEVELS = ("L0", "L1", "L2")


class _Twin(OracleAdapter):
    """The oracle under another name, optionally with one doctored stage."""

    def __init__(self, name: str, *, flip_translation: bool = False, crash: bool = False) -> None:
        super().__init__()
        self.name = name  # instance attribute shadows the class registry name
        self.flip_translation = flip_translation
        self.crash = crash

    def forward_physics(self, config, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.flip_translation:
            inputs = {**inputs, "translations_px": -np.asarray(inputs["translations_px"])}
        return super().forward_physics(config, inputs)

    def network_forward(self, config, weights, batch):
        if self.crash:
            raise RuntimeError("simulated backend crash in network_forward")
        return super().network_forward(config, weights, batch)


@pytest.fixture(scope="module")
def small_case():
    case = get_case("small")
    return case.build(0), case.model_config(), case.train_config()


def _plan(small_case, levels=LEVELS) -> RunPlan:
    container, model, train = small_case
    return RunPlan(container=container, model=model, train=train, backends=("ref", "dut"),
                   levels=levels, isolation="inprocess")


def _run(plan: RunPlan, tmp_path: Path, **twin_options):
    def factory(name: str):
        return _Twin(name, **(twin_options if name == "dut" else {}))

    return run_parity(plan, tmp_path, adapter_factory=factory)


def test_clean_pair_passes(small_case, tmp_path):
    result, _ = _run(_plan(small_case), tmp_path)
    failed = [c.name for c in result.checks if c.verdict in ("fail", "error")]
    assert failed == []
    assert result.exit_code == 0
    assert {c.level for c in result.checks} == set(LEVELS)


def test_flipped_translation_is_named_at_l1(small_case, tmp_path):
    result, _ = _run(_plan(small_case), tmp_path, flip_translation=True)
    first = result.first_divergence
    assert result.exit_code == 1
    assert first is not None and first.level == "L1" and first.stage == "translated"


def test_crashing_backend_is_reported_not_fatal(small_case, tmp_path):
    result, _ = _run(_plan(small_case), tmp_path, crash=True)
    assert result.exit_code == 3
    dut = next(r for r in result.backend_runs if r.backend == "dut")
    assert dut.status == "partial" and "simulated backend crash" in dut.message
    # the baseline's L1 results are still judged
    assert any(c.level == "L1" and c.backend == "ref" and c.verdict == "pass"
               for c in result.checks)


def _l4_outputs(rng: np.random.Generator, *, flipped: int, shifted_fraction: float) -> tuple:
    """Baseline and backend ``train_steps`` outputs of a 10 000-element network."""
    from parity.runner import BackendOutcome

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
    from parity.divergences import load_registry
    from parity.engine import _level4
    from parity.judge import Judge
    from parity.tolerances import load_table

    outputs, outcomes = _l4_outputs(np.random.default_rng(0), flipped=flipped,
                                    shifted_fraction=shifted)
    judge = Judge(load_table(), load_registry(), device="cpu")
    checks = _level4(judge, "pt", "tf", outcomes, outputs)
    weights = [c for c in checks if c.stage == "weights"]
    assert len(weights) == 1 and weights[0].quantity == "all"
    assert weights[0].verdict == verdict, weights[0].message
    if verdict == "fail":
        assert "decoder.block0.conv0.kernel" in weights[0].message


def test_backend_jobs_share_the_cores_when_run_side_by_side(monkeypatch) -> None:
    from parity.engine import _job_threads

    container = get_case("small").build(0)
    case = get_case("small")
    plan = RunPlan(container=container, model=case.model_config(), train=case.train_config())
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1, 2, 3, 4}, raising=False)
    assert _job_threads(plan) == {"OMP_NUM_THREADS": "2"}  # 5 cores, 2 backends
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert _job_threads(plan) == {}  # the caller's pinning is kept
    for other in ({"parallel": False}, {"isolation": "inprocess"}, {"backends": ("torch",)}):
        assert _job_threads(RunPlan(container=container, model=case.model_config(),
                                    train=case.train_config(), **other)) is None


def test_a_failed_cross_inference_job_marks_its_backend(tmp_path: Path) -> None:
    """The short same-weights job is merged into its backend's outcome: tasks, log and status."""
    from parity.engine import _merge_outcomes
    from parity.runner import BackendOutcome

    main_log, extra_log = tmp_path / "main.log", tmp_path / "cross" / "backend.log"
    extra_log.parent.mkdir()
    main_log.write_text("main job\n")
    extra_log.write_text("Traceback: boom\n")
    main = BackendOutcome("torch", "ok", 10.0, {"tasks": {"train": {"status": "ok"}}}, main_log)
    extra = BackendOutcome("torch", "crashed", 2.0,
                           {"tasks": {"baseline_weights": {"status": "error"}}}, extra_log,
                           "exit code 1")
    merged = _merge_outcomes(main, extra)
    assert merged.status == "crashed" and merged.seconds == 12.0
    assert set(merged.manifest["tasks"]) == {"train", "baseline_weights"}
    assert "cross-inference job: exit code 1" in merged.message
    assert "Traceback: boom" in main_log.read_text()
    assert _merge_outcomes(main, BackendOutcome("torch", "ok", 1.0, {}, extra_log)).status == "ok"


@pytest.mark.parametrize(("noise_scale", "verdict"), [(1.0, "pass"), (0.01, "fail")])
def test_l4_judges_chaotic_steps_against_the_baselines_noise_floor(noise_scale: float,
                                                                    verdict: str) -> None:
    """Half of the weights moved by 4 lr fails the elementwise bound; it passes when the
    baseline's own rerun from jittered weights spreads as far (chaos), not when it stays close."""
    from parity.divergences import load_registry
    from parity.engine import _level4
    from parity.judge import Judge
    from parity.tolerances import load_table

    rng = np.random.default_rng(3)
    outputs, outcomes = _l4_outputs(rng, flipped=0, shifted_fraction=0.5)
    base, ours = outputs["tf"]["train_steps"], outputs["pt"]["train_steps"]
    noise = {k: (base[k] + noise_scale * (ours[k] - base[k]) * rng.choice((-1, 1), base[k].shape)
                 ).astype(np.float32) for k in base if k.startswith("weights/")}
    outputs["tf"]["train_steps_noise"] = {"losses": base["losses"], **noise}
    judge = Judge(load_table(), load_registry(), device="cpu")
    weights = next(c for c in _level4(judge, "pt", "tf", outcomes, outputs) if c.stage == "weights")
    assert weights.verdict == verdict, weights.message
    assert weights.measured["noise_floor_ratio"] == pytest.approx(1 / noise_scale, rel=1e-3)
