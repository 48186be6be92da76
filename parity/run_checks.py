"""Every check of one finished run, level by level, from the backends' outcomes and outputs
(framework-free).

:func:`collect_checks` builds the :class:`parity.judge.Judge` for the baseline's device, calls
the stage checks of :mod:`parity.ladder` (L0-L2) and :mod:`parity.ladder_training` (L3-L5), the
L5 metrics of :mod:`parity.evaluation` and, in multi-seed mode, the equivalence test of
:mod:`parity.equivalence`; it gathers the training histories and the evidence arrays for the
bundle and warns about divergence allowances that matched no check.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from parity.contract import NETWORK_OUTPUT_KEYS, PHYSICS_OUTPUT_KEYS, PreparedData
from parity.divergences import DivergenceRegistry
from parity.equivalence import multi_seed_evaluation
from parity.jobs import train_tasks
from parity.judge import Judge
from parity.ladder import compare_stage, level0_checks, pool_input_checks, pool_routing
from parity.ladder_training import (
    adam_step_check,
    level3_checks,
    level4_checks,
    level5_same_weights,
)
from parity.results import Check
from parity.runner import BackendOutcome
from parity.tolerances import ToleranceTable

if TYPE_CHECKING:
    from parity.engine import RunPlan

__all__ = ["RunChecks", "collect_checks"]


@dataclass(frozen=True)
class RunChecks:
    """What judging one run gave.

    Attributes
    ----------
    checks : list[Check]
        Every check, per backend for L0-L2 (against the oracle), then per backend against the
        baseline (pair L2, L3, L4, L5 same weights), then the L5 metric checks.
    histories : dict[str, Any]
        Backend -> its training history (``train`` task), when it reported one.
    evidence : dict[str, numpy.ndarray]
        Arrays for the bundle (histories, reconstructions, same-weights objects, L5 evidence,
        the true object when the container has one).
    metrics : dict[str, Any]
        L5 metrics per backend and their differences (empty without L5).
    equivalence : dict[str, Any]
        The multi-seed equivalence record (empty in single-seed mode).
    device : str
        ``cpu`` or ``cuda``: the baseline's device, which selects the tolerances.
    warnings : tuple[str, ...]
        The judge's warnings, including divergence allowances that matched no check.
    judge : Judge
        The judge that made the checks (it holds the arrays of every failed comparison:
        :meth:`parity.judge.Judge.evidence_of`).
    """

    checks: list[Check]
    histories: dict[str, Any]
    evidence: dict[str, np.ndarray]
    metrics: dict[str, Any]
    equivalence: dict[str, Any]
    device: str
    warnings: tuple[str, ...]
    judge: Judge


def _device_kind(environment: Mapping[str, Any]) -> str:
    device = str(environment.get("device", "cpu"))
    return "cuda" if device.startswith("cuda") or device.startswith("/GPU") or "gpu" in \
        device.lower() else "cpu"


def collect_checks(plan: RunPlan, data: PreparedData, oracle: Any,
                   expected: Mapping[str, Mapping[str, np.ndarray]],
                   outcomes: Mapping[str, BackendOutcome],
                   outputs: Mapping[str, Any], *, table: ToleranceTable,
                   known: DivergenceRegistry, margins: Mapping[str, Any]) -> RunChecks:
    """Judge a run's outputs at the plan's levels.

    Parameters
    ----------
    plan : RunPlan
        What ran; ``plan.backends[0]`` is the baseline.
    data : PreparedData
        The prepared data every backend saw (L5 metrics).
    oracle : OracleAdapter
        The float64 oracle (L0 effective config).
    expected : Mapping
        The oracle's outputs per task (``physics``, ``network``), for the levels that need them,
        and at L3 the ``initial_weights`` every backend started its Adam step from.
    outcomes, outputs
        Per backend: its :class:`parity.runner.BackendOutcome`, and its output arrays per task
        (:func:`parity.jobs.run_jobs`).
    table, known
        The tolerance table and the divergence registry; ``known.matched`` is reset here, so
        that the allowances this run did not look at are reported.
    margins : Mapping
        Equivalence margins read before any backend ran (multi-seed mode; empty otherwise).
    """
    levels = set(plan.levels)
    container, model, train = plan.container, plan.model, plan.train
    baseline = plan.backends[0]
    device = _device_kind(outcomes[baseline].manifest.get("environment", {}))
    known.matched.clear()  # which allowances this run looks at (unmatched ones are reported)
    judge = Judge(table, known, device=device)
    checks: list[Check] = []
    histories: dict[str, Any] = {}
    evidence: dict[str, np.ndarray] = {}
    metrics: dict[str, Any] = {}
    for backend in plan.backends:
        tasks_manifest = outcomes[backend].manifest.get("tasks", {})
        config_record = tasks_manifest.get("effective_config", {})
        if "L0" in levels:
            manifests = {b: outcomes[b].manifest.get("tasks", {}) for b in outcomes}
            checks.extend(level0_checks(judge, oracle, model, train, backend, baseline,
                                        config_record, manifests, outputs, expected))
        if "L1" in levels:
            checks.extend(compare_stage(judge, "L1", backend, outcomes[backend], "physics",
                                        outputs[backend].get("physics", {}),
                                        expected["physics"], PHYSICS_OUTPUT_KEYS, "oracle"))
        if "L2" in levels:
            checks.extend(compare_stage(judge, "L2", backend, outcomes[backend], "network",
                                        outputs[backend].get("network", {}),
                                        expected["network"], NETWORK_OUTPUT_KEYS, "oracle"))
            checks.extend(pool_input_checks(judge, "L2", backend, "oracle",
                                            outputs[backend].get("network", {}),
                                            expected["network"]))
        if "L3" in levels:
            checks.extend(adam_step_check(judge, backend, outcomes[backend], outputs,
                                          expected["initial_weights"], train))
        history = tasks_manifest.get("train", {}).get("history")
        if history:
            histories[backend] = history
            for key, values in history.items():
                evidence[f"{backend}/history/{key}"] = np.asarray(values, dtype=np.float64)
        trained = outputs[backend].get("train", {})
        if "reconstructed_obj" in trained:
            evidence[f"{backend}/reconstructed_obj"] = trained["reconstructed_obj"]
            evidence[f"{backend}/origin_px"] = trained["origin_px"]

    for backend in plan.backends[1:]:
        if "L2" in levels:
            ours, base = outputs[backend].get("network", {}), outputs[baseline].get("network", {})
            checks.extend(compare_stage(judge, "L2", backend, outcomes[backend], "network", ours,
                                        base, NETWORK_OUTPUT_KEYS, baseline, stage_prefix="pair.",
                                        reference_outcome=outcomes[baseline]))
            checks.extend(pool_input_checks(judge, "L2", backend, baseline, ours, base,
                                            stage_prefix="pair."))
        if "L3" in levels:
            # The L2 pool inputs (same batch and weights; computed whenever L3 runs:
            # parity.jobs.forward_tasks) tell a max-pool winner flipped by float32 rounding from
            # a routing bug; where a backend failed to produce them, gradients get the ordinary rule.
            routing = pool_routing(judge, outputs[backend].get("network", {}),
                                   outputs[baseline].get("network", {}),
                                   expected.get("network", {}))
            checks.extend(level3_checks(judge, backend, baseline, outcomes, outputs,
                                        routing=routing))
        if "L4" in levels:
            checks.extend(level4_checks(judge, backend, baseline, outcomes, outputs))
        if "L5" in levels:
            checks.extend(level5_same_weights(judge, backend, baseline, outcomes, outputs,
                                              evidence))
    equivalence: dict[str, Any] = {}
    if "L5" in levels:
        from parity.evaluation import independent_checks

        l5_checks, metrics, l5_evidence = independent_checks(
            judge, plan.backends, container, data, model, outcomes, outputs)
        if plan.seeds:
            seed_tasks = [(seed, name) for (name, _), seed
                          in zip(train_tasks(plan), plan.seeds, strict=True)]
            l5_checks, equivalence = multi_seed_evaluation(
                judge, plan.backends, container, data, model, outcomes, outputs,
                seed_tasks=seed_tasks, first=(l5_checks, metrics), margins=margins,
                margins_source=table.source)
        checks.extend(l5_checks)
        evidence.update(l5_evidence)
    if container.object_truth is not None:
        evidence["truth/object"] = container.object_truth
    for entry in known.unmatched(levels=plan.levels, backends=plan.backends, device=device):
        judge.warnings.append(
            f"divergence allowance {entry.id} ({entry.backend} {entry.level}/{entry.stage}/"
            f"{entry.quantity}, device {entry.device}) matched no check of this run: fix its "
            f"key or remove it ({known.source})")
    return RunChecks(checks=checks, histories=histories, evidence=evidence, metrics=metrics,
                     equivalence=equivalence, device=device, warnings=tuple(judge.warnings),
                     judge=judge)
