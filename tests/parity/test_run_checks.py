"""Judging a finished run (parity/run_checks.py): ``collect_checks`` on hand-made outcomes and
outputs, without running any backend (the whole run: test_engine.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fixtures.cases import get_case
from parity.divergences import Divergence, DivergenceRegistry, load_registry
from parity.engine import RunPlan
from parity.inputs import physics_inputs
from parity.oracle.adapter import OracleAdapter
from parity.prepare import group_container, prepare
from parity.run_checks import _device_kind, collect_checks
from parity.runner import BackendOutcome
from parity.tolerances import load_table


@pytest.fixture(scope="module")
def l1_run():
    """A two-backend L1 plan, its prepared data, the oracle and the oracle's L1 outputs."""
    case = get_case("small")
    container, model = case.build(0), case.model_config()
    plan = RunPlan(container=container, model=model, train=case.train_config(),
                   backends=("ref", "dut"), levels=("L1",), isolation="inprocess")
    data = prepare(container, group_container(container, model), model)
    oracle = OracleAdapter()
    expected = {"physics": oracle.forward_physics(model, physics_inputs(container, model,
                                                                         seed=0))}
    return plan, data, oracle, expected


def _outcome(backend: str, *, device: str = "cpu", tasks=None) -> BackendOutcome:
    return BackendOutcome(backend, "ok", 1.0, {"environment": {"device": device},
                                               "tasks": tasks or {}}, Path(f"{backend}.log"))


def _collect(l1_run, outcomes, outputs, known=None):
    plan, data, oracle, expected = l1_run
    return collect_checks(plan, data, oracle, expected, outcomes, outputs, table=load_table(),
                          known=known or load_registry(), margins={})


@pytest.mark.parametrize(("device", "kind"), [("cpu", "cpu"), ("cuda:0", "cuda"),
                                              ("/GPU:0", "cuda"), ("NVIDIA gpu", "cuda")])
def test_the_baselines_device_kind_selects_the_tolerances(device: str, kind: str) -> None:
    assert _device_kind({"device": device}) == kind
    assert _device_kind({}) == "cpu"


def test_l1_outputs_equal_to_the_oracle_pass_and_a_missing_stage_is_an_error(l1_run) -> None:
    physics = l1_run[3]["physics"]
    outcomes = {"ref": _outcome("ref"),
                "dut": _outcome("dut", tasks={"physics": {"status": "error", "error": "boom"}})}
    judged = _collect(l1_run, outcomes, {"ref": {"physics": physics}, "dut": {}})
    assert judged.device == "cpu"
    ref = [c for c in judged.checks if c.backend == "ref"]
    assert ref and all(c.level == "L1" and c.verdict == "pass" for c in ref)
    dut = [c for c in judged.checks if c.backend == "dut"]
    assert [(c.verdict, c.message) for c in dut] == [("error", "dut physics: boom")]


def test_an_allowance_that_matched_no_check_is_a_warning(l1_run) -> None:
    physics = l1_run[3]["physics"]
    registry = DivergenceRegistry([
        Divergence("TYPO-1", "dut", "L1", "translate", "*", 1.0, 1.0, "a misspelt stage"),
    ], source="test-registry")
    outcomes = {b: _outcome(b) for b in ("ref", "dut")}
    judged = _collect(l1_run, outcomes, {b: {"physics": physics} for b in ("ref", "dut")},
                      known=registry)
    assert all(c.verdict == "pass" for c in judged.checks)
    assert any("TYPO-1" in w and "matched no check" in w and "test-registry" in w
               for w in judged.warnings)
