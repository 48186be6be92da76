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
from parity.report.figures import render_figures
from parity.results import FIRST_DIVERGENCE_EVIDENCE

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
    result, evidence = _run(_plan(small_case), tmp_path, flip_translation=True)
    first = result.first_divergence
    assert result.exit_code == 1
    assert first is not None and first.level == "L1" and first.stage == "translated"
    # the arrays it compared come with it, for the bundle's divergence figure
    expected, actual = (evidence[key] for key in FIRST_DIVERGENCE_EVIDENCE)
    assert expected.shape == actual.shape and expected.ndim >= 2
    assert not np.allclose(expected, actual, rtol=1e-5, atol=1e-6)
    figures = render_figures(result, evidence, tmp_path / "figures")
    assert "divergence.png" in [p.name for p in figures.written], figures.skipped


def test_a_passing_run_adds_no_divergence_evidence(small_case, tmp_path):
    result, evidence = _run(_plan(small_case, levels=("L0", "L1")), tmp_path)
    assert result.exit_code == 0
    assert not set(FIRST_DIVERGENCE_EVIDENCE) & set(evidence)


def test_crashing_backend_is_reported_not_fatal(small_case, tmp_path):
    result, _ = _run(_plan(small_case), tmp_path, crash=True)
    assert result.exit_code == 3
    dut = next(r for r in result.backend_runs if r.backend == "dut")
    assert dut.status == "partial" and "simulated backend crash" in dut.message
    # the baseline's L1 results are still judged
    assert any(c.level == "L1" and c.backend == "ref" and c.verdict == "pass"
               for c in result.checks)


def test_known_divergence_and_unmatched_allowance_are_reported(small_case, tmp_path):
    """An allowance turns the flipped translation into ``known`` (with its reason); one whose key
    matches no check of the run is named in a warning (a typo must not sit there unnoticed)."""
    from parity.divergences import Divergence, DivergenceRegistry

    registry = DivergenceRegistry([
        Divergence("SIGN-1", "dut", "L1", "translated", "*", 10.0, 10.0, "sign under study"),
        Divergence("TYPO-1", "dut", "L1", "translate", "*", 1.0, 1.0, "a misspelt stage"),
    ], source="test-registry")
    container, model, train = small_case
    plan = RunPlan(container=container, model=model, train=train, backends=("ref", "dut"),
                   levels=("L1",), isolation="inprocess")

    def factory(name: str):
        return _Twin(name, flip_translation=name == "dut")

    result, _ = run_parity(plan, tmp_path, adapter_factory=factory, registry=registry)
    known = [c for c in result.checks if c.verdict == "known"]
    assert known and all("sign under study" in c.message for c in known)
    assert any("TYPO-1" in w and "matched no check" in w for w in result.warnings)
    assert not any("SIGN-1" in w and "matched no check" in w for w in result.warnings)


def test_l0_alone_judges_the_output_layouts(small_case, tmp_path):
    """``--levels L0`` computes the forward outputs its layout checks need: the axis-order bug
    (a transposed stitched canvas) is caught at L0 without L1 or L2 being asked for."""
    container, model, train = small_case
    plan = RunPlan(container=container, model=model, train=train, backends=("ref", "dut"),
                   levels=("L0",), isolation="inprocess", injections={"dut": "axis_order"})
    result, _ = _run(plan, tmp_path)
    first = result.first_divergence
    assert result.exit_code == 1
    assert first is not None and (first.level, first.stage, first.backend) == \
        ("L0", "layout", "dut")
    assert {c.level for c in result.checks} == {"L0"}
    assert {c.quantity for c in result.checks if c.stage == "layout"} == {"physics", "network"}
